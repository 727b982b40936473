"""Facts about moving an app's SQLite file into PostgreSQL (SPEC S3.1-S3.4): what the copy would
do, whether the SQLite data would break a unique constraint of the target, and how far a copy
is. All three are answered by the host-side program (``turnout/hostside/pgload.py``,
``sqlite_unique.py``) and change nothing: the SQLite file is opened read-only, the target only
read (the unique check uses temporary tables in a transaction rolled back).
"""

from pyinfra.api import StringCommand

from turnout.database import Database
from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


def copy_params(
    source: str,
    target: Database,
    tables: tuple[str, ...] | list[str] | None,
    batch_size: int,
    checkpoint: str,
    lossy: bool,
) -> dict:
    """The host action's parameters shared by the copy's fact and operation.

    >>> copy_params("/d/app.db", Database("PG"), None, 1000, "/s/c.json", False)["dsn_env"]
    'PG'
    """
    return {
        "sqlite_path": source,
        **target.params(),
        "tables": list(tables) if tables else None,
        "batch_size": batch_size,
        "checkpoint": checkpoint,
        "lossy": lossy,
    }


class SqliteSource(HostsideFact):
    """
    The SQLite file ``source`` as the move's pre-flight checks it (the target's schema may not
    exist yet): that it opens read-only as SQLite, its tables with their row counts, and which
    of ``tables`` it lacks.

    .. code:: python

        from turnout.facts.pgload import SqliteSource
        found = host.get_fact(SqliteSource, source="/srv/app/data/app.db", tables=("users",))
        # {"ok": True, "tables": {"users": 1000, "posts": 5000}, "missing": []}
    """

    def command(self, source: str, tables: tuple[str, ...] | None = None) -> StringCommand:
        params = {"sqlite_path": source, "tables": list(tables) if tables else None}
        return hostside_command("sqlite_source_info", params)


class SqliteCopyPlan(HostsideFact):
    """
    What copying the SQLite file ``source`` into ``target`` would do: per table its key and
    mode (``batches`` by integer primary key, or ``whole``), rows in SQLite and in the target,
    rows already copied and the last key (from the checkpoint kept in the target, schema
    ``turnout_copy``), the checkpoint's state (``none``, ``in_progress``, ``complete``,
    ``mismatch`` with the tables that changed since), the local JSON cache's state, refusals
    (a target table with rows and no checkpoint) and the indexes and foreign keys set aside.

    .. code:: python

        from turnout.database import Database
        from turnout.facts.pgload import SqliteCopyPlan
        plan = host.get_fact(
            SqliteCopyPlan, source="/srv/app/data/app.db",
            target=Database("PG_DATABASE_URL", "/srv/app/.env"), tables=None,
            batch_size=1000, checkpoint="/srv/app/data/db_migrate_checkpoint.json", lossy=False,
        )
        # {"ok": True, "tables": [{"name": "users", "key": "id", "mode": "batches",
        #   "source_rows": 1000, "target_rows": 0, "copied_rows": 0, "last_key": None,
        #   "done": False, ...}], "checkpoint": {"state": "none", ...}, "refusals": [],
        #   "deferred": [], "complete": False}
    """

    def command(
        self,
        source: str,
        target: Database,
        tables: tuple[str, ...] | None = None,
        batch_size: int = 1000,
        checkpoint: str = "",
        lossy: bool = False,
    ) -> StringCommand:
        params = copy_params(source, target, tables, batch_size, checkpoint, lossy)
        return hostside_command("sqlite_copy_plan", params)


class UniqueConflicts(HostsideFact):
    """
    Every unique constraint and unique index of the target's tables checked against the SQLite
    data as the copy would convert it, with PostgreSQL's own semantics (expression and partial
    indexes included): ``checked`` lists them, ``conflicts`` the ones the data would break,
    with their first ``limit`` duplicate groups.

    .. code:: python

        from turnout.database import Database
        from turnout.facts.pgload import UniqueConflicts
        found = host.get_fact(
            UniqueConflicts, source="/srv/app/data/app.db",
            target=Database("PG_DATABASE_URL", "/srv/app/.env"),
        )
        # {"ok": True, "checked": [{"name": "uq_users_email", "table": "users", ...}],
        #  "conflicts": []}
    """

    def command(
        self,
        source: str,
        target: Database,
        tables: tuple[str, ...] | None = None,
        limit: int = 20,
        lossy: bool = False,
    ) -> StringCommand:
        params = {
            "sqlite_path": source,
            **target.params(),
            "tables": list(tables) if tables else None,
            "limit": limit,
            "lossy": lossy,
        }
        return hostside_command("sqlite_unique_conflicts", params)


class CopyStatus(HostsideFact):
    """
    How far the copy into ``target`` is: per table rows copied of the total, last key, rate and
    ETA while a copy runs (from its progress file), and the counts of the app's shadow-compare
    log (in all, and the reads that differed: ``compare_log_mismatch_column`` false) and
    dual-write failures when those tables exist in the target (else None).

    .. code:: python

        from turnout.database import Database
        from turnout.facts.pgload import CopyStatus
        status = host.get_fact(
            CopyStatus, target=Database("PG_DATABASE_URL", "/srv/app/.env"),
            progress_path="/var/lib/turnout/state/sqlite_to_pg.progress.json",
        )
        # {"ok": True, "state": "in_progress", "tables": [{"name": "users", "copied": 500,
        #   "total": 1000, "last_key": 500, "rate": 120000.0, "eta_s": 0.004, "done": False}],
        #  "compare_log": 12, "compare_log_mismatched": 1, "dual_write_failures": 0}
    """

    def command(
        self,
        target: Database,
        progress_path: str | None = None,
        checkpoint: str | None = None,
        compare_log_table: str = "db_compare_log",
        dual_write_failures_table: str = "dual_write_failures",
        compare_log_mismatch_column: str = "matched",
    ) -> StringCommand:
        params = {
            **target.params(),
            "progress_path": progress_path,
            "checkpoint": checkpoint,
            "compare_log_table": compare_log_table,
            "dual_write_failures_table": dual_write_failures_table,
            "compare_log_mismatch_column": compare_log_mismatch_column,
        }
        return hostside_command("copy_status", params)
