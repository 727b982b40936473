"""Pre-flight checks a deploy makes while it loads, before any operation is planned or run.

A problem found here stops the run with one sentence and a non-zero exit, even with ``-y``
(which skips planning): nothing has been changed yet, not even the evidence directory.

    from turnout.preflight import require
    require(host.get_fact(PostgresServer, dsn_env="DATABASE_URL", env_file=env_file),
            "connect to the target (DATABASE_URL)")
"""

from pyinfra.api.exceptions import PyinfraError

from turnout.failures import fact_problem


class PreflightError(PyinfraError):
    """An input the run cannot work with; pyinfra prints the message without a traceback."""


def require(result: dict, what: str, fix: str = "") -> dict:
    """A host-side fact's result, or ``PreflightError("cannot <what>: <reason>; <fix>; nothing
    was changed")`` (``fix``: the way forward, when the reason does not say it)."""
    problem = fact_problem(result, what)
    if problem:
        way = f"; {fix}" if fix else ""
        raise PreflightError(f"{problem}{way}; nothing was changed")
    return result
