"""The base for facts answered by the host-side program (``turnout/hostside.py``).

A subclass names its ``action`` and builds the action's parameters; the program prints one JSON
object and always exits 0, so a problem (bad DSN, unreachable server) arrives as
``{"ok": false, "error": "…"}`` for the operation to judge instead of failing the host.
"""

from pyinfra.api import FactBase, StringCommand

from turnout.remote import hostside_command, parse_hostside_output


class HostsideFact(FactBase[dict]):
    """Runs one host-side action; subclasses set ``action`` and implement ``params``."""

    abstract = True
    action: str = ""

    def params(self, *args, **kwargs) -> dict:
        raise NotImplementedError

    def command(self, *args, python: str = "python3", **kwargs) -> StringCommand:
        return hostside_command(self.action, self.params(*args, **kwargs), python=python)

    def process(self, output: list[str]) -> dict:
        return parse_hostside_output(output)
