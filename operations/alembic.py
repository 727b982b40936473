"""The app's schema migrations with Alembic, run inside the app's compose service (C1: Alembic
upgrade; S0.4, S2.5, S2.6). Every compose call passes the env file explicitly."""

from __future__ import annotations

import json
import shlex

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.facts.alembic import AlembicStatus, app_command
from turnout.facts.compose import ComposeServices, project_where
from turnout.facts.evidence import FileDigest
from turnout.failures import require_fact, stop
from turnout.memo import observe
from turnout.operations.evidence import keep_text, plan_keep


def service_running(where: dict, service: str) -> bool:
    """Whether compose ``service`` runs now (then Alembic runs in it; else in a one-off)."""
    compose = require_fact(observe(ComposeServices, **where), "read the compose services")
    return compose["services"].get(service, {}).get("state") == "running"


def alembic_status(where: dict, service: str, app_python: str) -> dict:
    """The ``AlembicStatus`` fact (measured once per phase), or an ``OperationError``."""
    running = service_running(where, service)
    return require_fact(
        observe(AlembicStatus, **where, service=service, app_python=app_python, running=running),
        f"ask Alembic in compose service {service}",
    )


def describe_pending(pending: list[dict]) -> str:
    """``0003 (add notes), 0004 (…)``."""
    return ", ".join(f"{p['revision']} ({p['message']})" for p in pending)


def alembic_argv(app_python: str, *args: str) -> list[str]:
    return [*shlex.split(app_python), "-m", "alembic", *args]


@operation()
def upgrade(
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
    service: str = "api",
    app_python: str = "uv run python",
    after_restore: bool = False,
):
    """
    ``alembic upgrade head`` inside the app's compose ``service`` (``exec`` while it runs, else a
    one-off ``run --rm --no-deps`` container), with ``app_python`` (default ``uv run python``).
    A database already at the head changes nothing; the plan lists the pending revisions by id
    and message (asked of Alembic against the live revision, not ``--sql`` blind mode).

    + env_file / compose_file / project / docker_bin: the app's compose project
    + service: the compose service whose image has the app and its Alembic configuration
    + app_python: the Python with the app's dependencies inside that service
    + after_restore: an earlier step restores the database: the plan says the revision is
      asked again after it (the restored dump's revision is not known before)

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
        if status["at_head"]:
            if after_restore and not host.state.is_executing:
                host.log(
                    f"Will ask Alembic again after the restore: the database is at the head "
                    f"{', '.join(status['heads'])} now, the restored dump may be behind it"
                )
            host.noop(f"database at the Alembic head {', '.join(status['heads'])}")
            return
        current = ", ".join(status["current"]) or "<base>"
        host.log(
            f"Will upgrade the database from {current} to {', '.join(status['heads'])}: "
            f"{len(status['pending'])} revision(s) {describe_pending(status['pending'])}"
        )
        yield app_command(
            *alembic_argv(app_python, "upgrade", "head"),
            service=service,
            running=service_running(where, service),
            **where,
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
):
    """
    ``alembic downgrade <revision>`` inside the app's compose ``service``: the rollback of a
    schema release when its migrations are reversible (S2.6). A database already at
    ``revision`` changes nothing.

    + revision: the revision to go back to (the one recorded before the release)

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
        host.log(f"Will downgrade the database from {', '.join(status['current'])} to {revision}")
        yield app_command(
            *alembic_argv(app_python, "downgrade", revision),
            service=service,
            running=service_running(where, service),
            **where,
        )
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
):
    """
    Keep the Alembic status (current revision, heads, pending revisions) as JSON in the evidence
    file ``path`` (0600): the revision before a migration, or after it. With ``once``, a file
    already there is kept as it is (the "before" of a run stays the first one measured).

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
            {k: status[k] for k in ("current", "heads", "pending", "at_head")},
            indent=2,
            sort_keys=True,
        )
        yield from keep_text(path, text + "\n")
    except OperationError as error:
        yield from stop(error)
