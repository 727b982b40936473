"""The host-side program's entry point: the action tables and ``main`` (run by ``__main__.py``
of the zip application that ``turnout/remote.py`` builds).

python -c 'from turnout.remote import hostside_command as c
print(c("path_modes", {"paths": ["/tmp"]}).get_raw_value())' | sh
"""

import importlib
import json
import os
import sys
import traceback
from collections.abc import Callable

from turnout.dsn import redact
from turnout.hostside.base import (
    _SECRETS,
    HostsideError,
    Interrupted,
    append_log,
    check_stop,
    stop_on_signals,
    watch_channel,
)

# action -> (module of turnout.hostside, function); a module is imported only when one of its
# actions runs, so a call pays for what it uses.
FACT_ACTIONS = {
    "asset_sample": ("assets", "action_asset_sample"),
    "rsync_plan": ("assets", "action_rsync_plan"),
    "rsync_sides": ("assets", "action_rsync_sides"),
    "postgres_server": ("pg", "action_postgres_server"),
    "row_counts": ("pg", "action_row_counts"),
    "orphans": ("pg", "action_orphans"),
    "constraints": ("pg", "action_constraints"),
    "extensions": ("pg", "action_extensions"),
    "alembic_revision": ("pg", "action_alembic_revision"),
    "table_sizes": ("pg", "action_table_sizes"),
    "dump_constraints": ("integrity", "action_dump_constraints"),
    "table_digests": ("integrity", "action_table_digests"),
    "tarball_manifest": ("integrity", "action_tarball_manifest"),
    "pending_checks": ("revisions", "action_pending_checks"),
    "prechecks": ("checks", "action_prechecks"),
    "sqlite_prechecks": ("sqlite_checks", "action_sqlite_prechecks"),
    "sqlite_duplicate_groups": ("sqlite_checks", "action_sqlite_duplicate_groups"),
    "duplicate_groups": ("checks", "action_duplicate_groups"),
    "dump_info": ("dump", "action_dump_info"),
    "restore_marker": ("dump", "action_restore_marker"),
    "path_modes": ("files", "action_path_modes"),
    "file_digest": ("files", "action_file_digest"),
    "read_json": ("files", "action_read_json"),
    "run_records": ("files", "action_run_records"),
    "sqlite_backup_info": ("sqlite", "action_sqlite_backup_info"),
    "sqlite_restore_info": ("sqlite", "action_sqlite_restore_info"),
    "tree_stats": ("files", "action_tree_stats"),
    "http_health": ("web", "action_http_health"),
    "swap_plan": ("swap", "action_swap_plan"),
    "swap_back_plan": ("swap", "action_swap_back_plan"),
    "sqlite_copy_plan": ("pgload", "action_sqlite_copy_plan"),
    "sqlite_source_info": ("pgload", "action_sqlite_source_info"),
    "copy_status": ("pgload", "action_copy_status"),
    "sqlite_unique_conflicts": ("sqlite_unique", "action_sqlite_unique_conflicts"),
    "env_phase_plan": ("envedit", "action_env_phase_plan"),
}
OPERATION_ACTIONS = {
    "pg_dump": ("dump", "action_pg_dump"),
    "pg_restore": ("dump", "action_pg_restore"),
    "dedupe": ("checks", "action_dedupe"),
    "sqlite_backup": ("sqlite", "action_sqlite_backup"),
    "sqlite_restore": ("sqlite", "action_sqlite_restore"),
    "locked_migration": ("schema", "action_locked_migration"),
    "rsync_mirror": ("assets", "action_rsync_mirror"),
    "http_health_wait": ("web", "action_http_health_wait"),
    "make_dirs": ("files", "action_make_dirs"),
    "write_file": ("files", "action_write_file"),
    "swap_restore": ("swap", "action_swap_restore"),
    "swap_back": ("swap", "action_swap_back"),
    "sqlite_copy": ("pgload", "action_sqlite_copy"),
    "sqlite_copy_reset": ("pgload", "action_sqlite_copy_reset"),
    "sqlite_verify": ("pgverify", "action_sqlite_verify"),
    "env_rewrite": ("envedit", "action_env_rewrite"),
}
# Exit status of an action stopped by a signal or by its ssh channel closing (as a shell's 128+2).
INTERRUPTED_EXIT = 130


def action_what(action: str, params: dict) -> str:
    """What an operation action is working on, for the interrupted mark and its message.

    >>> action_what("pg_restore", {"dump": "/e/source.dump", "dsn_env": "DATABASE_URL"})
    'pg_restore of /e/source.dump into DATABASE_URL'
    >>> action_what("rsync_mirror", {"source": "/a", "dest": "/b"})
    'rsync_mirror of /a into /b'
    """
    source = params.get("dump") or params.get("source") or params.get("dsn_env")
    dest = params.get("dest") or (params.get("dsn_env") if params.get("dump") else None)
    if source and dest:
        return f"{action} of {source} into {dest}"
    return f"{action} of {source or dest or params.get('path') or params.get('url') or '?'}"


def action_handler(action: str) -> Callable[[dict], dict]:
    """The function that runs ``action``; ``HostsideError`` for an unknown one."""
    where = FACT_ACTIONS.get(action) or OPERATION_ACTIONS.get(action)
    if where is None:
        raise HostsideError(f"unknown hostside action {action!r}")
    module = importlib.import_module(f"turnout.hostside.{where[0]}")
    return getattr(module, where[1])


def error_location(error: BaseException) -> str:
    """``turnout/hostside/pg.py line 123``: the innermost frame of the program in the traceback
    (inside the zip application the file names are the real module paths)."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [frame for frame in frames if "turnout/" in frame.filename.replace(os.sep, "/")]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "an unknown place"
    name = frame.filename.replace(os.sep, "/")
    name = "turnout/" + name.rsplit("turnout/", 1)[-1] if "turnout/" in name else name
    return f"{name} line {frame.lineno}"


def keep_traceback(error: BaseException, action: str, params: dict) -> str | None:
    """Append the redacted traceback to the step's log (``log_path``, else ``error_log``) when its
    directory exists (evidence is never created here); the log's path, or None."""
    for key in ("log_path", "error_log"):
        path = params.get(key) if isinstance(params, dict) else None
        if isinstance(path, str) and path and os.path.isdir(os.path.dirname(path)):
            text = "".join(traceback.format_exception(error))
            try:
                append_log(path, f"turnout host program: {action}", redact(text, _SECRETS), None)
            except (OSError, HostsideError):
                continue
            return path
    return None


def run_operation(action: str, params: dict) -> dict:
    """Run an operation action the way a step must be stoppable: SIGINT/SIGHUP/SIGTERM and the
    ssh channel closing raise ``Interrupted`` (its tool's process group is killed on the way out,
    never left running), and while it runs it is registered with the run's host lock (the lock
    holder stops it when the operator interrupts the run)."""
    from turnout.hostside.lock import running

    stop_on_signals()
    watch_channel(1)
    lock = params.get("run_lock") if isinstance(params.get("run_lock"), str) else None
    with running(lock, action, action_what(action, params)):
        answer = action_handler(action)(params)
    check_stop()  # a stop whose exception an interpreter callback swallowed: never a success
    return answer


def quiet(text: str) -> None:
    """The answer of an operation action run with ``progress_interval_s``: the control machine
    prints its output as it arrives, so only the progress lines and a failure's one line (on
    stderr) are shown; the JSON answer is not printed."""


def main(argv: list[str]) -> int:
    """Run one action; print its JSON answer. Facts exit 0 even on errors; operations exit 1
    (130 when interrupted)."""
    action = argv[1] if len(argv) > 1 else ""
    is_fact = action in FACT_ACTIONS
    params: dict = {}
    answer = print  # the JSON answer (quiet for a step printing its progress: see ``quiet``)
    if action == "app_exec":  # replaces this process: the app's command answers for itself
        from turnout.hostside.app import exec_app

        return exec_app(json.loads(argv[2]) if len(argv) > 2 else {})
    if action == "lock_hold":
        from turnout.hostside.lock import action_lock_hold

        return action_lock_hold(json.loads(argv[2]) if len(argv) > 2 else {})
    try:
        params = json.loads(argv[2]) if len(argv) > 2 else {}
        answer = quiet if not is_fact and "progress_interval_s" in params else print
        if is_fact:
            result = {"ok": True, **action_handler(action)(params)}
        else:
            result = {"ok": True, **run_operation(action, params)}
    except Interrupted as error:
        from turnout.hostside.lock import utc_now, write_mark

        what = action_what(action, params)
        message = redact(
            f"interrupted ({error.cause}): {what} was stopped, its tools killed", _SECRETS
        )
        run_dir = params.get("run_dir") if isinstance(params.get("run_dir"), str) else None
        try:
            write_mark(
                run_dir,
                {
                    "interrupted_at": utc_now(),
                    "cause": error.cause,
                    "running": [{"action": action, "what": what, "pid": os.getpid()}],
                    "stopped": f"{action} ({what})",
                },
            )
        except OSError:
            pass
        answer(json.dumps({"ok": False, "error": message, "interrupted": True}))
        print(f"turnout: {action}: {message}", file=sys.stderr)
        return INTERRUPTED_EXIT
    except Exception as error:  # noqa: BLE001 - every failure becomes one redacted line
        if isinstance(error, HostsideError):
            message = redact(str(error), _SECRETS)
        else:  # a bug or an unforeseen failure: say where, keep the traceback
            kept = keep_traceback(error, action, params)
            where = f"; traceback in {kept}" if kept else ""
            message = redact(
                f"{type(error).__name__}: {error} (at {error_location(error)}{where})", _SECRETS
            )
            if not kept:
                print(redact("".join(traceback.format_exception(error)), _SECRETS), file=sys.stderr)
        answer(json.dumps({"ok": False, "error": message}))
        if not is_fact:
            print(f"turnout: {action}: {message}", file=sys.stderr)
            return 1
        return 0
    answer(redact(json.dumps(result, sort_keys=True), _SECRETS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
