"""The pre-checks and the duplicates gate on a real SQLite file (read-only)."""

import sqlite3
from pathlib import Path

import pytest

from turnout.hostside.base import HostsideError
from turnout.hostside.sqlite_checks import (
    action_sqlite_duplicate_groups,
    action_sqlite_prechecks,
    open_read_only,
)

CHECKS = [
    "meter_slots_unique=unique:meters(unit_id, kind, slot)",
    "active_admin=min_rows:users(role=admin, is_active=true)>=1",
    "no_duplicate_emails=duplicates:users(lower(email))",
]


@pytest.fixture
def app_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, role TEXT, is_active BOOLEAN);
            CREATE TABLE meters (id INTEGER PRIMARY KEY, unit_id INT, kind TEXT, slot INT,
                CONSTRAINT "uq_other" UNIQUE (id, unit_id));
            INSERT INTO users (email, role, is_active) VALUES
                ('a@x.test', 'admin', 1), ('u@x.test', 'user', 1);
            INSERT INTO meters (unit_id, kind, slot) VALUES (1, 'p', 1), (1, 'p', 2), (2, 'p', 1);
            """
        )
    return path


def test_a_clean_file_passes_every_check(app_file: Path) -> None:
    report = action_sqlite_prechecks({"sqlite_path": str(app_file), "checks": CHECKS})
    assert report["passed"] is True
    rows = {row["name"]: row for row in report["checks"]}
    assert rows["meter_slots_unique"]["result"] == "count 3, distinct 3"
    assert rows["active_admin"]["result"] == "1 row(s)"


def test_duplicates_and_a_missing_admin_fail_with_their_values(app_file: Path) -> None:
    with sqlite3.connect(app_file) as conn:
        conn.execute("INSERT INTO meters (unit_id, kind, slot) VALUES (1, 'p', 1)")
        conn.execute("INSERT INTO users (email, role, is_active) VALUES ('A@X.test', 'user', 1)")
        conn.execute("UPDATE users SET is_active = 0 WHERE role = 'admin'")
    report = action_sqlite_prechecks({"sqlite_path": str(app_file), "checks": CHECKS})
    rows = {row["name"]: row for row in report["checks"]}
    assert not report["passed"]
    assert rows["meter_slots_unique"]["offending"] == [
        {"values": {"unit_id": 1, "kind": "p", "slot": 1}, "count": 2, "ids": [1, 4]}
    ]
    assert rows["no_duplicate_emails"]["offending"][0]["values"] == {"lower(email)": "a@x.test"}
    assert rows["active_admin"]["passed"] is False


def test_the_gate_lists_groups_and_sees_a_named_constraint(app_file: Path) -> None:
    params = {"sqlite_path": str(app_file), "table": "meters", "columns": ["unit_id", "kind"]}
    gate = action_sqlite_duplicate_groups({**params, "constraint": "uq_other"})
    assert gate["groups_count"] == 1 and gate["extra_rows"] == 1
    assert gate["groups"][0]["ids"] == [1, 2] and gate["constraint_present"] == "constraint"
    assert (
        action_sqlite_duplicate_groups({**params, "constraint": "uq_new"})["constraint_present"]
        is None
    )


def test_the_file_is_opened_read_only(app_file: Path) -> None:
    conn = open_read_only(str(app_file), 5000)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM users")
    conn.close()
    with pytest.raises(HostsideError, match="does not exist on this host"):
        open_read_only(str(app_file) + ".absent", 5000)
