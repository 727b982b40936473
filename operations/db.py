"""Database dump and restore (C1: backup, restore-db; S1.1, S1.2, S0.8).

Both run on the host through the host-side program (``turnout/hostside/dump.py``): the control
machine never connects to a database nor sees a password. Decisions are made from facts before
the first yield; the plan says concretely what will happen (database, tables, rows, sizes).
"""

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.facts.dump import DumpInfo, RestoreMarker
from turnout.facts.postgres import PostgresServer, RowCounts, TableSizes
from turnout.failures import require_fact, stop
from turnout.guard import require_release
from turnout.remote import hostside_command

DUMP_FORMATS = ("custom", "directory")

# Counting for the plan stays cheap: a table slower than this is shown with its estimate.
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
    """(tables, rows, all exact) of a RowCounts fact, for tables starting with ``prefix``."""
    tables = {name: c for name, c in counts["tables"].items() if name.startswith(prefix)}
    rows = sum(c["count"] for c in tables.values())
    return len(tables), rows, all(c["exact"] for c in tables.values())


def _server(dsn_env: str, env_file: str | None, python: str) -> dict:
    server = host.get_fact(PostgresServer, dsn_env=dsn_env, env_file=env_file, python=python)
    return require_fact(server, f"read the database of {dsn_env}")


@operation()
def dump(
    dsn_env: str,
    dest: str,
    env_file: str | None = None,
    format: str = "custom",
    jobs: int = 2,
    log_path: str | None = None,
    timeout_s: int = 3600,
    pg_bin: str = "",
    python: str = "python3",
):
    """
    Dump the database named by ``dsn_env`` with ``pg_dump --no-owner --no-acl`` (custom format,
    or directory format with ``--jobs``). The dump is written under ``<dest>.partial-<pid>``,
    read back in full (``pg_restore -f /dev/null``) and only then renamed to ``dest``;
    ``<dest>.sha256`` records its sha256 and size. A complete dump already at ``dest`` changes
    nothing; an incomplete one is replaced.

    + dsn_env: environment variable (on the host, or in ``env_file``) holding the DSN
    + dest: absolute path of the dump file (custom) or directory (directory format) on the host
    + env_file: the server-side ``.env`` to read ``dsn_env`` from
    + format: ``custom`` or ``directory``
    + jobs: parallel jobs of a directory-format dump
    + log_path: log file (0600, appended) for the tools' redacted command lines and output
    + timeout_s: watchdog for pg_dump and the read-back, in seconds
    + pg_bin: directory of the PostgreSQL client tools on the host ("" = on PATH)
    + python: the host's Python (with psycopg)

    .. code:: python

        from turnout.operations import db
        db.dump(
            name="Dump the source database",
            dsn_env="SOURCE_DATABASE_URL",
            env_file="/srv/app/.env",
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
            host.get_fact(DumpInfo, path=dest, verify=True, pg_bin=pg_bin, python=python),
            f"read the dump at {dest}",
        )
        replacing = ""
        if existing["exists"] and existing["format"] is None:
            raise OperationError(
                f"{dest} exists and is not a pg_dump archive; remove it or choose another dest"
            )
        if existing["exists"]:
            if existing.get("complete") and existing["format"] == format:
                host.noop(
                    f"{dest} is a complete {format} dump (sha256:{existing['sha256'][:12]}, "
                    f"{existing['tables']} tables)"
                )
                return
            if existing.get("complete"):
                raise OperationError(
                    f"{dest} already holds a complete {existing['format']} dump, not {format}; "
                    "remove it or choose another dest"
                )
            replacing = f", replacing the incomplete dump there ({existing.get('problem')})"

        server = _server(dsn_env, env_file, python)
        counts = require_fact(
            host.get_fact(
                RowCounts,
                dsn_env=dsn_env,
                env_file=env_file,
                tables=None,
                timeout_ms=PLAN_COUNT_TIMEOUT_MS,
                python=python,
            ),
            f"read the row counts of {server['database']}",
        )
        sizes = require_fact(
            host.get_fact(
                TableSizes, dsn_env=dsn_env, env_file=env_file, tables=None, python=python
            ),
            f"read the table sizes of {server['database']}",
        )
        tables, rows, _ = row_total(counts)
        size = human_bytes(sum(t["total_bytes"] for t in sizes["tables"].values()))
        how = format if format == "custom" else f"directory ({jobs} jobs)"
        host.log(
            f"Will dump {server['database']} at {server['host']}:{server['port']} "
            f"({tables} tables, ~{rows} rows, {size}) as {how} to {dest}{replacing}"
        )
        yield hostside_command(
            "pg_dump",
            {
                "dsn_env": dsn_env,
                "env_file": env_file,
                "format": format,
                "jobs": jobs,
                "dest": dest,
                "log_path": log_path,
                "timeout_s": timeout_s,
                "pg_bin": pg_bin,
            },
            python=python,
        )
    except OperationError as error:
        yield from stop(error)


@operation()
def restore(
    dump: str,
    dsn_env: str,
    marker: str,
    env_file: str | None = None,
    drop_schema: bool = False,
    log_path: str | None = None,
    timeout_s: int = 3600,
    terminate_backends: bool = True,
    pg_bin: str = "",
    python: str = "python3",
):
    """
    Restore a dump into the database named by ``dsn_env``: other sessions on that database are
    terminated (they would block ``--clean``), optionally schema ``public`` is dropped and
    recreated first, then ``pg_restore --no-owner --no-acl --clean --if-exists --exit-on-error
    --single-transaction`` runs under a watchdog. A failed restore is rolled back and leaves no
    marker. After success the host keeps a JSON ``marker`` with the dump's sha256; a rerun with
    the same dump changes nothing. Sequences behind their column's data are reported in the
    marker and the log, not silently fixed.

    ``drop_schema`` is for staging only: refused on hosts of the ``prod`` group, and refused
    unless released with ``--data i_know_what_im_doing=true``.

    + dump: the dump file or directory on the host (may be made by ``db.dump`` earlier in the run)
    + dsn_env: environment variable (on the host, or in ``env_file``) holding the target DSN
    + marker: path of the JSON marker on the host (e.g. ``<evidence>/outputs/restore.json``)
    + env_file: the server-side ``.env`` to read ``dsn_env`` from
    + drop_schema: ``DROP SCHEMA public CASCADE; CREATE SCHEMA public`` before restoring
    + log_path: log file (0600, appended) for the tools' redacted command lines and output
    + timeout_s: watchdog for the read-back and pg_restore, in seconds
    + terminate_backends: terminate other sessions connected to the target database first
    + pg_bin: directory of the PostgreSQL client tools on the host ("" = on PATH)
    + python: the host's Python (with psycopg)

    .. code:: python

        from turnout.operations import db
        db.restore(
            name="Restore into staging",
            dump="/var/lib/turnout/evidence/dry_run/demo/src_artifacts/source.dump",
            dsn_env="DATABASE_URL",
            env_file="/srv/app/.env",
            marker="/var/lib/turnout/evidence/dry_run/demo/outputs/restore.json",
            log_path="/var/lib/turnout/evidence/dry_run/demo/logs/restore.log",
        )
    """
    try:
        if drop_schema:
            if "prod" in host.groups:
                raise OperationError(
                    f"refusing restore with drop_schema on {host.name}: drop_schema is for staging "
                    "only (this host is in the prod group); restore without drop_schema"
                )
            require_release(host.data, "restore with drop_schema")

        info = require_fact(
            host.get_fact(DumpInfo, path=dump, verify=False, pg_bin=pg_bin, python=python),
            f"read the dump at {dump}",
        )
        if info["exists"] and info["format"] is None:
            raise OperationError(f"{dump} is not a custom-format dump file nor a dump directory")
        done = require_fact(
            host.get_fact(RestoreMarker, marker=marker, python=python), f"read marker {marker}"
        )
        if info["exists"] and done["dump_sha256"] == info["sha256"]:
            host.noop(f"already restored from dump sha256:{info['sha256'][:12]} (marker {marker})")
            return

        server = _server(dsn_env, env_file, python)
        if info["exists"]:
            what = f"dump sha256:{info['sha256'][:12]} ({info['tables']} tables)"
        else:
            what = f"the dump made by the dump step ({dump})"
        plan = f"Will restore {what} into {server['database']} at {server['host']}:{server['port']}"
        if drop_schema:
            counts = require_fact(
                host.get_fact(
                    RowCounts,
                    dsn_env=dsn_env,
                    env_file=env_file,
                    tables=None,
                    timeout_ms=PLAN_COUNT_TIMEOUT_MS,
                    python=python,
                ),
                f"read the row counts of {server['database']}",
            )
            tables, rows, exact = row_total(counts, prefix="public.")
            approx = "" if exact else "~"
            plan += f"; drop schema public first: removes {tables} tables, {approx}{rows} rows"
        if terminate_backends:
            plan += f"; other sessions on {server['database']} are terminated first"
        host.log(plan)
        yield hostside_command(
            "pg_restore",
            {
                "dump": dump,
                "dsn_env": dsn_env,
                "env_file": env_file,
                "drop_schema": drop_schema,
                "marker": marker,
                "log_path": log_path,
                "timeout_s": timeout_s,
                "terminate_backends": terminate_backends,
                "pg_bin": pg_bin,
            },
            python=python,
        )
    except OperationError as error:
        yield from stop(error)
