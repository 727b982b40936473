"""The test stack's inventory for the second fixture app, itemsapp (``tests/fixtures/itemsapp``):
the same two SSH hosts as ``inventory.py``, each pointed at its itemsapp root, and the staging
SSH host once more for the app run on the host (no compose).

    pyinfra tests/stack/items_inventory.py deploys/app_up.py --limit items-prod

Everything itemsapp differs in is a setting here, as an operator would write it in group_data:
the database only inside compose (``db_connect=compose``), the DSN in ``POSTGRES_*`` parts, the
one-shot ``prestart`` migration service, the ``backend`` service, bare ``true`` health, OAuth2
form login and trailing-slash item routes. Reads ``<stack_dir>/stack.json`` like ``inventory.py``.
"""

import os as _os
import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent))
from inventory import STACK as _STACK  # noqa: E402
from inventory import STACK_DIR as _STACK_DIR  # noqa: E402
from inventory import stack_host as _stack_host  # noqa: E402

# Module-level lists are inventory groups to pyinfra: everything else here starts with "_".
_ITEMS = _STACK["itemsapp"]
_REPO = _Path(_STACK["repo"])
_PARTS = (
    "host=POSTGRES_SERVER",
    "port=POSTGRES_PORT",
    "user=POSTGRES_USER",
    "password=POSTGRES_PASSWORD",
    "dbname=POSTGRES_DB",
)
_APP = {
    "target_dsn_parts": _PARTS,
    "migration_services": ("prestart",),
    "app_service": "backend",
    "app_python": "python",
    "freeze_services": ("backend",),
    "health_path": "/api/v1/utils/health-check/",
    "health_body": "json:true",
    "health_expect": (),
    "health_revision_key": "",
    "required_extensions": (),
    "assets": False,
    "asset_path_columns": (),
    "prechecks": (
        'unique_emails=unique:"user"(email)',
        'one_admin=min_rows:"user"(is_superuser=true)>=1',
    ),
    "unique_gate": 'uq_user_email="user"(email)',
    "smoke_login_path": "/api/v1/login/access-token",
    "smoke_login_body": "form",
    "smoke_username_field": "username",
    "smoke_token_path": "access_token",
    "smoke_auth_scheme": "Bearer",
    "smoke_endpoints": (
        "/api/v1/users/me=200",
        "user:/api/v1/users/me=200",
        "anonymous:/api/v1/users/me=401",
        "user:/api/v1/items/=200",
    ),
    "smoke_admin_path": "/api/v1/users/",
    "smoke_denied_status": (401,),
    "smoke_user_status": (403,),
    "smoke_ws_path": "",
    "smoke_writes": 1,
    "smoke_write_path": "/api/v1/items/",
    "smoke_item_path": "/api/v1/items/{id}",
    "smoke_write_body": '{"title": "turnout smoke {n}"}',
}


def items_host(name: str) -> tuple[str, dict]:
    """The SSH host ``name`` (staging or prod) pointed at its itemsapp root."""
    _, data = _stack_host(name)
    root = _ITEMS["hosts"][name]
    data.update(_APP)
    data.update(
        app_root=root["app_root"],
        env_file=root["env_file"],
        compose_file=root["compose_file"],
        compose_project=root["compose_project"],
        base_url=root["base_url"],
        evidence_root=str(_STACK_DIR / "hosts" / name / "items-evidence"),
        db_connect="compose",
        db_in_compose=False,
    )
    return f"items-{name}", data


def items_on_the_host() -> tuple[str, dict]:
    """itemsapp run on the staging SSH host itself (``hostctl.sh``, no compose), its database
    a cluster of the stack reached from the host with the DSN's parts."""
    _, data = _stack_host("staging")
    mode = _ITEMS["hostmode"]
    control = f"{mode['hostctl']} {{}} {mode['app_root']}"
    data.update(_APP)
    data.update(
        app_runs_in="host",
        app_root=mode["app_root"],
        app_dir=str(_REPO / "tests" / "fixtures" / "itemsapp"),
        env_file=mode["env_file"],
        app_python=_os.environ.get("ITEMSAPP_PYTHON", _sys.executable),
        app_start_command=control.format("start"),
        app_stop_command=control.format("stop"),
        app_status_command=control.format("status"),
        migration_services=(),
        base_url=mode["base_url"],
        evidence_root=str(_STACK_DIR / "hosts" / "itemshost" / "evidence"),
        db_connect="dsn",
        db_in_compose=False,
        compose_file=None,
        compose_project=None,
    )
    return "items-hostmode", data


staging = [items_host("staging")]
prod = [items_host("prod")]
hostmode = [items_on_the_host()]
prod_app = ["items-prod"]
prod_db = ["items-prod"]
