"""After a cutover, on every host of the inventory (SPEC C5): the app's services run, its health
endpoint answers with the migrated revision, the assets are live and complete, no table lost
rows, and the run's evidence is there. The evidence read (``<evidence_root>/cutover/<ts>/``):

- ``run.json``: ``{"task": "cutover", "exit": 0, "revisions": {"before": …, "after": …}, …}``
  (``exit`` other than 0, a run that stopped at ``failed_step``, fails the evidence check)
- ``outputs/rowcounts_after.json`` (the counts right after the database steps: restore and
  migrate), else ``outputs/rowcounts_before.json`` (the baseline): ``{"tables": {"public.users":
  {"count": 12, "exact": true, …}, …}}`` as turnout's ``RowCounts`` reports it; only on the host
  where the database steps ran
- ``outputs/assets_after.json``: ``{"files": N, "bytes": B}`` (regular files under assets_dir),
  where restore-assets ran
- ``outputs/assets_manifest.json``: ``{"files": {"ugc/1/a.bin": {"sha256": …, "size": …}}, …}``,
  the tarball's content file by file, where restore-assets ran: the live tree must hold exactly
  these files with this content (a file overwritten with zeros of the same size fails)
- ``outputs/table_digests.json``: ``{"tables": {"public.users": {"rows": 2, "digest": …}},
  "unchecked": […]}``, recorded right after the database steps: each table's live digest,
  computed by the server with the same query (``turnout.hostside.integrity.digest_query``),
  must be the recorded one (a changed value with the same row count fails); tables the app
  writes once it is up are named in ``cutover_unchecked_tables`` and not compared
"""

import json

import pytest
from cutover_hosts import service_list

from turnout.dsn import redact
from turnout.hostside.integrity import DIGEST_SETTINGS, digest_query, table_key
from turnout.hostside.pg import pg_split_table
from turnout.integrity import digest_differences, manifest_differences
from turnout.validation import CountRow, compare_counts

DEFAULT_SERVICES = ("db", "api", "worker")


def compose_ps(target) -> list[dict]:
    result = target.sh(target.compose_argv("ps", "--all", "--format", "json"))
    assert result.rc == 0, f"{target.name}: docker compose ps failed: {result.stderr.strip()}"
    text = result.stdout.strip()
    if text.startswith("["):  # older compose: one JSON array
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_compose_services_are_running(target) -> None:
    listed = target.sh(target.compose_argv("config", "--services"))
    assert listed.rc == 0, f"{target.name}: docker compose config failed: {listed.stderr.strip()}"
    defined = set(listed.stdout.split())
    expected = service_list(target.data.get("cutover_services"))
    if expected is None:
        expected = [s for s in DEFAULT_SERVICES if s in defined]
    undefined = sorted(set(expected) - defined)
    assert not undefined, f"{target.name}: cutover_services not in the compose file: {undefined}"
    states: dict[str, list[str]] = {}
    for container in compose_ps(target):
        states.setdefault(container["Service"], []).append(container["State"])
    problems = []
    for service in expected:
        seen = states.get(service)
        if not seen:
            problems.append(f"service {service} has no container")
        elif any(state != "running" for state in seen):
            problems.append(f"service {service} is {'/'.join(seen)}, expected running")
    assert not problems, f"{target.name}: " + "; ".join(problems)


def body_value(body, path: str):
    for key in path.split("."):
        if not isinstance(body, dict) or key not in body:
            return None
        body = body[key]
    return body


def same(value, expected: str) -> bool:
    return value == expected or (not isinstance(value, str) and json.dumps(value) == expected)


def test_health_reports_the_new_revision(target) -> None:
    s = target.settings
    if not s.health:
        pytest.skip("health=false: the app has no health endpoint")
    url = s.base_url.rstrip("/") + s.health_path
    answer = target.probe("health", url=url, timeout=s.http_timeout_s)
    assert "error" not in answer, f"{target.name}: {url} unreachable: {answer.get('error')}"
    status = getattr(s, "health_status", 200)
    assert answer["status"] == status, f"{target.name}: {url} answered {answer['status']}"
    body = answer["body"]
    for item in s.health_expect:
        key, _, expected = item.partition("=")
        value = body_value(body, key)
        assert same(value, expected), (
            f"{target.name}: health reports {key}={value!r}, expected {expected!r}"
        )
    revisions = target.run_file("run.json").get("revisions")
    if not revisions:
        return  # migrate ran on the database's host, not here: its record holds the revision
    after = revisions.get("after")
    assert after, f"{target.name}: run.json of {target.last_run()['dir']} has no revisions.after"
    live = body_value(body, "alembic_revision")
    assert live == after, (
        f"{target.name}: health reports alembic_revision={live!r}, "
        f"the cutover migrated to {after!r}"
    )


def test_assets_are_live_and_complete(target) -> None:
    assets_dir = target.settings.assets_dir
    if not assets_dir:
        pytest.skip("no assets_dir in the host data")
    recorded = target.optional_file("outputs/assets_after.json")
    if recorded is None:
        pytest.skip("the last cutover restored no assets on this host")
    found = target.probe("assets", dir=assets_dir)
    assert found["is_dir"], f"{target.name}: assets_dir {assets_dir} is not a directory"
    assert found["files"] == recorded.get("files"), (
        f"{target.name}: {assets_dir} holds {found['files']} files, the cutover recorded "
        f"{recorded.get('files')}"
    )
    assert not found["staging"], (
        f"{target.name}: staging directories left next to {assets_dir}: {found['staging']}"
    )


def live_counts(target, names: list[str]) -> dict[str, int]:
    """Exact ``count(*)`` per table, on the host: through the compose db's psql with
    ``db_in_compose`` (or ``db_connect=compose``), else with the host's Python and psycopg (the
    DSN read there)."""
    s = target.settings
    tables = [(name, *pg_split_table(name)) for name in names]
    if not s.db_tools_in_compose:
        answer = target.probe(
            "counts", dsn_env=s.target_dsn_env, env_file=s.env_file, tables=tables
        )
        assert "error" not in answer, f"{target.name}: cannot count rows: {answer['error']}"
        return answer["counts"]

    def ident(part: str) -> str:
        return '"' + part.replace('"', '""') + '"'

    query = " UNION ALL ".join(
        f"SELECT {i}, count(*) FROM {ident(schema)}.{ident(table)}"
        for i, (_, schema, table) in enumerate(tables)
    )
    counts = {}
    for line in psql_in_db(target, query, "counting rows").split():
        index, _, count = line.partition("|")
        counts[tables[int(index)][0]] = int(count)
    return counts


def psql_in_db(target, query: str, what: str) -> str:
    """``query``'s output (``psql -At``) from psql inside the compose database service, logged
    in as its container's user (no password: the container's local socket)."""
    psql = (
        'exec psql -X -At -v ON_ERROR_STOP=1 -U "${PGUSER:-${POSTGRES_USER:-postgres}}" '
        '-d "${PGDATABASE:-${POSTGRES_DB:-${POSTGRES_USER:-postgres}}}" -c "$0"'
    )
    db_service = target.settings.db_service
    result = target.sh(target.compose_argv("exec", "-T", db_service, "sh", "-c", psql, query))
    assert result.rc == 0, f"{target.name}: {what} failed: {redact(result.stderr.strip())[-500:]}"
    return result.stdout


def failing(rows: list[CountRow]) -> list[CountRow]:
    """The failing rows, a partitioned table not again when its partitions are compared (as
    ``turnout.validation.count_failures``)."""
    parents = {row.parent for row in rows if row.parent}
    return [
        row
        for row in rows
        if row.verdict == "FAIL" and not (row.relation == "partitioned" and row.table in parents)
    ]


def lost_rows(row: CountRow) -> str:
    if row.source is not None and row.target is not None and row.difference is not None:
        return f"{row.table}: {row.source} rows before, {row.target} now ({row.difference:+d})"
    return f"{row.table}: {row.reason}"


def test_no_table_lost_rows(target) -> None:
    snapshot = target.optional_file("outputs/rowcounts_after.json") or target.optional_file(
        "outputs/rowcounts_before.json"
    )
    if snapshot is None:
        pytest.skip("the database steps of the last cutover ran on another host")
    before = snapshot.get("tables")
    assert before, f"{target.name}: the row count snapshot of the last cutover lists no tables"
    # Materialized views are derived data (turnout's totals leave them out too).
    tables = {n: c for n, c in before.items() if c.get("relation", "table") != "matview"}
    live = live_counts(target, sorted(tables))
    rows = compare_counts(
        tables,
        {name: {"count": count, "exact": True} for name, count in live.items()},
        allowed_diff=target.settings.allowed_row_diff,
        require_exact=target.settings.require_exact_counts,
    )
    failures = [lost_rows(row) for row in failing(rows)]
    assert not failures, (
        f"{target.name}: live row counts differ from the cutover's snapshot "
        f"(allowed difference {target.settings.allowed_row_diff}): " + "; ".join(failures)
    )


def test_assets_match_the_manifest(target) -> None:
    assets_dir = target.settings.assets_dir
    if not assets_dir:
        pytest.skip("no assets_dir in the host data")
    manifest = target.optional_file("outputs/assets_manifest.json")
    if manifest is None:
        pytest.skip("the last cutover restored no assets on this host")
    live = target.probe("asset_hashes", dir=assets_dir)["files"]
    problems = manifest_differences(manifest.get("files") or {}, live)
    assert not problems, (
        f"{target.name}: {assets_dir} is not the tarball the cutover restored "
        f"({manifest.get('tarball')}): " + "; ".join(problems)
    )


def live_digests(target, names: list[str]) -> dict[str, str]:
    """Each table's ``<count>:<digest>`` now, computed by the server with turnout's own query:
    through the compose db's psql with ``db_in_compose`` (or ``db_connect=compose``), else with
    the host's Python and psycopg (the DSN read there)."""
    s = target.settings
    queries = [(name, digest_query(*pg_split_table(name)).as_string()) for name in names]
    if not s.db_tools_in_compose:
        answer = target.probe(
            "digests",
            dsn_env=s.target_dsn_env,
            env_file=s.env_file,
            settings=list(DIGEST_SETTINGS),
            queries=queries,
        )
        assert "error" not in answer, f"{target.name}: cannot digest tables: {answer['error']}"
        return answer["digests"]
    select = " UNION ALL ".join(f"SELECT {i}, ({query})" for i, (_, query) in enumerate(queries))
    out = psql_in_db(target, "; ".join([*DIGEST_SETTINGS, select]), "digesting tables")
    digests = {}
    for line in out.split():
        index, bar, digest = line.partition("|")
        if bar:  # not the SET lines' command tags
            digests[queries[int(index)][0]] = digest
    return digests


def test_rows_match_the_digests(target) -> None:
    recorded = target.optional_file("outputs/table_digests.json")
    if recorded is None:
        pytest.skip("the database steps of the last cutover ran on another host")
    unchecked = {table_key(name) for name in target.settings.cutover_unchecked_tables}
    unchecked |= set(recorded.get("unchecked") or ())
    tables = {n: e for n, e in (recorded.get("tables") or {}).items() if n not in unchecked}
    assert tables, f"{target.name}: the table digests of the last cutover list no table"
    problems = digest_differences(tables, live_digests(target, sorted(tables)), unchecked)
    assert not problems, (
        f"{target.name}: live rows differ from the digests recorded right after the "
        "cutover's database steps (tables the app writes once up belong in "
        "cutover_unchecked_tables): " + "; ".join(problems)
    )


def test_evidence_of_the_run_is_kept(target) -> None:
    run = target.last_run()
    assert run["mode"] == 0o700, f"{target.name}: {run['dir']} has mode {run['mode']:o}, not 700"
    record = target.run_file("run.json")
    assert record.get("task") == "cutover", (
        f"{target.name}: {run['dir']}/run.json is a {record.get('task')!r} run, not cutover"
    )
    if "exit" in record:  # the deploy's run record: 0 once every step passed
        assert record["exit"] == 0, (
            f"{target.name}: the cutover run {run['dir']} did not finish: exit "
            f"{record['exit']!r} at step {record.get('failed_step')!r}"
        )
