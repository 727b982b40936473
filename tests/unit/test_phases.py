"""The phase table of the SQLite → PostgreSQL move (turnout/phases.py), as the seed has it."""

import pytest

from turnout.constants import PHASES
from turnout.hostside.envfile import parse_env
from turnout.phases import (
    PhaseError,
    command_started,
    expected_backend,
    missing_unique,
    phase_values,
    uses_postgres,
)

SQLITE = "sqlite:////app/.data/app.sqlite3"
PG = "${PG_DATABASE_URL}"


@pytest.mark.parametrize(
    "phase, expected",
    [
        ("shadow", (PG, SQLITE, "single", "shadow_compare")),
        ("dual", (PG, SQLITE, "dual", "shadow_compare")),
        ("cutover", (PG, SQLITE, "single", "primary")),
        ("rollback", (SQLITE, "", "single", "primary")),
    ],
)
def test_the_seed_table(phase: str, expected: tuple[str, str, str, str]) -> None:
    values = phase_values(phase, SQLITE)
    assert tuple(values.values()) == expected
    assert list(values) == ["DATABASE_URL", "DATABASE_URL_SECONDARY", "DB_WRITE_MODE",
                            "DB_READ_MODE"]


def test_every_phase_is_in_the_table() -> None:
    assert {p: expected_backend(p) for p in PHASES} == {
        "shadow": "postgresql", "dual": "postgresql", "cutover": "postgresql",
        "rollback": "sqlite",
    }
    assert [p for p in PHASES if uses_postgres(p)] == ["shadow", "dual", "cutover"]


def test_the_pg_variable_is_a_reference_and_sqlite_a_literal() -> None:
    values = phase_values("shadow", "sqlite:////d/$weird.db", pg_dsn_env="TARGET_URL")
    assert values["DATABASE_URL"] == "${TARGET_URL}"
    env = parse_env(
        'TARGET_URL="postgresql://a@h/d"\n'
        + "".join(f'{k}="{v}"\n' for k, v in values.items()),
        lookup=lambda name: None,
    )
    assert env["DATABASE_URL"] == "postgresql://a@h/d"
    assert env["DATABASE_URL_SECONDARY"] == "sqlite:////d/$weird.db"


def test_bad_input_is_refused() -> None:
    with pytest.raises(PhaseError, match="unknown phase 'later'"):
        phase_values("later", SQLITE)
    with pytest.raises(PhaseError, match="not a variable name"):
        phase_values("shadow", SQLITE, pg_dsn_env="PG-URL")
    with pytest.raises(PhaseError, match="one line"):
        phase_values("rollback", "sqlite:////a\n.db")


def test_missing_unique_names_looks_at_constraints_and_indexes() -> None:
    found = {
        "unique_constraints": {"uq_users_email": {}},
        "unique_indexes": {"public.run_executions.uq_run_key": {}, "users_pkey": {}},
    }
    assert missing_unique(["uq_users_email", "uq_run_key", "uq_gone"], found) == ["uq_gone"]
    assert missing_unique(["uq_users_email"], {"ok": True}) == ["uq_users_email"]


def test_the_command_start_is_before_now() -> None:
    import time

    assert 0 <= time.time() - command_started() < 600


def test_the_rollback_time_line_warns_over_budget() -> None:
    from turnout.operations.envphase import timing_line

    assert timing_line(12.34, 60) == (
        "rollback: app healthy on SQLite 12.3 s after the command started (budget 60 s)"
    )
    assert timing_line(75, 60).endswith("(budget 60 s) - OVER BUDGET")


def test_leaving_sqlite_is_the_switch_of_the_primary_off_sqlite() -> None:
    from turnout.phases import leaves_sqlite

    on_sqlite = "sqlite:////app/.data/app.sqlite3"
    assert [leaves_sqlite(p, on_sqlite) for p in PHASES] == [
        p != "rollback" for p in PHASES
    ]
    assert not any(leaves_sqlite(p, "postgresql://app:***@db/app") for p in PHASES)
    assert not any(leaves_sqlite(p, None) for p in PHASES)


def test_an_unready_copy_names_why_and_the_way_forward() -> None:
    from turnout.phases import unready_copy

    done = {"checkpoint": {"state": "complete"}}
    assert unready_copy(done, {"matched": True}, "/d/a.db") is None
    changed = {"checkpoint": {"state": "mismatch", "changed_tables": ["meters", "users"]}}
    assert unready_copy(changed, {"matched": True}, "/d/a.db").startswith(
        "/d/a.db changed since the copy into PostgreSQL (meters, users): what the app wrote"
    )
    for state in ("none", "in_progress"):
        line = unready_copy({"checkpoint": {"state": state}}, {"matched": True}, "/d/a.db")
        assert f"is {state}, not complete; run deploys/sqlite_to_pg.py" in line
    for verified in (None, {"matched": False}, {}):
        assert "has no passed verification" in unready_copy(done, verified, "/d/a.db")
