"""The cutover's backup of an app on SQLite (S2.1, S2.2, RELIABILITY 13): a live WAL-mode file,
written to while the backup runs, is copied with SQLite's backup API over @ssh, checked with
``PRAGMA integrity_check`` and recorded by sha256; a rerun changes nothing."""

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from conftest import STACK_DIR, changes, run_pyinfra

TIMESTAMP = "ct-sqlite"


@pytest.fixture
def live_sqlite(stack: dict):
    """A WAL-mode SQLite file with rows, and a writer adding more while the test runs."""
    path = STACK_DIR / "hosts" / "staging" / "data" / "app.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    conn.executemany("INSERT INTO notes (body) VALUES (?)", [("x" * 200,)] * 20000)
    conn.commit()
    stop = threading.Event()

    def write() -> None:
        writer = sqlite3.connect(path, timeout=30)
        while not stop.is_set():
            writer.execute("INSERT INTO notes (body) VALUES ('during the backup')")
            writer.commit()
        writer.close()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()
    conn.close()
    path.unlink(missing_ok=True)


def backup(path: Path):
    return run_pyinfra(
        "-y",
        "tests/stack/inventory.py",
        "deploys/cutover.py",
        "--limit",
        "stack-staging",
        "--data",
        "steps=backup",
        "--data",
        f"sqlite_path={path}",
        "--data",
        f"evidence_timestamp={TIMESTAMP}",
    )


def test_a_live_sqlite_file_is_backed_up_consistently(stack: dict, live_sqlite: Path) -> None:
    result = backup(live_sqlite)
    assert result.returncode == 0, result.stdout[-4000:]
    run_dir = Path(stack["hosts"]["staging"]["evidence_root"]) / "cutover" / TIMESTAMP
    copy = run_dir / "src_artifacts" / "baseline.sqlite3"
    record = json.loads(copy.with_name("baseline.sqlite3.sha256").read_text())
    assert record["integrity_check"] == "ok" and record["format"] == "sqlite"
    assert record["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest()
    assert oct(copy.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(f"file:{copy}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] >= 20000
    assert not list(copy.parent.glob("*.partial-*"))
    run = json.loads((run_dir / "run.json").read_text())
    assert run["artifacts"]["backup"]["sha256"] == record["sha256"]

    again = backup(live_sqlite)
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-4000:]


def test_a_missing_sqlite_file_is_one_line(stack: dict) -> None:
    result = backup(STACK_DIR / "hosts" / "staging" / "data" / "absent.sqlite3")
    lines = [line for line in result.stdout.splitlines() if "turnout: " in line]
    assert result.returncode != 0 and len(lines) == 1, result.stdout[-3000:]
    assert "absent.sqlite3 does not exist; fix sqlite_path" in lines[0]
