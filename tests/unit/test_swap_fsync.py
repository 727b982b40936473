"""restore-assets and its swap back make each rename durable: the shipped host-side program,
run as a host runs it, under ``strace -f -y`` (system calls with the paths of their file
descriptors). Every rename the swap does (live → aside, incoming → live; the journal's and the
marker's temporary file → its name) must be followed, in the same process and before its next
rename, by an ``fsync`` of the directory the name now lives in: without it a power cut after
the run may bring back the old directory entries, the marker saying one tree is live while
another is.

strace comes from scripts/setup.sh (its apt packages); the test fails, not skips, without it.
"""

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from turnout.remote import hostside_command, parse_hostside_output

TS = "20261125T000000Z"
STRACE = shutil.which("strace")
SYSCALLS = "fsync,fdatasync,rename,renameat,renameat2"
# 1234  rename("/a/b", "/a/c") = 0            renameat(AT_FDCWD</x>, "/a/b", AT_FDCWD</x>, "/a/c")
# 1234  fsync(3</a>) = 0                       (strace -y: the descriptor's path in <>)
CALL = re.compile(r"^(?P<pid>\d+)\s+(?P<name>\w+)\((?P<args>.*)\)\s+=\s+(?P<result>-?\d+)")
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
FD_PATH = re.compile(r"^\d+<(?P<path>[^>]*)>")


def tarball(path: Path) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("assets/a.txt", b"alpha\n"), ("assets/docs/b.txt", b"bravo\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def site(tmp_path: Path) -> dict:
    if STRACE is None:
        pytest.fail("strace is missing: run scripts/setup.sh (it installs the apt packages)")
    parent = tmp_path / "data"
    (parent / "assets").mkdir(parents=True)
    (parent / "assets" / "old.txt").write_text("old\n")
    return {
        "root": tmp_path,
        "parent": parent,
        "params": {
            "dest": str(parent / "assets"),
            "marker": str(tmp_path / "state" / "assets.json"),
            "timestamp": TS,
        },
    }


def traced(action: str, params: dict, trace: Path) -> list[tuple[int, str, list[str]]]:
    """Run ``action`` of the host-side program under strace; its renames and fsyncs in order,
    as ``(pid, call, paths)``: a rename's source and target, an fsync's file."""
    command = hostside_command(action, params, python=sys.executable).get_raw_value()
    run = subprocess.run(
        [STRACE, "-f", "-y", "-qq", "-s", "4096", "-e", f"trace={SYSCALLS}", "-o", str(trace)]
        + ["sh", "-c", command],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert parse_hostside_output(run.stdout.splitlines())["changed"] is True
    calls = []
    for line in trace.read_text().splitlines():
        match = CALL.match(line)
        if not match or int(match["result"]) < 0:
            continue
        name, args = match["name"], match["args"]
        if name.startswith("rename"):
            paths = [bytes(p, "utf-8").decode("unicode_escape") for p in QUOTED.findall(args)]
        else:
            fd = FD_PATH.match(args)
            paths = [fd["path"]] if fd else []
        calls.append((int(match["pid"]), name, paths))
    return calls


def renames_left_unsynced(calls: list[tuple[int, str, list[str]]], under: Path) -> list[str]:
    """Each rename under ``under`` not followed, in its process and before that process's next
    rename, by an fsync of the target's directory."""
    unsynced = []
    for index, (pid, name, paths) in enumerate(calls):
        if not name.startswith("rename") or not paths[-1].startswith(str(under)):
            continue
        directory = str(Path(paths[-1]).parent)
        synced = False
        for later_pid, later, later_paths in calls[index + 1 :]:
            if later_pid != pid:
                continue
            if later.startswith("rename"):
                break
            if later in ("fsync", "fdatasync") and later_paths == [directory]:
                synced = True
                break
        if not synced:
            unsynced.append(f"{name} {' -> '.join(paths)}")
    return unsynced


def swap_renames(calls: list) -> list[list[str]]:
    """The renames of the tree itself (not of the journal's or the marker's temporary file)."""
    return [
        paths
        for _, name, paths in calls
        if name.startswith("rename") and not paths[0].rsplit("/", 1)[-1].count(".tmp-")
    ]


def test_each_rename_of_the_restore_is_followed_by_an_fsync_of_its_directory(
    site: dict,
) -> None:
    params = {**site["params"], "tarball": str(tarball(site["root"] / "assets.tar.gz"))}
    params["strip_components"] = 1
    calls = traced("swap_restore", params, site["root"] / "restore.strace")
    parent = str(site["parent"])
    assert swap_renames(calls) == [
        [f"{parent}/assets", f"{parent}/assets.prev_{TS}"],
        [f"{parent}/.assets.staging-{TS}", f"{parent}/assets"],
    ]
    assert renames_left_unsynced(calls, site["root"]) == []
    assert (site["parent"] / "assets" / "a.txt").read_text() == "alpha\n"


def test_each_rename_of_the_swap_back_is_followed_by_an_fsync_of_its_directory(
    site: dict,
) -> None:
    params = {**site["params"], "tarball": str(tarball(site["root"] / "assets.tar.gz"))}
    traced("swap_restore", {**params, "strip_components": 1}, site["root"] / "restore.strace")
    back = {**site["params"], "timestamp": "20261125T010000Z"}
    calls = traced("swap_back", back, site["root"] / "back.strace")
    parent = str(site["parent"])
    assert swap_renames(calls) == [
        [f"{parent}/assets", f"{parent}/assets.failed_20261125T010000Z"],
        [f"{parent}/assets.prev_{TS}", f"{parent}/assets"],
    ]
    assert renames_left_unsynced(calls, site["root"]) == []
    assert (site["parent"] / "assets" / "old.txt").read_text() == "old\n"
    assert json.loads(Path(site["params"]["marker"]).read_text())["kind"] == "swap_back"
