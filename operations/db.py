"""Database dump and restore (C1: backup, restore-db; S1.1, S1.2, S0.8).

Both run on the host through the host-side program (``turnout/hostside/dump.py``): the control
machine never connects to a database nor sees a password. Decisions are made from facts before
the first yield; the plan says concretely what will happen (database, tables, rows, sizes).
"""

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.database import Database
from turnout.facts.dump import DumpInfo, RestoreMarker, SqliteBackup, SqliteRestore
from turnout.facts.postgres import PostgresServer, RowCounts
from turnout.failures import require_fact, stop
from turnout.guard import destructive
from turnout.memo import observe
from turnout.remote import hostside_command, hostside_progress_command
from turnout.settings import DUMP_FORMATS, RESTORE_POLICIES

# Counting for the drop-schema plan stays cheap: a table slower than this shows its estimate.
PLAN_COUNT_TIMEOUT_MS = 200


def human_bytes(size: int) -> str:
    """``1536`` → ``"1.5 KiB"``; ``0`` → ``"0 B"``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def row_total(counts: dict, prefix: str = "") -> tuple[int, int, bool]:
    """(tables, rows, all exact) of a RowCounts fact, for tables starting with ``prefix``,
    following the catalog: a partitioned table counts once (its rows are its partitions'),
    its partitions not again; materialized views are not tables."""
    tables = {
        name: c
        for name, c in counts["tables"].items()
        if name.startswith(prefix) and not c.get("parent") and c.get("relation") != "matview"
    }
    rows = sum(c["count"] or 0 for c in tables.values())
    return len(tables), rows, all(c["exact"] for c in tables.values())


def server_of(database: Database) -> dict:
    """The ``PostgresServer`` fact of ``database`` (measured once per phase), or an
    ``OperationError`` saying it cannot be read."""
    return require_fact(
        observe(PostgresServer, database=database), f"read the database of {database}"
    )


def describe_database(server: dict) -> str:
    """``app at 127.0.0.1:5432 (6 tables, ~803 rows estimated, database size 344.0 KiB)``."""
    return (
        f"{server['database']} at {server['host']}:{server['port']} ({server['tables']} tables, "
        f"~{server['estimated_rows']} rows estimated, database size "
        f"{human_bytes(server['database_bytes'])})"
    )


@operation()
def dump(
    source: Database,
    dest: str,
    format: str = "custom",
    jobs: int = 2,
    log_path: str | None = None,
    timeout_s: int = 3600,
    pg_bin: str = "",
    progress_interval_s: float | None = None,
    compose_exec: list[str] | None = None,
):
    """
    Dump the ``source`` database with ``pg_dump --no-owner --no-acl`` (custom format,
    or directory format with ``--jobs``). The dump is written under ``<dest>.partial-<pid>``,
    read back in full (``pg_restore -f /dev/null``, hashed in the same pass) and only then
    renamed to ``dest``; ``<dest>.sha256`` records its sha256, size, tables and stat (device,
    inode, size, mtime). A dump at ``dest`` whose record proves it unchanged since it was verified
    changes nothing (it is not read again); anything else there is replaced.

    + source: the database to dump (``Database(dsn_env, env_file)``)
    + dest: absolute path of the dump file (custom) or directory (directory format) on the host
    + format: ``custom`` or ``directory``
    + jobs: parallel jobs of a directory-format dump
    + log_path: log file (0600, appended) for the tools' redacted command lines and output
    + timeout_s: watchdog for pg_dump and the read-back, in seconds
    + pg_bin: directory of the PostgreSQL client tools on the host ("" = on PATH)
    + progress_interval_s: seconds between progress lines (None: the host's setting)
    + compose_exec: run pg_dump inside the database's compose service instead of on the host
      (``facts.compose.compose_exec_argv``; custom format only): the host needs no client tools

    .. code:: python

        from turnout.database import Database
        from turnout.operations import db
        db.dump(
            name="Dump the source database",
            source=Database("SOURCE_DATABASE_URL", "/srv/app/.env"),
            dest="/var/lib/turnout/evidence/dry_run/demo/src_artifacts/source.dump",
            log_path="/var/lib/turnout/evidence/dry_run/demo/logs/dump.log",
        )
    """
    try:
        if format not in DUMP_FORMATS:
            raise OperationError(f"dump format must be custom or directory, got {format!r}")
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise OperationError(f"dump jobs must be a positive integer, got {jobs!r}")
        if not isinstance(dest, str) or not dest.startswith("/"):
            raise OperationError(f"dump destination must be an absolute path, got {dest!r}")

        existing = require_fact(
            observe(DumpInfo, path=dest, verify=False, pg_bin=pg_bin, compose_exec=compose_exec),
            f"read the dump at {dest}",
        )
        replacing = ""
        if existing["exists"] and existing["format"] is None:
            raise OperationError(
                f"{dest} exists and is not a pg_dump archive; remove it or choose another dest"
            )
        if existing["exists"]:
            if existing.get("trusted") and existing["format"] == format:
                host.noop(
                    f"{dest} is a verified {format} dump (sha256:{existing['sha256'][:12]}, "
                    f"{existing['tables']} tables), unchanged since it was made"
                )
                return
            if existing.get("trusted"):
                raise OperationError(
                    f"{dest} already holds a verified {existing['format']} dump, not {format}; "
                    "remove it or choose another dest"
                )
            replacing = ", replacing the unverified dump there (no matching .sha256 record)"

        server = server_of(source)
        how = format if format == "custom" else f"directory ({jobs} jobs)"
        if compose_exec:
            how += f" inside compose service {compose_exec[-1]}"
        host.log(f"Will dump {describe_database(server)} as {how} to {dest}{replacing}")
        yield hostside_progress_command(
            "pg_dump",
            {
                **source.params(),
                "format": format,
                "jobs": jobs,
                "dest": dest,
                "log_path": log_path,
                "timeout_s": timeout_s,
                "pg_bin": pg_bin,
                **({"compose_exec": list(compose_exec)} if compose_exec else {}),
            },
            progress_interval_s,
        )
    except OperationError as error:
        yield from stop(error)


@destructive(
    "the restore with drop_schema (drops schema public)",
    when=lambda kwargs: bool(kwargs.get("drop_schema")),
    staging_only=True,
)
@operation()
def restore(
    dump: str,
    into: Database,
    marker: str,
    drop_schema: bool = False,
    log_path: str | None = None,
    timeout_s: int = 3600,
    terminate_backends: bool = True,
    pg_bin: str = "",
    policy: str = "if_new_dump",
    progress_interval_s: float | None = None,
    compose_exec: list[str] | None = None,
):
    """
    Restore a dump into the database ``into``: other sessions on that database are
    terminated (they would block ``--clean``), then in one transaction under a watchdog
    (``pg_restore --no-owner --no-acl --clean --if-exists --exit-on-error -f -`` fed to
    ``psql -v ON_ERROR_STOP=1`` between ``BEGIN`` and a ``COMMIT`` sent only after pg_restore
    succeeded): the target's partitioned tables that the
    dump holds are dropped ``CASCADE`` (``--clean`` alone fails on their partitions' inherited
    constraints), optionally schema ``public`` is dropped and recreated, and the dump is
    restored. A failure changes nothing: the database and the previous ``marker`` stay as they
    were, and the one-line failure quotes the database's error. After success the host keeps a
    JSON ``marker`` with the dump's sha256; a rerun with the same dump changes nothing.
    Sequences behind their column's data are set past it in the same transaction (RELIABILITY 12)
    and named in the marker (``sequences_advanced``).

    ``drop_schema`` is destructive and for staging only: the guard refuses it while the deploy
    loads (before any step runs, with ``-y`` too) on hosts of the ``prod`` group, and unless
    released with ``--data i_know_what_im_doing=true``.

    + dump: the dump file or directory on the host (may be made by ``db.dump`` earlier in the run)
    + into: the target database (``Database(dsn_env, env_file)``)
    + marker: path of the JSON marker on the host (e.g. ``<evidence>/outputs/restore.json``)
    + drop_schema: ``DROP SCHEMA public CASCADE; CREATE SCHEMA public`` in the restore's
      transaction, before the dump's objects
    + log_path: log file (0600, appended) for the tools' redacted command lines and output
    + timeout_s: watchdog for the read-back and pg_restore, in seconds
    + terminate_backends: terminate other sessions connected to the target database first
    + pg_bin: directory of the PostgreSQL client tools on the host ("" = on PATH)
    + policy: ``if_new_dump`` (skip a dump the marker names: the plan says so, and how to
      override) or ``always`` (restore again, e.g. to heal a staging that drifted)
    + progress_interval_s: seconds between progress lines (None: the host's setting)
    + compose_exec: run pg_restore and psql inside the database's compose service, the dump
      streamed in on stdin (``facts.compose.compose_exec_argv``; custom format only)

    .. code:: python

        from turnout.database import Database
        from turnout.operations import db
        db.restore(
            name="Restore into staging",
            dump="/var/lib/turnout/evidence/dry_run/demo/src_artifacts/source.dump",
            into=Database("DATABASE_URL", "/srv/app/.env"),
            marker="/var/lib/turnout/evidence/dry_run/demo/outputs/restore.json",
            log_path="/var/lib/turnout/evidence/dry_run/demo/logs/restore.log",
        )
    """
    try:
        info = require_fact(
            observe(DumpInfo, path=dump, verify=False, pg_bin=pg_bin, compose_exec=compose_exec),
            f"read the dump at {dump}",
        )
        if info["exists"] and info["format"] is None:
            raise OperationError(f"{dump} is not a custom-format dump file nor a dump directory")
        if info["exists"] and info.get("complete") is False:
            raise OperationError(f"{dump} is not a readable dump: {info.get('problem')}")
        done = require_fact(observe(RestoreMarker, marker=marker), f"read marker {marker}")
        if policy not in RESTORE_POLICIES:
            raise OperationError(f"restore policy must be one of {RESTORE_POLICIES}: {policy!r}")
        again = ""
        if info["exists"] and done["dump_sha256"] == info["sha256"]:
            if policy != "always":
                why = (
                    f"already restored from dump sha256:{info['sha256'][:12]} (marker {marker}) "
                    "— set restore=always to restore again"
                )
                if not host.state.is_executing:
                    host.log(f"Skip: {why}")  # the plan says why, at default verbosity
                host.noop(why)
                return
            again = " again (restore=always; the marker says it is restored already)"

        server = server_of(into)
        if info["exists"]:
            what = f"dump sha256:{info['sha256'][:12]} ({info['tables']} tables)"
        else:
            what = f"the dump made by the dump step ({dump})"
        plan = f"Will restore {what}{again} into {server['database']} at {server['host']}:"
        plan += f"{server['port']}"
        if compose_exec:
            plan += f" (pg_restore inside compose service {compose_exec[-1]}, dump streamed in)"
        if drop_schema:
            counts = require_fact(
                observe(RowCounts, database=into, tables=None, timeout_ms=PLAN_COUNT_TIMEOUT_MS),
                f"read the row counts of {server['database']}",
            )
            tables, rows, exact = row_total(counts, prefix="public.")
            approx = "" if exact else "~"
            plan += f"; drop schema public first: removes {tables} tables, {approx}{rows} rows"
        if terminate_backends:
            plan += f"; other sessions on {server['database']} are terminated first"
        host.log(plan)
        yield hostside_progress_command(
            "pg_restore",
            {
                "dump": dump,
                **into.params(),
                "drop_schema": drop_schema,
                "marker": marker,
                "log_path": log_path,
                "timeout_s": timeout_s,
                "terminate_backends": terminate_backends,
                "pg_bin": pg_bin,
                **({"compose_exec": list(compose_exec)} if compose_exec else {}),
            },
            progress_interval_s,
        )
    except OperationError as error:
        yield from stop(error)


@operation()
def sqlite_backup(source: str, dest: str):
    """
    Back up the app's live SQLite file ``source`` (WAL mode too) with SQLite's online backup
    API — never ``cp`` (RELIABILITY 13) — into ``dest``: written under a temporary name,
    ``PRAGMA integrity_check`` must answer ``ok`` on the copy (S2.2), then renamed and recorded
    in ``<dest>.sha256``. A verified backup unchanged since it was made changes nothing.

    + source: the SQLite file on the host (setting ``sqlite_path``)
    + dest: where the backup is kept (e.g. the run's ``src_artifacts/baseline.sqlite3``)

    .. code:: python

        from turnout.operations import db
        db.sqlite_backup(
            name="Baseline backup (SQLite)",
            source="/srv/app/data/app.db",
            dest="/var/lib/turnout/evidence/cutover/20261124T120000Z/src_artifacts/baseline.db",
        )
    """
    try:
        backup = require_fact(observe(SqliteBackup, dest=dest, source=source), f"read {dest}")
        if backup["trusted"]:
            host.noop(f"{dest} is a verified SQLite backup (sha256:{backup['sha256'][:12]})")
            return
        if not backup["source_exists"]:
            raise OperationError(f"SQLite file {source} does not exist; fix sqlite_path")
        host.log(
            f"Will back up SQLite {source} ({human_bytes(backup['source_bytes'])}) with the "
            f"backup API to {dest}, then check its integrity"
        )
        yield hostside_command("sqlite_backup", {"source": source, "dest": dest})
    except OperationError as error:
        yield from stop(error)


@destructive("the SQLite file restore (replaces the app's live database file)")
@operation()
def sqlite_restore(backup: str, dest: str, timestamp: str):
    """
    Put a verified SQLite backup (made by ``db.sqlite_backup``) back as the app's live file
    (S2.7): the replaced file and its ``-wal``/``-shm``/``-journal`` are kept aside as
    ``<dest>.failed_<timestamp>…``; the backup is copied beside ``dest``, checked against its
    sha256 and ``integrity_check``, fsynced and renamed over ``dest``. Stop the app first (the
    freeze step). A live file that already is the backup changes nothing. Destructive.

    + backup: the verified backup on the host
    + dest: the app's SQLite file (setting ``sqlite_path``)
    + timestamp: names the files kept aside

    .. code:: python

        from turnout.operations import db
        db.sqlite_restore(
            name="Put the SQLite backup back",
            backup="/var/lib/turnout/evidence/migrate/20261124T120000Z/src_artifacts/baseline.sqlite3",
            dest="/srv/app/data/app.db",
            timestamp="20261124T130000Z",
        )
    """
    try:
        state = require_fact(observe(SqliteRestore, backup=backup, dest=dest), f"read {dest}")
        if state["restored"]:
            host.noop(f"{dest} already is the backup (sha256:{state['backup_sha256'][:12]})")
            return
        if not state["backup_trusted"]:
            raise OperationError(
                f"{backup} is not a verified SQLite backup (no matching .sha256 record)"
            )
        sides = f" and {', '.join(state['side_files'])}" if state["side_files"] else ""
        host.log(
            f"Will put back {backup} (sha256:{state['backup_sha256'][:12]}) as {dest}; the "
            f"current file{sides} kept aside as {dest}.failed_{timestamp}"
        )
        yield hostside_command(
            "sqlite_restore", {"backup": backup, "dest": dest, "timestamp": timestamp}
        )
    except OperationError as error:
        yield from stop(error)
