"""The host-side program's entry point: the action tables and ``main``. Shipped last.

python -c 'from turnout.remote import hostside_command as c
print(c("path_modes", {"paths": ["/tmp"]}).get_raw_value())' | sh
"""

import json
import sys

if __name__ != "__main__":
    from turnout.dsn import redact
    from turnout.hostside.assets import (
        action_asset_sample,
        action_rsync_mirror,
        action_rsync_plan,
    )
    from turnout.hostside.base import _SECRETS, HostsideError
    from turnout.hostside.dump import (
        action_dump_info,
        action_pg_dump,
        action_pg_restore,
        action_restore_marker,
    )
    from turnout.hostside.files import action_make_dirs, action_path_modes
    from turnout.hostside.pg import (
        action_alembic_revision,
        action_constraints,
        action_extensions,
        action_orphans,
        action_postgres_server,
        action_row_counts,
        action_table_sizes,
    )
    from turnout.hostside.web import action_http_health, action_http_health_wait


FACT_ACTIONS = {
    "asset_sample": action_asset_sample,
    "rsync_plan": action_rsync_plan,
    "postgres_server": action_postgres_server,
    "row_counts": action_row_counts,
    "orphans": action_orphans,
    "constraints": action_constraints,
    "extensions": action_extensions,
    "alembic_revision": action_alembic_revision,
    "table_sizes": action_table_sizes,
    "dump_info": action_dump_info,
    "restore_marker": action_restore_marker,
    "path_modes": action_path_modes,
    "http_health": action_http_health,
}
OPERATION_ACTIONS = {
    "pg_dump": action_pg_dump,
    "pg_restore": action_pg_restore,
    "rsync_mirror": action_rsync_mirror,
    "http_health_wait": action_http_health_wait,
    "make_dirs": action_make_dirs,
}


def main(argv: list[str]) -> int:
    action = argv[1] if len(argv) > 1 else ""
    is_fact = action in FACT_ACTIONS
    handler = FACT_ACTIONS.get(action) or OPERATION_ACTIONS.get(action)
    try:
        if handler is None:
            raise HostsideError(f"unknown hostside action {action!r}")
        params = json.loads(argv[2]) if len(argv) > 2 else {}
        result = {"ok": True, **handler(params)}
    except Exception as error:  # noqa: BLE001 - every failure becomes one redacted line
        kind = "" if isinstance(error, HostsideError) else f"{type(error).__name__}: "
        message = redact(f"{kind}{error}", _SECRETS)
        print(json.dumps({"ok": False, "error": message}))
        if not is_fact:
            print(f"turnout: {action}: {message}", file=sys.stderr)
            return 1
        return 0
    print(redact(json.dumps(result, sort_keys=True), _SECRETS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
