"""Parsing of ``docker compose ps`` / ``config --hash`` / ``up --dry-run`` and the decision of what
``up`` must do."""

import json

import pytest
from pyinfra.api.exceptions import OperationError

from turnout.facts.compose import ComposeServices, compose_command, parse_dry_run
from turnout.operations.compose import stale_services

PS_LINE = (
    '{"Service":"api","State":"running","Health":"healthy",'
    '"Labels":"com.docker.compose.config-hash=abc,com.docker.compose.project=p"}'
)


def parse(lines: list[str]) -> dict:
    return ComposeServices().process(lines)


def test_parses_json_lines_and_hashes() -> None:
    fact = parse(["#ps", PS_LINE, "#hash", "api abc", "db def"])
    assert fact["ok"] is True
    assert fact["services"] == {
        "api": {
            "state": "running",
            "health": "healthy",
            "exit_code": None,
            "config_hash": "abc",
            "container": "",
            "up_action": None,
        }
    }
    assert fact["expected"] == {"api": "abc", "db": "def"}
    assert fact["plan"] is None  # no dry run: the hash label decides


def test_failure_is_reported_not_raised() -> None:
    fact = parse(["#ps", "no such file", "#failed", "#hash", "#failed"])
    assert fact["ok"] is False and "no such file" in fact["error"]


def test_stale_services_reasons() -> None:
    fact = parse(["#ps", PS_LINE, "#hash", "api abc", "db def"])
    assert stale_services(fact, None) == {"db": "not created"}
    fact["expected"]["api"] = "changed"
    assert stale_services(fact, ["api"]) == {"api": "configuration changed"}
    with pytest.raises(OperationError, match="not defined"):
        stale_services(fact, ["nope"])


def ps(service: str, state: str, exit_code: int = 0, label: str = "h") -> str:
    return json.dumps(
        {
            "Service": service,
            "Name": f"p-{service}-1",
            "State": state,
            "Health": "",
            "ExitCode": exit_code,
            "Labels": f"com.docker.compose.config-hash={label}",
        }
    )


# What compose v2.40 prints for `up --dry-run --no-start` of a project whose backend takes its
# settings with `env_file:` (its config-hash label never equals `config --hash`), a finished
# one-shot prestart and a running db: compose itself would recreate nothing.
DRY_RUN_CURRENT = [
    " DRY-RUN MODE -  Container p-db-1  Running",
    " DRY-RUN MODE -  Container p-backend-1  Running",
    " DRY-RUN MODE -  Container p-prestart-1  Starting",
    " DRY-RUN MODE -  Container p-prestart-1  Started",
    " DRY-RUN MODE -  Container p-prestart-1  Exited",
]


def itemsapp_fact(dry_run: list[str], prestart_exit: int = 0) -> dict:
    return parse(
        [
            "#ps",
            ps("db", "running"),
            ps("backend", "running", label="label-hash"),
            ps("prestart", "exited", exit_code=prestart_exit),
            "#hash",
            "backend config-hash-differs",
            "db h",
            "prestart h",
            "#dryrun",
            *dry_run,
        ]
    )


def test_compose_decides_staleness_not_the_hash_label() -> None:
    fact = itemsapp_fact(DRY_RUN_CURRENT)
    assert fact["plan"]["p-backend-1"] == "Running"
    assert stale_services(fact, None, one_shot=("prestart",)) == {}


def test_a_one_shot_service_that_failed_or_is_outdated_is_stale() -> None:
    assert stale_services(itemsapp_fact(DRY_RUN_CURRENT, 3), None, one_shot=("prestart",)) == {
        "prestart": "exited with 3"
    }
    recreate = [line.replace("prestart-1  Starting", "prestart-1  Recreate") for line in
                DRY_RUN_CURRENT]
    assert stale_services(itemsapp_fact(recreate), None, one_shot=("prestart",)) == {
        "prestart": "configuration changed"
    }
    # Not named as one-shot, an exited service is simply not running.
    assert stale_services(itemsapp_fact(DRY_RUN_CURRENT), None) == {"prestart": "exited"}


def test_a_changed_configuration_is_what_compose_would_recreate() -> None:
    changed = [line.replace("backend-1  Running", "backend-1  Recreate") for line in
               DRY_RUN_CURRENT]
    fact = itemsapp_fact(changed)
    assert stale_services(fact, None, one_shot=("prestart",)) == {
        "backend": "configuration changed"
    }


def test_skipped_services_are_never_stale() -> None:
    fact = itemsapp_fact(DRY_RUN_CURRENT, 1)
    assert stale_services(fact, None, one_shot=("prestart",), skip=("prestart",)) == {}


def test_dry_run_lines() -> None:
    assert parse_dry_run(DRY_RUN_CURRENT) == {
        "p-db-1": "Running",
        "p-backend-1": "Running",
        "p-prestart-1": "Starting",
    }


def test_compose_command_always_passes_env_file() -> None:
    command = compose_command(
        "up", "-d", env_file="/srv/my app/.env", compose_file="/srv/app/c.yml", project="p"
    ).get_raw_value()
    assert command == "docker compose --env-file '/srv/my app/.env' -f /srv/app/c.yml -p p up -d"
