"""The test stack's inventory: its two SSH hosts, with the data that points them at the stack.

    pyinfra tests/stack/inventory.py deploys/app_up.py

Reads ``<stack_dir>/stack.json`` (``TURNOUT_STACK_DIR``, default ``<repo>/.stack``); run
``scripts/stack up`` first. Host keys are pinned and checked strictly, as in production.
"""

import json
import os
from pathlib import Path

STACK_DIR = Path(
    os.environ.get("TURNOUT_STACK_DIR", Path(__file__).resolve().parents[2] / ".stack")
)
STACK = json.loads((STACK_DIR / "stack.json").read_text())


def stack_host(name: str) -> tuple[str, dict]:
    ssh = STACK["ssh"]
    app = STACK["hosts"][name]
    return (
        f"stack-{name}",
        {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": ssh["hosts"][name]["port"],
            "ssh_user": "root",
            "ssh_key": ssh["client_key"],
            "ssh_known_hosts_file": os.environ.get("TURNOUT_STACK_KNOWN_HOSTS", ssh["known_hosts"]),
            "ssh_strict_host_key_checking": "yes",
            "hostside_python": STACK["python"],
            "docker_bin": "/usr/bin/docker",
            "app_root": app["app_root"],
            "env_file": app["env_file"],
            "compose_file": app["compose_file"],
            "compose_project": app["compose_project"],
            "assets_dir": app["assets_dir"],
            "evidence_root": app["evidence_root"],
            "base_url": app["base_url"],
            # The rehearsal's source side (``stack.py seed``) and the stand-in for pgvector.
            "rsync_source": str(STACK_DIR / "hosts" / "source" / "assets"),
            "required_extensions": ("pg_trgm",),
            # The cutover: Alembic runs with the image's venv Python; prod's database is the
            # compose ``db`` service (dump and restore inside it), staging's is outside compose.
            "app_python": "python",
            "db_in_compose": name == "prod",
        },
    )


staging = [stack_host("staging")]
prod = [stack_host("prod")]
# The cutover's roles (group_data/prod.py names these groups): prod is both.
prod_app = ["stack-prod"]
prod_db = ["stack-prod"]
# Several app hosts sharing one database (tests/integration/test_cutover_hosts.py): both hosts
# run the app, the database is prod's compose db.
pair_app = ["stack-staging", "stack-prod"]
pair_db = ["stack-prod"]
