"""Operations on asset trees (S1.3: mirror the assets with rsync)."""

import json

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.facts.assets import RsyncPlan, RsyncSides
from turnout.facts.evidence import TreeStats
from turnout.failures import require_fact, stop
from turnout.memo import observe
from turnout.operations.evidence import keep_text, plan_keep
from turnout.remote import hostside_progress_command


def mirror_refusal(plan: dict, source: str, dest: str) -> str | None:
    """Why a mirror must not run, from the host's answer (None when it may). The rule itself is
    the host program's (``turnout/hostside/assets.py: rsync_refusal``), applied again by the
    mirror on the host."""
    if not plan.get("ok"):
        return f"cannot plan mirroring {source} to {dest}: {plan.get('error')}"
    return plan.get("refusal")


def mirror_command(
    source: str,
    dest: str,
    delete: bool,
    excludes: tuple[str, ...] | list[str],
    max_delete: int | None,
    rsh: str | None,
    log_path: str | None,
    timeout_s: float,
    progress_interval_s: float | None = None,
):
    """The host-side ``rsync_mirror`` call of ``mirror``, printing its progress."""
    return hostside_progress_command(
        "rsync_mirror",
        {
            "source": source,
            "dest": dest,
            "delete": delete,
            "excludes": list(excludes),
            "max_delete": max_delete,
            "rsh": rsh,
            "log_path": log_path,
            "timeout_s": timeout_s,
        },
        progress_interval_s,
    )


@operation()
def mirror(
    source: str,
    dest: str,
    delete: bool = False,
    excludes: tuple[str, ...] | list[str] = (),
    max_delete: int | None = None,
    rsh: str | None = None,
    log_path: str | None = None,
    timeout_s: float = 3600,
    progress_interval_s: float | None = None,
):
    """
    Mirror the contents of ``source`` into ``dest`` with ``rsync -a`` on the host. A dry run
    decides: nothing to add, change or delete changes nothing. ``--delete`` only when ``delete``
    is set, and then refused when the source is empty or missing (an unmounted source looks
    empty) or when more than ``max_delete`` entries would go. rsync's exit 23/24/25 (partial
    transfer, vanished files, deletion limit) fail the operation.

    + source: a host directory, or ``host:path`` pulled over ssh (its contents are mirrored)
    + dest: the host directory to fill (created when missing)
    + delete: delete what ``dest`` holds and ``source`` does not (``rsync --delete``)
    + excludes: rsync patterns left alone on both sides
    + max_delete: the most entries one run may delete (None: no limit)
    + rsh: the remote shell for a ``host:path`` source, e.g. ``ssh -p 2222 -o
      StrictHostKeyChecking=yes`` (``-o BatchMode=yes`` is always added; default ``ssh``)
    + log_path: where rsync's redacted output is appended (``<evidence>/logs/rsync.log``)
    + timeout_s: watchdog for the transfer, in seconds
    + progress_interval_s: seconds between progress lines (None: the host's setting)

    .. code:: python

        from turnout.operations import assets
        assets.mirror(
            name="Mirror the assets",
            source="backup@old-host:/srv/app/data/assets",
            dest="/srv/app/data/assets",
            delete=False,
            log_path="/var/lib/turnout/evidence/dry_run/20261123T120000Z/logs/rsync.log",
        )
    """

    def the_mirror():
        return mirror_command(
            source,
            dest,
            delete,
            excludes,
            max_delete,
            rsh,
            log_path,
            timeout_s,
            progress_interval_s,
        )

    try:
        if host.state.is_executing:
            # An empty or missing destination cannot already mirror anything: no dry run needed.
            sides = observe(RsyncSides, source=source, dest=dest, delete=delete, rsh=rsh)
            if sides.get("ok") and sides["dest_empty"] and not sides["refusal"]:
                host.log(f"Will mirror {source} into the empty {dest}")
                yield the_mirror()
                return
        plan = observe(
            RsyncPlan,
            source=source,
            dest=dest,
            delete=delete,
            excludes=list(excludes),
            max_delete=max_delete,
            rsh=rsh,
        )
        refusal = mirror_refusal(plan, source, dest)
        if refusal:
            raise OperationError(refusal)
        if plan["add"] == 0 and plan["change"] == 0 and plan["delete"] == 0:
            host.noop(f"{dest} already mirrors {source}")
            return
        deleting = " (--delete)" if delete else ""
        host.log(
            f"Will mirror {source} to {dest}: {plan['add']} to add ({plan['add_files']} files), "
            f"{plan['change']} to change ({plan['change_files']} files), "
            f"{plan['delete']} to delete{deleting}"
        )
        yield the_mirror()
    except OperationError as error:
        yield from stop(error)


@operation()
def record_tree(path: str, record: str):
    """
    Keep how many files and bytes the asset tree ``path`` holds as JSON in the evidence file
    ``record`` (``{"files": N, "bytes": B}``; the testinfra checks compare the live tree with
    it). Unchanged content is not rewritten.

    .. code:: python

        from turnout.operations import assets
        assets.record_tree(
            name="Assets after",
            path="/srv/app/data/assets",
            record="/var/lib/turnout/evidence/cutover/20261124T120000Z/outputs/assets_after.json",
        )
    """
    try:
        if not host.state.is_executing:
            yield from plan_keep(record, f"the file count and size of {path}")
            return
        stats = require_fact(observe(TreeStats, path=path), f"count the files under {path}")
        if not stats["exists"]:
            raise OperationError(f"assets directory {path} does not exist")
        text = json.dumps({"files": stats["files"], "bytes": stats["bytes"]}, sort_keys=True)
        yield from keep_text(record, text + "\n")
    except OperationError as error:
        yield from stop(error)
