"""Judging a migration: row counts, orphans, assets, extensions; verdicts and a readable table.

Pure functions over the facts' results (``RowCounts``, ``Orphans``, ``AssetSample``,
``Extensions``), so every rule is unit-tested without a database.

    rows = compare_counts(source["tables"], target["tables"], allowed_diff=0)
    print(render_count_table(rows))
    failures = count_failures(rows)

Counting follows the catalog (``RowCounts``): a partitioned table is one row whose count is its
partitions' sum, its partitions listed beneath it (indented); a failure in a partition is reported
once (on the partition), and totals count each row once (``count_totals``). A materialized view
is compared too and must be populated on the target when it is on the source.
"""

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class CountRow:
    """One table's counts on both sides and the verdict (``ok``, ``estimate`` or ``FAIL``)."""

    table: str
    source: int | None
    target: int | None
    source_exact: bool
    target_exact: bool
    difference: int | None
    verdict: str
    reason: str = ""
    relation: str = "table"
    parent: str | None = None
    depth: int = 0

    @property
    def kind(self) -> str:
        return "exact" if self.source_exact and self.target_exact else "estimate"


def tree_order(source: dict[str, dict]) -> list[tuple[str, int]]:
    """The source's names in report order with their depth: top-level tables sorted, each
    partitioned table followed by its partitions (recursively)."""
    children: dict[str | None, list[str]] = {}
    for name in sorted(source):
        parent = source[name].get("parent")
        children.setdefault(parent if parent in source else None, []).append(name)
    ordered: list[tuple[str, int]] = []

    def visit(name: str, depth: int) -> None:
        ordered.append((name, depth))
        for child in children.get(name, []):
            visit(child, depth + 1)

    for name in children.get(None, []):
        visit(name, 0)
    return ordered


def compare_counts(
    source: dict[str, dict],
    target: dict[str, dict],
    allowed_diff: int = 0,
    require_exact: bool = False,
) -> list[CountRow]:
    """Compare per-table counts (``{"public.users": {"count": 12, "exact": True}}``), in the
    catalog's order (``tree_order``: partitions beneath their partitioned table).

    The allowed difference applies only when both counts are exact (S1.4); a comparison involving
    an estimate is reported as ``estimate`` and passes, unless ``require_exact`` makes it fail.
    A materialized view populated on the source fails when the target's is not.
    Tables only in the target are not judged (the source decides what must arrive).
    """
    return [
        compare_one(name, depth, source[name], target.get(name), allowed_diff, require_exact)
        for name, depth in tree_order(source)
    ]


def compare_one(
    name: str, depth: int, src: dict, dst: dict | None, allowed_diff: int, require_exact: bool
) -> CountRow:
    """One table's (or materialized view's) row of the comparison."""
    where = {
        "relation": src.get("relation", "table"),
        "parent": src.get("parent"),
        "depth": depth,
    }
    if dst is None:
        return CountRow(
            name,
            src["count"],
            None,
            src["exact"],
            False,
            None,
            "FAIL",
            "missing in the target",
            **where,
        )
    if where["relation"] == "matview" and (src["count"] is None or dst["count"] is None):
        return compare_matview(name, src, dst, where)
    difference = dst["count"] - src["count"]
    both_exact = src["exact"] and dst["exact"]
    if both_exact and abs(difference) <= allowed_diff:
        verdict, reason = "ok", ""
    elif both_exact:
        verdict = "FAIL"
        reason = (
            f"row counts differ by {difference:+d} (allowed {allowed_diff}); if staging drifted "
            "since its restore, rerun with --data restore=always to restore it again"
        )
    elif require_exact:
        verdict, reason = (
            "FAIL",
            "only an estimate (count timed out) and exact counts are required",
        )
    else:
        verdict, reason = "estimate", "count timed out; compared by planner estimate only"
    return CountRow(
        name,
        src["count"],
        dst["count"],
        src["exact"],
        dst["exact"],
        difference,
        verdict,
        reason,
        **where,
    )


def compare_matview(name: str, src: dict, dst: dict, where: dict) -> CountRow:
    """A materialized view unpopulated on one side: a failure when the source's holds rows and
    the target's does not (the app would error on it); fine when neither is populated."""
    if src["count"] is not None:
        reason = "materialized view not populated on the target (REFRESH MATERIALIZED VIEW it)"
        return CountRow(name, src["count"], None, True, True, None, "FAIL", reason, **where)
    verdict = "ok"
    reason = "not populated on the source either" if dst["count"] is None else ""
    return CountRow(name, None, dst["count"], True, True, None, verdict, reason, **where)


def count_totals(rows: list[CountRow]) -> dict:
    """Rows over the real tables, each row counted once: top-level tables (a partitioned
    table's count is its partitions' sum, so partitions are not added again); materialized
    views are derived data and left out."""
    top = [row for row in rows if row.parent is None and row.relation != "matview"]
    return {
        "tables": len(top),
        "source": sum(row.source or 0 for row in top),
        "target": sum(row.target or 0 for row in top),
        "exact": all(row.kind == "exact" for row in top),
    }


def count_failures(rows: list[CountRow]) -> list[str]:
    """One line per failing row; a partitioned table whose partitions are compared is not
    reported itself (a row missing in a partition is one failure, not two)."""
    parents = {row.parent for row in rows if row.parent}
    return [
        f"{row.table}: {row.reason}"
        for row in rows
        if row.verdict == "FAIL" and not (row.relation == "partitioned" and row.table in parents)
    ]


def render_count_table(rows: list[CountRow]) -> str:
    """A fixed-width table: table, source, target, exact/estimate, difference, verdict;
    partitions indented beneath their table, materialized views marked, and a total line."""
    header = ("table", "source", "target", "kind", "diff", "verdict")
    lines = [header]
    for row in rows:
        label = "  " * row.depth + row.table
        label += " (materialized view)" if row.relation == "matview" else ""
        lines.append(
            (
                label,
                "-" if row.source is None else str(row.source),
                "-" if row.target is None else str(row.target),
                row.kind,
                "-" if row.difference is None else f"{row.difference:+d}",
                row.verdict + (f" ({row.reason})" if row.reason else ""),
            )
        )
    if rows:
        totals = count_totals(rows)
        lines.append(
            (
                f"total ({totals['tables']} tables)",
                str(totals["source"]),
                str(totals["target"]),
                "exact" if totals["exact"] else "estimate",
                f"{totals['target'] - totals['source']:+d}",
                "",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        (
            "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
            + "  "
            + line[-1]
        ).rstrip()
        for line in lines
    )


def orphan_failures(checks: list[dict]) -> list[str]:
    """One line per check that found child rows without their parent."""
    failures = []
    for check in checks:
        if check["orphans"]:
            columns = ", ".join(check["columns"])
            parent = ", ".join(check["parent_columns"])
            failures.append(
                f"{check['orphans']} orphan row(s) in {check['child']}({columns}) without "
                f"{check['parent']}({parent}) [{check['name']}]"
            )
    return failures


def asset_failures(sample: dict) -> list[str]:
    """Paths outside the prefix, missing or unreadable sampled files."""
    failures = []
    outside = sum(column["outside_prefix"] for column in sample["columns"].values())
    if outside:
        examples = ", ".join(sample.get("outside_prefix_examples", [])[:3])
        failures.append(f"{outside} asset path(s) outside the prefix, e.g. {examples}")
    if sample.get("missing_count"):
        failures.append(
            f"{sample['missing_count']} sampled asset(s) missing, e.g. {sample['missing'][0]}"
        )
    if sample.get("unreadable_count"):
        failures.append(
            f"{sample['unreadable_count']} sampled asset(s) unreadable, e.g. "
            f"{sample['unreadable'][0]}"
        )
    return failures


def extension_failures(
    installed: dict[str, str], required: tuple[str, ...] | list[str]
) -> list[str]:
    missing = [name for name in required if name not in installed]
    if not missing:
        return []
    return [f"required extension(s) missing on the target: {', '.join(missing)}"]


def count_rows_as_dicts(rows: list[CountRow]) -> list[dict]:
    return [{**asdict(row), "kind": row.kind} for row in rows]
