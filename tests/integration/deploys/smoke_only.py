"""Health and smoke-core only (tests): an app already running, checked by settings alone.

    TURNOUT_SMOKE_EMAIL=… TURNOUT_SMOKE_PASSWORD=… \\
        pyinfra @local tests/integration/deploys/smoke_only.py --data evidence_root=/tmp/ev

1. the evidence directory ``<evidence_root>/smoke/<timestamp>/``;
2. the health endpoint (``health_status``, ``health_body``, ``health_expect``) into
   ``outputs/health.json``;
3. smoke-core from the control machine into ``outputs/smoke.json``.
"""

from turnout.operations import evidence, http, smoke
from turnout.runbook import Preflight, start_runbook
from turnout.smoke import core_arguments, smoke_credentials

run = start_runbook("smoke", Preflight(databases=()))
settings = run.settings
if settings.smoke:
    smoke_credentials()  # missing credentials: one line, before any step

evidence.directory(name="Evidence directory", path=run.run_dir)

if settings.health:
    http.health(
        name="Health",
        url=settings.base_url + settings.health_path,
        expect=settings.health_expect_map,
        retries=settings.health_retries,
        timeout=settings.http_timeout_s,
        deadline=30,
        record=run.output("health.json"),
        status=settings.health_status,
        body=settings.health_body,
    )

if settings.smoke:
    smoke.core(
        name="Smoke: core",
        **core_arguments(settings),
        record=run.output("smoke.json"),
    )
