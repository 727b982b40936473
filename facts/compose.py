"""Facts about docker compose projects (C2: compose service state)."""

import json

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


class ComposeServices(FactBase[dict]):
    """
    The services of a compose project as they run, and the configuration hash each should run
    with. A service whose ``config_hash`` differs from ``expected[service]`` runs an outdated
    configuration; a service missing from ``services`` is not created.

    .. code:: python

        from turnout.facts.compose import ComposeServices
        compose = host.get_fact(
            ComposeServices, env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml", project="app",
        )
        # {"ok": True, "error": None,
        #  "services": {"api": {"state": "running", "health": "healthy", "config_hash": "…"}},
        #  "expected": {"api": "…", "db": "…", "worker": "…"}}
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
            "2>&1 || echo '#failed'",
        )

    def process(self, output: list[str]) -> dict:
        sections: dict[str, list[str]] = {}
        current = ""
        for line in output:
            if line in ("#ps", "#hash"):
                current = line[1:]
                sections[current] = []
            elif current:
                sections[current].append(line)
        for name, lines in sections.items():
            if "#failed" in lines:
                message = " ".join(line for line in lines if line != "#failed")[:500]
                return {
                    "ok": False,
                    "error": f"docker compose {name} failed: {message}",
                    "services": {},
                    "expected": {},
                }
        services = {}
        for line in sections.get("ps", []):
            line = line.strip()
            if not line.startswith(("{", "[")):
                continue
            entries = json.loads(line)
            for entry in entries if isinstance(entries, list) else [entries]:
                labels = parse_labels(entry.get("Labels", ""))
                services[entry["Service"]] = {
                    "state": entry.get("State", ""),
                    "health": entry.get("Health", ""),
                    "config_hash": labels.get("com.docker.compose.config-hash", ""),
                }
        expected = {}
        for line in sections.get("hash", []):
            service, _, digest = line.strip().partition(" ")
            if service and digest:
                expected[service] = digest
        return {"ok": True, "error": None, "services": services, "expected": expected}
