"""Failure paths a unit run alone must catch (not only the integration tests): the orphan anti-join
itself, rsync's partial-transfer exit, and the validation step failing the run.

The orphan query is the one the host program sends to PostgreSQL, run here on SQLite (the same
standard SQL; schema ``public`` is an attached database); rsync is a stand-in script on PATH that
ends like a real partial transfer; the validation step runs inside a real pyinfra ``State`` with
its facts stubbed (the unit rule: facts may be stubbed, nothing else is).
"""

import os
import sqlite3
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.context import ctx_host, ctx_state

from turnout.database import Database
from turnout.hostside.assets import action_rsync_mirror
from turnout.hostside.base import HostsideError
from turnout.hostside.pg import pg_orphan_query
from turnout.operations import validate


def orphans_in(rows_child: list[tuple], rows_parent: list[tuple], columns, parent_columns) -> int:
    """Run the host program's orphan query on SQLite tables public.child / public.parent."""
    conn = sqlite3.connect(":memory:")
    conn.execute("ATTACH ':memory:' AS public")
    width = len(columns)
    conn.execute(f"CREATE TABLE public.child ({', '.join(columns)})")
    conn.execute(f"CREATE TABLE public.parent ({', '.join(parent_columns)})")
    conn.executemany(f"INSERT INTO public.child VALUES ({', '.join('?' * width)})", rows_child)
    conn.executemany(f"INSERT INTO public.parent VALUES ({', '.join('?' * width)})", rows_parent)
    query = pg_orphan_query(("public", "child"), columns, ("public", "parent"), parent_columns)
    return conn.execute(query.as_string(None)).fetchone()[0]


def test_orphan_query_counts_children_without_a_parent() -> None:
    assert orphans_in([(1,), (2,), (3,)], [(1,), (2,), (3,)], ["user_id"], ["id"]) == 0
    assert orphans_in([(1,), (9,), (9,)], [(1,)], ["user_id"], ["id"]) == 2
    assert orphans_in([(None,), (1,)], [(1,)], ["user_id"], ["id"]) == 0  # NULL is no reference


def test_orphan_query_matches_every_column_of_a_composite_key() -> None:
    parents = [(1, 1), (2, 2)]
    assert orphans_in([(1, 1), (2, 2)], parents, ["a", "b"], ["x", "y"]) == 0
    assert orphans_in([(1, 2), (2, 1)], parents, ["a", "b"], ["x", "y"]) == 2  # each half exists
    assert orphans_in([(1, None)], parents, ["a", "b"], ["x", "y"]) == 0  # MATCH SIMPLE


FAKE_RSYNC = """#!/bin/sh
# A transfer that ends like rsync's partial transfer (exit 23) after printing its statistics.
echo '>f+++++++++ a.txt'
echo 'Number of files: 2 (reg: 1, dir: 1)'
echo 'Total transferred file size: 5 bytes'
echo 'rsync: [sender] send_files failed to open "/src/b.txt": Permission denied (13)' >&2
echo 'rsync error: some files/attrs were not transferred (see previous errors)'\
' (code 23) at main.c(1338) [sender=3.2.7]' >&2
exit 23
"""


def test_rsync_partial_transfer_fails_the_mirror(tmp_path: Path, monkeypatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "rsync").write_text(FAKE_RSYNC)
    (bin_dir / "rsync").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("hello")
    with pytest.raises(HostsideError, match="23") as failed:
        action_rsync_mirror({"source": str(source), "dest": str(tmp_path / "dst")})
    assert "partial transfer, some files not transferred" in str(failed.value)


@pytest.fixture
def executing_host():
    """A real pyinfra State and host (``@local``), marked as executing."""
    inventory = Inventory((["@local"], {}))
    state = State(inventory, Config())
    state.is_executing = True
    host = inventory.get_host("@local")
    with ctx_state.use(state), ctx_host.use(host):
        yield host


def counts(**tables: int) -> dict:
    return {
        "ok": True,
        "database": "app",
        "tables": {name: {"count": n, "exact": True} for name, n in tables.items()},
    }


def run_database_step(monkeypatch, source: dict, target: dict, orphan_checks: list) -> list[str]:
    """The validation step's commands, with its facts stubbed and its report kept nowhere."""
    answers = {"source": source, "target": target}

    def observe(fact_cls, **kwargs):
        if fact_cls.__name__ == "RowCounts":
            return answers["source" if kwargs["database"].dsn_env == "SRC" else "target"]
        if fact_cls.__name__ == "Orphans":
            return {"ok": True, "database": "app", "checks": orphan_checks}
        raise AssertionError(fact_cls)

    monkeypatch.setattr(validate, "observe", observe)
    monkeypatch.setattr(validate, "keep_text", lambda path, text: iter(()))
    step = validate.database._inner(
        source=Database("SRC"), target=Database("DST"), record="/nonexistent/validate_db.json"
    )
    return [command.get_raw_value() for command in step]


def test_validation_passes_quietly_when_everything_matches(executing_host, monkeypatch) -> None:
    same = counts(**{"public.users": 3, "public.meters": 7})
    assert run_database_step(monkeypatch, same, same, []) == []


def test_a_row_difference_fails_the_step(executing_host, monkeypatch) -> None:
    source = counts(**{"public.users": 3, "public.meters": 7})
    target = counts(**{"public.users": 3, "public.meters": 6})
    commands = run_database_step(monkeypatch, source, target, [])
    assert len(commands) == 1 and commands[0].endswith("exit 1")
    assert "public.meters: row counts differ by -1" in commands[0]


def test_orphans_fail_the_step(executing_host, monkeypatch) -> None:
    same = counts(**{"public.users": 3})
    check = {
        "name": "fk:meters_user_id_fkey",
        "child": "public.meters",
        "columns": ["user_id"],
        "parent": "public.users",
        "parent_columns": ["id"],
        "orphans": 2,
    }
    commands = run_database_step(monkeypatch, same, same, [check])
    assert len(commands) == 1 and commands[0].endswith("exit 1")
    assert "2 orphan row(s) in public.meters(user_id) without public.users(id)" in commands[0]


def test_an_unobservable_target_fails_the_step(executing_host, monkeypatch) -> None:
    down = {"ok": False, "error": "cannot connect with DST: connection refused"}
    commands = run_database_step(monkeypatch, counts(**{"public.users": 1}), down, [])
    assert len(commands) == 1 and "cannot connect with DST" in commands[0]



def test_an_unreachable_remote_source_names_ssh_s_reason() -> None:
    from turnout.hostside.assets import rsync_transport_reason

    output = (
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
        "Host key verification failed.\n"
        "rsync: connection unexpectedly closed (0 bytes received so far) [Receiver]\n"
        "rsync error: unexplained error (code 255) at io.c(232) [Receiver=3.2.7]\n"
    )
    assert rsync_transport_reason(output) == "Host key verification failed."
    assert rsync_transport_reason("rsync error: x (code 10)\n") == "rsync error: x (code 10)"


def test_rsync_stopped_by_its_deletion_limit_fails(tmp_path: Path) -> None:
    """rsync's exit 25 for real (the mirror's own dry run refuses first; this is the safety net
    when deletions grow between that dry run and the transfer): a real rsync with --max-delete."""
    from turnout.hostside.assets import rsync_options, rsync_run

    source, dest = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    dest.mkdir()
    (source / "keep.txt").write_text("k")
    for name in ("old1", "old2", "old3"):
        (dest / name).write_text(name)
    options = rsync_options(
        {"source": str(source), "dest": str(dest), "delete": True, "max_delete": 1}
    )
    with pytest.raises(HostsideError, match="25"):
        rsync_run(options, False, None, 60)
    assert len([p for p in dest.iterdir() if p.name.startswith("old")]) >= 2  # limit held
