"""What real schemas need, without a database: SQL-quoted table names, counting that follows the
catalog (partitions beneath their table, counted once; materialized views), the dump's table
list, per-attempt reports, the restore's one-line cause, and the stack's password encodings."""

import importlib.util
import sys
from pathlib import Path

import psycopg.conninfo
import pytest

from turnout.dsn import dsn_parts
from turnout.hostside.base import HostsideError
from turnout.hostside.dump import dump_toc_tables, restore_first_error
from turnout.hostside.envfile import parse_env
from turnout.hostside.pg import pg_display, pg_name_parts, pg_split_list, pg_split_table
from turnout.operations.db import row_total
from turnout.operations.validate import attempt_record
from turnout.settings import SettingsError, load_settings
from turnout.validation import compare_counts, count_failures, count_totals, render_count_table

REPO = Path(__file__).resolve().parents[2]


def stack_module():
    """tests/stack/stack.py, imported by path (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("stack_under_test", REPO / "tests/stack/stack.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def exact(n: int, **extra: object) -> dict:
    return {"count": n, "exact": True, **extra}


# Names ------------------------------------------------------------------------------------------


def test_sql_quoted_names_are_parsed_and_written_back() -> None:
    assert pg_name_parts('public."PlayCount"') == [("public", False), ("PlayCount", True)]
    assert pg_name_parts('"Odd Schema"."T"') == [("Odd Schema", True), ("T", True)]
    assert pg_name_parts('"a.b"."say ""hi"""') == [("a.b", True), ('say "hi"', True)]
    assert pg_split_table('"Odd Schema"."T"') == ("Odd Schema", "T")
    assert pg_split_table('"PlayCount"') == ("public", "PlayCount")
    for bad in ('"unterminated', '""', 'a."b"c', "a..b", '"a".b.c'):
        with pytest.raises(HostsideError, match="must be 'table' or 'schema.table'"):
            pg_split_table(bad)
    assert pg_display("public", "users") == "public.users"
    assert pg_display("public", "PlayCount") == 'public."PlayCount"'
    assert pg_display("Odd Schema", 'say "hi"') == '"Odd Schema"."say ""hi"""'
    assert pg_split_list('users, "a,b".c ,public."PlayCount"') == [
        "users",
        '"a,b".c',
        'public."PlayCount"',
    ]


def test_tables_setting_takes_sql_quoted_names() -> None:
    settings = load_settings({"tables": 'public."PlayCount","Odd Schema"."T", users'})
    assert settings.tables == ('public."PlayCount"', '"Odd Schema"."T"', "users")
    assert load_settings({"tables": ['"a,b".c']}).tables == ('"a,b".c',)
    for bad in ("a.b.c", 'public."x', "bad name", ""):
        with pytest.raises(SettingsError, match='public."PlayCount"'):
            load_settings({"tables": bad})


def test_asset_and_health_switches_exist_and_default_on() -> None:
    assert load_settings({}).assets is True and load_settings({}).health is True
    off = load_settings({"assets": False, "health": False})
    assert (off.assets, off.health) == (False, False)


# Counting ---------------------------------------------------------------------------------------


def partitioned(source_extra: int = 0) -> tuple[dict, dict]:
    """A partitioned table of two partitions and a plain table; the target's first partition
    holds ``source_extra`` more rows."""
    source = {
        "public.events": exact(30, relation="partitioned", partitions=["public.e1", "public.e2"]),
        "public.e1": exact(10, relation="partition", parent="public.events"),
        "public.e2": exact(20, relation="partition", parent="public.events"),
        "public.users": exact(5, relation="table"),
    }
    target = {name: dict(entry) for name, entry in source.items()}
    target["public.e1"]["count"] += source_extra
    target["public.events"]["count"] += source_extra
    return source, target


def test_partitions_are_listed_beneath_their_table_and_counted_once() -> None:
    rows = compare_counts(*partitioned())
    assert [(row.table, row.depth) for row in rows] == [
        ("public.events", 0),
        ("public.e1", 1),
        ("public.e2", 1),
        ("public.users", 0),
    ]
    assert count_totals(rows) == {"tables": 2, "source": 35, "target": 35, "exact": True}
    lines = render_count_table(rows).splitlines()
    assert lines[2].startswith("  public.e1") and lines[1].startswith("public.events")
    assert lines[-1].split()[:5] == ["total", "(2", "tables)", "35", "35"]


def test_one_extra_row_in_a_partition_is_one_failure() -> None:
    rows = compare_counts(*partitioned(source_extra=1))
    failures = count_failures(rows)
    assert len(failures) == 1 and failures[0].startswith("public.e1: row counts differ by +1")


def test_plan_totals_do_not_count_partitions_twice() -> None:
    source, _ = partitioned()
    source["public.stats"] = exact(99, relation="matview", populated=True)
    assert row_total({"tables": source}, prefix="public.") == (2, 35, True)


def test_materialized_view_must_be_populated_on_the_target() -> None:
    source = {"public.stats": exact(7, relation="matview", populated=True)}
    unpopulated = {"public.stats": exact(None, relation="matview", populated=False)}
    rows = compare_counts(source, unpopulated)
    assert count_failures(rows) == [
        "public.stats: materialized view not populated on the target (REFRESH MATERIALIZED VIEW it)"
    ]
    assert count_failures(compare_counts(source, {"public.stats": exact(6, relation="matview")}))
    assert count_failures(compare_counts(unpopulated, unpopulated)) == []
    assert count_totals(compare_counts(source, source))["tables"] == 0


# Dump, restore, reports -------------------------------------------------------------------------


def test_dump_table_list_skips_table_attach_entries() -> None:
    listing = "\n".join(
        [
            "216; 1259 16385 TABLE public events app",
            "217; 1259 16390 TABLE public events_2025 app",
            "3300; 0 0 TABLE ATTACH public events_2025 app",
            "3351; 0 16390 TABLE DATA public events_2025 app",
            "218; 1259 16400 TABLE public PlayCount app",
        ]
    )
    assert dump_toc_tables(listing) == [
        "public.events",
        "public.events_2025",
        'public."PlayCount"',
    ]


def test_restore_failure_quotes_the_database_error() -> None:
    output = (
        'psql:<stdin>:120: ERROR:  cannot drop inherited constraint "e_pkey" of relation "e"\n'
        "Command was: ALTER TABLE ONLY public.e DROP CONSTRAINT e_pkey;\n"
    )
    assert restore_first_error(output).startswith("ERROR:  cannot drop inherited constraint")
    assert restore_first_error("pg_restore: error: bad\n") == "pg_restore: error: bad"


def test_each_attempt_keeps_its_own_report() -> None:
    record = "/ev/outputs/validate_db.json"
    failing = attempt_record(record, "fail", '{"verdict": "fail"}\n')
    passing = attempt_record(record, "pass", '{"verdict": "pass"}\n')
    assert failing.startswith("/ev/outputs/validate_db.fail-") and failing.endswith(".json")
    assert passing.startswith("/ev/outputs/validate_db.pass-")
    assert failing != passing
    assert attempt_record(record, "pass", '{"verdict": "pass"}\n') == passing  # a rerun: same file


# The stack's passwords ---------------------------------------------------------------------------


def test_stack_passwords_survive_every_encoding() -> None:
    stack = stack_module()
    for _ in range(20):
        password = stack.new_secret()
        assert all(char in password for char in stack.SECRET_SPECIALS)
        assert password == password.strip()
        env = parse_env(
            stack.env_line("P", password)
            + stack.env_line("URL", f"postgresql://app:{stack.url_password(password)}@h:1/app")
            + stack.env_line("KW", f"host=h dbname=app password={stack.keyword_value(password)}"),
            lookup=lambda name: None,
        )
        assert env["P"] == password
        assert dsn_parts(env["URL"])["password"] == password
        assert psycopg.conninfo.conninfo_to_dict(env["KW"])["password"] == password


def test_stack_down_says_how_far_it_got(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    stack = stack_module()
    tree = tmp_path / "tree"
    for i in range(5):
        (tree / f"d{i}").mkdir(parents=True)
        (tree / f"d{i}" / "f").write_text("x")
        (tree / f"d{i}" / "link").symlink_to("/nonexistent")
    assert stack.remove_tree(tree, every=0) == 10
    assert not tree.exists()
    lines = capsys.readouterr().out.splitlines()
    assert lines and all("files removed so far" in line for line in lines)
