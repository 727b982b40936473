"""Host-side SQLite backups (S2.1, S2.2; RELIABILITY 13).

- ``sqlite_backup`` (operation): a live SQLite file (WAL mode too) is copied with SQLite's
  online backup API — never ``cp``, which can tear a file being written — into
  ``<dest>.partial-<pid>``; ``PRAGMA integrity_check`` must answer ``ok`` on the copy; then it is
  fsynced, renamed to ``dest`` (parent fsynced) and recorded in ``<dest>.sha256`` (sha256, size,
  stat signature), like a verified pg_dump.
- ``sqlite_restore`` (operation) / ``sqlite_restore_info`` (fact): the verified backup put
  back as the live file (S2.7), the replaced file and its ``-wal``/``-shm`` kept aside.
- ``sqlite_backup_info`` (fact): whether ``dest`` is such a verified backup of ``source``,
  unchanged since.

    python -c 'from turnout.remote import hostside_command as c
    print(c("sqlite_backup_info", {"dest": "/srv/backups/app.db"}).get_raw_value())' | sh
"""

import hashlib
import os
import sqlite3

from turnout.hostside.base import HostsideError, write_json_atomically
from turnout.hostside.dump import dump_fsync, dump_remove_path, dump_stat_signature


def sqlite_trusted(dest: str) -> dict | None:
    """The record of a verified backup at ``dest`` whose stat signature still matches."""
    from turnout.hostside.dump import dump_trusted_record

    if not os.path.isfile(dest):
        return None
    record = dump_trusted_record(dest)
    return record if record and record.get("format") == "sqlite" else None


def action_sqlite_backup_info(params: dict) -> dict:
    """``exists``/``trusted`` and the recorded sha256 of the backup at ``dest``."""
    dest = params["dest"]
    source = params.get("source")
    record = sqlite_trusted(dest)
    if record and source and record.get("source") != source:
        record = None  # a backup of another file: not this one's

    return {
        "dest": dest,
        "exists": os.path.lexists(dest),
        "trusted": record is not None,
        "sha256": record.get("sha256") if record else None,
        "source_exists": os.path.isfile(source) if source else None,
        "source_bytes": os.path.getsize(source) if source and os.path.isfile(source) else None,
    }


def sqlite_copy(source: str, partial: str) -> None:
    """SQLite's online backup of ``source`` into the new file ``partial`` (a consistent
    snapshot even while the app writes), then ``PRAGMA integrity_check`` on the copy."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=1024)
            verdict = [row[0] for row in dst.execute("PRAGMA integrity_check").fetchall()]
        finally:
            dst.close()
    finally:
        src.close()
    if verdict != ["ok"]:
        raise HostsideError(f"integrity_check of the copy answered {'; '.join(verdict)[:200]}")


def action_sqlite_backup(params: dict) -> dict:
    """Back up the SQLite file ``source`` to ``dest`` (see the module docstring)."""
    source, dest = params["source"], params["dest"]
    if not os.path.isfile(source):
        raise HostsideError(f"SQLite file {source} does not exist on this host; fix sqlite_path")
    parent = os.path.dirname(dest)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    partial = f"{dest}.partial-{os.getpid()}"
    old_umask = os.umask(0o077)
    try:
        try:
            sqlite_copy(source, partial)
        except sqlite3.Error as error:
            raise HostsideError(f"SQLite backup of {source} failed: {error}") from None
        dump_fsync(partial)
        os.replace(partial, dest)
        dump_fsync(parent)
    except BaseException:
        dump_remove_path(partial)
        raise
    finally:
        os.umask(old_umask)
    digest, size = hashlib.sha256(), 0
    with open(dest, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    record = {
        "format": "sqlite",
        "sha256": digest.hexdigest(),
        "size": size,
        "source": source,
        "integrity_check": "ok",
        "stat": dump_stat_signature(dest),
    }
    write_json_atomically(f"{dest}.sha256", record)
    return {"dest": dest, **record}


SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def file_sha256(path: str) -> str | None:
    """sha256 of a file, None when it does not exist."""
    if not os.path.isfile(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def action_sqlite_restore_info(params: dict) -> dict:
    """Whether the live SQLite file ``dest`` already is the ``backup`` (same sha256, no
    ``-wal`` beside it that could change it), and the backup's record."""
    backup, dest = params["backup"], params["dest"]
    record = sqlite_trusted(backup)
    live = file_sha256(dest)
    sides = [dest + suffix for suffix in SQLITE_SIDE_FILES if os.path.exists(dest + suffix)]
    return {
        "backup_trusted": record is not None,
        "backup_sha256": record.get("sha256") if record else None,
        "live_sha256": live,
        "side_files": sides,
        "restored": bool(record) and live == record.get("sha256") and not sides,
    }


def action_sqlite_restore(params: dict) -> dict:
    """Put the verified ``backup`` back as the live SQLite file ``dest`` (S2.7; the app must be
    stopped): the live file and its ``-wal``/``-shm``/``-journal`` are moved aside as
    ``<dest>.failed_<ts>…``, the backup is copied to a temporary file beside ``dest``, checked
    (``integrity_check``), fsynced and renamed over ``dest``, the directory fsynced."""
    backup, dest, stamp = params["backup"], params["dest"], params["timestamp"]
    record = sqlite_trusted(backup)
    if record is None:
        raise HostsideError(
            f"{backup} is not a verified SQLite backup (no matching .sha256 record); nothing "
            "was changed"
        )
    parent = os.path.dirname(dest)
    temporary = f"{dest}.restoring-{os.getpid()}"
    try:
        with open(backup, "rb") as source, open(temporary, "wb") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
        if file_sha256(temporary) != record["sha256"]:
            raise HostsideError(f"the copy of {backup} differs from its record; nothing changed")
        conn = sqlite3.connect(f"file:{temporary}?mode=ro", uri=True)
        try:
            verdict = [row[0] for row in conn.execute("PRAGMA integrity_check").fetchall()]
        finally:
            conn.close()
        if verdict != ["ok"]:
            raise HostsideError(f"integrity_check of the backup copy answered {verdict[:3]}")
        dump_fsync(temporary)
        moved = []
        for suffix in ("", *SQLITE_SIDE_FILES):
            if os.path.exists(dest + suffix):
                aside = f"{dest}.failed_{stamp}{suffix}"
                os.replace(dest + suffix, aside)
                moved.append(aside)
        os.replace(temporary, dest)
        dump_fsync(parent)
    except BaseException:
        dump_remove_path(temporary)
        raise
    return {"dest": dest, "sha256": record["sha256"], "kept_aside": moved}
