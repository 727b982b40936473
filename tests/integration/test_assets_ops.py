"""Asset checks and the rsync mirror on the real stack: the staging cluster holds this module's
own schema ``assets_test`` (created and dropped here), the asset trees live in
``<stack dir>/assets_test/``. The host-side program runs exactly as shipped; the mirror also runs
through the pyinfra CLI over SSH."""

import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
from conftest import STACK_DIR, changes, run_pyinfra

from turnout.remote import hostside_command, parse_hostside_output

SCHEMA = "assets_test"
PREFIX = "/app/.data"
CANARY = "asset-content-canary-7f3a"
GOOD_DOCS, GOOD_DIRS, ABSENT = 30, 10, 200


@pytest.fixture(scope="module")
def root(stack: dict):
    path = STACK_DIR / "assets_test"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path
    for entry in path.rglob("*"):
        if not entry.is_symlink():
            entry.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


def hostside(stack: dict, action: str, params: dict) -> tuple[subprocess.CompletedProcess, dict]:
    """The shipped program run on the staging "host" (this machine), as an op or fact runs it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGPASSWORD")}
    command = hostside_command(action, params, python=stack["python"]).get_raw_value()
    result = subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, env=env, check=False, timeout=120
    )
    return result, parse_hostside_output(result.stdout.splitlines())


@pytest.fixture(scope="module")
def assets(stack: dict, root: Path):
    """The schema and the asset tree: good files and directories, planted faults, and a table
    whose paths all point nowhere (for the sample's determinism)."""
    tree = root / "tree"
    rows: dict[str, list[str | None]] = {"good_docs": [], "good_dirs": [PREFIX], "bad_docs": []}
    for i in range(GOOD_DOCS):
        (tree / "knowledge" / str(i)).mkdir(parents=True)
        (tree / "knowledge" / str(i) / "doc.txt").write_text(f"{CANARY} {i}\n")
        rows["good_docs"].append(f"{PREFIX}/knowledge/{i}/doc.txt")
    for i in range(GOOD_DIRS - 1):
        (tree / "gallery" / str(i)).mkdir(parents=True)
        rows["good_dirs"].append(f"{PREFIX}/gallery/{i}/")
    (tree / "bad").mkdir()
    (tree / "bad" / "ok.txt").write_text(CANARY)
    (tree / "bad" / "locked.txt").write_text(CANARY)
    (tree / "bad" / "locked.txt").chmod(0)
    rows["bad_docs"] = [
        f"{PREFIX}/bad/ok.txt",
        f"{PREFIX}/bad/gone.txt",  # missing
        f"{PREFIX}/bad/locked.txt",  # mode 000
        "/srv/elsewhere/x.txt",  # outside the prefix
        f"{PREFIX}2/x.txt",  # outside: /app/.data2 is not /app/.data
        f"{PREFIX}/../etc/passwd",  # traversal
        None,
    ]
    rows["absent"] = [f"{PREFIX}/absent/{i}.bin" for i in range(ABSENT)]
    password = (STACK_DIR / "secrets" / "pg_staging_superuser").read_text().strip()
    with psycopg.connect(
        host="127.0.0.1",
        port=stack["pg"]["staging"]["port"],
        user="postgres",
        password=password,
        dbname="app",
        autocommit=True,
    ) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        for table, paths in rows.items():
            conn.execute(f"CREATE TABLE {SCHEMA}.{table} (id serial PRIMARY KEY, path text)")
            with conn.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {SCHEMA}.{table} (path) VALUES (%s)", [(p,) for p in paths]
                )
        conn.execute(f"GRANT USAGE ON SCHEMA {SCHEMA} TO app")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO app")
        yield {"tree": str(tree), "env_file": stack["hosts"]["staging"]["env_file"]}
        conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")


def sample(stack: dict, assets: dict, tables: list[str], **extra) -> tuple:
    params = {
        "dsn_env": "DATABASE_URL",
        "env_file": assets["env_file"],
        "columns": [f"{SCHEMA}.{table}.path" for table in tables],
        "prefix": PREFIX,
        "assets_dir": assets["tree"],
        "sample_size": 50,
        "seed": 0,
        **extra,
    }
    return hostside(stack, "asset_sample", params)


def test_all_good_assets(stack: dict, assets: dict, stack_secrets: list[str]) -> None:
    result, out = sample(stack, assets, ["good_docs", "good_dirs"], sample_size=20)
    assert result.returncode == 0, result.stderr
    assert out == {
        "ok": True,
        "columns": {
            f"{SCHEMA}.good_docs.path": {"rows": GOOD_DOCS, "outside_prefix": 0, "sampled": 10},
            f"{SCHEMA}.good_dirs.path": {"rows": GOOD_DIRS, "outside_prefix": 0, "sampled": 10},
        },
        "outside_prefix_examples": [],
        "checked": 20,
        "missing": [],
        "unreadable": [],
        "missing_count": 0,
        "unreadable_count": 0,
    }
    # The whole table fits: every path is checked, the prefix itself included (a directory).
    result, out = sample(stack, assets, ["good_docs", "good_dirs"], sample_size=1000)
    assert out["checked"] == GOOD_DOCS + GOOD_DIRS and out["missing_count"] == 0
    assert out["unreadable_count"] == 0
    for secret in [CANARY, *stack_secrets]:
        assert secret not in result.stdout + result.stderr


def test_planted_faults_are_reported(stack: dict, assets: dict) -> None:
    result, out = sample(stack, assets, ["bad_docs"])
    assert result.returncode == 0, result.stderr
    assert out["columns"] == {
        f"{SCHEMA}.bad_docs.path": {"rows": 6, "outside_prefix": 3, "sampled": 3}
    }
    assert out["outside_prefix_examples"] == [
        f"{PREFIX}/../etc/passwd",
        f"{PREFIX}2/x.txt",
        "/srv/elsewhere/x.txt",
    ]
    assert out["checked"] == 3
    assert (out["missing"], out["missing_count"]) == ([f"{PREFIX}/bad/gone.txt"], 1)
    assert (out["unreadable"], out["unreadable_count"]) == ([f"{PREFIX}/bad/locked.txt"], 1)
    assert CANARY not in result.stdout


def test_sample_is_deterministic_per_seed(stack: dict, assets: dict) -> None:
    runs = [sample(stack, assets, ["absent"], sample_size=10, seed=seed)[1] for seed in (7, 7, 8)]
    first, again, other = (run["missing"] for run in runs)
    assert len(first) == 10 and runs[0]["missing_count"] == 10
    assert first == again
    assert set(first) != set(other)
    assert set(first) <= {f"{PREFIX}/absent/{i}.bin" for i in range(ABSENT)}


def test_unknown_table_or_column_is_one_clear_error(stack: dict, assets: dict) -> None:
    params = {"columns": ["knowledge_materials_nope.storage_path"]}
    result, out = hostside(
        stack,
        "asset_sample",
        {"dsn_env": "DATABASE_URL", "env_file": assets["env_file"], "assets_dir": assets["tree"]}
        | params,
    )
    assert result.returncode == 0
    assert out == {
        "ok": False,
        "error": "column knowledge_materials_nope.storage_path does not exist in app",
    }
    result, out = sample(stack, assets, ["good_docs"], columns=[f"{SCHEMA}.good_docs.nope"])
    assert out["error"] == f"column {SCHEMA}.good_docs.nope does not exist in app"
    result, out = sample(stack, assets, ["good_docs"], columns=["no_schema.good_docs.path"])
    assert out["error"] == "column no_schema.good_docs.path does not exist in app"
    result, out = sample(stack, assets, ["good_docs"], assets_dir="/nonexistent/assets")
    assert out["ok"] is False
    assert "assets directory /nonexistent/assets does not exist" in out["error"]


# rsync -------------------------------------------------------------------------------------------


def make_tree(path: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(content)


def rsync(stack: dict, action: str, source: Path | str, dest: Path, **extra) -> tuple:
    return hostside(stack, action, {"source": str(source), "dest": str(dest), **extra})


def test_mirror_plan_rerun_change_and_delete(stack: dict, root: Path) -> None:
    source, dest = root / "m_src", root / "m_dst" / "assets"
    make_tree(source, {"a/1.txt": "one", "a/2.txt": "two", "b/3.txt": "three", "4.txt": "four"})
    _, plan = rsync(stack, "rsync_plan", source, dest)
    assert plan == {
        "ok": True,
        "source_entries": 6,
        "add": 7,  # 4 files, 2 directories and the destination itself
        "change": 0,
        "delete": 0,
        "transfer_bytes": 15,
        "add_files": 4,
        "change_files": 0,
        "refusal": None,  # the host's rule (rsync_refusal) has nothing against it
    }
    assert not dest.exists()  # planning changes nothing
    log = root / "rsync.log"
    result, done = rsync(stack, "rsync_mirror", source, dest, log_path=str(log), timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert done == {key: value for key, value in plan.items() if key != "refusal"}
    assert (dest / "b" / "3.txt").read_text() == "three"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600 and "rsync -a" in log.read_text()
    _, again = rsync(stack, "rsync_plan", source, dest)
    assert (again["add"], again["change"], again["delete"]) == (0, 0, 0)

    (source / "a" / "1.txt").write_text("one, edited")
    (dest / "extra.txt").write_text("only on the target")
    # Files only: whether the target root's mtime (touched by extra.txt) counts as a change too
    # depends on the clock's granularity.
    _, plan = rsync(stack, "rsync_plan", source, dest)
    assert (plan["add"], plan["change_files"], plan["delete"]) == (0, 1, 0)
    _, plan = rsync(stack, "rsync_plan", source, dest, delete=True)
    assert (plan["add"], plan["change_files"], plan["delete"]) == (0, 1, 1)
    result, done = rsync(stack, "rsync_mirror", source, dest, timeout_s=60)
    assert (done["change_files"], done["delete"]) == (1, 0)
    assert (dest / "extra.txt").exists()  # --delete only when asked
    result, done = rsync(stack, "rsync_mirror", source, dest, delete=True, timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert (done["change_files"], done["delete"]) == (0, 1)
    assert not (dest / "extra.txt").exists()


def test_delete_from_empty_or_missing_source_is_refused(stack: dict, root: Path) -> None:
    dest = root / "e_dst"
    make_tree(dest, {"keep/1.txt": "1", "2.txt": "2"})
    empty = root / "e_src"
    empty.mkdir()
    for source, why in [(empty, "the source is empty"), (root / "nope", "does not exist")]:
        result, out = rsync(stack, "rsync_mirror", source, dest, delete=True)
        assert result.returncode == 1 and out["ok"] is False
        assert why in out["error"] and result.stderr.count("\n") == 1
        assert sorted(p.name for p in dest.rglob("*")) == ["1.txt", "2.txt", "keep"]
    _, plan = rsync(stack, "rsync_plan", root / "nope", dest)
    missing = f"rsync source {root / 'nope'} does not exist on this host"
    assert plan == {"ok": False, "error": missing}


def test_max_delete_refuses_before_changing_anything(stack: dict, root: Path) -> None:
    source, dest = root / "x_src", root / "x_dst"
    make_tree(source, {"new.txt": "n"})
    make_tree(dest, {"old1.txt": "1", "old2.txt": "2", "old3.txt": "3"})
    result, out = rsync(stack, "rsync_mirror", source, dest, delete=True, max_delete=2)
    assert result.returncode == 1
    assert "3 entries would be deleted, more than max_delete=2" in out["error"]
    assert sorted(p.name for p in dest.iterdir()) == ["old1.txt", "old2.txt", "old3.txt"]
    result, out = rsync(stack, "rsync_mirror", source, dest, delete=True, max_delete=3)
    assert result.returncode == 0 and out["delete"] == 3


def test_partial_transfer_exit_23_is_a_failure(stack: dict, root: Path) -> None:
    """A non-empty directory on the target where the source has a file: rsync cannot make way
    for it (without --delete), transfers the rest and exits 23."""
    source, dest = root / "p_src", root / "p_dst"
    make_tree(source, {"blocked.txt": "file", "fine.txt": "fine"})
    make_tree(dest, {"blocked.txt/inside": "a directory in the way"})
    result, out = rsync(stack, "rsync_mirror", source, dest)
    assert result.returncode == 1
    assert "rsync exited 23 (partial transfer" in out["error"]
    assert "cannot delete non-empty directory: blocked.txt" in out["error"]
    assert (dest / "fine.txt").exists()  # partial: the rest was transferred


def test_mirror_through_pyinfra_is_idempotent(stack: dict, root: Path) -> None:
    source, dest = root / "py_src", root / "py_dst"
    make_tree(source, {f"d{i}/f{j}.txt": f"{i}-{j}" for i in range(3) for j in range(4)})
    empty = root / "py_empty"
    empty.mkdir()

    def deploy(*args: str, src: Path = source, delete: bool = False):
        return run_pyinfra(
            *args,
            "tests/stack/inventory.py",
            "tests/integration/deploys/assets_mirror.py",
            "--limit",
            "stack-staging",
            "--data",
            f"assets_test_source={src}",
            "--data",
            f"assets_test_dest={dest}",
            "--data",
            f"assets_test_delete={'true' if delete else 'false'}",
            "--data",
            f"assets_test_log={root / 'py_rsync.log'}",
            timeout=120,
        )

    dry = deploy("--dry")
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert f"Will mirror {source} to {dest}: 16 to add (" in dry.stdout
    assert not dest.exists()
    first = deploy("-y")
    assert first.returncode == 0, first.stdout[-3000:]
    assert changes(first.stdout) == 1
    assert (dest / "d2" / "f3.txt").read_text() == "2-3"
    second = deploy("-y")
    assert second.returncode == 0, second.stdout[-3000:]
    assert changes(second.stdout) == 0
    for mode in ("--dry", "-y"):  # refused while planning, and again when executing
        refused = deploy(mode, src=empty, delete=True)
        assert refused.returncode != 0
        assert "the source is empty" in refused.stdout
    assert len(list(dest.rglob("*.txt"))) == 12


def test_files_vanishing_during_the_transfer_fail_the_mirror(stack: dict, root: Path) -> None:
    """rsync's exit 24 for real: files are deleted from the source while rsync copies it (a
    writer still at work on the night). The mirror fails and says the copy is incomplete."""
    source, dest = root / "v_src", root / "v_dst"
    names = [f"f{i:05d}.bin" for i in range(1500)]
    blob = os.urandom(64 * 1024)
    source.mkdir(parents=True)
    for name in names:
        (source / name).write_bytes(blob)

    def delete_late_files() -> None:  # once rsync copies (it listed them all), ahead of it
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (dest / names[0]).exists():
            time.sleep(0.001)
        for name in reversed(names[750:]):
            (source / name).unlink(missing_ok=True)

    for _attempt in range(3):  # the race is on the machine's speed: try until rsync saw it
        deleter = threading.Thread(target=delete_late_files)
        deleter.start()
        result, out = rsync(stack, "rsync_mirror", source, dest, timeout_s=120)
        deleter.join()
        if result.returncode != 0:
            break
        shutil.rmtree(dest)
        for name in names:
            (source / name).write_bytes(blob)
    assert result.returncode == 1, "rsync never saw a file vanish in three tries"
    assert "rsync exited 24 (source files vanished during the transfer)" in out["error"]
    assert "the mirror is incomplete" in out["error"] and result.stderr.count("\n") == 1
