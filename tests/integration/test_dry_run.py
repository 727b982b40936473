"""deploys/dry_run.py end to end on the real stack: source cluster + assets -> the staging host.

Every failure is planted for real in the data or the files, and undone afterwards. Failure runs
reuse the passing run's dump (``dump_path``): its restore marker makes the restore a no-op, so the
planted drift in staging survives into the validation, exactly as it would for an operator.
"""

import hashlib
import json
import re
import threading
import urllib.parse
from pathlib import Path

import pytest
from conftest import STACK_DIR, ArgvWatcher, changes, run_pyinfra, run_stack, stack_env, superuser

TIMESTAMP = "rehearsal"
BASE = ("tests/stack/inventory.py", "deploys/dry_run.py", "--limit", "stack-staging")
SEED_ROWS = "200"


def rehearsal(
    *data: str,
    timestamp: str = TIMESTAMP,
    verbosity: str = "",
    dry: bool = False,
    env: dict[str, str] | None = None,
):
    args = ["-y"] if not dry else ["--dry"]
    if verbosity:
        args.append(verbosity)
    options = []
    for item in (f"evidence_timestamp={timestamp}", *data):
        options += ["--data", item]
    return run_pyinfra(*args, *BASE, *options, env=env)


def run_dir(stack: dict, timestamp: str = TIMESTAMP) -> Path:
    return Path(stack["hosts"]["staging"]["evidence_root"]) / "dry_run" / timestamp


def staging_fingerprint(stack: dict, role: str = "staging") -> dict:
    """Every table's rows (hashed) in the staging (or source) database, every file of its asset
    tree, and every path under the host's evidence root (what a --dry must not create)."""
    tables = {}
    with superuser(stack, role) as conn:
        names = conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        ).fetchall()
        for (name,) in names:
            tables[name] = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "  # noqa: S608 - names from the catalog, quoted by format('%I')
                f"FROM {name} t"
            ).fetchone()
    files = {}
    root = Path(
        stack["hosts"]["staging"]["assets_dir"]
        if role == "staging"
        else stack["source"]["assets_dir"]
    )
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        files[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    evidence = Path(stack["hosts"]["staging"]["evidence_root"])
    made = sorted(  # the host lock's file aside: --dry takes the lock too, and leaves the file
        str(path)
        for path in (evidence.rglob("*") if evidence.exists() else [])
        if path.name != ".turnout.lock" and path != evidence
    )
    return {"tables": tables, "files": files, "evidence": made}


@pytest.fixture(scope="module")
def seeded(stack: dict) -> dict:
    run_stack("seed", SEED_ROWS)
    up = run_pyinfra(
        "-y", "--limit", "stack-staging", "tests/stack/inventory.py", "deploys/app_up.py"
    )
    assert up.returncode == 0, up.stdout[-3000:]
    return json.loads((STACK_DIR / "stack.json").read_text())  # now with the source side


@pytest.fixture(scope="module")
def outputs() -> list[str]:
    return []


@pytest.fixture(scope="module")
def passing(seeded: dict, outputs: list[str]):
    """The dry run, then the rehearsal itself (at -v), with every process's argv watched."""
    before = staging_fingerprint(seeded)
    source_before = staging_fingerprint(seeded, "source")
    expected_mirror = files_to_mirror(
        Path(seeded["source"]["assets_dir"]), Path(seeded["hosts"]["staging"]["assets_dir"])
    )
    dry = rehearsal(dry=True, verbosity="-v")
    after = staging_fingerprint(seeded)
    source_after = staging_fingerprint(seeded, "source")
    outputs.append(dry.stdout)
    with ArgvWatcher() as watcher:
        real = rehearsal(verbosity="-v")
    outputs.append(real.stdout)
    return {
        "dry": dry,
        "real": real,
        "before": before,
        "after": after,
        "source_before": source_before,
        "source_after": source_after,
        "argv": watcher.seen,
        "mirror": expected_mirror,
    }


def files_to_mirror(source: Path, target: Path) -> tuple[int, int]:
    """(files to add, files to change) as rsync -a sees them: absent, or another size or mtime.
    Staging may already hold files (the app writes its own assets there)."""
    add = change = 0
    for path in source.rglob("*"):
        if path.is_file():
            other = target / path.relative_to(source)
            if not other.exists():
                add += 1
            elif (other.stat().st_size, int(other.stat().st_mtime)) != (
                path.stat().st_size,
                int(path.stat().st_mtime),
            ):
                change += 1
    return add, change


def test_dry_run_plans_concretely_and_changes_nothing(passing: dict) -> None:
    dry = passing["dry"]
    assert dry.returncode == 0, dry.stdout[-3000:]
    # nothing changed on either side: staging's rows and files, the source's, and no evidence
    # directory, dump, report or restore marker appeared
    assert passing["before"] == passing["after"]
    assert passing["source_before"] == passing["source_after"]
    assert passing["after"]["evidence"] == passing["before"]["evidence"]
    text = dry.stdout
    assert "Will dump app at 127.0.0.1:" in text
    assert "Will restore" in text
    add, change = passing["mirror"]
    assert add + change > 0
    assert re.search(
        rf"Will mirror \S+ to \S+: \d+ to add \({add} files\), "
        rf"\d+ to change \({change} files\), 0 to delete",
        text,
    ), text
    assert "Will validate row counts" in text


def test_rehearsal_passes_with_evidence(seeded: dict, passing: dict) -> None:
    real = passing["real"]
    assert real.returncode == 0, real.stdout[-4000:]
    assert "rehearsal passed; evidence in" in real.stdout
    assert "public.users" in real.stdout and "exact" in real.stdout  # the readable table
    directory = run_dir(seeded)
    for name in (
        "validate_db.json",
        "validate_assets.json",
        "validate_extensions.json",
        "health.json",
    ):
        report = json.loads((directory / "outputs" / name).read_text())
        assert report.get("verdict", "pass") == "pass", (name, report)
    counts = json.loads((directory / "outputs" / "validate_db.json").read_text())["counts"]
    users = next(row for row in counts if row["table"] == "public.users")
    assert users["source"] == users["target"] == 2 and users["kind"] == "exact"
    for log in ("pg_dump.log", "pg_restore.log", "rsync.log"):
        assert (directory / "logs" / log).stat().st_size > 0
        assert oct((directory / "logs" / log).stat().st_mode & 0o777) == "0o600"
    assets = Path(seeded["hosts"]["staging"]["assets_dir"])
    assert len([p for p in assets.rglob("*") if p.is_file()]) >= int(SEED_ROWS) * 3


def test_second_run_changes_nothing(passing: dict, outputs: list[str], tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    again = rehearsal(verbosity="-vv", env=stack_env(TURNOUT_STATS=str(stats)))
    outputs.append(again.stdout)
    assert again.returncode == 0, again.stdout[-3000:]
    assert changes(again.stdout) == 0
    calls = json.loads(stats.read_text())
    # The dump is trusted from its verified record (same inode, size, mtime): never read whole.
    assert calls["full_dump_reads"] == 0, calls
    assert calls["ships"] == 1 and calls["ship_bytes"] < 320 * 1024, calls  # placed once
    assert calls["hostside_bytes"] < 1024 * calls["hostside_calls"], calls  # short calls
    # each fact measured once: none repeated although pyinfra runs each step's code twice
    actions = calls["actions"]
    assert actions["dump_info"] == 1 and actions["restore_marker"] == 1, actions
    assert actions["rsync_plan"] == 1 and actions["row_counts"] == 2, actions  # source, target
    assert actions["postgres_server"] == 2 and actions["orphans"] == 1, actions
    assert "pg_dump" not in actions and "pg_restore" not in actions, actions
    # -vv shows each command; none carries the program
    assert "def main(" not in again.stdout and "PGDMP" not in again.stdout
    assert len(again.stdout.splitlines()) < 2000


def test_planning_a_rerun_reads_no_dump_and_counts_nothing(
    passing: dict, outputs: list[str], tmp_path: Path
) -> None:
    """--dry on a rehearsed host: the plan comes from cheap facts; validation's counts and
    joins run only when executing."""
    stats = tmp_path / "stats.json"
    plan = rehearsal(dry=True, verbosity="-v", env=stack_env(TURNOUT_STATS=str(stats)))
    outputs.append(plan.stdout)
    assert plan.returncode == 0, plan.stdout[-3000:]
    calls = json.loads(stats.read_text())
    assert calls["full_dump_reads"] == 0, calls
    assert "checked again when executing" in plan.stdout
    assert "exact" not in plan.stdout  # no count table while planning


def given_dump(stack: dict) -> str:
    return f"dump_path={run_dir(stack) / 'src_artifacts' / 'source.dump'}"


def failing(stack: dict, timestamp: str, *data: str, outputs: list[str]) -> str:
    result = rehearsal(given_dump(stack), "health_retries=1", *data, timestamp=timestamp)
    outputs.append(result.stdout)
    assert result.returncode != 0, result.stdout[-3000:]
    return result.stdout


def test_row_difference_fails(seeded: dict, passing: dict, outputs: list[str]) -> None:
    with superuser(seeded, "staging") as conn:
        row = conn.execute(
            "DELETE FROM meters WHERE id = (SELECT max(id) FROM meters) RETURNING *"
        ).fetchone()
        try:
            text = failing(seeded, "rowdiff", outputs=outputs)
        finally:
            columns = ", ".join(["%s"] * len(row))
            conn.execute(f"INSERT INTO meters VALUES ({columns})", row)  # noqa: S608
    assert "public.meters: row counts differ by -1 (allowed 0)" in text


def test_allowed_difference_is_respected(seeded: dict, passing: dict, outputs: list[str]) -> None:
    with superuser(seeded, "staging") as conn:
        row = conn.execute(
            "DELETE FROM meters WHERE id = (SELECT max(id) FROM meters) RETURNING *"
        ).fetchone()
        try:
            result = rehearsal(given_dump(seeded), "allowed_row_diff=1", timestamp="allowed")
        finally:
            columns = ", ".join(["%s"] * len(row))
            conn.execute(f"INSERT INTO meters VALUES ({columns})", row)  # noqa: S608
    outputs.append(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:]


def test_orphans_fail(seeded: dict, passing: dict, outputs: list[str]) -> None:
    with superuser(seeded, "staging") as conn:
        conn.execute("SET session_replication_role = replica")  # bypass the FK, for real
        conn.execute("UPDATE meters SET user_id = 987654 WHERE id = 1")
        try:
            text = failing(seeded, "orphans", outputs=outputs)
        finally:
            conn.execute("UPDATE meters SET user_id = (SELECT min(id) FROM users) WHERE id = 1")
    assert "orphan row(s) in public.meters(user_id) without public.users(id)" in text


def test_missing_asset_fails(seeded: dict, passing: dict, outputs: list[str]) -> None:
    with superuser(seeded, "staging") as conn:
        old = conn.execute("SELECT storage_path FROM ugc_assets WHERE id = 1").fetchone()[0]
        conn.execute(
            "UPDATE ugc_assets SET storage_path = '/app/.data/ugc/999999/img.bin' WHERE id = 1"
        )
        try:
            text = failing(seeded, "missing", "asset_sample_size=1000", outputs=outputs)
        finally:
            conn.execute("UPDATE ugc_assets SET storage_path = %s WHERE id = 1", (old,))
    assert "sampled asset(s) missing, e.g. /app/.data/ugc/999999/img.bin" in text


def test_unreadable_asset_fails(seeded: dict, passing: dict, outputs: list[str]) -> None:
    source = Path(seeded["source"]["assets_dir"]) / "ugc" / "3" / "img.bin"
    source.chmod(0)  # the mirror carries the mode to staging
    try:
        text = failing(seeded, "unreadable", "asset_sample_size=1000", outputs=outputs)
    finally:
        source.chmod(0o644)
        rehearsal(given_dump(seeded), timestamp="unreadable-fixed")
    assert "sampled asset(s) unreadable" in text


def test_path_outside_prefix_fails(seeded: dict, passing: dict, outputs: list[str]) -> None:
    with superuser(seeded, "staging") as conn:
        old = conn.execute("SELECT storage_path FROM knowledge_materials WHERE id = 2").fetchone()[
            0
        ]
        conn.execute(
            "UPDATE knowledge_materials SET storage_path = '/srv/elsewhere/doc.txt' WHERE id = 2"
        )
        try:
            text = failing(seeded, "prefix", outputs=outputs)
        finally:
            conn.execute("UPDATE knowledge_materials SET storage_path = %s WHERE id = 2", (old,))
    assert "asset path(s) outside the prefix, e.g. /srv/elsewhere/doc.txt" in text


def test_missing_extension_fails(seeded: dict, passing: dict, outputs: list[str]) -> None:
    text = failing(seeded, "extension", "required_extensions=pg_trgm,vector", outputs=outputs)
    assert "required extension(s) missing on the target: vector" in text


def test_health_down_fails(seeded: dict, passing: dict, outputs: list[str]) -> None:
    text = failing(seeded, "health", "base_url=http://127.0.0.1:9", outputs=outputs)
    assert "health check failed" in text and "unreachable" in text


def test_count_timeout_falls_back_to_estimate(
    seeded: dict, passing: dict, outputs: list[str]
) -> None:
    """A source table made slow to count for real: another session holds an exclusive lock."""
    with superuser(seeded, "source") as conn:
        conn.execute("ANALYZE meters")
    locked, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with superuser(seeded, "source") as conn, conn.transaction():
            conn.execute("LOCK TABLE meters IN ACCESS EXCLUSIVE MODE")
            locked.set()
            release.wait(120)

    holder = threading.Thread(target=hold_lock)
    holder.start()
    try:
        assert locked.wait(10)
        relaxed = rehearsal(given_dump(seeded), "count_timeout_ms=300", timestamp="estimate")
        strict = rehearsal(
            given_dump(seeded),
            "count_timeout_ms=300",
            "require_exact_counts=true",
            timestamp="estimate-strict",
        )
    finally:
        release.set()
        holder.join()
    outputs += [relaxed.stdout, strict.stdout]
    assert relaxed.returncode == 0, relaxed.stdout[-3000:]
    report = json.loads((run_dir(seeded, "estimate") / "outputs" / "validate_db.json").read_text())
    meters = next(row for row in report["counts"] if row["table"] == "public.meters")
    assert meters["kind"] == "estimate" and meters["source_exact"] is False
    assert meters["verdict"] == "estimate"
    assert strict.returncode != 0
    assert "public.meters: only an estimate" in strict.stdout


def test_drop_schema_needs_the_release(seeded: dict, passing: dict, outputs: list[str]) -> None:
    before = staging_fingerprint(seeded)
    refused = rehearsal("drop_schema=true", timestamp="drop-refused")
    outputs.append(refused.stdout)
    assert refused.returncode != 0
    assert "i_know_what_im_doing" in refused.stdout
    assert staging_fingerprint(seeded) == before
    assert not run_dir(seeded, "drop-refused").exists()


def test_drop_schema_released_restores_everything(
    seeded: dict, passing: dict, outputs: list[str]
) -> None:
    with superuser(seeded, "staging") as conn:
        conn.execute("CREATE TABLE public.stray (id int)")
    before = staging_fingerprint(seeded)
    plan = rehearsal("drop_schema=true", "i_know_what_im_doing=true", timestamp="dropped", dry=True)
    outputs.append(plan.stdout)
    assert plan.returncode == 0, plan.stdout[-3000:]
    assert staging_fingerprint(seeded) == before  # --dry with a released drop: nothing dropped
    assert re.search(r"drop schema public first: removes \d+ tables, ~?\d+ rows", plan.stdout), (
        plan.stdout[-3000:]
    )
    with ArgvWatcher() as watcher:
        result = rehearsal("drop_schema=true", "i_know_what_im_doing=true", timestamp="dropped")
    outputs.append(result.stdout)
    passing["argv"] |= watcher.seen
    assert result.returncode == 0, result.stdout[-3000:]
    with superuser(seeded, "staging") as conn:
        assert conn.execute("SELECT to_regclass('public.stray')").fetchone()[0] is None


def test_no_secret_anywhere(
    seeded: dict, stack_secrets: list[str], passing: dict, outputs: list[str]
) -> None:
    texts = list(outputs)
    root = Path(seeded["hosts"]["staging"]["evidence_root"])
    texts += [p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file()]
    assert any("pg_dump" in argv for argv in passing["argv"]), "the watcher saw no pg_dump"
    texts += sorted(passing["argv"])
    for secret in stack_secrets:
        for form in {secret, urllib.parse.quote(secret, safe="")}:
            assert not [t for t in texts if form in t]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            ("source_dsn_env=BAD_SOURCE_URL",),
            "cannot connect to the source database (BAD_SOURCE_URL)",
        ),
        (("tables=public.users,public.nope",), "table public.nope does not exist in app"),
        (("dump_path=/nonexistent/source.dump",), "is not a pg_dump custom file or directory"),
        (("source_dsn_env=UNSET_URL",), "UNSET_URL is not set in the environment or"),
    ],
)
def test_bad_input_is_one_sentence_and_changes_nothing(
    seeded: dict, passing: dict, outputs: list[str], data: tuple, reason: str
) -> None:
    env_file = Path(seeded["hosts"]["staging"]["env_file"])
    original = env_file.read_text()
    wrong = "Wrong-Canary-Pw-31337"
    port = seeded["pg"]["source"]["port"]
    env_file.write_text(
        original + f"BAD_SOURCE_URL=postgresql+psycopg://app:{wrong}@127.0.0.1:{port}/app\n"
    )
    before = staging_fingerprint(seeded)
    try:
        result = rehearsal(*data, timestamp="bad-input")
    finally:
        env_file.write_text(original)
    outputs.append(result.stdout)
    assert result.returncode != 0
    assert reason in result.stdout and "nothing was changed" in result.stdout
    assert "Traceback" not in result.stdout and wrong not in result.stdout
    assert staging_fingerprint(seeded) == before
    assert not run_dir(seeded, "bad-input").exists()


def test_assets_pulled_over_ssh_from_a_remote_source(
    seeded: dict, passing: dict, outputs: list[str]
) -> None:
    """rsync's ``host:path`` source for real: staging pulls the assets from the stack's prod SSH
    host over ssh, with that host's key pinned, into a fresh assets directory."""
    ssh = seeded["ssh"]
    fresh = Path(seeded["dir"]) / "hosts" / "staging" / "data" / "assets-over-ssh"
    rsh = (
        f"ssh -p {ssh['hosts']['prod']['port']} -i {ssh['client_key']} "
        f"-o UserKnownHostsFile={ssh['known_hosts']} -o StrictHostKeyChecking=yes"
    )
    data = (
        given_dump(seeded),
        f"rsync_source=root@127.0.0.1:{seeded['source']['assets_dir']}",
        f"rsync_rsh={rsh}",
        f"assets_dir={fresh}",
        "asset_sample_size=600",
    )
    result = rehearsal(*data, timestamp="over-ssh")
    outputs.append(result.stdout)
    assert result.returncode == 0, result.stdout[-3000:]
    assert len([p for p in fresh.rglob("*") if p.is_file()]) == int(SEED_ROWS) * 3
    report = json.loads(
        (run_dir(seeded, "over-ssh") / "outputs" / "validate_assets.json").read_text()
    )
    assert report["verdict"] == "pass" and report["checked"] == int(SEED_ROWS) * 3
    again = rehearsal(*data, timestamp="over-ssh")
    assert again.returncode == 0 and changes(again.stdout) == 0
