"""docker compose operations (C1: compose up). Every call passes the env file explicitly (S0.4)."""

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.facts.compose import ComposeServices, compose_command
from turnout.failures import stop


def stale_services(compose: dict, services: list[str] | None) -> dict[str, str]:
    """Services that ``up`` must (re)create, each with the reason, from a ComposeServices fact."""
    wanted = services or sorted(compose["expected"])
    stale = {}
    for service in wanted:
        if service not in compose["expected"]:
            raise OperationError(f"compose service {service!r} is not defined in the compose file")
        running = compose["services"].get(service)
        if running is None:
            stale[service] = "not created"
        elif running["state"] != "running":
            stale[service] = running["state"] or "not running"
        elif running["config_hash"] != compose["expected"][service]:
            stale[service] = "configuration changed"
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
):
    """
    Bring compose services up, and wait until they run (and are healthy, where they have a
    health check). Services already running with the current configuration are left alone, so a
    second run changes nothing.

    + env_file: the server-side ``.env`` passed as ``--env-file``
    + compose_file: the compose file passed as ``-f``
    + project: the compose project name (``-p``)
    + services: the services to bring up (default: all)
    + docker_bin: the docker client
    + wait_timeout: seconds ``--wait`` may take before the step fails

    .. code:: python

        from turnout.operations import compose
        compose.up(
            name="Compose up",
            env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml",
            project="app",
        )
    """
    try:
        where = {
            "env_file": env_file,
            "compose_file": compose_file,
            "project": project,
            "docker_bin": docker_bin,
        }
        compose = host.get_fact(ComposeServices, **where)
        if not compose["ok"]:
            raise OperationError(compose["error"])
        stale = stale_services(compose, services)
        if not stale:
            host.noop(
                "compose services running with the current configuration: "
                + ", ".join(services or sorted(compose["expected"]))
            )
            return
        host.log("Will bring up: " + ", ".join(f"{s} ({why})" for s, why in sorted(stale.items())))
        yield compose_command(
            "up",
            "--detach",
            "--wait",
            "--wait-timeout",
            str(wait_timeout),
            *(services or []),
            **where,
        )
    except OperationError as error:
        yield from stop(error)
