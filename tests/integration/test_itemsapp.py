"""turnout on a second app of other shapes, by settings alone (``tests/stack/items_inventory.py``):
itemsapp (``tests/fixtures/itemsapp``) has a one-shot ``prestart`` compose service that migrates
and seeds, a database with no published port and no network (only ``docker compose exec``
reaches it), a DSN in ``POSTGRES_*`` parts whose password needs percent-encoding in a URL, a
``backend`` taking its settings with ``env_file:``, bare ``true`` health, OAuth2 form login, 403
for a normal user and trailing-slash item routes; and it runs on the host too (no compose).

The rehearsal into staging, the cutover of prod from staging's dump, the schema release with an
upgrade and a downgrade, the cutover's rollback: each real, each rerun 0 changes, each record
checked against the live database. Everything is real: sshd, docker compose, PostgreSQL, Alembic
in the app's container or on the host, HTTP.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import (
    REPO,
    STACK_DIR,
    changes,
    compose,
    read_env_file,
    run_pyinfra,
    run_stack,
    set_env_value,
    stack_env,
)

INVENTORY = "tests/stack/items_inventory.py"
ITEMS_DIR = REPO / "tests" / "fixtures" / "itemsapp"
RELEASE = next((ITEMS_DIR / "releases").glob("*_item_priority.py"))
BASE, HEAD, RELEASED = "5c1a9f3e7d20", "9b7e2d4c1f08", RELEASE.name.split("_", 1)[0]
SOURCE_ITEMS = 40


def secret(name: str) -> str:
    return (STACK_DIR / "secrets" / name).read_text().strip()


def items(stack: dict) -> dict:
    return stack["itemsapp"]


def smoke_env(stack: dict) -> dict[str, str]:
    names = items(stack)["password_secrets"]
    return stack_env(
        TURNOUT_SMOKE_EMAIL=items(stack)["superuser"],
        TURNOUT_SMOKE_PASSWORD=secret(names["superuser"]),
        TURNOUT_SMOKE_USER_EMAIL=items(stack)["normal_user"],
        TURNOUT_SMOKE_USER_PASSWORD=secret(names["normal_user"]),
    )


def deploy(
    stack: dict, name: str, host: str, *data: str, mode: str = "-y"
) -> subprocess.CompletedProcess:
    args = [mode, "-v", INVENTORY, f"deploys/{name}.py", "--limit", f"items-{host}"]
    for item in data:
        args += ["--data", item]
    return run_pyinfra(*args, env=smoke_env(stack), timeout=900)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stdout[-4000:]
    return result


def psql(stack: dict, host: str, sql: str) -> str:
    """SQL in the app's compose database, the only way anything reaches it."""
    done = compose(items(stack)["hosts"][host], "exec", "-T", "db", "psql", "-XtAc", sql)
    return done.stdout.strip()


def revision(stack: dict, host: str) -> str:
    return psql(stack, host, "SELECT version_num FROM alembic_version")


def evidence(stack: dict, host: str, task: str, timestamp: str) -> Path:
    return STACK_DIR / "hosts" / host / "items-evidence" / task / timestamp


def container_started(stack: dict, host: str, service: str) -> str:
    """When the service's container last started (a rerun that runs it again changes this)."""
    project = items(stack)["hosts"][host]["compose_project"]
    done = subprocess.run(
        ["/usr/bin/docker", "inspect", "-f", "{{.State.StartedAt}} {{.State.ExitCode}}",
         f"{project}-{service}-1"],
        capture_output=True, text=True, check=True,
    )
    return done.stdout.strip()


def database_restarts(stack: dict, host: str) -> list[str]:
    """The lines in which the app's compose PostgreSQL took a dead child for a crashed backend
    and restarted (what an orphaned tunnel process reaped by the postmaster would cause)."""
    project = items(stack)["hosts"][host]["compose_project"]
    done = subprocess.run(
        ["/usr/bin/docker", "logs", f"{project}-db-1"], capture_output=True, text=True
    )
    return [
        line for line in (done.stdout + done.stderr).splitlines()
        if "was terminated by signal" in line or "terminating any other active" in line
    ]


@pytest.fixture(autouse=True)
def the_databases_never_restart(stack: dict):
    """After every test: turnout's tunnels never made a compose database restart."""
    yield
    for host in ("staging", "prod"):
        assert database_restarts(stack, host) == [], f"the {host} compose database restarted"


@pytest.fixture(scope="module")
def code(stack: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prod runs itemsapp from a copy of its source (a release revision is added to it later,
    as a deploy of new code would), staging from the repo."""
    copy = tmp_path_factory.mktemp("itemsapp") / "itemsapp"
    shutil.copytree(ITEMS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    env_file = items(stack)["hosts"]["prod"]["env_file"]
    set_env_value(env_file, "ITEMSAPP_SRC", str(copy))
    return copy


@pytest.fixture(scope="module")
def apps_up(stack: dict, code: Path) -> dict:
    """Both compose apps up by turnout's app_up, and the rehearsal's source seeded."""
    run_stack("seed-items", str(SOURCE_ITEMS))
    for host in ("staging", "prod"):
        ok(deploy(stack, "app_up", host, "evidence_timestamp=it-up"))
    return stack


def test_app_up_reruns_change_nothing_and_never_rerun_the_migration_service(apps_up) -> None:
    stack = apps_up
    before = container_started(stack, "prod", "prestart")
    assert before.endswith(" 0")  # the one-shot service ran and exited 0
    again = ok(deploy(stack, "app_up", "prod", "evidence_timestamp=it-up"))
    assert changes(again.stdout) == 0, again.stdout[-3000:]
    assert "compose services up to date" in again.stdout
    assert container_started(stack, "prod", "prestart") == before
    assert revision(stack, "prod") == HEAD


def test_the_database_answers_nowhere_on_the_host(apps_up) -> None:
    import psycopg
    from psycopg.conninfo import make_conninfo

    env = read_env_file(items(apps_up)["hosts"]["prod"]["env_file"])
    dsn = make_conninfo(
        "", host=env["POSTGRES_SERVER"], port=env["POSTGRES_PORT"], user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"], dbname=env["POSTGRES_DB"], connect_timeout="3",
    )
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn).close()


@pytest.fixture(scope="module")
def rehearsed(apps_up) -> dict:
    stack = apps_up
    ok(deploy(stack, "dry_run", "staging", "evidence_timestamp=it-rehearsal"))
    return stack


def test_the_rehearsal_plan_changes_nothing(apps_up) -> None:
    stack = apps_up
    before = psql(stack, "staging", "SELECT count(*) FROM item")
    plan = deploy(stack, "dry_run", "staging", "evidence_timestamp=it-plan", mode="--dry")
    ok(plan)
    assert "Restore into staging" in plan.stdout
    assert psql(stack, "staging", "SELECT count(*) FROM item") == before


def test_the_rehearsal_copies_the_source_through_compose_only(rehearsed) -> None:
    stack = rehearsed
    assert psql(stack, "staging", "SELECT count(*) FROM item") == str(SOURCE_ITEMS)
    run_dir = evidence(stack, "staging", "dry_run", "it-rehearsal")
    report = json.loads((run_dir / "outputs" / "validate_db.json").read_text())
    assert report["verdict"] == "pass", report
    again = ok(deploy(stack, "dry_run", "staging", "evidence_timestamp=it-rehearsal"))
    assert changes(again.stdout) == 0, again.stdout[-3000:]


@pytest.fixture(scope="module")
def cut_over(rehearsed) -> dict:
    stack = rehearsed
    dump = evidence(stack, "staging", "dry_run", "it-rehearsal") / "src_artifacts" / "source.dump"
    data = (
        "evidence_timestamp=it-cutover",
        f"src_dump={dump}",
        "steps=freeze,backup,restore-db,migrate,up,health,smoke",
        "i_know_what_im_doing=true",
    )
    first = ok(deploy(stack, "cutover", "prod", *data))
    stack["_cutover"] = {"data": data, "first": first.stdout}
    return stack


def test_the_cutover_restores_inside_compose_and_a_rerun_changes_nothing(cut_over) -> None:
    stack = cut_over
    assert psql(stack, "prod", "SELECT count(*) FROM item") == str(SOURCE_ITEMS)
    record = json.loads((evidence(stack, "prod", "cutover", "it-cutover") / "run.json").read_text())
    assert record["exit"] == 0
    smoke = json.loads(
        (evidence(stack, "prod", "cutover", "it-cutover") / "outputs" / "smoke.json").read_text()
    )
    assert smoke["verdict"] == "pass", smoke
    again = ok(deploy(stack, "cutover", "prod", *stack["_cutover"]["data"]))
    assert changes(again.stdout) == 0, again.stdout[-3000:]


def test_the_cutovers_rollback_puts_the_baseline_back(cut_over) -> None:
    stack = cut_over
    data = ("evidence_timestamp=it-rollback", "i_know_what_im_doing=true")
    ok(deploy(stack, "rollback", "prod", *data))
    # prod held only prestart's users before the cutover: the baseline has no items
    assert psql(stack, "prod", "SELECT count(*) FROM item") == "0"
    assert revision(stack, "prod") == HEAD
    again = ok(deploy(stack, "rollback", "prod", *data))
    assert changes(again.stdout) == 0, again.stdout[-3000:]


@pytest.fixture(scope="module")
def released(apps_up, code: Path) -> dict:
    """The release revision deployed with prod's code (no configuration change: prestart is not
    re-run by compose), then migrated by turnout."""
    stack = apps_up
    shutil.copy(RELEASE, code / "migrations" / "versions" / RELEASE.name)
    ok(deploy(stack, "migrate", "prod", "evidence_timestamp=it-release"))
    return stack


def test_the_release_upgrades_and_a_rerun_changes_nothing(released) -> None:
    stack = released
    assert revision(stack, "prod") == RELEASED
    record = json.loads((evidence(stack, "prod", "migrate", "it-release") / "run.json").read_text())
    assert record["revisions"] == {"before": HEAD, "after": RELEASED}
    again = ok(deploy(stack, "migrate", "prod", "evidence_timestamp=it-release"))
    assert changes(again.stdout) == 0, again.stdout[-3000:]


def test_the_downgrade_records_the_live_revision_and_a_re_upgrade_fails(released) -> None:
    stack = released
    data = ("evidence_timestamp=it-down", "rollback=-1", "i_know_what_im_doing=true")
    ok(deploy(stack, "migrate", "prod", *data))
    live = revision(stack, "prod")
    record = json.loads((evidence(stack, "prod", "migrate", "it-down") / "run.json").read_text())
    assert live == HEAD
    assert record["revisions"]["after"] == live
    again = ok(deploy(stack, "migrate", "prod", *data))
    assert changes(again.stdout) == 0, again.stdout[-3000:]
    # Planted: prestart not declared one-shot, so "Up" starts it and it upgrades straight back.
    planted = deploy(stack, "migrate", "prod", *data, "migration_services=")
    assert planted.returncode == 1, planted.stdout[-3000:]
    assert f"the database is at {RELEASED} at the end of the run, not {HEAD}" in planted.stdout
    assert revision(stack, "prod") == RELEASED
    # Back where the module's other tests expect prod.
    ok(deploy(stack, "migrate", "prod", "evidence_timestamp=it-down-2", "rollback=-1",
              "i_know_what_im_doing=true"))
    assert revision(stack, "prod") == HEAD


def host_alembic(stack: dict, *args: str) -> str:
    """Alembic of the app run on the host, with its .env's parts (the test's own hand)."""
    import os
    import sys

    env = {**os.environ, **read_env_file(items(stack)["hostmode"]["env_file"])}
    env["PYTHONPATH"] = str(ITEMS_DIR)
    done = subprocess.run(
        [sys.executable, "-m", "alembic", *args], cwd=ITEMS_DIR, env=env, capture_output=True,
        text=True, check=True,
    )
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def on_the_host(stack: dict):
    hostctl = items(stack)["hostmode"]["hostctl"]
    root = items(stack)["hostmode"]["app_root"]
    yield stack
    subprocess.run([hostctl, "stop", root], check=False, timeout=60)


def test_the_app_on_the_host_comes_up_migrates_and_passes_smoke_by_settings(on_the_host) -> None:
    stack = on_the_host
    hostctl, root = items(stack)["hostmode"]["hostctl"], items(stack)["hostmode"]["app_root"]
    subprocess.run([hostctl, "stop", root], check=True, timeout=60)
    ok(deploy(stack, "app_up", "hostmode", "evidence_timestamp=it-host-up"))
    assert subprocess.run([hostctl, "status", root], timeout=30).returncode == 0
    again = ok(deploy(stack, "app_up", "hostmode", "evidence_timestamp=it-host-up"))
    assert changes(again.stdout) == 0, again.stdout[-3000:]
    assert "the app runs on the host" in again.stdout

    # The database one revision behind the code, as before a release of new code.
    host_alembic(stack, "downgrade", BASE)
    data = ("evidence_timestamp=it-host-release", "smoke_writes=1")
    plan = ok(deploy(stack, "migrate", "hostmode", *data, mode="--dry"))
    assert "Will stop the app on the host" in plan.stdout
    assert f"upgrade the database from {BASE} to {HEAD}" in plan.stdout
    ok(deploy(stack, "migrate", "hostmode", *data))
    assert f"{HEAD} (head)" in host_alembic(stack, "current")
    run_dir = STACK_DIR / "hosts" / "itemshost" / "evidence" / "migrate" / "it-host-release"
    record = json.loads((run_dir / "run.json").read_text())
    assert record["exit"] == 0 and record["revisions"] == {"before": BASE, "after": HEAD}
    smoke = json.loads((run_dir / "outputs" / "smoke.json").read_text())
    assert smoke["verdict"] == "pass", smoke
    assert subprocess.run([hostctl, "status", root], timeout=30).returncode == 0
    rerun = ok(deploy(stack, "migrate", "hostmode", *data))
    assert changes(rerun.stdout) == 0, rerun.stdout[-3000:]
