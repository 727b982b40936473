"""Progress lines of the long steps, on the real stack: the rehearsal at default verbosity with
``progress_interval_s=0.2`` on a source made big enough (a 300,000-row table, a few large asset
files) that the dump, the restore and the mirror each last several intervals. Their progress lines
reach the operator's screen and the steps' logs; a no-op rerun prints none."""

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import STACK_DIR, run_pyinfra, run_stack, superuser

TIMESTAMP = "progress"
BASE = ("tests/stack/inventory.py", "deploys/dry_run.py", "--limit", "stack-staging")
BULK_DIR = "progress-bulk"
BULK_FILES = 8
BULK_FILE_BYTES = 64 * 1024 * 1024
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
# step -> what its progress line says
PROGRESS = {
    "pg_dump": re.compile(r"\] turnout: pg_dump: (\S+ \S+ of dump written|reading the dump back)"),
    "pg_restore": re.compile(r"\] turnout: pg_restore: table data \d+ of \d+ started"),
    "rsync": re.compile(r"\] turnout: rsync: \S+ \S+ transferred \(\d+% of the bytes to send\)"),
}
LOGS = {"pg_dump": "pg_dump.log", "pg_restore": "pg_restore.log", "rsync": "rsync.log"}


def rehearse() -> str:
    """The rehearsal at default verbosity, progress every 0.2 s; its output (ANSI removed)."""
    result = run_pyinfra(
        "-y",
        *BASE,
        "--data",
        f"evidence_timestamp={TIMESTAMP}",
        "--data",
        "progress_interval_s=0.2",
    )
    text = ANSI_RE.sub("", result.stdout)
    assert result.returncode == 0, text[-4000:]
    assert "rehearsal passed" in text, text[-4000:]
    return text


def progress_lines(text: str, step: str) -> list[str]:
    """The progress lines of ``step`` in pyinfra's output, as ``turnout: <step>: …``."""
    return [
        line[line.index("turnout: ") :] for line in text.splitlines() if PROGRESS[step].search(line)
    ]


@pytest.fixture(scope="module")
def big_source(stack: dict):
    """The seeded stack with a 300,000-row table in the source and large asset files (removed
    from both sides afterwards)."""
    run_stack("seed", "200")
    up = run_pyinfra(
        "-y", "--limit", "stack-staging", "tests/stack/inventory.py", "deploys/app_up.py"
    )
    assert up.returncode == 0, up.stdout[-3000:]
    state = json.loads((STACK_DIR / "stack.json").read_text())
    with superuser(state, "source") as conn:
        conn.execute(
            "CREATE TABLE public.progress_bulk AS SELECT g AS id, md5(g::text) || "
            "md5((g * 7)::text) || md5((g * 13)::text) AS payload "
            "FROM generate_series(1, 300000) g"
        )
        conn.execute("ALTER TABLE public.progress_bulk OWNER TO app")
    bulk = Path(state["source"]["assets_dir"]) / BULK_DIR
    bulk.mkdir(exist_ok=True)
    for index in range(BULK_FILES):
        with open(bulk / f"blob-{index}.bin", "wb") as handle:
            handle.write(os.urandom(BULK_FILE_BYTES))
    try:
        yield state
    finally:
        for role in ("source", "staging"):
            with superuser(state, role) as conn:
                conn.execute("DROP TABLE IF EXISTS public.progress_bulk")
        shutil.rmtree(bulk, ignore_errors=True)
        staging_assets = Path(state["hosts"]["staging"]["assets_dir"]) / BULK_DIR
        shutil.rmtree(staging_assets, ignore_errors=True)


def test_long_steps_print_progress_at_default_verbosity(
    big_source: dict, stack_secrets: list[str]
) -> None:
    text = rehearse()
    logs = Path(big_source["hosts"]["staging"]["evidence_root"]) / "dry_run" / TIMESTAMP / "logs"
    for step, log_name in LOGS.items():
        lines = progress_lines(text, step)
        assert lines, f"no progress line of {step}:\n{text[-4000:]}"
        print("\n".join(lines))  # shown with -rP
        log = (logs / log_name).read_text()
        for line in lines:
            assert line in log, (line, log[-2000:])
    dump_lines = progress_lines(text, "pg_dump")
    assert any("on disk (a compressed dump ends smaller)" in line for line in dump_lines)
    assert not any('{"ok"' in line for line in text.splitlines()), text[-4000:]
    evidence = "\n".join(path.read_text() for path in logs.iterdir())
    for secret in stack_secrets:
        assert secret not in text and secret not in evidence

    again = rehearse()
    for step in LOGS:
        assert not progress_lines(again, step), again[-4000:]
    assert "turnout: pg_" not in again and "turnout: rsync" not in again, again[-4000:]
