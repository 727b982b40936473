"""Facts about PostgreSQL servers, observed on the host with the DSN the host holds.

The DSN never leaves the host: facts name the environment variable that holds it and the
server-side ``.env`` file to read it from.
"""

from pyinfra.api import StringCommand

from turnout.database import Database, as_database
from turnout.facts.hostside import HostsideFact
from turnout.hostside.pg import pg_split_list
from turnout.remote import hostside_command


class PostgresServer(HostsideFact):
    """
    Connects to ``database`` and describes the server, with the catalog's cheap estimates for
    plans (no table is scanned): user tables (a partitioned table once), estimated rows and the
    database's size on disk (not the size of a dump).

    .. code:: python

        from turnout.facts.postgres import PostgresServer
        server = host.get_fact(
            PostgresServer, database=Database("DATABASE_URL", "/srv/app/.env"),
        )
        # {"ok": True, "server_version": "15.18 …", "database": "app", "user": "app",
        #  "host": "127.0.0.1", "port": 5432, "tables": 6, "estimated_rows": 803,
        #  "database_bytes": 352256}   or   {"ok": False, "error": "…"}
    """

    def command(self, database: Database | str) -> StringCommand:
        params = as_database(database).params()
        return hostside_command("postgres_server", params)


def _tables_param(tables: list[str] | tuple[str, ...] | str | None) -> list[str] | None:
    """Table names as a JSON list (None = every table); a string may be comma-separated (commas
    inside double quotes belong to a name). Each name is SQL: ``users``, ``public."PlayCount"``;
    the host parses it (``turnout.hostside.pg.pg_split_name``) and reaches the table through
    ``psycopg.sql.Identifier`` only."""
    if tables is None:
        return None
    if isinstance(tables, str):
        tables = pg_split_list(tables)
    return [name.strip() for name in tables if name.strip()]


class RowCounts(HostsideFact):
    """
    Rows per table: an exact ``count(*)`` under a statement timeout per table, falling back to
    the planner's estimate (``exact: false`` and a ``note``) when the count takes longer than
    ``timeout_ms``. ``tables``: SQL names like ``"users"`` (schema ``public``),
    ``"audit.events"`` or ``'public."PlayCount"'``; None counts every table and materialized
    view outside the system schemas. An unknown table is an error. Counting follows the
    catalog: a partitioned table (``"relation": "partitioned"``) counts as the sum of its
    partitions, each listed with its ``"parent"``; a materialized view (``"matview"``) says
    whether it is ``populated``. Keys are written as SQL writes them (``public."PlayCount"``).

    .. code:: python

        from turnout.facts.postgres import RowCounts
        counts = host.get_fact(
            RowCounts, database=Database("DATABASE_URL", "/srv/app/.env"),
            tables=["users", "meters"], timeout_ms=3000,
        )
        # {"ok": True, "database": "app",
        #  "tables": {"public.users": {"count": 12, "exact": True, "relation": "table"},
        #             "public.meters": {"count": 9000000, "exact": False, "relation": "table",
        #                               "note": "count(*) took longer than 3000 ms; …"},
        #             "public.events": {"count": 7, "exact": True, "relation": "partitioned",
        #                               "partitions": ["public.events_2025"]},
        #             "public.events_2025": {"count": 7, "exact": True,
        #                                    "relation": "partition", "parent": "public.events"},
        #             "public.stats": {"count": None, "exact": True, "relation": "matview",
        #                              "populated": False}}}
        # or {"ok": False, "error": "table public.nope does not exist in app"}
    """

    def command(
        self,
        database: Database | str,
        tables: list[str] | None = None,
        timeout_ms: int = 3000,
    ) -> StringCommand:
        params = {
            **as_database(database).params(),
            "tables": _tables_param(tables),
            "timeout_ms": timeout_ms,
        }
        return hostside_command("row_counts", params)


class Orphans(HostsideFact):
    """
    Orphaned rows: child rows whose (non-null) key has no parent row, one anti-join query per
    check. Checks are the declared ``relations`` (``"child.col->parent.col"``, tables may be
    schema-qualified: ``"audit.events.user_id->public.users.id"``) and, with ``foreign_keys``,
    every foreign key of the database (multi-column ones too; rows loaded with triggers off or
    constraints added ``NOT VALID`` can still be orphans).

    .. code:: python

        from turnout.facts.postgres import Orphans
        orphans = host.get_fact(
            Orphans, database=Database("DATABASE_URL", "/srv/app/.env"),
            relations=["meters.unit_id->units.id"], foreign_keys=True,
        )
        # {"ok": True, "database": "app", "checks": [
        #   {"name": "declared:meters.unit_id->units.id", "child": "public.meters",
        #    "columns": ["unit_id"], "parent": "public.units", "parent_columns": ["id"],
        #    "orphans": 0},
        #   {"name": "fk:meters_user_id_fkey", "child": "public.meters", "columns": ["user_id"],
        #    "parent": "public.users", "parent_columns": ["id"], "orphans": 3}]}
    """

    def command(
        self,
        database: Database | str,
        relations: list[str] | tuple[str, ...] = (),
        foreign_keys: bool = True,
    ) -> StringCommand:
        params = {
            **as_database(database).params(),
            "relations": list(relations or ()),
            "foreign_keys": foreign_keys,
        }
        return hostside_command("orphans", params)


class Constraints(HostsideFact):
    """
    Unique constraints, primary keys, unique indexes (those backing a constraint are flagged)
    and foreign keys, each by name. A name used on more than one table (constraint names are
    unique per table only) is keyed ``schema.table.name`` instead.

    .. code:: python

        from turnout.facts.postgres import Constraints
        found = host.get_fact(
            Constraints, database=Database("DATABASE_URL", "/srv/app/.env"),
        )
        # {"ok": True, "database": "app",
        #  "unique_constraints": {"users_email_key": {"table": "public.users",
        #                                             "columns": ["email"]}},
        #  "primary_keys": {"users_pkey": {"table": "public.users", "columns": ["id"]}},
        #  "unique_indexes": {"users_email_key": {"table": "public.users", "columns": ["email"],
        #                     "primary": False, "partial": False, "backs_constraint": True,
        #                     "constraint": "users_email_key"}, …},
        #  "foreign_keys": {"meters_user_id_fkey": {"table": "public.meters",
        #                   "columns": ["user_id"], "references": "public.users",
        #                   "ref_columns": ["id"]}}}
    """

    def command(self, database: Database | str) -> StringCommand:
        params = as_database(database).params()
        return hostside_command("constraints", params)


class DumpConstraints(HostsideFact):
    """
    The primary keys, unique constraints, unique indexes (those backing no constraint) and
    foreign keys a pg_dump archive creates, by name and table, read from its post-data section
    (no row is read); with ``compose_exec`` pg_restore runs inside the database's service, the
    dump fed on stdin.

    .. code:: python

        from turnout.facts.postgres import DumpConstraints
        found = host.get_fact(DumpConstraints, path="/srv/backups/app.src.dump")
        # {"ok": True, "path": "/srv/backups/app.src.dump",
        #  "primary_keys": [{"name": "users_pkey", "table": "public.users"}, …],
        #  "unique_constraints": [{"name": "users_email_key", "table": "public.users"}],
        #  "unique_indexes": [{"name": "ix_meter_slot", "table": "public.meters"}],
        #  "foreign_keys": [{"name": "meters_user_id_fkey", "table": "public.meters"}]}
    """

    def command(
        self, path: str, pg_bin: str = "", compose_exec: list[str] | None = None
    ) -> StringCommand:
        params = {"path": path, "pg_bin": pg_bin}
        if compose_exec:  # the tools of the database's container (``compose_exec_argv``)
            params["compose_exec"] = list(compose_exec)
        return hostside_command("dump_constraints", params)


class TableDigests(HostsideFact):
    """
    Per ordinary table (partitions included; partitioned parents and materialized views left
    out) its row count and a digest of its rows, computed by the server in one read-only
    snapshot (``turnout.hostside.integrity.digest_query``: the sum of each row's md5, so no row
    leaves the server); ``exclude`` names tables not digested (listed as ``unchecked``).

    .. code:: python

        from turnout.facts.postgres import TableDigests
        digests = host.get_fact(
            TableDigests, database=Database("DATABASE_URL", "/srv/app/.env"),
            exclude=["public.sessions"],
        )
        # {"ok": True, "database": "app", "algorithm": "count:sum(…)",
        #  "tables": {"public.users": {"rows": 2, "digest": "2:-4153…"}, …},
        #  "unchecked": ["public.sessions"]}
    """

    def command(
        self, database: Database | str, exclude: list[str] | tuple[str, ...] = ()
    ) -> StringCommand:
        params = {**as_database(database).params(), "exclude": list(exclude)}
        return hostside_command("table_digests", params)


class Extensions(HostsideFact):
    """
    Extensions installed in the database (name → version) and every extension the server
    could install (``pg_available_extensions``, installed ones included).

    .. code:: python

        from turnout.facts.postgres import Extensions
        extensions = host.get_fact(
            Extensions, database=Database("DATABASE_URL", "/srv/app/.env"),
        )
        # {"ok": True, "database": "app", "installed": {"plpgsql": "1.0", "vector": "0.7.0"},
        #  "available": ["amcheck", …, "pg_trgm", …]}
    """

    def command(self, database: Database | str) -> StringCommand:
        params = as_database(database).params()
        return hostside_command("extensions", params)


class AlembicRevision(HostsideFact):
    """
    The Alembic revision(s) recorded in ``alembic_version`` (found through the search path);
    an empty list when the table does not exist.

    .. code:: python

        from turnout.facts.postgres import AlembicRevision
        revision = host.get_fact(
            AlembicRevision, database=Database("DATABASE_URL", "/srv/app/.env"),
        )
        # {"ok": True, "database": "app", "table": "alembic_version", "revisions": ["0002"]}
    """

    def command(self, database: Database | str) -> StringCommand:
        params = as_database(database).params()
        return hostside_command("alembic_revision", params)


class TableSizes(HostsideFact):
    """
    Total relation size (table, indexes and TOAST) per table; ``tables`` as for ``RowCounts``.

    .. code:: python

        from turnout.facts.postgres import TableSizes
        sizes = host.get_fact(
            TableSizes, database=Database("DATABASE_URL", "/srv/app/.env"), tables=None,
        )
        # {"ok": True, "database": "app", "tables": {"public.users": {"total_bytes": 65536}}}
    """

    def command(
        self,
        database: Database | str,
        tables: list[str] | None = None,
    ) -> StringCommand:
        params = {**as_database(database).params(), "tables": _tables_param(tables)}
        return hostside_command("table_sizes", params)
