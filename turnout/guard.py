"""
The release guard for destructive steps (SPEC S0.2).

Restoring assets, restoring a database, dropping a schema: these steps run only when the
operator has read the ``--dry`` plan and released them explicitly with
``--data i_know_what_im_doing=true``. Anything else — the flag missing, false, misspelled or
some other value — refuses the step with one sentence saying why and what to do.
"""

from __future__ import annotations

from pyinfra.api.exceptions import OperationError

from turnout.settings import data_value

RELEASE_FLAG = "i_know_what_im_doing"

# Values that release a destructive step. pyinfra's ``--data x=true`` parses to True; the
# lowercase string "true" is accepted for group data or inventories that spell it as a string.
RELEASE_VALUES = (True, "true")

_FIX = f"read the --dry plan, then re-run with --data {RELEASE_FLAG}=true"

_MISSING = object()


class ReleaseRefused(OperationError):
    """
    A destructive step was asked for without the release flag; pyinfra aborts the run.
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
    value = data_value(data, RELEASE_FLAG, _MISSING)
    return any(type(value) is type(ok) and value == ok for ok in RELEASE_VALUES)


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
