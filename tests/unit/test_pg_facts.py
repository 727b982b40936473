"""Pure helpers of the database facts, dump/restore actions and ops: names, relation syntax, SQL
built from identifiers, TOC parsing, digests, sequence checks, plan texts. The dump action's file
handling runs for real with stand-in pg_dump/pg_restore scripts (no database involved)."""

import hashlib
import json
import os
import shlex
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from turnout.database import Database
from turnout.facts.dump import DumpInfo, RestoreMarker
from turnout.facts.postgres import Orphans, RowCounts, TableSizes
from turnout.hostside.base import HostsideError
from turnout.hostside.dump import (
    dump_digest,
    dump_format_of,
    dump_stat_signature,
    dump_toc_tables,
    pg_sequence_behind,
)
from turnout.hostside.pg import (
    pg_key_by_name,
    pg_orphan_query,
    pg_parse_relation,
    pg_split_table,
)
from turnout.operations.db import human_bytes, row_total
from turnout.remote import hostside_command, parse_hostside_output

CANARY = "Canary-Pw_9x"


def test_table_names_default_to_public() -> None:
    assert pg_split_table("users") == ("public", "users")
    assert pg_split_table(" audit.events ") == ("audit", "events")
    for bad in ("", "a.b.c", ".users", "public."):
        with pytest.raises(HostsideError, match="must be 'table' or 'schema.table'"):
            pg_split_table(bad)


def test_relation_syntax() -> None:
    assert pg_parse_relation("meters.user_id->users.id") == {
        "name": "declared:meters.user_id->users.id",
        "child": "public.meters",
        "columns": ["user_id"],
        "parent": "public.users",
        "parent_columns": ["id"],
    }
    check = pg_parse_relation("audit.events.user_id -> public.users.id")
    assert check["name"] == "declared:audit.events.user_id->public.users.id"
    assert (check["child"], check["parent"]) == ("audit.events", "public.users")
    for bad in ("meters.user_id", "meters->users", "a.b.c.d->users.id", "meters.user_id->.id"):
        with pytest.raises(HostsideError, match=r"child_table\.column->parent_table\.column"):
            pg_parse_relation(bad)


def test_orphan_query_is_one_anti_join_of_quoted_identifiers() -> None:
    query = pg_orphan_query(("public", "part_refs"), ["a", "B"], ("odd schema", 'p"x'), ["a", "b"])
    assert query.as_string(None) == (
        'SELECT count(*) FROM "public"."part_refs" AS c WHERE c."a" IS NOT NULL AND c."B" IS NOT '
        'NULL AND NOT EXISTS (SELECT 1 FROM "odd schema"."p""x" AS p WHERE p."a" = c."a" AND '
        'p."b" = c."B")'
    )


def test_names_shared_by_tables_are_qualified() -> None:
    items = [
        ("users_pkey", "public.users", 1),
        ("id_key", "public.a", 2),
        ("id_key", "audit.a", 3),
    ]
    assert pg_key_by_name(items) == {"users_pkey": 1, "public.a.id_key": 2, "audit.a.id_key": 3}


@pytest.mark.parametrize(
    ("last", "called", "increment", "maximum", "behind"),
    [
        (1, False, 1, None, False),  # empty table
        (1, False, 1, 100, True),  # restored rows, sequence never moved
        (100, True, 1, 100, False),  # next is 101
        (100, False, 1, 100, True),  # next is 100: collides
        (99, True, 1, 100, True),
        (5, True, -1, 100, False),  # descending sequences are not judged
    ],
)
def test_sequence_behind(last: int, called: bool, increment: int, maximum, behind: bool) -> None:
    assert pg_sequence_behind(last, called, increment, maximum) is behind


def test_toc_tables_are_table_entries_only() -> None:
    listing = "\n".join(
        [
            ";",
            "; Archive created at 2026-11-23 12:00:00 UTC",
            ";     Format: CUSTOM",
            "216; 1259 16385 TABLE public users app",
            "217; 1259 16384 SEQUENCE public users_id_seq app",
            "3351; 0 16385 TABLE DATA public users app",
            "220; 1259 16400 TABLE extra things app",
            "3200; 2606 16391 CONSTRAINT public users users_pkey app",
            "3210; 2606 16410 FK CONSTRAINT public meters meters_user_id_fkey app",
            ";221; 1259 16401 TABLE public skipped app",
        ]
    )
    assert dump_toc_tables(listing) == ["public.users", "extra.things"]


def test_dump_format_and_directory_digest(tmp_path: Path) -> None:
    custom = tmp_path / "a.dump"
    custom.write_bytes(b"PGDMP\x01\x0e\x00" + b"x" * 100)
    plain = tmp_path / "a.sql"
    plain.write_text("SELECT 1;\n")
    directory = tmp_path / "d"
    directory.mkdir()
    (directory / "toc.dat").write_bytes(b"PGDMP toc")
    (directory / "3354.dat.gz").write_bytes(b"\x1f\x8b data")
    assert dump_format_of(str(custom)) == "custom"
    assert dump_format_of(str(directory)) == "directory"
    assert dump_format_of(str(plain)) is None
    assert dump_format_of(str(tmp_path)) is None  # a directory without toc.dat
    assert dump_digest(str(custom)) == (hashlib.sha256(custom.read_bytes()).hexdigest(), 108)
    expected = hashlib.sha256()
    for name in ("3354.dat.gz", "toc.dat"):
        content = (directory / name).read_bytes()
        expected.update(f"{name}\0{len(content)}\0".encode() + content)
    assert dump_digest(str(directory)) == (expected.hexdigest(), 16)


def action_params(command) -> dict:
    """The JSON parameters of a host-side command (the argument after the action name)."""
    return json.loads(shlex.split(command.get_raw_value())[3])


def test_fact_commands_carry_names_never_secrets() -> None:
    params = action_params(
        RowCounts().command(
            database=Database("DATABASE_URL", "/srv/app/.env"), tables="users, audit.events"
        )
    )
    assert params == {
        "dsn_env": "DATABASE_URL",
        "env_file": "/srv/app/.env",
        "tables": ["users", "audit.events"],
        "timeout_ms": 3000,
    }
    params = action_params(Orphans().command(Database("DATABASE_URL"), relations=("a.b->c.d",)))
    assert params["relations"] == ["a.b->c.d"] and params["foreign_keys"] is True
    assert action_params(TableSizes().command(Database("DATABASE_URL")))["tables"] is None
    assert action_params(DumpInfo().command("/x.dump")) == {
        "path": "/x.dump",
        "verify": False,
        "pg_bin": "",
    }
    assert DumpInfo().process(['{"ok": true, "exists": false}']) == {"ok": True, "exists": False}
    assert RestoreMarker().process([]) == {
        "ok": False,
        "error": "the host-side program printed no result",
    }


def test_plan_helpers() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"
    counts = {
        "tables": {
            "public.users": {"count": 12, "exact": True},
            "public.meters": {"count": 900, "exact": False},
            "audit.events": {"count": 5, "exact": True},
        }
    }
    assert row_total(counts) == (3, 917, False)
    assert row_total(counts, prefix="audit.") == (1, 5, True)


# The dump action's file handling, with stand-in tools ------------------------------------------

FAKE_PG_DUMP = """#!/bin/sh
# Records its argv and whether PGPASSWORD reached it, writes --file, exits $FAKE_DUMP_EXIT.
printf '%s\\n' "$@" > "$FAKE_DIR/pg_dump.argv"
[ "$PGPASSWORD" = "$FAKE_EXPECTED_PASSWORD" ] && echo yes > "$FAKE_DIR/pg_dump.env"
for arg in "$@"; do
  case "$arg" in --file=*) printf 'PGDMP fake dump' > "${arg#--file=}" ;; esac
done
echo "pg_dump: error: fake failure" >&2
exit "${FAKE_DUMP_EXIT:-0}"
"""
FAKE_PG_RESTORE = """#!/bin/sh
case "$1" in --list) echo "216; 1259 16385 TABLE public users app" ;; esac
exit 0
"""


def run_action(action: str, params: dict, env: dict) -> tuple[subprocess.CompletedProcess, dict]:
    command = hostside_command(action, params, python=sys.executable).get_raw_value()
    result = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env={**os.environ, **env}
    )
    return result, parse_hostside_output(result.stdout.splitlines())


@pytest.fixture
def fake_tools(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("pg_dump", FAKE_PG_DUMP), ("pg_restore", FAKE_PG_RESTORE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    env = {
        "FAKE_DIR": str(tmp_path),
        "FAKE_EXPECTED_PASSWORD": CANARY,
        "UNIT_DSN": f"postgresql+psycopg://app:{CANARY}@127.0.0.1:1/app",
    }
    return {"pg_bin": str(bin_dir), "env": env, "dir": tmp_path}


def test_dump_renames_after_read_back_and_keeps_password_out_of_argv(fake_tools: dict) -> None:
    dest = fake_tools["dir"] / "out" / "app.dump"
    log = fake_tools["dir"] / "dump.log"
    params = {
        "dsn_env": "UNIT_DSN",
        "dest": str(dest),
        "pg_bin": fake_tools["pg_bin"],
        "log_path": str(log),
    }
    result, out = run_action("pg_dump", params, fake_tools["env"])
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == b"PGDMP fake dump"
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert out["sha256"] == hashlib.sha256(b"PGDMP fake dump").hexdigest()
    assert out["tables"] == 1 and out["complete"] is True and out["recorded"] is True
    sidecar = json.loads((dest.parent / "app.dump.sha256").read_text())
    stat = sidecar.pop("stat")
    assert sidecar == {
        "format": "custom",
        "sha256": out["sha256"],
        "size": 15,
        "tables": 1,
        "table_names": ["public.users"],
    }
    assert stat == dump_stat_signature(str(dest))  # device, inode, size, mtime: trusted unread
    info = run_action("dump_info", {"path": str(dest), "pg_bin": fake_tools["pg_bin"]}, {})[1]
    assert info["trusted"] is True and info["full_dump_reads"] == 0
    assert info["sha256"] == out["sha256"] and info["complete"] is True
    os.utime(dest)  # touched: no longer provably the verified dump, so it is read again
    info = run_action("dump_info", {"path": str(dest), "pg_bin": fake_tools["pg_bin"]}, {})[1]
    assert info["trusted"] is False and info["full_dump_reads"] == 1
    argv = (fake_tools["dir"] / "pg_dump.argv").read_text().splitlines()
    assert argv[:3] == ["--no-owner", "--no-acl", "--format=custom"]
    assert argv[3].startswith(f"--file={dest}.partial-")
    assert argv[4] == "--dbname=user=app dbname=app host=127.0.0.1 port=1"
    assert (fake_tools["dir"] / "pg_dump.env").read_text() == "yes\n"  # the env carried it
    assert CANARY not in log.read_text() + result.stdout + result.stderr
    assert sorted(p.name for p in dest.parent.iterdir()) == ["app.dump", "app.dump.sha256"]


def test_failed_dump_removes_the_partial_and_keeps_the_old_dump(fake_tools: dict) -> None:
    dest = fake_tools["dir"] / "app.dump"
    dest.write_bytes(b"PGDMP old")
    env = {**fake_tools["env"], "FAKE_DUMP_EXIT": "1"}
    params = {"dsn_env": "UNIT_DSN", "dest": str(dest), "pg_bin": fake_tools["pg_bin"]}
    result, out = run_action("pg_dump", params, env)
    assert result.returncode == 1
    assert out["error"] == (
        f"dump to {dest} failed, nothing kept: pg_dump exited 1: pg_dump: error: fake failure"
    )
    assert dest.read_bytes() == b"PGDMP old"
    assert not list(fake_tools["dir"].glob("app.dump.partial-*"))


def test_dump_never_replaces_something_that_is_not_a_dump(fake_tools: dict) -> None:
    dest = fake_tools["dir"] / "precious"
    dest.mkdir()
    (dest / "file.txt").write_text("keep me")
    params = {"dsn_env": "UNIT_DSN", "dest": str(dest), "pg_bin": fake_tools["pg_bin"]}
    result, out = run_action("pg_dump", params, fake_tools["env"])
    assert result.returncode == 1
    assert out["error"] == f"{dest} exists and is not a pg_dump archive; nothing replaced"
    assert (dest / "file.txt").read_text() == "keep me"
    assert not (fake_tools["dir"] / "pg_dump.argv").exists()


def test_a_tool_that_prints_the_bare_password_is_masked(fake_tools: dict) -> None:
    """A tool's own output can carry the bare password (no URL, no ``password=``: only the
    host-side program's literal masking of the secrets it read can catch it), here a pg_dump that
    echoes the PGPASSWORD it was given in its error. Neither the one-line failure nor the log nor
    the JSON holds it."""
    leaky = fake_tools["dir"] / "bin" / "pg_dump"
    leaky.write_text(
        '#!/bin/sh\necho "pg_dump: error: login as app with $PGPASSWORD refused" >&2\nexit 1\n'
    )
    log = fake_tools["dir"] / "dump.log"
    params = {
        "dsn_env": "UNIT_DSN",
        "dest": str(fake_tools["dir"] / "out" / "app.dump"),
        "pg_bin": fake_tools["pg_bin"],
        "log_path": str(log),
    }
    result, out = run_action("pg_dump", params, fake_tools["env"])
    assert result.returncode == 1
    assert "login as app with" in out["error"]  # the tool's line did come through…
    everything = result.stdout + result.stderr + log.read_text()
    assert "login as app with" in log.read_text()
    assert CANARY not in everything  # …with the password masked
    assert urllib.parse.quote(CANARY, safe="") not in everything
