"""Host-side integrity records: the constraints a dump creates, per-table content digests computed
by the database server, and the sha256 manifest of an assets tarball.

Facts (always exit 0):

- ``dump_constraints``: the primary keys, unique constraints, unique indexes and foreign keys a
  pg_dump archive creates, by name, read from its post-data section (``pg_restore
  --section=post-data --file=-``: the archive's table of contents, no row is read), run where
  the tools are (inside the database's container with ``compose_exec``);
- ``table_digests``: per ordinary table (partitions included, partitioned parents and
  materialized views left out) the row count and a digest of its rows, both computed on the
  server in one ``REPEATABLE READ READ ONLY`` transaction (``digest_query``): no row comes to
  this host;
- ``tarball_manifest``: path → sha256 and size of every regular file of an assets tarball, as
  the swap extracts it (``turnout.hostside.swap.member_name``); the same tarball (its stat
  signature) as a manifest already made is not read again.

Stdlib only at import time (psycopg lazily): shipped to the hosts.

    python -c 'from turnout.remote import hostside_command as c
    print(c("table_digests", {"dsn_env": "DATABASE_URL", "exclude": ["sessions"]})
          .get_raw_value())' | sh
"""

import hashlib
import os
import re
import shutil
import tarfile

from turnout.hostside.base import HostsideError, run_tool
from turnout.hostside.dump import tool_argv
from turnout.hostside.pg import (
    PG_USER_SCHEMAS_SQL,
    pg_connect,
    pg_current_database,
    pg_display,
    pg_name_parts,
)

# Constraints of a dump ---------------------------------------------------------------------------

# An SQL identifier as pg_dump writes it: bare, or double-quoted with "" for a quote.
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QNAME = rf"{_IDENT}\.{_IDENT}"
# "ALTER TABLE ONLY public.users\n    ADD CONSTRAINT users_email_key UNIQUE (email);"
_ADD_CONSTRAINT_RE = re.compile(
    rf"^ALTER TABLE (?:ONLY )?(?P<table>{_QNAME})\s+ADD CONSTRAINT (?P<name>{_IDENT}) "
    r"(?P<kind>PRIMARY KEY|UNIQUE|FOREIGN KEY)",
    re.MULTILINE,
)
# "CREATE UNIQUE INDEX ix_meter_slot ON public.meters USING btree (unit_id, kind, slot);"
_UNIQUE_INDEX_RE = re.compile(
    rf"^CREATE UNIQUE INDEX (?P<name>{_IDENT}) ON (?:ONLY )?(?P<table>{_QNAME})", re.MULTILINE
)
_KINDS = {
    "PRIMARY KEY": "primary_keys",
    "UNIQUE": "unique_constraints",
    "FOREIGN KEY": "foreign_keys",
}


def unquote_ident(text: str) -> str:
    """An identifier as pg_dump writes it, as the catalog holds it: ``"User"`` → ``User``,
    ``users`` → ``users`` (pg_dump quotes every name that is not plain lower case).

    >>> unquote_ident('"a""b"')
    'a"b'
    """
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text


def display_table(qualified: str) -> str:
    """``public."PlayCount"`` as turnout's reports key tables (``pg_display``)."""
    (schema, _), (table, _) = pg_name_parts(qualified)
    return pg_display(schema, table)


def post_data_constraints(text: str) -> dict:
    """The constraints a dump's post-data SQL creates, by kind, each ``[{"name", "table"}]``
    sorted by table and name: ``primary_keys``, ``unique_constraints``, ``foreign_keys`` (from
    ``ADD CONSTRAINT``) and ``unique_indexes`` (``CREATE UNIQUE INDEX``: the indexes that back
    no constraint).

    >>> post_data_constraints('ALTER TABLE ONLY public.users\\n    ADD CONSTRAINT '
    ...     'users_email_key UNIQUE (email);\\n')["unique_constraints"]
    [{'name': 'users_email_key', 'table': 'public.users'}]
    """
    found: dict[str, list[dict]] = {
        "primary_keys": [],
        "unique_constraints": [],
        "unique_indexes": [],
        "foreign_keys": [],
    }
    for match in _ADD_CONSTRAINT_RE.finditer(text):
        found[_KINDS[match["kind"]]].append(
            {"name": unquote_ident(match["name"]), "table": display_table(match["table"])}
        )
    for match in _UNIQUE_INDEX_RE.finditer(text):
        found["unique_indexes"].append(
            {"name": unquote_ident(match["name"]), "table": display_table(match["table"])}
        )
    return {
        kind: sorted(items, key=lambda item: (item["table"], item["name"]))
        for kind, items in found.items()
    }


def action_dump_constraints(params: dict) -> dict:
    """The constraints the dump at ``path`` creates (``post_data_constraints``)."""
    path = params["path"]
    if not os.path.lexists(path):
        raise HostsideError(f"dump {path} does not exist")
    argv = [*tool_argv(params, "pg_restore"), "--section=post-data", "--file=-"]
    if params.get("compose_exec"):
        if os.path.isdir(path):
            raise HostsideError(f"dump {path} is a directory; only a file can be fed to compose")
        with open(path, "rb") as source:
            text = run_tool(argv, feed=lambda stdin: shutil.copyfileobj(source, stdin, 1 << 20))
    else:
        text = run_tool([*argv, path])
    return {"path": path, **post_data_constraints(text)}


# Table digests -----------------------------------------------------------------------------------

# The session settings a row's text depends on, fixed so the digest is the same from any client.
DIGEST_SETTINGS = (
    "SET TimeZone TO 'UTC'",
    "SET DateStyle TO 'ISO, MDY'",
    "SET IntervalStyle TO 'postgres'",
    "SET extra_float_digits TO 1",
    "SET bytea_output TO 'hex'",
    "SET lc_monetary TO 'C'",
)
# The rows' digest: each row's text (``row::text``, every column in order) hashed with md5, the
# first 64 bits of each hash summed as a number. A sum is independent of row order, so no sort
# and no ordering key is needed, and nothing grows with the table but the sum; any changed,
# missing or added row changes it (unless 64-bit hashes collide). The count is kept beside it.
DIGEST_SQL = (
    "SELECT count(*)::text || ':' || coalesce(sum(('x' || left(md5(turnout_row::text), 16))"
    "::bit(64)::bigint::numeric), 0)::text FROM {table} AS turnout_row"
)
DIGEST_ALGORITHM = "count:sum(int64(md5(row::text)[0:16]))"


def digest_query(schema: str, table: str):  # noqa: ANN201 - psycopg is imported lazily
    """The scalar query answering ``<count>:<digest>`` for one table; the checks after a
    cutover render it to text (``.as_string()``) and run it through psql.

    >>> query = digest_query("public", "users").as_string()
    >>> 'FROM "public"."users" AS turnout_row' in query
    True
    """
    from psycopg import sql

    return sql.SQL(DIGEST_SQL).format(table=sql.Identifier(schema, table))


def table_key(name: str) -> str:
    """A table named as settings name it (``users``, ``public."PlayCount"``) as reports key it:
    no schema means ``public``, unquoted parts fold to lower case."""
    parts = pg_name_parts(name)
    if len(parts) == 1:
        parts = [("public", False), *parts]
    if len(parts) != 2:
        raise HostsideError(f"table name {name!r} must be 'table' or 'schema.table'")
    (schema, schema_quoted), (table, table_quoted) = parts
    return pg_display(
        schema if schema_quoted else schema.lower(), table if table_quoted else table.lower()
    )


def action_table_digests(params: dict) -> dict:
    """``{"tables": {"public.users": {"rows": 12, "digest": "12:…"}}, "unchecked": […]}`` of every
    ordinary table but those in ``exclude``, measured in one snapshot."""
    import psycopg

    exclude = {table_key(name) for name in params.get("exclude") or ()}
    with pg_connect(params, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for statement in DIGEST_SETTINGS:
            conn.execute(statement)
        database = pg_current_database(conn)
        rows = conn.execute(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind = 'r' AND {PG_USER_SCHEMAS_SQL} ORDER BY 1, 2"
        ).fetchall()
        tables, unchecked = {}, []
        for schema, table in rows:
            key = pg_display(schema, table)
            if key in exclude:
                unchecked.append(key)
                continue
            try:
                digest = conn.execute(digest_query(schema, table)).fetchone()[0]
            except psycopg.Error as error:
                raise HostsideError(f"digest of {key} failed: {error}") from None
            tables[key] = {"rows": int(digest.split(":", 1)[0]), "digest": digest}
        conn.rollback()
    return {
        "database": database,
        "algorithm": DIGEST_ALGORITHM,
        "tables": tables,
        "unchecked": unchecked,
    }


# Tarball manifest --------------------------------------------------------------------------------


def tarball_files(path: str, strip: int = 0) -> dict[str, dict]:
    """Path (as extracted under the assets directory) → ``{"sha256", "size"}`` of each regular
    file of the tarball; a later member of the same path wins, as at extraction."""
    from turnout.hostside.swap import member_name

    files: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name, refused = member_name(member.name, strip)
                if not member.isreg() or name is None or refused:
                    continue
                digest = hashlib.sha256()
                handle = tar.extractfile(member)
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                files[name] = {"sha256": digest.hexdigest(), "size": member.size}
    except (OSError, tarfile.TarError, EOFError) as error:
        raise HostsideError(f"cannot read the tarball {path}: {error}") from None
    return dict(sorted(files.items()))


def action_tarball_manifest(params: dict) -> dict:
    """The manifest of the tarball at ``tarball``; ``unchanged`` (nothing read) when its stat
    signature is ``known_stat``."""
    from turnout.hostside.swap import tarball_signature

    path = params["tarball"]
    try:
        signature = tarball_signature(path)
    except OSError as error:
        raise HostsideError(f"cannot read the tarball {path}: {error.strerror}") from None
    if params.get("known_stat") and params["known_stat"] == signature:
        return {"tarball": path, "tarball_stat": signature, "unchanged": True}
    files = tarball_files(path, int(params.get("strip_components") or 0))
    return {
        "tarball": path,
        "tarball_stat": signature,
        "unchanged": False,
        "files": files,
        "count": len(files),
        "bytes": sum(item["size"] for item in files.values()),
    }
