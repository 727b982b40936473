"""Asset paths (prefix → assets_dir), readability, sample quotas, rsync output parsing."""

import os
from pathlib import Path

import pytest

from turnout.hostside.assets import (
    action_rsync_plan,
    asset_check,
    asset_is_inside,
    asset_map_path,
    asset_mode_readable,
    asset_parse_column,
    asset_quotas,
    rsync_exit_code,
    rsync_failure,
    rsync_is_remote,
    rsync_options,
    rsync_parse,
    rsync_reason,
    rsync_refusal,
)
from turnout.hostside.base import HostsideError
from turnout.operations.assets import mirror_refusal

PREFIX = "/app/.data"
ASSETS = "/srv/app/data/assets"

FIRST_RUN = """\
created directory dst
cd+++++++++ ./
cS+++++++++ fifo
cL+++++++++ lnk -> a/f1
cd+++++++++ a/
>f+++++++++ a/f1
cd+++++++++ b/
>f+++++++++ b/f2

Number of files: 7 (reg: 2, dir: 3, link: 1, special: 1)
Number of created files: 7 (reg: 2, dir: 3, link: 1, special: 1)
Number of deleted files: 0
Number of regular files transferred: 2
Total file size: 10 bytes
Total transferred file size: 6 bytes
Literal data: 0 bytes
Matched data: 0 bytes
File list size: 0
Total bytes sent: 191
Total bytes received: 65

sent 191 bytes  received 65 bytes  512.00 bytes/sec
total size is 10  speedup is 0.04 (DRY RUN)
"""

CHANGES = """\
*deleting   c/y
*deleting   c/
*deleting   extra
>f.st...... a/f1
.d..t...... b/
>f+++++++++ name with spaces.txt
hf+++++++++ hard => a/f1

Number of files: 1234567 (reg: 2, dir: 3)
Total transferred file size: 8123456789 bytes
"""

PARTIAL = """\
.d..t...... b/

Number of files: 7 (reg: 2, dir: 3, link: 1, special: 1)
Total transferred file size: 0 bytes
cannot delete non-empty directory: b/f2
could not make way for new regular file: b/f2
rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1394)
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/app/.data/knowledge/1/doc.txt", f"{ASSETS}/knowledge/1/doc.txt"),
        ("/app/.data/gallery/7/", f"{ASSETS}/gallery/7/"),  # a directory keeps its slash
        ("/app/.data", ASSETS),  # the prefix itself is the assets dir
        ("/app/.data/", f"{ASSETS}/"),
        ("/app/.data2/x", None),  # a sibling sharing the prefix's letters is outside
        ("/app/.dat", None),
        ("app/.data/x", None),
        ("/srv/other/x", None),
        ("/app/.data/../etc/passwd", None),  # never escapes assets_dir
        ("/app/.data/a/../../etc/passwd", None),
        ("/app/.data/a/..", None),
        ("/app/.data/..", None),
        ("/app/.data/a..b/c", f"{ASSETS}/a..b/c"),  # ".." inside a name is not a segment
        ("/app/.data/x\x00y", None),
    ],
)
def test_map_path(path: str, expected: str | None) -> None:
    assert asset_map_path(path, PREFIX, ASSETS) == expected
    assert asset_is_inside(path, PREFIX) is (expected is not None)


def test_map_path_prefix_and_assets_dir_spellings() -> None:
    assert asset_map_path("/app/.data/x", "/app/.data/", ASSETS + "/") == f"{ASSETS}/x"
    assert asset_map_path("/x/y", "/", ASSETS) == f"{ASSETS}/x/y"  # prefix "/" takes everything
    assert asset_map_path("/app/.data/x", PREFIX, "/") == "/x"
    assert asset_map_path("/app/.data", PREFIX, "/") == "/"


def test_mapped_paths_never_leave_assets_dir() -> None:
    for path in ("/app/.data/../../x", "/app/.data/./../x", "/app/.data//../x"):
        mapped = asset_map_path(path, PREFIX, ASSETS)
        assert mapped is None or os.path.normpath(mapped).startswith(ASSETS + "/")


def test_parse_column() -> None:
    assert asset_parse_column("ugc_assets.storage_path") == (None, "ugc_assets", "storage_path")
    assert asset_parse_column("s.t.c") == ("s", "t", "c")
    for bad in ("storage_path", "a..b", "a.b.c.d", ".b", 3):
        with pytest.raises(HostsideError, match="table.column"):
            asset_parse_column(bad)


@pytest.mark.parametrize(
    ("available", "total", "expected"),
    [
        ([100, 100, 100], 50, [17, 17, 16]),
        ([100, 3, 100], 50, [24, 3, 23]),  # a small column's unused share goes to the others
        ([0, 10], 50, [0, 10]),
        ([5, 5], 50, [5, 5]),
        ([100], 0, [0]),
        ([1, 1, 1, 1], 2, [1, 1, 0, 0]),
        ([], 50, []),
    ],
)
def test_quotas(available: list[int], total: int, expected: list[int]) -> None:
    quotas = asset_quotas(available, total)
    assert quotas == expected
    assert sum(quotas) == min(total, sum(available))


def test_root_needs_a_read_bit() -> None:
    assert asset_mode_readable(0o100000, 1000) is True  # non-root: os.access decides
    assert asset_mode_readable(0o100000, 0) is False
    assert asset_mode_readable(0o100400, 0) is True
    assert asset_mode_readable(0o100004, 0) is True


def test_check_files_and_directories(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("secret content")
    locked = tmp_path / "locked.txt"
    locked.write_text("x")
    locked.chmod(0)
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    closed = tmp_path / "closed"
    closed.mkdir()
    closed.chmod(0)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    try:
        assert asset_check(str(good)) == "ok"
        assert asset_check(f"{gallery}/") == "ok"
        assert asset_check(str(tmp_path / "absent")) == "missing"
        assert asset_check(f"{good}/") == "missing"  # a directory was expected
        assert asset_check(str(locked)) == "unreadable"
        assert asset_check(f"{closed}/") == "unreadable"
        assert asset_check(str(fifo)) == "unreadable"  # and it does not block
    finally:
        closed.chmod(0o700)


def test_parse_first_run() -> None:
    assert rsync_parse(FIRST_RUN) == {
        "source_entries": 6,
        "add": 7,
        "change": 0,
        "delete": 0,
        "transfer_bytes": 6,
        "add_files": 2,
        "change_files": 0,
    }


def test_parse_changes_and_deletes() -> None:
    counts = rsync_parse(CHANGES)
    assert counts == {
        "source_entries": 1234566,
        "add": 2,
        "change": 2,
        "delete": 3,
        "transfer_bytes": 8123456789,
        "add_files": 2,
        "change_files": 1,
    }


def test_parse_ignores_unchanged_items_and_messages() -> None:
    lines = ".f          same.txt\ncreated directory x\nskipping non-regular file y\n"
    counts = rsync_parse(lines + "Number of files: 1 (dir: 1)\n")
    assert counts["add"] == counts["change"] == counts["delete"] == counts["source_entries"] == 0


def test_exit_code_and_reason() -> None:
    assert rsync_exit_code(FIRST_RUN) == 0
    assert rsync_exit_code(PARTIAL) == 23
    vanished = "rsync warning: some files vanished before they could be transferred (code 24) at"
    assert rsync_exit_code(vanished) == 24
    assert rsync_reason(PARTIAL) == "cannot delete non-empty directory: b/f2"


def test_failure_messages_are_clear() -> None:
    options = {"source": "/a", "dest": "/b", "max_delete": 10}
    assert "partial transfer" in rsync_failure(23, PARTIAL, options)
    assert "cannot delete non-empty directory" in rsync_failure(23, PARTIAL, options)
    assert "vanished" in rsync_failure(24, "", options)
    assert "--max-delete=10" in rsync_failure(25, "", options)


def test_remote_syntax() -> None:
    assert rsync_is_remote("backup@old:/srv/assets")
    assert rsync_is_remote("old::module/path")
    assert rsync_is_remote("rsync://old/module")
    assert not rsync_is_remote("/srv/assets")
    assert not rsync_is_remote("./odd:name")


def test_options_add_the_trailing_slash_and_validate() -> None:
    options = rsync_options({"source": "/srv/src", "dest": "/srv/dst/"})
    assert (options["src"], options["dst"]) == ("/srv/src/", "/srv/dst/")
    assert rsync_options({"source": "h:/x/", "dest": "/d"})["src"] == "h:/x/"
    for bad, match in [
        ({"source": "--rsh=evil", "dest": "/d"}, "not starting with '-'"),
        ({"source": "h:", "dest": "/d"}, "no path"),
        ({"source": "/s", "dest": "relative"}, "absolute path"),
        ({"source": "/s", "dest": "/"}, "other than /"),
        ({"source": "/s", "dest": "/d", "delete": "yes"}, "true or false"),
        ({"source": "/s", "dest": "/d", "excludes": ["a\nb"]}, "patterns"),
        ({"source": "/s", "dest": "/d", "max_delete": -1}, "max_delete"),
    ]:
        with pytest.raises(HostsideError, match=match):
            rsync_options(bad)


def test_plan_of_a_missing_source_is_clear(tmp_path: Path) -> None:
    with pytest.raises(HostsideError, match="does not exist on this host"):
        action_rsync_plan({"source": str(tmp_path / "nope"), "dest": str(tmp_path / "d")})
    (tmp_path / "file").write_text("x")
    with pytest.raises(HostsideError, match="is not a directory"):
        action_rsync_plan({"source": str(tmp_path / "file"), "dest": str(tmp_path / "d")})


def test_mirror_refusals() -> None:
    """The rule lives on the host (``rsync_refusal``); the control side only reports it."""

    def refusal(delete: bool, max_delete: int | None, entries: int, deletes: int | None):
        options = rsync_options(
            {"source": "/s", "dest": "/d", "delete": delete, "max_delete": max_delete}
        )
        return rsync_refusal(options, entries, deletes)

    assert "source is empty" in refusal(True, None, 0, 5)
    assert "source is empty" in refusal(True, None, 0, None)  # the pre-flight's cheap check
    assert refusal(False, None, 0, 5) is None
    assert "more than max_delete=4" in refusal(True, 4, 3, 5)
    assert refusal(True, 5, 3, 5) is None
    assert refusal(True, 4, 3, None) is None  # not known before the dry run
    plan = {"ok": True, "refusal": refusal(True, None, 0, 5)}
    assert mirror_refusal(plan, "/s", "/d") == plan["refusal"]
    failed = {"ok": False, "error": "rsync source /s does not exist on this host"}
    assert "does not exist" in mirror_refusal(failed, "/s", "/d")


def test_shipped_plan_runs_rsync(tmp_path: Path) -> None:
    from test_hostside import run_shipped

    source = tmp_path / "src"
    (source / "a").mkdir(parents=True)
    (source / "a" / "f").write_text("12345")
    result, out = run_shipped(
        "rsync_plan", {"source": str(source), "dest": str(tmp_path / "dst")}, tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert out == {
        "ok": True,
        "source_entries": 2,
        "add": 3,
        "change": 0,
        "delete": 0,
        "transfer_bytes": 5,
        "add_files": 1,
        "change_files": 0,
        "refusal": None,
    }
    assert not (tmp_path / "dst").exists()
