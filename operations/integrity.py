"""Integrity steps of a rehearsal or cutover: the constraints compared by name (SPEC C2), and the
content records the checks after a cutover compare the live host with (per-table digests right
after the database steps, the sha256 manifest of the assets tarball).

Like the validation steps, each measures at execution time (after the restore) and keeps its
record as JSON in ``outputs/``, rewritten only when it differs, so a rerun on an unchanged host
reports no change; the plan says concretely what will be compared or recorded.
"""

import json

from pyinfra import host
from pyinfra.api import operation

from turnout.database import Database
from turnout.dsn import redact
from turnout.facts.evidence import FileDigest, JsonFile
from turnout.facts.integrity import TarballManifest
from turnout.facts.postgres import Constraints, DumpConstraints, TableDigests
from turnout.failures import fact_problem
from turnout.integrity import (
    catalog_constraints,
    compare_constraints,
    constraint_failures,
    constraint_summary,
    listed,
)
from turnout.memo import observe
from turnout.operations.evidence import keep_text, plan_keep
from turnout.operations.validate import planned, record_report, unobservable


def source_constraints(source: Database | None, dump: str | None, compose_exec: list | None):
    """(the source's constraints in the ``DumpConstraints`` shape or None, why not)."""
    if dump:
        found = observe(DumpConstraints, path=dump, compose_exec=compose_exec)
        why = fact_problem(found, f"read the constraints of the dump {dump}")
        return (None, why) if why else (found, None)
    found = observe(Constraints, database=source)
    why = fact_problem(found, f"read the constraints of {source}")
    return (None, why) if why else (catalog_constraints(found), None)


@operation()
def constraints(
    target: Database,
    record: str,
    source: Database | None = None,
    dump: str | None = None,
    compose_exec: list[str] | None = None,
    after: str = "the restore",
    remedy: str = "restore again with --data restore=always and read logs/pg_restore.log",
):
    """
    Compare the primary keys, unique constraints, unique indexes and foreign keys of the source
    (a live database, or the ``dump`` restored) with the target's, by table and name, once the
    restore (and a migration) ran. A constraint of the source missing on the target fails the
    step with one line naming them and ``remedy``; constraints only the target has (a
    migration's) pass and are reported as ``added``.

    + target: the database restored into
    + record: JSON report path, e.g. ``<evidence>/outputs/validate_constraints.json``
    + source / dump: the live source database, or the dump's path on the host
    + compose_exec: run pg_restore inside the database's service to read the dump
    + after: what ran before the comparison, for the plan (``the restore and the migration``)

    .. code:: python

        from turnout.database import Database
        from turnout.operations import integrity
        integrity.constraints(
            name="Validate the constraints",
            source=Database("SOURCE_DATABASE_URL", "/srv/app/.env"),
            target=Database("DATABASE_URL", "/srv/app/.env"),
            record="/var/lib/turnout/evidence/dry_run/T/outputs/validate_constraints.json",
        )
    """
    origin = f"the dump {dump}" if dump else str(source)
    if not host.state.is_executing:
        found, why = source_constraints(source, dump, compose_exec)
        what = constraint_summary(found) if found else f"not readable yet: {why}"
        yield from planned(
            "validate_constraints",
            record,
            f"Will compare the constraints of {origin} ({what}) with {target} after {after}, "
            f"by table and name; report in {record}",
        )
        return
    found, why = source_constraints(source, dump, compose_exec)
    live = observe(Constraints, database=target)
    problems = [p for p in (why, fact_problem(live, f"read the constraints of {target}")) if p]
    if problems:
        yield from unobservable(problems)
        return
    target_found = catalog_constraints(live)
    report = compare_constraints(found, target_found)
    failures = constraint_failures(report, remedy)
    host.log(
        f"Constraints: {report['matched']} of the source's found on {target}, "
        f"{len(report['missing'])} missing, {len(report['added'])} added"
        + (f" ({listed(report['added'])})" if report["added"] else "")
    )
    report = {
        "step": "validate_constraints",
        "verdict": "fail" if failures else "pass",
        "failures": failures,
        "source": origin,
        "target": str(target),
        **report,
        "source_constraints": found,
        "target_constraints": target_found,
    }
    yield from record_report(record, report, failures)


@operation()
def table_digests(
    database: Database,
    record: str,
    exclude: tuple[str, ...] = (),
    once: bool = True,
):
    """
    Keep per table of ``database`` its row count and a digest of its rows, computed by the
    server (``TableDigests``), as JSON in ``record``: the checks after a cutover recompute them
    and compare. ``exclude``: tables the app writes once it is up (listed as unchecked). With
    ``once``, a record already kept stays (the first measurement of the run, right after its
    database steps).

    .. code:: python

        from turnout.database import Database
        from turnout.operations import integrity
        integrity.table_digests(
            name="Table digests after",
            database=Database("DATABASE_URL", "/srv/app/.env"),
            record="/var/lib/turnout/evidence/cutover/T/outputs/table_digests.json",
            exclude=("public.sessions",),
        )
    """
    if once and observe(FileDigest, path=record).get("exists"):
        host.noop(f"table digests already kept in {record} (the first measurement of this run)")
        return
    if not host.state.is_executing:
        skipped = f", not of {', '.join(exclude)}" if exclude else ""
        yield from plan_keep(
            record, f"a digest of the rows of every table of {database}{skipped}"
        )
        return
    digests = observe(TableDigests, database=database, exclude=list(exclude))
    why = fact_problem(digests, f"digest the tables of {database}")
    if why:
        yield from unobservable([why])
        return
    kept = {key: digests[key] for key in ("algorithm", "tables", "unchecked")}
    host.log(
        f"Table digests: {len(kept['tables'])} tables"
        + (f", unchecked: {', '.join(kept['unchecked'])}" if kept["unchecked"] else "")
    )
    yield from keep_text(record, redact(json.dumps(kept, indent=2, sort_keys=True)) + "\n")


@operation()
def assets_manifest(tarball: str, record: str, strip_components: int = 0):
    """
    Keep the sha256 and size of every file of the assets ``tarball`` (by its path under the
    assets directory, as the swap extracts it) as JSON in ``record``: the checks after a
    cutover compare the live tree with it by content. A manifest of the same tarball (same
    stat signature) is not made again.

    .. code:: python

        from turnout.operations import integrity
        integrity.assets_manifest(
            name="Assets manifest",
            tarball="/srv/backups/app.data.tar.gz",
            record="/var/lib/turnout/evidence/cutover/T/outputs/assets_manifest.json",
        )
    """
    kept = observe(JsonFile, path=record).get("data") or {}
    known = kept.get("tarball_stat") if kept.get("tarball") == tarball else None
    if not host.state.is_executing:
        if known:
            host.noop(f"{record} holds the manifest of {tarball}; made again if it changed")
            return
        yield from plan_keep(record, f"the sha256 of each file of {tarball}")
        return
    manifest = observe(
        TarballManifest, tarball=tarball, known_stat=known, strip_components=strip_components
    )
    why = fact_problem(manifest, f"make the manifest of {tarball}")
    if why:
        yield from unobservable([why])
        return
    if manifest["unchanged"]:
        host.noop(f"{record} holds the manifest of {tarball} (unchanged since)")
        return
    host.log(f"Assets manifest: {manifest['count']} files, {manifest['bytes']} bytes")
    kept = {key: manifest[key] for key in ("tarball", "tarball_stat", "count", "bytes", "files")}
    yield from keep_text(record, redact(json.dumps(kept, indent=2, sort_keys=True)) + "\n")
