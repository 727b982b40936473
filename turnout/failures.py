"""How an operation fails: with one line, whether pyinfra is planning or executing.

While planning, an ``OperationError`` aborts the run before anything changed, and pyinfra prints
its message cleanly. While executing (always, with ``-y``, which skips planning), a raised error
is printed with a traceback; a command that prints the reason and exits 1 fails the step the way
any failing command does.

    from turnout.failures import stop

    @operation()
    def restore(...):
        try:
            ...
        except OperationError as error:
            yield from stop(error)
"""

import logging
import os
import re
from collections.abc import Iterator

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand
from pyinfra.api.exceptions import OperationError


def fact_problem(result: dict, what: str) -> str | None:
    """Why a host-side fact could not ``what`` (``"cannot <what>: <error>"``), or None when its
    answer is ok."""
    if result.get("ok"):
        return None
    return f"cannot {what}: {result.get('error', 'no answer from the host')}"


def require_fact(result: dict, what: str) -> dict:
    """A host-side fact's answer, or an ``OperationError`` saying what could not be done."""
    problem = fact_problem(result, what)
    if problem:
        raise OperationError(problem)
    return result


def fail_command(failures: list[str]) -> StringCommand:
    """A command that fails the step, printing the first reason (and how many more) on stderr."""
    more = f" (and {len(failures) - 1} more, see the report)" if len(failures) > 1 else ""
    return StringCommand("echo", QuoteString(f"turnout: {failures[0]}{more}"), ">&2;", "exit 1")


def stop(error: OperationError) -> Iterator[StringCommand]:
    """Re-raise ``error`` while planning; fail the step with its message while executing."""
    if not host.state.is_executing:
        raise error
    yield fail_command([str(error)])


# One line per failure ------------------------------------------------------------------------
#
# pyinfra prints a failing step as: its output (turnout's one line, plus the host program's JSON
# answer), ``Error: executed 0 commands``, then ``--> pyinfra error: No hosts remaining!``; and an
# error raised while the deploy loads as ``--> pyinfra error in <file> line N: <message>``, which
# reads like a crash. Its messages go through the ``pyinfra`` logger, so a logging filter is where
# they can be shaped: turnout keeps the one line that names the problem and the way forward.

_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_LOCATED_RE = re.compile(
    r"^--> (?P<name>[A-Za-z ]*?error) in (?P<file>.+?) line \d+: (?P<msg>.*)$", re.DOTALL
)
_DROPPED_RE = re.compile(
    r"(^|\]\s+)Error: executed \d+ commands$"  # the step's reason was printed just above
    r"|^--> pyinfra error: No hosts remaining!$"  # each host's failure was printed already
    r'|\]\s+\{"ok": false, '  # the host program's JSON answer: the same reason, again
)
_UNREACHABLE_RE = re.compile(r"^(?P<prefix>.*\] )Could not connect \((?P<why>.*)\)$")
_TURNOUT_DIR = os.path.dirname(os.path.abspath(__file__))


def one_line(text: str) -> str | None:
    """What turnout prints for one of pyinfra's log lines (ANSI colours removed): the line itself,
    a shorter one, or None to drop it.

    >>> one_line("--> pyinfra error in /x/turnout/preflight.py line 25: cannot connect; fix it")
    '--> turnout: cannot connect; fix it'
    >>> one_line("    [web1] Error: executed 0 commands") is None
    True
    >>> one_line("    [stack-prod]    Error: executed 2 commands") is None  # padded host names
    True
    """
    plain = _ANSI_RE.sub("", text)
    if _DROPPED_RE.search(plain.strip()):
        return None
    located = _LOCATED_RE.match(plain)
    if located:
        path = located["file"].replace(os.sep, "/")
        ours = path.startswith(_TURNOUT_DIR.replace(os.sep, "/")) or any(
            f"/{part}/" in f"/{path}" for part in ("turnout", "operations", "facts", "deploys")
        )
        name = "turnout" if ours else located["name"]
        return f"--> {name}: {located['msg']}"
    unreachable = _UNREACHABLE_RE.match(plain)
    if unreachable:
        return (
            f"{unreachable['prefix']}turnout: cannot reach the host over ssh "
            f"({unreachable['why']}); check its address, port and key in the inventory "
            "(TURNOUT_<ENV>_HOSTS, TURNOUT_SSH_KEY) and that sshd answers there; "
            "nothing was changed"
        )
    return text


_STEP_INTERRUPTED_RE = re.compile(r"\] turnout: [a-z_]+: interrupted \(")


class OneLineFailures(logging.Filter):
    """The logging filter applying ``one_line`` to pyinfra's records; once the run is interrupted,
    the stopped step's own line is left to the one summary line ``turnout.lock`` prints."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            return True
        from turnout.lock import INTERRUPT

        if INTERRUPT and _STEP_INTERRUPTED_RE.search(_ANSI_RE.sub("", text)):
            return False
        shaped = one_line(text)
        if shaped is None:
            return False
        if shaped != text:
            record.msg, record.args = shaped, ()
        return True


def live_line_shown(text: str) -> bool:
    """Whether a line of a step's live output (``turnout.remote.run_printing``) is printed: every
    one, except, once the run is interrupted, the stopped step's own line (``turnout.lock``
    prints the one summary line)."""
    from turnout.lock import INTERRUPT

    return not (INTERRUPT and _STEP_INTERRUPTED_RE.search(_ANSI_RE.sub("", text)))


def install_live_output_filter() -> None:
    """Apply ``live_line_shown`` to the lines pyinfra's connectors print as a command's output
    arrives (``print_output``): they are echoed directly, not through the ``pyinfra`` logger,
    so ``OneLineFailures`` never sees them. Installed once."""
    import pyinfra.connectors.util as connector_util

    original = connector_util.echo
    if getattr(original, "turnout_filter", False):
        return

    def echo(message: object = None, *args: object, **kwargs: object) -> None:
        if isinstance(message, str) and not live_line_shown(message):
            return
        original(message, *args, **kwargs)

    echo.turnout_filter = True  # type: ignore[attr-defined]
    connector_util.echo = echo


def install_one_line_failures() -> None:
    """Install ``OneLineFailures`` on pyinfra's logger (once; from inventories and runbooks)."""
    pyinfra_logger = logging.getLogger("pyinfra")
    if not any(isinstance(f, OneLineFailures) for f in pyinfra_logger.filters):
        pyinfra_logger.addFilter(OneLineFailures())
