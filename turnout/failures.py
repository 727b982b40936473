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
