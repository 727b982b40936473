"""docker compose operations (C1: compose up). Every call passes the env file explicitly (S0.4)."""

import json
from collections.abc import Callable

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.facts.compose import ComposeServices, compose_command, project_where
from turnout.failures import require_fact, stop
from turnout.memo import observe
from turnout.operations.evidence import keep_text, plan_keep


def stale_services(
    compose: dict,
    services: list[str] | None,
    one_shot: tuple[str, ...] | list[str] = (),
    skip: tuple[str, ...] | list[str] = (),
) -> dict[str, str]:
    """Services that ``up`` must (re)create or start, each with the reason, from a
    ComposeServices fact. Compose decides what is outdated (its ``up --dry-run``; the config
    hash label only where the dry run is not available). A ``one_shot`` service (a migration or
    seeding job that runs to completion) that exited 0 with the current configuration is done,
    not stale; one that is still running is left to finish. ``skip`` services are never
    started (a migration service after a downgrade)."""
    wanted = [s for s in services or sorted(compose["expected"]) if s not in skip]
    stale = {}
    for service in wanted:
        if service not in compose["expected"]:
            raise OperationError(f"compose service {service!r} is not defined in the compose file")
        running = compose["services"].get(service)
        if running is None:
            stale[service] = "not created"
            continue
        if compose.get("plan") is not None:
            outdated = running.get("up_action") in ("Recreate", "Create", "Creating")
        else:
            outdated = running["config_hash"] != compose["expected"][service]
        if outdated:
            stale[service] = "configuration changed"
        elif service in one_shot:
            if running["state"] == "exited" and running.get("exit_code") not in (0, None):
                stale[service] = f"exited with {running['exit_code']}"
            elif running["state"] not in ("exited", "running"):
                stale[service] = running["state"] or "not run"
        elif running["state"] != "running":
            stale[service] = running["state"] or "not running"
        elif running["health"] not in ("", "healthy"):
            stale[service] = running["health"]
    return stale


@operation()
def up(
    env_file: str,
    compose_file: str,
    project: str | None = None,
    services: list[str] | None = None,
    docker_bin: str = "docker",
    wait_timeout: int = 180,
    stopped_before: tuple[str, ...] | list[str] = (),
    one_shot: tuple[str, ...] | list[str] = (),
    skip: tuple[str, ...] | list[str] = (),
):
    """
    Bring compose services up, and wait until they run (and are healthy, where they have a
    health check). Services already running with the current configuration are left alone, and
    a one-shot service that exited 0 with it is done, so a second run changes nothing. When only
    some services need work, only those are named, with ``--no-deps``: compose would otherwise
    start a finished one-shot dependency (the app's migrations) again.

    + env_file: the server-side ``.env`` passed as ``--env-file``
    + compose_file: the compose file passed as ``-f``
    + project: the compose project name (``-p``)
    + services: the services to bring up (default: all)
    + docker_bin: the docker client
    + wait_timeout: seconds ``--wait`` may take before the step fails
    + stopped_before: services an earlier step of the run stops (a freeze): while planning
      they count as stopped, so the plan says they will be started again
    + one_shot: services that run to completion (``migration_services``: migrations, seeding)
    + skip: services never started by this step (the migration services after a downgrade:
      they would upgrade straight back)

    .. code:: python

        from turnout.operations import compose
        compose.up(
            name="Compose up",
            env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml",
            project="app",
            one_shot=("prestart",),
        )
    """
    try:
        where = project_where(env_file, compose_file, project, docker_bin)
        compose = host.get_fact(ComposeServices, **where)
        if not compose["ok"]:
            raise OperationError(compose["error"])
        stale = stale_services(compose, services, one_shot, skip)
        if not host.state.is_executing:
            for service in stopped_before:
                if service not in stale and service in compose["expected"]:
                    running = (compose["services"].get(service) or {}).get("state")
                    if running == "running" and service not in skip:
                        stale[service] = "stopped by the freeze step first"
        wanted = [s for s in services or sorted(compose["expected"]) if s not in skip]
        if not stale:
            host.noop("compose services up to date: " + ", ".join(wanted))
            return
        left_alone = [s for s in wanted if s not in stale] + [
            s for s in skip if s in compose["expected"]
        ]
        plan = "Will bring up: " + ", ".join(f"{s} ({why})" for s, why in sorted(stale.items()))
        if left_alone:
            plan += "; left as they are (--no-deps): " + ", ".join(sorted(left_alone))
        host.log(plan)
        yield compose_command(
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            str(wait_timeout),
            *(["--no-deps", *sorted(stale)] if left_alone else (services or [])),
            **where,
        )
    except OperationError as error:
        yield from stop(error)


@operation()
def freeze(
    env_file: str,
    compose_file: str,
    project: str | None = None,
    services: tuple[str, ...] | list[str] = ("api", "worker"),
    docker_bin: str = "docker",
    stop_timeout: int = 30,
    unless: Callable[[], str | None] | None = None,
):
    """
    Stop the services that write (the app, its workers) so that nothing writes during a backup
    and restore (S0.2, S2.3). Services already stopped (or not created) are left alone, so a
    second run changes nothing; a service the compose file does not define is an error. The
    plan names each service and whether it runs now.

    + env_file / compose_file / project / docker_bin: the app's compose project
    + services: the writers to stop
    + stop_timeout: seconds each service has to stop before it is killed
    + unless: asked first; a reason it returns means the writers need not be stopped (a rerun
      of a runbook that completed, with nothing left to do: ``turnout.cutover``)

    .. code:: python

        from turnout.operations import compose
        compose.freeze(
            name="Freeze: stop the writers",
            env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml",
            project="app",
            services=("api", "worker"),
        )
    """
    try:
        where = project_where(env_file, compose_file, project, docker_bin)
        compose = require_fact(observe(ComposeServices, **where), "read the compose services")
        unknown = [s for s in services if s not in compose["expected"]]
        if unknown:
            raise OperationError(
                f"compose service(s) {', '.join(unknown)} of freeze_services are not defined in "
                f"{compose_file}; fix freeze_services"
            )
        states = {
            s: (compose["services"].get(s) or {}).get("state") or "not created" for s in services
        }
        running = [s for s in services if states[s] == "running"]
        reason = unless() if running and unless else None
        if reason:
            host.noop(f"writers left running: {reason}")
            if not host.state.is_executing:
                host.log(f"Writers left running: {reason}")
            return
        if not running:
            host.noop("writers already stopped: " + describe_states(states))
            return
        host.log("Will stop the writers: " + describe_states(states))
        yield compose_command("stop", "--timeout", str(stop_timeout), *running, **where)
    except OperationError as error:
        yield from stop(error)


def describe_states(states: dict[str, str]) -> str:
    """``api (running), worker (exited)``."""
    return ", ".join(f"{service} ({state})" for service, state in states.items())


@operation()
def record_state(
    path: str,
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
):
    """
    Keep the state of every compose service (state, health, configuration hash) as JSON in the
    evidence file ``path`` — the run's ``compose ps`` (S0.3). Unchanged content is not
    rewritten, so a rerun on an unchanged host changes nothing.

    .. code:: python

        from turnout.operations import compose
        compose.record_state(
            name="Record compose ps",
            path="/var/lib/turnout/evidence/cutover/20261124T120000Z/outputs/compose_ps.json",
            env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml",
        )
    """
    try:
        if not host.state.is_executing:
            yield from plan_keep(path, "the compose services' state")
            return
        where = project_where(env_file, compose_file, project, docker_bin)
        compose = require_fact(observe(ComposeServices, **where), "read the compose services")
        text = json.dumps(compose["services"], indent=2, sort_keys=True) + "\n"
        yield from keep_text(path, text)
    except OperationError as error:
        yield from stop(error)
