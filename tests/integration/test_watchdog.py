"""The host-side watchdog takes a tool's whole process group down: a ``pg_dump --jobs 2`` killed
by its timeout leaves no worker behind, and nothing half-written is kept."""

import os
import shutil
import subprocess
import threading
import time
from urllib.parse import quote

import pytest
from conftest import STACK_DIR, superuser

from turnout.remote import hostside_command, parse_hostside_output

DB = "turnout_wdt"


@pytest.fixture(scope="module")
def big_source(stack: dict):
    with superuser(stack, "source", "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB} OWNER app")
    with superuser(stack, "source", DB) as conn:
        for table in ("left_half", "right_half"):  # two tables: two busy workers
            conn.execute(
                f"CREATE TABLE {table} AS SELECT g AS id, md5(g::text) AS body "
                "FROM generate_series(1, 1500000) g"
            )
            conn.execute(f"ALTER TABLE {table} OWNER TO app")
    root = STACK_DIR / "watchdog_test"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    password = (STACK_DIR / "secrets" / "pg_source_app").read_text().strip()
    port = stack["pg"]["source"]["port"]
    env_file = root / "wdt.env"
    env_file.touch(mode=0o600)
    password = quote(password, safe="")  # it holds @ : / % # ' " and a space
    env_file.write_text(f"WDT_SOURCE=postgresql://app:{password}@127.0.0.1:{port}/{DB}\n")
    yield {"root": root, "env_file": str(env_file), "python": stack["python"]}
    with superuser(stack, "source", "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    shutil.rmtree(root, ignore_errors=True)


def processes_with(needle: str) -> list[int]:
    """Pids whose command line contains ``needle`` (from /proc, this machine being the host)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if needle in cmdline and "pg_dump" in cmdline:
            found.append(int(pid))
    return found


def test_timeout_kills_every_pg_dump_worker(big_source: dict) -> None:
    dest = big_source["root"] / "out" / "big.dir"
    params = {
        "dsn_env": "WDT_SOURCE",
        "env_file": big_source["env_file"],
        "dest": str(dest),
        "format": "directory",
        "jobs": 2,
        "timeout_s": 1.5,
        "log_path": str(big_source["root"] / "pg_dump.log"),
    }
    command = hostside_command("pg_dump", params, python=big_source["python"]).get_raw_value()
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:  # how many pg_dump processes (leader + workers) were alive at once
        while not done.is_set():
            seen.append(len(processes_with(str(dest))))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = subprocess.run(
            ["sh", "-c", command], capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        done.set()
        watcher.join()
    out = parse_hostside_output(result.stdout.splitlines())
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pg_dump timed out" in out["error"] and "nothing kept" in out["error"]
    assert max(seen) >= 3, seen  # the leader and both workers were running when it fired
    time.sleep(0.2)
    assert processes_with(str(dest)) == []  # no survivor: the whole group was killed
    assert not dest.exists() and not list(dest.parent.glob("big.dir.partial-*"))
    assert "killed by the watchdog after 2s" in (big_source["root"] / "pg_dump.log").read_text()
