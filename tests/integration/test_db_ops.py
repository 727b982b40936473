"""Database facts, dump and restore on the real stack.

This module owns three databases it creates and drops: ``turnout_dbt`` (source cluster, clean
data: dumped and restored), ``turnout_dbt_dirty`` (source cluster: planted orphans, pg_trgm,
alembic_version, tables to lock) and ``turnout_dbt_target`` (staging cluster, owned by ``app``:
the restore target). Their app-role DSNs live in a 0600 env file under ``<stack dir>/db_test/``,
read on the "host" by the host-side program, which runs exactly as shipped (directly, or through
the pyinfra CLI over SSH for the operations). The tests run in file order and build on each
other: the dump made by the pyinfra run is the one the later restore tests use.
"""

import hashlib
import os
import re
import shutil
import subprocess
import time
from urllib.parse import quote

import psycopg
import pytest
from conftest import STACK_DIR, ArgvWatcher, changes, run_pyinfra, superuser

from turnout.remote import hostside_command, parse_hostside_output

SRC_DB, DIRTY_DB, TARGET_DB = "turnout_dbt", "turnout_dbt_dirty", "turnout_dbt_target"
DEPLOY = ("tests/stack/inventory.py", "tests/integration/deploys/db_ops.py")

SOURCE_SCHEMA = """
CREATE SCHEMA extra;
CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL UNIQUE);
CREATE TABLE units (id serial PRIMARY KEY);
CREATE TABLE meters (
    id serial PRIMARY KEY, user_id int REFERENCES users (id), unit_id int, kind text, slot int
);
CREATE UNIQUE INDEX meters_unit_kind_slot ON meters (unit_id, kind, slot);
CREATE TABLE parts (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE part_refs (
    id serial PRIMARY KEY, a int, b int, CONSTRAINT part_refs_part_fkey FOREIGN KEY (a, b)
    REFERENCES parts (a, b)
);
CREATE TABLE extra.things (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);
CREATE TABLE seqgap (id serial PRIMARY KEY);
INSERT INTO users (email) SELECT 'user' || g || '@example.test' FROM generate_series(1, 25) g;
INSERT INTO units SELECT FROM generate_series(1, 10);
INSERT INTO meters (user_id, unit_id, kind, slot)
    SELECT g % 25 + 1, g % 10 + 1, 'power', g FROM generate_series(1, 60) g;
INSERT INTO parts SELECT g, g FROM generate_series(1, 5) g;
INSERT INTO part_refs (a, b) SELECT g % 5 + 1, g % 5 + 1 FROM generate_series(1, 8) g;
INSERT INTO extra.things (name) SELECT 'thing ' || g FROM generate_series(1, 7) g;
INSERT INTO seqgap (id) VALUES (100);
"""
SOURCE_COUNTS = {
    "public.users": 25,
    "public.units": 10,
    "public.meters": 60,
    "public.parts": 5,
    "public.part_refs": 8,
    "extra.things": 7,
    "public.seqgap": 1,
}

DIRTY_SCHEMA = """
CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE);
CREATE TABLE units (id serial PRIMARY KEY);
CREATE TABLE meters (id serial PRIMARY KEY, user_id int REFERENCES users (id), unit_id int);
CREATE TABLE parts (a int, b int, PRIMARY KEY (a, b));
CREATE TABLE part_refs (a int, b int, FOREIGN KEY (a, b) REFERENCES parts (a, b));
CREATE TABLE big (id int);
CREATE TABLE never_analyzed (id int) WITH (autovacuum_enabled = false);
CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('0002');
INSERT INTO users (email) SELECT 'u' || g FROM generate_series(1, 5) g;
INSERT INTO units SELECT FROM generate_series(1, 3);
INSERT INTO meters (user_id, unit_id) SELECT g % 5 + 1, g % 3 + 1 FROM generate_series(1, 10) g;
INSERT INTO parts VALUES (1, 1), (2, 2);
INSERT INTO part_refs VALUES (1, 1), (2, 2), (NULL, 7);
INSERT INTO big SELECT generate_series(1, 1000);
INSERT INTO never_analyzed SELECT generate_series(1, 5);
ANALYZE big;
"""
# Planted as superuser with triggers (and so FK checks) off, the way a bad bulk load does it.
DIRTY_ORPHANS = """
SET session_replication_role = replica;
INSERT INTO meters (user_id, unit_id) VALUES (999, 1), (998, 2), (997, 3);
INSERT INTO meters (user_id, unit_id) VALUES (1, 77), (2, 78), (NULL, 79), (NULL, NULL);
INSERT INTO part_refs VALUES (9, 9), (9, 9), (1, 2);
"""

OUTPUTS: list[str] = []


def app_url(role: str, port: int, dbname: str) -> str:
    password = (STACK_DIR / "secrets" / f"pg_{role}_app").read_text().strip()
    # Percent-encoded: the stack's passwords hold @ : / % # ' " and a space.
    return f"postgresql+psycopg://app:{quote(password, safe='')}@127.0.0.1:{port}/{dbname}"


def app_connect(dbt: dict, env_name: str) -> psycopg.Connection:
    return psycopg.connect(dbt["urls"][env_name].replace("+psycopg", ""), autocommit=True)


@pytest.fixture(scope="module")
def dbt(stack: dict):
    root = STACK_DIR / "db_test"
    shutil.rmtree(root, ignore_errors=True)
    (root / "logs").mkdir(parents=True)
    for role, names in (("source", (SRC_DB, DIRTY_DB)), ("staging", (TARGET_DB,))):
        with superuser(stack, role, "postgres") as conn:
            for name in names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {name} OWNER app")
    urls = {
        "DBT_SOURCE": app_url("source", stack["pg"]["source"]["port"], SRC_DB),
        "DBT_DIRTY": app_url("source", stack["pg"]["source"]["port"], DIRTY_DB),
        "DBT_TARGET": app_url("staging", stack["pg"]["staging"]["port"], TARGET_DB),
    }
    env_file = root / "dbt.env"
    env_file.touch(mode=0o600)
    env_file.write_text("".join(f"{key}={value}\n" for key, value in urls.items()))
    info = {"root": root, "env_file": str(env_file), "urls": urls, "stack": stack}
    with app_connect(info, "DBT_SOURCE") as conn:
        conn.execute(SOURCE_SCHEMA)
    with app_connect(info, "DBT_DIRTY") as conn:
        conn.execute(DIRTY_SCHEMA)
    with superuser(stack, "source", DIRTY_DB) as conn:
        conn.execute(DIRTY_ORPHANS)
        conn.execute("CREATE EXTENSION pg_trgm")
    yield info
    for role, names in (("source", (SRC_DB, DIRTY_DB)), ("staging", (TARGET_DB,))):
        with superuser(stack, role, "postgres") as conn:
            for name in names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    shutil.rmtree(root, ignore_errors=True)


def hostside(dbt: dict, action: str, params: dict) -> tuple[subprocess.CompletedProcess, dict]:
    """The shipped program on the "host" (this machine), as a fact or an op runs it; DSNs come
    from the env file only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DBT_", "PG", "DATABASE"))}
    params = {"env_file": dbt["env_file"], **params}
    command = hostside_command(action, params, python=dbt["stack"]["python"]).get_raw_value()
    result = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    OUTPUTS.append(result.stdout + result.stderr)
    return result, parse_hostside_output(result.stdout.splitlines())


def fact(dbt: dict, action: str, **params) -> dict:
    result, out = hostside(dbt, action, params)
    assert result.returncode == 0, result.stderr  # facts always exit 0
    return out


def deploy(dbt: dict, *data: str, host: str = "stack-staging", dry: bool = False):
    root = dbt["root"]
    base = {
        "dbt_env_file": dbt["env_file"],
        "dbt_source_env": "DBT_SOURCE",
        "dbt_target_env": "DBT_TARGET",
        "dbt_dest": str(root / "artifacts" / "source.dump"),
        "dbt_marker": str(root / "state" / "restored.json"),
        "dbt_log": str(root / "logs" / "db.log"),
    }
    options = []
    for item in [*(f"{k}={v}" for k, v in base.items()), *data]:
        options += ["--data", item]
    result = run_pyinfra("--dry" if dry else "-y", *DEPLOY, "--limit", host, *options)
    OUTPUTS.append(result.stdout)
    return result


def table_counts(stack: dict, role: str, dbname: str) -> dict[str, int]:
    """Every user table of a database with its exact row count (the test's own view)."""
    with superuser(stack, role, dbname) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname !~ '^pg_toast'"
        ).fetchall()
        return {
            f"{schema}.{table}": conn.execute(
                psycopg.sql.SQL("SELECT count(*) FROM {}").format(
                    psycopg.sql.Identifier(schema, table)
                )
            ).fetchone()[0]
            for schema, table in tables
        }


# Facts --------------------------------------------------------------------------------------------


def test_row_counts_are_exact_and_names_normalised(dbt: dict) -> None:
    out = fact(dbt, "row_counts", dsn_env="DBT_SOURCE", tables=None)
    assert out["ok"] is True and out["database"] == SRC_DB
    assert out["tables"] == {
        t: {"count": n, "exact": True, "relation": "table"} for t, n in SOURCE_COUNTS.items()
    }

    out = fact(dbt, "row_counts", dsn_env="DBT_SOURCE", tables=["users", "extra.things"])
    assert out["tables"] == {
        "public.users": {"count": 25, "exact": True, "relation": "table"},
        "extra.things": {"count": 7, "exact": True, "relation": "table"},
    }
    out = fact(dbt, "row_counts", dsn_env="DBT_SOURCE", tables=["users", "nope"])
    assert out == {"ok": False, "error": f"table public.nope does not exist in {SRC_DB}"}

    # The DSN from the staging host's real server-side .env (the source app database).
    staging_env = dbt["stack"]["hosts"]["staging"]["env_file"]
    out = fact(dbt, "row_counts", dsn_env="SOURCE_DATABASE_URL", env_file=staging_env)
    assert out["ok"] is True and out["database"] == "app"


def test_row_counts_fall_back_to_the_estimate_when_counting_times_out(dbt: dict) -> None:
    with superuser(dbt["stack"], "source", DIRTY_DB) as locker:
        with locker.transaction():
            locker.execute("LOCK TABLE big, never_analyzed IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            out = fact(dbt, "row_counts", dsn_env="DBT_DIRTY", tables=None, timeout_ms=300)
            elapsed = time.monotonic() - started
    assert out["ok"] is True, out
    tables = out["tables"]
    assert tables["public.big"]["count"] == 1000  # ANALYZEd: reltuples is exact here
    assert tables["public.big"]["exact"] is False
    assert "longer than 300 ms" in tables["public.big"]["note"]
    assert tables["public.never_analyzed"]["count"] == 0
    assert tables["public.never_analyzed"]["exact"] is False
    assert "never analyzed" in tables["public.never_analyzed"]["note"]
    assert tables["public.users"] == {"count": 5, "exact": True, "relation": "table"}
    # The lock is held for the whole call: a count that waited for it would never return (fact()
    # gives up after 120 s). The bound is loose on purpose: a loaded 2-core machine is slow.
    assert elapsed < 60


def test_orphans_from_foreign_keys_and_declared_relations(dbt: dict) -> None:
    out = fact(
        dbt,
        "orphans",
        dsn_env="DBT_DIRTY",
        relations=["meters.unit_id->units.id", "public.meters.user_id -> public.users.id"],
    )
    assert out["ok"] is True, out
    checks = {check["name"]: check for check in out["checks"]}
    assert checks["declared:meters.unit_id->units.id"] == {
        "name": "declared:meters.unit_id->units.id",
        "child": "public.meters",
        "columns": ["unit_id"],
        "parent": "public.units",
        "parent_columns": ["id"],
        "orphans": 3,  # units 77, 78, 79 do not exist (a NULL unit_id is no orphan)
    }
    assert checks["declared:public.meters.user_id->public.users.id"]["orphans"] == 3
    assert checks["fk:meters_user_id_fkey"] == {
        "name": "fk:meters_user_id_fkey",
        "child": "public.meters",
        "columns": ["user_id"],
        "parent": "public.users",
        "parent_columns": ["id"],
        "orphans": 3,
    }
    composite = checks["fk:part_refs_a_b_fkey"]
    assert composite["columns"] == ["a", "b"] and composite["parent_columns"] == ["a", "b"]
    assert composite["orphans"] == 3  # (9, 9) twice and (1, 2); (NULL, 7) is not an orphan

    out = fact(dbt, "orphans", dsn_env="DBT_DIRTY", relations=[], foreign_keys=False)
    assert out["checks"] == []
    out = fact(dbt, "orphans", dsn_env="DBT_DIRTY", relations=["meters.nope->units.id"])
    assert out == {
        "ok": False,
        "error": f"relation meters.nope->units.id: column public.meters.nope does not exist "
        f"in {DIRTY_DB}",
    }
    out = fact(dbt, "orphans", dsn_env="DBT_DIRTY", relations=["meters.unit_id->nope.id"])
    assert out["error"] == f"table public.nope does not exist in {DIRTY_DB}"
    out = fact(dbt, "orphans", dsn_env="DBT_DIRTY", relations=["meters->units"])
    assert out["ok"] is False and "child_table.column->parent_table.column" in out["error"]


def test_constraints_by_name(dbt: dict) -> None:
    out = fact(dbt, "constraints", dsn_env="DBT_SOURCE")
    assert out["ok"] is True, out
    assert out["unique_constraints"] == {
        "users_email_key": {"table": "public.users", "columns": ["email"]}
    }
    assert out["primary_keys"]["parts_pkey"] == {"table": "public.parts", "columns": ["a", "b"]}
    assert out["unique_indexes"]["meters_unit_kind_slot"] == {
        "table": "public.meters",
        "columns": ["unit_id", "kind", "slot"],
        "primary": False,
        "partial": False,
        "backs_constraint": False,
        "constraint": None,
    }
    assert out["unique_indexes"]["users_email_key"]["backs_constraint"] is True
    assert out["unique_indexes"]["things_pkey"]["table"] == "extra.things"
    assert out["foreign_keys"] == {
        "meters_user_id_fkey": {
            "table": "public.meters",
            "columns": ["user_id"],
            "references": "public.users",
            "ref_columns": ["id"],
        },
        "part_refs_part_fkey": {
            "table": "public.part_refs",
            "columns": ["a", "b"],
            "references": "public.parts",
            "ref_columns": ["a", "b"],
        },
    }


def test_extensions_alembic_revision_and_sizes(dbt: dict) -> None:
    dirty = fact(dbt, "extensions", dsn_env="DBT_DIRTY")
    assert dirty["ok"] is True and "pg_trgm" in dirty["installed"]
    assert dirty["installed"]["plpgsql"] == "1.0"
    clean = fact(dbt, "extensions", dsn_env="DBT_SOURCE")
    assert "pg_trgm" not in clean["installed"] and "pg_trgm" in clean["available"]

    assert fact(dbt, "alembic_revision", dsn_env="DBT_DIRTY")["revisions"] == ["0002"]
    assert fact(dbt, "alembic_revision", dsn_env="DBT_SOURCE")["revisions"] == []

    sizes = fact(dbt, "table_sizes", dsn_env="DBT_SOURCE", tables=["users", "extra.things"])
    assert set(sizes["tables"]) == {"public.users", "extra.things"}
    assert all(item["total_bytes"] > 8192 for item in sizes["tables"].values())


def test_fact_errors_are_clear(dbt: dict) -> None:
    out = fact(dbt, "row_counts", dsn_env="DBT_NOPE")
    assert out == {
        "ok": False,
        "error": f"DBT_NOPE is not set in the environment or {dbt['env_file']}",
    }
    out = fact(dbt, "dump_info", path=str(dbt["root"] / "absent.dump"))
    assert out == {
        "ok": True,
        "path": str(dbt["root"] / "absent.dump"),
        "exists": False,
        "full_dump_reads": 0,
    }


# Dump and restore through pyinfra ----------------------------------------------------------------


def test_dump_and_restore_plan_run_and_rerun(dbt: dict) -> None:
    stack, root = dbt["stack"], dbt["root"]
    dest, marker = root / "artifacts" / "source.dump", root / "state" / "restored.json"
    port = stack["pg"]["source"]["port"]

    dry = deploy(dbt, dry=True)
    assert dry.returncode == 0, dry.stdout[-3000:]
    # cheap catalog estimates for the plan, labelled as such (no table is counted to plan)
    assert re.search(
        rf"Will dump {SRC_DB} at 127.0.0.1:{port} \(7 tables, ~\d+ rows estimated, "
        r"database size \d+\.\d (KiB|MiB)\)",
        dry.stdout,
    ), dry.stdout[-3000:]
    assert f"as custom to {dest}" in dry.stdout
    assert (
        f"Will restore the dump made by the dump step ({dest}) into {TARGET_DB} at "
        f"127.0.0.1:{stack['pg']['staging']['port']}" in dry.stdout
    )
    assert not dest.exists() and not marker.exists()
    assert table_counts(stack, "staging", TARGET_DB) == {}

    with ArgvWatcher() as watcher:
        real = deploy(dbt)
    assert real.returncode == 0, real.stdout[-3000:]
    assert changes(real.stdout) == 2
    assert table_counts(stack, "staging", TARGET_DB) == SOURCE_COUNTS
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert not list(dest.parent.glob("*.partial-*"))

    info = fact(dbt, "dump_info", path=str(dest), verify=True)
    assert info["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert info["format"] == "custom" and info["complete"] is True and info["recorded"] is True
    assert info["tables"] == 7 and "extra.things" in info["table_names"]
    sidecar = fact(dbt, "restore_marker", marker=str(dest) + ".sha256")  # any JSON file reads
    assert sidecar["sha256"] == info["sha256"] and sidecar["size"] == dest.stat().st_size

    restored = fact(dbt, "restore_marker", marker=str(marker))
    assert restored["dump_sha256"] == info["sha256"]
    assert restored["target"] == f"127.0.0.1:{stack['pg']['staging']['port']}/{TARGET_DB}"
    # RELIABILITY 12: a sequence behind its column's data is set past it in the restore's
    # transaction, and named in the marker.
    assert restored["sequences_advanced"] == [
        {
            "sequence": "public.seqgap_id_seq",
            "column": "public.seqgap.id",
            "max": 100,
            "next_value": 1,
        }
    ]
    assert restored["sequence_problems"] == []
    assert oct(marker.stat().st_mode & 0o777) == "0o600"

    rerun = deploy(dbt)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert changes(rerun.stdout) == 0

    tools = [
        line
        for line in watcher.seen
        if line.split() and line.split()[0].endswith(("pg_dump", "pg_restore"))
    ]
    secrets = [url.split(":")[2].split("@")[0] for url in dbt["urls"].values()]
    assert not [line for line in watcher.seen if any(s in line for s in secrets)]
    assert not [line for line in tools if "password" in line.lower()]


def test_directory_dump_with_jobs(dbt: dict) -> None:
    dest = dbt["root"] / "artifacts" / "source.dir"
    log = dbt["root"] / "logs" / "dir.log"
    result, out = hostside(
        dbt,
        "pg_dump",
        {
            "dsn_env": "DBT_SOURCE",
            "format": "directory",
            "jobs": 2,
            "dest": str(dest),
            "log_path": str(log),
            "timeout_s": 120,
        },
    )
    assert result.returncode == 0, result.stderr
    assert out["format"] == "directory" and out["tables"] == 7 and out["complete"] is True
    digest, size = hashlib.sha256(), 0
    for path in sorted(dest.iterdir()):
        content = path.read_bytes()
        digest.update(f"{path.name}\0{len(content)}\0".encode() + content)
        size += len(content)
    info = fact(dbt, "dump_info", path=str(dest), verify=True)
    assert info["sha256"] == out["sha256"] == digest.hexdigest() and info["size"] == size
    assert info["complete"] is True
    assert oct(dest.stat().st_mode & 0o777) == "0o700"
    assert "--format=directory --jobs=2" in log.read_text()


def test_failed_dump_keeps_nothing(dbt: dict) -> None:
    dest = dbt["root"] / "artifacts" / "killed.dump"
    result, out = hostside(
        dbt, "pg_dump", {"dsn_env": "DBT_SOURCE", "dest": str(dest), "timeout_s": 0.001}
    )
    assert result.returncode == 1 and "killed by the watchdog" in out["error"]
    assert out["error"].startswith(f"dump to {dest} failed, nothing kept: pg_dump timed out")
    assert not [p.name for p in dest.parent.iterdir() if p.name.startswith("killed.dump")]


def test_truncated_dump_is_not_complete(dbt: dict) -> None:
    good = (dbt["root"] / "artifacts" / "source.dump").read_bytes()
    truncated = dbt["root"] / "artifacts" / "truncated.dump"
    truncated.write_bytes(good[:-40])  # the TOC is intact, the last data block is cut
    listed = fact(dbt, "dump_info", path=str(truncated))
    # pg_restore --list still succeeds (RELIABILITY 9): only the full read-back tells.
    assert listed["format"] == "custom" and listed["tables"] == 7 and listed["complete"] is None
    verified = fact(dbt, "dump_info", path=str(truncated), verify=True)
    assert verified["complete"] is False and "read-back failed" in verified["problem"]
    # The dump op replaces a dump it cannot prove verified (no matching .sha256 record) without
    # reading it to decide.
    dry = deploy(dbt, f"dbt_dest={truncated}", "dbt_marker=", dry=True)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert (
        f"to {truncated}, replacing the unverified dump there (no matching .sha256 record)"
        in dry.stdout
    )


def test_restore_terminates_sessions_that_would_block_it(dbt: dict) -> None:
    marker = dbt["root"] / "state" / "direct.json"
    with app_connect(dbt, "DBT_TARGET") as blocker:
        blocker.execute("BEGIN")
        blocker.execute("SELECT count(*) FROM users")  # holds a lock --clean must wait for
        result, out = hostside(
            dbt,
            "pg_restore",
            {
                "dump": str(dbt["root"] / "artifacts" / "source.dump"),
                "dsn_env": "DBT_TARGET",
                "marker": str(marker),
                "log_path": str(dbt["root"] / "logs" / "direct.log"),
                "timeout_s": 60,
            },
        )
        assert result.returncode == 0, result.stderr
        assert out["terminated_backends"] == 1 and out["not_terminated"] == []
        with pytest.raises(psycopg.OperationalError):
            blocker.execute("SELECT 1")
    assert table_counts(dbt["stack"], "staging", TARGET_DB) == SOURCE_COUNTS
    assert marker.exists()


def test_failed_restore_is_rolled_back_and_keeps_the_marker(dbt: dict) -> None:
    root, stack = dbt["root"], dbt["stack"]
    marker = root / "state" / "direct.json"
    dirty = root / "artifacts" / "dirty.dump"
    result, _ = hostside(dbt, "pg_dump", {"dsn_env": "DBT_DIRTY", "dest": str(dirty)})
    assert result.returncode == 0, result.stderr
    before = table_counts(stack, "staging", TARGET_DB)
    assert marker.exists()
    kept = marker.read_bytes()

    # Reads back fine, fails while restoring (its orphans break the foreign keys).
    result, out = hostside(
        dbt,
        "pg_restore",
        {"dump": str(dirty), "dsn_env": "DBT_TARGET", "marker": str(marker), "timeout_s": 60},
    )
    assert result.returncode == 1 and out["ok"] is False
    assert result.stderr.strip().count("\n") == 0
    assert "failed and was rolled back" in result.stderr
    # The real cause, not the command: the database's own error.
    assert "psql exited 3: ERROR:  " in result.stderr, result.stderr
    assert "Command was" not in result.stderr
    assert marker.read_bytes() == kept  # the last good restore is still what the database holds
    assert table_counts(stack, "staging", TARGET_DB) == before

    # A truncated dump is refused before the target is touched.
    result, out = hostside(
        dbt,
        "pg_restore",
        {
            "dump": str(root / "artifacts" / "truncated.dump"),
            "dsn_env": "DBT_TARGET",
            "marker": str(marker),
            "timeout_s": 60,
        },
    )
    assert result.returncode == 1 and "is unreadable, target untouched" in out["error"]
    assert table_counts(stack, "staging", TARGET_DB) == before
    result, out = hostside(
        dbt,
        "pg_restore",
        {"dump": str(root / "nope.dump"), "dsn_env": "DBT_TARGET", "marker": str(marker)},
    )
    assert (
        out["error"]
        == f"dump {root / 'nope.dump'} does not exist on this host; run the dump step first"
    )


def test_drop_schema_is_refused_without_release_and_on_prod(dbt: dict) -> None:
    stack, marker = dbt["stack"], dbt["root"] / "state" / "restored.json"
    marker.unlink()  # so that only the guard can stop the restore
    before = table_counts(stack, "staging", TARGET_DB)

    refused = deploy(
        dbt,
        "dbt_dest=",
        f"dbt_dump={dbt['root'] / 'artifacts' / 'source.dump'}",
        "dbt_drop_schema=true",
    )
    assert refused.returncode != 0
    assert (
        "refusing the restore with drop_schema (drops schema public): it is destructive and "
        "i_know_what_im_doing is false; read the --dry plan, then re-run with --data "
        "i_know_what_im_doing=true"
        in refused.stdout
    )
    on_prod = deploy(
        dbt,
        "dbt_dest=",
        f"dbt_dump={dbt['root'] / 'artifacts' / 'source.dump'}",
        "dbt_drop_schema=true",
        "i_know_what_im_doing=true",
        host="stack-prod",
    )
    assert on_prod.returncode != 0
    assert "it is for staging only and this host is in the prod group" in on_prod.stdout
    assert table_counts(stack, "staging", TARGET_DB) == before
    assert not marker.exists()


def test_drop_schema_released_on_staging(dbt: dict) -> None:
    stack = dbt["stack"]
    (dbt["root"] / "state" / "restored.json").unlink(missing_ok=True)
    with app_connect(dbt, "DBT_TARGET") as conn:
        conn.execute("CREATE TABLE public.leftover AS SELECT generate_series(1, 4) AS id")
    with superuser(stack, "staging", TARGET_DB) as conn:  # a table app may not even read
        conn.execute("CREATE TABLE public.stray AS SELECT generate_series(1, 3) AS id")
    data = (
        "dbt_dest=",
        f"dbt_dump={dbt['root'] / 'artifacts' / 'source.dump'}",
        "dbt_drop_schema=true",
        "i_know_what_im_doing=true",
    )
    dry = deploy(dbt, *data, dry=True)
    assert dry.returncode == 0, dry.stdout[-3000:]
    public_rows = sum(n for t, n in SOURCE_COUNTS.items() if t.startswith("public.")) + 4
    # stray cannot be counted by app and was never analyzed: 0, and the total is approximate
    assert f"drop schema public first: removes 8 tables, ~{public_rows} rows" in dry.stdout
    assert "Will restore dump sha256:" in dry.stdout and "(7 tables) into" in dry.stdout

    real = deploy(dbt, *data)
    assert real.returncode == 0, real.stdout[-3000:]
    assert table_counts(stack, "staging", TARGET_DB) == SOURCE_COUNTS  # leftover, stray gone
    assert (
        fact(dbt, "restore_marker", marker=str(dbt["root"] / "state" / "restored.json"))[
            "dropped_schema"
        ]
        is True
    )


def test_no_password_in_outputs_logs_or_tool_command_lines(dbt: dict, stack_secrets) -> None:
    root = dbt["root"]
    texts = list(OUTPUTS)
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".json", ".sha256"):
            texts.append(path.read_text())
            assert oct(path.stat().st_mode & 0o777) == "0o600", path
    for secret in stack_secrets:
        assert not [text for text in texts if secret in text]
    commands = [
        line
        for path in (root / "logs").glob("*.log")
        for line in path.read_text().splitlines()
        if line.startswith(("$ pg_dump", "$ pg_restore", "$ psql"))
    ]
    assert any(line.startswith("$ pg_dump") for line in commands)
    # The restore: pg_restore writes SQL, psql runs it (with the password) in the transaction
    # turnout opens and commits only after pg_restore succeeded (not --single-transaction,
    # which commits at the end of a cut-short script).
    assert any(line.startswith("$ psql") and "ON_ERROR_STOP=1" in line for line in commands)
    assert not any("--single-transaction" in line for line in commands)
    for line in commands:
        # A password in argv would show as *** here (the log is redacted).
        assert "***" not in line and "password" not in line.lower(), line
        if "--dbname=" in line:
            assert "user=app" in line and "postgresql" not in line, line
