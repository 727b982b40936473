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

from turnout import hostapp
from turnout.operations import evidence, http
from turnout.runbook import Preflight, start_runbook

run = start_runbook("app_up", Preflight(databases=()))
settings = run.settings

evidence.directory(name="Evidence directory", path=run.run_dir)

hostapp.start_writers(settings, name="Compose up")

http.health(
    name="Health",
    url=settings.base_url + settings.health_path,
    expect=settings.health_expect_map,
    retries=settings.health_retries,
    timeout=settings.http_timeout_s,
    record=run.output("health.json"),
)
