"""Host-side resumable copy of an app's SQLite file into its PostgreSQL schema (SPEC S3.1, S3.4;
RELIABILITY 12, 14-16, 19).

- ``sqlite_copy`` (operation): the live file is snapshotted with SQLite's backup API into
  ``state_dir`` and copied from that frozen snapshot, table by table in primary-key batches. Each
  batch is one target transaction: ``DELETE`` of its key range, ``COPY … FROM STDIN`` (binary
  when psycopg can dump every value, else text), the table's row of ``turnout_copy.progress``.
  The target's ``turnout_copy`` schema is the truth (source fingerprint, progress, the indexes
  and foreign keys set aside); the local JSON ``checkpoint`` is a cache written atomically after
  each commit. A resume whose snapshot's fingerprint differs from the stored one is refused,
  naming the changed tables; so is a target table holding rows without a checkpoint. Sequences
  owned by the copied tables are set past the data (empty tables too), then the set-aside
  definitions are recreated one transaction each.
- ``sqlite_copy_plan`` (fact): what the copy would do, read-only (the live file opened
  ``mode=ro``, no snapshot).
- ``sqlite_copy_reset`` (operation, destructive): empties the copied tables, recreates what was
  set aside, drops ``turnout_copy`` and the local checkpoint.
- ``copy_status`` (fact): per-table progress, rate and ETA while a copy runs, and the counts of
  the app's compare log and dual-write failures.

Tables load on ``jobs`` connections at once, largest first, in forked processes (``workers``
``process``, the default; ``thread`` for comparison): conversion is Python, and on two cores
processes were about 1.5x faster than threads (500k web-app rows: 119k vs 80k rows/s end to
end). The fingerprint is hashed by the same number of processes. Each batch's session runs with
``synchronous_commit`` off (its progress row commits with it, so a lost commit is redone), and
the local cache is renamed into place without fsync (it is only a cache).

Names reach PostgreSQL only through ``psycopg.sql.Identifier`` and SQLite through
``quote_ident``.

    python -c 'from turnout.remote import hostside_command as c
    print(c("sqlite_copy_plan", {"sqlite_path": "/srv/app/data/app.db",
        "dsn_env": "PG_DATABASE_URL", "env_file": "/srv/app/.env"}).get_raw_value())' | sh
"""

import contextlib
import fcntl
import hashlib
import json
import multiprocessing
import os
import signal
import sqlite3
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from turnout.hostside.base import (
    STOP_SIGNALS,
    HostsideError,
    check_stop,
    stop_signals_deferred,
    write_json_atomically,
)
from turnout.hostside.pg import pg_connect
from turnout.hostside.progress import Ticker, emit, estimate_left, interval_of
from turnout.hostside.sqlite_checks import quote_ident
from turnout.hostside.sqlite_types import (
    BadValue,
    RowConverter,
    TablePair,
    copy_types,
    find_by_name,
    open_source,
    sqlite_tables,
    table_pairs,
)
from turnout.hostside.sqlite_unique import find_conflicts
from turnout.hostside.swap import FAULT_ENV, fault

STATE_SCHEMA = "turnout_copy"
SNAPSHOT_NAME = "sqlite_copy.snapshot.sqlite3"
# The marker a passed verification keeps in the state directory (``sqlite_verify``'s
# ``verified_path``); a copy that changes the target removes it first.
VERIFIED_NAME = "verified.json"
# Rows read per fetch while fingerprinting and while copying a table whole.
FETCH_ROWS = 5000
# The progress file is rewritten at most this often (seconds).
PROGRESS_EVERY_S = 1.0
RESTART_HINT = "--data copy_restart=true --data i_know_what_im_doing=true"
LOSSY_HINT = "--data lossy=true"
# Errors of psycopg dumping a Python value for a binary COPY column (raised before it is sent).
DUMP_ERRORS = (TypeError, ValueError, OverflowError, AttributeError, struct.error)
STATE_DDL = """
CREATE SCHEMA turnout_copy;
CREATE TABLE turnout_copy.source (
    id int PRIMARY KEY CHECK (id = 1),
    fingerprint jsonb NOT NULL,
    sqlite_path text NOT NULL,
    snapshot text,
    tables jsonb NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    report jsonb
);
CREATE TABLE turnout_copy.progress (
    table_name text PRIMARY KEY,
    key_column text,
    mode text NOT NULL,
    last_key bigint,
    rows bigint NOT NULL DEFAULT 0,
    batches int NOT NULL DEFAULT 0,
    seconds double precision NOT NULL DEFAULT 0,
    done boolean NOT NULL DEFAULT false,
    lossy jsonb NOT NULL DEFAULT '[]',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE turnout_copy.deferred (
    position int PRIMARY KEY,
    name text NOT NULL,
    table_name text NOT NULL,
    kind text NOT NULL,
    definition text NOT NULL,
    restored boolean NOT NULL DEFAULT false
);
"""


# Settings -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopySettings:
    """The params of ``sqlite_copy`` and its fact, checked.

    >>> CopySettings.of({"sqlite_path": "/d/app.db", "dsn_env": "PG"}).batch_size
    1000
    """

    sqlite_path: str
    dsn_env: str
    env_file: str | None = None
    tables: tuple[str, ...] | None = None
    batch_size: int = 1000
    checkpoint: str | None = None
    state_dir: str | None = None
    report_path: str | None = None
    progress_path: str | None = None
    progress_interval_s: float | None = None
    jobs: int = 2
    workers: str = "process"
    set_aside: bool = True
    lossy: bool = False
    log_path: str | None = None
    # How the target is reached when not by one variable from the host: ``db_via`` (only inside
    # compose, ``tunnel.py``) and ``dsn_parts`` (``base.parts_dsn``), as ``Database.params``.
    via: tuple[str, ...] = ()
    parts: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, params: dict) -> "CopySettings":
        """Settings from an action's params; ``HostsideError`` naming a bad one."""
        path, dsn_env = params.get("sqlite_path"), params.get("dsn_env")
        if not isinstance(path, str) or not path:
            raise HostsideError("sqlite_path is required: the app's SQLite file on this host")
        if not isinstance(dsn_env, str) or not dsn_env:
            raise HostsideError("dsn_env is required: the variable holding the target's DSN")
        tables = params.get("tables")
        if isinstance(tables, str):
            tables = [tables]
        batch_size, jobs = params.get("batch_size") or 1000, params.get("jobs") or 2
        for name, value in (("batch_size", batch_size), ("jobs", jobs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise HostsideError(f"{name} must be a positive integer, not {value!r}")
        workers = params.get("workers") or "process"
        if workers not in ("process", "thread"):
            raise HostsideError(f"workers must be process or thread, not {workers!r}")
        return cls(
            sqlite_path=path,
            dsn_env=dsn_env,
            env_file=params.get("env_file"),
            tables=tuple(tables) if tables else None,
            batch_size=batch_size,
            checkpoint=params.get("checkpoint") or None,
            state_dir=params.get("state_dir") or None,
            report_path=params.get("report_path") or None,
            progress_path=params.get("progress_path") or None,
            progress_interval_s=interval_of(params),
            jobs=jobs,
            workers=workers,
            set_aside=params.get("set_aside", True) is not False,
            lossy=params.get("lossy") is True,
            log_path=params.get("log_path") or None,
            via=tuple(params.get("db_via") or ()),
            parts=tuple((params.get("dsn_parts") or {}).items()),
        )

    def hashers(self) -> int:
        """Processes fingerprinting tables at once: ``jobs`` with process workers, else one."""
        return self.jobs if self.workers == "process" else 1

    def pg_params(self) -> dict:
        """What ``pg_connect`` needs (names only: the DSN is read on this host)."""
        params: dict = {"dsn_env": self.dsn_env, "env_file": self.env_file}
        if self.via:
            params["db_via"] = list(self.via)
        if self.parts:
            params["dsn_parts"] = dict(self.parts)
        return params


# The SQLite side: open, snapshot, fingerprint -----------------------------------------------------


def snapshot_source(live: str, state_dir: str) -> str:
    """A frozen copy of the live file made with SQLite's online backup API (RELIABILITY 16) in
    ``state_dir`` (created 0700), written under a temporary name then renamed; its path.

    >>> snapshot_source("/srv/app/data/app.db", "/var/lib/turnout/state")  # doctest: +SKIP
    '/var/lib/turnout/state/sqlite_copy.snapshot.sqlite3'
    """
    if not os.path.isfile(live):
        raise HostsideError(f"SQLite file {live} does not exist on this host; fix sqlite_path")
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)
    path = os.path.join(state_dir, SNAPSHOT_NAME)
    partial = f"{path}.partial-{os.getpid()}"
    source = sqlite3.connect(f"file:{live}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(partial)
        try:
            source.backup(target, pages=4096)
        finally:
            target.close()
        os.chmod(partial, 0o600)
        os.replace(partial, path)
    except sqlite3.Error as error:
        raise HostsideError(f"SQLite backup of {live} failed: {error}") from None
    finally:
        source.close()
        if os.path.exists(partial):
            os.unlink(partial)
    return path


def file_identity(path: str) -> dict:
    """Path, size, mtime and inode of a file (informative in the fingerprint: a snapshot is a
    new file each time, so these are never compared).

    >>> file_identity("/srv/app/data/app.db")  # doctest: +SKIP
    {'path': '/srv/app/data/app.db', 'size': 4096, 'mtime': 1764000000, 'inode': 1312}
    """
    info = os.stat(path)
    return {"path": path, "size": info.st_size, "mtime": int(info.st_mtime), "inode": info.st_ino}


def schema_digest(conn: sqlite3.Connection) -> str:
    """sha256 of the file's schema: every ``sqlite_master`` entry's type, name and SQL.

    >>> schema_digest(sqlite3.connect(":memory:"))[:12]
    '4f53cda18c2b'
    """
    rows = conn.execute(
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY type, name"
    ).fetchall()
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def has_rowid(conn: sqlite3.Connection, table: str) -> bool:
    """Whether ``table`` has a rowid (not ``WITHOUT ROWID``).

    >>> has_rowid(sqlite3.connect(":memory:"), "sqlite_master")
    True
    """
    try:
        conn.execute(f"SELECT rowid FROM {quote_ident(table)} LIMIT 0")
    except sqlite3.OperationalError:
        return False
    return True


def order_sql(conn: sqlite3.Connection, pair: TablePair) -> str:
    """The ORDER BY of a table's rows: its integer key, else rowid, else every column.

    >>> order_sql(conn, TablePair("users", "public", "id", ()))  # doctest: +SKIP
    '"id"'
    """
    if pair.key:
        return quote_ident(pair.key)
    if has_rowid(conn, pair.name):
        return "rowid"
    return ", ".join(quote_ident(column.name) for column in pair.columns)


def table_fingerprint(conn: sqlite3.Connection, pair: TablePair) -> dict:
    """Row count, max key and a streamed blake2b of every row (all columns, in key order) of one
    table: one edited value changes the digest.

    >>> table_fingerprint(conn, pair)  # doctest: +SKIP
    {'rows': 3, 'max_key': 3, 'digest': '…'}
    """
    digest = hashlib.blake2b(digest_size=20)
    cursor = conn.execute(
        f"SELECT * FROM {quote_ident(pair.name)} ORDER BY {order_sql(conn, pair)}"
    )
    names = [d[0] for d in cursor.description]
    digest.update(repr(names).encode())
    key_index = names.index(pair.key) if pair.key in names else None
    rows, max_key = 0, None
    while batch := cursor.fetchmany(FETCH_ROWS):
        digest.update(repr(batch).encode())
        rows += len(batch)
        if key_index is not None:
            max_key = batch[-1][key_index]
    return {"rows": rows, "max_key": max_key, "digest": digest.hexdigest()}


def source_fingerprint(
    conn: sqlite3.Connection, path: str, pairs: Sequence[TablePair], workers: int = 1
) -> dict:
    """The fingerprint stored with the checkpoint: the file's identity (informative), its
    schema's digest and each copied table's count, max key and content digest, ``workers``
    tables at once (forked processes, each on its own connection). Text is hashed as stored
    (bytes: twice as fast as decoding it, and invalid UTF-8 counts as it is).

    >>> source_fingerprint(open_source("/srv/app/data/app.db"), "/srv/app/data/app.db",
    ...     pairs)["tables"]["users"]["rows"]  # doctest: +SKIP
    1000
    """
    factory, conn.text_factory = conn.text_factory, bytes
    try:
        schema = schema_digest(conn)
        if workers > 1 and len(pairs) > 1:
            what = [f"fingerprinting {pair.name}" for pair in pairs]
            items = [(conn_path(conn), pair) for pair in pairs]
            found = run_forked(forked_fingerprint, items, workers, what)
        else:
            found = [table_fingerprint(conn, pair) for pair in pairs]
    finally:
        conn.text_factory = factory
    return {
        "file": file_identity(path),
        "schema": schema,
        "tables": {pair.name: entry for pair, entry in zip(pairs, found, strict=True)},
    }


def conn_path(conn: sqlite3.Connection) -> str:
    """The file a SQLite connection reads (its main database)."""
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    return os.fsdecode(path)  # bytes under the fingerprint's text_factory


def forked_fingerprint(item: tuple[str, TablePair]) -> dict:
    """One table's fingerprint in a worker process, on its own read-only connection."""
    path, pair = item
    conn = open_source(path)
    conn.text_factory = bytes
    try:
        return table_fingerprint(conn, pair)
    finally:
        conn.close()


def fingerprint_changes(stored: dict, current: dict) -> list[str]:
    """What differs between two fingerprints: ``"schema"`` and/or the changed tables' names.

    >>> fingerprint_changes({"schema": "a", "tables": {"t": {"rows": 1}}},
    ...                     {"schema": "a", "tables": {"t": {"rows": 2}}})
    ['t']
    """
    changed = ["schema"] if stored.get("schema") != current.get("schema") else []
    old, new = stored.get("tables", {}), current.get("tables", {})
    changed += sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))
    return changed


def mismatch_message(changed: list[str], against: str = "the copy's checkpoint") -> str:
    """The refusal of a resume whose source changed since the checkpoint.

    >>> mismatch_message(["users"]).split(": ")[0]
    "the SQLite source differs from the copy's checkpoint (table users changed)"
    """
    tables = [name for name in changed if name != "schema"]
    what = []
    if "schema" in changed:
        what.append("schema changed")
    if tables:
        what.append(f"table{'s' if len(tables) > 1 else ''} {', '.join(tables)} changed")
    return (
        f"the SQLite source differs from {against} ({'; '.join(what)}): resuming "
        f"would mix two versions of the data; {RESTART_HINT} discards the copy and starts again"
    )


# Pairing SQLite tables with the target's --------------------------------------------------------


def target_table(pair: TablePair):  # noqa: ANN201 - psycopg is imported lazily
    """The target table of a pair as an SQL identifier.

    >>> target_table(TablePair("PlayCount", "public", "id", ()))
    Identifier('public', 'PlayCount')
    """
    from psycopg import sql

    return sql.Identifier(pair.schema, pair.name)


def column_list(pair: TablePair):  # noqa: ANN201
    """The pair's columns as an SQL identifier list."""
    from psycopg import sql

    return sql.SQL(", ").join(sql.Identifier(column.name) for column in pair.columns)


def table_oid(pg_conn, pair: TablePair) -> int:  # noqa: ANN001
    """The target table's oid."""
    from psycopg import sql

    query = sql.SQL("SELECT {}::regclass::oid").format(
        sql.Literal(sql.Identifier(pair.schema, pair.name).as_string(pg_conn))
    )
    return pg_conn.execute(query).fetchone()[0]


def target_has_rows(pg_conn, pair: TablePair) -> bool:  # noqa: ANN001
    """Whether the target table holds any row."""
    from psycopg import sql

    query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(target_table(pair))
    return pg_conn.execute(query).fetchone()[0]


def target_count(pg_conn, pair: TablePair) -> int:  # noqa: ANN001
    """The target table's exact row count."""
    from psycopg import sql

    query = sql.SQL("SELECT count(*) FROM {}").format(target_table(pair))
    return pg_conn.execute(query).fetchone()[0]


# The target's checkpoint (schema turnout_copy) ----------------------------------------------------


def read_state(pg_conn) -> dict | None:  # noqa: ANN001
    """The copy's checkpoint in the target: ``source`` row, ``progress`` by table and the
    ``deferred`` definitions; None when there is none.

    >>> read_state(pg_conn)["progress"]["users"]["last_key"]  # doctest: +SKIP
    1000
    """
    exists = pg_conn.execute("SELECT to_regclass('turnout_copy.source') IS NOT NULL").fetchone()
    if not exists[0]:
        return None
    row = pg_conn.execute(
        "SELECT fingerprint, sqlite_path, snapshot, tables, started_at::text, "
        "completed_at::text, report FROM turnout_copy.source WHERE id = 1"
    ).fetchone()
    if row is None:
        return None
    progress = {
        name: {
            "key": key,
            "mode": mode,
            "last_key": last_key,
            "rows": rows,
            "batches": batches,
            "seconds": seconds,
            "done": done,
            "lossy": lossy,
            "updated_at": updated_at,
        }
        for name, key, mode, last_key, rows, batches, seconds, done, lossy, updated_at in (
            pg_conn.execute(
                "SELECT table_name, key_column, mode, last_key, rows, batches, seconds, done, "
                "lossy, extract(epoch FROM updated_at)::float8 FROM turnout_copy.progress"
            ).fetchall()
        )
    }
    return {
        "fingerprint": row[0],
        "sqlite_path": row[1],
        "snapshot": row[2],
        "tables": row[3],
        "started_at": row[4],
        "completed_at": row[5],
        "report": row[6],
        "progress": progress,
        "deferred": read_deferred(pg_conn),
    }


def read_deferred(pg_conn) -> list[dict]:  # noqa: ANN001
    """The set-aside definitions, in the order they are recreated."""
    rows = pg_conn.execute(
        "SELECT position, name, table_name, kind, definition, restored "
        "FROM turnout_copy.deferred ORDER BY position"
    ).fetchall()
    keys = ("position", "name", "table", "kind", "definition", "restored")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def public_deferred(deferred: list[dict]) -> list[dict]:
    """The set-aside definitions as answers show them."""
    return [{k: d[k] for k in ("name", "table", "kind", "restored")} for d in deferred]


def set_aside_definitions(pg_conn, pairs: Sequence[TablePair]) -> list[dict]:  # noqa: ANN001
    """The definitions the load can do without, in the order they are recreated: every index of
    the copied tables but the primary key (unique constraints as constraints, the others as
    ``pg_get_indexdef``), then every foreign key from or to a copied table
    (``pg_get_constraintdef``). The unique precheck has proved the data before they go.

    >>> [d["name"] for d in set_aside_definitions(pg_conn, pairs)]  # doctest: +SKIP
    ['ix_meters_user_id', 'uq_users_email', 'fk_meters_user_id_users']
    """
    from psycopg import sql

    oids = [table_oid(pg_conn, pair) for pair in pairs]
    found: list[dict] = []
    indexes = pg_conn.execute(
        "SELECT i.relname::text, n.nspname::text, t.relname::text, pg_get_indexdef(x.indexrelid), "
        "  c.conname::text, pg_get_constraintdef(c.oid) "
        "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid "
        "  AND c.contype IN ('u', 'x') "
        "WHERE x.indrelid = ANY(%s) AND NOT x.indisprimary ORDER BY t.relname, i.relname",
        (oids,),
    ).fetchall()
    for index, schema, table, indexdef, constraint, condef in indexes:
        if constraint:
            statement = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                sql.Identifier(schema, table), sql.Identifier(constraint)
            ) + sql.SQL(condef)
            drop = sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(schema, table), sql.Identifier(constraint)
            )
            found.append(
                {
                    "name": constraint,
                    "table": table,
                    "kind": "constraint",
                    "definition": statement.as_string(pg_conn),
                    "_drop": drop,
                }
            )
        else:
            drop = sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, index))
            found.append(
                {
                    "name": index,
                    "table": table,
                    "kind": "index",
                    "definition": indexdef,
                    "_drop": drop,
                }
            )
    keys = pg_conn.execute(
        "SELECT c.conname::text, n.nspname::text, t.relname::text, pg_get_constraintdef(c.oid) "
        "FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
        "JOIN pg_namespace n ON n.oid = t.relnamespace "
        "WHERE c.contype = 'f' AND c.conparentid = 0 "
        "AND (c.conrelid = ANY(%s) OR c.confrelid = ANY(%s)) ORDER BY t.relname, c.conname",
        (oids, oids),
    ).fetchall()
    for constraint, schema, table, condef in keys:
        target = sql.Identifier(schema, table)
        statement = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
            target, sql.Identifier(constraint)
        ) + sql.SQL(condef)
        drop = sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
            target, sql.Identifier(constraint)
        )
        found.append(
            {
                "name": constraint,
                "table": table,
                "kind": "fk",
                "definition": statement.as_string(pg_conn),
                "_drop": drop,
            }
        )
    return found


def start_state(
    pg_conn,  # noqa: ANN001
    fingerprint: dict,
    settings: CopySettings,
    pairs: Sequence[TablePair],
    snapshot: str | None,
) -> None:
    """Create ``turnout_copy`` with the source row, one progress row per table and (with
    ``set_aside``) the recorded definitions, dropping those, all in one transaction.

    >>> start_state(pg_conn, fingerprint, settings, pairs, snapshot)  # doctest: +SKIP
    """
    from psycopg.types.json import Jsonb

    with pg_conn.transaction():
        pg_conn.execute(STATE_DDL)
        pg_conn.execute(
            "INSERT INTO turnout_copy.source (id, fingerprint, sqlite_path, snapshot, tables) "
            "VALUES (1, %s, %s, %s, %s)",
            (Jsonb(fingerprint), settings.sqlite_path, snapshot, Jsonb([p.name for p in pairs])),
        )
        for pair in pairs:
            pg_conn.execute(
                "INSERT INTO turnout_copy.progress (table_name, key_column, mode) "
                "VALUES (%s, %s, %s)",
                (pair.name, pair.key, "batches" if pair.key else "whole"),
            )
        if settings.set_aside:
            definitions = set_aside_definitions(pg_conn, pairs)
            for position, item in enumerate(definitions):
                pg_conn.execute(
                    "INSERT INTO turnout_copy.deferred (position, name, table_name, kind, "
                    "definition) VALUES (%s, %s, %s, %s, %s)",
                    (position, item["name"], item["table"], item["kind"], item["definition"]),
                )
            for item in reversed(definitions):  # foreign keys before the keys they use
                pg_conn.execute(item["_drop"])


def recreate_failure(item: dict, error: Exception) -> str:
    """The line of a set-aside definition the copied data does not satisfy (SQLite does not
    enforce foreign keys unless asked to: orphans are common)."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return (
        f"{item['kind']} {item['name']} on {item['table']} cannot be recreated: {first[:200]}; "
        "the rows are copied, the definitions before it recreated; fix the data (in SQLite, "
        f"then {RESTART_HINT}, or in the target) and rerun to recreate the rest"
    )


def recreate_deferred(pg_conn, main_pid: int) -> list[dict]:  # noqa: ANN001
    """Recreate each set-aside definition not restored yet, each in its own transaction that
    also marks it restored (a crash leaves the rest for the resume); all of them, as answered.

    >>> recreate_deferred(pg_conn, os.getpid())  # doctest: +SKIP
    [{'name': 'ix_meters_user_id', 'table': 'meters', 'kind': 'index', 'restored': True}]
    """
    import psycopg
    from psycopg import sql

    for item in read_deferred(pg_conn):
        if item["restored"]:
            continue
        try:
            with pg_conn.transaction():
                pg_conn.execute(sql.SQL(item["definition"]))
                pg_conn.execute(
                    "UPDATE turnout_copy.deferred SET restored = true WHERE position = %s",
                    (item["position"],),
                )
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as error:
            raise HostsideError(recreate_failure(item, error)) from None
        copy_fault("copy:recreate", main_pid)
    return public_deferred(read_deferred(pg_conn))


def owned_sequences(pg_conn, pair: TablePair) -> list[tuple[str, str, int]]:  # noqa: ANN001
    """(sequence as regclass text, owning column, start value) of every ascending sequence owned
    by a column of the table (serial or identity)."""
    return pg_conn.execute(
        "SELECT s.oid::regclass::text, a.attname::text, q.seqstart FROM pg_depend d "
        "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
        "JOIN pg_sequence q ON q.seqrelid = s.oid AND q.seqincrement > 0 "
        "JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
        "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
        "AND d.refobjid = %s AND d.deptype IN ('a', 'i') ORDER BY 1",
        (table_oid(pg_conn, pair),),
    ).fetchall()


def set_sequences(pg_conn, pairs: Sequence[TablePair], main_pid: int) -> list[dict]:  # noqa: ANN001
    """Set every sequence owned by a copied table past its column's data (RELIABILITY 12): the
    next value is max + 1, or the start value for an empty table.

    >>> set_sequences(pg_conn, pairs, os.getpid())  # doctest: +SKIP
    [{'table': 'users', 'column': 'id', 'sequence': 'users_id_seq', 'next': 1001}]
    """
    from psycopg import sql

    done = []
    for pair in pairs:
        for sequence, column, start in owned_sequences(pg_conn, pair):
            top = pg_conn.execute(
                sql.SQL("SELECT max({})::bigint FROM {}").format(
                    sql.Identifier(column), target_table(pair)
                )
            ).fetchone()[0]
            if top is None:
                pg_conn.execute("SELECT setval(%s::regclass, %s, false)", (sequence, start))
            else:
                pg_conn.execute("SELECT setval(%s::regclass, %s, true)", (sequence, top))
            done.append(
                {
                    "table": pair.name,
                    "column": column,
                    "sequence": sequence,
                    "next": start if top is None else top + 1,
                }
            )
            copy_fault("copy:sequences", main_pid)
    return done


# Loading one table --------------------------------------------------------------------------------


def copy_fault(point: str, main_pid: int) -> None:
    """``swap.fault`` for the copy: a worker process named by ``TURNOUT_FAULT_AT`` kills the
    action's main process first, so the whole action dies as one kill -9 would.

    >>> copy_fault("copy:mid-batch", os.getpid())  # TURNOUT_FAULT_AT unset: nothing
    """
    if os.environ.get(FAULT_ENV) == point and os.getpid() != main_pid:
        try:
            os.kill(main_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    fault(point)


@dataclass(frozen=True)
class LoadJob:
    """One table to load, with all a worker (thread or forked process) needs."""

    pair: TablePair
    settings: CopySettings
    snapshot: str
    main_pid: int
    last_key: int | None
    rows: int
    batches: int
    seconds: float
    lossy: tuple = ()  # (column, reason, count) counted by earlier runs


@dataclass
class TableLoad:
    """A worker's running state for one table."""

    job: LoadJob
    pg_conn: object
    convert: RowConverter
    types: list[str | None]  # psycopg's binary type name per column, None: text only
    binary: bool = True
    rows: int = 0
    batches: int = 0
    lossy: dict = field(default_factory=dict)


def convert_row(load: TableLoad, row: Sequence[object], number: int, key_of: int | None) -> tuple:
    """One SQLite row converted; a ``BadValue`` becomes one line naming table, key (or row
    number) and column and the way forward.

    >>> convert_row(load, (1, 'a@example.test', 'yes'), 0, 0)  # doctest: +SKIP
    (1, 'a@example.test', True)
    """
    try:
        return load.convert(row)
    except BadValue as error:
        where = f"key {row[key_of]!r}" if key_of is not None else f"row {number + 1}"
        raise HostsideError(
            f"table {load.job.pair.name} {where} column {error.column}: {error.reason}; "
            f"nothing of that batch was written; fix the value in SQLite or rerun with "
            f"{LOSSY_HINT} (each lossy conversion is counted in evidence)"
        ) from None


def name_bad_value(load: TableLoad, rows: list, key_of: int | None) -> None:
    """After the target refused a batch: convert its rows again with JSON validated (the copy
    leaves json/jsonb text to PostgreSQL's own parser, ``validate_json=False``) and raise the
    line naming table, key and column of the first value that cannot convert; nothing when
    every row converts (the refusal is then the server's own, e.g. a constraint).

    >>> name_bad_value(load, [(1, '{"a": 1')], 0)  # doctest: +SKIP
    HostsideError: table audit_logs key 1 column payload: invalid JSON; ...
    """
    if load.convert.validate_json or load.convert.lossy:
        return  # the rows were validated as they were sent
    checking = TableLoad(
        job=load.job,
        pg_conn=load.pg_conn,
        convert=RowConverter(load.job.pair.columns, lossy=False, validate_json=True),
        types=load.types,
    )
    for number, row in enumerate(rows):
        convert_row(checking, row, number, key_of)


def write_copy(load: TableLoad, cursor, rows: list, key_of: int | None) -> None:  # noqa: ANN001
    """``COPY … FROM STDIN`` of the batch's rows (binary or text), each converted as it is sent
    (the server inserts while the next rows convert), the fault point halfway."""
    from psycopg import sql

    pair = load.job.pair
    options = sql.SQL(" (FORMAT BINARY)") if load.binary else sql.SQL("")
    statement = sql.SQL("COPY {} ({}) FROM STDIN{}").format(
        target_table(pair), column_list(pair), options
    )
    half = len(rows) // 2
    with cursor.copy(statement) as copy:
        if load.binary:
            copy.set_types(load.types)
        for number, row in enumerate(rows):
            if number == half:
                copy_fault("copy:mid-batch", load.job.main_pid)
            copy.write_row(convert_row(load, row, number, key_of))


def write_progress(
    load: TableLoad,
    cursor,  # noqa: ANN001
    rows: int,
    batches: int,
    last_key: int | None,
    done: bool,
    seconds: float,
) -> None:
    """Update the table's progress row (inside the batch's transaction)."""
    from psycopg.types.json import Jsonb

    cursor.execute(
        "UPDATE turnout_copy.progress SET last_key = %s, rows = %s, batches = %s, "
        "seconds = %s, done = %s, lossy = %s, updated_at = now() WHERE table_name = %s",
        (last_key, rows, batches, seconds, done, Jsonb(lossy_list(load)), load.job.pair.name),
    )


def lossy_list(load: TableLoad) -> list[dict]:
    """The table's lossy conversions so far (this run's converter), one entry per column and
    reason, added to what earlier runs counted."""
    counts = dict(load.lossy)
    for (column, reason), count in load.convert.lossy_counts.items():
        counts[(column, reason)] = counts.get((column, reason), 0) + count
    return [
        {"table": load.job.pair.name, "column": column, "reason": reason, "count": count}
        for (column, reason), count in sorted(counts.items())
    ]


def delete_range(load: TableLoad, cursor, low: int | None, high: int) -> None:  # noqa: ANN001
    """Delete the batch's key range ``(low, high]`` (from the start when ``low`` is None)."""
    from psycopg import sql

    pair = load.job.pair
    key = sql.Identifier(pair.key)
    if low is None:
        query = sql.SQL("DELETE FROM {} WHERE {} <= %s").format(target_table(pair), key)
        cursor.execute(query, (high,))
    else:
        query = sql.SQL("DELETE FROM {} WHERE {} > %s AND {} <= %s").format(
            target_table(pair), key, key
        )
        cursor.execute(query, (low, high))


def batch_transaction(
    load: TableLoad, rows: list, low: int | None, high: int, seconds: float, key_of: int
) -> None:
    """One batch as one target transaction: delete its key range (a batch replayed after a
    crash duplicates nothing), COPY, progress row; the counters move only once it commits."""
    with load.pg_conn.transaction(), load.pg_conn.cursor() as cursor:
        delete_range(load, cursor, low, high)
        write_copy(load, cursor, rows, key_of)
        write_progress(load, cursor, load.rows + len(rows), load.batches + 1, high, False, seconds)
    load.rows, load.batches = load.rows + len(rows), load.batches + 1


def commit_batch(
    load: TableLoad, rows: list, low: int | None, high: int, seconds: float, key_of: int
) -> None:
    """Commit one batch, binary when the table allows it; a value psycopg cannot dump in the
    binary format sends this batch and the rest of the table as text (the server parses it as an
    INSERT would). A value the server refuses fails with one line naming the key range.

    >>> commit_batch(load, rows, 1000, 2000, 1.5, 0)  # doctest: +SKIP
    """
    import psycopg

    counted = dict(load.convert.lossy_counts)
    try:
        try:
            batch_transaction(load, rows, low, high, seconds, key_of)
        except DUMP_ERRORS:
            if not load.binary:
                raise
            load.binary = False
            load.convert.lossy_counts.clear()  # the rows convert again: count them once
            load.convert.lossy_counts.update(counted)
            batch_transaction(load, rows, low, high, seconds, key_of)
    except (*DUMP_ERRORS, psycopg.errors.DataError, psycopg.errors.IntegrityError) as error:
        name_bad_value(load, rows, key_of)  # JSON is left to the server: name its row here
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HostsideError(
            f"table {load.job.pair.name} keys {low if low is not None else 'start'}..{high}: "
            f"the target refused the batch ({first[:200]}); nothing of that batch was written"
        ) from None


def fetch_text_fast(conn: sqlite3.Connection, query: str, args: tuple) -> list:
    """``query``'s rows with SQLite's own UTF-8 decoding (C, about twice as fast as the
    converters' ``decode_text``, the same ``str`` for valid UTF-8); a batch holding invalid
    UTF-8 is read again with the connection's ``text_factory`` (lone surrogates kept).

    >>> fetch_text_fast(sqlite3.connect(":memory:"), "SELECT 'é'", ())
    [('é',)]
    """
    factory = conn.text_factory
    conn.text_factory = str
    try:
        return conn.execute(query, args).fetchall()
    except sqlite3.OperationalError as error:
        if "decode" not in str(error):
            raise
    finally:
        conn.text_factory = factory
    return conn.execute(query, args).fetchall()


def source_batches(conn: sqlite3.Connection, load: TableLoad) -> Iterator[list]:
    """The snapshot's rows of a keyed table, ``batch_size`` at a time from the last key on
    (key-ordered range queries: memory stays flat whatever the table's size).

    >>> next(source_batches(conn, load))[:1]  # doctest: +SKIP
    [(1, 'a@example.test', 1)]
    """
    pair = load.job.pair
    columns = ", ".join(quote_ident(column.name) for column in pair.columns)
    key = quote_ident(pair.key)
    first = f"SELECT {columns} FROM {quote_ident(pair.name)} ORDER BY {key} LIMIT ?"
    after = f"SELECT {columns} FROM {quote_ident(pair.name)} WHERE {key} > ? ORDER BY {key} LIMIT ?"
    last = load.job.last_key
    key_of = [column.name for column in pair.columns].index(pair.key)
    while True:
        if last is None:
            rows = fetch_text_fast(conn, first, (load.job.settings.batch_size,))
        else:
            rows = fetch_text_fast(conn, after, (last, load.job.settings.batch_size))
        if not rows:
            return
        last = rows[-1][key_of]
        if not isinstance(last, int):
            raise HostsideError(
                f"table {pair.name} key {last!r} column {pair.key}: not an integer key in "
                "SQLite; the table cannot be copied in key batches"
            )
        yield rows


def load_keyed(conn: sqlite3.Connection, load: TableLoad) -> None:
    """Copy a table with an integer key in batches, each committed with its progress row.

    >>> load_keyed(open_source(snapshot, immutable=True), load)  # doctest: +SKIP
    """
    pair = load.job.pair
    key_of = [column.name for column in pair.columns].index(pair.key)
    started, low = time.monotonic(), load.job.last_key
    for rows in source_batches(conn, load):
        if load.job.main_pid != os.getpid() and os.getppid() != load.job.main_pid:
            os._exit(1)  # the action's main process is gone: stop, never copy unwatched
        if STOP_THREADS.is_set():
            raise HostsideError(f"table {pair.name}: stopped (another table failed)")
        check_stop()
        high = rows[-1][key_of]
        commit_batch(load, rows, low, high, load.job.seconds + time.monotonic() - started, key_of)
        copy_fault("copy:after-commit", load.job.main_pid)
        update_local_checkpoint(
            load.job.settings.checkpoint,
            pair.name,
            {"last_key": high, "rows": load.rows, "done": False},
        )
        low = high
    with load.pg_conn.transaction(), load.pg_conn.cursor() as cursor:
        seconds = load.job.seconds + time.monotonic() - started
        write_progress(load, cursor, load.rows, load.batches, low, True, seconds)
    update_local_checkpoint(
        load.job.settings.checkpoint, pair.name, {"last_key": low, "rows": load.rows, "done": True}
    )


def load_whole(conn: sqlite3.Connection, load: TableLoad) -> None:
    """Copy a table without an integer key in one transaction: delete all, COPY every row
    (streamed), progress row done.

    >>> load_whole(open_source(snapshot, immutable=True), load)  # doctest: +SKIP
    """
    pair = load.job.pair
    columns = ", ".join(quote_ident(column.name) for column in pair.columns)
    started = time.monotonic()
    cursor = conn.execute(
        f"SELECT {columns} FROM {quote_ident(pair.name)} ORDER BY {order_sql(conn, pair)}"
    )

    def rows() -> Iterator[tuple]:
        number = 0
        while batch := cursor.fetchmany(FETCH_ROWS):
            for row in batch:
                yield convert_row(load, row, number, None)
                number += 1

    from psycopg import sql

    load.binary = False  # one transaction, no retry: text is always accepted
    with load.pg_conn.transaction(), load.pg_conn.cursor() as pg_cursor:
        pg_cursor.execute(sql.SQL("DELETE FROM {}").format(target_table(pair)))
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(target_table(pair), column_list(pair))
        with pg_cursor.copy(statement) as copy:
            for row in rows():
                copy.write_row(row)
                load.rows += 1
        load.batches = 1
        write_progress(load, pg_cursor, load.rows, 1, None, True, time.monotonic() - started)
    copy_fault("copy:after-commit", load.job.main_pid)
    update_local_checkpoint(
        load.job.settings.checkpoint, pair.name, {"last_key": None, "rows": load.rows, "done": True}
    )


def load_table(job: LoadJob) -> dict:
    """Load one table from the snapshot on its own connections; its answer row. Runs in a
    worker thread or forked process.

    >>> snapshot = "/var/lib/turnout/state/sqlite_copy.snapshot.sqlite3"
    >>> job = LoadJob(pair, settings, snapshot, os.getpid(), None, 0, 0, 0.0)  # doctest: +SKIP
    >>> load_table(job)  # doctest: +SKIP
    {'name': 'users', 'rows': 1000, 'batches': 1, 'seconds': 0.05, ...}
    """
    conn = open_source(job.snapshot, immutable=True)
    pg_conn = pg_connect(job.settings.pg_params(), autocommit=True)
    # The progress row commits with its batch, so a commit lost in a server crash loses both:
    # the resume redoes that batch. Not waiting for each commit's WAL flush is safe here.
    pg_conn.execute("SET synchronous_commit TO off")
    try:
        load = TableLoad(
            job=job,
            pg_conn=pg_conn,
            # Keyed tables leave JSON text to PostgreSQL's parser (a refused batch is converted
            # again with validation to name the row: ``name_bad_value``); a table copied whole
            # validates as it sends.
            convert=RowConverter(
                job.pair.columns, lossy=job.settings.lossy, validate_json=job.pair.key is None
            ),
            types=copy_types(pg_conn, [column.pg_type for column in job.pair.columns]),
            rows=job.rows,
            batches=job.batches,
            lossy={(column, reason): count for column, reason, count in job.lossy},
        )
        load.binary = all(load.types)
        started = time.monotonic()
        if job.pair.key:
            load_keyed(conn, load)
        else:
            load_whole(conn, load)
        seconds = time.monotonic() - started
        copied = load.rows - job.rows
        return {
            "name": job.pair.name,
            "rows": load.rows,
            "batches": load.batches,
            "seconds": round(seconds, 3),
            "rows_per_s": round(copied / seconds) if seconds > 0 else None,
            "mode": "batches" if job.pair.key else "whole",
            "format": "binary" if load.binary else "text",
            "lossy": lossy_list(load),
        }
    finally:
        pg_conn.close()
        conn.close()


def forked_call(task: Callable[[object], dict], item: object, sender) -> None:  # noqa: ANN001
    """A forked worker: run ``task(item)``, send its answer (or the error line) and exit. A
    signal ends it at once (Ctrl-C reaches the whole group; the parent reports the stop)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked by the parent's fork
    try:
        sender.send({"ok": True, "answer": task(item)})
    except HostsideError as error:
        sender.send({"ok": False, "error": str(error)})
    except Exception as error:  # noqa: BLE001 - the parent reports it as one line
        sender.send({"ok": False, "error": f"{type(error).__name__}: {error}"})
    finally:
        sender.close()


def run_forked(
    task: Callable[[object], dict], items: Sequence[object], width: int, what: Sequence[str]
) -> list[dict]:
    """``task(item)`` for each item in its own forked process, ``width`` at a time (conversion
    and hashing are Python: processes use both cores where threads share one GIL); the answers
    in item order. ``what[i]`` names item i in the line of a worker that died. The first error
    stops the others (killed: a batch being sent is rolled back by the server).

    >>> run_forked(len, ["ab", "c"], 2, ["first", "second"])  # doctest: +SKIP
    [2, 1]
    """
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("fork")
    pending, running, results, errors = list(range(len(items))), {}, {}, []
    try:
        while pending or running:
            while pending and len(running) < width and not errors:
                index = pending.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(
                    target=forked_call, args=(task, items[index], sender), daemon=True
                )
                with stop_signals_deferred():
                    process.start()
                    running[receiver] = (index, process)
                sender.close()
                check_stop()
            if not running:
                break
            for receiver in wait(list(running)):
                check_stop()
                index, process = running.pop(receiver)
                try:
                    answer = receiver.recv()
                except EOFError:
                    answer = {"ok": False, "error": f"the worker {what[index]} died"}
                process.join()
                if answer["ok"]:
                    results[index] = answer["answer"]
                else:
                    errors.append(answer["error"])
    finally:
        for _, process in running.values():
            process.kill()
            process.join()
    if errors:
        raise HostsideError(errors[0])
    return [results[index] for index in range(len(items))]


def run_processes(jobs: list[LoadJob], width: int) -> list[dict]:
    """Each table loaded in its own forked process, ``width`` at a time; the answer rows in job
    order.

    >>> [row['rows'] for row in run_processes(jobs, 2)]  # doctest: +SKIP
    [1000, 250]
    """
    what = [f"copying {job.pair.name} (rerun to resume)" for job in jobs]
    return run_forked(load_table, jobs, width, what)


# Set when a thread worker failed or the action was interrupted: the other threads stop at their
# next batch (a forked worker is killed instead).
STOP_THREADS = threading.Event()


def run_threads(jobs: list[LoadJob], width: int) -> list[dict]:
    """Each job on a worker thread, ``width`` at a time (one: in this thread); the answer rows in
    job order.

    >>> [row['rows'] for row in run_threads(jobs, 1)]  # doctest: +SKIP
    [1000, 250]
    """
    if width == 1:
        return [load_table(job) for job in jobs]
    pool = ThreadPoolExecutor(max_workers=width)
    try:
        return list(pool.map(load_table, jobs))
    except BaseException:
        STOP_THREADS.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# Local checkpoint (a cache) and the progress file -------------------------------------------------


def read_local_checkpoint(path: str | None) -> tuple[str, dict | None]:
    """The local JSON cache and its state: ``missing``, ``corrupt`` or ``ok`` (its content).

    >>> read_local_checkpoint(None)
    ('missing', None)
    """
    if not path or not os.path.exists(path):
        return "missing", None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return "corrupt", None
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict):
        return "corrupt", None
    return "ok", data


def local_state(path: str | None, state: dict | None) -> str:
    """``ok``, ``missing``, ``corrupt`` or ``stale`` (it disagrees with the target's truth).

    >>> local_state(None, None)
    'missing'
    """
    status, data = read_local_checkpoint(path)
    if status != "ok":
        return status
    if state is None:
        return "stale"  # a cache of a copy the target no longer holds
    for name, entry in state["progress"].items():
        cached = data["tables"].get(name) or {}
        if (cached.get("last_key"), cached.get("rows"), cached.get("done")) != (
            entry["last_key"],
            entry["rows"],
            entry["done"],
        ):
            return "stale"
    return "ok"


def update_local_checkpoint(
    path: str | None, table: str | None, entry: dict | None, whole: dict | None = None
) -> None:
    """Merge one table's entry (or replace everything with ``whole``) into the local cache,
    under an flock (workers write it at once), atomically.

    >>> update_local_checkpoint(None, "users", {"last_key": 5})  # no path: nothing
    """
    if not path:
        return
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if whole is not None:
            data = whole
        else:
            status, data = read_local_checkpoint(path)
            data = data if status == "ok" else {"format": 1, "tables": {}}
            data["tables"][table] = entry
        write_cache(path, data)


def write_cache(path: str, data: dict) -> None:
    """The local cache written atomically (a new 0600 file renamed over it) without fsync: the
    target's checkpoint is the truth, so a cache lost with the machine's power is only "missing"
    or "stale" (an fsync per batch cost about 10 % of the copy's time at 1000 rows a batch).

    >>> write_cache("/srv/app/data/db_migrate_checkpoint.json", {"tables": {}})  # doctest: +SKIP
    """
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def local_snapshot(state: dict) -> dict:
    """The local cache's content for a state read from the target.

    >>> local_snapshot(read_state(pg_conn))['tables']  # doctest: +SKIP
    {'users': {'last_key': 1000, 'rows': 1000, 'done': True}}
    """
    return {
        "format": 1,
        "note": "a cache of the target's turnout_copy tables, which are the truth",
        "sqlite_path": state["sqlite_path"],
        "schema": state["fingerprint"].get("schema"),
        "complete": state["completed_at"] is not None,
        "tables": {
            name: {"last_key": p["last_key"], "rows": p["rows"], "done": p["done"]}
            for name, p in state["progress"].items()
        },
    }


class ProgressWatch:
    """While the tables load: the progress file rewritten every second from the target's
    progress rows, and a line on stderr every ``progress_interval_s``."""

    def __init__(self, settings: CopySettings, totals: dict[str, int], state: dict) -> None:
        self.settings, self.totals = settings, totals
        self.at_start = {name: p["rows"] for name, p in state["progress"].items()}
        self.latest = {
            name: {"rows": p["rows"], "last_key": p["last_key"], "done": p["done"]}
            for name, p in state["progress"].items()
        }
        self.started = time.time()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None
        self.conn = None  # opened before any worker is forked, used by the watching thread only
        self.ticker = Ticker(
            "sqlite_copy", settings.progress_interval_s, self.line, settings.log_path
        )

    def read(self) -> None:
        """The target's progress rows, now."""
        if self.conn is None:
            return
        for name, last_key, rows, done in self.conn.execute(
            "SELECT table_name, last_key, rows, done FROM turnout_copy.progress"
        ).fetchall():
            self.latest[name] = {"rows": rows, "last_key": last_key, "done": done}

    def write(self, running: bool) -> None:
        """The progress file (atomically)."""
        if not self.settings.progress_path:
            return
        tables = {
            name: {
                **entry,
                "total": self.totals.get(name),
                "rows_at_start": self.at_start.get(name, 0),
            }
            for name, entry in self.latest.items()
        }
        write_json_atomically(
            self.settings.progress_path,
            {
                "running": running,
                "pid": os.getpid(),
                "started_at": self.started,
                "updated_at": time.time(),
                "tables": tables,
            },
        )

    def line(self, seconds: float) -> str:
        """The operator's progress line."""
        done = sum(entry["rows"] for entry in self.latest.values())
        total = sum(self.totals.values())
        fresh = done - sum(self.at_start.values())
        rate = f"{fresh / seconds:,.0f} rows/s" if seconds > 0 else "?"
        left = estimate_left(fresh, total - sum(self.at_start.values()), seconds)
        text = f"{done:,} of {total:,} rows copied, {rate}"
        return f"{text}, {left}" if left else text

    def run(self) -> None:
        while not self.stopped.wait(PROGRESS_EVERY_S):
            try:
                self.read()
                self.write(True)
            except Exception:  # noqa: BLE001, S110 - progress never breaks the copy
                pass

    def __enter__(self) -> "ProgressWatch":
        if not (self.settings.progress_path or self.settings.progress_interval_s):
            return self
        self.conn = pg_connect(self.settings.pg_params())
        self.write(True)
        self.ticker.__enter__()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn is None:
            return
        self.stopped.set()
        if self.thread:
            self.thread.join()
        self.ticker.__exit__(*exc)
        try:
            self.read()
        except Exception:  # noqa: BLE001, S110 - the last rows are a nicety
            pass
        self.conn.close()
        self.write(False)


# Actions ----------------------------------------------------------------------------------------


class CopyRefused(HostsideError):
    """A refusal whose details go in the report (the unique conflicts' groups)."""

    def __init__(self, message: str, report: dict) -> None:
        super().__init__(message)
        self.report = report


def take_copy_lock(pg_conn) -> None:  # noqa: ANN001
    """One copy into a database at a time (a session advisory lock on the control connection).

    >>> take_copy_lock(pg_conn)  # doctest: +SKIP
    """
    got = pg_conn.execute("SELECT pg_try_advisory_lock(hashtext('turnout_copy'))").fetchone()[0]
    if not got:
        raise HostsideError(
            "another turnout copy into this database is running; wait for it (db_status shows it)"
        )


def refuse_filled_tables(pg_conn, pairs: Sequence[TablePair]) -> None:  # noqa: ANN001
    """RELIABILITY 19: a target table holding rows with no checkpoint is not ours to overwrite.

    >>> refuse_filled_tables(pg_conn, pairs)  # doctest: +SKIP
    """
    filled = [pair.name for pair in pairs if target_has_rows(pg_conn, pair)]
    if filled:
        raise HostsideError(refusal_for(filled))


def refusal_for(filled: list[str]) -> str:
    """The refusal line for target tables holding rows without a checkpoint.

    >>> refusal_for(["tags"])[:40]
    'target table tags already holds rows and'
    """
    return (
        f"target table{'s' if len(filled) > 1 else ''} {', '.join(filled)} already "
        f"hold{'' if len(filled) > 1 else 's'} rows and there is no copy checkpoint: not "
        f"overwriting them; empty them yourself, or {RESTART_HINT} to empty the copied tables "
        "and start again"
    )


def unique_precheck(
    sqlite_conn: sqlite3.Connection,
    pg_conn,  # noqa: ANN001
    pairs: Sequence[TablePair],
    lossy: bool,
) -> list[dict]:
    """The unique-conflict groups the converted data would cause (``sqlite_unique``), checked in
    a transaction rolled back (its temporary tables go with it).

    >>> source = open_source("/srv/app/data/app.db")  # doctest: +SKIP
    >>> unique_precheck(source, pg_conn, pairs, False)  # doctest: +SKIP
    []
    """
    with pg_conn.transaction(force_rollback=True):
        return find_conflicts(sqlite_conn, pg_conn, pairs, limit=20, lossy=lossy)


def conflict_message(conflicts: list[dict]) -> str:
    """One line naming the first conflicting constraint.

    >>> conflict_message([{"name": "uq_users_email", "table": "public.users"}])[:60]
    'the SQLite data would break unique constraint uq_users_email'
    """
    first = conflicts[0]
    name = first.get("name") or first.get("constraint") or first.get("index") or "?"
    table = first.get("table") or "?"
    more = f" (and {len(conflicts) - 1} more)" if len(conflicts) > 1 else ""
    return (
        f"the SQLite data would break unique constraint {name} on {table}{more}: nothing was "
        "copied; the groups are in the report; fix the duplicates in SQLite and rerun"
    )


def write_report(settings: CopySettings, report: dict) -> None:
    """The report in evidence, when asked for.

    >>> write_report(CopySettings.of({'sqlite_path': '/d/a.db', 'dsn_env': 'PG'}), {})
    """
    if settings.report_path:
        write_json_atomically(settings.report_path, report)


def totals_of(fingerprint: dict) -> dict[str, int]:
    """Source rows per table, from a fingerprint.

    >>> totals_of({"tables": {"users": {"rows": 3}}})
    {'users': 3}
    """
    return {name: entry["rows"] for name, entry in fingerprint.get("tables", {}).items()}


def complete_answer(state: dict, snapshot: str | None) -> dict:
    """The answer of a rerun of a complete copy with an unchanged source.

    >>> complete_answer(state, None)['changed']  # doctest: +SKIP
    False
    """
    report = state.get("report") or {}
    return {
        "changed": False,
        "tables": report.get("tables", []),
        "lossy": report.get("lossy", []),
        "sequences": report.get("sequences", []),
        "deferred": public_deferred(state["deferred"]),
        "snapshot": snapshot or state.get("snapshot"),
        "note": "the copy is complete and the source unchanged since: nothing to do",
    }


@contextlib.contextmanager
def timed(phases: dict, name: str) -> Iterator[None]:
    """Add the block's wall time to ``phases[name]`` (seconds); a stop signal whose exception
    was swallowed stops the copy here, before the phase (``check_stop``).

    >>> phases = {}
    >>> with timed(phases, "load"):
    ...     pass
    >>> list(phases)
    ['load']
    """
    check_stop()
    started = time.monotonic()
    try:
        yield
    finally:
        phases[name] = phases.get(name, 0.0) + time.monotonic() - started


def rerun_of_complete(settings: CopySettings, pg_conn, state: dict, local: str) -> dict:  # noqa: ANN001
    """A complete copy run again: nothing to do when the live file's fingerprint still matches
    (the local cache rewritten when it is not ``ok``), refused when the source changed since.

    >>> rerun_of_complete(settings, pg_conn, state, 'ok')['changed']  # doctest: +SKIP
    False
    """
    live = open_source(settings.sqlite_path)
    try:
        pairs = table_pairs(live, pg_conn, state["tables"])
        current = source_fingerprint(live, settings.sqlite_path, pairs, settings.hashers())
    finally:
        live.close()
    changed = fingerprint_changes(state["fingerprint"], current)
    if changed:
        raise HostsideError(mismatch_message(changed, "the complete copy"))
    if local != "ok":
        update_local_checkpoint(settings.checkpoint, None, None, local_snapshot(state))
    return complete_answer(state, None)


def prepare_copy(
    settings: CopySettings,
    pg_conn,  # noqa: ANN001
    state: dict | None,
    phases: dict,
) -> tuple[str, list[TablePair], dict]:
    """Snapshot the live file and fingerprint the snapshot; a resume checks the fingerprint
    against the stored one, a fresh start refuses filled target tables, runs the unique
    precheck and creates the checkpoint (setting aside indexes and keys). Answers the snapshot's
    path, the pairs and the fingerprint.

    >>> snapshot, pairs, fingerprint = prepare_copy(settings, pg_conn, None, {})  # doctest: +SKIP
    """
    with timed(phases, "snapshot"):
        snapshot = snapshot_source(settings.sqlite_path, settings.state_dir)
    source = open_source(snapshot, immutable=True)
    try:
        pairs = table_pairs(source, pg_conn, state["tables"] if state else settings.tables)
        with timed(phases, "fingerprint"):
            fingerprint = source_fingerprint(source, snapshot, pairs, settings.hashers())
        fingerprint["file"] = file_identity(settings.sqlite_path)
        if state:
            changed = fingerprint_changes(state["fingerprint"], fingerprint)
            if changed:
                raise HostsideError(mismatch_message(changed))
            return snapshot, pairs, fingerprint
        refuse_filled_tables(pg_conn, pairs)
        with timed(phases, "unique_precheck"):
            conflicts = unique_precheck(source, pg_conn, pairs, settings.lossy)
        if conflicts:
            raise CopyRefused(conflict_message(conflicts), {"conflicts": conflicts})
        with timed(phases, "set_aside"):
            start_state(pg_conn, fingerprint, settings, pairs, snapshot)
    finally:
        source.close()
    return snapshot, pairs, fingerprint


def load_jobs(
    settings: CopySettings, state: dict, pairs: list[TablePair], snapshot: str, main_pid: int
) -> list[LoadJob]:
    """One job per table not done yet, starting after its checkpoint's last key.

    >>> [job.pair.name for job in load_jobs(settings, state, pairs, snapshot, 1)]  # doctest: +SKIP
    ['users', 'meters']
    """
    jobs = []
    for pair in pairs:
        progress = state["progress"][pair.name]
        if progress["done"]:
            continue
        jobs.append(
            LoadJob(
                pair=pair,
                settings=settings,
                snapshot=snapshot,
                main_pid=main_pid,
                last_key=progress["last_key"],
                rows=progress["rows"],
                batches=progress["batches"],
                seconds=progress["seconds"],
                lossy=tuple((i["column"], i["reason"], i["count"]) for i in progress["lossy"]),
            )
        )
    return jobs


def mark_complete(pg_conn, report: dict) -> None:  # noqa: ANN001
    """Record the copy complete, with its report, in the target.

    >>> mark_complete(pg_conn, {'tables': []})  # doctest: +SKIP
    """
    from psycopg.types.json import Jsonb

    pg_conn.execute(
        "UPDATE turnout_copy.source SET completed_at = now(), report = %s WHERE id = 1",
        (Jsonb(report),),
    )


def action_sqlite_copy(params: dict) -> dict:
    """Copy the SQLite file into the target's schema, resumably (see the module's docstring).

    >>> action_sqlite_copy({"sqlite_path": "/srv/app/data/app.db", "dsn_env": "PG_URL",
    ...     "env_file": "/srv/app/.env", "state_dir": "/var/lib/turnout/state",
    ...     "checkpoint": "/srv/app/data/db_migrate_checkpoint.json"})  # doctest: +SKIP
    {'changed': True, 'tables': [{'name': 'users', 'rows': 1000, ...}], ...}
    """
    settings = CopySettings.of(params)
    if not settings.state_dir:
        raise HostsideError("state_dir is required: where the frozen snapshot is kept")
    phases: dict[str, float] = {}
    try:
        answer = run_copy(settings, phases)
    except HostsideError as error:
        extra = error.report if isinstance(error, CopyRefused) else {}
        write_report(settings, {"ok": False, "error": str(error), "phases_s": phases, **extra})
        raise
    if answer["changed"]:
        write_report(settings, {"ok": True, **answer})
    return answer


def run_copy(settings: CopySettings, phases: dict[str, float]) -> dict:
    """The copy's steps (``action_sqlite_copy``): the answer; ``phases`` gets each step's time.

    >>> run_copy(CopySettings.of(params), {})["changed"]  # doctest: +SKIP
    True
    """
    main_pid = os.getpid()
    with pg_connect(settings.pg_params()) as pg_conn:
        take_copy_lock(pg_conn)
        state = read_state(pg_conn)
        local = local_state(settings.checkpoint, state)
        if state and state["completed_at"]:
            return {**rerun_of_complete(settings, pg_conn, state, local), "local": local}
        # The target is about to change: an earlier verification no longer speaks for it.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(settings.state_dir, VERIFIED_NAME))
        snapshot, pairs, fingerprint = prepare_copy(settings, pg_conn, state, phases)
        state = read_state(pg_conn)
        update_local_checkpoint(settings.checkpoint, None, None, local_snapshot(state))
        jobs = load_jobs(settings, state, pairs, snapshot, main_pid)
        with timed(phases, "load"), ProgressWatch(settings, totals_of(fingerprint), state):
            # Foreign keys kept in place: one table at a time, parents first.
            width = min(settings.jobs if settings.set_aside else 1, max(1, len(jobs)))
            if width > 1:  # the largest tables first: no worker is left with one at the end
                left = totals_of(fingerprint)
                jobs.sort(key=lambda job: job.rows - left.get(job.pair.name, 0))
            if settings.workers == "thread" or width == 1:
                loaded = run_threads(jobs, width)
            else:
                loaded = run_processes(jobs, width)
        with timed(phases, "sequences"):
            sequences = set_sequences(pg_conn, pairs, main_pid)
        pending = [item for item in state["deferred"] if not item["restored"]]
        if settings.progress_interval_s and pending:
            emit(
                "sqlite_copy",
                f"recreating {len(pending)} indexes, unique constraints and foreign keys",
                settings.log_path,
            )
        with timed(phases, "recreate"):
            deferred = recreate_deferred(pg_conn, main_pid)
        state = read_state(pg_conn)
        report = {
            "tables": table_rows(state, pairs, loaded),
            "lossy": [item for entry in state["progress"].values() for item in entry["lossy"]],
            "sequences": sequences,
            "deferred": deferred,
            "snapshot": snapshot,
            "load_seconds": round(phases["load"], 3),
            "phases_s": {name: round(seconds, 3) for name, seconds in phases.items()},
            "jobs": settings.jobs,
            "workers": settings.workers,
            "batch_size": settings.batch_size,
        }
        mark_complete(pg_conn, report)
        update_local_checkpoint(
            settings.checkpoint, None, None, local_snapshot(read_state(pg_conn))
        )
    if settings.progress_interval_s:
        emit("sqlite_copy", copied_line(report, phases), settings.log_path)
    return {"changed": True, **report, "local": local}


def copied_line(report: dict, phases: dict[str, float]) -> str:
    """The closing line of a copy the operator reads: rows and tables copied (an earlier,
    interrupted run's included), what was recreated, this run's time.

    >>> line = copied_line({"tables": [{"rows": 600}, {"rows": 400}], "deferred": [{}],
    ...     "sequences": [{}, {}]}, {"load": 0.5, "recreate": 0.1})
    >>> line.split("; ")[0]
    'copied 1000 rows of 2 tables'
    >>> line.split("; ")[1]
    '1 set-aside definition recreated, 2 sequences set past the data (this run 0.6 s)'
    """
    rows = sum(table["rows"] for table in report["tables"])
    deferred, sequences = len(report["deferred"]), len(report["sequences"])
    return (
        f"copied {rows} rows of {len(report['tables'])} tables; {deferred} set-aside "
        f"definition{'' if deferred == 1 else 's'} recreated, {sequences} sequence"
        f"{'' if sequences == 1 else 's'} set past the data (this run {sum(phases.values()):.1f} s)"
    )


def table_rows(state: dict, pairs: Sequence[TablePair], loaded: list[dict]) -> list[dict]:
    """The answer's table rows: this run's measurements, or the checkpoint's for tables done
    by an earlier run.

    >>> table_rows(state, pairs, [])[0]['name']  # doctest: +SKIP
    'users'
    """
    by_name = {row["name"]: row for row in loaded}
    rows = []
    for pair in pairs:
        progress = state["progress"][pair.name]
        row = by_name.get(pair.name) or {
            "name": pair.name,
            "rows": progress["rows"],
            "batches": progress["batches"],
            "seconds": round(progress["seconds"], 3),
            "rows_per_s": None,
            "mode": progress["mode"],
        }
        rows.append({k: v for k, v in row.items() if k != "lossy"})
    return rows


def action_sqlite_source_info(params: dict) -> dict:
    """The move's SQLite file as the pre-flight checks it, before any step (the target's schema
    may not exist yet): that it opens read-only as SQLite, its tables (``sqlite_tables``) with
    their row counts, and which of ``tables`` it lacks.

    >>> action_sqlite_source_info({"sqlite_path": "/srv/app/data/app.db",
    ...     "tables": ["users", "nosuch"]})  # doctest: +SKIP
    {'tables': {'users': 1000, 'posts': 5000}, 'missing': ['nosuch']}
    """
    conn = open_source(params.get("sqlite_path"))
    try:
        try:
            names = sqlite_tables(conn)
            counts = {
                name: conn.execute(f"SELECT count(*) FROM {quote_ident(name)}").fetchone()[0]
                for name in names
            }
        except sqlite3.DatabaseError as error:
            raise HostsideError(
                f"cannot read SQLite file {params['sqlite_path']}: {error}; fix sqlite_path"
            ) from None
    finally:
        conn.close()
    wanted = params.get("tables") or []
    missing = [name for name in wanted if find_by_name(name, names) is None]
    return {"tables": counts, "missing": missing}


def action_sqlite_copy_plan(params: dict) -> dict:
    """What ``sqlite_copy`` would do, read-only: the live file opened ``mode=ro`` (no snapshot),
    the target only read.

    >>> action_sqlite_copy_plan({"sqlite_path": "/srv/app/data/app.db",
    ...     "dsn_env": "PG_URL"})  # doctest: +SKIP
    {'tables': [...], 'checkpoint': {'state': 'none', ...}, 'refusals': [], 'complete': False}
    """
    settings = CopySettings.of(params)
    live = open_source(settings.sqlite_path)
    try:
        with pg_connect(settings.pg_params()) as pg_conn:
            state = read_state(pg_conn)
            pairs = table_pairs(live, pg_conn, state["tables"] if state else settings.tables)
            fingerprint = source_fingerprint(live, settings.sqlite_path, pairs, settings.hashers())
            counts = {pair.name: target_count(pg_conn, pair) for pair in pairs}
    finally:
        live.close()
    changed = fingerprint_changes(state["fingerprint"], fingerprint) if state else []
    if state is None:
        kind, detail = "none", "no copy has started"
    elif changed:
        kind, detail = "mismatch", mismatch_message(changed)
    elif state["completed_at"]:
        kind, detail = "complete", f"copy complete at {state['completed_at']}"
    else:
        kind, detail = "in_progress", f"copy started at {state['started_at']}, not complete"
    refusals = []
    if state is None:
        filled = [name for name, count in counts.items() if count]
        if filled:
            refusals.append(refusal_for(filled))
    elif changed:
        refusals.append(detail)
    progress = state["progress"] if state else {}
    tables = []
    for pair in pairs:
        entry = progress.get(pair.name, {})
        source = fingerprint["tables"][pair.name]
        tables.append(
            {
                "name": pair.name,
                "key": pair.key,
                "mode": "batches" if pair.key else "whole",
                "source_rows": source["rows"],
                "max_key": source["max_key"],
                "target_rows": counts[pair.name],
                "copied_rows": entry.get("rows", 0),
                "last_key": entry.get("last_key"),
                "done": bool(entry.get("done")),
            }
        )
    return {
        "tables": tables,
        "checkpoint": {
            "state": kind,
            "detail": detail,
            "changed_tables": [name for name in changed if name != "schema"],
            "local": local_state(settings.checkpoint, state),
        },
        "refusals": refusals,
        "deferred": public_deferred(state["deferred"]) if state else [],
        "complete": kind == "complete",
    }


def outside_references(pg_conn, pairs: Sequence[TablePair]) -> list[str]:  # noqa: ANN001
    """Foreign keys from tables outside the set to tables in it (TRUNCATE would need CASCADE).

    >>> outside_references(pg_conn, pairs)  # doctest: +SKIP
    ['fk_reports_user_id on reports']
    """
    oids = [table_oid(pg_conn, pair) for pair in pairs]
    rows = pg_conn.execute(
        "SELECT c.conname::text || ' on ' || c.conrelid::regclass::text FROM pg_constraint c "
        "WHERE c.contype = 'f' AND c.confrelid = ANY(%s) AND NOT c.conrelid = ANY(%s) ORDER BY 1",
        (oids, oids),
    ).fetchall()
    return [row[0] for row in rows]


def copied_tables(pg_conn, names: Sequence[str]) -> list[TablePair]:  # noqa: ANN001
    """The target tables a checkpoint names (found through the search path; one dropped since is
    left out), as pairs without columns.

    >>> [pair.schema for pair in copied_tables(pg_conn, ["users"])]  # doctest: +SKIP
    ['public']
    """
    from psycopg import sql

    pairs = []
    for name in names:
        row = pg_conn.execute(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
            (sql.Identifier(name).as_string(pg_conn),),
        ).fetchone()
        if row:
            pairs.append(TablePair(name=row[1], schema=row[0], key=None, columns=()))
    return pairs


def action_sqlite_copy_reset(params: dict) -> dict:
    """Discard a copy: TRUNCATE exactly the copied tables (refused when a table outside the set
    references them), recreate the set-aside definitions, drop ``turnout_copy`` and the local
    checkpoint, in one transaction (the local file after it).

    >>> action_sqlite_copy_reset({"sqlite_path": "/srv/app/data/app.db",
    ...     "dsn_env": "PG_URL"})  # doctest: +SKIP
    {'changed': True, 'emptied': ['users', 'meters'], 'recreated': [...]}
    """
    from psycopg import sql

    settings = CopySettings.of(params)
    with pg_connect(settings.pg_params()) as pg_conn:
        take_copy_lock(pg_conn)
        state = read_state(pg_conn)
        if state:  # the checkpoint names the tables: the SQLite file is not needed
            pairs = copied_tables(pg_conn, state["tables"])
        else:
            live = open_source(settings.sqlite_path)
            try:
                pairs = table_pairs(live, pg_conn, settings.tables)
            finally:
                live.close()
        referencing = outside_references(pg_conn, pairs)
        if referencing:
            raise HostsideError(
                f"cannot empty the copied tables: {', '.join(referencing)} references them from "
                "outside the copy; add those tables to the copy or empty them first"
            )
        emptied = [pair.name for pair in pairs if target_has_rows(pg_conn, pair)]
        recreated = []
        with pg_conn.transaction():
            pg_conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                    sql.SQL(", ").join(target_table(pair) for pair in pairs)
                )
            )
            for item in state["deferred"] if state else []:
                if not item["restored"]:
                    pg_conn.execute(sql.SQL(item["definition"]))
                    recreated.append(item["name"])
            pg_conn.execute("DROP SCHEMA IF EXISTS turnout_copy CASCADE")
    removed = []
    for path in (
        settings.checkpoint,
        settings.checkpoint and f"{settings.checkpoint}.lock",
        settings.progress_path,
        settings.state_dir and os.path.join(settings.state_dir, SNAPSHOT_NAME),
    ):
        if path and os.path.exists(path):
            os.unlink(path)
            removed.append(path)
    return {
        "changed": bool(emptied or recreated or state or removed),
        "emptied": emptied,
        "tables": [pair.name for pair in pairs],
        "recreated": recreated,
        "checkpoint_dropped": state is not None,
        "removed": removed,
    }


def progress_file(path: str | None) -> dict | None:
    """The running copy's progress file, when it exists, parses and its process lives.

    >>> progress_file(None) is None
    True
    """
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not data.get("running"):
        return None
    try:
        os.kill(int(data["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data


def table_count_or_none(pg_conn, name: str) -> int | None:  # noqa: ANN001
    """A target table's row count, None when it does not exist (found through the search path).

    >>> table_count_or_none(pg_conn, "db_compare_log")  # doctest: +SKIP
    12
    """
    from psycopg import sql

    if (
        pg_conn.execute(
            "SELECT to_regclass(%s)", (sql.Identifier(name).as_string(pg_conn),)
        ).fetchone()[0]
        is None
    ):
        return None
    return pg_conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
    ).fetchone()[0]


def mismatch_count_or_none(pg_conn, name: str, column: str | None) -> int | None:  # noqa: ANN001
    """Rows of the compare log ``name`` whose boolean ``column`` is false (a read that differed);
    None without a column, or when the table has no such boolean column.

    >>> mismatch_count_or_none(pg_conn, "db_compare_log", "matched")  # doctest: +SKIP
    1
    """
    from psycopg import sql

    if not column:
        return None
    found = pg_conn.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = %s "
        "AND atttypid = 'boolean'::regtype AND attnum > 0 AND NOT attisdropped",
        (sql.Identifier(name).as_string(pg_conn), column),
    ).fetchone()
    if found is None:
        return None
    return pg_conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE NOT {}").format(
            sql.Identifier(name), sql.Identifier(column)
        )
    ).fetchone()[0]


def action_copy_status(params: dict) -> dict:
    """How far the copy is: per table copied of total, last key, rate and ETA (while a copy
    runs, from its progress file), the overall state, and the app's compare-log and dual-write
    failure counts (None when the table does not exist), and of the compare log the reads that
    differed (``compare_log_mismatch_column`` false; None without that boolean column).

    >>> action_copy_status({"dsn_env": "PG_URL",
    ...     "progress_path": "/var/lib/turnout/state/copy.progress.json"})  # doctest: +SKIP
    {'state': 'in_progress', 'tables': [...], 'compare_log': None, 'dual_write_failures': None}
    """
    if not params.get("dsn_env"):
        raise HostsideError("dsn_env is required: the variable holding the target's DSN")
    with pg_connect(params) as pg_conn:
        state = read_state(pg_conn)
        compare_table = params.get("compare_log_table") or "db_compare_log"
        compare_log = table_count_or_none(pg_conn, compare_table)
        mismatched = (
            None
            if compare_log is None
            else mismatch_count_or_none(
                pg_conn, compare_table, params.get("compare_log_mismatch_column")
            )
        )
        failures = table_count_or_none(
            pg_conn, params.get("dual_write_failures_table") or "dual_write_failures"
        )
    running = progress_file(params.get("progress_path"))
    tables = []
    if state:
        totals = totals_of(state["fingerprint"])
        for name in state["tables"]:
            entry = state["progress"].get(name, {})
            rate = eta = None
            live = (running or {}).get("tables", {}).get(name)
            if running and live:
                seconds = running["updated_at"] - running["started_at"]
                fresh = live["rows"] - live.get("rows_at_start", 0)
                if seconds > 0 and fresh > 0:
                    rate = round(fresh / seconds, 1)
                    if not live["done"]:
                        eta = round(max(0, totals.get(name, 0) - live["rows"]) / rate, 1)
            tables.append(
                {
                    "name": name,
                    "copied": entry.get("rows", 0),
                    "total": totals.get(name),
                    "last_key": entry.get("last_key"),
                    "rate": rate,
                    "eta_s": eta,
                    "done": bool(entry.get("done")),
                }
            )
    if state is None:
        overall = "none"
    elif state["completed_at"]:
        overall = "complete"
    else:
        overall = "running" if running else "in_progress"
    return {
        "state": overall,
        "tables": tables,
        "local": local_state(params.get("checkpoint"), state) if params.get("checkpoint") else None,
        "compare_log": compare_log,
        "compare_log_mismatched": mismatched,
        "dual_write_failures": failures,
    }
