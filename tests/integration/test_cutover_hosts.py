"""Several app hosts, one database (issue 8 item 13): the stack's two SSH hosts both run the
app against prod's compose database. Freeze stops the writers on both before the backup starts;
backup, restore-db and migrate run once, on prod; restore-assets, up, health and smoke on both.
"""

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import changes, compose, read_env_file, run_pyinfra, set_env_value
from test_cutover import artifacts, full_data, smoke_env  # noqa: F401 - fixture

TIMESTAMP = "ct-pair"
HOSTS = ("staging", "prod")


@pytest.fixture(scope="module")
def shared_db(stack: dict, artifacts: dict, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    """Staging's app re-pointed at prod's database; its own settings and assets put back after."""
    staging = stack["hosts"]["staging"]
    original = read_env_file(staging["env_file"])["DATABASE_URL"]
    prod_url = read_env_file(stack["hosts"]["prod"]["env_file"])["DATABASE_URL"]
    kept = tmp_path_factory.mktemp("staging-assets") / "assets"
    shutil.copytree(staging["assets_dir"], kept, symlinks=True)
    set_env_value(staging["env_file"], "DATABASE_URL", prod_url)
    for name in ("prod", "staging"):  # the database first: staging's app waits for it
        compose(stack["hosts"][name], "up", "--detach", "--wait", "--wait-timeout", "180")
    yield stack
    set_env_value(staging["env_file"], "DATABASE_URL", original)
    compose(staging, "down", "--timeout", "5")
    live = Path(staging["assets_dir"])
    for leftover in live.parent.glob("assets.*"):
        shutil.rmtree(leftover)
    shutil.rmtree(live)
    shutil.copytree(kept, live, symlinks=True)


def pair(*data: str, mode: str = "-y"):
    args = ["tests/stack/inventory.py", "deploys/cutover.py"]
    for item in ("app_hosts_group=pair_app", "db_hosts_group=pair_db", *data):
        args += ["--data", item]
    return run_pyinfra(mode, "-v", *args, env=smoke_env())


def record(stack: dict, name: str) -> dict:
    root = Path(stack["hosts"][name]["evidence_root"])
    return json.loads((root / "cutover" / TIMESTAMP / "run.json").read_text())


def test_two_app_hosts_share_one_database(shared_db: dict, artifacts: dict) -> None:  # noqa: F811
    data = full_data(artifacts, TIMESTAMP)
    dry = pair(*data, mode="--dry")
    assert dry.returncode == 0, dry.stdout[-4000:]
    for step in ("backup", "restore-db", "migrate"):
        line = rf"\[stack-staging\]\s+Step {step}: not run, not the database host"
        assert re.search(line, dry.stdout), dry.stdout[-4000:]
    assert re.search(r"\[stack-staging\]\s+Will stop the writers: api", dry.stdout)

    real = pair(*data)
    assert real.returncode == 0, real.stdout[-5000:]
    staging, prod = record(shared_db, "staging"), record(shared_db, "prod")
    assert staging["roles"] == ["app"] and prod["roles"] == ["app", "db"]
    assert "Baseline backup (pg_dump)" not in staging["steps"]
    assert "Restore the database" not in staging["steps"]
    # Every writer was stopped before the backup started.
    frozen = max(r["steps"]["Freeze: stop the writers"]["end"] for r in (staging, prod))
    assert frozen <= prod["steps"]["Baseline backup (pg_dump)"]["start"]
    for name in HOSTS:
        host = shared_db["hosts"][name]
        assets = Path(host["assets_dir"])
        assert sum(1 for p in assets.rglob("*") if p.is_file()) == artifacts["files"], name
        steps = record(shared_db, name)["steps"]
        for step in ("Health", "Smoke: core", "Restore assets (swap in the tarball)"):
            assert steps[step]["status"] == "ok", (name, step)

    rerun = pair(*data)
    assert rerun.returncode == 0, rerun.stdout[-4000:]
    assert changes(rerun.stdout) == 0, rerun.stdout[-4000:]
