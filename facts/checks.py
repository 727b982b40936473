"""Facts of a schema release (SPEC S2.4, S2.10): read-only pre-checks and the duplicates gate,
answered on the host (``turnout/hostside/checks.py``) with the DSN the host holds.

Both run in a ``READ ONLY`` transaction under ``statement_timeout``, so reading them while
planning (``--dry``) is safe: the plan shows each pre-check's current result.
"""

from pyinfra.api import StringCommand

from turnout.database import Database, SqliteDatabase, as_database
from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


class Prechecks(HostsideFact):
    """
    Each named pre-check (settings syntax ``[name=]kind:table(…)``: ``unique``, ``duplicates``,
    ``min_rows``; see ``turnout.hostside.checks.parse_check``) measured in one read-only
    transaction and judged: name, expectation, result, ``passed`` and the offending values (up
    to ``limit`` duplicate groups, with their ids).

    .. code:: python

        from turnout.facts.checks import Prechecks
        report = host.get_fact(
            Prechecks, database=Database("DATABASE_URL", "/srv/app/.env"),
            checks=["active_admin=min_rows:users(role=admin, is_active=true)>=1",
                    "no_duplicate_emails=duplicates:users(lower(email))"],
            limit=20,
        )
        # {"ok": True, "database": "app", "read_only": "on", "passed": False, "checks": [
        #   {"name": "active_admin", "kind": "min_rows", "result": "1 row(s)", "passed": True,
        #    "expectation": "users(role=admin, is_active=true): at least 1 row(s)", …},
        #   {"name": "no_duplicate_emails", "result": "1 duplicate group(s)", "passed": False,
        #    "offending": [{"values": {"lower(email)": "ann@x.test"}, "count": 2,
        #                   "ids": [3, 9]}], …}]}
    """

    def command(
        self,
        database: Database | SqliteDatabase | str,
        checks: list[str] | tuple[str, ...] = (),
        limit: int = 20,
        timeout_ms: int = 5000,
    ) -> StringCommand:
        params = {
            **as_database(database).params(),
            "checks": list(checks),
            "limit": limit,
            "timeout_ms": timeout_ms,
        }
        return hostside_command(
            "sqlite_prechecks" if "sqlite_path" in params else "prechecks", params
        )


class DuplicateGroups(HostsideFact):
    """
    The duplicates gate of a unique constraint a release adds: the groups of ``table(columns)``
    holding more than one row (rows with a NULL key column are left out, as a unique constraint
    leaves them), their number, the extra rows, up to ``limit`` groups with count and ids, and
    whether ``constraint`` already exists on the table (as a constraint or a unique index).

    .. code:: python

        from turnout.facts.checks import DuplicateGroups
        gate = host.get_fact(
            DuplicateGroups, database=Database("DATABASE_URL", "/srv/app/.env"),
            table="meters", columns=["unit_id", "kind", "slot"],
            constraint="uq_meter_unit_kind_slot", limit=20,
        )
        # {"ok": True, "database": "app", "table": "public.meters", "key": "id", "rows": 203,
        #  "constraint_present": None, "groups_count": 3, "extra_rows": 3, "groups": [
        #    {"values": {"unit_id": 1, "kind": "electricity", "slot": 0}, "count": 2,
        #     "ids": [1, 201]}, …]}
    """

    def command(
        self,
        database: Database | SqliteDatabase | str,
        table: str,
        columns: list[str] | tuple[str, ...],
        constraint: str | None = None,
        limit: int = 20,
        timeout_ms: int = 5000,
    ) -> StringCommand:
        params = {
            **as_database(database).params(),
            "table": table,
            "columns": list(columns),
            "constraint": constraint,
            "limit": limit,
            "timeout_ms": timeout_ms,
        }
        action = "sqlite_duplicate_groups" if "sqlite_path" in params else "duplicate_groups"
        return hostside_command(action, params)
