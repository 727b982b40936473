"""SQLite → PostgreSQL copy: turnout beside pgloader and psql ``\\copy``, same data, same run.

    scripts/bench.sh copy                                  # 100k and 1M rows, 3 rounds
    scripts/bench.sh copy --rows 100000 --rounds 1         # a quick look
    scripts/bench.sh copy --rows 1000000 --batch-size 1000 --batch-size 10000

What it does:

1. Starts a private PostgreSQL 15 cluster with the test stack's own tooling
   (``tests/stack/stack.py: start_cluster``, ``TURNOUT_STACK_DIR=.bench/copy-stack``, port
   ``--port``, default 28632; default server settings, scram auth, a generated superuser
   password), and takes it down at the end unless ``--keep``.
2. For each size (``--rows``, default 100,000 and 1,000,000): the web-app SQLite database of
   ``tests/fixtures/webapp_db.py`` (deterministic; kept in ``.bench/copy-work/`` and regenerated
   only when missing), and its tables exported to CSV for psql (timed apart, not in the copy).
3. Copy, in interleaved rounds (A B C, then C B A, …), each contender loading the same file into
   a fresh database (created before the clock starts) holding the target schema
   (``webapp_db.load_target_schema``: the Alembic-like schema with its keys, unique constraint,
   indexes and foreign keys):

   - ``turnout b=<n>``: the host-side action ``sqlite_copy`` run as production runs it
     (``turnout.remote.hostside_command(..., python=sys.executable)`` as a subprocess, the DSN
     only in the child's environment under ``dsn_env``), one per ``--batch-size``, ``jobs``
     ``--jobs``, ``set_aside`` true. Its peak RSS: the process tree's summed VmRSS polled every
     20 ms, and the child's ``ru_maxrss`` from ``wait4``;
   - ``pgloader existing``: ``pgloader`` (apt) with a load file ``WITH data only, reset
     sequences`` and ``SET timezone = 'UTC'`` into the same pre-created schema (pgloader drops the
     schema's foreign keys for the load and recreates them; indexes stay); the load file is 0600
     in a private temporary directory and holds no password (``PGPASSWORD`` in its environment);
   - ``pgloader own schema``: pgloader's defaults into an empty database (it creates its own
     tables from SQLite's types, then its indexes and foreign keys) — for reference;
   - ``\\copy x2 constraints before``: CSV loaded by two psql sessions in parallel into the
     schema as created (users first, on its own, as the foreign keys need it; then the other
     four tables split across the two sessions by CSV size), then the sequences set;
   - ``\\copy x2 constraints after``: the schema's primary keys, unique constraint, foreign keys
     and secondary indexes dropped before the clock starts (their definitions recorded from
     ``pg_get_constraintdef``/``pg_get_indexdef``); timed: the five tables by two sessions, then
     keys and indexes recreated by two sessions, then the foreign keys, then the sequences.

   After each sample (untimed) the target's row counts are checked against SQLite's, and for the
   pre-created schema that every constraint and index is there again and that each table's
   ``md5(string_agg(t::text, ''))`` equals the first contender's (the same rows, as PostgreSQL
   prints them: a difference is noted). A sample's SQLite snapshot is removed after it.
4. Verification, interleaved rounds: turnout's ``sqlite_verify`` (full, ``sample`` None) against a
   database loaded by turnout's copy (else by ``\\copy``), versus one psql session running
   ``SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM t`` per table.

Results: ``.bench/copy-latest.{txt,json}`` (also ``.bench/copy-<time>.*``), each run's output in
``.bench/copy-runs/``. Rows per second are the SQLite file's rows over the median seconds; the
targets (copy >= 3x pgloader, >= 0.9x two-session \\copy, verification >= 300k rows/s per side,
RSS within 20 % from the smallest to the largest size) are reported, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import ModuleType

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / ".bench"
STACK_DIR = BENCH / "copy-stack"
WORK = BENCH / "copy-work"
RUNS = BENCH / "copy-runs"
ROLE = "copy"  # the cluster's name in the stack's layout (pg/copy)
TARGET_DB = "copy_target"
VERIFY_DB = "copy_verify"
DSN_ENV = "BENCH_COPY_DATABASE_URL"
PGLOADER = "/usr/bin/pgloader"
PSQL = "/usr/lib/postgresql/15/bin/psql"
PGLOADER_WITH = "data only, reset sequences"
TARGETS = {"pgloader": 3.0, "copy": 0.9, "verify_rows_s": 300_000, "rss_growth": 0.20}


def load_module(name: str, path: Path) -> ModuleType:
    """A module from a file that is not in a package (the stack tooling, the fixture)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


STACK = load_module("turnout_stack", REPO / "tests/stack/stack.py")
WEBAPP = load_module("webapp_db", REPO / "tests/fixtures/webapp_db.py")
SLOTS = load_module("turnout_slots", REPO / "tests/stack/slots.py")  # shared with the tests
CLAIMED: list = []  # the slot this process holds (its lock is released when the process ends)


# Options and samples ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...]
    rounds: int
    batch_sizes: tuple[int, ...]
    jobs: int
    port: int | None
    keep: bool
    timeout: int
    only: tuple[str, ...]
    verify: bool


@dataclass
class Sample:
    rows: int
    measurement: str  # copy, verify
    contender: str
    round: int
    seconds: float
    ok: bool
    note: str = ""
    rss_tree_kib: int | None = None  # the process tree's summed VmRSS, polled
    maxrss_kib: int | None = None  # the child's own ru_maxrss (wait4)
    load: float = 0.0
    inner: dict = field(default_factory=dict)  # the action's own *_seconds answers


@dataclass
class Source:
    """One size's SQLite file, its counts and its CSV export."""

    rows: int
    path: Path
    counts: dict[str, int]
    csv_dir: Path
    export_seconds: float
    csv_bytes: dict[str, int]


@dataclass
class Cluster:
    port: int
    password: str

    def conninfo(self, dbname: str) -> dict:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "postgres",
            "password": self.password,
            "dbname": dbname,
        }

    def libpq_env(self, dbname: str) -> dict[str, str]:
        """libpq's environment for ``dbname``: the password never on a command line."""
        return {
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGUSER": "postgres",
            "PGPASSWORD": self.password,
            "PGDATABASE": dbname,
            "PGTZ": "UTC",
        }

    def url(self, dbname: str) -> str:
        password = urllib.parse.quote(self.password, safe="")
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{dbname}"


@dataclass(frozen=True)
class Contender:
    name: str
    schema: bool  # the target schema is created before the clock starts
    run: Callable[[Context, Source, Path], Sample]
    batch_size: int | None = None


@dataclass
class Context:
    options: Options
    cluster: Cluster
    copy_available: str | None = None  # why turnout's copy cannot run, None when it can
    verify_available: str | None = None
    notes: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    sources: dict[int, Source] = field(default_factory=dict)
    verify_loaded_by: dict[int, str] = field(default_factory=dict)
    code: list[str] = field(default_factory=list)  # what was measured (code_lines at start)
    expected_catalog: list[tuple] | None = None  # the fresh schema's constraints and indexes
    reference_digest: dict[int, tuple[str, dict[str, str]]] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows in all (repeatable)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--batch-size", type=int, action="append", help="turnout's batch size (repeatable)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="turnout's parallel connections")
    parser.add_argument(
        "--port", type=int, help="the private cluster's port (default: a free benchmark slot's)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the cluster up afterwards")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds for any one run")
    parser.add_argument(
        "--only", action="append", default=[], help="contenders whose name starts with this"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the verification part")
    args = parser.parse_args(argv)
    sizes = tuple(args.rows or (100_000, 1_000_000))
    batches = tuple(args.batch_size or (1000, 10_000))
    if args.rounds < 1 or min(sizes) < len(WEBAPP.TABLES) or min(batches) < 1 or args.jobs < 1:
        parser.error("--rounds, --batch-size and --jobs must be >= 1, --rows >= 5")
    return Options(
        sizes=sizes,
        rounds=args.rounds,
        batch_sizes=batches,
        jobs=args.jobs,
        port=args.port,
        keep=args.keep,
        timeout=args.timeout,
        only=tuple(args.only),
        verify=not args.no_verify,
    )


def say(message: str) -> None:
    print(f"bench-copy: {message}", flush=True)


# Processes ----------------------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "TURNOUT_STATS"}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def tree_rss_kib(pid: int) -> int:
    """The summed VmRSS of ``pid`` and all its descendants (0 once it is gone)."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    pending += [int(child) for child in handle.read().split()]
        except (OSError, ValueError):
            continue
    return total


@dataclass
class Finished:
    seconds: float
    code: int
    stdout: str
    stderr: str
    rss_tree_kib: int
    maxrss_kib: int


def run_measured(argv: list[str], env: dict[str, str], timeout: int, log: Path) -> Finished:
    """Run ``argv`` timed from start to exit, its tree's RSS polled every 20 ms and the child's
    ``ru_maxrss`` read from ``wait4``; stdout and stderr kept in ``log``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(  # noqa: S603 - argv lists only
            argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True
        )
        peak = [0]
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(0.02):
                peak[0] = max(peak[0], tree_rss_kib(process.pid))

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        timer = threading.Timer(timeout, lambda: os.killpg(process.pid, 9))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
            stop.set()
            poller.join()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = (f.read().decode(errors="replace") for f in (out, err))
    log.write_text(f"$ {shlex.join(argv)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
    return Finished(seconds, process.returncode, stdout, stderr, peak[0], usage.ru_maxrss)


def last_lines(text: str, count: int = 3) -> str:
    kept = [line for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-count:])[:400]


def run_parallel(groups: list[list[str]], env: dict[str, str], timeout: int, log: Path) -> str:
    """Run one psql per group of scripts lines at once; '' when all succeed, else the errors."""
    processes = []
    for index, lines in enumerate(groups):
        script = log.with_name(f"{log.stem}-s{index}.sql")
        script.write_text("\n".join(lines) + "\n")
        argv = [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script)]
        processes.append(
            subprocess.Popen(  # noqa: S603 - argv lists only
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    errors = []
    for process in processes:
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            _, stderr = process.communicate()
            errors.append(f"timed out after {timeout} s")
        with open(log, "a") as handle:
            handle.write(stderr)
        if process.returncode != 0:
            errors.append(last_lines(stderr))
    return "; ".join(errors)


# The cluster and databases ------------------------------------------------------------------------


def start_cluster(port: int) -> Cluster:
    """The private cluster, started (or found running) with the stack's own tooling."""
    os.environ["TURNOUT_STACK_DIR"] = str(STACK_DIR)
    STACK.start_cluster(ROLE, port)
    return Cluster(port=port, password=STACK.secret(f"pg_{ROLE}_superuser"))


def stop_cluster() -> None:
    """Stop the private cluster and remove its directory (the stack's ``down``)."""
    os.environ["TURNOUT_STACK_DIR"] = str(STACK_DIR)
    STACK.down()


def connect(cluster: Cluster, dbname: str) -> psycopg.Connection:
    return psycopg.connect(**cluster.conninfo(dbname), autocommit=True)


def fresh_database(cluster: Cluster, dbname: str, schema: bool) -> None:
    """Drop and create ``dbname``, with the target schema when ``schema``; then CHECKPOINT, so
    no contender pays for the previous one's dirty pages."""
    with connect(cluster, "postgres") as conn:
        name = sql.Identifier(dbname)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))
    if schema:
        with connect(cluster, dbname) as conn:
            WEBAPP.load_target_schema(conn)
    with connect(cluster, "postgres") as conn:
        conn.execute("CHECKPOINT")


def table_counts(cluster: Cluster, dbname: str, tables: list[str]) -> dict[str, int | None]:
    counts: dict[str, int | None] = {}
    with connect(cluster, dbname) as conn:
        for table in tables:
            try:
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                counts[table] = conn.execute(query).fetchone()[0]
            except psycopg.errors.UndefinedTable:
                counts[table] = None
    return counts


CATALOG_QUERY = """
SELECT 'constraint', conrelid::regclass::text, conname, pg_get_constraintdef(oid), contype::text
  FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'u', 'f', 'c')
UNION ALL
SELECT 'index', indrelid::regclass::text, c.relname, pg_get_indexdef(indexrelid), ''
  FROM pg_index JOIN pg_class c ON c.oid = indexrelid
 WHERE c.relnamespace = 'public'::regnamespace
   AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid)
ORDER BY 1, 2, 3
"""


def catalog(cluster: Cluster, dbname: str) -> list[tuple[str, str, str, str, str]]:
    """Constraints (with definitions) and the indexes that back no constraint."""
    with connect(cluster, dbname) as conn:
        return [tuple(row) for row in conn.execute(CATALOG_QUERY)]


def content_digest(cluster: Cluster, dbname: str, tables: list[str]) -> dict[str, str]:
    """Each table's ``md5(string_agg(t::text, '' ORDER BY id))``: what a contender loaded."""
    template = sql.SQL("SELECT md5(string_agg(t::text, '' ORDER BY id)) FROM {} AS t")
    with connect(cluster, dbname) as conn:
        return {t: conn.execute(template.format(sql.Identifier(t))).fetchone()[0] for t in tables}


def compare_content(ctx: Context, source: Source, contender: str) -> str:
    """'' when the target holds the same rows, as PostgreSQL prints them, as the first
    contender measured on this size (loading into the same schema); else which tables differ."""
    digest = content_digest(ctx.cluster, TARGET_DB, list(source.counts))
    reference = ctx.reference_digest.setdefault(source.rows, (contender, digest))
    differ = [t for t in digest if digest[t] != reference[1][t]]
    if not differ:
        return ""
    return f"content differs from {reference[0]}'s in {', '.join(differ)}"


def check_loaded(ctx: Context, source: Source, dbname: str, schema: bool) -> str:
    """'' when the target holds SQLite's rows (and, for the pre-created schema, every constraint
    and index of it), else what is wrong."""
    counts = table_counts(ctx.cluster, dbname, list(source.counts))
    wrong = [f"{t} {counts[t]} of {n}" for t, n in source.counts.items() if counts[t] != n]
    if wrong:
        return "row counts differ: " + ", ".join(wrong)
    if schema and catalog(ctx.cluster, dbname) != ctx.expected_catalog:
        return "constraints or indexes differ from the schema's after the load"
    return ""


# Sources: the SQLite files and their CSV ----------------------------------------------------------


def sqlite_counts(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in WEBAPP.TABLES}


def ensure_sqlite(rows: int) -> Path:
    """The size's SQLite file, generated once (the generator is deterministic; its stamp names
    the generator's source hash, so a changed generator regenerates)."""
    import hashlib

    digest = hashlib.sha256((REPO / "tests/fixtures/webapp_db.py").read_bytes()).hexdigest()[:12]
    path = WORK / f"webapp-{rows}-{digest}.sqlite3"
    if not path.exists():
        for old in WORK.glob(f"webapp-{rows}-*.sqlite3"):
            old.unlink()
        started = time.perf_counter()
        WEBAPP.generate(path, rows)
        say(f"generated {path.name} in {time.perf_counter() - started:.1f} s")
    return path


def csv_field(value: object) -> str:
    """A SQLite value as a PostgreSQL CSV field: NULL an unquoted empty field, text quoted
    (an empty string is ``""``), numbers bare, a BLOB as quoted bytea hex."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return '"\\x' + value.hex() + '"'
    if isinstance(value, str):
        return '"' + value.replace('"', '""') + '"'
    return str(value)


def export_table(conn: sqlite3.Connection, table: str, dest: Path) -> int:
    """``table`` in key order to ``dest`` as PostgreSQL's CSV; answers the file's size."""
    with open(dest, "w", encoding="utf-8") as handle:
        cursor = conn.execute(f'SELECT * FROM "{table}" ORDER BY id')
        while rows := cursor.fetchmany(10_000):
            handle.writelines(",".join(map(csv_field, row)) + "\n" for row in rows)
    return dest.stat().st_size


def export_csv(path: Path, dest: Path) -> tuple[float, dict[str, int]]:
    """Every table of ``path`` as ``dest/<table>.csv``; the seconds it took and the sizes."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    started = time.perf_counter()
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        sizes = {t: export_table(conn, t, dest / f"{t}.csv") for t in WEBAPP.TABLES}
    return time.perf_counter() - started, sizes


def prepare_source(rows: int) -> Source:
    path = ensure_sqlite(rows)
    seconds, sizes = export_csv(path, WORK / f"csv-{rows}")
    say(f"{rows:,} rows: exported to CSV in {seconds:.1f} s")
    return Source(rows, path, sqlite_counts(path), WORK / f"csv-{rows}", seconds, sizes)


# Contender: turnout's copy ------------------------------------------------------------------------


def hostside_argv(action: str, params: dict) -> list[str]:
    """The production command line of a host-side action, as argv (built by turnout.remote)."""
    from turnout.remote import hostside_command

    return shlex.split(hostside_command(action, params, python=sys.executable).get_raw_value())


def action_missing(module: str, function: str) -> str | None:
    """Why a host-side action cannot run yet (its module or function is missing), else None."""
    path = REPO / "turnout" / "hostside" / f"{module}.py"
    if not path.exists():
        return f"turnout/hostside/{module}.py does not exist yet"
    if f"def {function}(" not in path.read_text():
        return f"turnout/hostside/{module}.py has no {function} yet"
    return None


def hostside_answer(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.strip().startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return {}


def turnout_copy_params(source: Source, work: Path, batch_size: int, jobs: int) -> dict:
    return {
        "sqlite_path": str(source.path),
        "dsn_env": DSN_ENV,
        "env_file": None,
        "batch_size": batch_size,
        "checkpoint": str(work / "checkpoint.json"),
        "state_dir": str(work / "state"),
        "report_path": str(work / "copy-report.json"),
        "jobs": jobs,
        "set_aside": True,
        "lossy": False,
    }


def sample_from(
    ctx: Context, source: Source, name: str, finished: Finished, measurement: str = "copy"
) -> Sample:
    ok = finished.code == 0
    note = "" if ok else f"exit {finished.code}: {last_lines(finished.stderr or finished.stdout)}"
    return Sample(
        rows=source.rows,
        measurement=measurement,
        contender=name,
        round=0,
        seconds=round(finished.seconds, 3),
        ok=ok,
        note=redact(ctx, note),
        rss_tree_kib=finished.rss_tree_kib,
        maxrss_kib=finished.maxrss_kib,
    )


def redact(ctx: Context, text: str) -> str:
    for secret in (ctx.cluster.password, urllib.parse.quote(ctx.cluster.password, safe="")):
        text = text.replace(secret, "***")
    return text


def turnout_copy(batch_size: int) -> Callable[[Context, Source, Path], Sample]:
    def run(ctx: Context, source: Source, work: Path) -> Sample:
        name = f"turnout b={batch_size}"
        if ctx.copy_available:
            return Sample(source.rows, "copy", name, 0, 0.0, False, ctx.copy_available)
        params = turnout_copy_params(source, work, batch_size, ctx.options.jobs)
        env = child_env(**{DSN_ENV: ctx.cluster.url(TARGET_DB), "PGTZ": "UTC"})
        argv = hostside_argv("sqlite_copy", params)
        finished = run_measured(argv, env, ctx.options.timeout, work / "run.log")
        sample = sample_from(ctx, source, name, finished)
        answer = hostside_answer(finished.stdout)
        sample.inner = {k: v for k, v in answer.items() if k == "seconds" or k.endswith("_seconds")}
        if sample.ok and answer.get("ok") is False:
            sample.ok, sample.note = False, redact(ctx, str(answer.get("error", "failed")))[:400]
        return sample

    return run


# Contender: pgloader ------------------------------------------------------------------------------


def pgloader_file(ctx: Context, source: Source, directory: Path, options: str | None) -> Path:
    """The load file (0600, no password: pgloader reads PGPASSWORD) in a private directory."""
    target = f"pgsql://postgres@127.0.0.1:{ctx.cluster.port}/{TARGET_DB}"
    with_clause = f"\n  WITH {options}" if options else ""
    text = (
        f"LOAD DATABASE\n  FROM sqlite://{source.path}\n  INTO {target}{with_clause}\n"
        "  SET timezone = 'UTC'\n;\n"
    )
    path = directory / "copy.load"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path


def pgloader_run(name: str, options: str | None) -> Callable[[Context, Source, Path], Sample]:
    def run(ctx: Context, source: Source, work: Path) -> Sample:
        with tempfile.TemporaryDirectory(prefix="bench-pgloader-") as private:
            os.chmod(private, 0o700)
            load = pgloader_file(ctx, source, Path(private), options)
            argv = [PGLOADER, "--root-dir", str(Path(private) / "root"), str(load)]
            env = child_env(PGPASSWORD=ctx.cluster.password)
            finished = run_measured(argv, env, ctx.options.timeout, work / "run.log")
        sample = sample_from(ctx, source, name, finished)
        if sample.ok and " ✗ " in finished.stdout + finished.stderr:
            sample.ok, sample.note = False, "pgloader reported errors"
        return sample

    return run


# Contender: psql \copy, two sessions --------------------------------------------------------------


def split_two(tables: list[str], sizes: dict[str, int]) -> list[list[str]]:
    """``tables`` across two sessions, largest first onto the lighter one (by CSV bytes)."""
    groups: list[list[str]] = [[], []]
    loads = [0, 0]
    for table in sorted(tables, key=lambda t: -sizes[t]):
        lighter = loads.index(min(loads))
        groups[lighter].append(table)
        loads[lighter] += sizes[table]
    return [g for g in groups if g]


def copy_line(conn: psycopg.Connection, table: str, path: Path) -> str:
    if "'" in str(path):
        raise ValueError(f"{path}: a quote in a \\copy file name")
    name = sql.Identifier(table).as_string(conn)
    return f"\\copy {name} FROM '{path}' WITH (FORMAT csv)"


def sequence_lines(conn: psycopg.Connection, tables: list[str]) -> list[str]:
    """Each table's serial sequence set past its data (as the other contenders do)."""
    template = sql.SQL(
        "SELECT setval(pg_get_serial_sequence({}, 'id'), coalesce(max(id), 0) + 1, false) FROM {};"
    )
    return [
        template.format(sql.Literal(table), sql.Identifier(table)).as_string(conn)
        for table in tables
    ]


def psql_copy(
    ctx: Context, source: Source, work: Path, stages: list[list[list[str]]], name: str
) -> Sample:
    """Run ``stages`` (each a list of per-session script lines, run at once) one after another,
    timed as a whole."""
    env = child_env(**ctx.cluster.libpq_env(TARGET_DB))
    log = work / "run.log"
    started = time.perf_counter()
    for index, groups in enumerate(stages):
        error = run_parallel(groups, env, ctx.options.timeout, log.with_name(f"stage{index}.log"))
        if error:
            return Sample(source.rows, "copy", name, 0, 0.0, False, redact(ctx, error))
    seconds = time.perf_counter() - started
    return Sample(source.rows, "copy", name, 0, round(seconds, 3), True)


def copy_before(ctx: Context, source: Source, work: Path) -> Sample:
    tables = list(source.counts)
    with connect(ctx.cluster, TARGET_DB) as conn:
        lines = {t: copy_line(conn, t, source.csv_dir / f"{t}.csv") for t in tables}
        sequences = sequence_lines(conn, tables)
    children = split_two([t for t in tables if t != "users"], source.csv_bytes)
    stages = [
        [[lines["users"]]],
        [[lines[t] for t in group] for group in children],
        [sequences],
    ]
    return psql_copy(ctx, source, work, stages, "\\copy x2 constraints before")


def drop_for_after(ctx: Context) -> list[tuple[str, str, str, str, str]]:
    """Drop the schema's keys, unique constraints, foreign keys and secondary indexes (check
    constraints stay); answer their recorded definitions."""
    recorded = [row for row in catalog(ctx.cluster, TARGET_DB) if row[4] != "c"]
    with connect(ctx.cluster, TARGET_DB) as conn:
        for kind, table, name, _, _ in sorted(recorded, key=lambda r: r[4] != "f"):
            if kind == "index":
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
            else:
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                        sql.Identifier(table), sql.Identifier(name)
                    )
                )
    return recorded


def recreate_line(conn: psycopg.Connection, row: tuple[str, str, str, str, str]) -> str:
    kind, table, name, definition, _ = row
    if kind == "index":
        return definition + ";"
    return (
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ")
        .format(sql.Identifier(table), sql.Identifier(name))
        .as_string(conn)
        + definition
        + ";"
    )


def copy_after(ctx: Context, source: Source, work: Path) -> Sample:
    recorded = drop_for_after(ctx)
    tables = list(source.counts)
    groups = split_two(tables, source.csv_bytes)
    with connect(ctx.cluster, TARGET_DB) as conn:
        loads = [[copy_line(conn, t, source.csv_dir / f"{t}.csv") for t in g] for g in groups]
        keys = [
            [recreate_line(conn, r) for r in recorded if r[1] in group and r[4] != "f"]
            for group in groups
        ]
        foreign = [recreate_line(conn, r) for r in recorded if r[4] == "f"]
        sequences = sequence_lines(conn, tables)
    halves = [foreign[::2], foreign[1::2]]
    stages = [loads, keys, [h for h in halves if h], [sequences]]
    return psql_copy(ctx, source, work, stages, "\\copy x2 constraints after")


# Verification -------------------------------------------------------------------------------------


def md5_query(conn: psycopg.Connection, table: str) -> str:
    query = sql.SQL("SELECT {name}, md5(string_agg(t::text, '' ORDER BY id)) FROM {table} AS t;")
    return query.format(name=sql.Literal(table), table=sql.Identifier(table)).as_string(conn)


def verify_md5(ctx: Context, source: Source, work: Path) -> Sample:
    with connect(ctx.cluster, VERIFY_DB) as conn:
        lines = [md5_query(conn, t) for t in source.counts]
    script = work / "md5.sql"
    script.write_text("\n".join(lines) + "\n")
    argv = [PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", str(script)]
    env = child_env(**ctx.cluster.libpq_env(VERIFY_DB))
    finished = run_measured(argv, env, ctx.options.timeout, work / "run.log")
    return sample_from(ctx, source, "md5(string_agg) psql", finished, "verify")


def verify_turnout(ctx: Context, source: Source, work: Path) -> Sample:
    name = "turnout sqlite_verify"
    if ctx.verify_available:
        return Sample(source.rows, "verify", name, 0, 0.0, False, ctx.verify_available)
    params = {
        "sqlite_path": str(source.path),
        "dsn_env": DSN_ENV,
        "env_file": None,
        "sample": None,
        "report_path": str(work / "verify-report.json"),
    }
    env = child_env(**{DSN_ENV: ctx.cluster.url(VERIFY_DB), "PGTZ": "UTC"})
    finished = run_measured(
        hostside_argv("sqlite_verify", params), env, ctx.options.timeout, work / "run.log"
    )
    sample = sample_from(ctx, source, name, finished, "verify")
    answer = hostside_answer(finished.stdout)
    sample.inner = {k: v for k, v in answer.items() if k == "seconds" or k.endswith("_seconds")}
    if sample.ok and answer.get("ok") is False:
        sample.ok, sample.note = False, redact(ctx, str(answer.get("error", "failed")))[:400]
    elif sample.ok and answer.get("matched") is not True:
        sample.ok, sample.note = False, "the verification did not match"
    return sample


def load_for_verify(ctx: Context, source: Source) -> None:
    """``VERIFY_DB``: loaded by turnout's copy when it runs, else by ``\\copy``."""
    work = RUNS / f"{source.rows}-verify-load"
    work.mkdir(parents=True, exist_ok=True)
    fresh_database(ctx.cluster, TARGET_DB, schema=True)
    sample = turnout_copy(ctx.options.batch_sizes[-1])(ctx, source, work)
    loaded_by = "turnout copy"
    if not sample.ok:
        fresh_database(ctx.cluster, TARGET_DB, schema=True)
        sample = copy_after(ctx, source, work)
        loaded_by = "\\copy"
    with connect(ctx.cluster, "postgres") as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(VERIFY_DB))
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                sql.Identifier(TARGET_DB), sql.Identifier(VERIFY_DB)
            )
        )
        conn.execute("CHECKPOINT")
    remove_large_files(work)
    ctx.verify_loaded_by[source.rows] = loaded_by if sample.ok else "failed: " + sample.note


# Rounds -------------------------------------------------------------------------------------------


def contenders(options: Options) -> list[Contender]:
    found = [
        Contender(f"turnout b={b}", True, turnout_copy(b), batch_size=b)
        for b in options.batch_sizes
    ]
    found += [
        Contender(
            "pgloader existing schema",
            True,
            pgloader_run("pgloader existing schema", PGLOADER_WITH),
        ),
        Contender("pgloader own schema", False, pgloader_run("pgloader own schema", None)),
        Contender("\\copy x2 constraints before", True, copy_before),
        Contender("\\copy x2 constraints after", True, copy_after),
    ]
    if options.only:
        found = [c for c in found if any(c.name.startswith(o) for o in options.only)]
    return found


def round_order(items: list, round_no: int) -> list:
    return list(items) if round_no % 2 == 1 else list(reversed(items))


def remove_large_files(work: Path) -> None:
    """Drop a sample's copies of the SQLite file (turnout's snapshot): 165 MiB each at 1M rows."""
    for path in work.rglob("*"):
        if path.is_file() and path.stat().st_size >= 2**20:
            path.unlink()


def run_copy_sample(ctx: Context, source: Source, contender: Contender, round_no: int) -> Sample:
    key = contender.name.replace(" ", "_").replace("\\", "").replace("=", "")
    work = RUNS / f"{source.rows}-r{round_no}-{key}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fresh_database(ctx.cluster, TARGET_DB, contender.schema)
    load = os.getloadavg()[0]
    sample = contender.run(ctx, source, work)
    sample.round, sample.load = round_no, round(load, 2)
    if sample.ok:
        problem = check_loaded(ctx, source, TARGET_DB, contender.schema)
        if problem:
            sample.ok, sample.note = False, problem
        elif contender.schema:
            sample.note = compare_content(ctx, source, contender.name)
    remove_large_files(work)
    shown = f"{sample.seconds:.2f} s" if sample.ok else f"FAILED {sample.note[:200]}"
    say(f"{source.rows:,} r{round_no} copy {contender.name}: {shown}")
    return sample


def run_verify_sample(ctx: Context, source: Source, name: str, round_no: int) -> Sample:
    work = RUNS / f"{source.rows}-r{round_no}-verify-{name.split()[0]}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    load = os.getloadavg()[0]
    run = verify_turnout if name == "turnout" else verify_md5
    sample = run(ctx, source, work)
    sample.round, sample.load = round_no, round(load, 2)
    remove_large_files(work)
    shown = f"{sample.seconds:.2f} s" if sample.ok else f"FAILED {sample.note[:200]}"
    say(f"{source.rows:,} r{round_no} verify {sample.contender}: {shown}")
    return sample


def bench_size(ctx: Context, rows: int) -> None:
    source = prepare_source(rows)
    ctx.sources[rows] = source
    if ctx.expected_catalog is None:
        fresh_database(ctx.cluster, TARGET_DB, schema=True)
        ctx.expected_catalog = catalog(ctx.cluster, TARGET_DB)
    chosen = contenders(ctx.options)
    for round_no in range(1, ctx.options.rounds + 1):
        for contender in round_order(chosen, round_no):
            ctx.samples.append(run_copy_sample(ctx, source, contender, round_no))
    if ctx.options.verify:
        load_for_verify(ctx, source)
        for round_no in range(1, ctx.options.rounds + 1):
            for name in round_order(["turnout", "md5"], round_no):
                ctx.samples.append(run_verify_sample(ctx, source, name, round_no))
    shutil.rmtree(source.csv_dir, ignore_errors=True)  # exported again by every run


# Report -------------------------------------------------------------------------------------------


def seconds_of(ctx: Context, rows: int, measurement: str, contender: str) -> list[float]:
    return [
        s.seconds
        for s in ctx.samples
        if s.rows == rows and s.measurement == measurement and s.contender == contender and s.ok
    ]


def summary(values: list[float]) -> dict | None:
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 3),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def cell(stat: dict | None) -> str:
    if stat is None:
        return "failed/n.a."
    return f"{stat['median']:.2f} ({stat['min']:.2f}-{stat['max']:.2f})"


def rate(rows: int, stat: dict | None) -> float | None:
    return rows / stat["median"] if stat and stat["median"] > 0 else None


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def peak_rss(ctx: Context, rows: int, contender: str) -> dict | None:
    """The largest peak RSS of a contender's samples (None when it was not measured)."""
    found = [
        s
        for s in ctx.samples
        if s.rows == rows and s.contender == contender and s.ok and s.rss_tree_kib is not None
    ]
    if not found:
        return None
    return {
        "tree_kib": max(s.rss_tree_kib or 0 for s in found),
        "maxrss_kib": max(s.maxrss_kib or 0 for s in found),
    }


def copy_rows(ctx: Context) -> list[dict]:
    """Per size and contender (in the contenders' order): seconds, rows/s, peak RSS."""
    measured = {s.contender for s in ctx.samples if s.measurement == "copy"}
    names = [c.name for c in contenders(ctx.options) if c.name in measured]
    result = []
    for rows in ctx.sources:
        for name in names:
            stat = summary(seconds_of(ctx, rows, "copy", name))
            result.append(
                {
                    "rows": rows,
                    "contender": name,
                    "seconds": stat,
                    "rows_per_s": rate(rows, stat),
                    "rss": peak_rss(ctx, rows, name),
                }
            )
    return result


def ratio_rows(ctx: Context, table: list[dict]) -> list[dict]:
    """turnout's rows/s over each raw tool's, per size and batch size, against the targets."""
    by = {(r["rows"], r["contender"]): r["rows_per_s"] for r in table}
    result = []
    for rows in ctx.sources:
        for batch in ctx.options.batch_sizes:
            mine = by.get((rows, f"turnout b={batch}"))
            for raw, target in (
                ("pgloader existing schema", TARGETS["pgloader"]),
                ("pgloader own schema", TARGETS["pgloader"]),
                ("\\copy x2 constraints before", TARGETS["copy"]),
                ("\\copy x2 constraints after", TARGETS["copy"]),
            ):
                theirs = by.get((rows, raw))
                ratio = round(mine / theirs, 2) if mine and theirs else None
                verdict = "" if ratio is None else ("met" if ratio >= target else "missed")
                result.append(
                    {
                        "rows": rows,
                        "turnout": f"b={batch}",
                        "raw": raw,
                        "ratio": ratio,
                        "target": f">= {target}x",
                        "verdict": verdict,
                    }
                )
    return result


def verify_rows(ctx: Context) -> list[dict]:
    result = []
    for rows in ctx.sources:
        mine = summary(seconds_of(ctx, rows, "verify", "turnout sqlite_verify"))
        raw = summary(seconds_of(ctx, rows, "verify", "md5(string_agg) psql"))
        ratio = round(raw["median"] / mine["median"], 2) if mine and raw else None
        result.append(
            {
                "rows": rows,
                "turnout_s": mine,
                "md5_s": raw,
                "turnout_rows_per_side_s": rate(rows, mine),
                "md5_rows_s": rate(rows, raw),
                "speed_ratio": ratio,
                "loaded_by": ctx.verify_loaded_by.get(rows),
            }
        )
    return result


def rss_lines(ctx: Context) -> list[str]:
    sizes = sorted(ctx.sources)
    lines = []
    for batch in ctx.options.batch_sizes:
        name = f"turnout b={batch}"
        peaks = {rows: peak_rss(ctx, rows, name) for rows in sizes}
        shown = ", ".join(
            f"{rows:,} rows: tree {p['tree_kib'] / 1024:.0f} MiB, ru_maxrss "
            f"{p['maxrss_kib'] / 1024:.0f} MiB"
            if p
            else f"{rows:,} rows: n/a"
            for rows, p in peaks.items()
        )
        low, high = peaks[sizes[0]], peaks[sizes[-1]]
        verdict = ""
        if low and high and len(sizes) > 1 and low["tree_kib"]:
            growth = high["tree_kib"] / low["tree_kib"] - 1
            met = "met" if growth <= TARGETS["rss_growth"] else "missed"
            verdict = f"; growth {growth * 100:+.0f} % (target within 20 %: {met})"
        lines.append(f"copier peak RSS, {name}: {shown}{verdict}")
    return lines


def inner_lines(ctx: Context) -> list[str]:
    """The medians of what turnout's actions say they spent (``*_seconds`` in their answers)
    beside the wall time measured here (start-up, snapshot, checks, set-aside recreation)."""
    lines = []
    names = sorted({s.contender for s in ctx.samples if s.inner})
    for rows in ctx.sources:
        for name in names:
            found = [s.inner for s in ctx.samples if s.rows == rows and s.contender == name]
            keys = sorted({k for inner in found for k in inner})
            shown = ", ".join(
                f"{k} {statistics.median([i[k] for i in found if k in i]):.2f}" for k in keys
            )
            if shown:
                lines.append(f"{rows:,} {name}, as the action reports it (median s): {shown}")
    return lines


def fmt_rate(value: float | None) -> str:
    return f"{value:,.0f}" if value else "n/a"


def report_text(ctx: Context, wall: float) -> str:
    table = copy_rows(ctx)
    head = (
        f"turnout copy benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: SQLite web-app "
        f"database ({', '.join(f'{r:,}' for r in ctx.sources)} rows), {ctx.options.rounds} "
        f"round(s) interleaved, medians in seconds (min-max); {os.cpu_count()} CPUs; wall "
        f"{wall / 60:.1f} min; {load_line(ctx)}"
    )
    copy_table = format_table(
        ["rows", "contender", "seconds (min-max)", "rows/s", "peak RSS tree MiB"],
        [
            [
                f"{r['rows']:,}",
                r["contender"],
                cell(r["seconds"]),
                fmt_rate(r["rows_per_s"]),
                f"{r['rss']['tree_kib'] / 1024:.0f}" if r["rss"] else "n/a",
            ]
            for r in table
        ],
    )
    ratios = format_table(
        ["rows", "turnout", "versus", "rows/s ratio", "target"],
        [
            [
                f"{r['rows']:,}",
                r["turnout"],
                r["raw"],
                f"{r['ratio']:.2f}x" if r["ratio"] is not None else "n/a",
                f"{r['target']} {r['verdict']}".strip(),
            ]
            for r in ratio_rows(ctx, table)
        ],
    )
    verify = format_table(
        [
            "rows",
            "turnout verify s",
            "rows/s per side",
            "md5 psql s",
            "rows/s",
            "turnout speed / md5",
            "target",
            "verified database loaded by",
        ],
        [
            [
                f"{r['rows']:,}",
                cell(r["turnout_s"]),
                fmt_rate(r["turnout_rows_per_side_s"]),
                cell(r["md5_s"]),
                fmt_rate(r["md5_rows_s"]),
                f"{r['speed_ratio']:.2f}x" if r["speed_ratio"] else "n/a",
                ">= 300,000 "
                + ("met" if (r["turnout_rows_per_side_s"] or 0) >= 300_000 else "missed"),
                r["loaded_by"] or "n/a",
            ]
            for r in verify_rows(ctx)
        ],
    )
    parts = [head, "", copy_table, "", ratios, "", *rss_lines(ctx), *inner_lines(ctx)]
    if ctx.options.verify:
        parts += ["", verify]
    parts += [
        "",
        *ctx.code,
        *source_lines(ctx),
        f"pgloader existing schema: WITH {PGLOADER_WITH}; "
        "SET timezone = 'UTC'; pgloader own schema: no WITH (defaults), same SET",
    ]
    notes = ctx.notes + [
        f"r{s.round} {s.measurement} {s.contender} ({s.rows:,}): {s.note}"
        for s in ctx.samples
        if s.note
    ]
    if notes:
        parts += ["", "notes:", *(f"- {n}" for n in notes)]
    return "\n".join(parts)


def source_lines(ctx: Context) -> list[str]:
    return [
        f"{s.rows:,} rows: {s.path.name} ({s.path.stat().st_size / 2**20:.0f} MiB; "
        + ", ".join(f"{t} {n:,}" for t, n in s.counts.items())
        + f"); CSV export (not in the copy times) {s.export_seconds:.1f} s"
        for s in ctx.sources.values()
    ]


MEASURED_CODE = ("turnout/hostside/pgload.py", "turnout/hostside/pgverify.py")


def code_lines() -> list[str]:
    """Which turnout was measured: HEAD, and each measured action's file as it was on disk."""
    import hashlib

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - argv lists only
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False
        ).stdout.strip()

    lines = [f"turnout at {git('rev-parse', '--short', 'HEAD')}"]
    for name in MEASURED_CODE:
        path = REPO / name
        if not path.exists():
            lines.append(f"{name}: missing")
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        flag = git("status", "--short", "--", name)[:2].strip()
        state = {"": "committed", "??": "untracked"}.get(flag, "modified")
        lines.append(f"{name}: sha256 {digest} ({state})")
    return ["; ".join(lines)]


def load_line(ctx: Context) -> str:
    loads = [s.load for s in ctx.samples if s.round > 0]
    if not loads:
        return "load average n/a"
    return (
        f"1-minute load average at each sample's start: median {statistics.median(loads):.2f}"
        f" ({min(loads):.2f}-{max(loads):.2f})"
    )


def write_results(ctx: Context, text: str, wall: float) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    table = copy_rows(ctx)
    result = {
        "when": stamp,
        "options": asdict(ctx.options),
        "wall_seconds": round(wall, 1),
        "sources": {
            rows: {
                "file": s.path.name,
                "counts": s.counts,
                "export_seconds": round(s.export_seconds, 2),
            }
            for rows, s in ctx.sources.items()
        },
        "pgloader_with": PGLOADER_WITH,
        "code": ctx.code,
        "copy": table,
        "ratios": ratio_rows(ctx, table),
        "verify": verify_rows(ctx),
        "targets": TARGETS,
        "notes": ctx.notes,
        "samples": [asdict(s) for s in ctx.samples],
    }
    for name in (f"copy-{stamp}", "copy-latest"):
        (BENCH / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (BENCH / f"{name}.txt").write_text(text + "\n")


# Main ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    """The benchmarks' one lock (``scripts/bench.py`` takes it too): never two at once."""
    BENCH.mkdir(exist_ok=True)
    with open(BENCH / "bench.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit("bench-copy: another benchmark holds .bench/bench.lock") from None
        yield


def availability(ctx: Context) -> None:
    """Whether turnout's actions exist; the host-side program is built now (once per process),
    so every sample measures the code on disk at this moment, which ``ctx.code`` records."""
    ctx.code = code_lines()
    hostside_argv("sqlite_copy", {})
    ctx.copy_available = action_missing("pgload", "action_sqlite_copy")
    ctx.verify_available = action_missing("pgverify", "action_sqlite_verify")
    for what, why in (("copy", ctx.copy_available), ("verification", ctx.verify_available)):
        if why:
            ctx.notes.append(f"turnout's {what} could not be measured: {why}")
            say(f"turnout's {what} cannot run: {why}")


def claim_port(options: Options) -> Options:
    """The options with the cluster's port: ``--port`` when given, else the source-cluster port
    of a free benchmark slot (held until the process ends; a kept cluster of ours there is
    taken again)."""
    if options.port is not None:
        return options
    slot = SLOTS.claim_bench_slot(
        STACK_DIR,
        ports_of=lambda base: {"pg_source": SLOTS.stack_ports(base)["pg_source"]},
        is_own=SLOTS.is_own_cluster,
    )
    CLAIMED.append(slot)
    return replace(options, port=SLOTS.stack_ports(slot.base)["pg_source"])


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    with bench_lock():
        shutil.rmtree(RUNS, ignore_errors=True)
        RUNS.mkdir(parents=True)
        WORK.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        options = claim_port(options)
        say(f"private cluster in {STACK_DIR.relative_to(REPO)} on port {options.port}")
        ctx = Context(options=options, cluster=start_cluster(options.port))
        try:
            availability(ctx)
            try:
                for rows in options.sizes:
                    bench_size(ctx, rows)
            finally:  # what was measured is reported even when a later part broke off
                wall = time.perf_counter() - started
                text = report_text(ctx, wall)
                write_results(ctx, text, wall)
                print("\n" + text, flush=True)
        finally:
            if not options.keep:
                say("stopping the private cluster (--keep leaves it up)")
                stop_cluster()
    return 0


if __name__ == "__main__":
    sys.exit(main())
