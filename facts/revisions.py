"""Facts about the pending Alembic revisions of the app (S2.10, issue 9 item 4): their offline SQL,
rendered by Alembic inside the app's compose service, and read-only checks of what that SQL needs
of the live data (answered by the host-side program, ``turnout/hostside/revisions.py``)."""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase, QuoteString, StringCommand

from turnout import hostapp
from turnout.database import Database, as_database
from turnout.dsn import redact
from turnout.facts.alembic import app_command
from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command

# Printed before the JSON answer, so Alembic's own log lines around it are ignored.
ANSWER_MARK = "#turnout-pending-sql "
# One Python run: the current revision(s) (``alembic current``), then each revision from there to
# ``target`` (oldest first) rendered on its own with ``alembic upgrade <down>:<rev> --sql``.
PENDING_SQL_SCRIPT = """
import io, json, re
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
ini, target, mark = %r, %r, %r
answer = {"revisions": []}
try:
    out = io.StringIO()
    command.current(Config(ini, stdout=out))
    current = []
    for line in out.getvalue().splitlines():
        match = re.match(r"^([0-9A-Za-z_]+)(?: \\([a-z]+\\))*\\s*$", line.strip())
        if match:
            current.append(match.group(1))
    answer["current"] = current
    script = ScriptDirectory.from_config(Config(ini))
    lower = tuple(current) if current else "base"
    found = list(script.iterate_revisions(target, lower))
    for revision in reversed(found):
        down = revision.down_revision
        item = {"revision": revision.revision, "down": down,
                "message": (revision.doc or "").strip()}
        if isinstance(down, (tuple, list)):
            item["error"] = "a merge revision (down revisions %%s) is not rendered" %% (down,)
        else:
            buffer = io.StringIO()
            span = "%%s:%%s" %% (down, revision.revision) if down else revision.revision
            try:
                command.upgrade(Config(ini, output_buffer=buffer, stdout=io.StringIO()),
                                span, sql=True)
                item["sql"] = buffer.getvalue()
            except BaseException as error:
                item["error"] = "%%s: %%s" %% (type(error).__name__, error)
        answer["revisions"].append(item)
except Exception as error:
    answer["error"] = "alembic failed: %%s: %%s" %% (type(error).__name__, error)
print(mark + json.dumps(answer))
"""


class PendingSql(FactBase[dict]):
    """
    The offline SQL of each revision still to apply, asked of Alembic inside the app's compose
    ``service`` (``exec -T`` while it runs, else ``run --rm --no-deps -T``): the current revision
    is read from the database, then every revision from there to ``target`` is rendered on its
    own (``alembic upgrade <down>:<rev> --sql``), oldest first. A revision Alembic cannot render
    offline (Python that needs a connection, ``op.get_bind()``) carries ``error`` instead of
    ``sql``; a merge revision is not rendered.

    .. code:: python

        from turnout.facts.revisions import PendingSql
        pending = host.get_fact(
            PendingSql, env_file="/srv/app/.env", compose_file="/srv/app/docker-compose.yml",
            project="app", docker_bin="docker", service="api", app_python="uv run python",
            running=True,
        )
        # {"ok": True, "error": None, "current": ["0002"],
        #  "revisions": [{"revision": "0003", "down": "0002", "message": "add notes",
        #                 "sql": "BEGIN;\\n…ALTER TABLE meters ADD COLUMN note …;\\n…"},
        #                {"revision": "0004", "down": "0003", "message": "backfill",
        #                 "error": "AttributeError: 'NoneType' object has no attribute …"}]}
    """

    def command(
        self,
        env_file: str,
        compose_file: str,
        project: str | None = None,
        docker_bin: str = "docker",
        service: str = "api",
        app_python: str = "uv run python",
        running: bool = True,
        target: str = "head",
        alembic_ini: str | None = None,
    ) -> StringCommand:
        alembic_ini = alembic_ini or hostapp.alembic_ini()
        script = PENDING_SQL_SCRIPT % (alembic_ini, target, ANSWER_MARK)
        inner = app_command(
            *shlex.split(app_python),
            "-c",
            script,
            service=service,
            running=running,
            env_file=env_file,
            compose_file=compose_file,
            project=project,
            docker_bin=docker_bin,
        )
        return StringCommand(inner, "2>&1", "||", "echo", QuoteString("#failed"))

    def process(self, output: list[str]) -> dict:
        answer = None
        for line in output:
            if line.startswith(ANSWER_MARK):
                answer = json.loads(line[len(ANSWER_MARK) :])
        if answer is None or answer.get("error"):
            problem = (answer or {}).get("error") or " ".join(
                line for line in output[-5:] if line != "#failed"
            )
            return {"ok": False, "error": redact(problem)[:400], "current": [], "revisions": []}
        for item in answer["revisions"]:
            if item.get("error"):
                item["error"] = redact(item["error"])[:400]
            if item.get("sql"):
                item["sql"] = redact(item["sql"])
        return {"ok": True, "error": None, **answer}


class PendingChecks(HostsideFact):
    """
    Read-only checks of the live data for the data-dependent statements of pending revisions
    (built by ``turnout.operations.revisions.plan_checks`` from ``turnout.sqlrisk``), and the size
    of the tables heavy statements rewrite or lock. Each check runs in its own ``READ ONLY``
    transaction under a ``statement_timeout`` of ``timeout_ms``; up to ``limit`` offending rows
    (primary key values, else ``ctid``) or duplicate groups are returned.

    .. code:: python

        from turnout.database import Database
        from turnout.facts.revisions import PendingChecks
        checks = host.get_fact(
            PendingChecks, database=Database("DATABASE_URL", "/srv/app/.env"),
            checks=[{"id": "0004:1", "kind": "not_null", "table": ["public", "meters"],
                     "column": "note"}],
            tables=[["public", "meters"]], limit=20, timeout_ms=5000,
        )
        # {"ok": True, "database": "app",
        #  "checks": {"0004:1": {"status": "fail", "count": 3, "found": ["1", "2", "3"],
        #                        "detail": "rows holding NULL"}},
        #  "tables": {"public.meters": {"exists": True, "total_bytes": 65536,
        #                               "estimated_rows": 3}}}
    """

    def command(
        self,
        database: Database | str,
        checks: list[dict],
        tables: list[list] | None = None,
        limit: int = 20,
        timeout_ms: int = 5000,
    ) -> StringCommand:
        params = {
            **as_database(database).params(),
            "checks": checks,
            "tables": tables or [],
            "limit": limit,
            "timeout_ms": timeout_ms,
        }
        return hostside_command("pending_checks", params)
