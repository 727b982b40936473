"""The SQLite → PostgreSQL runbooks' planning words and paths (operations/pgload.py,
turnout/sqlite_pg.py), and the Alembic argv that points the app at the new database."""

from turnout.facts.alembic import app_argv
from turnout.operations.pgload import describe_deferred, describe_table, refusal_of, status_lines
from turnout.settings import Settings
from turnout.sqlite_pg import state_paths


def test_a_fresh_table_is_planned_in_batches() -> None:
    table = {"name": "users", "mode": "batches", "source_rows": 2001, "copied_rows": 0}
    assert describe_table(table, 1000) == "users: 2001 rows in 3 batch(es) of 1000"


def test_a_resumed_table_says_where_it_starts() -> None:
    table = {
        "name": "meters",
        "mode": "batches",
        "source_rows": 5000,
        "copied_rows": 3000,
        "last_key": 3000,
        "done": False,
    }
    assert describe_table(table, 1000) == (
        "meters: 2000 of 5000 rows left after key 3000, 2 batch(es) of 1000"
    )


def test_a_table_without_integer_key_is_copied_whole_and_said_so() -> None:
    table = {"name": "tags", "mode": "whole", "source_rows": 9, "copied_rows": 0}
    assert "whole in one transaction (no integer primary key)" in describe_table(table, 1000)


def test_set_aside_definitions_still_to_recreate_are_named() -> None:
    deferred = [
        {"name": "ix_meters_unit_id", "kind": "index", "restored": False},
        {"name": "fk_meters_user_id_users", "kind": "fk", "restored": False},
        {"name": "ix_done", "kind": "index", "restored": True},
    ]
    text = describe_deferred(deferred)
    assert "1 index(es) and 1 constraint(s) set aside" in text
    assert "ix_meters_unit_id, fk_meters_user_id_users" in text and "ix_done" not in text
    assert describe_deferred([]) == ""


def test_a_changed_source_is_refused_naming_the_table_and_the_way_forward() -> None:
    plan = {
        "checkpoint": {"state": "mismatch", "changed_tables": ["users"], "detail": "digest"},
        "refusals": [],
    }
    refusal = refusal_of(plan)
    assert refusal and "users" in refusal and "copy_restart=true" in refusal
    assert "i_know_what_im_doing=true" in refusal


def test_a_refusal_of_the_host_is_passed_on_and_a_clean_plan_has_none() -> None:
    assert refusal_of({"checkpoint": {"state": "none"}, "refusals": ["t has 3 rows"]}) == (
        "t has 3 rows"
    )
    assert refusal_of({"checkpoint": {"state": "in_progress"}, "refusals": []}) is None


def test_status_lines_show_progress_done_tables_and_absent_counters() -> None:
    lines = status_lines(
        {
            "state": "complete",
            "tables": [
                {"name": "users", "copied": 10, "total": 10, "done": True},
                {"name": "empty", "copied": 0, "total": 0, "done": True},
            ],
            "compare_log": 4,
            "dual_write_failures": None,
        }
    )
    assert lines == [
        "copy: complete",
        "users: 10/10 rows (100%), done",
        "empty: 0/0 rows, done",
        "compare log: 4 reads compared",
        "dual-write failures: no such table",
    ]


def test_the_state_outlives_the_run_and_checkpoint_can_be_named() -> None:
    default = state_paths(Settings(evidence_root="/e"))
    assert default["checkpoint"] == "/e/state/sqlite_to_pg/checkpoint.json"
    assert default["snapshot"] == "/e/state/sqlite_to_pg/sqlite_copy.snapshot.sqlite3"
    named = state_paths(Settings(evidence_root="/e", checkpoint="/srv/app/data/cp.json"))
    assert named["checkpoint"] == "/srv/app/data/cp.json"


def test_the_new_database_url_reaches_alembic_by_name_only() -> None:
    for running, how in ((True, "exec"), (False, "run")):
        argv = app_argv(
            "python",
            "-m",
            "alembic",
            "upgrade",
            "head",
            service="api",
            running=running,
            env_file="/a/.env",
            compose_file="/a/c.yml",
            project="api",  # a project named like the service must not confuse it
            env_names=("DATABASE_URL",),
        )
        assert argv[argv.index(how) :][-8:-5] == ["-e", "DATABASE_URL", "api"]
        assert not [word for word in argv if "://" in word]


def test_the_migration_child_gets_the_value_read_on_the_host(tmp_path, monkeypatch) -> None:
    import pytest

    from turnout.hostside.base import HostsideError
    from turnout.hostside.schema import child_env

    env_file = tmp_path / ".env"
    env_file.write_text('PG_DATABASE_URL="postgresql://app:s3cret@db/app"\n')
    monkeypatch.delenv("PG_DATABASE_URL", raising=False)
    env = child_env({"DATABASE_URL": "PG_DATABASE_URL"}, str(env_file))
    assert env is not None and env["DATABASE_URL"] == "postgresql://app:s3cret@db/app"
    with pytest.raises(HostsideError, match="MISSING_URL is not set"):
        child_env({"DATABASE_URL": "MISSING_URL"}, str(env_file))
    assert child_env(None, str(env_file)) is None
