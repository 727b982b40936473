"""Benchmark (not a timed test): validation throughput on a 1,000,000-row database.

    scripts/bench.sh        # runs the tests marked slow, prints rows/s

Builds ``bench.parents`` (10,000 rows) and ``bench.children`` (1,000,000 rows, a foreign key to
parents) in the source and the staging databases, then times the host-side validation exactly as
``validate.database`` runs it on the host: exact row counts on both sides and the orphan checks on
the target. Nothing here asserts a speed; the numbers go to stdout and ``.bench/validation.json``.
"""

import json
import subprocess
import time

import pytest
from conftest import REPO, superuser

from turnout.remote import hostside_command, parse_hostside_output

ROWS = 1_000_000
PARENTS = 10_000

pytestmark = pytest.mark.slow


def build(conn) -> None:
    conn.execute("DROP SCHEMA IF EXISTS bench CASCADE")
    conn.execute("CREATE SCHEMA bench AUTHORIZATION app")
    conn.execute("SET ROLE app")
    conn.execute("CREATE TABLE bench.parents (id int PRIMARY KEY)")
    conn.execute(f"INSERT INTO bench.parents SELECT generate_series(1, {PARENTS})")
    conn.execute(
        "CREATE TABLE bench.children (id bigint PRIMARY KEY, parent_id int "
        "REFERENCES bench.parents (id), payload text)"
    )
    conn.execute(
        "INSERT INTO bench.children SELECT i, 1 + i %% %s, md5(i::text) "
        "FROM generate_series(1, %s) AS i",
        (PARENTS, ROWS),
    )
    conn.execute("RESET ROLE")
    conn.execute("ANALYZE bench.parents, bench.children")


def hostside(stack: dict, action: str, params: dict) -> tuple[dict, float]:
    command = hostside_command(action, params, python=stack["python"]).get_raw_value()
    started = time.perf_counter()
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    answer = parse_hostside_output(result.stdout.splitlines())
    assert answer["ok"], answer
    return answer, elapsed


def test_validation_rows_per_second(stack: dict) -> None:
    for role in ("source", "staging"):
        with superuser(stack, role) as conn:
            build(conn)
    env_file = stack["hosts"]["staging"]["env_file"]
    tables = ["bench.parents", "bench.children"]
    total = ROWS + PARENTS
    timings = {}
    counts = {}
    for side, dsn_env in (("source", "SOURCE_DATABASE_URL"), ("target", "DATABASE_URL")):
        counts[side], timings[f"row_counts_{side}"] = hostside(
            stack,
            "row_counts",
            {"dsn_env": dsn_env, "env_file": env_file, "tables": tables, "timeout_ms": 60000},
        )
    assert counts["source"]["tables"]["bench.children"] == {"count": ROWS, "exact": True}
    orphans, timings["orphans_target"] = hostside(
        stack,
        "orphans",
        {"dsn_env": "DATABASE_URL", "env_file": env_file, "relations": [], "foreign_keys": True},
    )
    bench_checks = [c for c in orphans["checks"] if c["child"] == "bench.children"]
    assert bench_checks and all(c["orphans"] == 0 for c in bench_checks)
    seconds = sum(timings.values())
    report = {
        "rows_per_side": total,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
        "total_seconds": round(seconds, 3),
        "rows_validated_per_second": round(2 * total / seconds),
    }
    (REPO / ".bench").mkdir(exist_ok=True)
    (REPO / ".bench" / "validation.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\nvalidation benchmark:", json.dumps(report, indent=2))
    for role in ("source", "staging"):
        with superuser(stack, role) as conn:
            conn.execute("DROP SCHEMA bench CASCADE")
