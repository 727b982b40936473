"""
The release guard for destructive steps (SPEC S0.2).

Restoring assets, restoring a database, dropping a schema: these steps run only when the
operator has read the ``--dry`` plan and released them explicitly with
``--data i_know_what_im_doing=true``. Anything else — the flag missing, false, misspelled or
some other value — refuses the step with one sentence saying why and what to do. Staging-only
steps are refused on hosts of the ``prod`` group, released or not.

The flag is parsed in one place, ``turnout.settings.parse_release_flag``: the setting is validated
with it and the guard releases exactly what it calls true.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from pyinfra.api.exceptions import OperationError

from turnout.settings import data_value, parse_release_flag

RELEASE_FLAG = "i_know_what_im_doing"

# The group whose hosts never run a staging-only step (``inventories/prod.py``).
PROD_GROUP = "prod"

_FIX = f"read the --dry plan, then re-run with --data {RELEASE_FLAG}=true"
_STAGING_FIX = "leave it out of the prod run (it runs only against inventories/staging.py)"

_MISSING = object()


class ReleaseRefused(OperationError):
    """
    A destructive step was asked for without the release flag, or a staging-only step on a prod
    host; pyinfra aborts the run.
    """


def is_released(data: object) -> bool:
    """
    Return whether host data releases destructive steps (the flag is True or "true").

    + data: ``host.data`` or any Mapping

    Example:

    .. code:: python

        is_released({"i_know_what_im_doing": True})  # True
        is_released({"i_know_what_im_doing": "yes"})  # False
    """
    return parse_release_flag(data_value(data, RELEASE_FLAG, _MISSING)) is True


def require_release(data: object, step: str) -> None:
    """
    Raise ``ReleaseRefused`` unless host data releases destructive steps.

    Call it while planning, before the operation's first yield, so a refused step aborts the run
    before anything changes.

    + data: ``host.data`` or any Mapping
    + step: what would run, for the message (e.g. ``"restore-db"``)

    Example:

    .. code:: python

        from pyinfra import host
        require_release(host.data, "restore-db")
    """
    if is_released(data):
        return
    value = data_value(data, RELEASE_FLAG, _MISSING)
    if value is _MISSING or value is None:
        raise ReleaseRefused(f"refusing {step}: it is destructive and not released; {_FIX}")
    if value is False:
        raise ReleaseRefused(
            f"refusing {step}: it is destructive and {RELEASE_FLAG} is false; {_FIX}",
        )
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:39] + "…"
    raise ReleaseRefused(
        f"refusing {step}: {RELEASE_FLAG} must be true to release it, got {shown} "
        f"({type(value).__name__}); {_FIX}",
    )


def refuse_destructive(
    data: object,
    step: str,
    groups: Iterable[str],
    staging_only: bool = False,
) -> None:
    """
    Raise ``ReleaseRefused`` when ``step`` is destructive and not released, or when it is
    staging-only and the host is in group ``prod`` (then even a released run is refused).

    Call it while the deploy loads (in the deploy file or before the operation's first yield), so
    it refuses before any step runs, with ``-y`` or not.

    + data: ``host.data`` or any Mapping
    + step: what would run, for the message (e.g. ``"drop-schema"``)
    + groups: the host's group names (``host.groups``)
    + staging_only: the step must never run on a host of the ``prod`` group

    Example:

    .. code:: python

        released = {"i_know_what_im_doing": True}
        refuse_destructive(released, "drop-schema", ["staging"], staging_only=True)  # passes
        refuse_destructive(released, "drop-schema", ["prod"], staging_only=True)  # ReleaseRefused
        refuse_destructive({}, "restore-db", ["prod"])  # ReleaseRefused: not released

        from pyinfra import host
        refuse_destructive(host.data, "drop-schema", host.groups, staging_only=True)
    """
    if staging_only and PROD_GROUP in set(groups):
        raise ReleaseRefused(
            f"refusing {step}: it is for staging only and this host is in the "
            f"{PROD_GROUP} group; {_STAGING_FIX}",
        )
    require_release(data, step)


def destructive(
    step: str,
    when: Callable[[dict[str, Any]], bool] | None = None,
    staging_only: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """
    Declare an operation destructive: calling it (while the deploy loads, before any step is
    planned or run, with ``-y`` or not) refuses it through ``refuse_destructive`` unless
    released, and on ``prod`` hosts when ``staging_only``. ``when`` receives the call's keyword
    arguments and says whether this call is destructive (default: always). Put it above
    ``@operation()``.

    + step: what would run, for the message
    + when: predicate over the call's keyword arguments
    + staging_only: never on a host of the ``prod`` group

    Example:

    .. code:: python

        @destructive("the restore with drop_schema", when=lambda kw: kw.get("drop_schema"),
                     staging_only=True)
        @operation()
        def restore(dump: str, into: Database, marker: str, drop_schema: bool = False): ...
    """

    def declare(op: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(op)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if when is None or when(kwargs):
                from pyinfra import host

                refuse_destructive(host.data, step, host.groups, staging_only=staging_only)
            return op(*args, **kwargs)

        guarded.destructive_step = step  # type: ignore[attr-defined]
        return guarded

    return declare
