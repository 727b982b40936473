"""Restore an assets directory from a tarball by a crash-safe directory swap, and swap it back
(restore-assets; RELIABILITY 1-8).

The host does the work (``turnout/hostside/swap.py``): every member of the tarball is checked
before anything is written, the tree is extracted beside the live one
(``<parent>/.<name>.staging-<ts>``) with ``tarfile``'s ``data`` filter, then two renames journaled
in ``<parent>/.<name>.swap-journal.json`` make it live and keep the old tree as
``<dest>.prev_<ts>``. A run killed at any point is recovered by the next one (planned as "Will
recover the interrupted swap of <ts>: …"). The marker records the tarball's sha256: the same
tarball again changes nothing.
"""

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.facts.swap import (
    SWAP_MAX_MEMBER_BYTES,
    SWAP_MAX_MEMBERS,
    AssetSwapBackPlan,
    AssetSwapPlan,
)
from turnout.failures import require_fact, stop
from turnout.guard import destructive
from turnout.hostside.progress import human_bytes
from turnout.memo import observe
from turnout.remote import hostside_progress_command


def listed(paths: list[str], total: int) -> str:
    """``a, b and 3 more`` (empty when there is none).

    >>> listed(["a", "b"], 5)
    ': a, b and 3 more'
    """
    if not paths:
        return ""
    more = f" and {total - len(paths)} more" if total > len(paths) else ""
    return ": " + ", ".join(paths) + more


def describe_restore(plan: dict, tarball: str, dest: str) -> str:
    """The ``Will restore …`` line of a plan, in numbers."""
    live = (
        f"the live tree has {plan['live_files']} files ({human_bytes(plan['live_bytes'])}) and "
        f"is kept as {plan['prev']}"
        if plan["live_exists"]
        else f"{dest} does not exist yet"
    )
    free = plan.get("free_bytes")
    room = f"; {human_bytes(free)} free there" if free is not None else ""
    return (
        f"Will restore {tarball} into {dest}: {plan['tarball_files']} files "
        f"({human_bytes(plan['tarball_bytes'])}) extracted into {plan['staging']}{room}; {live}; "
        f"{plan['added']} added{listed(plan['added_paths'], plan['added'])}; "
        f"{plan['removed']} removed{listed(plan['removed_paths'], plan['removed'])}; "
        f"{plan['changed']} changed (size or mtime)"
        f"{listed(plan['changed_paths'], plan['changed'])}"
    )


def log_recovery(plan: dict) -> bool:
    """Say what recovering a killed run will do; whether there is one."""
    recovery = plan.get("recovery")
    if recovery:
        host.log(f"Will recover the interrupted swap of {recovery['ts']}: {recovery['outcome']}")
    return bool(recovery)


def plan_of(fact: type, what: str, **arguments: object) -> dict:
    """The host's plan (measured once per phase); ``OperationError`` on a refusal."""
    plan = require_fact(observe(fact, **arguments), what)
    if plan.get("refusal"):
        raise OperationError(plan["refusal"])
    return plan


@destructive("restore-assets (replaces the live assets directory)")
@operation()
def restore_tarball(
    tarball: str,
    dest: str,
    marker: str,
    timestamp: str,
    strip_components: int = 0,
    max_members: int = SWAP_MAX_MEMBERS,
    max_member_bytes: int = SWAP_MAX_MEMBER_BYTES,
    log_path: str | None = None,
    list_max: int = 10,
    progress_interval_s: float | None = None,
):
    """
    Replace the live directory ``dest`` by the tree in ``tarball`` (``.tar``, ``.tar.gz``,
    ``.tar.bz2``, ``.tar.xz``), crash-safe: checked member by member first (a hostile or broken
    tarball is refused whole, while planning already), extracted beside ``dest`` on its
    filesystem, swapped in by two journaled renames; the old tree is kept as
    ``<dest>.prev_<timestamp>``. The same tarball (sha256 in ``marker``) with ``dest`` present
    changes nothing. Declared destructive: refused unless released.

    + tarball: the tarball on the host
    + dest: the live directory (its parent must exist; ``dest`` must not be a mount point)
    + marker: the JSON record of what is live (sha256, tarball, prev, files, bytes)
    + timestamp: names ``<dest>.prev_<timestamp>`` and the staging directory (the run's)
    + strip_components: leading path components dropped from every member (GNU tar's
      ``--strip-components``; 1 for a tarball made with ``tar -czf x.tgz assets/``)
    + max_members: the most members accepted
    + max_member_bytes: the largest member accepted
    + log_path: where progress and a failure's traceback are appended
    + list_max: how many added/removed/changed paths the plan lists
    + progress_interval_s: seconds between progress lines (None: the host's setting)

    .. code:: python

        from turnout.operations import swap
        swap.restore_tarball(
            name="Restore the assets",
            tarball="/srv/incoming/assets.tar.gz",
            dest="/srv/app/data/assets",
            marker="/var/lib/turnout/state/assets.json",
            timestamp="20261123T120000Z",
            strip_components=1,
        )
    """
    arguments = {
        "tarball": tarball,
        "dest": dest,
        "marker": marker,
        "timestamp": timestamp,
        "strip_components": strip_components,
        "max_members": max_members,
        "max_member_bytes": max_member_bytes,
    }
    try:
        plan = plan_of(
            AssetSwapPlan, f"plan restoring {tarball} into {dest}", **arguments, list_max=list_max
        )
        recovering = log_recovery(plan)
        if plan["up_to_date"] and not recovering:
            host.noop(plan["reason"])
            return
        if not plan["up_to_date"]:
            host.log(describe_restore(plan, tarball, dest))
        params = {**arguments, "log_path": log_path}
        yield hostside_progress_command("swap_restore", params, progress_interval_s)
    except OperationError as error:
        yield from stop(error)


@destructive("swap-back-assets (replaces the live assets directory)")
@operation()
def swap_back(
    dest: str,
    marker: str,
    timestamp: str,
    prev: str | None = None,
    progress_interval_s: float | None = None,
):
    """
    Put the previous assets tree back (after a failed health check): the live ``dest`` becomes
    ``<dest>.failed_<timestamp>`` and ``prev`` becomes live, by the same journaled, crash-safe
    renames as the restore. ``prev`` None takes the tree the marker names as ``prev``, else the
    newest ``<dest>.prev_*``. A rerun changes nothing: the marker records the swap back.
    Declared destructive: refused unless released.

    + dest: the live directory
    + marker: the marker ``restore_tarball`` wrote (updated here)
    + timestamp: names ``<dest>.failed_<timestamp>``
    + prev: the tree to put back (a path beside ``dest``, or its name)
    + progress_interval_s: seconds between progress lines (None: the host's setting)

    .. code:: python

        from turnout.operations import swap
        swap.swap_back(
            name="Swap the assets back",
            dest="/srv/app/data/assets",
            marker="/var/lib/turnout/state/assets.json",
            timestamp="20261123T130000Z",
        )
    """
    arguments = {"dest": dest, "marker": marker, "timestamp": timestamp, "prev": prev}
    try:
        plan = plan_of(AssetSwapBackPlan, f"plan swapping back {dest}", **arguments)
        recovering = log_recovery(plan)
        if plan["up_to_date"] and not recovering:
            host.noop(plan["reason"])
            return
        if not plan["up_to_date"]:
            kept = (
                f"the live tree ({plan['live_files']} files, {human_bytes(plan['live_bytes'])}) "
                f"is kept as {plan['failed']}"
                if plan["failed"]
                else f"{dest} does not exist"
            )
            host.log(
                f"Will swap back {dest}: {plan['prev']} ({plan['prev_files']} files, "
                f"{human_bytes(plan['prev_bytes'])}) becomes live; {kept}"
            )
        yield hostside_progress_command("swap_back", arguments, progress_interval_s)
    except OperationError as error:
        yield from stop(error)
