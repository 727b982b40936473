"""The copy's pieces that need no PostgreSQL: settings, the source fingerprint on real SQLite
files (one edited value is found), the snapshot made with the backup API from a WAL file, the
local cache's states and the one-line messages."""

import json
import os
import sqlite3
from pathlib import Path

import pytest

from turnout.hostside import pgload
from turnout.hostside.base import HostsideError
from turnout.hostside.sqlite_types import TablePair, TargetColumn, open_source

PAIR = TablePair(
    name="meters",
    schema="public",
    key="id",
    columns=(TargetColumn("id", "bigint", False), TargetColumn("note", "text")),
)
WHOLE = TablePair(
    name="tags", schema="public", key=None, columns=(TargetColumn("name", "text", False),)
)


@pytest.fixture
def live(tmp_path: Path) -> Path:
    """A live SQLite file in WAL mode with an uncheckpointed write still in its -wal."""
    path = tmp_path / "app.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE meters (id INTEGER PRIMARY KEY, note TEXT)")
    conn.execute("CREATE TABLE tags (name TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.executemany("INSERT INTO meters VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 101)])
    conn.executemany("INSERT INTO tags VALUES (?)", [("b",), ("a",)])
    conn.commit()
    yield path
    conn.close()


def fingerprint(path: Path) -> dict:
    conn = open_source(str(path))
    try:
        return pgload.source_fingerprint(conn, str(path), [PAIR, WHOLE])
    finally:
        conn.close()


def test_settings_defaults_and_refusals() -> None:
    settings = pgload.CopySettings.of({"sqlite_path": "/d/a.db", "dsn_env": "PG", "tables": "t"})
    assert (settings.batch_size, settings.jobs, settings.set_aside, settings.lossy) == (
        1000,
        2,
        True,
        False,
    )
    assert settings.tables == ("t",) and settings.workers == "process"
    assert settings.pg_params() == {"dsn_env": "PG", "env_file": None}
    with pytest.raises(HostsideError, match="batch_size must be a positive integer"):
        pgload.CopySettings.of({"sqlite_path": "/d/a.db", "dsn_env": "PG", "batch_size": -5})
    with pytest.raises(HostsideError, match="sqlite_path is required"):
        pgload.CopySettings.of({"dsn_env": "PG"})
    with pytest.raises(HostsideError, match="workers must be"):
        pgload.CopySettings.of({"sqlite_path": "/d/a.db", "dsn_env": "PG", "workers": "x"})


def test_fingerprint_counts_max_key_and_finds_one_edited_value(live: Path) -> None:
    before = fingerprint(live)
    assert before["tables"]["meters"]["rows"] == 100
    assert before["tables"]["meters"]["max_key"] == 100
    assert before["tables"]["tags"] == {**before["tables"]["tags"], "rows": 2, "max_key": None}
    assert fingerprint(live) == before  # deterministic
    conn = sqlite3.connect(live)
    with conn:
        conn.execute("UPDATE meters SET note = 'n51 ' WHERE id = 51")  # same count, same max
    conn.close()
    after = fingerprint(live)
    assert pgload.fingerprint_changes(before, after) == ["meters"]
    conn = sqlite3.connect(live)
    with conn:
        conn.execute("CREATE INDEX ix_note ON meters (note)")
    conn.close()
    assert pgload.fingerprint_changes(after, fingerprint(live)) == ["schema"]


def test_mismatch_message_names_tables_and_the_way_forward() -> None:
    message = pgload.mismatch_message(["schema", "meters", "users"])
    assert "schema changed; tables meters, users changed" in message
    assert pgload.RESTART_HINT in message and "\n" not in message


def test_snapshot_of_a_wal_file_holds_the_uncheckpointed_rows(live: Path, tmp_path: Path) -> None:
    assert os.path.getsize(f"{live}-wal") > 0  # the rows are still in the WAL
    state = tmp_path / "state"
    snapshot = pgload.snapshot_source(str(live), str(state))
    assert os.stat(state).st_mode & 0o777 == 0o700
    assert os.stat(snapshot).st_mode & 0o777 == 0o600
    conn = open_source(snapshot, immutable=True)
    assert conn.execute("SELECT count(*) FROM meters").fetchone()[0] == 100
    copy_print = pgload.source_fingerprint(conn, snapshot, [PAIR, WHOLE])
    conn.close()
    assert pgload.fingerprint_changes(fingerprint(live), copy_print) == []
    assert [p.name for p in state.iterdir()] == [pgload.SNAPSHOT_NAME]  # no partial left


def test_snapshot_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(HostsideError, match="does not exist on this host; fix sqlite_path"):
        pgload.snapshot_source(str(tmp_path / "nope.db"), str(tmp_path / "s"))


def state_with(rows: int, done: bool = False) -> dict:
    return {
        "sqlite_path": "/d/a.db",
        "fingerprint": {"schema": "x"},
        "completed_at": None,
        "progress": {"meters": {"last_key": rows, "rows": rows, "done": done}},
    }


def test_local_cache_states(tmp_path: Path) -> None:
    path = str(tmp_path / "ckpt.json")
    assert pgload.local_state(path, state_with(10)) == "missing"
    pgload.update_local_checkpoint(path, None, None, pgload.local_snapshot(state_with(10)))
    assert pgload.local_state(path, state_with(10)) == "ok"
    assert pgload.local_state(path, state_with(20)) == "stale"
    assert pgload.local_state(path, None) == "stale"
    pgload.update_local_checkpoint(path, "meters", {"last_key": 20, "rows": 20, "done": False})
    assert pgload.local_state(path, state_with(20)) == "ok"
    assert os.stat(path).st_mode & 0o777 == 0o600
    Path(path).write_text("{truncated")
    assert pgload.local_state(path, state_with(20)) == "corrupt"
    pgload.update_local_checkpoint(path, "meters", {"last_key": 30, "rows": 30, "done": True})
    assert json.loads(Path(path).read_text())["tables"]["meters"]["done"] is True
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_conflict_and_refusal_lines() -> None:
    line = pgload.conflict_message(
        [{"name": "uq_users_email", "table": "public.users"}, {"name": "uq_x", "table": "t"}]
    )
    assert "unique constraint uq_users_email on public.users (and 1 more)" in line
    assert "nothing was copied" in line
    one = pgload.refusal_for(["tags"])
    assert one.startswith("target table tags already holds rows") and pgload.RESTART_HINT in one
    assert pgload.refusal_for(["a", "b"]).startswith("target tables a, b already hold rows")


def test_progress_file_of_a_dead_process_is_not_running(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    path.write_text(json.dumps({"running": True, "pid": os.getpid(), "tables": {}}))
    assert pgload.progress_file(str(path)) is not None
    path.write_text(json.dumps({"running": True, "pid": 2**22 + 12345, "tables": {}}))
    assert pgload.progress_file(str(path)) is None
    path.write_text(json.dumps({"running": False, "pid": os.getpid()}))
    assert pgload.progress_file(str(path)) is None


def test_docstring_examples_run() -> None:
    import doctest

    result = doctest.testmod(pgload, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 10


def fails_on_b(item: str) -> dict:
    """A task for the forked runner: dies on "dead", refuses "b", answers the others."""
    if item == "dead":
        os._exit(3)
    if item == "b":
        raise HostsideError("b is refused")
    return {"item": item, "pid": os.getpid()}


def test_forked_runner_answers_in_order_and_reports_failures() -> None:
    answers = pgload.run_forked(fails_on_b, ["a", "c", "d"], 2, ["a", "c", "d"])
    assert [a["item"] for a in answers] == ["a", "c", "d"]
    assert all(a["pid"] != os.getpid() for a in answers)  # each in its own process
    with pytest.raises(HostsideError, match="^b is refused$"):
        pgload.run_forked(fails_on_b, ["a", "b"], 1, ["a", "b"])
    with pytest.raises(HostsideError, match="the worker copying dead died"):
        pgload.run_forked(fails_on_b, ["dead"], 2, ["copying dead"])


def test_fast_text_fetch_falls_back_for_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.execute("INSERT INTO t VALUES (1, 'café'), (2, CAST(X'636166E9' AS TEXT))")
    conn.commit()
    conn.close()
    source = open_source(str(path))
    query = "SELECT v FROM t WHERE id > ? ORDER BY id LIMIT ?"
    assert pgload.fetch_text_fast(source, query, (0, 1)) == [("café",)]
    assert pgload.fetch_text_fast(source, query, (1, 1)) == [("caf\udce9",)]  # as decode_text
    assert source.text_factory is not str  # the converters' factory is kept
