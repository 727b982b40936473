"""Bring the app up under compose and prove it answers (C1: compose up, health).

    pyinfra inventories/staging.py deploys/app_up.py --dry     # what would change
    pyinfra inventories/staging.py deploys/app_up.py           # do it

Steps, each idempotent (a second run on an unchanged host changes nothing when
``evidence_timestamp`` is pinned):

1. the evidence directory ``<evidence_root>/app_up/<timestamp>/`` (0700);
2. ``docker compose --env-file <env_file> -f <compose_file> up --detach --wait`` for services that
   are not running with the current configuration;
3. the health endpoint ``<base_url><health_path>`` answers 200 with ``status: ok`` (and the keys of
   ``health_expect``); the answer is kept in ``outputs/health.json``.
"""

from pyinfra import host, state

from turnout.evidence import evidence_dir, run_timestamp
from turnout.operations import compose, evidence, http
from turnout.settings import load_settings

settings = load_settings(host.data)
run_dir = evidence_dir(settings.evidence_root, "app_up", run_timestamp(settings, state))

evidence.directory(
    name="Evidence directory",
    path=run_dir,
    python=settings.hostside_python,
)

compose.up(
    name="Compose up",
    env_file=settings.env_file_path,
    compose_file=settings.compose_file_path,
    project=settings.compose_project,
    docker_bin=settings.docker_bin,
)

http.health(
    name="Health",
    url=settings.base_url + settings.health_path,
    expect=settings.health_expect_map,
    retries=settings.health_retries,
    timeout=settings.http_timeout_s,
    record=f"{run_dir}/outputs/health.json",
    python=settings.hostside_python,
)
