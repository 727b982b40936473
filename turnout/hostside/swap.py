"""Host-side restore-assets: a tarball checked member by member, extracted beside the live tree
and swapped in by two journaled renames (RELIABILITY 1-8), and the swap back.

Layout, for ``dest=/srv/app/data/assets`` and ``timestamp=T`` (all in the parent ``/srv/app/data``,
so every rename stays on one filesystem):

- staging: ``/srv/app/data/.assets.staging-T`` (the tarball is extracted here first)
- the tree that was live: ``/srv/app/data/assets.prev_T``; after a swap back the tree that was
  live then: ``/srv/app/data/assets.failed_T``
- journal: ``/srv/app/data/.assets.swap-journal.json`` (written atomically, fsynced, before each
  step: ``phase`` ``extracting`` then ``ready``); the parent directory is fsynced after each
  rename. Two swaps of one parent at once: the second is refused (``flock`` on the parent).

**Tarball rules** (all checked while only reading, before anything is written; the first bad
member refuses the whole archive in one line): only regular files and directories; no absolute
path, no ``..`` component, no symlink, hardlink, device or FIFO; at most ``max_members`` members
(default 200000), none larger than ``max_member_bytes`` (default 8 GiB); a path never both a file
and a directory; the archive read through to its end-of-archive blocks and, compressed, to the end
of its stream (a truncated or corrupt archive is refused). Extraction then uses ``tarfile``'s
``filter="data"`` as well: setuid/setgid/sticky bits and group/other write bits are dropped, and
owners are not restored (files belong to the user running the program). ``.tar``, ``.tar.gz``,
``.tar.bz2`` and ``.tar.xz`` are accepted (``r:*``). ``strip_components`` drops that many leading
path components of every member, like GNU tar's ``--strip-components`` (members with no more
components, such as the top-level directory itself, are skipped); ``./`` prefixes are ignored.

**Crash safety.** Until the journal says ``ready`` (the staging tree is complete and synced to
disk) the live tree has not been touched: recovery removes the staging tree. From ``ready`` on,
recovery rolls forward: it completes the two renames that are missing, writes the marker, drops
the journal. So a rerun after kill -9 anywhere finds exactly one complete live tree, the old one
or the new one. Every action (and the plans, without changing anything) starts with that
recovery; stale staging directories ``.<name>.staging-*`` are removed. A run stopped by a signal
(SIGTERM, SIGINT, SIGHUP, its ssh channel closing) before ``ready`` removes its staging tree and
journal on the way out; from ``ready`` on, it leaves the journal for the next run to finish.
With ``progress_interval_s`` the restore prints a progress line per interval: the check pass
(bytes of the tarball read and hashed), then the extraction (files and bytes written).

**Fault points** (tests): ``TURNOUT_FAULT_AT=<point>`` in the environment of the host program
makes an operation action SIGKILL itself at that point: ``before_extract`` (journal written,
staging created, empty), ``mid_extract`` (half the members extracted), ``extracted`` (staging
complete, journal still ``extracting``), ``ready`` (journal ``ready``, no rename yet),
``after_first_rename`` (the live tree moved aside), ``after_second_rename`` (the new tree live, no
marker yet), ``before_journal_removal`` (marker written). The swap back uses the last four.

**Marker** (``marker`` param, JSON, 0600): ``kind`` (``restore`` or ``swap_back``), ``dest``,
``ts``, ``sha256`` / ``tarball`` / ``tarball_stat`` (the tarball the live tree came from, when
known; ``tarball_stat`` = sha256 of device, inode, size and mtime: the same signature means the
same sha256 without reading the tarball again), ``files``, ``bytes``, ``prev`` (where the tree
that was live went), ``previous`` (that tree's identity), ``at``; a swap back adds
``live_from`` and ``failed``. The same tarball again with the live tree present changes nothing.

"Changed" in a plan means: a regular file in both, with another size or mtime (whole seconds;
extraction sets the member's mtime) — no content is read for the comparison.

    python -c 'from turnout.remote import hostside_command as c
    print(c("swap_plan", {"tarball": "/srv/in/assets.tar.gz", "dest": "/srv/app/data/assets",
        "marker": "/srv/state/assets.json", "timestamp": "T1"}).get_raw_value())' | sh
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from turnout.hostside.base import HostsideError
from turnout.hostside.progress import Ticker, human_bytes, interval_of

SWAP_MAX_MEMBERS = 200_000
SWAP_MAX_MEMBER_BYTES = 8 << 30
SWAP_LIST_MAX = 10
FAULT_ENV = "TURNOUT_FAULT_AT"
FAULT_POINTS = (
    "before_extract",
    "mid_extract",
    "extracted",
    "ready",
    "after_first_rename",
    "after_second_rename",
    "before_journal_removal",
)
TIMESTAMP_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BLOCK = tarfile.BLOCKSIZE
NOTHING_CHANGED = "nothing was changed"


def fault(point: str) -> None:
    """SIGKILL this process when ``TURNOUT_FAULT_AT`` names ``point`` (kill -9 tests)."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# Layout -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Where one live directory's swap keeps its pieces (all in its parent).

    >>> Layout.of("/srv/data/assets/").staging("T1")
    '/srv/data/.assets.staging-T1'
    >>> Layout.of("/srv/data/assets").prev("T1")
    '/srv/data/assets.prev_T1'
    """

    dest: str
    parent: str
    name: str

    @classmethod
    def of(cls, dest: str) -> Layout:
        path = os.path.normpath(dest)
        parent, name = os.path.split(path)
        if not os.path.isabs(path) or not name or name in (".", ".."):
            raise HostsideError(f"dest must be an absolute directory path, got {dest!r}")
        return cls(path, parent, name)

    def staging(self, ts: str) -> str:
        return os.path.join(self.parent, f".{self.name}.staging-{ts}")

    def prev(self, ts: str) -> str:
        return f"{self.dest}.prev_{ts}"

    def failed(self, ts: str) -> str:
        return f"{self.dest}.failed_{ts}"

    @property
    def journal(self) -> str:
        return os.path.join(self.parent, f".{self.name}.swap-journal.json")

    def leftovers(self) -> list[str]:
        """Staging trees and journal temporaries a killed run may have left (ours by name)."""
        prefixes = (f".{self.name}.staging-", f".{self.name}.swap-journal.json.tmp-")
        try:
            names = os.listdir(self.parent)
        except FileNotFoundError:
            return []
        return sorted(os.path.join(self.parent, n) for n in names if n.startswith(prefixes))

    def prevs(self) -> list[str]:
        """The ``<name>.prev_*`` trees beside the live one, oldest name first."""
        try:
            names = os.listdir(self.parent)
        except FileNotFoundError:
            return []
        prefix = f"{self.name}.prev_"
        return sorted(os.path.join(self.parent, n) for n in names if n.startswith(prefix))


# Parameters -------------------------------------------------------------------------------------


def _int_param(params: dict, key: str, default: int, minimum: int) -> int:
    value = params.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HostsideError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return value


def _path_param(params: dict, key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value.startswith("/"):
        raise HostsideError(f"{key} must be an absolute host path, got {value!r}")
    return value


def swap_params(params: dict, tarball: bool = True) -> dict:
    """The checked parameters of a swap action."""
    ts = params.get("timestamp")
    if not isinstance(ts, str) or not TIMESTAMP_RE.match(ts):
        raise HostsideError(f"timestamp must be a short name like 20261123T120000Z, got {ts!r}")
    options = {
        "layout": Layout.of(_path_param(params, "dest")),
        "marker": _path_param(params, "marker"),
        "ts": ts,
        "list_max": _int_param(params, "list_max", SWAP_LIST_MAX, 0),
        "log_path": params.get("log_path") if isinstance(params.get("log_path"), str) else None,
    }
    if tarball:
        options.update(
            tarball=_path_param(params, "tarball"),
            strip=_int_param(params, "strip_components", 0, 0),
            max_members=_int_param(params, "max_members", SWAP_MAX_MEMBERS, 1),
            max_member_bytes=_int_param(params, "max_member_bytes", SWAP_MAX_MEMBER_BYTES, 0),
        )
    else:
        prev = params.get("prev")
        if prev is not None and not isinstance(prev, str):
            raise HostsideError(f"prev must be a path or null, got {prev!r}")
        options["prev"] = prev
    return options


# The tarball ------------------------------------------------------------------------------------


@dataclass
class Scan:
    """What a tarball holds once checked: its members to extract (with their stripped names),
    the tree they make (``entries``: name → kind, size, mtime), totals, or the refusal."""

    members: list[tuple[tarfile.TarInfo, str]] = field(default_factory=list)
    entries: dict[str, tuple] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    refusal: str | None = None


@dataclass
class Progress:
    """Where a restore is, for its progress lines: the check pass (bytes of the tarball read and
    hashed), then the extraction (files and bytes written)."""

    reader: HashingReader | None = None
    size: int = 0
    scan: Scan | None = None
    files: int = 0
    bytes: int = 0

    def line(self, seconds: float) -> str | None:
        if self.scan is None:
            done = self.reader.pos if self.reader else 0
            return f"checking the tarball: {human_bytes(done)} of {human_bytes(self.size)} read"
        return (
            f"extracted {self.files} of {self.scan.files} files, "
            f"{human_bytes(self.bytes)} of {human_bytes(self.scan.bytes)}"
        )


def quoted(name: str) -> str:
    """A member name as shown in a refusal: double-quoted, escaped like JSON."""
    return json.dumps(name, ensure_ascii=False)


def member_kind(member: tarfile.TarInfo) -> str | None:
    """Why a member's type is refused (None for a regular file or a directory)."""
    if member.isreg() or member.isdir():
        return None
    if member.issym():
        return (
            f"is a symlink (to {quoted(member.linkname)}); only files and directories are accepted"
        )
    if member.islnk():
        return (
            f"is a hardlink (to {quoted(member.linkname)}); only files and directories are accepted"
        )
    kinds = {
        tarfile.CHRTYPE: "a character device",
        tarfile.BLKTYPE: "a block device",
        tarfile.FIFOTYPE: "a FIFO",
    }
    return f"is {kinds.get(member.type, 'a special file')}; only files and directories are accepted"


def member_name(name: str, strip: int) -> tuple[str | None, str | None]:
    """(the member's path after ``strip`` components, or None to skip it; why it is refused).

    >>> member_name("./top/a/b.txt", 1)
    ('a/b.txt', None)
    >>> member_name("top/", 1)
    (None, None)
    >>> member_name("a/../../etc/passwd", 0)[1]
    'escapes the target'
    """
    if name.startswith("/"):
        return None, "has an absolute path"
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        return None, "escapes the target"
    if "\x00" in name:
        return None, "has a NUL byte in its name"
    rest = parts[strip:]
    return ("/".join(rest) if rest else None), None


def scan_member(scan: Scan, member: tarfile.TarInfo, options: dict) -> str | None:
    """Check one member and add it to ``scan``; why it refuses the archive, or None."""
    why = member_kind(member)
    name, bad_name = member_name(member.name, options["strip"])
    why = bad_name or why
    if why is None and member.isreg() and member.size > options["max_member_bytes"]:
        why = (
            f"is {human_bytes(member.size)}, more than max_member_bytes="
            f"{options['max_member_bytes']}"
        )
    if why is not None:
        return f"member {quoted(member.name)} {why}"
    if name is None:
        return None
    parts = name.split("/")
    for depth in range(1, len(parts)):
        ancestor = "/".join(parts[:depth])
        if scan.entries.setdefault(ancestor, ("d",))[0] != "d":
            return f"member {quoted(member.name)} is inside {quoted(ancestor)}, which is a file"
    kind = "f" if member.isreg() else "d"
    before = scan.entries.get(name)
    if before is not None and before[0] != kind:
        return f"member {quoted(member.name)} is both a file and a directory"
    if kind == "f":
        if before is not None:
            scan.bytes -= before[1]
        else:
            scan.files += 1
        scan.bytes += member.size
        scan.entries[name] = ("f", member.size, int(member.mtime))
    else:
        scan.entries[name] = ("d",)
    scan.members.append((member, name))
    return None


class BlockRecorder(tarfile.TarInfo):
    """A TarInfo that remembers the last header block read (in ``last``, set per archive by
    ``open_tarball``): the block that ended the member list tells a complete archive (a zero
    block) from a truncated one (short or missing) or a corrupt one (not a header)."""

    last: list[bytes] = []

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        cls.last[:] = [buf]
        return super().frombuf(buf, encoding, errors)


def archive_end_problem(tar: tarfile.TarFile) -> str | None:
    """After the last member: the block that ended the list must be an end-of-archive (zero)
    block, and a compressed stream must end cleanly (read through its trailer: a gzip CRC or a
    cut stream raise). None when it does."""
    last = getattr(tar.tarinfo, "last", None) or [b""]
    if len(last[0]) < BLOCK or last[0].count(0) != BLOCK:
        return "is truncated or corrupt (no end-of-archive block after the last member)"
    while tar.fileobj.read(1 << 20):
        pass
    return None


def scan_tarball(tar: tarfile.TarFile, options: dict) -> Scan:
    """Read every header (and skip every member's data) of an open archive; the Scan."""
    scan = Scan()
    count = 0
    while True:
        member = tar.next()
        if member is None:
            break
        count += 1
        if count > options["max_members"]:
            scan.refusal = f"it has more than max_members={options['max_members']} members"
            return scan
        scan.refusal = scan_member(scan, member, options)
        if scan.refusal:
            return scan
    scan.refusal = archive_end_problem(tar)
    if scan.refusal:
        scan.refusal = f"it {scan.refusal}"
    return scan


class Refusal(HostsideError):
    """The whole tarball is refused (one line naming the first bad member and why)."""


TAR_READ_ERRORS: tuple[type[BaseException], ...] = (tarfile.TarError, EOFError, OSError, ValueError)


class HashingReader(io.RawIOBase):
    """A seekable reader of a file that hashes every byte of it exactly once, in order, whatever
    the reads and seeks of its user (``tarfile`` skips member data by seeking; the skipped bytes
    are read and hashed then), so checking the archive and hashing it is one pass over the file.
    ``sha256()`` hashes what was not read yet and answers the file's sha256."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.signature = signature_of(os.fstat(self.raw.fileno()))
        self.digest = hashlib.sha256()
        self.pos = 0
        self.hashed = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.pos}.get(whence)
        if base is None:
            base = os.fstat(self.raw.fileno()).st_size
        self.pos = max(0, base + offset)
        return self.pos

    def catch_up(self, upto: int | None) -> None:
        """Hash the file from where hashing stopped up to ``upto`` (None: its end)."""
        self.raw.seek(self.hashed)
        while upto is None or self.hashed < upto:
            want = 1 << 20 if upto is None else min(1 << 20, upto - self.hashed)
            chunk = self.raw.read(want)
            if not chunk:
                break
            self.digest.update(chunk)
            self.hashed += len(chunk)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if self.pos > self.hashed:
            self.catch_up(self.pos)
        self.raw.seek(self.pos)
        count = self.raw.readinto(buffer)
        end = self.pos + (count or 0)
        if end > self.hashed:
            self.digest.update(memoryview(buffer)[self.hashed - self.pos : count])
            self.hashed = end
        self.pos = end
        return count or 0

    def sha256(self) -> str:
        self.catch_up(None)
        return self.digest.hexdigest()

    def close(self) -> None:
        self.raw.close()
        super().close()


@contextmanager
def opened_tarball(path: str) -> Iterator[tuple[tarfile.TarFile, HashingReader]]:
    """The archive opened for reading with its compression detected, and the reader that hashes
    it as it is read; HostsideError when the file is missing, ``Refusal`` when it is no archive."""
    recorder = type("Recorder", (BlockRecorder,), {"last": []})
    try:
        reader = HashingReader(path)
    except FileNotFoundError:
        raise HostsideError(f"assets tarball {path} does not exist on this host") from None
    except IsADirectoryError:
        raise HostsideError(f"assets tarball {path} is a directory, not a tarball") from None
    try:
        try:
            tar = tarfile.open(fileobj=reader, mode="r:*", tarinfo=recorder)
        except TAR_READ_ERRORS as error:
            raise Refusal(
                f"assets tarball {path} refused: it is truncated, corrupt or not a tar archive "
                f"({one_line(error)}); {NOTHING_CHANGED}"
            ) from None
        with tar:
            yield tar, reader
    finally:
        reader.close()


def one_line(error: BaseException) -> str:
    """An error's message on one line; tarfile's "could not be opened" lists every method tried,
    one per line: that says no method could read it."""
    text = " ".join(str(error).split()) or type(error).__name__
    if text.startswith("file could not be opened successfully"):
        return "not readable as tar, tar.gz, tar.bz2 or tar.xz"
    return text[:300]


def check_tarball(tar: tarfile.TarFile, options: dict) -> Scan:
    """Scan the open archive; ``Refusal`` naming the first problem."""
    try:
        scan = scan_tarball(tar, options)
    except TAR_READ_ERRORS as error:
        scan = Scan(refusal=f"it is truncated or corrupt ({one_line(error)})")
    if scan.refusal:
        raise Refusal(
            f"assets tarball {options['tarball']} refused: {scan.refusal}; {NOTHING_CHANGED}"
        )
    return scan


def signature_of(st: os.stat_result) -> str:
    """sha256 of a file's device, inode, size and mtime (ns): unchanged signature, unchanged
    content (the model is ``dump_stat_signature``)."""
    text = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()


def tarball_signature(path: str) -> str:
    return signature_of(os.stat(path))


def trusted_sha256(path: str, marker: dict | None) -> str | None:
    """The marker's sha256 when it names this tarball with the same stat signature (no read)."""
    if not marker or marker.get("tarball") != path or not marker.get("tarball_stat"):
        return None
    try:
        return marker.get("sha256") if marker["tarball_stat"] == tarball_signature(path) else None
    except OSError:
        return None


# The live tree ----------------------------------------------------------------------------------


def tree_entries(root: str) -> dict[str, tuple]:
    """Every entry under ``root`` (not followed through symlinks): name → ``("f", size, mtime)``,
    ``("d",)`` or ``("o",)`` for anything else."""
    entries: dict[str, tuple] = {}
    pending = [""]
    while pending:
        relative = pending.pop()
        with os.scandir(os.path.join(root, relative) if relative else root) as listing:
            for entry in listing:
                name = f"{relative}/{entry.name}" if relative else entry.name
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    entries[name] = ("d",)
                    pending.append(name)
                elif stat.S_ISREG(st.st_mode):
                    entries[name] = ("f", st.st_size, int(st.st_mtime))
                else:
                    entries[name] = ("o",)
    return entries


def tree_totals(entries: dict[str, tuple]) -> tuple[int, int]:
    files = [entry for entry in entries.values() if entry[0] == "f"]
    return len(files), sum(entry[1] for entry in files)


def tree_diff(new: dict[str, tuple], old: dict[str, tuple], limit: int) -> dict:
    """What replacing the tree ``old`` by ``new`` adds, removes and changes (directories shown
    with a trailing ``/``; a file changes when its kind, size or mtime differs).

    >>> d = tree_diff({"a": ("f", 1, 5), "b": ("d",)}, {"a": ("f", 2, 5), "c": ("f", 1, 1)}, 10)
    >>> d["added_paths"], d["removed_paths"], d["changed_paths"]
    (['b/'], ['c'], ['a'])
    """

    def shown(name: str, entries: dict) -> str:
        return f"{name}/" if entries[name][0] == "d" else name

    added = sorted(shown(n, new) for n in new.keys() - old.keys())
    removed = sorted(shown(n, old) for n in old.keys() - new.keys())
    changed = sorted(
        shown(n, new)
        for n in new.keys() & old.keys()
        if new[n] != old[n] and not (new[n][0] == old[n][0] == "d")
    )
    return {
        "added": len(added),
        "removed": len(removed),
        "changed": len(changed),
        "added_paths": added[:limit],
        "removed_paths": removed[:limit],
        "changed_paths": changed[:limit],
    }


def is_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


def filesystem_problem(layout: Layout, *paths: str) -> str | None:
    """EXDEV: each existing path must sit on its parent's filesystem (a mount point cannot be
    swapped by rename; turnout never falls back to copy and delete)."""
    try:
        parent_dev = os.stat(layout.parent).st_dev
    except FileNotFoundError:
        return f"the parent directory {layout.parent} does not exist; create it first"
    for path in paths:
        try:
            dev = os.lstat(path).st_dev
        except FileNotFoundError:
            continue
        if dev != parent_dev or os.path.ismount(path):
            return (
                f"{path} is on another filesystem than {layout.parent} (EXDEV: a mount point "
                "cannot be swapped by rename, and turnout never copies and deletes instead)"
            )
    return None


# Durable files ----------------------------------------------------------------------------------


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` (0600) through a temporary file: fsync, rename, fsync the
    directory."""
    directory = os.path.dirname(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def read_json(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise HostsideError(f"cannot read {path}: {error}") from None
    return data if isinstance(data, dict) else None


def read_marker(path: str, layout: Layout) -> dict | None:
    """The marker, when it describes this live directory."""
    marker = read_json(path)
    return marker if marker and marker.get("dest") == layout.dest else None


def write_marker(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    durable_json(path, record)


def write_journal(layout: Layout, record: dict) -> None:
    try:
        durable_json(layout.journal, record)
    except OSError as error:
        raise HostsideError(
            f"cannot write the swap journal {layout.journal}: {error.strerror}; {NOTHING_CHANGED}"
        ) from None


def drop_journal(layout: Layout) -> None:
    try:
        os.unlink(layout.journal)
    except FileNotFoundError:
        return
    fsync_dir(layout.parent)


def durable_rename(source: str, target: str, parent: str) -> None:
    os.rename(source, target)
    fsync_dir(parent)


def remove_tree(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


@contextmanager
def swap_lock(layout: Layout) -> Iterator[None]:
    """One swap per parent directory at a time (``flock`` on the parent itself: writes nothing)."""
    try:
        fd = os.open(layout.parent, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise HostsideError(
            f"the parent directory {layout.parent} does not exist; create it first"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HostsideError(
                f"another swap in {layout.parent} is running on this host; wait for it to end "
                f"and rerun; {NOTHING_CHANGED}"
            ) from None
        yield
    finally:
        os.close(fd)


# Recovery ---------------------------------------------------------------------------------------


def recovery_plan(journal: dict, present: Callable[[str], bool]) -> dict:
    """What recovering an interrupted swap does, from its journal and which paths exist:
    ``{"outcome": sentence, "steps": [...], "live": path or None, "marker": record or None,
    "stuck": bool}``. Steps: ``("remove", path)``, ``("rename", source, target)``,
    ``("marker", path, record)``, ``("drop_journal",)``.

    >>> j = {"phase": "ready", "dest": "/d", "incoming": "/s", "aside": "/d.prev_T",
    ...      "ts": "T", "marker_path": "/m", "marker": {"sha256": "x"}}
    >>> recovery_plan(j, {"/s", "/d.prev_T"}.__contains__)["steps"][0]
    ('rename', '/s', '/d')
    """
    dest, incoming, aside = journal["dest"], journal["incoming"], journal.get("aside")
    if journal.get("phase") != "ready":
        steps: list[tuple] = [("remove", incoming)] if present(incoming) else []
        return {
            "outcome": f"the extraction into {incoming} had not ended: it is removed, "
            f"{dest} stays as it was",
            "steps": [*steps, ("drop_journal",)],
            "live": dest if present(dest) else None,
            "marker": None,
            "stuck": False,
        }
    has_dest, has_incoming = present(dest), present(incoming)
    has_aside = bool(aside) and present(aside)
    finish = [("marker", journal["marker_path"], journal["marker"]), ("drop_journal",)]
    if has_incoming and has_dest and aside and not has_aside:
        steps = [("rename", dest, aside), ("rename", incoming, dest), *finish]
        outcome = f"{dest} is moved to {aside} and {incoming} becomes live"
    elif has_incoming and not has_dest:
        steps = [("rename", incoming, dest), *finish]
        outcome = f"{incoming} becomes live as {dest}"
    elif has_dest and not has_incoming:
        steps = finish
        outcome = f"both renames were done: {dest} is live, the marker is written"
    elif has_aside and not has_dest and not has_incoming:
        steps = [("rename", aside, dest), ("drop_journal",)]
        return {
            "outcome": f"{incoming} is gone: {aside} is put back as {dest}",
            "steps": steps,
            "live": dest,
            "marker": None,
            "stuck": False,
        }
    else:
        where = ", ".join(f"{p} {'exists' if present(p) else 'missing'}" for p in (dest, incoming))
        return {
            "outcome": f"it cannot be recovered automatically ({where}); inspect by hand, "
            f"then remove {journal.get('journal', 'the journal')}",
            "steps": [],
            "live": dest if has_dest else None,
            "marker": None,
            "stuck": True,
        }
    return {
        "outcome": outcome,
        "steps": steps,
        "live": dest,
        "marker": journal["marker"],
        "stuck": False,
    }


def pending_recovery(layout: Layout) -> dict | None:
    """The recovery a journal left by a killed run asks for (``ts``, ``kind`` added), or None."""
    journal = read_json(layout.journal)
    if journal is None:
        return None
    plan = recovery_plan({**journal, "journal": layout.journal}, os.path.lexists)
    return {**plan, "ts": journal.get("ts"), "kind": journal.get("kind")}


def apply_step(layout: Layout, step: tuple) -> None:
    if step[0] == "remove":
        remove_tree(step[1])
    elif step[0] == "rename":
        durable_rename(step[1], step[2], layout.parent)
    elif step[0] == "marker":
        write_marker(step[1], step[2])
    elif step[0] == "drop_journal":
        drop_journal(layout)


def recover(layout: Layout) -> dict | None:
    """Finish or undo the swap a journal left (see ``recovery_plan``), then remove stale staging
    trees; what was recovered (``{"ts", "kind", "outcome"}``) or None."""
    plan = pending_recovery(layout)
    if plan is not None:
        if plan["stuck"]:
            raise HostsideError(f"the interrupted swap of {plan['ts']}: {plan['outcome']}")
        for step in plan["steps"]:
            apply_step(layout, step)
    for leftover in layout.leftovers():
        remove_tree(leftover)
    if plan is None:
        return None
    return {"ts": plan["ts"], "kind": plan["kind"], "outcome": plan["outcome"]}


# Restore ----------------------------------------------------------------------------------------


def identity(marker: dict | None) -> dict | None:
    """The identity of the tree a marker says is live: its tarball's sha256, path, signature."""
    if not marker or not marker.get("sha256"):
        return None
    return {key: marker.get(key) for key in ("sha256", "tarball", "tarball_stat")}


def restore_record(
    options: dict, digest: tuple[str, str], scan: Scan, aside: str | None, old: dict | None
) -> dict:
    """The marker of a restore: ``digest`` is the tarball's (sha256, stat signature taken before
    it was read)."""
    layout = options["layout"]
    return {
        "kind": "restore",
        "dest": layout.dest,
        "ts": options["ts"],
        "sha256": digest[0],
        "tarball": options["tarball"],
        "tarball_stat": digest[1],
        "files": scan.files,
        "bytes": scan.bytes,
        "prev": aside,
        "previous": identity(old) if aside else None,
        "at": utc_now(),
    }


def up_to_date(marker: dict | None, sha256: str | None, live: str | None) -> bool:
    """Whether the marker names this tarball's sha256 and a tree is ``live`` (its path)."""
    same = bool(marker and sha256 and marker.get("sha256") == sha256)
    return same and live is not None and is_dir(live)


def data_filter(names: dict[int, str]) -> Callable:
    """``tarfile``'s ``data`` filter on each member under its stripped name."""

    def apply(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        renamed = member.replace(name=names[id(member)], deep=False)
        return tarfile.data_filter(renamed, path)

    return apply


def extract(tar: tarfile.TarFile, scan: Scan, staging: str, progress: Progress) -> None:
    """Extract the checked members into ``staging`` (the ``data`` filter applied again), then
    sync it to disk (``sync(2)``: one call rather than an fsync per file). Fault points
    ``mid_extract`` and ``extracted``."""
    names = {id(member): name for member, name in scan.members}
    chosen = data_filter(names)
    middle = len(scan.members) // 2
    for index, (member, _) in enumerate(scan.members):
        if index == middle and index:
            fault("mid_extract")
        tar.extract(member, staging, filter=chosen)
        if member.isreg():
            progress.files += 1
            progress.bytes += member.size
    os.sync()
    fault("extracted")


def extraction_failure(error: BaseException, options: dict, staging: str) -> HostsideError:
    """The one line of a failed extraction (the staging tree is already removed)."""
    dest = options["layout"].dest
    after = f"the staging directory was removed, {dest} is untouched"
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return HostsideError(
            f"no space left on the device while extracting {options['tarball']} into "
            f"{staging}: {after}; free space there and rerun"
        )
    if isinstance(error, tarfile.FilterError):
        return Refusal(f"assets tarball {options['tarball']} refused: {error}; {after}")
    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return HostsideError(f"cannot extract {options['tarball']} into {staging}: {reason}; {after}")


def stage(
    tar: tarfile.TarFile, scan: Scan, options: dict, journal: dict, progress: Progress
) -> None:
    """Journal the staging tree, extract into it, sync it, journal it ``ready`` (with
    ``journal["marker"]``, the record to write once live); on any failure before that (disk
    full, a signal) remove the staging tree and the journal, and raise one line."""
    layout, staging = options["layout"], journal["incoming"]
    try:
        write_journal(layout, {**journal, "marker": None})
        os.mkdir(staging, 0o755)
        problem = filesystem_problem(layout, staging)
        if problem:
            raise HostsideError(problem)
        fault("before_extract")
        progress.scan = scan
        extract(tar, scan, staging, progress)
        write_journal(layout, {**journal, "phase": "ready"})
    except BaseException as error:
        remove_tree(staging)
        drop_journal(layout)
        if isinstance(error, HostsideError):
            text = str(error)
            raise HostsideError(
                text if text.endswith(NOTHING_CHANGED) else f"{text}; {NOTHING_CHANGED}"
            ) from None
        if isinstance(error, Exception):
            raise extraction_failure(error, options, staging) from None
        raise


def swap_in(layout: Layout, incoming: str, aside: str | None) -> None:
    """The two renames (live → aside, incoming → live), each followed by an fsync of the parent;
    an error (not a kill) undoes what was done and raises."""
    moved = False
    try:
        if aside:
            durable_rename(layout.dest, aside, layout.parent)
            moved = True
            fault("after_first_rename")
        durable_rename(incoming, layout.dest, layout.parent)
    except OSError as error:
        if moved:
            durable_rename(aside, layout.dest, layout.parent)
        drop_journal(layout)
        raise HostsideError(
            f"cannot swap {incoming} into {layout.dest}: {error.strerror}; {layout.dest} is as "
            "it was"
        ) from None
    fault("after_second_rename")


def finish(layout: Layout, marker_path: str, record: dict) -> None:
    """Record what is live, then drop the journal (a failed marker write keeps the journal: the
    next run writes the marker)."""
    try:
        write_marker(marker_path, record)
    except OSError as error:
        raise HostsideError(
            f"{layout.dest} is swapped but the marker {marker_path} cannot be written: "
            f"{error.strerror}; the journal is kept and the next run writes it"
        ) from None
    fault("before_journal_removal")
    drop_journal(layout)


def unchanged_answer(options: dict, sha256: str, recovered: dict | None) -> dict:
    return {
        "changed": recovered is not None,
        "recovered": recovered,
        "sha256": sha256,
        "reason": f"{options['layout'].dest} already holds {options['tarball']} "
        f"(sha256 {sha256[:12]})",
    }


def action_swap_restore(params: dict) -> dict:
    """Restore ``tarball`` into ``dest``: recover a killed run, check every member, extract
    beside the live tree, swap by two journaled renames, record the marker. The same tarball
    already live (marker) changes nothing. With ``progress_interval_s``, a progress line per
    interval (the check pass, then the extraction)."""
    options = {**swap_params(params), "params": params}
    layout = options["layout"]
    if not os.path.lexists(layout.journal):
        marker = read_marker(options["marker"], layout)
        trusted = trusted_sha256(options["tarball"], marker)
        if up_to_date(marker, trusted, layout.dest):
            return unchanged_answer(options, trusted, None)
    progress = Progress()
    with Ticker("swap_restore", interval_of(params), progress.line, options["log_path"]):
        return restore(options, progress)


def restore(options: dict, progress: Progress) -> dict:
    """The restore itself (see ``action_swap_restore``)."""
    layout, ts = options["layout"], options["ts"]
    with opened_tarball(options["tarball"]) as (tar, reader):
        progress.reader, progress.size = reader, os.fstat(reader.raw.fileno()).st_size
        scan = check_tarball(tar, options)
        sha256, signature = reader.sha256(), reader.signature
        with swap_lock(layout):
            recovered = recover(layout)
            marker = read_marker(options["marker"], layout)
            if up_to_date(marker, sha256, layout.dest):
                return unchanged_answer(options, sha256, recovered)
            aside = layout.prev(ts) if os.path.lexists(layout.dest) else None
            refuse_swap(layout, aside, layout.staging(ts), options["marker"])
            record = restore_record(options, (sha256, signature), scan, aside, marker)
            journal = {
                "kind": "restore",
                "phase": "extracting",
                "ts": ts,
                "dest": layout.dest,
                "incoming": layout.staging(ts),
                "aside": aside,
                "marker_path": options["marker"],
                "marker": record,
            }
            stage(tar, scan, options, journal, progress)
            fault("ready")
            swap_in(layout, journal["incoming"], aside)
            finish(layout, options["marker"], record)
    return {
        "changed": True,
        "recovered": recovered,
        "sha256": sha256,
        "prev": aside,
        "files": scan.files,
        "bytes": scan.bytes,
    }


def marker_problem(path: str) -> str | None:
    """Why the marker could not be written after the swap (its directory is made here)."""
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as error:
        return f"the marker's directory {directory} cannot be made: {error.strerror}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return f"the marker's directory {directory} is not writable by this user"
    return None


def refuse_swap(layout: Layout, aside: str | None, incoming: str, marker: str) -> None:
    """HostsideError when the swap cannot be done by rename (EXDEV), the live path is not a
    directory, where the live tree would go is taken, or the marker cannot be written."""
    problem = filesystem_problem(layout, layout.dest, incoming) or marker_problem(marker)
    if problem is None and os.path.lexists(layout.dest) and not is_dir(layout.dest):
        problem = f"{layout.dest} is not a directory"
    if problem is None and aside and os.path.lexists(aside):
        problem = f"{aside} already exists; use a new timestamp"
    if problem:
        raise HostsideError(f"cannot swap into {layout.dest}: {problem}; {NOTHING_CHANGED}")


# Plans ------------------------------------------------------------------------------------------


def free_bytes(path: str) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def live_after_recovery(layout: Layout, recovery: dict | None) -> str | None:
    """The path whose tree will be live once a pending recovery is done (before its renames)."""
    if recovery is None or not recovery["steps"]:
        return layout.dest if is_dir(layout.dest) else None
    renames = [step for step in recovery["steps"] if step[0] == "rename"]
    if renames:
        return renames[-1][1]
    return layout.dest if is_dir(layout.dest) else None


def recovery_answer(recovery: dict | None) -> dict | None:
    if recovery is None:
        return None
    return {"ts": recovery["ts"], "kind": recovery["kind"], "outcome": recovery["outcome"]}


def effective_marker(options: dict, recovery: dict | None) -> dict | None:
    """The marker as it will be once a pending recovery is done."""
    if recovery and recovery.get("marker"):
        return recovery["marker"]
    return read_marker(options["marker"], options["layout"])


def plan_refusal(options: dict, live: str | None, recovery: dict | None) -> str | None:
    layout, ts = options["layout"], options["ts"]
    if recovery and recovery["stuck"]:
        return f"the interrupted swap of {recovery['ts']}: {recovery['outcome']}"
    problem = filesystem_problem(layout, layout.dest)
    if problem is None and os.path.lexists(layout.dest) and not is_dir(layout.dest):
        problem = f"{layout.dest} is not a directory"
    aside = layout.prev(ts)
    renamed_to = {step[2] for step in (recovery or {}).get("steps", []) if step[0] == "rename"}
    taken = (os.path.lexists(aside) and aside != live) or aside in renamed_to
    if problem is None and live and taken:
        problem = f"{aside} already exists; use a new timestamp"
    return f"cannot swap into {layout.dest}: {problem}; {NOTHING_CHANGED}" if problem else None


def plan_scan(options: dict, marker: dict | None, live: str | None) -> tuple[Scan | None, str]:
    """(the checked tarball, its sha256), or (None, sha256) when it is live already: trusted by
    the marker's stat signature without reading it, else checked and hashed in one pass."""
    sha256 = trusted_sha256(options["tarball"], marker)
    if sha256 and up_to_date(marker, sha256, live):
        return None, sha256
    with opened_tarball(options["tarball"]) as (tar, reader):
        scan = check_tarball(tar, options)
        sha256 = reader.sha256()
    return (None if up_to_date(marker, sha256, live) else scan), sha256


def action_swap_plan(params: dict) -> dict:
    """What ``swap_restore`` would do, changing nothing: the recovery a killed run asks for,
    whether the tarball is already live, every refusal (a hostile member included), and in
    numbers the tarball against the live tree."""
    options = swap_params(params)
    layout, ts = options["layout"], options["ts"]
    recovery = pending_recovery(layout)
    live = live_after_recovery(layout, recovery)
    marker = effective_marker(options, recovery)
    answer: dict = {
        "tarball": options["tarball"],
        "dest": layout.dest,
        "recovery": recovery_answer(recovery),
        "stale": [] if recovery else layout.leftovers(),
        "staging": layout.staging(ts),
        "prev": layout.prev(ts) if live else None,
        "live_exists": live is not None,
        "refusal": None,
        "up_to_date": False,
    }
    if not os.path.isfile(options["tarball"]):
        return {
            **answer,
            "refusal": f"assets tarball {options['tarball']} does not exist on "
            f"this host; {NOTHING_CHANGED}",
        }
    try:
        scan, sha256 = plan_scan(options, marker, live)
    except Refusal as refusal:
        return {**answer, "refusal": str(refusal)}
    if scan is None:
        return {
            **answer,
            "up_to_date": True,
            "sha256": sha256,
            "reason": f"{layout.dest} already holds {options['tarball']} (sha256 {sha256[:12]})",
        }
    old = tree_entries(live) if live else {}
    live_files, live_bytes = tree_totals(old)
    return {
        **answer,
        **tree_diff(scan.entries, old, options["list_max"]),
        "sha256": sha256,
        "refusal": plan_refusal(options, live, recovery),
        "tarball_files": scan.files,
        "tarball_bytes": scan.bytes,
        "live_files": live_files,
        "live_bytes": live_bytes,
        "free_bytes": free_bytes(layout.parent),
    }


# Swap back --------------------------------------------------------------------------------------


def named_prev(layout: Layout, prev: str) -> str:
    """``prev`` as a normalized absolute path (a bare name is taken beside the live tree).

    >>> named_prev(Layout.of("/srv/assets"), "assets.prev_T1/")
    '/srv/assets.prev_T1'
    """
    return os.path.normpath(os.path.join(layout.parent, prev))


def chosen_prev(options: dict, marker: dict | None) -> str | None:
    """The tree to put back: ``prev`` (a path, or a name beside the live tree), else the one the
    marker names, else the newest ``<name>.prev_*`` by name."""
    layout, prev = options["layout"], options["prev"]
    if prev:
        return named_prev(layout, prev)
    if marker and marker.get("kind") == "restore" and marker.get("prev"):
        if is_dir(marker["prev"]):
            return marker["prev"]
    prevs = [path for path in layout.prevs() if is_dir(path)]
    return prevs[-1] if prevs else None


def swapped_back_already(options: dict, marker: dict | None, live: bool) -> str | None:
    """Why a swap back would change nothing: the last change was a swap back (to ``prev`` when
    one is named) and a tree is ``live``."""
    if not marker or marker.get("kind") != "swap_back" or not live:
        return None
    prev = options["prev"]
    if prev and named_prev(options["layout"], prev) != marker.get("live_from"):
        return None
    return (
        f"{options['layout'].dest} was already swapped back to {marker.get('live_from')} "
        f"(at {marker.get('ts')}; the tree that was live is {marker.get('failed')})"
    )


def swap_back_refusal(options: dict, prev: str | None) -> str | None:
    layout = options["layout"]
    if prev is None:
        return f"there is no {layout.name}.prev_* tree beside {layout.dest} to swap back to"
    if not is_dir(prev):
        return f"{prev} is not a directory"
    if os.path.dirname(prev) != layout.parent:
        return f"{prev} is not beside {layout.dest} (it must be in {layout.parent})"
    problem = filesystem_problem(layout, layout.dest, prev)
    if problem is None and os.path.lexists(layout.failed(options["ts"])):
        problem = f"{layout.failed(options['ts'])} already exists; use a new timestamp"
    return problem


def swap_back_record(options: dict, prev: str, failed: str | None, marker: dict | None) -> dict:
    """The marker after a swap back: the identity of the tree put back is known when the marker
    recorded it as ``previous`` of this ``prev``."""
    known = marker.get("previous") if marker and marker.get("prev") == prev else None
    known = known or {}
    return {
        "kind": "swap_back",
        "dest": options["layout"].dest,
        "ts": options["ts"],
        "sha256": known.get("sha256"),
        "tarball": known.get("tarball"),
        "tarball_stat": known.get("tarball_stat"),
        "live_from": prev,
        "failed": failed,
        "failed_identity": identity(marker),
        "prev": None,
        "previous": None,
        "at": utc_now(),
    }


def action_swap_back_plan(params: dict) -> dict:
    """What ``swap_back`` would do, changing nothing."""
    options = swap_params(params, tarball=False)
    layout = options["layout"]
    recovery = pending_recovery(layout)
    marker = effective_marker(options, recovery)
    live = live_after_recovery(layout, recovery)
    prev = chosen_prev(options, marker)
    answer = {
        "dest": layout.dest,
        "recovery": recovery_answer(recovery),
        "prev": prev,
        "failed": layout.failed(options["ts"]) if live else None,
        "up_to_date": False,
        "refusal": None,
    }
    reason = swapped_back_already(options, marker, live is not None)
    if reason:
        return {**answer, "up_to_date": True, "reason": reason}
    refusal = swap_back_refusal(options, prev)
    if refusal or (recovery and recovery["stuck"]):
        why = refusal or f"the interrupted swap of {recovery['ts']}: {recovery['outcome']}"
        return {**answer, "refusal": f"cannot swap back {layout.dest}: {why}; {NOTHING_CHANGED}"}
    live_files, live_bytes = tree_totals(tree_entries(live)) if live else (0, 0)
    prev_files, prev_bytes = tree_totals(tree_entries(prev))
    return {
        **answer,
        "live_files": live_files,
        "live_bytes": live_bytes,
        "prev_files": prev_files,
        "prev_bytes": prev_bytes,
    }


def action_swap_back(params: dict) -> dict:
    """Put the previous tree back: live → ``<dest>.failed_<ts>``, ``prev`` → live, journaled
    like the restore; a rerun after it changes nothing (the marker records the swap back)."""
    options = swap_params(params, tarball=False)
    layout, ts = options["layout"], options["ts"]
    with swap_lock(layout):
        recovered = recover(layout)
        marker = read_marker(options["marker"], layout)
        reason = swapped_back_already(options, marker, is_dir(layout.dest))
        if reason:
            return {"changed": recovered is not None, "recovered": recovered, "reason": reason}
        prev = chosen_prev(options, marker)
        refusal = swap_back_refusal(options, prev) or marker_problem(options["marker"])
        if refusal:
            raise HostsideError(f"cannot swap back {layout.dest}: {refusal}; {NOTHING_CHANGED}")
        failed = layout.failed(ts) if os.path.lexists(layout.dest) else None
        record = swap_back_record(options, prev, failed, marker)
        journal = {
            "kind": "swap_back",
            "phase": "ready",
            "ts": ts,
            "dest": layout.dest,
            "incoming": prev,
            "aside": failed,
            "marker_path": options["marker"],
            "marker": record,
        }
        write_journal(layout, journal)
        fault("ready")
        swap_in(layout, prev, failed)
        finish(layout, options["marker"], record)
    return {"changed": True, "recovered": recovered, "prev": prev, "failed": failed}
