"""The rehearsal on a source database that looks like a real app's (``stack.py seed-real``):
declarative partitioning (range and list, with primary keys), a second schema with a space in its
name, quoted mixed-case names, a table without a primary key, composite and self-referencing
foreign keys, identity and serial columns, a view, a materialized view, a domain, an enum, a
generated column and a trigger. Its DSNs are keyword DSNs in staging's ``.env``
(``REAL_SOURCE_DATABASE_URL``, ``REAL_DATABASE_URL``); it has no asset files and the staging app's
health says nothing about it, so ``assets=false health=false``.

Every drift is planted for real in the staging database and undone afterwards.
"""

import json
import os
import re
from pathlib import Path

import pytest
from conftest import STACK_DIR, changes, run_pyinfra, run_stack, superuser

BASE = ("tests/stack/inventory.py", "deploys/dry_run.py", "--limit", "stack-staging")
REAL = (
    "source_dsn_env=REAL_SOURCE_DATABASE_URL",
    "target_dsn_env=REAL_DATABASE_URL",
    "assets=false",
    "health=false",
)
ROWS = "300"
MARKER = "state/restored-REAL_DATABASE_URL.json"


def rehearsal(timestamp: str, *data: str, dry: bool = False):
    args = ["--dry"] if dry else ["-y"]
    options = []
    for item in (f"evidence_timestamp={timestamp}", *REAL, *data):
        options += ["--data", item]
    return run_pyinfra(*args, *BASE, *options)


def evidence(stack: dict) -> Path:
    return Path(stack["hosts"]["staging"]["evidence_root"])


def leaf_counts(stack: dict, role: str) -> dict[str, int]:
    """``count(*)`` of every table that holds rows (partitions, not their parents), keyed as
    turnout writes names (``format('%I.%I')``), by the test's own superuser connection."""
    with superuser(stack, role, "real") as conn:
        names = conn.execute(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
            "AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ORDER BY 1"
        ).fetchall()
        return {
            name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]  # noqa: S608 - catalog names quoted by format('%I')
            for (name,) in names
        }


def report(stack: dict, timestamp: str, name: str = "validate_db.json") -> dict:
    return json.loads((evidence(stack) / "dry_run" / timestamp / "outputs" / name).read_text())


@pytest.fixture(scope="module")
def real(stack: dict) -> dict:
    run_stack("seed-real", ROWS)
    return stack


@pytest.fixture(scope="module")
def twice(real: dict) -> dict:
    """The rehearsal twice in a row, each with a new dump (two timestamps): the second restores
    into a staging that already holds the schema (partitioned tables with primary keys)."""
    first = rehearsal("real-1")
    second = rehearsal("real-2")
    return {"first": first, "second": second}


def test_rehearsal_passes_twice_with_a_new_dump_each_time(real: dict, twice: dict) -> None:
    for run in (twice["first"], twice["second"]):
        assert run.returncode == 0, run.stdout[-4000:]
        assert "rehearsal passed" in run.stdout
    dumps = [
        json.loads(
            (evidence(real) / "dry_run" / t / "src_artifacts" / "source.dump.sha256").read_text()
        )
        for t in ("real-1", "real-2")
    ]
    assert dumps[0]["stat"] != dumps[1]["stat"]  # two dumps, two restores
    marker = json.loads((evidence(real) / MARKER).read_text())
    assert marker["dump_sha256"] == dumps[1]["sha256"]


def test_report_totals_equal_count_over_the_real_tables(real: dict, twice: dict) -> None:
    source = leaf_counts(real, "source")
    assert len(source) == 11  # 8 tables, 2 of them partitioned into 5 partitions
    got = report(real, "real-2")
    assert got["verdict"] == "pass"
    assert got["totals"] == {
        "tables": 8,
        "source": sum(source.values()),
        "target": sum(leaf_counts(real, "staging").values()),
        "exact": True,
    }
    rows = {row["table"]: row for row in got["counts"]}
    assert rows["public.events"]["relation"] == "partitioned"
    assert rows["public.events"]["source"] == (
        source["public.events_2025"] + source["public.events_2026"]
    )
    assert rows["public.events_2025"]["parent"] == "public.events"
    assert rows['"Odd Schema"."Listeners_other"']["parent"] == '"Odd Schema"."Listeners"'
    assert rows['public."PlayCount"']["source"] == int(ROWS)
    matview = rows["public.track_plays"]
    assert matview["relation"] == "matview" and matview["source"] == matview["target"] == int(ROWS)
    # The readable table: partitions indented beneath their table, a total line.
    out = twice["second"].stdout
    assert re.search(r"\]   public\.events_2025\s+\d+\s+\d+\s+exact", out), out[-4000:]
    total = sum(source.values())
    assert re.search(rf"total \(8 tables\)\s+{total}\s+{total}\s+exact\s+\+0", out), out[-4000:]


def test_the_dump_lists_its_tables_once(real: dict, twice: dict) -> None:
    """13 tables (8 and 5 partitions), not 18 with ``ATTACH.public`` entries."""
    record = json.loads(
        (evidence(real) / "dry_run" / "real-2" / "src_artifacts" / "source.dump.sha256").read_text()
    )
    assert record["tables"] == 13
    assert not [name for name in record["table_names"] if "ATTACH" in name]
    assert 'public."PlayCount"' in record["table_names"]
    assert "(13 tables) into real" in twice["second"].stdout


def test_a_pinned_rerun_changes_nothing(real: dict, twice: dict) -> None:
    again = rehearsal("real-2")
    assert again.returncode == 0, again.stdout[-3000:]
    assert changes(again.stdout) == 0


def test_dry_says_the_asset_steps_and_health_are_off(real: dict, twice: dict) -> None:
    plan = rehearsal("real-plan", dry=True)
    assert plan.returncode == 0, plan.stdout[-3000:]
    assert "Mirroring the assets is off (assets=false)" in plan.stdout
    assert "Validating the assets is off (assets=false)" in plan.stdout
    assert "The health check is off (health=false)" in plan.stdout
    assert not (evidence(real) / "dry_run" / "real-plan").exists()
    # Without the switch, an empty column list is refused while the deploy loads, with the way out.
    mirror_from = f"rsync_source={real['hosts']['staging']['assets_dir']}"  # one that exists
    items = (*REAL[:2], "health=false", mirror_from, "asset_path_columns=")
    options = [f"--data={item}" for item in items]
    refused = run_pyinfra("--dry", *BASE, *options)
    assert refused.returncode != 0
    assert "turn the asset steps off with --data assets=false" in refused.stdout


def test_drop_schema_plan_counts_partitions_once(real: dict, twice: dict) -> None:
    plan = rehearsal("real-drop", "drop_schema=true", "i_know_what_im_doing=true", dry=True)
    assert plan.returncode == 0, plan.stdout[-3000:]
    staging = leaf_counts(real, "staging")
    public_rows = sum(n for name, n in staging.items() if name.startswith("public."))
    # artists, albums, tracks, "PlayCount", events (2 partitions), event_notes
    assert f"drop schema public first: removes 6 tables, {public_rows} rows" in plan.stdout


def test_tables_setting_takes_sql_quoted_names(real: dict, twice: dict) -> None:
    run = rehearsal("real-2", 'tables=public."PlayCount","Odd Schema"."Listeners"')
    assert run.returncode == 0, run.stdout[-3000:]
    got = report(real, "real-2")
    assert [row["table"] for row in got["counts"]] == [
        '"Odd Schema"."Listeners"',
        '"Odd Schema"."Listeners_eu"',
        '"Odd Schema"."Listeners_other"',
        '"Odd Schema"."Listeners_us"',
        'public."PlayCount"',
    ]
    assert got["settings"]["tables"] == ['public."PlayCount"', '"Odd Schema"."Listeners"']
    rehearsal("real-2")  # the report of the whole database again


def test_one_extra_row_in_a_partition_is_reported_once(real: dict, twice: dict) -> None:
    with superuser(real, "staging", "real") as conn:
        conn.execute("INSERT INTO public.events (id, happened_at) VALUES (999999, '2025-06-01')")
    try:
        run = rehearsal("real-2")
        assert run.returncode != 0
        assert "public.events_2025: row counts differ by +1 (allowed 0)" in run.stdout
        assert "public.events: row counts" not in run.stdout
        failures = report(real, "real-2")["failures"]
        assert len(failures) == 1, failures
        assert failures[0].startswith("public.events_2025: row counts differ by +1 (allowed 0)")
    finally:
        with superuser(real, "staging", "real") as conn:
            conn.execute("DELETE FROM public.events WHERE id = 999999")


def test_unpopulated_materialized_view_fails_and_each_report_is_kept(
    real: dict, twice: dict
) -> None:
    outputs = evidence(real) / "dry_run" / "real-2" / "outputs"
    with superuser(real, "staging", "real") as conn:
        conn.execute("REFRESH MATERIALIZED VIEW public.track_plays WITH NO DATA")
    try:
        run = rehearsal("real-2")
        assert run.returncode != 0
        assert "public.track_plays: materialized view not populated on the target" in run.stdout
    finally:
        with superuser(real, "staging", "real") as conn:
            conn.execute("REFRESH MATERIALIZED VIEW public.track_plays")
    failed = sorted(outputs.glob("validate_db.fail-*.json"))
    assert failed, sorted(p.name for p in outputs.iterdir())
    again = rehearsal("real-2")
    assert again.returncode == 0, again.stdout[-3000:]
    assert report(real, "real-2")["verdict"] == "pass"
    # The failing report is still there, beside the passing one.
    assert all(p.exists() for p in failed)
    assert any(
        json.loads(p.read_text())["failures"][0].startswith("public.track_plays") for p in failed
    )
    assert list(outputs.glob("validate_db.pass-*.json"))


def test_failed_restore_changes_nothing_and_keeps_the_marker(real: dict, twice: dict) -> None:
    """A restore the database refuses (a table app may not drop): one line quoting the
    database's error; the staging database and the marker of the last good restore unchanged,
    so the pinned rerun that passed before still passes."""
    marker = evidence(real) / MARKER
    kept = marker.read_bytes()
    before = leaf_counts(real, "staging")
    with superuser(real, "staging", "real") as conn:
        conn.execute("ALTER TABLE public.albums OWNER TO postgres")
    try:
        run = rehearsal("real-3")
        assert run.returncode != 0
        assert "must be owner of table albums" in run.stdout, run.stdout[-3000:]
        assert "failed and was rolled back" in run.stdout
    finally:
        with superuser(real, "staging", "real") as conn:
            conn.execute("ALTER TABLE public.albums OWNER TO app")
    assert marker.read_bytes() == kept
    assert leaf_counts(real, "staging") == before
    rerun = rehearsal("real-2")
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert changes(rerun.stdout) == 0


def test_psql_never_commits_a_script_pg_restore_did_not_finish(real: dict, tmp_path: Path) -> None:
    """The restore pipeline itself: a pg_restore that dies after writing part of its SQL (here a
    stand-in that writes a CREATE TABLE, then exits 1) must leave nothing committed by psql."""
    from turnout.hostside.base import HostsideError
    from turnout.hostside.dump import restore_pipeline

    fake = tmp_path / "pg_restore"
    fake.write_text("#!/bin/sh\necho 'CREATE TABLE public.partial_probe (id int);'\nexit 1\n")
    fake.chmod(0o755)
    whole = tmp_path / "pg_restore_ok"
    whole.write_text("#!/bin/sh\necho 'CREATE TABLE public.whole_probe (id int);'\n")
    whole.chmod(0o755)
    password = (STACK_DIR / "secrets" / "pg_staging_superuser").read_text().strip()
    port = real["pg"]["staging"]["port"]
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
    psql += [f"--dbname=host=127.0.0.1 port={port} dbname=real user=postgres", "-f", "-"]
    env = {**os.environ, "PGPASSWORD": password}
    with pytest.raises(HostsideError, match="pg_restore exited 1"):
        restore_pipeline([str(fake)], psql, env, None, 60)
    restore_pipeline([str(whole)], psql, env, None, 60)
    with superuser(real, "staging", "real") as conn:
        found = conn.execute(
            "SELECT to_regclass('public.partial_probe')::text, "
            "to_regclass('public.whole_probe')::text"
        ).fetchone()
        conn.execute("DROP TABLE IF EXISTS public.whole_probe")
    assert found == (None, "whole_probe")
