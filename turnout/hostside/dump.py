"""Host-side dumps and restores (S1.1, S1.2; RELIABILITY 9-12).

- ``dump_info`` (fact): format, sha256, size and TABLE entries of a dump; with ``verify`` a full
  read-back (``pg_restore -f /dev/null``: ``--list`` succeeds even on a truncated dump).
- ``pg_dump`` (operation): written under ``<dest>.partial-<pid>``, read back in full, only then
  renamed to ``dest`` (parent fsynced) and recorded in ``<dest>.sha256``.
- ``pg_restore`` (operation): dump read back (unless trusted), other backends terminated, then
  one transaction under a watchdog: ``pg_restore --clean --if-exists --exit-on-error -f -`` fed to
  ``psql -v ON_ERROR_STOP=1`` between our ``BEGIN`` and ``COMMIT``, after a preamble (the
  target's partitioned tables the dump holds dropped ``CASCADE``; with ``drop_schema``, schema
  public dropped and recreated) and before sequences behind their data are set past it; only
  then the marker replaced. Inside the database's compose service with ``compose_exec``. A
  failure changes nothing: neither the database nor the previous marker.
- ``restore_marker`` (fact): the marker of the last successful restore.

Passwords reach pg_dump/psql only through the child's environment (``libpq_child``).

    python -c 'from turnout.remote import hostside_command as c
    print(c("dump_info", {"path": "/var/backups/app.dump", "verify": True}).get_raw_value())' | sh
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time

from turnout.constants import DUMP_FORMATS
from turnout.dsn import redact
from turnout.hostside.base import (
    _SECRETS,
    HostsideError,
    append_log,
    kill_group,
    libpq_child,
    params_dsn,
    run_tool,
    write_json_atomically,
)
from turnout.hostside.pg import pg_connect, pg_current_database, pg_display, pg_relations
from turnout.hostside.progress import (
    TABLE_DATA_HEADER,
    Ticker,
    count_headers,
    dump_line,
    interval_of,
    read_back_line,
    restore_line,
    toc_table_data,
)

DUMP_FORMAT_FLAGS = {name: f"--format={name}" for name in DUMP_FORMATS}
DUMP_TABLE_NAMES_MAX = 200
# "215; 1259 16390 TABLE public users app": a table (a partitioned one too); not "TABLE DATA …"
# (its rows) nor "TABLE ATTACH public events_2025 app" (a partition attached to its parent).
TOC_TABLE_RE = re.compile(
    r"^\s*\d+;\s+\d+\s+\d+\s+TABLE\s+(?!DATA\s|ATTACH\s)(\S+)\s+(\S+)(?:\s|$)"
)


def pg_tool(pg_bin: str, name: str) -> str:
    """The libpq tool ``name`` in ``pg_bin`` ("" = found on PATH)."""
    return os.path.join(pg_bin, name) if pg_bin else name


def tool_argv(params: dict, name: str) -> list[str]:
    """How to run the libpq tool ``name``: on the host (``pg_bin``), or inside the database's
    compose service when ``compose_exec`` (``docker compose --env-file … exec -T db``) is given,
    so the host needs no client tools (S0.8)."""
    if params.get("compose_exec"):
        return [*params["compose_exec"], name]
    return [pg_tool(params.get("pg_bin") or "", name)]


def in_container_login(params: dict) -> list[str]:
    """``--username``/``--dbname`` for a tool inside the database's container: the DSN's user and
    database, over the container's local socket (no host, no password in argv or environment)."""
    from psycopg.conninfo import conninfo_to_dict

    safe_dsn, _ = libpq_child(params_dsn(params))
    info = conninfo_to_dict(safe_dsn)
    return [f"--{flag}={info[key]}" for key, flag in (("user", "username"), ("dbname", "dbname"))
            if info.get(key)]


def dump_listing(path: str, params: dict) -> str:
    """``pg_restore --list`` of the dump at ``path``, run where the tools are (inside the
    database's container the dump is fed on stdin)."""
    argv = [*tool_argv(params, "pg_restore"), "--list"]
    if not params.get("compose_exec"):
        return run_tool([*argv, path])
    with open(path, "rb") as source:
        return run_tool(argv, feed=lambda stdin: shutil.copyfileobj(source, stdin, 1 << 20))


def dump_format_of(path: str) -> str | None:
    """``custom`` (a file starting with ``PGDMP``), ``directory`` (a directory with ``toc.dat``),
    or None for anything else."""
    if os.path.isdir(path):
        return "directory" if os.path.isfile(os.path.join(path, "toc.dat")) else None
    if os.path.isfile(path):
        with open(path, "rb") as handle:
            return "custom" if handle.read(5) == b"PGDMP" else None
    return None


def dump_digest(path: str) -> tuple[str, int]:
    """sha256 and size of a dump file; of a dump directory, over its files in sorted name order
    (each contributes ``name NUL size NUL content``)."""
    digest = hashlib.sha256()
    total = 0

    def feed(file_path: str) -> int:
        size = 0
        with open(file_path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        return size

    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if not os.path.isfile(full):
                continue
            digest.update(f"{name}\0{os.path.getsize(full)}\0".encode())
            total += feed(full)
    else:
        total = feed(path)
    return digest.hexdigest(), total


def dump_toc_tables(listing: str) -> list[str]:
    """``schema.table`` of each TABLE entry of a ``pg_restore --list`` listing."""
    tables = []
    for line in listing.splitlines():
        match = TOC_TABLE_RE.match(line)
        if match:
            tables.append(pg_display(match.group(1), match.group(2)))
    return tables


def dump_read_sidecar(path: str) -> dict | None:
    """The ``<dump>.sha256`` record written after a verified dump, or None."""
    try:
        with open(f"{path}.sha256", encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def dump_stat_signature(path: str) -> str:
    """Device, inode, size and mtime (ns) of a dump file, or of each file of a dump directory:
    what must be unchanged for the recorded sha256 to be trusted without reading the dump."""
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(path, name) for name in sorted(os.listdir(path))]
    parts = []
    for item in paths:
        st = os.stat(item)
        parts.append(
            f"{os.path.basename(item)}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
        )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def dump_trusted_record(path: str) -> dict | None:
    """The sidecar of a dump verified when it was made, when the dump is provably unchanged since
    (same device, inode, size and mtime): its sha256, size and tables can be used unread."""
    record = dump_read_sidecar(path)
    if not record or not record.get("stat"):
        return None
    try:
        same = record["stat"] == dump_stat_signature(path)
    except OSError:
        return None
    return record if same else None


def dump_verify_and_digest(
    path: str,
    place: dict,
    log_path: str | None = None,
    timeout: float | None = None,
    interval: float | None = None,
) -> tuple[str, int]:
    """Read the dump once: its sha256 and size, and a full read-back by ``pg_restore
    --file=/dev/null`` (``--list`` succeeds on a truncated dump). A custom-format file is fed to
    pg_restore on stdin while it is hashed; a directory is hashed, then read back. Raises
    ``HostsideError`` when the read-back fails. With ``interval``, a custom-format read-back
    prints its progress every ``interval`` seconds. ``place`` says where the tools run
    (``tool_argv``)."""
    pg_restore = tool_argv(place, "pg_restore")
    if os.path.isdir(path):
        digest = dump_digest(path)
        run_tool([*pg_restore, "--file=/dev/null", path], log_path=log_path, timeout=timeout)
        return digest
    digest, total = hashlib.sha256(), 0
    argv = [*pg_restore, "--file=/dev/null"]
    size = os.path.getsize(path)
    with (
        open(path, "rb") as source,
        Ticker(
            "pg_dump" if ".partial-" in path else "pg_restore",
            interval,
            lambda seconds: read_back_line(total, size, seconds),
            log_path,
        ),
    ):

        def feed(stdin) -> None:  # noqa: ANN001 - the child's stdin pipe
            nonlocal total
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                total += len(chunk)
                stdin.write(chunk)

        run_tool(argv, log_path=log_path, timeout=timeout, feed=feed)
    return digest.hexdigest(), total


def action_dump_info(params: dict) -> dict:
    """What the dump at ``path`` is. A dump whose sidecar proves it unchanged since it was made and
    verified is described from the sidecar without being read (``complete`` true, ``trusted``);
    otherwise it is hashed, and with ``verify`` read back in full (one pass), else ``complete``
    is None. ``full_dump_reads`` says how many times the dump was read whole."""
    path = params["path"]
    if not os.path.lexists(path):
        return {"path": path, "exists": False, "full_dump_reads": 0}
    info: dict = {
        "path": path,
        "exists": True,
        "format": dump_format_of(path),
        "full_dump_reads": 0,
    }
    if info["format"] is None:
        info.update(complete=False, problem="not a custom-format dump file nor a dump directory")
        return info
    trusted = dump_trusted_record(path)
    if trusted:
        names = trusted.get("table_names") or []
        info.update(
            sha256=trusted["sha256"],
            size=trusted["size"],
            recorded=True,
            trusted=True,
            tables=trusted.get("tables", len(names)),
            table_names=names[:DUMP_TABLE_NAMES_MAX],
            complete=True,
        )
        return info
    info.update(recorded=False, trusted=False)
    try:
        listing = dump_listing(path, params)
    except HostsideError as error:
        info.update(tables=0, table_names=[], complete=False, problem=str(error))
        return info
    names = dump_toc_tables(listing)
    info.update(tables=len(names), table_names=names[:DUMP_TABLE_NAMES_MAX], complete=None)
    if params.get("verify"):
        try:
            info["sha256"], info["size"] = dump_verify_and_digest(path, params)
            info["complete"] = True
        except HostsideError as error:
            info["sha256"], info["size"] = dump_digest(path)
            info.update(complete=False, problem=f"full read-back failed: {error}")
            info["full_dump_reads"] += 1
    else:
        info["sha256"], info["size"] = dump_digest(path)
    info["full_dump_reads"] += 1
    sidecar = dump_read_sidecar(path) or {}
    info["recorded"] = (
        sidecar.get("sha256") == info["sha256"] and sidecar.get("size") == info["size"]
    )
    return info


def dump_record(dest: str, fmt: str, sha256: str, size: int, table_names: list[str]) -> dict:
    """Write ``<dest>.sha256``: the verified dump's sha256, size, tables and stat signature."""
    record = {
        "sha256": sha256,
        "size": size,
        "format": fmt,
        "tables": len(table_names),
        "table_names": table_names[:DUMP_TABLE_NAMES_MAX],
        "stat": dump_stat_signature(dest),
    }
    write_json_atomically(f"{dest}.sha256", record)
    return record


# Files ------------------------------------------------------------------------------------------


def dump_remove_path(path: str) -> None:
    """Remove a file or a directory tree; absent is fine."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def dump_fsync(path: str) -> None:
    """fsync a file, or a directory and every file in it."""
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(path, name) for name in os.listdir(path)] + [path]
    for item in paths:
        fd = os.open(item, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def dump_remove_stale_partials(dest: str) -> None:
    """Remove ``<dest>.partial-<pid>`` left by runs whose process is gone."""
    directory, base = os.path.split(dest)
    for name in os.listdir(directory):
        prefix = f"{base}.partial-"
        if not name.startswith(prefix) or not name[len(prefix) :].isdigit():
            continue
        try:
            os.kill(int(name[len(prefix) :]), 0)
        except ProcessLookupError:
            dump_remove_path(os.path.join(directory, name))
        except PermissionError:
            pass


def dump_path_bytes(path: str) -> int:
    """The bytes a dump being written holds so far: its file, or its directory's files."""
    if os.path.isdir(path):
        total = 0
        for entry in os.scandir(path):
            try:
                total += entry.stat().st_size
            except OSError:
                continue
        return total
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def dump_database_bytes(params: dict) -> int | None:
    """``pg_database_size`` of the database to dump (for its progress lines), or None."""
    try:
        with pg_connect(params) as conn:
            return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
    except Exception:  # noqa: BLE001 - progress lines only; pg_dump reports the real problem
        return None


def action_pg_dump(params: dict) -> dict:
    """Dump the database named by ``dsn_env`` to ``dest`` (see the module docstring)."""
    fmt = params.get("format", "custom")
    if fmt not in DUMP_FORMAT_FLAGS:
        raise HostsideError(f"dump format must be custom or directory, got {fmt!r}")
    jobs = int(params.get("jobs") or 1)
    dest = params["dest"]
    if not os.path.isabs(dest):
        raise HostsideError(f"dump destination {dest!r} must be an absolute path")
    timeout = float(params.get("timeout_s") or 3600)
    log_path = params.get("log_path")
    in_compose = bool(params.get("compose_exec"))
    if in_compose and fmt != "custom":
        raise HostsideError("a dump inside the database's container is custom format only")
    safe_dsn, env = libpq_child(params_dsn(params))
    if os.path.lexists(dest) and dump_format_of(dest) is None:
        raise HostsideError(f"{dest} exists and is not a pg_dump archive; nothing replaced")
    parent = os.path.dirname(dest)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    dump_remove_stale_partials(dest)
    partial = f"{dest}.partial-{os.getpid()}"
    argv = [*tool_argv(params, "pg_dump"), "--no-owner", "--no-acl", DUMP_FORMAT_FLAGS[fmt]]
    if fmt == "directory":
        argv.append(f"--jobs={jobs}")
    if in_compose:  # written to our stdout, into the partial file on the host
        argv += in_container_login(params)
        env = dict(os.environ)
    else:
        argv += [f"--file={partial}", f"--dbname={safe_dsn}"]
    interval = interval_of(params)
    database_bytes = dump_database_bytes(params) if interval else None
    old_umask = os.umask(0o077)  # the dump holds the data: 0600 files, 0700 directory
    try:
        with Ticker(
            "pg_dump",
            interval,
            lambda seconds: dump_line(dump_path_bytes(partial), database_bytes, seconds),
            log_path,
        ):
            run_tool(
                argv,
                env=env,
                log_path=log_path,
                timeout=timeout,
                stdout_path=partial if in_compose else None,
            )
        sha256, size = dump_verify_and_digest(partial, params, log_path, timeout, interval)
        listing = dump_listing(partial, params)
        dump_fsync(partial)
        dump_remove_path(f"{dest}.sha256")
        aside = f"{dest}.replaced-{os.getpid()}"
        if os.path.lexists(dest):
            os.rename(dest, aside)
        os.rename(partial, dest)
        dump_fsync(parent)
        dump_remove_path(aside)
    except BaseException as error:
        dump_remove_path(partial)
        if isinstance(error, HostsideError):
            raise HostsideError(f"dump to {dest} failed, nothing kept: {error}") from None
        raise
    finally:
        os.umask(old_umask)
    names = dump_toc_tables(listing)
    record = dump_record(dest, fmt, sha256, size, names)
    return {
        "path": dest,
        "exists": True,
        "format": fmt,
        "sha256": sha256,
        "size": size,
        "tables": record["tables"],
        "table_names": record["table_names"],
        "recorded": True,
        "trusted": True,
        "complete": True,
        "full_dump_reads": 1,
    }


# Restore ------------------------------------------------------------------------------------------


# Run at the end of the restore's transaction (RELIABILITY 12): every ascending sequence owned by
# an integer column (serial, identity) whose next value is not past the column's maximum is set
# to it, and a NOTICE names it for the marker. Empty tables leave their sequence alone.
SEQUENCES_PAST_DATA = """DO $turnout$
DECLARE r record; top bigint; nxt bigint;
BEGIN
  FOR r IN
    SELECT s.oid::regclass AS seq, tn.nspname AS sch, t.relname AS tab, a.attname AS col,
           ps.seqincrement AS inc
    FROM pg_depend d
    JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
    JOIN pg_sequence ps ON ps.seqrelid = s.oid
    JOIN pg_class t ON t.oid = d.refobjid
    JOIN pg_namespace tn ON tn.oid = t.relnamespace
    JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
    WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
      AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 AND ps.seqincrement > 0
      AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
      AND tn.nspname !~ '^pg_' AND tn.nspname <> 'information_schema'
  LOOP
    EXECUTE format('SELECT max(%I) FROM %I.%I', r.col, r.sch, r.tab) INTO top;
    EXECUTE format('SELECT CASE WHEN is_called THEN last_value + %s ELSE last_value END FROM %s',
                   r.inc, r.seq) INTO nxt;
    IF top IS NOT NULL AND nxt <= top THEN
      PERFORM setval(r.seq, top, true);
      RAISE NOTICE 'turnout-sequence %', json_build_object(
        'sequence', r.seq::text, 'column', format('%s.%s.%s', r.sch, r.tab, r.col),
        'max', top, 'next_value', nxt);
    END IF;
  END LOOP;
END
$turnout$;"""
SEQUENCE_NOTICE = "turnout-sequence "


def sequences_advanced(psql_output: str) -> list[dict]:
    """The sequences ``SEQUENCES_PAST_DATA`` moved past their column's data, from psql's NOTICEs.

    >>> sequences_advanced('NOTICE:  turnout-sequence {"sequence" : "s", "max" : 3}')
    [{'sequence': 's', 'max': 3}]
    """
    found = []
    for line in psql_output.splitlines():
        if SEQUENCE_NOTICE in line:
            try:
                found.append(json.loads(line.split(SEQUENCE_NOTICE, 1)[1]))
            except ValueError:
                continue
    return found


def pg_sequence_behind(
    last_value: int, is_called: bool, increment: int, max_value: int | None
) -> bool:
    """Whether an ascending sequence would hand out a value ``<= max_value`` next."""
    if max_value is None or increment <= 0:
        return False
    next_value = last_value + increment if is_called else last_value
    return next_value <= max_value


def pg_sequence_problems(conn) -> list[dict]:  # noqa: ANN001
    """Sequences owned by an integer column (serial, identity) whose next value is not past the
    column's maximum (RELIABILITY 12), or that could not be checked. Reported, never fixed."""
    import psycopg
    from psycopg import sql

    owned = conn.execute(
        "SELECT sn.nspname::text, s.relname::text, tn.nspname::text, t.relname::text, "
        "  a.attname::text, ps.seqincrement "
        "FROM pg_depend d "
        "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "JOIN pg_namespace sn ON sn.oid = s.relnamespace "
        "JOIN pg_sequence ps ON ps.seqrelid = s.oid "
        "JOIN pg_class t ON t.oid = d.refobjid "
        "JOIN pg_namespace tn ON tn.oid = t.relnamespace "
        "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid "
        "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
        "  AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 "
        "  AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype) "
        "  AND tn.nspname !~ '^pg_' ORDER BY 3, 4, 5"
    ).fetchall()
    problems = []
    for seq_schema, seq, schema, table, column, increment in owned:
        names = {"sequence": f"{seq_schema}.{seq}", "column": f"{schema}.{table}.{column}"}
        try:
            last_value, is_called, max_value = conn.execute(
                sql.SQL(
                    "SELECT s.last_value, s.is_called, (SELECT max({}) FROM {}) FROM {} AS s"
                ).format(
                    sql.Identifier(column),
                    sql.Identifier(schema, table),
                    sql.Identifier(seq_schema, seq),
                )
            ).fetchone()
        except psycopg.Error as error:  # e.g. a table this role may not read
            problems.append({**names, "error": str(error).strip().splitlines()[0]})
            continue
        if pg_sequence_behind(last_value, is_called, increment, max_value):
            next_value = last_value + increment if is_called else last_value
            problems.append({**names, "max": max_value, "next_value": next_value})
    return problems


def pg_terminate_others(conn) -> tuple[int, list[str]]:  # noqa: ANN001
    """Terminate every other client session on the current database (RELIABILITY 11): an app
    session holding a lock would block ``--clean`` forever. Returns (terminated, failures)."""
    import psycopg

    sessions = conn.execute(
        "SELECT pid, usename::text FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    ).fetchall()
    wait = conn.info.server_version >= 140000
    terminated, failures = 0, []
    for pid, user in sessions:
        try:
            if wait:  # wait up to 5 s for the session (and its locks) to be gone
                done = conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()[0]
            else:
                done = conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        except psycopg.Error as error:
            failures.append(f"pid {pid} ({user}): {str(error).strip()}")
            continue
        if done:
            terminated += 1
    return terminated, failures


def action_restore_marker(params: dict) -> dict:
    """The marker written by the last successful restore: ``dump_sha256`` (None without one)."""
    marker = params["marker"]
    try:
        with open(marker, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return {"exists": False, "dump_sha256": None}
    except (OSError, ValueError) as error:
        return {"exists": True, "dump_sha256": None, "problem": f"unreadable marker: {error}"}
    if not isinstance(record, dict):
        return {"exists": True, "dump_sha256": None, "problem": "the marker is not a JSON object"}
    return {**record, "exists": True, "dump_sha256": record.get("dump_sha256")}


def restore_preamble(conn, listing: str, drop_schema: bool) -> str:  # noqa: ANN001
    """SQL run first in the restore's transaction: every top-level partitioned table of the
    target that the dump holds is dropped ``CASCADE`` (``pg_restore --clean`` would try to drop
    its partitions' inherited constraints one by one, which PostgreSQL refuses: "cannot drop
    inherited constraint"); with ``drop_schema``, schema public is dropped and recreated."""
    from psycopg import sql

    lines = [f"{line} " for line in listing.splitlines() if not line.lstrip().startswith(";")]
    statements = []
    for (schema, table), info in pg_relations(conn).items():
        entry = f" TABLE {schema} {table} "
        if info["relkind"] == "p" and not info["parent"] and any(entry in x for x in lines):
            drop = sql.SQL("DROP TABLE IF EXISTS {} CASCADE;").format(sql.Identifier(schema, table))
            statements.append(drop.as_string(conn))
    if drop_schema:
        statements += ["DROP SCHEMA public CASCADE;", "CREATE SCHEMA public;"]
    return "\n".join(statements)


def restore_first_error(output: str) -> str:
    """The first ``ERROR:`` line of psql's output, without psql's ``psql:<stdin>:12:`` prefix
    (the real cause: "ERROR:  cannot drop inherited constraint …"), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if "ERROR:" in line:
            return line[line.index("ERROR:") :][:300]
    return (lines[-1] if lines else "no output")[:300]


def restore_pipeline(
    restore_argv: list[str],
    psql_argv: list[str],
    psql_env: dict[str, str],
    log_path: str | None,
    timeout: float,
    progress: tuple[float | None, int] = (None, 0),
    frame: tuple[str, str] = ("", ""),
    stdin_path: str | None = None,
) -> str:
    """``pg_restore -f -`` (the dump as SQL) fed to ``psql -v ON_ERROR_STOP=1`` inside our
    ``BEGIN``/``COMMIT``, each in its own process group under one watchdog. psql sees the end of
    its input (and commits) only when pg_restore finished cleanly; on any failure psql is killed
    first, so nothing is committed. Only psql gets the password (``psql_env``). Raises
    ``HostsideError`` with the real cause: psql's first ``ERROR:`` line, or pg_restore's.
    ``progress`` (interval, TABLE DATA entries of the TOC): the copy loop counts the script's
    bytes and table-data headers, printed every interval. ``frame`` (head, tail): SQL written to
    psql before pg_restore's script and — only when pg_restore exited 0 — after it (the
    transaction's ``BEGIN``/``COMMIT``). ``stdin_path``: a file fed to pg_restore's stdin (a dump
    streamed into a container). Returns psql's redacted output."""
    psql = subprocess.Popen(  # noqa: S603 - argv list, no shell
        psql_argv,
        env=psql_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    restore_stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115
    restore = subprocess.Popen(  # noqa: S603 - argv list, no shell
        restore_argv,
        stdin=restore_stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    outputs: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda: outputs.update(psql=psql.stdout.read()), daemon=True),
        threading.Thread(target=lambda: outputs.update(restore=restore.stderr.read()), daemon=True),
    ]
    fired = threading.Event()

    def watchdog() -> None:
        fired.set()
        kill_group(restore, wait=False)
        kill_group(psql, wait=False)

    timer = threading.Timer(timeout, watchdog)
    timer.daemon = True
    seen = {"bytes": 0, "tables": 0}
    ticker = Ticker(
        "pg_restore",
        progress[0],
        lambda seconds: restore_line(
            seen["tables"], progress[1], seen["bytes"], seconds, fed=seen.get("fed", False)
        ),
        log_path,
    )
    try:
        timer.start()
        for reader in readers:
            reader.start()
        with ticker:  # until psql is done: indexes and constraints come after the data
            fed = restore_feed(psql, frame[0])
            if fed:
                restore_pump(restore, psql, seen)
            restore_code = restore.wait()
            seen["fed"] = True
            if fed and restore_code == 0 and not fired.is_set() and restore_feed(psql, frame[1]):
                try:
                    psql.stdin.close()  # the end of the script, after COMMIT
                except BrokenPipeError:
                    pass
            else:
                kill_group(psql)  # never let psql see the end of a partial script
            psql.wait()
        for reader in readers:
            reader.join()
    except BaseException:  # interrupted: take both groups down, nothing is committed
        kill_group(restore)
        kill_group(psql)
        raise
    finally:
        timer.cancel()
        if stdin_path:
            restore_stdin.close()
    restore_failure(restore_argv, psql_argv, outputs, (restore_code, psql.returncode), fired)
    if log_path:
        restore_log(log_path, restore_argv, psql_argv, outputs, (restore_code, psql.returncode))
    return restore_texts(outputs)[0]


def restore_feed(psql: subprocess.Popen, text: str) -> bool:
    """Write ``text`` (SQL of ours) to psql; False when psql stopped reading (it failed)."""
    try:
        psql.stdin.write(text.encode())
        psql.stdin.flush()
    except (BrokenPipeError, ValueError):
        return False
    return True


def restore_pump(
    restore: subprocess.Popen, psql: subprocess.Popen, seen: dict | None = None
) -> None:
    """Copy pg_restore's SQL into psql; when psql stops reading (it hit an error), stop
    pg_restore too (it would block on its full pipe). ``seen`` counts the bytes copied and the
    table-data headers (``-- Name: …; Type: TABLE DATA; …``) among them."""
    seen = seen if seen is not None else {"bytes": 0, "tables": 0}
    tail = b""
    try:
        while chunk := restore.stdout.read1(1 << 16):
            found, tail = count_headers(chunk, tail, TABLE_DATA_HEADER)
            seen["tables"] += found
            seen["bytes"] += len(chunk)
            psql.stdin.write(chunk)
    except (BrokenPipeError, ValueError):
        kill_group(restore, wait=False)


def restore_texts(outputs: dict[str, bytes]) -> tuple[str, str]:
    """psql's and pg_restore's output, decoded and redacted."""
    return tuple(
        redact(outputs.get(name, b"").decode("utf-8", "replace"), _SECRETS)
        for name in ("psql", "restore")
    )


def restore_log(
    log_path: str, restore_argv: list, psql_argv: list, outputs: dict, codes: tuple
) -> None:
    """Both tools' redacted command lines, outputs and exit codes, in the step's log."""
    psql_text, restore_text = restore_texts(outputs)
    append_log(log_path, redact(" ".join(restore_argv), _SECRETS), restore_text, codes[0])
    append_log(log_path, redact(" ".join(psql_argv), _SECRETS), psql_text, codes[1])


def restore_failure(
    restore_argv: list, psql_argv: list, outputs: dict, codes: tuple, fired: threading.Event
) -> None:
    """Raise ``HostsideError`` naming the real cause when the pipeline failed."""
    psql_text, restore_text = restore_texts(outputs)
    if fired.is_set():
        raise HostsideError("pg_restore | psql timed out (killed by the watchdog)")
    if codes[1] != 0 and codes[1] != -9:
        raise HostsideError(f"psql exited {codes[1]}: {restore_first_error(psql_text)}")
    if codes[0] != 0:
        raise HostsideError(f"pg_restore exited {codes[0]}: {restore_first_error(restore_text)}")
    if codes[1] != 0:
        raise HostsideError(f"psql exited {codes[1]}: {restore_first_error(psql_text)}")


def action_pg_restore(params: dict) -> dict:
    """Restore ``dump`` into the database named by ``dsn_env`` (see the module docstring): one
    transaction (``pg_restore -f - | psql``, between BEGIN and COMMIT, with the preamble of
    ``restore_preamble``), so a failure changes nothing — neither the database nor the marker
    of the last successful restore, which is replaced only after success."""
    dump, marker = params["dump"], params["marker"]
    log_path = params.get("log_path")
    timeout = float(params.get("timeout_s") or 3600)
    interval = interval_of(params)
    in_compose = bool(params.get("compose_exec"))
    if not os.path.lexists(dump):
        raise HostsideError(f"dump {dump} does not exist on this host; run the dump step first")
    if dump_format_of(dump) is None:
        raise HostsideError(f"{dump} is not a custom-format dump file nor a dump directory")
    # A dump not provably unchanged since it was verified is read back in full before the target
    # is touched (one pass, hashed on the way): a corrupt dump changes nothing.
    trusted = dump_trusted_record(dump)
    if trusted:
        sha256 = trusted["sha256"]
    else:
        try:
            sha256, _ = dump_verify_and_digest(dump, params, log_path, timeout, interval)
        except HostsideError as error:
            raise HostsideError(f"dump {dump} is unreadable, target untouched: {error}") from None
    if in_compose and dump_format_of(dump) != "custom":
        raise HostsideError("a restore inside the database's container takes a custom-format dump")
    listing = dump_listing(dump, params)
    safe_dsn, env = libpq_child(params_dsn(params))
    terminated, failures = 0, []
    with pg_connect(params) as conn:
        database = pg_current_database(conn)
        target = f"{conn.info.host}:{conn.info.port}/{database}"
        if params.get("terminate_backends", True):
            terminated, failures = pg_terminate_others(conn)
        preamble = restore_preamble(conn, listing, bool(params.get("drop_schema")))
    restore_argv = [
        *tool_argv(params, "pg_restore"),
        "--no-owner",
        "--no-acl",
        "--clean",
        "--if-exists",
        "--exit-on-error",
        "--file=-",
    ]
    psql_argv = [*tool_argv(params, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    if in_compose:  # both tools inside the database's container; the dump is streamed in
        psql_argv += [*in_container_login(params), "-f", "-"]
        env = dict(os.environ)
    else:
        restore_argv.append(dump)
        psql_argv += [f"--dbname={safe_dsn}", "-f", "-"]
    # One explicit transaction: psql gets COMMIT only after pg_restore exited 0. Input cut short
    # (psql killed, or a container's stdin closed) ends psql inside an open transaction: rolled
    # back — where ``--single-transaction`` would commit at the end of a partial script.
    frame = (
        f"BEGIN;\n{preamble}\n",
        f"\nSET client_min_messages = notice;\n{SEQUENCES_PAST_DATA}\nCOMMIT;\n",
    )
    try:
        psql_text = restore_pipeline(
            restore_argv,
            psql_argv,
            env,
            log_path,
            timeout,
            (interval, toc_table_data(listing)),
            frame=frame,
            stdin_path=dump if in_compose else None,
        )
    except HostsideError as error:
        hint = f" ({len(failures)} session(s) could not be terminated)" if failures else ""
        raise HostsideError(
            f"restore into {target} failed and was rolled back, nothing changed (the marker of "
            f"the last restore is kept){hint}: {error}"
        ) from None
    advanced = sequences_advanced(psql_text)
    with pg_connect(params) as conn:
        problems = pg_sequence_problems(conn)
    if log_path and (problems or failures):
        lines = [f"sequence behind its column: {json.dumps(p, sort_keys=True)}" for p in problems]
        lines += [f"session not terminated: {failure}" for failure in failures]
        append_log(log_path, "turnout: checks after pg_restore", "\n".join(lines), 0)
    record = {
        "dump": dump,
        "dump_sha256": sha256,
        "target": target,
        "restored_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dropped_schema": bool(params.get("drop_schema")),
        "sequences_advanced": advanced,
        "sequence_problems": problems,
    }
    marker_dir = os.path.dirname(os.path.abspath(marker))
    os.makedirs(marker_dir, mode=0o700, exist_ok=True)
    write_json_atomically(marker, record)
    dump_fsync(marker_dir)
    return {
        **record,
        "marker": marker,
        "terminated_backends": terminated,
        "not_terminated": failures,
        "full_dump_reads": 0 if trusted else 1,
    }
