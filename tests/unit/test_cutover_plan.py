"""Units of the cutover and rollback: which steps run on which host, the release refusal, the
run record's rerun rule, Alembic's answers parsed, the restore's sequence notices."""

from types import SimpleNamespace

import pytest

from turnout.cutover import plan_for_host
from turnout.facts.alembic import parse_history, parse_revisions
from turnout.guard import ReleaseRefused
from turnout.hostside.dump import sequences_advanced
from turnout.runrecord import build_record, summary
from turnout.settings import SettingsError


def fake_host(groups=("prod",), inventory_groups=None, **data):
    inventory_groups = inventory_groups or {g: [1] for g in groups}
    return SimpleNamespace(
        data=data, groups=list(groups), inventory=SimpleNamespace(groups=inventory_groups)
    )


def test_one_host_runs_every_chosen_step_in_the_fixed_order() -> None:
    plan = plan_for_host(fake_host(steps="health,freeze,migrate"))
    assert plan.steps == ("freeze", "migrate", "health")
    skipped = dict(plan.skipped)
    assert skipped["backup"] == "not chosen in steps"
    assert plan.databases == ("target",)  # migrate runs where the database is


def test_restores_run_only_with_their_input_and_the_release() -> None:
    plan = plan_for_host(fake_host())
    assert (
        "restore-db" not in plan.steps and dict(plan.skipped)["restore-db"] == "no src_dump given"
    )
    with pytest.raises(ReleaseRefused, match="refusing restore-db"):
        plan_for_host(fake_host(src_dump="/srv/app.dump"))
    with pytest.raises(ReleaseRefused, match="refusing restore-assets"):
        plan_for_host(fake_host(src_assets="/srv/app.tar.gz", i_know_what_im_doing=False))
    released = plan_for_host(fake_host(src_dump="/srv/app.dump", i_know_what_im_doing=True))
    assert "restore-db" in released.steps


def test_a_restore_not_chosen_needs_no_release() -> None:
    plan = plan_for_host(fake_host(src_dump="/srv/app.dump", steps="freeze,up"))
    assert plan.steps == ("freeze", "up")


def test_roles_split_the_steps_between_app_and_database_hosts() -> None:
    groups = {"prod": [1, 2], "prod_app": [1, 2], "prod_db": [2]}
    data = {"app_hosts_group": "prod_app", "db_hosts_group": "prod_db"}
    app = plan_for_host(fake_host(("prod", "prod_app"), groups, **data))
    both = plan_for_host(fake_host(("prod", "prod_app", "prod_db"), groups, **data))
    assert app.steps == ("freeze", "up", "health", "smoke") and app.databases == ()
    assert dict(app.skipped)["backup"].startswith("not the database host")
    assert both.steps == ("freeze", "backup", "migrate", "up", "health", "smoke")


def test_a_role_group_missing_from_the_inventory_is_refused() -> None:
    with pytest.raises(SettingsError, match="names group 'prod_db', which the inventory"):
        plan_for_host(fake_host(db_hosts_group="prod_db"))


def test_smoke_and_health_switched_off_are_skipped_with_the_reason() -> None:
    plan = plan_for_host(fake_host(smoke=False, health=False))
    skipped = dict(plan.skipped)
    assert skipped["smoke"] == "smoke is off (smoke=false)"
    assert skipped["health"] == "health is off (health=false)"


def test_the_run_record_keeps_unchanged_steps_so_a_rerun_rewrites_nothing() -> None:
    step = {"name": "Freeze", "start": "t1", "end": "t2", "changed": True, "status": "ok"}
    first = build_record(None, [step], {"task": "cutover", "exit": 0})
    assert first["started_at"] == "t1" and first["ended_at"] == "t2"
    rerun = build_record(
        first,
        [{**step, "start": "t8", "end": "t9", "changed": False}],
        {"task": "cutover", "exit": 0},
    )
    assert rerun == first
    changed = build_record(first, [{**step, "start": "t8", "end": "t9"}], {"task": "cutover"})
    assert changed["steps"]["Freeze"]["start"] == "t8" and changed["ended_at"] == "t9"


def test_the_summary_names_revisions_and_artifacts() -> None:
    embedded = {
        "revision_before": {"current": ["0002"]},
        "revision_after": {"current": ["0003"]},
        "restore_db": {"dump": "/a.dump", "dump_sha256": "aa"},
        "restore_assets": {"tarball": "/a.tgz", "sha256": "bb"},
        "backup": None,
    }
    result = summary(embedded, {"backup": "/e/src_artifacts/baseline.dump.sha256"})
    assert result["revisions"] == {"before": "0002", "after": "0003"}
    assert result["artifacts"] == {
        "src_dump": {"path": "/a.dump", "sha256": "aa"},
        "src_assets": {"path": "/a.tgz", "sha256": "bb"},
    }


def test_alembic_answers_are_parsed() -> None:
    assert parse_revisions(["INFO  [alembic.runtime.migration] Context impl.", "0002 (head)"]) == [
        "0002"
    ]
    assert parse_revisions([]) == []
    history = [
        "0003 -> 0004 (head), add index",
        "0002 -> 0003, notes on meters",
        "0001 -> 0002, gallery",
    ]
    pending = parse_history(history, ["0002"])
    assert [p["revision"] for p in pending] == ["0003", "0004"]
    assert pending[0]["message"] == "notes on meters"
    everything = parse_history(["<base> -> 0001 (head), initial"], [])
    assert everything == [{"revision": "0001", "down": "<base>", "message": "initial"}]


def test_the_restores_sequence_notices_are_read_back() -> None:
    output = (
        'psql:<stdin>:9: NOTICE:  turnout-sequence {"sequence" : "public.t_id_seq", '
        '"column" : "public.t.id", "max" : 100, "next_value" : 1}\nother line\n'
    )
    assert sequences_advanced(output) == [
        {"sequence": "public.t_id_seq", "column": "public.t.id", "max": 100, "next_value": 1}
    ]


def test_the_report_is_the_same_whatever_order_the_record_was_read_in() -> None:
    from turnout.runrecord import render_report

    steps = {"B": {"start": "t1", "end": "t2"}, "A": {"start": "t1", "end": "t3"}}
    record = {"task": "migrate", "timestamp": "t", "exit": 0, "steps": steps}
    flipped = {**record, "steps": dict(reversed(list(steps.items())))}
    assert render_report(record) == render_report(flipped)
