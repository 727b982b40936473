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
from turnout.hostside.base import _SECRETS, HostsideError, append_log

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
    "dump_info": ("dump", "action_dump_info"),
    "restore_marker": ("dump", "action_restore_marker"),
    "path_modes": ("files", "action_path_modes"),
    "file_digest": ("files", "action_file_digest"),
    "http_health": ("web", "action_http_health"),
}
OPERATION_ACTIONS = {
    "pg_dump": ("dump", "action_pg_dump"),
    "pg_restore": ("dump", "action_pg_restore"),
    "rsync_mirror": ("assets", "action_rsync_mirror"),
    "http_health_wait": ("web", "action_http_health_wait"),
    "make_dirs": ("files", "action_make_dirs"),
    "write_file": ("files", "action_write_file"),
}


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
            except OSError:
                continue
            return path
    return None


def main(argv: list[str]) -> int:
    """Run one action; print its JSON answer. Facts exit 0 even on errors; operations exit 1."""
    action = argv[1] if len(argv) > 1 else ""
    is_fact = action in FACT_ACTIONS
    params: dict = {}
    try:
        handler = action_handler(action)
        params = json.loads(argv[2]) if len(argv) > 2 else {}
        result = {"ok": True, **handler(params)}
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
        print(json.dumps({"ok": False, "error": message}))
        if not is_fact:
            print(f"turnout: {action}: {message}", file=sys.stderr)
            return 1
        return 0
    print(redact(json.dumps(result, sort_keys=True), _SECRETS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
