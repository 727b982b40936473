"""Judging a migration: row counts, orphans, assets, extensions; verdicts and a readable table.

Pure functions over the facts' results (``RowCounts``, ``Orphans``, ``AssetSample``,
``Extensions``), so every rule is unit-tested without a database.

    rows = compare_counts(source["tables"], target["tables"], allowed_diff=0)
    print(render_count_table(rows))
    failures = count_failures(rows)
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

    @property
    def kind(self) -> str:
        return "exact" if self.source_exact and self.target_exact else "estimate"


def compare_counts(
    source: dict[str, dict],
    target: dict[str, dict],
    allowed_diff: int = 0,
    require_exact: bool = False,
) -> list[CountRow]:
    """Compare per-table counts (``{"public.users": {"count": 12, "exact": True}}``).

    The allowed difference applies only when both counts are exact (S1.4); a comparison involving
    an estimate is reported as ``estimate`` and passes, unless ``require_exact`` makes it fail.
    Tables only in the target are not judged (the source decides what must arrive).
    """
    rows = []
    for table in sorted(source):
        src = source[table]
        dst = target.get(table)
        if dst is None:
            rows.append(
                CountRow(
                    table,
                    src["count"],
                    None,
                    src["exact"],
                    False,
                    None,
                    "FAIL",
                    "missing in the target",
                )
            )
            continue
        difference = dst["count"] - src["count"]
        both_exact = src["exact"] and dst["exact"]
        if both_exact and abs(difference) <= allowed_diff:
            verdict, reason = "ok", ""
        elif both_exact:
            verdict = "FAIL"
            reason = f"row counts differ by {difference:+d} (allowed {allowed_diff})"
        elif require_exact:
            verdict, reason = (
                "FAIL",
                "only an estimate (count timed out) and exact counts are required",
            )
        else:
            verdict, reason = "estimate", "count timed out; compared by planner estimate only"
        rows.append(
            CountRow(
                table,
                src["count"],
                dst["count"],
                src["exact"],
                dst["exact"],
                difference,
                verdict,
                reason,
            )
        )
    return rows


def count_failures(rows: list[CountRow]) -> list[str]:
    return [f"{row.table}: {row.reason}" for row in rows if row.verdict == "FAIL"]


def render_count_table(rows: list[CountRow]) -> str:
    """A fixed-width table: table, source, target, exact/estimate, difference, verdict."""
    header = ("table", "source", "target", "kind", "diff", "verdict")
    lines = [header]
    for row in rows:
        lines.append(
            (
                row.table,
                "-" if row.source is None else str(row.source),
                "-" if row.target is None else str(row.target),
                row.kind,
                "-" if row.difference is None else f"{row.difference:+d}",
                row.verdict + (f" ({row.reason})" if row.reason else ""),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
        + "  "
        + line[-1]
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
