"""Schema release checks on the real stack (S2.4, S2.10): read-only pre-checks, the duplicates
gate and the released dedupe, then the reference app's release revision 0003.

This module owns ``turnout_chk`` on the source cluster (owner ``app``, which gets CREATEDB for the
dedupe's scratch database while the module runs): the reference app's schema at 0002, applied
with Alembic from a copy of the app's source, seeded with the app's own CLI. The DSN (app role)
lives in a 0600 env file under ``<stack dir>/chk_test/``, read on the "host" by the host-side
program; the operations run through the pyinfra CLI over SSH
(``tests/integration/deploys/prechecks_only.py``). The tests build on each other, in file order.
"""

import json
import os
import shutil
import subprocess
import sys
from urllib.parse import quote

import psycopg
import pytest
from conftest import REPO, STACK_DIR, changes, run_pyinfra, superuser

from turnout.hostside.checks import ReadOnly
from turnout.remote import hostside_command, parse_hostside_output
from turnout.settings import DEFAULTS

DB = "turnout_chk"
DEPLOY = ("tests/stack/inventory.py", "tests/integration/deploys/prechecks_only.py")
ROWS = 40
OUTPUTS: list[str] = []


def app_env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "REFAPP_ADMIN_PASSWORD": "chk-admin-pw",
        "REFAPP_USER_PASSWORD": "chk-user-pw",
    }


def refapp(chk: dict, *args: str) -> subprocess.CompletedProcess:
    """The reference app's CLI (or Alembic) from the copy of its source, against ``turnout_chk``."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=chk["src"],
        env=app_env(chk["url"]),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def chk(stack: dict, tmp_path_factory: pytest.TempPathFactory):
    root = STACK_DIR / "chk_test"
    shutil.rmtree(root, ignore_errors=True)
    (root / "outputs").mkdir(parents=True)
    with superuser(stack, "source", "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB} OWNER app")
        conn.execute("ALTER ROLE app CREATEDB")
    password = (STACK_DIR / "secrets" / "pg_source_app").read_text().strip()
    port = stack["pg"]["source"]["port"]
    url = f"postgresql://app:{quote(password, safe='')}@127.0.0.1:{port}/{DB}"
    env_file = root / "chk.env"
    env_file.touch(mode=0o600)
    env_file.write_text(f'CHK_URL="{url}"\n')
    src = tmp_path_factory.mktemp("refapp-release") / "refapp"
    shutil.copytree(
        REPO / "tests" / "fixtures" / "refapp", src, ignore=shutil.ignore_patterns("__pycache__")
    )
    info = {"root": root, "env_file": str(env_file), "url": url, "src": src, "stack": stack}
    refapp(info, "alembic", "upgrade", "head")
    refapp(info, "refapp", "seed", "--rows", str(ROWS), "--data-dir", str(root / "assets"))
    yield info
    with superuser(stack, "source", "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute("ALTER ROLE app NOCREATEDB")
        leftovers = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'turnout_scratch_%'"
        ).fetchall()
    assert leftovers == []  # every scratch database was dropped
    shutil.rmtree(root, ignore_errors=True)


def connect(chk: dict) -> psycopg.Connection:
    return psycopg.connect(chk["url"], autocommit=True)


def fact(chk: dict, action: str, **params) -> dict:
    """The shipped program on the "host" (this machine), as a fact runs it; the DSN comes from
    the env file only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHK_", "PG", "DATABASE"))}
    params = {"dsn_env": "CHK_URL", "env_file": chk["env_file"], **params}
    command = hostside_command(action, params, python=chk["stack"]["python"]).get_raw_value()
    result = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    OUTPUTS.append(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr
    return parse_hostside_output(result.stdout.splitlines())


def deploy(chk: dict, *data: str, dry: bool = False, verbose: bool = False):
    base = {
        "chk_env_file": chk["env_file"],
        "chk_outputs": str(chk["root"] / "outputs"),
    }
    options = []
    for item in [*(f"{k}={v}" for k, v in base.items()), *data]:
        options += ["--data", item]
    flags = ["--dry" if dry else "-y", *(["-v"] if verbose else [])]
    result = run_pyinfra(*flags, *DEPLOY, "--limit", "stack-staging", *options)
    OUTPUTS.append(result.stdout)
    return result


def report(chk: dict, name: str) -> dict:
    return json.loads((chk["root"] / "outputs" / name).read_text())


def meters(chk: dict) -> list[tuple]:
    with connect(chk) as conn:
        return conn.execute("SELECT * FROM meters ORDER BY id").fetchall()


# Pre-checks ---------------------------------------------------------------------------------------


def test_prechecks_pass_on_the_seeded_database(chk: dict) -> None:
    found = fact(chk, "prechecks", checks=list(DEFAULTS["prechecks"]), limit=5)
    assert found["ok"] and found["passed"] and found["read_only"] == "on"
    assert [row["name"] for row in found["checks"]] == [
        "meter_slots_unique",
        "active_admin",
        "no_duplicate_emails",
    ]
    assert found["checks"][0]["result"] == f"count {ROWS}, distinct {ROWS}"
    plan = deploy(chk, "chk_steps=prechecks", dry=True)
    assert plan.returncode == 0, plan.stdout
    assert "Will check CHK_URL read-only (before, 3 check(s)): meter_slots_unique" in plan.stdout
    assert "active_admin [users(role=admin, is_active=true): at least 1 row(s)]: now 1 row(s)" in (
        plan.stdout
    )
    assert not (chk["root"] / "outputs" / "prechecks_before.json").exists()  # --dry wrote nothing
    run = deploy(chk, "chk_steps=prechecks")
    assert run.returncode == 0, run.stdout
    kept = report(chk, "prechecks_before.json")
    assert kept["verdict"] == "pass" and kept["read_only"] == "on"
    assert changes(deploy(chk, "chk_steps=prechecks").stdout) == 0  # unchanged report: no change


def test_the_read_only_transaction_refuses_a_write(chk: dict) -> None:
    with connect(chk) as conn, ReadOnly(conn, 2000):
        assert conn.execute("SHOW transaction_read_only").fetchone()[0] == "on"
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "2s"
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM meters")
    assert len(meters(chk)) == ROWS


def test_prechecks_fail_with_the_offending_values(chk: dict) -> None:
    with connect(chk) as conn:
        conn.execute(
            "INSERT INTO users (email, password_hash, role, is_active) "
            "VALUES ('Admin@Example.TEST', 'x', 'user', true)"
        )
        conn.execute("UPDATE users SET is_active = false WHERE role = 'admin'")
    try:
        run = deploy(chk, "chk_steps=prechecks")
        assert run.returncode != 0
        assert (
            "turnout: pre-check active_admin failed (users(role=admin, is_active=true): at least "
            "1 row(s); 0 row(s)) (1 more failing)" in run.stdout
        ), run.stdout
        kept = report(chk, "prechecks_before.json")
        assert kept["verdict"] == "fail"
        emails = next(row for row in kept["checks"] if row["name"] == "no_duplicate_emails")
        assert emails["passed"] is False
        assert emails["offending"][0]["values"] == {"lower(email)": "admin@example.test"}
        assert emails["offending"][0]["count"] == 2 and len(emails["offending"][0]["ids"]) == 2
        only_emails = deploy(
            chk, "chk_steps=prechecks", "chk_prechecks=e=duplicates:users(lower(email))"
        )
        assert "turnout: pre-check e failed" in only_emails.stdout
        assert "lower(email)='admin@example.test' ×2" in only_emails.stdout
    finally:
        with connect(chk) as conn:
            conn.execute("DELETE FROM users WHERE email = 'Admin@Example.TEST'")
            conn.execute("UPDATE users SET is_active = true WHERE role = 'admin'")
    assert deploy(chk, "chk_steps=prechecks").returncode == 0


# The duplicates gate and the dedupe --------------------------------------------------------------


def test_gate_says_no_duplicates(chk: dict) -> None:
    run = deploy(chk, "chk_steps=gate")
    assert run.returncode == 0, run.stdout
    assert "NO_DUPLICATES" in run.stdout
    kept = report(chk, "unique_gate.json")
    assert kept["verdict"] == "NO_DUPLICATES" and kept["groups"] == []
    assert kept["constraint"] == "uq_meter_unit_kind_slot"


def test_gate_stops_on_planted_duplicates_and_touches_nothing(chk: dict) -> None:
    refapp(
        chk,
        "refapp",
        "seed",
        "--rows",
        str(ROWS),
        "--data-dir",
        str(chk["root"] / "assets"),
        "--meter-duplicates",
        "3",
    )
    before = meters(chk)
    assert len(before) == ROWS + 3
    plan = deploy(chk, "chk_steps=gate", dry=True)
    assert "now 3 duplicate group(s), 3 extra row(s)" in plan.stdout, plan.stdout
    run = deploy(chk, "chk_steps=gate")
    assert run.returncode != 0
    assert (
        "turnout: duplicates gate: 3 group(s) of public.meters(unit_id, kind, slot) would "
        "block uq_meter_unit_kind_slot" in run.stdout
    ), run.stdout
    kept = report(chk, "unique_gate.json")
    assert kept["verdict"] == "DUPLICATES" and kept["groups_count"] == 3
    assert sorted(i for g in kept["groups"] for i in g["ids"][1:]) == [ROWS + 1, ROWS + 2, ROWS + 3]
    assert meters(chk) == before


def test_dedupe_is_refused_without_the_release(chk: dict) -> None:
    before = meters(chk)
    run = deploy(chk, "chk_steps=dedupe")
    assert run.returncode != 0
    assert "refusing dedupe (deletes duplicate rows): it is destructive and" in (run.stdout), (
        run.stdout
    )
    assert meters(chk) == before
    assert not (chk["root"] / "outputs" / "dedupe.json").exists()


def test_released_dedupe_deletes_the_extra_rows_then_the_release_applies(chk: dict) -> None:
    dump = chk["root"] / "backup.dump"
    password = (STACK_DIR / "secrets" / "pg_source_app").read_text().strip()
    subprocess.run(
        [
            "pg_dump",
            "-Fc",
            "-h",
            "127.0.0.1",
            "-p",
            str(chk["stack"]["pg"]["source"]["port"]),
            "-U",
            "app",
            "-d",
            DB,
            "-f",
            str(dump),
        ],
        env={**os.environ, "PGPASSWORD": password},
        check=True,
        timeout=120,
    )
    before = {row[0]: row for row in meters(chk)}
    release = ("chk_steps=dedupe,gate", f"chk_dump={dump}", "i_know_what_im_doing=true")
    plan = deploy(chk, *release, dry=True)
    assert (
        f"Will delete 3 row(s) of public.meters(unit_id, kind, slot) (3 group(s), the lowest "
        f"id kept), first on a scratch database restored from {dump}" in plan.stdout
    ), plan.stdout
    assert f"keep 1, delete [{ROWS + 1}]" in plan.stdout
    assert len(meters(chk)) == ROWS + 3  # --dry deleted nothing
    run = deploy(chk, *release)
    assert run.returncode == 0, run.stdout
    assert "NO_DUPLICATES" in run.stdout
    after = {row[0] for row in meters(chk)}
    assert set(before) - after == {ROWS + 1, ROWS + 2, ROWS + 3}
    kept = report(chk, "dedupe.json")
    assert kept["applied"] is True and kept["deleted_ids"] == [ROWS + 1, ROWS + 2, ROWS + 3]
    assert kept["copy"]["how"] == "scratch database restored from the dump"
    assert kept["copy"]["deleted"] == 3 and kept["copy"]["constraint_added"] is True
    assert kept["copy"]["dropped"] is True
    rows = {row["id"]: row for row in kept["deleted_rows"]}
    for deleted_id in (ROWS + 1, ROWS + 2, ROWS + 3):
        _, user_id, unit_id, kind, slot, value = before[deleted_id]
        assert rows[deleted_id] == {
            "id": deleted_id,
            "user_id": user_id,
            "unit_id": unit_id,
            "kind": kind,
            "slot": slot,
            "value": value,
        }
    assert oct((chk["root"] / "outputs" / "dedupe.json").stat().st_mode & 0o777) == "0o600"
    # Rerun: nothing left to delete, the gate's report unchanged.
    assert changes(deploy(chk, *release).stdout) == 0
    # The release revision now applies (and its downgrade works).
    shutil.copy(
        REPO / "tests" / "fixtures" / "refapp" / "releases" / "0003_unique_meter_slot.py",
        chk["src"] / "migrations" / "versions",
    )
    refapp(chk, "alembic", "upgrade", "head")
    found = fact(
        chk,
        "duplicate_groups",
        table="meters",
        columns=["unit_id", "kind", "slot"],
        constraint="uq_meter_unit_kind_slot",
    )
    assert found["constraint_present"] == "constraint"
    gate = deploy(chk, "chk_steps=gate,dedupe", "i_know_what_im_doing=true", verbose=True)
    assert changes(gate.stdout) == 0
    assert "noop: uq_meter_unit_kind_slot already present on public.meters (constraint)" in (
        gate.stdout
    )
    assert "noop: nothing to dedupe: no duplicate groups" in gate.stdout
    refapp(chk, "alembic", "downgrade", "0002")
    assert (
        fact(
            chk,
            "duplicate_groups",
            table="meters",
            columns=["unit_id", "kind", "slot"],
            constraint="uq_meter_unit_kind_slot",
        )["constraint_present"]
        is None
    )


# Quoted names: the orphan relations accept what the pre-checks accept ---------------------------


def test_an_orphan_relation_on_quoted_table_names_is_counted(chk: dict) -> None:
    """A table named ``user`` (a reserved word: only quoted) and a mixed-case child with a
    column holding a space; the settings take the relation, the pre-checks take the same table,
    and the host-side orphan check counts on the real database."""
    from turnout.settings import load_settings

    with connect(chk) as conn:
        conn.execute('CREATE TABLE "user" (id integer PRIMARY KEY)')
        conn.execute('CREATE TABLE "Sessions" (id serial PRIMARY KEY, "User Id" integer)')
        conn.execute('INSERT INTO "user" VALUES (1), (2)')
        conn.execute('INSERT INTO "Sessions" ("User Id") VALUES (1), (3), (3), (NULL), (2)')
    try:
        settings = load_settings(
            {
                "orphan_relations": '"Sessions"."User Id"->"user".id',
                "prechecks": 'user_ids=unique:"user"(id)',
            }
        )
        assert settings.orphan_relations == ('"Sessions"."User Id"->"user".id',)
        found = fact(chk, "orphans", relations=list(settings.orphan_relations), foreign_keys=False)
        assert found["checks"] == [
            {
                "name": 'declared:"Sessions"."User Id"->"user".id',
                "child": 'public."Sessions"',
                "columns": ["User Id"],
                "parent": "public.user",  # as the catalog displays it
                "parent_columns": ["id"],
                "orphans": 2,
            }
        ]
        checked = fact(chk, "prechecks", checks=list(settings.prechecks), limit=5)
        assert checked["passed"] and checked["checks"][0]["name"] == "user_ids"
    finally:
        with connect(chk) as conn:
            conn.execute('DROP TABLE "Sessions", "user"')


def test_no_secret_in_outputs_or_evidence(chk: dict, stack_secrets: list[str]) -> None:
    texts = list(OUTPUTS)
    texts += [p.read_text(errors="replace") for p in (chk["root"] / "outputs").iterdir()]
    assert texts
    for text in texts:
        for secret in stack_secrets:
            assert secret not in text
