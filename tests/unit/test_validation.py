"""The verdict rules of a validation, independent of any database."""

from turnout.validation import (
    asset_failures,
    compare_counts,
    count_failures,
    extension_failures,
    orphan_failures,
    render_count_table,
)


def exact(n: int) -> dict:
    return {"count": n, "exact": True}


def estimate(n: int) -> dict:
    return {"count": n, "exact": False}


def test_equal_exact_counts_pass() -> None:
    rows = compare_counts({"public.a": exact(3)}, {"public.a": exact(3), "public.extra": exact(1)})
    assert [(r.table, r.verdict) for r in rows] == [("public.a", "ok")]
    assert count_failures(rows) == []


def test_difference_beyond_allowed_fails_with_reason() -> None:
    rows = compare_counts({"public.a": exact(10)}, {"public.a": exact(8)}, allowed_diff=1)
    assert count_failures(rows) == [
        "public.a: row counts differ by -2 (allowed 1); if staging drifted since its restore, "
        "rerun with --data restore=always to restore it again"
    ]
    rows = compare_counts({"public.a": exact(10)}, {"public.a": exact(9)}, allowed_diff=1)
    assert count_failures(rows) == []


def test_missing_target_table_fails() -> None:
    rows = compare_counts({"public.a": exact(1)}, {})
    assert count_failures(rows) == ["public.a: missing in the target"]


def test_estimates_pass_unless_exact_is_required() -> None:
    rows = compare_counts({"public.a": estimate(1000)}, {"public.a": exact(990)})
    assert rows[0].verdict == "estimate" and rows[0].kind == "estimate"
    assert count_failures(rows) == []
    rows = compare_counts(
        {"public.a": estimate(1000)}, {"public.a": exact(1000)}, require_exact=True
    )
    assert "exact counts are required" in count_failures(rows)[0]


def test_allowed_difference_is_not_applied_to_estimates() -> None:
    rows = compare_counts({"public.a": estimate(100)}, {"public.a": estimate(50)}, allowed_diff=0)
    assert rows[0].verdict == "estimate"


def test_table_rendering() -> None:
    rows = compare_counts(
        {"public.users": exact(12), "public.b": estimate(5)},
        {"public.users": exact(11), "public.b": exact(5)},
    )
    lines = render_count_table(rows).splitlines()
    assert lines[0].split() == ["table", "source", "target", "kind", "diff", "verdict"]
    assert lines[1].split()[:5] == ["public.b", "5", "5", "estimate", "+0"]
    assert lines[2].split()[:6] == ["public.users", "12", "11", "exact", "-1", "FAIL"]


def test_orphans() -> None:
    checks = [
        {
            "name": "fk:m_u",
            "child": "public.meters",
            "columns": ["user_id"],
            "parent": "public.users",
            "parent_columns": ["id"],
            "orphans": 2,
        },
        {
            "name": "fk:ok",
            "child": "public.x",
            "columns": ["y"],
            "parent": "public.y",
            "parent_columns": ["id"],
            "orphans": 0,
        },
    ]
    assert orphan_failures(checks) == [
        "2 orphan row(s) in public.meters(user_id) without public.users(id) [fk:m_u]"
    ]


def test_assets() -> None:
    sample = {
        "columns": {"public.t.p": {"rows": 3, "outside_prefix": 1, "sampled": 2}},
        "outside_prefix_examples": ["/tmp/x"],
        "missing": ["/app/.data/a"],
        "missing_count": 1,
        "unreadable": [],
        "unreadable_count": 0,
    }
    assert asset_failures(sample) == [
        "1 asset path(s) outside the prefix, e.g. /tmp/x",
        "1 sampled asset(s) missing, e.g. /app/.data/a",
    ]


def test_extensions() -> None:
    assert extension_failures({"plpgsql": "1.0"}, ("vector",)) == [
        "required extension(s) missing on the target: vector"
    ]
    assert extension_failures({"vector": "0.7"}, ["vector"]) == []
