"""Host-side schema migrations under a PostgreSQL advisory lock (S2.6; issue 9 item 5).

- ``locked_migration`` (operation): without a database to lock (SQLite) runs the migration
  command as it is, its failure one line; else takes turnout's advisory lock on the app's database
  (``pg_try_advisory_lock``, session level) and, holding it, runs the migration command it is
  given (``docker compose … exec -T api <python> -m alembic upgrade head``); the lock goes with
  the session. Two hosts can therefore never migrate one database at once, whatever their host
  locks say: the second is refused at once, naming the session that holds the lock.
  ``env_from`` ({"DATABASE_URL": "PG_DATABASE_URL"}) gives the command variables whose values
  are read here from the host's environment or ``env_file`` (secrets never travel in params or
  argv): the schema-first step of the SQLite → PostgreSQL move runs the app's Alembic with
  ``exec -e DATABASE_URL`` against the new database that way.

    python -c 'from turnout.remote import hostside_command as c
    print(c("locked_migration", {"dsn_env": "DATABASE_URL", "env_file": "/srv/app/.env",
        "argv": ["true"]}).get_raw_value())' | sh
"""

import hashlib
import os

from turnout.hostside.base import HostsideError, read_env_file, remember_secret, run_tool
from turnout.hostside.pg import pg_connect

# One key for every turnout migration: a 64-bit number derived from a fixed name.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"turnout: schema migration").digest()[:8], "big", signed=True
)


def lock_halves(key: int) -> tuple[int, int]:
    """How ``pg_locks`` shows a bigint advisory key: (classid, objid), the high and low 32 bits.

    >>> lock_halves((5 << 32) | 7)
    (5, 7)
    """
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


def lock_holders(conn, key: int) -> list[str]:  # noqa: ANN001
    """``pid <n> (<application>, <state>)`` of the sessions holding the advisory ``key``."""
    classid, objid = lock_halves(key)
    rows = conn.execute(
        "SELECT l.pid, coalesce(a.application_name, ''), coalesce(a.client_addr::text, 'local') "
        "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.classid = %s AND l.objid = %s",
        (classid, objid),
    ).fetchall()
    return [f"pid {pid} ({app or 'no application name'}, from {addr})" for pid, app, addr in rows]


def migrated_revision(conn) -> str | None:  # noqa: ANN001
    """The database's Alembic revision(s) now, None without an ``alembic_version`` table."""
    import psycopg

    try:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except psycopg.errors.UndefinedTable:
        return None
    return ", ".join(row[0] for row in rows) or None


def child_env(env_from: dict[str, str] | None, env_file: str | None) -> dict[str, str] | None:
    """The command's environment: this one plus each ``name`` set to the value of the variable
    ``env_from[name]`` (this environment first, then ``env_file``, raw as the app reads it);
    None when there is nothing to add.

    >>> child_env(None, None) is None
    True
    """
    if not env_from:
        return None
    added = {}
    for name, source in env_from.items():
        value = os.environ.get(source)
        if not value and env_file:
            value = read_env_file(env_file).get(source)
        if not value:
            where = f"the environment or {env_file}" if env_file else "the environment"
            raise HostsideError(f"{source} is not set in {where}")
        remember_secret(value)
        added[name] = value
    return {**os.environ, **added}


def action_locked_migration(params: dict) -> dict:
    """Run ``argv`` while holding turnout's advisory lock on the database (see the module
    docstring); refused at once when another session holds it."""
    argv = params["argv"]
    timeout = float(params.get("timeout_s") or 3600)
    env = child_env(params.get("env_from"), params.get("env_file"))
    if not params.get("dsn_env"):  # no PostgreSQL to lock (an app on SQLite): run it as it is
        try:
            output = run_tool(argv, env=env, log_path=params.get("log_path"), timeout=timeout)
        except HostsideError as error:
            hint = f"; to go back to the backup: {params['hint']}" if params.get("hint") else ""
            raise HostsideError(f"the migration failed ({error}){hint}") from None
        return {"ran": argv[-3:], "output_tail": output.splitlines()[-5:]}
    with pg_connect(params) as conn:
        conn.execute("SET application_name = 'turnout migration lock'")
        taken = conn.execute(
            "SELECT pg_try_advisory_lock(%s)", (MIGRATION_LOCK_KEY,)
        ).fetchone()[0]
        if not taken:
            holders = ", ".join(lock_holders(conn, MIGRATION_LOCK_KEY)) or "a session"
            raise HostsideError(
                f"another migration of this database is running ({holders} holds turnout's "
                f"advisory lock {MIGRATION_LOCK_KEY}); wait for it to finish, then rerun"
            )
        try:
            output = run_tool(argv, env=env, log_path=params.get("log_path"), timeout=timeout)
        except HostsideError as error:
            revision = migrated_revision(conn)
            hint = f"; to go back to the backup: {params['hint']}" if params.get("hint") else ""
            raise HostsideError(
                f"the migration failed ({error}); the database is at revision "
                f"{revision or 'none'}{hint}"
            ) from None
    return {"ran": argv[-3:], "output_tail": output.splitlines()[-5:]}
