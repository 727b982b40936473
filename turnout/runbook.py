"""The start every runbook shares: settings, release policy, pre-flight, the run's evidence paths.

A runbook (``deploys/*.py``) begins with one call::

    from turnout.runbook import start_runbook
    run = start_runbook("dry_run", preflight=Preflight(tables=True, dump=True, assets_source=True))
    db.restore(name="Restore into staging", dump=run.dump_file, into=run.target, marker=run.marker)

``start_runbook`` runs while the deploy loads, for each host, before any operation is planned or
run (so even ``-y``, which skips planning, is covered):

1. the settings are read and validated (``turnout.settings.load_settings``: one line per problem,
   unknown keys refused);
2. the databases named by the settings answer, the tables asked for exist in the source, a given
   dump is complete (read in full), the assets source exists (and is not empty when
   ``rsync_delete`` is set) — each as asked by ``Preflight``; a problem stops the run with one
   sentence, nothing changed;
3. the run's evidence directory is fixed (``<evidence_root>/<task>/<timestamp>``), and host-side
   errors of this run are logged to its ``logs/hostside.log`` once it exists;
4. the host lock is taken (``turnout.lock``): a second run on the host is refused, naming the
   holder. turnout's Ctrl-C handler is installed first thing: an interrupted run exits 130, stops
   the host-side step and marks the evidence ``interrupted``; every failure prints one line
   (``turnout.failures.install_one_line_failures``).

Destructive operations refuse themselves while the deploy loads (``turnout.guard.destructive``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host, state

from turnout.database import Database, app_database, source_database
from turnout.evidence import evidence_dir, run_timestamp
from turnout.facts.assets import RsyncSides
from turnout.facts.dump import DumpInfo
from turnout.facts.postgres import PostgresServer, RowCounts
from turnout.failures import install_one_line_failures
from turnout.lock import install_interrupt_handler, take_host_lock
from turnout.memo import observe
from turnout.preflight import PreflightError, require
from turnout.runrecord import install_step_clock
from turnout.settings import Settings, load_settings


@dataclass(frozen=True)
class Preflight:
    """What a runbook's pre-flight checks besides the settings.

    + databases: which of ``source``/``target`` must answer
    + tables: the ``tables`` setting's tables must exist in the source
    + dump: a given ``dump_path`` must be a pg_dump archive
    + assets_source: ``rsync_source`` must exist (and not be empty with ``rsync_delete``)
    """

    databases: tuple[str, ...] = ("source", "target")
    tables: bool = False
    dump: bool = False
    assets_source: bool = False


@dataclass(frozen=True)
class Run:
    """One runbook run on the current host: its settings, databases and evidence paths."""

    task: str
    settings: Settings
    run_dir: str
    source: Database
    target: Database

    @property
    def state_dir(self) -> str:
        """``<evidence_root>/state``: markers that outlive one run (0700)."""
        return f"{self.settings.evidence_root}/state"

    def log(self, name: str) -> str:
        """``<run_dir>/logs/<name>``: a step's log."""
        return f"{self.run_dir}/logs/{name}"

    def output(self, name: str) -> str:
        """``<run_dir>/outputs/<name>``: a step's report."""
        return f"{self.run_dir}/outputs/{name}"

    def artifact(self, name: str) -> str:
        """``<run_dir>/src_artifacts/<name>``: a dump or backup the run made or was given."""
        return f"{self.run_dir}/src_artifacts/{name}"

    @property
    def timestamp(self) -> str:
        """The run's timestamp (the last component of ``run_dir``)."""
        return self.run_dir.rstrip("/").rsplit("/", 1)[-1]


def start_runbook(task: str, preflight: Preflight | None = None) -> Run:
    """Read the settings, run the pre-flight, fix the evidence directory; see the module
    docstring. Raises ``SettingsError``/``PreflightError`` (one line each, nothing changed), or
    ``LockRefused`` when another run holds this host (``turnout.lock``)."""
    install_one_line_failures()
    install_interrupt_handler()
    install_step_clock(state)
    settings = load_settings(host.data)
    run = Run(
        task=task,
        settings=settings,
        run_dir=evidence_dir(settings.evidence_root, task, run_timestamp(settings, state)),
        source=source_database(settings),
        target=app_database(settings),
    )
    host._turnout_error_log = run.log("hostside.log")
    check_inputs(run, preflight or Preflight())
    take_host_lock(state, host, settings.evidence_root, task, run.run_dir)
    return run


def ensure_unchanged_note(message: str) -> str:
    """``message`` ending with exactly one "; nothing was changed"."""
    return message.removesuffix("; nothing was changed") + "; nothing was changed"


def require_given_dump(
    setting: str, path: str, instead: str, compose_exec: list[str] | None = None
) -> None:
    """A dump the operator gave (``dump_path``, ``src_dump``) must be a complete pg_dump archive
    on the host — read in full, since ``pg_restore --list`` also succeeds on a truncated dump (a
    verified dump with its unchanged record is trusted without reading) — or ``PreflightError``
    says which and what to do ``instead``."""
    given = require(
        observe(DumpInfo, path=path, verify=True, pg_bin="", compose_exec=compose_exec),
        f"read the dump {path}",
    )
    if not given["exists"] or not given.get("format"):
        raise PreflightError(
            f"{setting} {path} is not a pg_dump custom file or directory on the host; give the "
            f"path of an existing dump, or {instead}; nothing was changed"
        )
    if given.get("complete") is False:
        raise PreflightError(
            f"{setting} {path} is not a complete dump ({given.get('problem')}); give a complete "
            f"dump (a truncated copy cannot be restored), or {instead}; nothing was changed"
        )


def check_inputs(run: Run, preflight: Preflight) -> None:
    """The pre-flight: every input the run depends on, before any step (see ``Preflight``)."""
    settings = run.settings
    for role in preflight.databases:
        database = getattr(run, role)
        require(
            observe(PostgresServer, database=database),
            f"connect to the {role} database ({database})",
            f"check {database.dsn_env} in the host's environment or {settings.env_file_path} "
            f"(setting {role}_dsn_env names it) and that the server answers",
        )
    if preflight.tables and settings.tables:
        require(
            observe(RowCounts, database=run.source, tables=list(settings.tables), timeout_ms=1),
            "find the tables to validate in the source",
            "fix the tables setting (schema.table names of the source; unset: every table)",
        )
    if preflight.dump and settings.dump_path:
        require_given_dump(
            "dump_path", settings.dump_path, "unset dump_path to dump the source again"
        )
    mirrors = settings.assets and settings.rsync_source and settings.assets_dir  # assets=false: off
    if preflight.assets_source and mirrors:
        source = settings.rsync_source
        sides = observe(
            RsyncSides,
            source=source,
            dest=settings.assets_dir,
            delete=settings.rsync_delete,
            rsh=settings.rsync_rsh,
        )
        if not sides.get("ok"):
            raise PreflightError(
                ensure_unchanged_note(f"cannot mirror {source}: {sides.get('error')}")
            )
        if sides["refusal"]:
            raise PreflightError(ensure_unchanged_note(sides["refusal"]))
