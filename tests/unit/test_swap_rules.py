"""The tarball rules and the recovery rules of restore-assets (``turnout/hostside/swap.py``), on
real archives made with ``tarfile`` and real directories: every hostile kind refuses the whole
archive with one line naming the member, and nothing is written."""

import fcntl
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from turnout.hostside import swap
from turnout.hostside.base import HostsideError

TS = "20261125T000000Z"


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    info.mtime = 1_700_000_000
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def write_tarball(path: Path, members: list[tuple], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def good_members() -> list[tuple]:
    return [
        member("assets", tarfile.DIRTYPE, mode=0o755),
        member("assets/a.txt", data=b"alpha\n"),
        member("assets/docs", tarfile.DIRTYPE, mode=0o755),
        member("assets/docs/b.txt", data=b"bravo\n"),
    ]


@pytest.fixture
def site(tmp_path: Path) -> dict:
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
            "strip_components": 1,
        },
    }


def snapshot(root: Path) -> dict:
    """Every path under ``root`` with its kind, size and content (what "nothing written" means)."""
    return {
        str(p.relative_to(root)): (p.is_dir(), p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


HOSTILE = {
    "absolute": (
        [member("/etc/passwd", data=b"x")],
        'member "/etc/passwd" has an absolute path',
    ),
    "dotdot": (
        [*good_members(), member("assets/../../etc/passwd", data=b"x")],
        'member "assets/../../etc/passwd" escapes the target',
    ),
    "symlink": (
        [*good_members(), member("assets/link", tarfile.SYMTYPE, linkname="/etc")],
        'member "assets/link" is a symlink (to "/etc"); only files and directories are accepted',
    ),
    "hardlink": (
        [*good_members(), member("assets/hl", tarfile.LNKTYPE, linkname="../../etc/passwd")],
        'member "assets/hl" is a hardlink (to "../../etc/passwd"); only files and directories',
    ),
    "char_device": (
        [*good_members(), member("assets/null", tarfile.CHRTYPE, devmajor=1, devminor=3)],
        'member "assets/null" is a character device',
    ),
    "block_device": (
        [member("assets/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)],
        'member "assets/sda" is a block device',
    ),
    "fifo": (
        [*good_members(), member("assets/pipe", tarfile.FIFOTYPE)],
        'member "assets/pipe" is a FIFO',
    ),
    "file_and_dir": (
        [*good_members(), member("assets/a.txt/inner", data=b"x")],
        'member "assets/a.txt/inner" is inside "a.txt", which is a file',
    ),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_member_refuses_the_whole_archive(site: dict, kind: str) -> None:
    members, reason = HOSTILE[kind]
    tarball = write_tarball(site["root"] / f"{kind}.tar.gz", members)
    params = {**site["params"], "tarball": str(tarball)}
    before = snapshot(site["root"])
    expected = f"assets tarball {tarball} refused: {reason}"
    with pytest.raises(swap.Refusal) as refused:
        swap.action_swap_restore(params)
    message = str(refused.value)
    assert message.startswith(expected), message
    assert message.endswith("; nothing was changed") and "\n" not in message
    assert snapshot(site["root"]) == before
    plan = swap.action_swap_plan(params)
    assert plan["refusal"] == message
    assert snapshot(site["root"]) == before


def test_too_many_members(site: dict) -> None:
    tarball = write_tarball(site["root"] / "many.tar", good_members(), "w")
    params = {**site["params"], "tarball": str(tarball), "max_members": 3}
    before = snapshot(site["root"])
    with pytest.raises(swap.Refusal, match="refused: it has more than max_members=3 members;"):
        swap.action_swap_restore(params)
    assert snapshot(site["root"]) == before


def test_oversized_member(site: dict) -> None:
    members = [*good_members(), member("assets/big.bin", data=b"x" * 11)]
    tarball = write_tarball(site["root"] / "big.tar.xz", members, "w:xz")
    params = {**site["params"], "tarball": str(tarball), "max_member_bytes": 10}
    before = snapshot(site["root"])
    with pytest.raises(
        swap.Refusal, match=r'member "assets/big.bin" is 11 B, more than max_member_bytes=10;'
    ):
        swap.action_swap_restore(params)
    assert snapshot(site["root"]) == before


def incompressible_members() -> list[tuple]:
    return [*good_members(), member("assets/noise.bin", data=os.urandom(200_000))]


@pytest.mark.parametrize("mode", ["w:gz", "w:bz2", "w:xz"])
def test_truncated_compressed_archive(site: dict, mode: str) -> None:
    whole = write_tarball(site["root"] / "whole.tar", incompressible_members(), mode)
    cut = site["root"] / f"cut.{mode[2:]}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    params = {**site["params"], "tarball": str(cut)}
    before = snapshot(site["root"])
    with pytest.raises(swap.Refusal, match="refused: it is truncated") as refused:
        swap.action_swap_restore(params)
    assert "\n" not in str(refused.value)
    assert snapshot(site["root"]) == before


def test_gzip_cut_in_its_trailer(site: dict) -> None:
    """All the tar data is there, only the gzip CRC/size trailer is missing."""
    whole = write_tarball(site["root"] / "whole.tgz", good_members())
    cut = site["root"] / "cut.tgz"
    cut.write_bytes(whole.read_bytes()[:-4])
    with pytest.raises(swap.Refusal, match="truncated or corrupt"):
        swap.action_swap_restore({**site["params"], "tarball": str(cut)})


def test_plain_tar_cut_at_a_block_boundary(site: dict) -> None:
    """A plain tar cut right after a member's data reads as complete to ``tarfile``: only the
    missing end-of-archive block tells."""
    whole = write_tarball(site["root"] / "whole.tar", good_members(), "w")
    with tarfile.open(whole) as tar:
        last = tar.getmembers()[-1]
        end = last.offset_data + -(-last.size // 512) * 512
    cut = site["root"] / "cut.tar"
    cut.write_bytes(whole.read_bytes()[:end])
    with pytest.raises(swap.Refusal, match="no end-of-archive block"):
        swap.action_swap_restore({**site["params"], "tarball": str(cut)})


def test_not_an_archive(site: dict) -> None:
    junk = site["root"] / "junk.tar.gz"
    junk.write_bytes(b"this is not a tarball\n" * 50)
    with pytest.raises(swap.Refusal, match="truncated, corrupt or not a tar archive"):
        swap.action_swap_restore({**site["params"], "tarball": str(junk)})


def test_setuid_accepted_and_dropped_owner_not_kept(site: dict) -> None:
    members = [
        *good_members(),
        member("assets/tool", data=b"#!/bin/sh\n", mode=0o6777, uid=4242, gid=4242),
    ]
    tarball = write_tarball(site["root"] / "suid.tar.bz2", members, "w:bz2")
    result = swap.action_swap_restore({**site["params"], "tarball": str(tarball)})
    assert result["changed"] and result["files"] == 3
    tool = site["parent"] / "assets" / "tool"
    mode = tool.stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWGRP | stat.S_IWOTH)
    assert stat.S_IMODE(mode) == 0o755
    assert (tool.stat().st_uid, tool.stat().st_gid) == (os.geteuid(), os.getegid())
    assert (site["parent"] / f"assets.prev_{TS}" / "old.txt").read_text() == "old\n"


def test_strip_components_and_dot_prefix(site: dict) -> None:
    members = [member("./", tarfile.DIRTYPE), member("./x.txt", data=b"x")]
    tarball = write_tarball(site["root"] / "dot.tar", members, "w")
    params = {**site["params"], "tarball": str(tarball), "strip_components": 0}
    assert swap.action_swap_restore(params)["files"] == 1
    assert (site["parent"] / "assets" / "x.txt").read_text() == "x"
    assert swap.action_swap_restore(params)["changed"] is False


def test_a_second_swap_at_once_is_refused(site: dict) -> None:
    tarball = write_tarball(site["root"] / "ok.tgz", good_members())
    fd = os.open(site["parent"], os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(HostsideError, match="another swap in .* is running on this host"):
            swap.action_swap_restore({**site["params"], "tarball": str(tarball)})
    finally:
        os.close(fd)
    assert (site["parent"] / "assets" / "old.txt").exists()


# Recovery rules (pure) ----------------------------------------------------------------------------

JOURNAL = {
    "kind": "restore",
    "ts": "T",
    "dest": "/d",
    "incoming": "/.d.staging-T",
    "aside": "/d.prev_T",
    "marker_path": "/m.json",
    "marker": {"sha256": "abc"},
}


def plan_for(phase: str, present: set[str], **extra) -> dict:
    return swap.recovery_plan({**JOURNAL, "phase": phase, **extra}, present.__contains__)


def test_recovery_before_ready_removes_staging_and_keeps_live() -> None:
    plan = plan_for("extracting", {"/d", "/.d.staging-T"})
    assert plan["steps"] == [("remove", "/.d.staging-T"), ("drop_journal",)]
    assert plan["live"] == "/d" and plan["marker"] is None


@pytest.mark.parametrize(
    ("present", "renames"),
    [
        ({"/d", "/.d.staging-T"}, [("/d", "/d.prev_T"), ("/.d.staging-T", "/d")]),
        ({"/d.prev_T", "/.d.staging-T"}, [("/.d.staging-T", "/d")]),
        ({"/d", "/d.prev_T"}, []),
    ],
)
def test_recovery_from_ready_rolls_forward(present: set[str], renames: list) -> None:
    plan = plan_for("ready", present)
    assert [step[1:] for step in plan["steps"] if step[0] == "rename"] == renames
    assert plan["steps"][-2:] == [("marker", "/m.json", {"sha256": "abc"}), ("drop_journal",)]
    assert plan["live"] == "/d" and not plan["stuck"]


def test_recovery_of_a_first_restore_without_live_tree() -> None:
    plan = plan_for("ready", {"/.d.staging-T"}, aside=None)
    assert plan["steps"][0] == ("rename", "/.d.staging-T", "/d")


def test_recovery_that_cannot_decide_is_stuck() -> None:
    plan = plan_for("ready", {"/d", "/d.prev_T", "/.d.staging-T"})
    assert plan["stuck"] and plan["steps"] == []
    assert "inspect by hand" in plan["outcome"]


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:xz"])
def test_one_pass_checks_and_hashes_the_tarball(site: dict, mode: str) -> None:
    """Checking the archive hashes it in the same pass (tarfile's skips over member data are
    read and hashed), and the marker records the file's real sha256."""
    tarball = write_tarball(site["root"] / "t.tar", incompressible_members(), mode)
    real = hashlib.sha256(tarball.read_bytes()).hexdigest()
    options = {**swap.swap_params({**site["params"], "tarball": str(tarball)}), "params": {}}
    with swap.opened_tarball(str(tarball)) as (tar, reader):
        swap.check_tarball(tar, options)
        assert reader.sha256() == real
    result = swap.action_swap_restore({**site["params"], "tarball": str(tarball)})
    assert result["sha256"] == real
    assert (site["parent"] / "assets" / "noise.bin").stat().st_size == 200_000


def test_a_live_tarball_is_not_read_again(site: dict) -> None:
    """Same device, inode, size and mtime as the marker records: trusted without a read (proved by
    overwriting its bytes in place, mtime kept: a read would refuse it as corrupt)."""
    tarball = write_tarball(site["root"] / "t.tgz", good_members())
    params = {**site["params"], "tarball": str(tarball)}
    assert swap.action_swap_restore(params)["changed"] is True
    st = tarball.stat()
    with open(tarball, "r+b") as handle:
        handle.write(b"\0" * st.st_size)
    os.utime(tarball, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert swap.action_swap_plan(params)["up_to_date"] is True
    assert swap.action_swap_restore(params)["changed"] is False
    os.utime(tarball, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # now it is read, and refused
    assert "truncated, corrupt" in swap.action_swap_plan(params)["refusal"]
