"""Facts about database dumps and restores on the host (S1.1, S1.2)."""

from pyinfra.api import StringCommand

from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


class DumpInfo(HostsideFact):
    """
    The pg_dump archive at ``path`` (a custom-format file or a directory-format dump):
    format, sha256 (of the file; of a directory, over its files in sorted name order), size, the
    TABLE entries of ``pg_restore --list`` (not ``TABLE DATA`` nor ``TABLE ATTACH``: a partition
    is one table), and whether ``<path>.sha256`` (written by
    ``db.dump`` after a verified dump) records the same sha256 and size. ``complete`` is only
    known with ``verify=True``: a full read-back ``pg_restore -f /dev/null`` (``--list`` also
    succeeds on a truncated dump); without it, ``complete`` is None.

    .. code:: python

        from turnout.facts.dump import DumpInfo
        info = host.get_fact(
            DumpInfo, path="/var/lib/turnout/work/app.dump", verify=True, pg_bin="",
        )
        # {"ok": True, "path": "…/app.dump", "exists": True, "format": "custom",
        #  "sha256": "9f2c…", "size": 81234, "tables": 7,
        #  "table_names": ["public.alembic_version", "public.users", …],
        #  "recorded": True, "complete": True}
        # absent: {"ok": True, "path": "…", "exists": False}
        # broken: {…, "complete": False, "problem": "full read-back failed: pg_restore exited 1: …"}
    """

    def command(
        self,
        path: str,
        verify: bool = False,
        pg_bin: str = "",
        compose_exec: list[str] | None = None,
    ) -> StringCommand:
        params = {"path": path, "verify": verify, "pg_bin": pg_bin}
        if compose_exec:  # the tools of the database's container (``compose_exec_argv``)
            params["compose_exec"] = list(compose_exec)
        return hostside_command("dump_info", params)


class RestoreMarker(HostsideFact):
    """
    The marker file ``db.restore`` writes on the host after a successful restore (a failed one
    leaves it as it was, like the database: the restore is one transaction): which dump
    (by sha256) was restored into which database, and when. ``dump_sha256`` is None when there
    is no (readable) marker.

    .. code:: python

        from turnout.facts.dump import RestoreMarker
        marker = host.get_fact(
            RestoreMarker, marker="/var/lib/turnout/evidence/dry_run/demo/outputs/restore.json",
        )
        # {"ok": True, "exists": True, "dump_sha256": "9f2c…", "target": "127.0.0.1:5432/app",
        #  "restored_at": "2026-11-23T12:00:00Z", "dump": "…", "dropped_schema": False,
        #  "sequences_advanced": [], "sequence_problems": []}
        # no marker: {"ok": True, "exists": False, "dump_sha256": None}
    """

    def command(self, marker: str) -> StringCommand:
        return hostside_command("restore_marker", {"marker": marker})


class SqliteBackup(HostsideFact):
    """
    Whether ``dest`` is a verified SQLite backup (made by ``db.sqlite_backup``: backup API,
    ``integrity_check`` ok, recorded in ``<dest>.sha256``) unchanged since, and whether the live
    SQLite file ``source`` exists.

    .. code:: python

        from turnout.facts.dump import SqliteBackup
        backup = host.get_fact(
            SqliteBackup, dest="/var/lib/turnout/evidence/cutover/x/src_artifacts/baseline.db",
            source="/srv/app/data/app.db",
        )
        # {"ok": True, "exists": True, "trusted": True, "sha256": "9f2c…",
        #  "source_exists": True, "source_bytes": 81920}
    """

    def command(self, dest: str, source: str | None = None) -> StringCommand:
        return hostside_command("sqlite_backup_info", {"dest": dest, "source": source})


class SqliteRestore(HostsideFact):
    """
    Whether the live SQLite file ``dest`` already is the verified ``backup`` (same sha256, no
    ``-wal``/``-shm`` beside it).

    .. code:: python

        from turnout.facts.dump import SqliteRestore
        state = host.get_fact(
            SqliteRestore,
            backup="/var/lib/turnout/evidence/migrate/x/src_artifacts/baseline.sqlite3",
            dest="/srv/app/data/app.db",
        )
        # {"ok": True, "backup_trusted": True, "backup_sha256": "9f2c…", "live_sha256": "77aa…",
        #  "side_files": ["/srv/app/data/app.db-wal"], "restored": False}
    """

    def command(self, backup: str, dest: str) -> StringCommand:
        return hostside_command("sqlite_restore_info", {"backup": backup, "dest": dest})
