"""The app's schema migrations with Alembic, run inside the app's compose service (C1: Alembic
upgrade; S0.4, S2.5, S2.6). Every compose call passes the env file explicitly."""

from __future__ import annotations

import json
import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout import hostapp
from turnout.database import Database
from turnout.facts.alembic import AlembicDowngradePath, AlembicStatus, app_argv
from turnout.facts.compose import ComposeServices, project_where
from turnout.facts.evidence import FileDigest
from turnout.facts.postgres import AlembicRevision
from turnout.failures import require_fact, stop
from turnout.memo import observe
from turnout.operations.evidence import keep_text, plan_keep
from turnout.remote import hostside_progress_command


def service_running(where: dict, service: str) -> bool:
    """Whether compose ``service`` runs now (then Alembic runs in it; else in a one-off).
    Always true on a host that runs the app itself (no compose to ask)."""
    if hostapp.runs_on_host():
        return True
    compose = require_fact(observe(ComposeServices, **where), "read the compose services")
    return compose["services"].get(service, {}).get("state") == "running"


def alembic_status(where: dict, service: str, app_python: str) -> dict:
    """The ``AlembicStatus`` fact (measured once per phase), or an ``OperationError``."""
    running = service_running(where, service)
    return require_fact(
        observe(AlembicStatus, **where, service=service, app_python=app_python, running=running),
        f"ask Alembic in compose service {service}",
    )


def pending_until(pending: list[dict], target: str) -> list[dict] | None:
    """The pending revisions up to ``target`` (all of them for ``head``), oldest first; None
    when ``target`` is not among them.

    >>> pending_until([{"revision": "3"}, {"revision": "4"}], "3")
    [{'revision': '3'}]
    """
    if target == "head":
        return pending
    ids = [p["revision"] for p in pending]
    return pending[: ids.index(target) + 1] if target in ids else None


def describe_pending(pending: list[dict]) -> str:
    """``0003 (add notes), 0004 (…)``."""
    return ", ".join(f"{p['revision']} ({p['message']})" for p in pending)


def migration_command(
    argv: list[str],
    lock: Database | None,
    log_path: str | None,
    hint: str | None = None,
    env_from: dict[str, str] | None = None,
):
    """The migration ``argv`` run by the host program (its failure one line naming ``hint``),
    holding turnout's advisory lock on the database ``lock`` when there is one
    (``turnout/hostside/schema.py``); ``env_from`` names host variables read there for it."""
    params = {**(lock.params() if lock else {}), "argv": argv, "log_path": log_path}
    if env_from:
        params["env_from"] = env_from
    return hostside_progress_command("locked_migration", {**params, "hint": hint})


def alembic_argv(app_python: str, *args: str) -> list[str]:
    """``<app_python> -m alembic -c <alembic_ini> <args…>`` (``alembic_ini`` of the host).

    >>> alembic_argv("python", "upgrade", "head")
    ['python', '-m', 'alembic', '-c', 'alembic.ini', 'upgrade', 'head']
    """
    return [*shlex.split(app_python), "-m", "alembic", "-c", hostapp.alembic_ini(), *args]


@operation()
def upgrade(
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
    service: str = "api",
    app_python: str = "uv run python",
    after_restore: bool = False,
    lock: Database | None = None,
    log_path: str | None = None,
    target: str = "head",
    restore_hint: str | None = None,
):
    """
    ``alembic upgrade head`` (or ``target``) inside the app's compose ``service`` (``exec``
    while it runs, else a one-off ``run --rm --no-deps`` container), with ``app_python``
    (default ``uv run python``).
    A database already at the head changes nothing; the plan lists the pending revisions by id
    and message (asked of Alembic against the live revision, not ``--sql`` blind mode).

    + env_file / compose_file / project / docker_bin: the app's compose project
    + service: the compose service whose image has the app and its Alembic configuration
    + app_python: the Python with the app's dependencies inside that service
    + after_restore: an earlier step restores the database: the plan says the revision is
      asked again after it (the restored dump's revision is not known before)
    + lock: the app's database: the migration runs holding turnout's PostgreSQL advisory lock
      on it, so two hosts never migrate one database at once (None: no lock, e.g. SQLite)
    + log_path: log file of the migration's output (with ``lock``)
    + target: the revision to upgrade to (default ``head``)
    + restore_hint: the command restoring the backup, named when the migration fails (with
      ``lock``)

    .. code:: python

        from turnout.operations import alembic
        alembic.upgrade(
            name="Migrate",
            env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml",
            project="app",
            app_python="uv run python",
        )
    """
    try:
        where = project_where(env_file, compose_file, project, docker_bin)
        status = alembic_status(where, service, app_python)
        pending = pending_until(status["pending"], target)
        if target != "head" and status["current"] == [target]:
            host.noop(f"database at the target revision {target}")
            return
        if target != "head" and pending is None:
            raise OperationError(
                f"revision {target} is not pending above {', '.join(status['current'])}; set "
                "target_revision to one of: "
                + (", ".join(p["revision"] for p in status["pending"]) or "none (at head)")
            )
        if target == "head" and status["at_head"]:
            if after_restore and not host.state.is_executing:
                host.log(
                    f"Will ask Alembic again after the restore: the database is at the head "
                    f"{', '.join(status['heads'])} now, the restored dump may be behind it"
                )
            host.noop(f"database at the Alembic head {', '.join(status['heads'])}")
            return
        current = ", ".join(status["current"]) or "<base>"
        goal = ", ".join(status["heads"]) if target == "head" else target
        host.log(
            f"Will upgrade the database from {current} to {goal}: "
            f"{len(pending)} revision(s) {describe_pending(pending)}"
        )
        argv = app_argv(
            *alembic_argv(app_python, "upgrade", target),
            service=service,
            running=service_running(where, service),
            **where,
        )
        yield migration_command(argv, lock, log_path, restore_hint)
    except OperationError as error:
        yield from stop(error)


@operation()
def create_schema(
    database: Database,
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
    service: str = "api",
    app_python: str = "uv run python",
    url_variable: str = "DATABASE_URL",
    log_path: str | None = None,
):
    """
    Phase 0 of a move to a new database: the app's own Alembic builds the schema on
    ``database`` (``alembic upgrade head`` inside the app's compose ``service``, with the
    service's ``url_variable`` pointing at ``database`` for that one command: ``exec -e
    DATABASE_URL``, its value read on the host from the variable ``database`` names, never in
    argv). A database already at the app's Alembic head changes nothing. Holds turnout's
    advisory lock on ``database`` while it runs.

    + database: the new database (e.g. ``Database("PG_DATABASE_URL", "/srv/app/.env")``)
    + env_file / compose_file / project / docker_bin / service / app_python: as ``upgrade``
    + url_variable: the variable the app reads its database URL from
    + log_path: log file of Alembic's output

    .. code:: python

        from turnout.database import Database
        from turnout.operations import alembic
        alembic.create_schema(
            name="Schema on PostgreSQL (Alembic)",
            database=Database("PG_DATABASE_URL", "/srv/app/.env"),
            env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml",
        )
    """
    try:
        where = project_where(env_file, compose_file, project, docker_bin)
        heads = alembic_status(where, service, app_python)["heads"]
        found = require_fact(
            observe(AlembicRevision, database=database), f"read the revision of {database}"
        )
        current = found["revisions"]
        if sorted(current) == sorted(heads):
            host.noop(f"{database} is at the app's Alembic head {', '.join(heads)}")
            return
        host.log(
            f"Will build the schema on {database} with the app's Alembic (upgrade head in "
            f"compose service {service}): from {', '.join(current) or 'an empty database'} "
            f"to {', '.join(heads)}"
        )
        argv = app_argv(
            *alembic_argv(app_python, "upgrade", "head"),
            service=service,
            running=service_running(where, service),
            env_names=(url_variable,),
            **where,
        )
        yield migration_command(
            argv, database, log_path, env_from={url_variable: database.dsn_env}
        )
    except OperationError as error:
        yield from stop(error)


@operation()
def downgrade(
    revision: str,
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
    service: str = "api",
    app_python: str = "uv run python",
    lock: Database | None = None,
    log_path: str | None = None,
    restore_hint: str | None = None,
):
    """
    ``alembic downgrade <revision>`` inside the app's compose ``service``: the rollback of a
    schema release when its migrations are reversible (S2.6). A database already at
    ``revision`` changes nothing. Every revision on the way down must have a ``downgrade()``
    that does something (read in the app's service: ``AlembicDowngradePath``); otherwise the
    downgrade is refused, while planning already, naming the revision and ``restore_hint``.
    ``revision`` may be ``-1`` (one step down).

    + revision: the revision to go back to (the one recorded before the release)
    + lock / log_path: as ``upgrade``
    + restore_hint: what to run instead when a revision on the way down is irreversible (the
      refusal names it; the plan already refuses)

    .. code:: python

        from turnout.operations import alembic
        alembic.downgrade(
            name="Downgrade",
            revision="0002",
            env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml",
        )
    """
    try:
        where = project_where(env_file, compose_file, project, docker_bin)
        status = alembic_status(where, service, app_python)
        if status["current"] == [revision]:
            host.noop(f"database already at Alembic revision {revision}")
            return
        if len(status["current"]) != 1:
            raise OperationError(
                f"the database is at {', '.join(status['current']) or 'no revision'}: one "
                "current revision is needed to walk down from"
            )
        running = service_running(where, service)
        path = require_fact(
            observe(
                AlembicDowngradePath,
                current=status["current"][0],
                target=revision,
                **where,
                service=service,
                app_python=app_python,
                running=running,
            ),
            f"read the downgrade path to {revision}",
        )
        blocked = [step for step in path["steps"] if not step["reversible"]]
        if blocked:
            first = blocked[0]
            raise OperationError(
                f"cannot downgrade to {revision}: revision {first['revision']} "
                f"({first['message']}) is irreversible ({first['why']}); restore the backup "
                f"instead{': ' + restore_hint if restore_hint else ''}"
            )
        undone = ", ".join(f"{step['revision']} ({step['message']})" for step in path["steps"])
        host.log(
            f"Will downgrade the database from {status['current'][0]} to {path['target']}, "
            f"undoing {undone}; every one has a downgrade()"
        )
        argv = app_argv(
            *alembic_argv(app_python, "downgrade", revision),
            service=service,
            running=running,
            **where,
        )
        yield migration_command(argv, lock, log_path)
    except OperationError as error:
        yield from stop(error)


@operation()
def record(
    path: str,
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
    service: str = "api",
    app_python: str = "uv run python",
    once: bool = False,
    expect: str | None = None,
):
    """
    Keep the Alembic status (current revision, heads, pending revisions) as JSON in the evidence
    file ``path`` (0600): the revision before a migration, or after it. With ``once``, a file
    already there is kept as it is (the "before" of a run stays the first one measured).
    With ``expect`` (a revision, or ``head``) the database must be there: the record is kept as
    measured and the step fails when it is not (after a downgrade, something may have upgraded
    it straight back: the app's migration service, or an app that migrates on start).

    .. code:: python

        from turnout.operations import alembic
        alembic.record(
            name="Alembic revision before",
            path="/var/lib/turnout/evidence/cutover/20261124T120000Z/outputs/alembic_before.json",
            env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml",
            once=True,
        )
    """
    try:
        if once and require_fact(observe(FileDigest, path=path), f"read {path}")["exists"]:
            host.noop(f"{path} is kept from the first measurement of this run")
            return
        if not host.state.is_executing:
            yield from plan_keep(path, "the Alembic revision")
            return
        where = project_where(env_file, compose_file, project, docker_bin)
        status = alembic_status(where, service, app_python)
        text = json.dumps(
            {
                k: status.get(k)
                for k in ("current", "heads", "pending", "at_head", "history_verbose")
            },
            indent=2,
            sort_keys=True,
        )
        yield from keep_text(path, text + "\n")
        if expect:
            current = status.get("current") or []
            reached = status.get("at_head") if expect == "head" else current == [expect]
            if not reached:
                raise OperationError(
                    f"the database is at {', '.join(current) or 'no revision'} at the end of the "
                    f"run, not {expect}: something migrated it after this run's own step (a "
                    "one-shot migration service not named in migration_services, or an app that "
                    f"migrates on start); the measurement is in {path}"
                )
    except OperationError as error:
        yield from stop(error)
