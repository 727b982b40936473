"""The phases of the SQLite → PostgreSQL move (SPEC S3.5-S3.7): rewrite the app's server-side
``.env`` keys, recreate the services that read them, accept the cutover, time the rollback.

The host does the rewriting (``turnout/hostside/envedit.py``): only the keys asked for change,
every other line is kept byte for byte, the file is replaced atomically with its mode and owner,
the old one kept as a backup first. Plans and records show the diff redacted.
"""

import calendar
import json
import time
from collections.abc import Sequence

from pyinfra import host
from pyinfra.api import operation
from pyinfra.api.exceptions import OperationError

from turnout.database import Database
from turnout.facts.compose import ComposeServices, compose_command, project_where
from turnout.facts.envphase import EnvPhasePlan
from turnout.facts.postgres import Constraints
from turnout.failures import fail_command, require_fact, stop
from turnout.guard import destructive
from turnout.memo import observe
from turnout.operations.compose import stale_services
from turnout.operations.evidence import keep_text, plan_keep
from turnout.phases import missing_unique
from turnout.remote import hostside_command
from turnout.runrecord import steps_so_far


def describe_rewrite(plan: dict) -> str:
    """The ``Will rewrite …`` line of a plan, with its redacted diff below it."""
    changes = ", ".join(
        f"{key} {plan['current'].get(key)!r} -> {plan['wanted'].get(key)!r}"
        for key in plan["changed_keys"]
    )
    notes = "".join(f"; {note}" for note in plan["notes"])
    return (
        f"Will rewrite {plan['env_file']} (mode {plan['mode']}, owner {plan['owner']}:"
        f"{plan['group']} kept): {changes}{notes}\n{plan['diff'].rstrip()}"
    )


@destructive(
    "the rollback to SQLite (writes made to PostgreSQL since the switch stay behind)",
    when=lambda kw: bool(kw.get("discards_writes")),
)
@operation()
def apply(
    env_file: str,
    values: dict[str, str],
    backup_path: str,
    record: str | None = None,
    discards_writes: bool = False,
):
    """
    Set ``values`` in the server-side ``.env`` (``{key: compose template}``: ``${NAME}``
    expands, ``$$`` is a literal ``$``). A file that already has them changes nothing.
    Otherwise the plan shows the redacted diff; the host copies the old file to
    ``backup_path`` (0600, never overwritten), rewrites only those keys' values (a missing key
    is appended; every other line, comment and quoting kept byte for byte) atomically with the
    file's mode and owner, and checks it reads back as intended with compose's rules.

    + env_file: the server-side ``.env``
    + values: the keys to set; a value referring to a variable the file lacks is refused
    + backup_path: where the old file is kept (it holds the file's secrets: keep it beside the
      ``.env``, not in shareable evidence)
    + record: a redacted JSON record of the change (changed keys, diff, backup, its sha256)
    + discards_writes: the switch leaves writes behind (the rollback): declared destructive,
      refused unless released

    .. code:: python

        from turnout.operations import envphase
        envphase.apply(
            name="Phase shadow: .env",
            env_file="/srv/app/.env",
            values={"DATABASE_URL": "${PG_DATABASE_URL}", "DB_READ_MODE": "shadow_compare"},
            backup_path="/srv/app/.env.before-shadow-20261125T060000Z",
        )
    """
    try:
        plan = require_fact(
            observe(EnvPhasePlan, env_file=env_file, values=values),
            f"plan the rewrite of {env_file}",
        )
        if not plan["changed_keys"]:
            host.noop(f"{env_file} already has " + ", ".join(sorted(values)) + " as asked")
            return
        host.log(describe_rewrite(plan))
        params = {
            "env_file": env_file,
            "values": values,
            "backup_path": backup_path,
            "record": record,
        }
        yield hostside_command("env_rewrite", params)
    except OperationError as error:
        yield from stop(error)


@operation()
def recreate(
    env_file: str,
    compose_file: str,
    project: str | None = None,
    services: Sequence[str] = ("api", "worker"),
    docker_bin: str = "docker",
    wait_timeout: int = 180,
    env_changes: Sequence[str] = (),
):
    """
    Recreate the compose ``services`` whose configuration changed (their
    ``com.docker.compose.config-hash`` differs from ``docker compose config --hash``, as after an
    ``.env`` change they read) and wait until they are healthy; services running with the
    current configuration are left alone, so a rerun changes nothing. While planning, the keys
    of ``env_changes`` (an earlier step of the run rewrites them) count as a change already.

    + env_file / compose_file / project / docker_bin: the app's compose project
    + services: the services that must pick up the new environment
    + wait_timeout: seconds ``up --wait`` may take
    + env_changes: the ``.env`` keys an earlier step rewrites (for the plan)

    .. code:: python

        from turnout.operations import envphase
        envphase.recreate(
            name="Recreate api, worker",
            env_file="/srv/app/.env",
            compose_file="/srv/app/docker-compose.yml",
            services=("api", "worker"),
            env_changes=("DATABASE_URL",),
        )
    """
    try:
        where = project_where(env_file, compose_file, project, docker_bin)
        compose = require_fact(observe(ComposeServices, **where), "read the compose services")
        stale = stale_services(compose, list(services))
        if env_changes and not host.state.is_executing:
            for service in services:
                stale.setdefault(service, "the .env changes " + ", ".join(env_changes))
        if not stale:
            host.noop("running with the current .env: " + ", ".join(services))
            return
        host.log("Will recreate: " + ", ".join(f"{s} ({why})" for s, why in sorted(stale.items())))
        yield compose_command(
            "up", "--detach", "--wait", "--wait-timeout", str(wait_timeout), *sorted(stale),
            **where,
        )
    except OperationError as error:
        yield from stop(error)


@operation()
def unique_acceptance(database: Database, expected: Sequence[str], record: str | None = None):
    """
    Cutover acceptance (S3.6): every name of ``expected`` exists on ``database`` as a unique
    constraint or a unique index; a missing one fails the step naming it. Checked while planning
    too (it only reads the catalog); the names found are kept as JSON in ``record``.

    + database: the PostgreSQL the app runs on after the cutover
    + expected: the constraint or index names (setting ``expected_unique``)
    + record: where to keep the result

    .. code:: python

        from turnout.database import Database
        from turnout.operations import envphase
        envphase.unique_acceptance(
            name="Acceptance: unique constraints",
            database=Database("PG_DATABASE_URL", "/srv/app/.env"),
            expected=("uq_users_email",),
        )
    """
    try:
        found = require_fact(
            observe(Constraints, database=database), f"read the constraints of {database}"
        )
        missing = missing_unique(expected, found)
        if missing:
            failure = (
                f"acceptance failed: {', '.join(missing)} missing on {database} (neither a unique "
                f"constraint nor a unique index); create it with the app's migrations"
            )
            if not host.state.is_executing:
                raise OperationError(failure)
            yield fail_command([failure])
            return
        if record is None:
            host.noop(f"{database} has {', '.join(expected)}")
            return
        if not host.state.is_executing:
            yield from plan_keep(record, f"the acceptance result ({', '.join(expected)} exist)")
            return
        result = {"database": str(database), "expected_unique": list(expected), "missing": []}
        yield from keep_text(record, json.dumps(result, indent=2, sort_keys=True) + "\n")
    except OperationError as error:
        yield from stop(error)


def timing_line(seconds: float, budget_s: float) -> str:
    """The one line the rollback prints about its time.

    >>> timing_line(12.34, 60)
    'rollback: app healthy on SQLite 12.3 s after the command started (budget 60 s)'
    """
    over = "" if seconds <= budget_s else " - OVER BUDGET"
    return (
        f"rollback: app healthy on SQLite {seconds:.1f} s after the command started "
        f"(budget {budget_s:g} s){over}"
    )


@operation()
def timed(started: float, budget_s: float, record: str, switching: bool = True):
    """
    The rollback's time (S3.7): the seconds from ``started`` (the command's start) to now, run
    right after the health step passed, printed in one line and kept in ``record`` with the
    budget; over budget is a warning (the app is healthy: failing the run would only invite a
    second rollback). A run that switched nothing (a rerun) times nothing and keeps the record.

    + started: the command's start (epoch seconds, ``turnout.phases.command_started()``)
    + budget_s: the seconds allowed (setting ``rollback_budget_s``)
    + record: where to keep ``{"seconds": …, "seconds_from_first_step": …, "budget_s": …,
      "within_budget": …}`` (the first step: without pyinfra's confirmation prompt before it)
    + switching: whether this run rewrote the ``.env`` (decided while the deploy loads)

    .. code:: python

        import time
        from turnout.operations import envphase
        envphase.timed(name="Rollback time", started=time.time(), budget_s=60,
                       record="/var/lib/turnout/evidence/db_phase/20261125T060000Z/outputs/rollback_time.json")
    """
    if not switching:
        host.noop("nothing switched in this run: no rollback to time")
        return
    if not host.state.is_executing:
        what = f"the rollback's time from the command's start to the healthy app ({budget_s:g} s)"
        yield from plan_keep(record, what)
        return
    ended = time.time()
    seconds = round(ended - started, 2)
    within = seconds <= budget_s
    host.log(timing_line(seconds, budget_s), log_func=_log_for(within))
    result = {
        "started": _iso(started),
        "healthy": _iso(ended),
        "seconds": seconds,
        "seconds_from_first_step": seconds_since_first_step(ended),
        "budget_s": budget_s,
        "within_budget": within,
    }
    yield from keep_text(record, json.dumps(result, indent=2, sort_keys=True) + "\n")


def seconds_since_first_step(ended: float) -> float | None:
    """Seconds from this run's first step on the host (to the second, the step clock's
    resolution) to ``ended``: the rollback's time without a confirmation prompt before it."""
    starts = [s["start"] for s in steps_so_far(host.state, host) if s.get("start")]
    if not starts:
        return None
    first = calendar.timegm(time.strptime(min(starts), "%Y-%m-%dT%H:%M:%SZ"))
    return round(ended - first, 1)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"


def _log_for(within: bool):  # noqa: ANN202
    from pyinfra import logger

    return logger.info if within else logger.warning
