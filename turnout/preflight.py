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


def require(result: dict, what: str) -> dict:
    """A host-side fact's result, or ``PreflightError("cannot <what>: <reason>; nothing was
    changed")``."""
    problem = fact_problem(result, what)
    if problem:
        raise PreflightError(f"{problem}; nothing was changed")
    return result
