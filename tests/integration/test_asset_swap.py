"""restore-assets through the pyinfra CLI on ``@local`` (tests/integration/deploys/asset_swap.py),
with real faults: kill -9 of the host program at named points (``TURNOUT_FAULT_AT`` in the
environment of the pyinfra run; the ``@local`` connector's commands inherit it, so the host
program sees it), a full tmpfs, a live directory that is a mount point. No stack needed."""

import hashlib
import io
import json
import os
import subprocess
import tarfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import changes, run_pyinfra, stack_env

TS = "20261125T010000Z"
MTIME = 1_700_000_000  # of every file, in the trees and in the tarballs
OLD = {"old.txt": b"old tree\n", "keep/same.txt": b"same\n", "keep/changed.txt": b"v1\n"}
NEW = {
    "keep/same.txt": b"same\n",
    "keep/changed.txt": b"version two\n",
    **{f"docs/{i}.txt": f"doc {i}\n".encode() for i in range(6)},
}


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        os.utime(root / name, (MTIME, MTIME))
    return root


def make_tarball(path: Path, files: dict[str, bytes], top: str = "assets") -> Path:
    """A .tar.gz with every file under ``top/`` (directories included), as ``tar -czf`` makes."""
    with tarfile.open(path, "w:gz") as tar:
        dirs = {top} | {
            f"{top}/{'/'.join(name.split('/')[:i])}"
            for name in files
            for i in range(1, name.count("/") + 1)
        }
        for name in sorted(dirs):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, MTIME
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, MTIME
            tar.addfile(info, io.BytesIO(data))
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture
def site(tmp_path: Path) -> dict:
    parent = tmp_path / "data"
    make_tree(parent / "assets", OLD)
    return {
        "root": tmp_path,
        "parent": parent,
        "dest": parent / "assets",
        "marker": tmp_path / "state" / "assets.json",
        "tarball": make_tarball(tmp_path / "assets.tar.gz", NEW),
    }


def deploy(site: dict, *data: str, dry: bool = False, release: bool = True, fault: str = ""):
    """One run of the test deploy on ``@local``; ``fault`` kills the host program there."""
    values = {
        "swap_tarball": str(site["tarball"]),
        "swap_dest": str(site["dest"]),
        "swap_marker": str(site["marker"]),
        "swap_ts": TS,
        "swap_strip": "1",
    }
    values.update(item.split("=", 1) for item in data)
    if release:
        values["i_know_what_im_doing"] = "true"
    args = [arg for key, value in values.items() for arg in ("--data", f"{key}={value}")]
    env = stack_env(TURNOUT_FAULT_AT=fault) if fault else stack_env()
    return run_pyinfra(
        "--dry" if dry else "-y",
        "@local",
        "tests/integration/deploys/asset_swap.py",
        *args,
        env=env,
        timeout=300,
    )


def leftovers(site: dict) -> list[str]:
    """Staging directories and journals in the live tree's parent."""
    return sorted(p.name for p in site["parent"].iterdir() if p.name.startswith(".assets."))


def test_plan_run_rerun(site: dict) -> None:
    dry = deploy(site, dry=True)
    assert dry.returncode == 0, dry.stdout[-3000:]
    staging = site["parent"] / f".assets.staging-{TS}"
    assert (
        f"Will restore {site['tarball']} into {site['dest']}: 8 files (53 B) extracted into "
        f"{staging}; " in dry.stdout
    )
    assert (
        f"the live tree has 3 files (17 B) and is kept as {site['dest']}.prev_{TS}; "
        "7 added: docs/, docs/0.txt, docs/1.txt, docs/2.txt, docs/3.txt, docs/4.txt, docs/5.txt; "
        "1 removed: old.txt; 1 changed (size or mtime): keep/changed.txt" in dry.stdout
    )
    assert tree(site["dest"]) == OLD and not site["marker"].exists()

    run = deploy(site)
    assert run.returncode == 0, run.stdout[-3000:]
    assert changes(run.stdout) == 1
    assert tree(site["dest"]) == NEW
    assert tree(site["parent"] / f"assets.prev_{TS}") == OLD
    assert leftovers(site) == []
    record = json.loads(site["marker"].read_text())
    assert record["kind"] == "restore" and record["files"] == 8 and record["bytes"] == 53
    assert record["prev"] == f"{site['dest']}.prev_{TS}"
    assert record["sha256"] == hashlib.sha256(site["tarball"].read_bytes()).hexdigest()

    again = deploy(site, f"swap_ts={TS}-2")
    assert again.returncode == 0, again.stdout[-3000:]
    assert changes(again.stdout) == 0
    assert "No changes" in again.stdout
    assert not (site["parent"] / f"assets.prev_{TS}-2").exists()


def test_not_released_is_refused_before_anything(site: dict) -> None:
    refused = deploy(site, release=False)
    assert refused.returncode != 0
    assert (
        "refusing restore-assets (replaces the live assets directory): it is destructive and "
        "i_know_what_im_doing is false; read the --dry plan, then re-run with --data "
        "i_know_what_im_doing=true" in refused.stdout
    )
    assert tree(site["dest"]) == OLD and leftovers(site) == [] and not site["marker"].exists()
    assert sorted(p.name for p in site["parent"].iterdir()) == ["assets"]


def test_hostile_tarball_is_refused_while_planning(site: dict) -> None:
    evil = site["root"] / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("assets/../../etc/passwd")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"root"))
    dry = deploy(site, f"swap_tarball={evil}", dry=True)
    assert dry.returncode != 0
    assert (
        f'assets tarball {evil} refused: member "assets/../../etc/passwd" escapes the target; '
        "nothing was changed" in dry.stdout
    )
    assert sorted(p.name for p in site["parent"].iterdir()) == ["assets"]
    assert tree(site["dest"]) == OLD
    run = deploy(site, f"swap_tarball={evil}")  # -y: no planning, refused when the step runs
    assert run.returncode != 0
    assert f'turnout: assets tarball {evil} refused: member "assets/../../etc/passwd"' in run.stdout
    assert "executed 0 commands" not in run.stdout  # one line, even in a deploy of one's own
    assert "No hosts remaining" not in run.stdout
    assert sorted(p.name for p in site["parent"].iterdir()) == ["assets"]
    assert tree(site["dest"]) == OLD


# Where the live tree is right after the kill, before any rerun.
KILLED_AT = {
    "before_extract": "old",
    "mid_extract": "old",
    "extracted": "old",
    "ready": "old",
    "after_first_rename": "missing",
    "after_second_rename": "new",
    "before_journal_removal": "new",
}


@pytest.mark.parametrize("point", list(KILLED_AT))
def test_kill_9_then_rerun_recovers_one_complete_tree(site: dict, point: str) -> None:
    killed = deploy(site, fault=point)
    assert killed.returncode != 0, killed.stdout[-3000:]
    expected = {"old": OLD, "new": NEW, "missing": None}[KILLED_AT[point]]
    assert (tree(site["dest"]) if site["dest"].exists() else None) == expected
    assert ".assets.swap-journal.json" in leftovers(site)

    plan = deploy(site, dry=True)
    assert plan.returncode == 0, plan.stdout[-3000:]
    assert f"Will recover the interrupted swap of {TS}: " in plan.stdout

    rerun = deploy(site)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    assert changes(rerun.stdout) == 1
    assert tree(site["dest"]) == NEW
    assert tree(site["parent"] / f"assets.prev_{TS}") == OLD
    assert leftovers(site) == []
    assert sorted(p.name for p in site["parent"].iterdir()) == ["assets", f"assets.prev_{TS}"]
    assert changes(deploy(site).stdout) == 0


@contextmanager
def tmpfs(path: Path, size: str = "1m"):
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_removes_staging_and_keeps_the_live_tree(site: dict) -> None:
    small = site["root"] / "small"
    with tmpfs(small):
        make_tree(small / "assets", OLD)
        big = make_tarball(site["root"] / "big.tar.gz", {**NEW, "huge.bin": os.urandom(2 << 20)})
        site = {**site, "parent": small, "dest": small / "assets", "tarball": big}
        run = deploy(site)
        assert run.returncode != 0, run.stdout[-3000:]
        assert (
            f"no space left on the device while extracting {big} into "
            f"{small}/.assets.staging-{TS}: the staging directory was removed, "
            f"{small}/assets is untouched; free space there and rerun" in run.stdout
        )
        assert tree(small / "assets") == OLD
        assert sorted(p.name for p in small.iterdir()) == ["assets"]
        assert not site["marker"].exists()


def test_live_directory_on_another_filesystem_is_refused(site: dict) -> None:
    mount_point = site["root"] / "mnt" / "assets"
    with tmpfs(mount_point):
        make_tree(mount_point, OLD)
        site = {**site, "parent": mount_point.parent, "dest": mount_point}
        dry = deploy(site, dry=True)
        assert dry.returncode != 0
        assert (
            f"cannot swap into {mount_point}: {mount_point} is on another filesystem than "
            f"{mount_point.parent} (EXDEV: a mount point cannot be swapped by rename, and "
            "turnout never copies and deletes instead); nothing was changed" in dry.stdout
        )
        assert tree(mount_point) == OLD
        assert sorted(p.name for p in mount_point.parent.iterdir()) == ["assets"]


def test_swap_back_restores_the_previous_tree(site: dict) -> None:
    assert deploy(site).returncode == 0
    back_ts = f"{TS}-back"
    back = ("swap_mode=back", f"swap_ts={back_ts}")
    dry = deploy(site, *back, dry=True)
    assert dry.returncode == 0, dry.stdout[-3000:]
    assert (
        f"Will swap back {site['dest']}: {site['dest']}.prev_{TS} (3 files, 17 B) becomes live; "
        f"the live tree (8 files, 53 B) is kept as {site['dest']}.failed_{back_ts}" in dry.stdout
    )
    run = deploy(site, *back)
    assert run.returncode == 0, run.stdout[-3000:]
    assert changes(run.stdout) == 1
    assert tree(site["dest"]) == OLD
    assert tree(site["parent"] / f"assets.failed_{back_ts}") == NEW
    assert not (site["parent"] / f"assets.prev_{TS}").exists() and leftovers(site) == []
    again = deploy(site, *back[:1], f"swap_ts={TS}-back2")
    assert again.returncode == 0 and changes(again.stdout) == 0, again.stdout[-3000:]
    assert "was already swapped back to" in again.stdout or "No changes" in again.stdout
    # The tarball is not live any more: restoring it again is a change, not a no-op.
    restore = deploy(site, f"swap_ts={TS}-again")
    assert restore.returncode == 0 and changes(restore.stdout) == 1, restore.stdout[-3000:]
    assert tree(site["dest"]) == NEW


@pytest.mark.parametrize("point", ["ready", "after_first_rename", "after_second_rename"])
def test_swap_back_killed_then_rerun(site: dict, point: str) -> None:
    assert deploy(site).returncode == 0
    back = ("swap_mode=back", f"swap_ts={TS}-back")
    killed = deploy(site, *back, fault=point)
    assert killed.returncode != 0, killed.stdout[-3000:]
    rerun = deploy(site, *back)
    assert rerun.returncode == 0 and changes(rerun.stdout) == 1, rerun.stdout[-3000:]
    assert tree(site["dest"]) == OLD
    assert tree(site["parent"] / f"assets.failed_{TS}-back") == NEW
    assert leftovers(site) == []
