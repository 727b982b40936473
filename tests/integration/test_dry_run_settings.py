"""The rehearsal's settings through the real deploy, on the real stack: the ones an operator turns
on the night (work_dir, dump_format=directory, rsync_delete, orphan_relations, health retries,
rsync_rsh) and the ones it must refuse (migrate_redis, a wrong host key), each run exactly as an
operator runs it (`pyinfra -y … --data …`)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import changes, run_pyinfra, run_stack

BASE = ("tests/stack/inventory.py", "deploys/dry_run.py", "--limit", "stack-staging")
SEED_ROWS = "30"


def rehearsal(*data: str, timestamp: str):
    options = []
    for item in (f"evidence_timestamp={timestamp}", *data):
        options += ["--data", item]
    return run_pyinfra("-y", *BASE, *options)


def run_dir(stack: dict, timestamp: str) -> Path:
    return Path(stack["hosts"]["staging"]["evidence_root"]) / "dry_run" / timestamp


def failure_lines(stdout: str) -> list[str]:
    return [line.strip() for line in stdout.splitlines() if "turnout:" in line]


@pytest.fixture(scope="module")
def seeded(stack: dict) -> dict:
    run_stack("seed", SEED_ROWS)
    up = run_pyinfra(
        "-y", "--limit", "stack-staging", "tests/stack/inventory.py", "deploys/app_up.py"
    )
    assert up.returncode == 0, up.stdout[-3000:]
    from conftest import STACK_DIR

    return json.loads((STACK_DIR / "stack.json").read_text())


@pytest.fixture(scope="module")
def base_run(seeded: dict) -> Path:
    """One passing rehearsal; later runs reuse its dump (``dump_path``) to stay quick."""
    result = rehearsal(timestamp="settings-base")
    assert result.returncode == 0, result.stdout[-3000:]
    return run_dir(seeded, "settings-base") / "src_artifacts" / "source.dump"


def test_migrate_redis_is_refused_before_anything(seeded: dict) -> None:
    result = rehearsal("migrate_redis=true", timestamp="redis")
    assert result.returncode != 0
    assert "migrate_redis is true, but the rehearsal does not copy Redis" in result.stdout
    assert not run_dir(seeded, "redis").exists()


def test_work_dir_keeps_the_dump_and_reruns_clean(seeded: dict, base_run: Path) -> None:
    work = Path(seeded["dir"]) / "work-dir"
    result = rehearsal(f"work_dir={work}", timestamp="work")
    assert result.returncode == 0, result.stdout[-3000:]
    assert (work / "source.dump").is_file() and (work / "source.dump.sha256").is_file()
    assert not (run_dir(seeded, "work") / "src_artifacts" / "source.dump").exists()
    again = rehearsal(f"work_dir={work}", timestamp="work")
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-3000:]


def test_directory_format_dump_with_jobs(seeded: dict, base_run: Path) -> None:
    result = rehearsal("dump_format=directory", "dump_jobs=2", timestamp="dirfmt")
    assert result.returncode == 0, result.stdout[-3000:]
    dump = run_dir(seeded, "dirfmt") / "src_artifacts" / "source.dir"
    assert (dump / "toc.dat").is_file() and len(list(dump.glob("*.dat*"))) > 2
    assert "as directory (2 jobs) to" in result.stdout  # the dump step says what it makes
    again = rehearsal("dump_format=directory", "dump_jobs=2", timestamp="dirfmt")
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-3000:]


def test_rsync_delete_removes_strays_only_when_asked(seeded: dict, base_run: Path) -> None:
    stray = Path(seeded["hosts"]["staging"]["assets_dir"]) / "stray-from-an-old-release.txt"
    stray.write_text("not in the source\n")
    kept = rehearsal(f"dump_path={base_run}", timestamp="no-delete")
    assert kept.returncode == 0, kept.stdout[-3000:]
    assert stray.exists()  # without rsync_delete nothing is deleted
    deleted = rehearsal(f"dump_path={base_run}", "rsync_delete=true", timestamp="delete")
    assert deleted.returncode == 0, deleted.stdout[-3000:]
    assert not stray.exists()
    assert "1 to delete (--delete)" in deleted.stdout  # the mirror says what it removes


def test_declared_orphan_relation_through_the_deploy(seeded: dict, base_run: Path) -> None:
    """A relation declared in settings (no foreign key behind it) is checked like a foreign key:
    every meter id is taken as a user id here, and most have no such user."""
    result = rehearsal(
        f"dump_path={base_run}", "orphan_relations=meters.id->users.id", timestamp="declared"
    )
    assert result.returncode != 0
    lines = failure_lines(result.stdout)
    assert lines and "orphan row(s) in public.meters(id) without public.users(id)" in lines[0]
    assert "[declared:meters.id->users.id]" in lines[0]
    report = json.loads((run_dir(seeded, "declared") / "outputs" / "validate_db.json").read_text())
    assert report["verdict"] == "fail"


class FlakyHealth(BaseHTTPRequestHandler):
    """A health endpoint that is down (503) for its first ``down`` answers, then healthy; it
    records when each request came."""

    down = 3
    seen: list[float] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        FlakyHealth.seen.append(time.monotonic())
        healthy = len(FlakyHealth.seen) > FlakyHealth.down
        body = json.dumps({"status": "ok"} if healthy else {"status": "starting"}).encode()
        self.send_response(200 if healthy else 503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def test_health_retries_with_backoff(seeded: dict, base_run: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHealth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    FlakyHealth.seen = []
    try:
        result = rehearsal(
            f"dump_path={base_run}",
            f"base_url=http://127.0.0.1:{server.server_address[1]}",
            "health_retries=4",
            timestamp="retry",
        )
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stdout[-3000:]
    # the step's first probe (503), then the wait: 503, pause, 503, longer pause, 200
    waits = FlakyHealth.seen[-3:]
    gaps = [later - earlier for earlier, later in zip(waits, waits[1:], strict=False)]
    assert len(gaps) == 2 and gaps[0] >= 0.45 and gaps[1] >= 0.9, gaps
    record = json.loads((run_dir(seeded, "retry") / "outputs" / "health.json").read_text())
    assert record["healthy"] is True and record["attempts"] >= 3


def test_health_that_never_comes_up_fails_with_one_line(seeded: dict, base_run: Path) -> None:
    FlakyHealth.seen = []
    FlakyHealth.down = 10**6
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHealth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = rehearsal(
            f"dump_path={base_run}",
            f"base_url=http://127.0.0.1:{server.server_address[1]}",
            "health_retries=2",
            timestamp="never",
        )
    finally:
        server.shutdown()
        FlakyHealth.down = 3
    assert result.returncode != 0
    assert any(
        "health check failed after 3 attempt(s): health answered HTTP 503" in line
        for line in (failure_lines(result.stdout))
    ), result.stdout[-3000:]


def test_rsync_rsh_with_a_wrong_host_key_is_refused_before_anything(seeded: dict) -> None:
    """A remote assets source whose host key does not match the pinned one: refused by the
    pre-flight (ssh's strict checking, never interactive), nothing created."""
    ssh = seeded["ssh"]
    wrong = Path(seeded["dir"]) / "wrong_known_hosts"
    staging_key = ssh["hosts"]["staging"]
    wrong.write_text(  # the prod port, pinned to the staging host's key
        f"[127.0.0.1]:{ssh['hosts']['prod']['port']} {staging_key['host_key_type']} "
        f"{staging_key['host_key']}\n"
    )
    rsh = (
        f"ssh -p {ssh['hosts']['prod']['port']} -i {ssh['client_key']} "
        f"-o UserKnownHostsFile={wrong} -o StrictHostKeyChecking=yes"
    )
    fresh = Path(seeded["dir"]) / "hosts" / "staging" / "data" / "assets-wrong-key"
    result = rehearsal(
        f"rsync_source=root@127.0.0.1:{seeded['source']['assets_dir']}",
        f"rsync_rsh={rsh}",
        f"assets_dir={fresh}",
        timestamp="wrong-key",
    )
    assert result.returncode != 0
    assert "cannot mirror root@127.0.0.1:" in result.stdout
    assert "Host key verification failed" in result.stdout
    assert not run_dir(seeded, "wrong-key").exists() and not fresh.exists()
