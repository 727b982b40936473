"""The base for facts answered by the host-side program (``turnout/hostside/``).

A subclass names its ``action`` and builds the action's parameters; the program prints one JSON
object and always exits 0, so a problem (bad DSN, unreachable server) arrives as
``{"ok": false, "error": "…"}`` for the operation to judge instead of failing the host.
"""

from pyinfra.api import FactBase

from turnout.remote import parse_hostside_output


class HostsideFact(FactBase[dict]):
    """Parses the JSON answer of a host-side action. Subclasses define ``command`` with explicit
    keyword arguments (pyinfra binds fact arguments by the signature) and return
    ``hostside_command(<action>, <params>)`` (the host's Python comes from ``hostside_python``).
    Read them through ``turnout.memo.observe`` so each is measured once per phase."""

    abstract = True

    def process(self, output: list[str]) -> dict:
        return parse_hostside_output(output)
