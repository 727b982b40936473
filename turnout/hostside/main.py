"""The host-side program's entry point: the action tables and ``main``. Shipped last.

python -m turnout.hostside.main path_modes '{"paths": ["/tmp"]}'
"""

import json
import sys

if __name__ != "__main__":
    from turnout.dsn import redact
    from turnout.hostside.base import _SECRETS, HostsideError
    from turnout.hostside.files import action_make_dirs, action_path_modes
    from turnout.hostside.pg import action_postgres_server
    from turnout.hostside.web import action_http_health, action_http_health_wait


FACT_ACTIONS = {
    "postgres_server": action_postgres_server,
    "path_modes": action_path_modes,
    "http_health": action_http_health,
}
OPERATION_ACTIONS = {
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
