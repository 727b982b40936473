"""A full evidence filesystem fails the run with one line (RELIABILITY 23), for real: the evidence
root is a small tmpfs mounted for the test, nearly filled, and the rehearsal runs through the
pyinfra CLI over the stack's @ssh staging host. The dump is kept elsewhere (``work_dir``), so the
first write to run out of room is the evidence's own (a step's log or report)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import STACK_DIR, run_pyinfra, run_stack

BASE = ("tests/stack/inventory.py", "deploys/dry_run.py", "--limit", "stack-staging")


@pytest.fixture(scope="module")
def seeded(stack: dict) -> dict:
    run_stack("seed", "30")
    return json.loads((STACK_DIR / "stack.json").read_text())


@pytest.fixture
def small_evidence(seeded: dict):
    """A 256 KiB tmpfs with about 4 KiB left: room for directories, not for the run's writes."""
    mount = Path(seeded["dir"]) / "evidence-tmpfs"
    mount.mkdir(exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, f"a tmpfs is needed for this test: {mounted.stderr}"
    try:
        filler = mount / "filler"
        with filler.open("wb", buffering=0) as handle:
            try:
                while True:
                    handle.write(b"\0" * 4096)
            except OSError:
                pass
        os.truncate(filler, filler.stat().st_size - 8192)  # leave two pages
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_evidence_filesystem_fails_the_run_with_one_line(
    seeded: dict, small_evidence: Path
) -> None:
    work = Path(seeded["dir"]) / "full-evidence-work"
    result = run_pyinfra(
        "-y",
        *BASE,
        "--data",
        f"evidence_root={small_evidence}",
        "--data",
        f"work_dir={work}",
        "--data",
        "evidence_timestamp=full",
        "--data",
        "health=false",
    )
    assert result.returncode != 0, result.stdout[-3000:]
    failures = [line.strip() for line in result.stdout.splitlines() if "turnout:" in line]
    assert len(failures) == 1, result.stdout[-3000:]
    assert "No space left on device" in failures[0], failures
    assert "cannot write the evidence log" in failures[0] and "free space there" in failures[0]
    assert "Traceback" not in result.stdout
    assert "rehearsal passed" not in result.stdout
