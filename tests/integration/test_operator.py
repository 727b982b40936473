"""What an operator hit the night before a cutover (issue 7), each for real on the stack's @ssh
staging host, through the pyinfra CLI exactly as an operator runs it: Ctrl-C, two runs at once, a
stale lock, one line per failure, a truncated dump, a drifted staging, a killed rsync, evidence
modes and the change count of an unpinned run.

A slow step is made for real: a 1.5-million-row table in the source (dropped afterwards), so the
dump runs for seconds and can be interrupted while it runs.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, REPO, STACK_DIR, run_pyinfra, run_stack, stack_env, superuser

BASE = ("tests/stack/inventory.py", "deploys/dry_run.py", "--limit", "stack-staging")
SEED_ROWS = "200"
# The app is not brought up here: these runs check the rehearsal, not the app's health.
QUIET = ("health=false",)
TOOLS = ("pg_dump", "pg_restore", "rsync")


def args(*data: str, timestamp: str | None, mode: str = "-y") -> list[str]:
    options = [mode, *BASE]
    items = (*QUIET, *data) + ((f"evidence_timestamp={timestamp}",) if timestamp else ())
    for item in items:
        options += ["--data", item]
    return options


def rehearse(*data: str, timestamp: str | None, mode: str = "-y", env: dict | None = None):
    return run_pyinfra(*args(*data, timestamp=timestamp, mode=mode), env=env)


def start(*data: str, timestamp: str, log: Path) -> subprocess.Popen:
    """A rehearsal in the background, its output in ``log``."""
    handle = log.open("w")
    return subprocess.Popen(
        [str(BIN / "pyinfra"), *args(*data, timestamp=timestamp)],
        env=stack_env(),
        cwd=REPO,
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
    )


def evidence_root(stack: dict) -> Path:
    return Path(stack["hosts"]["staging"]["evidence_root"])


def run_dir(stack: dict, timestamp: str) -> Path:
    return evidence_root(stack) / "dry_run" / timestamp


def lock_record(stack: dict) -> dict | None:
    path = evidence_root(stack) / ".turnout.lock"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return json.loads(text) if text.strip() else None


def wait_for(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def our_processes(*names: str) -> list[tuple[int, str]]:
    """(pid, argv) of every process whose program is one of ``names`` and whose argv names this
    stack's directory (other test runs on this machine have their own)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        argv = raw.split(b"\0")
        program = os.path.basename(argv[0].decode("utf-8", "replace")) if argv else ""
        text = raw.replace(b"\0", b" ").decode("utf-8", "replace")
        if program in names and str(STACK_DIR) in text:
            found.append((int(entry.name), text))
    return found


def clear_lock(stack: dict) -> None:
    """The command a stale-lock refusal prints, for the tests' own cleanup."""
    lock = evidence_root(stack) / ".turnout.lock"
    if lock.exists():
        subprocess.run(["flock", "--nonblock", lock, "truncate", "--size=0", lock], check=False)


def turnout_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "turnout:" in line]


def assert_one_line(result: subprocess.CompletedProcess, reason: str) -> str:
    """A failure that printed exactly one line naming it, and none of pyinfra's crash noise."""
    text = result.stdout
    assert result.returncode != 0, text[-3000:]
    for noise in (
        "Traceback",
        "pyinfra error in",
        "Operation error in",
        "Error: executed",
        "No hosts remaining",
        '{"ok": false',
    ):
        assert noise not in text, (noise, text[-3000:])
    lines = turnout_lines(text)
    assert len(lines) == 1, text[-3000:]
    assert reason in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def seeded(stack: dict) -> dict:
    run_stack("seed", SEED_ROWS)
    state = json.loads((STACK_DIR / "stack.json").read_text())
    yield state
    clear_lock(state)


@pytest.fixture(scope="module")
def passed(seeded: dict) -> dict:
    """One passing pinned rehearsal: its dump is the given dump of later runs."""
    result = rehearse(timestamp="op-pass")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "rehearsal passed" in result.stdout
    return {"dump": str(run_dir(seeded, "op-pass") / "src_artifacts" / "source.dump")}


@pytest.fixture
def slow_source(seeded: dict):
    """A source table big enough for the dump to run for seconds."""
    with superuser(seeded, "source") as conn:
        conn.execute(
            "CREATE TABLE public.op_big AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) "
            "AS payload FROM generate_series(1, 1500000) g"
        )
        conn.execute("ALTER TABLE public.op_big OWNER TO app")
    try:
        yield seeded
    finally:
        with superuser(seeded, "source") as conn:
            conn.execute("DROP TABLE IF EXISTS public.op_big")
        clear_lock(seeded)


def dumping() -> list:
    return our_processes("pg_dump")


def test_ctrl_c_exits_130_stops_the_host_step_and_marks_the_evidence(
    slow_source: dict, tmp_path: Path
) -> None:
    """Before: pyinfra printed ``Exiting upon user request!`` and exited 0 while pg_dump kept
    running on the host, and the evidence had no mark."""
    log = tmp_path / "run.log"
    run = start(timestamp="op-ctrl-c", log=log)
    try:
        wait_for(dumping, "pg_dump to run on the host")
        run.send_signal(signal.SIGINT)
        code = run.wait(120)
    finally:
        if run.poll() is None:
            run.kill()
    text = log.read_text()
    assert code == 130, text[-3000:]
    assert "Exiting upon user request" not in text
    assert not our_processes(*TOOLS), our_processes(*TOOLS)
    mark = json.loads((run_dir(slow_source, "op-ctrl-c") / "interrupted").read_text())
    assert mark["step"] == "Dump the source database"
    assert mark["cause"].startswith("SIGINT on the control machine")
    assert mark["running"][0]["action"] == "pg_dump" and "source.dump" in mark["stopped"]
    summary = turnout_lines(text)
    assert len(summary) == 1 and "interrupted by SIGINT" in summary[0], text[-3000:]
    assert 'during "Dump the source database" on stack-staging: stopped pg_dump' in summary[0]
    assert "rerun the same command" in summary[0]
    assert "Traceback" not in text
    # nothing half-written is kept, and the lock is free again
    artifacts = run_dir(slow_source, "op-ctrl-c") / "src_artifacts"
    assert not list(artifacts.iterdir())
    assert lock_record(slow_source) is None


def test_a_killed_control_machine_stops_the_host_step_and_frees_the_lock(
    slow_source: dict, tmp_path: Path
) -> None:
    """kill -9 of pyinfra: the host sees its channels close, stops pg_dump, marks the evidence
    and releases the lock (before: pg_dump ran on to the end, nothing was marked)."""
    run = start(timestamp="op-killed", log=tmp_path / "run.log")
    try:
        wait_for(dumping, "pg_dump to run on the host")
        run.send_signal(signal.SIGKILL)
        run.wait(60)
    finally:
        if run.poll() is None:
            run.kill()
    wait_for(lambda: not our_processes(*TOOLS), "pg_dump to be stopped", timeout=60)
    wait_for(lambda: lock_record(slow_source) is None, "the lock to be released", timeout=60)
    mark = json.loads((run_dir(slow_source, "op-killed") / "interrupted").read_text())
    assert mark["cause"] == "the connection to the control machine closed"
    assert mark["running"][0]["action"] == "pg_dump"


def test_a_second_run_is_refused_naming_the_holder(slow_source: dict, tmp_path: Path) -> None:
    """Before: both runs dumped and restored into the same evidence directory."""
    first = start(timestamp="op-first", log=tmp_path / "first.log")
    try:
        holder = wait_for(lambda: lock_record(slow_source), "the first run to take the lock")
        began = time.monotonic()
        second = rehearse(timestamp="op-second")
        elapsed = time.monotonic() - began
        assert first.poll() is None, "the first run ended before the second was refused"
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(120)
    line = assert_one_line(second, "another run holds the host lock on stack-staging")
    assert f"pid {holder['pid']}, task dry_run, started {holder['started']}" in line
    assert re.search(r"by \S+@\S+", line) and "op-first" in line
    assert elapsed < 60  # refused at once, not after waiting for the first run
    assert not run_dir(slow_source, "op-second").exists()


def test_a_stale_lock_is_reported_with_the_command_that_clears_it(
    slow_source: dict, tmp_path: Path
) -> None:
    """The lock holder killed with the run (kill -9 of both): the next run names the stale lock
    and the exact command that clears it; after that command, runs go ahead."""
    run = start(timestamp="op-stale", log=tmp_path / "run.log")
    try:
        holder = wait_for(lambda: lock_record(slow_source), "the run to take the lock")
        os.kill(int(holder["pid"]), signal.SIGKILL)
        run.send_signal(signal.SIGKILL)
        run.wait(60)
        wait_for(lambda: not our_processes(*TOOLS), "the run's tools to stop", timeout=60)
        refused = rehearse(timestamp="op-after-stale", mode="--dry")
        line = assert_one_line(refused, "is stale: the run that took it")
        assert f"pid {holder['pid']}, task dry_run" in line
        command = line.split("clear it on the host with: ", 1)[1].split("; nothing", 1)[0]
        lock = evidence_root(slow_source) / ".turnout.lock"
        assert command == f"flock --nonblock {lock} truncate --size=0 {lock}"
        subprocess.run(["sh", "-c", command], check=True)
        again = rehearse(timestamp="op-after-stale", mode="--dry")
        assert again.returncode == 0, again.stdout[-3000:]
    finally:
        clear_lock(slow_source)


def test_bad_inputs_print_one_line_each(seeded: dict, passed: dict) -> None:
    """RELIABILITY 29 at the deploy level. Before: ``pyinfra error in …/preflight.py line 25:``
    (or ``…/settings.py line 810``) and, for a failing step, the reason twice plus ``Error:
    executed 0 commands`` and ``No hosts remaining!``."""
    env_file = Path(seeded["hosts"]["staging"]["env_file"])
    original = env_file.read_text()
    port = seeded["pg"]["source"]["port"]
    env_file.write_text(
        original + f"BAD_SOURCE_URL=postgresql://app:Wrong-Pw-4242@127.0.0.1:{port}/app\n"
    )
    cases = [
        (("source_dsn_env=BAD_SOURCE_URL",), "cannot connect to the source database"),
        (("tables=public.users,public.nope",), "public.nope does not exist"),
        (("dump_path=/nonexistent/source.dump",), "dump_path /nonexistent/source.dump is not"),
        (("i_know_what_im_doing=yes",), "setting i_know_what_im_doing must be"),
        (("count_timeout_ms=abc",), "setting count_timeout_ms must be a positive integer"),
        (("drop_schema=true",), "refusing the restore with drop_schema"),
    ]
    try:
        results = [(rehearse(*data, timestamp="op-bad"), reason) for data, reason in cases]
    finally:
        env_file.write_text(original)
    for result, reason in results:
        line = assert_one_line(result, reason)
        assert "Wrong-Pw-4242" not in result.stdout
        ways = ("set ", "check", "give", "--data", "unset", "fix")
        assert any(word in line for word in ways), line
    assert not run_dir(seeded, "op-bad").exists()
    # a failing step: its reason once, nothing else
    step = rehearse(
        f"dump_path={passed['dump']}", "required_extensions=pg_trgm,vector", timestamp="op-step"
    )
    assert_one_line(step, "required extension(s) missing on the target: vector")


def test_an_unreachable_host_is_one_line(seeded: dict) -> None:
    ssh = seeded["ssh"]
    env = stack_env(
        TURNOUT_STAGING_HOSTS="127.0.0.1:1",
        TURNOUT_SSH_KNOWN_HOSTS=ssh["known_hosts"],
        TURNOUT_SSH_KEY=ssh["client_key"],
    )
    result = run_pyinfra("-y", "inventories/staging.py", "deploys/dry_run.py", env=env)
    line = assert_one_line(result, "cannot reach the host over ssh")
    assert "check its address, port and key in the inventory" in line


def test_a_truncated_dump_is_refused_before_any_step(
    seeded: dict, passed: dict, tmp_path: Path
) -> None:
    """Before: only the header was read; ``--dry`` showed ``(0 tables)`` and exited 0."""
    whole = Path(passed["dump"]).read_bytes()
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(whole[: len(whole) // 2])
    for mode in ("--dry", "-y"):
        result = rehearse(f"dump_path={truncated}", timestamp="op-truncated", mode=mode)
        assert_one_line(result, f"dump_path {truncated} is not a complete dump")
    assert not run_dir(seeded, "op-truncated").exists()


def test_a_drifted_staging_is_healed_with_restore_always(seeded: dict, passed: dict) -> None:
    """Before: the marker matched, the restore was skipped without a word, and the failure gave
    no way forward."""
    given = f"dump_path={passed['dump']}"
    with superuser(seeded, "staging") as conn:
        conn.execute("DELETE FROM meters WHERE id = (SELECT max(id) FROM meters)")
    plan = rehearse(given, timestamp="op-drift", mode="--dry")
    assert plan.returncode == 0, plan.stdout[-3000:]
    assert re.search(
        r"Skip: already restored from dump sha256:[0-9a-f]{12} .*— set restore=always to "
        "restore again",
        plan.stdout,
    ), plan.stdout[-3000:]
    failed = rehearse(given, timestamp="op-drift")
    line = assert_one_line(failed, "public.meters: row counts differ by -1 (allowed 0)")
    assert "rerun with --data restore=always" in line
    plan = rehearse(given, "restore=always", timestamp="op-drift", mode="--dry")
    assert "again (restore=always" in plan.stdout, plan.stdout[-3000:]
    healed = rehearse(given, "restore=always", timestamp="op-drift")
    assert healed.returncode == 0, healed.stdout[-3000:]
    with superuser(seeded, "staging") as conn:
        assert conn.execute("SELECT count(*) FROM meters").fetchone()[0] == int(SEED_ROWS)


def rsync_leftovers(tree: Path) -> list[Path]:
    """rsync's temporaries: ``.<name>.XXXXXX``."""
    return [p for p in tree.rglob(".*") if re.fullmatch(r"\..+\.[A-Za-z0-9]{6}", p.name)]


def received(temp_dir: Path) -> list[Path]:
    """What rsync is receiving in its ``--temp-dir`` (``big.bin.XXXXXX``)."""
    return [p for p in temp_dir.glob("*") if p.is_file()] if temp_dir.is_dir() else []


def transferring() -> list:
    """The mirror's rsync processes (not its dry runs nor listings)."""
    return [(pid, argv) for pid, argv in our_processes("rsync") if "--temp-dir=" in argv]


def test_a_killed_rsync_leaves_no_temporary_in_the_live_tree(seeded: dict, passed: dict) -> None:
    """Before: a killed rsync left ``.big.bin.XXXXXX`` in the live staging tree for good."""
    source = Path(seeded["source"]["assets_dir"]) / "op-big"
    live = Path(seeded["hosts"]["staging"]["assets_dir"])
    source.mkdir(exist_ok=True)
    with (source / "big.bin").open("wb") as handle:
        for _ in range(48):
            handle.write(os.urandom(8 * 1024 * 1024))
    given = f"dump_path={passed['dump']}"
    outside = live.parent / f".{live.name}.turnout-rsync-tmp"
    try:
        for _ in range(5):  # the transfer may finish before it is caught: try again
            shutil.rmtree(live / "op-big", ignore_errors=True)
            run = start(given, timestamp="op-rsync", log=Path(str(source) + ".log"))
            try:
                # mid-transfer: rsync's temporary of big.bin exists (wherever rsync keeps it)
                seen = wait_for(
                    lambda: received(outside) or rsync_leftovers(live / "op-big"),
                    "rsync to receive big.bin",
                    timeout=120,
                )
                for pid, _ in transferring():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                run.wait(120)
            finally:
                if run.poll() is None:
                    run.kill()
            if not (live / "op-big" / "big.bin").exists():
                break  # killed mid-transfer
        else:
            pytest.fail("rsync finished every time before it could be killed")
        # rsync received big.bin outside the live tree; a killed transfer leaves nothing in it
        assert all(path.parent == outside for path in seen), seen
        assert not rsync_leftovers(live), rsync_leftovers(live)
        again = rehearse(given, timestamp="op-rsync")
        assert again.returncode == 0, again.stdout[-3000:]
        assert (live / "op-big" / "big.bin").stat().st_size == 48 * 8 * 1024 * 1024
        assert not rsync_leftovers(live)
        assert not list(live.parent.glob(".*turnout-rsync-tmp*"))
    finally:
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(live / "op-big", ignore_errors=True)
        Path(str(source) + ".log").unlink(missing_ok=True)


def test_every_evidence_directory_is_0700(seeded: dict, passed: dict) -> None:
    """Before: ``evidence/`` and ``evidence/dry_run`` were 0755."""
    root = evidence_root(seeded)
    for path in (root, root / "dry_run", run_dir(seeded, "op-pass"), root / ".turnout.lock.d"):
        assert oct(path.stat().st_mode & 0o777) == "0o700", path
    for path in run_dir(seeded, "op-pass").rglob("*"):
        if path.is_dir():
            assert oct(path.stat().st_mode & 0o777) == "0o700", path


def changed_operations(stdout: str) -> set[str]:
    """The operations pyinfra's results table counts as changed (a number under Success)."""
    changed, inside = set(), False
    for line in stdout.splitlines():
        if line.strip().startswith("Operation") and "Success" in line:
            inside = True
            continue
        if inside and line.strip().startswith("Grand total"):
            break
        parts = line.split()
        if inside and len(parts) >= 5 and parts[-3] != "-":
            changed.add(" ".join(parts[:-4]))
    return changed


def test_an_unpinned_rerun_changes_what_the_readme_says(seeded: dict, passed: dict) -> None:
    """README's count, measured: an unpinned run on an unchanged host (before: README said one
    change; the stack showed seven)."""
    first = rehearse(timestamp=None)
    assert first.returncode == 0, first.stdout[-3000:]
    again = rehearse(timestamp=None)
    assert again.returncode == 0, again.stdout[-3000:]
    assert changed_operations(again.stdout) == {
        "Evidence directory",
        "Dump the source database",
        "Restore into staging",
        "Required extensions",
        "Validate the database",
        "Validate the constraints",
        "Validate the assets",
    }, again.stdout[-3000:]
    readme = (REPO / "README.md").read_text()
    assert "8 changes" in readme  # the seven above and the health report
