"""Facts about docker compose projects (C2: compose service state)."""

import json
import re

from pyinfra.api import FactBase, QuoteString, StringCommand


def compose_command(
    *args: str,
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
) -> StringCommand:
    """``docker compose --env-file <env_file> -f <compose_file> [-p <project>] <args…>``.

    The env file is always passed explicitly (S0.4): compose never guesses it from the cwd.
    """
    parts: list = [QuoteString(docker_bin), "compose", "--env-file", QuoteString(env_file)]
    parts += ["-f", QuoteString(compose_file)]
    if project:
        parts += ["-p", QuoteString(project)]
    parts += [QuoteString(arg) for arg in args]
    return StringCommand(*parts)


def project_where(
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
) -> dict:
    """A compose project as ``compose_command`` and the compose facts take it.

    >>> project_where("/srv/app/.env", "/srv/app/compose.yml", "app")["project"]
    'app'
    """
    return {
        "env_file": env_file,
        "compose_file": compose_file,
        "project": project,
        "docker_bin": docker_bin,
    }


def compose_exec_argv(
    service: str,
    env_file: str,
    compose_file: str,
    project: str | None = None,
    docker_bin: str = "docker",
) -> list[str]:
    """argv prefix running a program inside the running compose ``service`` with no terminal
    (``docker compose --env-file … -f … [-p …] exec -T <service>``), for the host-side program.

    >>> compose_exec_argv("db", "/srv/app/.env", "/srv/app/compose.yml", "app")[-3:]
    ['exec', '-T', 'db']
    """
    argv = [docker_bin, "compose", "--env-file", env_file, "-f", compose_file]
    if project:
        argv += ["-p", project]
    return [*argv, "exec", "-T", service]


def parse_labels(labels: str) -> dict[str, str]:
    pairs = (item.partition("=") for item in labels.split(",") if "=" in item)
    return {key: value for key, _, value in pairs}


# ``docker compose up --dry-run`` says, per container, what ``up`` would do to it:
# " DRY-RUN MODE -  Container app-api-1  Recreate". The first word said of a container decides.
DRY_RUN_RE = re.compile(r"DRY-RUN MODE -\s+Container\s+(?P<name>\S+)\s+(?P<action>\w+)")


def parse_dry_run(lines: list[str]) -> dict[str, str]:
    """Container name → the first action ``up --dry-run`` names for it.

    >>> parse_dry_run([" DRY-RUN MODE -  Container p-api-1  Recreate",
    ...                " DRY-RUN MODE -  Container p-api-1  Recreated"])
    {'p-api-1': 'Recreate'}
    """
    actions: dict[str, str] = {}
    for line in lines:
        match = DRY_RUN_RE.search(line)
        if match:
            actions.setdefault(match.group("name"), match.group("action"))
    return actions


class ComposeServices(FactBase[dict]):
    """
    The services of a compose project as they run, and what ``docker compose up`` would do to
    each, decided by compose itself (``up --dry-run --no-start``: ``Recreate`` is an outdated
    configuration; ``--no-start`` because the dry run of a full ``up`` waits forever on a
    one-shot service's ``service_completed_successfully`` that it never runs; whether a
    container runs is read from ``ps``). ``expected`` lists every service
    of the compose file with ``config --hash``; a service missing from ``services`` is not
    created. When the dry run is not available (compose before v2.14) ``plan`` is None and the
    configuration hash label is compared instead (which differs for a service with ``env_file:``
    on compose v2.40, so the dry run is preferred).

    .. code:: python

        from turnout.facts.compose import ComposeServices
        compose = host.get_fact(
            ComposeServices, env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml", project="app",
        )
        # {"ok": True, "error": None,
        #  "services": {"api": {"state": "running", "health": "healthy", "exit_code": 0,
        #                       "config_hash": "…", "container": "app-api-1",
        #                       "up_action": "Running"}},
        #  "expected": {"api": "…", "db": "…", "worker": "…"}, "plan": {"app-api-1": "Running"}}
    """

    def command(
        self,
        env_file: str,
        compose_file: str,
        project: str | None = None,
        docker_bin: str = "docker",
    ) -> StringCommand:
        where = {
            "env_file": env_file,
            "compose_file": compose_file,
            "project": project,
            "docker_bin": docker_bin,
        }
        return StringCommand(
            "echo '#ps';",
            compose_command("ps", "--all", "--format", "json", **where),
            "2>&1 || echo '#failed';",
            "echo '#hash';",
            compose_command("config", "--hash", "*", **where),
            "2>&1 || echo '#failed';",
            "echo '#dryrun';",
            compose_command("up", "--dry-run", "--no-start", **where),
            "2>&1 || echo '#failed'",
        )

    def process(self, output: list[str]) -> dict:
        sections: dict[str, list[str]] = {}
        current = ""
        for line in output:
            if line in ("#ps", "#hash", "#dryrun"):
                current = line[1:]
                sections[current] = []
            elif current:
                sections[current].append(line)
        for name in ("ps", "hash"):
            lines = sections.get(name, [])
            if "#failed" in lines:
                message = " ".join(line for line in lines if line != "#failed")[:500]
                return {
                    "ok": False,
                    "error": f"docker compose {name} failed: {message}",
                    "services": {},
                    "expected": {},
                    "plan": None,
                }
        dry_lines = sections.get("dryrun")
        plan = None if dry_lines is None or "#failed" in dry_lines else parse_dry_run(dry_lines)
        services = {}
        for line in sections.get("ps", []):
            line = line.strip()
            if not line.startswith(("{", "[")):
                continue
            entries = json.loads(line)
            for entry in entries if isinstance(entries, list) else [entries]:
                labels = parse_labels(entry.get("Labels", ""))
                container = entry.get("Name", "")
                services[entry["Service"]] = {
                    "state": entry.get("State", ""),
                    "health": entry.get("Health", ""),
                    "exit_code": entry.get("ExitCode"),
                    "config_hash": labels.get("com.docker.compose.config-hash", ""),
                    "container": container,
                    "up_action": (plan or {}).get(container),
                }
        expected = {}
        for line in sections.get("hash", []):
            service, _, digest = line.strip().partition(" ")
            if service and digest:
                expected[service] = digest
        return {"ok": True, "error": None, "services": services, "expected": expected,
                "plan": plan}
