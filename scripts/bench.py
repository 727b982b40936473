"""turnout beside the raw tools: the same data, the same stack, the same run, interleaved rounds.

    scripts/bench.sh                                   # 1,000,000 rows, 20,000 files, 3 rounds
    scripts/bench.sh --rows 20000 --files 500 --rounds 1            # a quick look
    scripts/bench.sh --compare 58f0abe                 # also another revision, interleaved
    scripts/bench.sh --keep                            # leave the stack (.bench/stack) up

What it does:

1. Brings up its own stack (``tests/stack/stack.py up`` with ``TURNOUT_STACK_DIR=.bench/stack`` on
   ``--port-base``, default the first free benchmark slot of ``tests/stack/slots.py``, claimed
   machine-wide as the tests claim theirs), seeds the source: the reference app's schema and rows
   (``stack.py seed N``, N = files // 3: three asset files per row), plus ``bench_parents`` and
   ``bench_items`` (a foreign key to parents) generated server-side with ``generate_series`` up to
   ``--rows`` rows in all, and starts the staging app with ``docker compose up``.
2. Times, in rounds whose order alternates (A B C, then C B A, …), for each turnout revision (the
   working tree, plus each ``--compare REV``) and for the raw tools on the host:

   - whole: ``pyinfra -y tests/stack/inventory.py deploys/dry_run.py --limit stack-staging --data
     evidence_timestamp=<fresh>`` versus ``pg_dump -Fc`` + ``pg_restore -f /dev/null`` +
     ``pg_restore --clean --if-exists --single-transaction`` + ``rsync -a`` + exact ``count(*)``
     of every table on both sides + one anti-join per foreign key + one GET of the health URL.
     Before each, staging is reset to empty: schema ``public`` dropped and recreated, the assets
     directory emptied (not removed: the app's container mounts it), the restore markers and the
     benchmark's evidence removed;
   - rerun: the same pinned rehearsal again (nothing to do) versus pyinfra's floor, a generated
     deploy of as many ``files.directory`` no-ops on existing directories, on ``@local`` and over
     ``@ssh`` (the stack's staging host);
   - dump: the rehearsal's dump step alone (``scripts/bench_deploys/step_only.py``: the tree's own
     ``deploys/dry_run.py`` with every other operation left out) versus ``pg_dump -Fc``; mirror:
     its mirror step alone versus ``rsync -a``. Both as the operation's own time (from pyinfra's
     output, stamped as it streams) and as the whole pyinfra run (start-up, pre-flight, the step);
   - validate: the host-side validation alone (row counts on both sides and the orphan checks, as
     ``validate.database`` runs them, without pyinfra) versus the same queries through ``psql``.

   Both sides use the same flags (``--no-owner --no-acl``, ``--exit-on-error``), the same DSNs
   (read from the staging host's ``.env``; passwords only in the child's environment), the same
   source and target.
3. ``--compare REV`` checks REV out as a git worktree in ``.bench/rev-<sha>`` with its own
   virtualenv (made by the interpreter behind ``.venv``, then ``pip install -e
   '<worktree>[test,stack]'``) and runs that revision's ``pyinfra`` from its worktree, so it
   imports that revision's turnout and deploys, against the same stack and data. The worktree and
   its venv are reused by later runs (``git worktree remove --force .bench/rev-<sha>`` drops one).
4. Each turnout run gets ``TURNOUT_STATS=<file>``; when turnout writes it (host-side calls and
   bytes), the numbers go in the table. A revision that never writes it is run once more, untimed,
   with ``-vv``, and its host-side calls and command bytes are estimated from the printed commands.

Results: ``.bench/latest.json`` and ``.bench/latest.txt`` (also kept as ``.bench/bench-<time>.*``),
every run's output in ``.bench/runs/``. Targets are reported, never asserted. The stack is taken
down at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / ".bench"
STACK_DIR = BENCH / "stack"
RUNS = BENCH / "runs"
WORK = BENCH / "work"
FLOOR = BENCH / "floor"
STEP_ONLY = REPO / "scripts" / "bench_deploys" / "step_only.py"
DUMP_STEP = "Dump the source database"  # operation names in deploys/dry_run.py
MIRROR_STEP = "Mirror the assets"
INVENTORY = "tests/stack/inventory.py"
REHEARSAL = "deploys/dry_run.py"
LIMIT = ("--limit", "stack-staging")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PARENTS_MAX = 10_000
HEREDOC_MARKER = "__TURNOUT_HOSTSIDE_EOF__"  # the host-side program's here-document (old revisions)
RAW = "raw"
STATS_KEYS = ("hostside_calls", "hostside_bytes", "ship_bytes", "full_dump_reads")


# Options, trees, samples ------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    rows: int
    files: int
    rounds: int
    compare: tuple[str, ...]
    keep: bool
    port_base: int | None
    timeout: int


@dataclass(frozen=True)
class Tree:
    """A turnout revision: a checkout and the virtualenv whose pyinfra imports it."""

    label: str  # "working tree" or the short sha
    key: str  # used in names: "wt" or the short sha
    root: Path
    venv: Path
    sha: str

    @property
    def side(self) -> str:
        return f"turnout:{self.key}"

    @property
    def pyinfra(self) -> str:
        return str(self.venv / "bin" / "pyinfra")

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")


@dataclass
class Sample:
    measurement: str  # whole, rerun, noop, dump, mirror, validate, and *-vv (untimed estimates)
    side: str  # turnout:<key>, raw, floor@local/<n>, floor@ssh/<n>
    round: int
    seconds: float
    ok: bool
    note: str = ""
    stats: dict | None = None
    spans: dict[str, float] = field(default_factory=dict)
    load: float = 0.0
    log: str = ""


@dataclass
class Run:
    seconds: float
    code: int
    lines: list[tuple[float, str]]

    @property
    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)


@dataclass(frozen=True)
class SeedPlan:
    refapp_rows: int  # per table of the reference app (4 tables), three asset files each
    parents: int
    items: int
    extra_files: int

    @property
    def rows(self) -> int:
        return 4 * self.refapp_rows + 3 + self.parents + self.items  # + 2 users, 1 alembic row

    @property
    def files(self) -> int:
        return 3 * self.refapp_rows + self.extra_files


@dataclass
class Context:
    options: Options
    trees: list[Tree]
    stack: dict
    plan: SeedPlan
    source_env: dict[str, str]
    target_env: dict[str, str]
    health_url: str
    assets_source: Path
    assets_target: Path
    evidence_root: Path
    operations: dict[str, int] = field(default_factory=dict)
    validate_commands: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    @property
    def host_python(self) -> str:
        return self.stack["python"]


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the source, in all")
    parser.add_argument("--files", type=int, default=20_000, help="asset files in the source")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument(
        "--compare", action="append", default=[], metavar="REV", help="also benchmark REV"
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack up afterwards")
    parser.add_argument(
        "--port-base", type=int, help="the stack's port base (default: a free benchmark slot)"
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds for any one run")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.files < 3 or args.rows < 1:
        parser.error("--rounds must be >= 1, --files >= 3, --rows >= 1")
    return Options(
        rows=args.rows,
        files=args.files,
        rounds=args.rounds,
        compare=tuple(args.compare),
        keep=args.keep,
        port_base=args.port_base,
        timeout=args.timeout,
    )


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


# Processes ----------------------------------------------------------------------------------------


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "TURNOUT_STATS")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def tree_env(tree: Tree, **extra: str) -> dict[str, str]:
    return base_env(PATH=f"{tree.venv / 'bin'}:{os.environ.get('PATH', '')}", **extra)


def run_timed(argv: list[str], cwd: Path, env: dict[str, str], timeout: int) -> Run:
    """Run ``argv`` with stdout and stderr merged, each line stamped with the seconds since the
    start (so the time of each pyinfra operation can be read off its output)."""
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - argv lists only
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
    )
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        assert process.stdout is not None
        lines = [(time.perf_counter() - started, line.rstrip("\n")) for line in process.stdout]
        code = process.wait()
    finally:
        timer.cancel()
    return Run(time.perf_counter() - started, code, lines)


def check(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    return subprocess.run(argv, **kwargs)  # noqa: S603 - argv lists only


def tail(text: str, lines: int = 12) -> str:
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


# The stack ----------------------------------------------------------------------------------------


def stack_module(name: str = "stack") -> ModuleType:
    """``tests/stack/<name>.py`` (not a package): the stack's helpers, reading
    ``TURNOUT_STACK_DIR``, or its port slots."""
    spec = importlib.util.spec_from_file_location(
        f"turnout_{name}", REPO / "tests" / "stack" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STACK = stack_module()
SLOTS = stack_module("slots")  # the machine-wide port slots, shared with the tests


def stack_command(*args: str) -> None:
    check([sys.executable, str(REPO / "tests/stack/stack.py"), *args], cwd=REPO, env=base_env())


def superuser(role: str, dbname: str = "app"):  # noqa: ANN201 - a psycopg connection
    import psycopg

    return psycopg.connect(**STACK.superuser_conninfo(role), dbname=dbname, autocommit=True)


def read_env_file(path: str) -> dict[str, str]:
    """A stack host's ``.env`` as compose reads it (values are double-quoted: the stack's
    passwords hold ``@ : / % # ' "`` and spaces)."""
    from turnout.hostside.envfile import read_env_file as read_with_compose_rules

    return read_with_compose_rules(path, lookup=lambda name: None)


def libpq_env(url: str) -> dict[str, str]:
    """libpq's environment for a ``postgresql[+driver]://`` URL: the password never on argv."""
    parts = urllib.parse.urlsplit(url)
    return {
        "PGHOST": parts.hostname or "127.0.0.1",
        "PGPORT": str(parts.port or 5432),
        "PGUSER": urllib.parse.unquote(parts.username or ""),
        "PGPASSWORD": urllib.parse.unquote(parts.password or ""),
        "PGDATABASE": parts.path.lstrip("/"),
    }


def compose_argv(host: dict, *args: str) -> list[str]:
    return [
        STACK.DOCKER,
        "compose",
        "--env-file",
        host["env_file"],
        "-f",
        host["compose_file"],
        "-p",
        host["compose_project"],
        *args,
    ]


def app_answers(url: str) -> bool:
    """Whether the app answers at all (a 503 while staging is empty counts)."""
    try:
        with urllib.request.urlopen(url, timeout=5):  # noqa: S310 - the stack's own URL
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def ensure_app(ctx: Context) -> None:
    """The staging app must answer: brought up with ``docker compose up`` when it does not (the
    Docker engine may belong to another stack that went down meanwhile)."""
    if app_answers(ctx.health_url):
        return
    say("the staging app does not answer; bringing the stack and the app up")
    stack_command("up")
    host = ctx.stack["hosts"]["staging"]
    check(compose_argv(host, "up", "--detach"), stdout=subprocess.DEVNULL, timeout=600)
    STACK.wait_until(lambda: app_answers(ctx.health_url), "the staging app to answer", 240)
    ctx.notes.append("the staging app was brought up again during the run")


# Seeding ------------------------------------------------------------------------------------------


def seed_plan(rows: int, files: int) -> SeedPlan:
    refapp_rows = files // 3
    rest = rows - (4 * refapp_rows + 3)
    if rest < 2:
        raise SystemExit(
            f"bench: --rows {rows} is too few for --files {files}: the reference app's tables "
            f"alone hold {4 * refapp_rows + 3} rows; give at least {4 * refapp_rows + 5}"
        )
    parents = max(1, min(PARENTS_MAX, rest // 100))
    return SeedPlan(refapp_rows, parents, rest - parents, files - 3 * refapp_rows)


def reset_source(assets: Path) -> None:
    with superuser("source") as conn:
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
        conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
    empty_directory(assets)


def create_bulk_tables(plan: SeedPlan) -> None:
    """``bench_parents`` and ``bench_items`` (a foreign key and its index), owned by ``app``,
    generated on the server."""
    with superuser("source") as conn:
        conn.execute("SET ROLE app")
        conn.execute("DROP TABLE IF EXISTS public.bench_items, public.bench_parents")
        conn.execute("CREATE TABLE public.bench_parents (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute(
            "INSERT INTO public.bench_parents SELECT i, 'parent ' || i "
            "FROM generate_series(1, %s) AS i",
            (plan.parents,),
        )
        conn.execute(
            "CREATE TABLE public.bench_items (id bigint PRIMARY KEY, "
            "parent_id int NOT NULL REFERENCES public.bench_parents (id), "
            "payload text NOT NULL, created_at timestamptz NOT NULL)"
        )
        conn.execute(
            "INSERT INTO public.bench_items SELECT i, 1 + i %% %s, md5(i::text), "
            "timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' "
            "FROM generate_series(1, %s) AS i",
            (plan.parents, plan.items),
        )
        conn.execute("CREATE INDEX bench_items_parent_id_idx ON public.bench_items (parent_id)")
        conn.execute("RESET ROLE")
        conn.execute("VACUUM ANALYZE")


def write_extra_files(assets: Path, count: int) -> None:
    for index in range(count):
        path = assets / "bench-extra" / f"file-{index}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"extra asset {index}\n".encode())


def seed_source(plan: SeedPlan, assets: Path) -> None:
    """The source side, unless it already holds exactly this plan (``--keep`` and a rerun)."""
    record = STACK_DIR / "bench_seed.json"
    wanted = asdict(plan)
    if record.exists() and json.loads(record.read_text()) == wanted:
        say("source already seeded with this plan; reused")
        return
    record.unlink(missing_ok=True)
    say(
        f"seeding the source: {plan.refapp_rows} rows per reference-app table, "
        f"{plan.parents} parents, {plan.items} items, {plan.files} files"
    )
    started = time.perf_counter()
    reset_source(assets)
    stack_command("seed", str(plan.refapp_rows))
    write_extra_files(assets, plan.extra_files)
    create_bulk_tables(plan)
    record.write_text(json.dumps(wanted, indent=2) + "\n")
    say(f"seeded in {time.perf_counter() - started:.1f}s")


def source_tables(conn) -> list[tuple[str, str]]:  # noqa: ANN001
    return conn.execute(
        "SELECT schemaname::text, tablename::text FROM pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
        "AND schemaname !~ '^pg_' ORDER BY 1, 2"
    ).fetchall()


def source_foreign_keys(conn) -> list[tuple]:  # noqa: ANN001
    """(schema, table, columns, ref schema, ref table, ref columns) of every foreign key."""
    return conn.execute(
        "SELECT n.nspname::text, t.relname::text, "
        "  ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord) "
        "        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "        ORDER BY k.ord), "
        "  rn.nspname::text, r.relname::text, "
        "  ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, ord) "
        "        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum "
        "        ORDER BY k.ord) "
        "FROM pg_constraint c "
        "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace "
        "JOIN pg_class r ON r.oid = c.confrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace "
        "WHERE c.contype = 'f' AND c.conparentid = 0 AND n.nspname !~ '^pg_' "
        "AND n.nspname <> 'information_schema' ORDER BY 1, 2, c.conname"
    ).fetchall()


def write_raw_sql() -> dict:
    """``counts.sql`` (an exact count per table) and ``orphans.sql`` (one anti-join per foreign
    key, the same query form as turnout's) for psql; the source's catalog, which the restore
    copies to staging."""
    from psycopg import sql

    with superuser("source") as conn:
        tables = source_tables(conn)
        keys = source_foreign_keys(conn)
        counts = [
            sql.SQL("SELECT count(*) FROM {};").format(sql.Identifier(schema, table))
            for schema, table in tables
        ]
        orphans = []
        for schema, table, columns, ref_schema, ref_table, ref_columns in keys:
            not_null = sql.SQL(" AND ").join(
                sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c)) for c in columns
            )
            match = sql.SQL(" AND ").join(
                sql.SQL("p.{} = c.{}").format(sql.Identifier(p), sql.Identifier(c))
                for c, p in zip(columns, ref_columns, strict=True)
            )
            orphans.append(
                sql.SQL(
                    "SELECT count(*) FROM {} AS c WHERE {} AND NOT EXISTS "
                    "(SELECT 1 FROM {} AS p WHERE {});"
                ).format(
                    sql.Identifier(schema, table),
                    not_null,
                    sql.Identifier(ref_schema, ref_table),
                    match,
                )
            )
        (WORK / "counts.sql").write_text("\n".join(q.as_string(conn) for q in counts) + "\n")
        (WORK / "orphans.sql").write_text("\n".join(q.as_string(conn) for q in orphans) + "\n")
        total = sum(
            conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))
            ).fetchone()[0]
            for schema, table in tables
        )
    return {"tables": len(tables), "foreign_keys": len(keys), "rows": total}


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


# Staging reset ------------------------------------------------------------------------------------


def empty_directory(path: Path) -> None:
    """Remove what ``path`` holds, keeping the directory (a container may have it mounted)."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def remove_bench_evidence(ctx: Context) -> None:
    shutil.rmtree(ctx.evidence_root / "dry_run", ignore_errors=True)
    for marker in (ctx.evidence_root / "state").glob("restored-*.json"):
        marker.unlink()


def reset_staging(ctx: Context) -> None:
    """Staging as before a first rehearsal: an empty schema ``public``, an empty assets
    directory, no restore marker, none of the benchmark's evidence."""
    with superuser("staging") as conn:
        conn.execute("SET lock_timeout = '60s'")
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
        conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
    empty_directory(ctx.assets_target)
    remove_bench_evidence(ctx)


# Trees --------------------------------------------------------------------------------------------


def git(*args: str, cwd: Path = REPO) -> str:
    return check(["git", *args], cwd=cwd, capture_output=True, text=True).stdout.strip()


def working_tree() -> Tree:
    return Tree("working tree", "wt", REPO, REPO / ".venv", git("rev-parse", "HEAD"))


def compare_tree(rev: str) -> Tree:
    """``rev`` as a worktree in ``.bench/rev-<sha>`` with its own venv (made once, then reused)."""
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    root = BENCH / f"rev-{sha[:12]}"
    if not (root / ".git").exists():
        say(f"checking out {rev} ({sha[:12]}) as a worktree in {root.relative_to(REPO)}")
        shutil.rmtree(root, ignore_errors=True)  # a checkout that broke off
        git("worktree", "prune")
        git("worktree", "add", "--detach", str(root), sha)
    elif git("rev-parse", "HEAD", cwd=root) != sha:
        git("checkout", "--quiet", "--detach", sha, cwd=root)
    venv = root / ".venv"
    stamp = venv / ".bench-installed"
    if not stamp.exists() or stamp.read_text().strip() != sha:
        say(f"making {venv.relative_to(REPO)} (pip install -e '<worktree>[test,stack]')")
        python = os.environ.get("PYTHON") or getattr(sys, "_base_executable", sys.executable)
        check([python, "-m", "venv", str(venv)])
        check(
            [
                str(venv / "bin/pip"),
                "install",
                "-q",
                "--disable-pip-version-check",
                "-e",
                f"{root}[test,stack]",
            ],
            env=base_env(),
        )
        stamp.write_text(sha + "\n")
    return Tree(sha[:7], sha[:7], root, venv, sha)


def imported_turnout(tree: Tree) -> str:
    """Where ``turnout`` comes from for this tree's pyinfra (run from the tree's root)."""
    result = check(
        [tree.python, "-c", "import turnout; print(turnout.__file__)"],
        cwd=tree.root,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or tail(result.stderr, 1)


def count_operations(deploy: Path) -> int:
    """Operations called in a deploy file (calls of ``module.op(name=...)``)."""
    return sum(
        1
        for node in ast.walk(ast.parse(deploy.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and any(k.arg == "name" for k in node.keywords)
    )


# pyinfra's output -------------------------------------------------------------------------------


def grand_total(text: str) -> tuple[int, int] | None:
    """(operations, changed) from the ``Grand total`` row (Hosts, Success, Error, No Change)."""
    for line in text.splitlines():
        fields = line.split()
        if fields[:2] == ["Grand", "total"] and len(fields) >= 4:
            count = lambda value: 0 if value == "-" else int(value)  # noqa: E731
            return count(fields[2]), count(fields[3])
    return None


def operation_spans(run: Run) -> dict[str, float]:
    """Seconds per phase, from the stamped output: ``(start)`` up to the first operation (config,
    inventory, connecting, loading the deploy and its pre-flight facts), each operation, and
    ``(end)`` from the results on."""
    spans: dict[str, float] = {}
    current, since = "(start)", 0.0
    for stamp, line in run.lines:
        text = line.strip()
        name = None
        if text.startswith("--> Starting operation:"):
            name = text.split(":", 1)[1].strip()
        elif text.startswith("--> Results:"):
            name = "(end)"
        if name is not None:
            spans[current] = spans.get(current, 0.0) + stamp - since
            current, since = name, stamp
    spans[current] = spans.get(current, 0.0) + run.seconds - since
    return {name: round(seconds, 3) for name, seconds in spans.items()}


def estimate_hostside(text: str) -> dict:
    """Host-side calls and the bytes of their command lines, from a ``-vv`` output (each command
    printed after ``>>>``; an old revision's program follows in a here-document)."""
    calls = size = 0
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        _, arrow, command = line.partition(">>> ")
        if arrow and (HEREDOC_MARKER in command or ".pyz" in command):
            calls += 1
            size += len(command) + 1
            if f"<<'\"'\"'{HEREDOC_MARKER}" in command or f"<<'{HEREDOC_MARKER}" in command:
                while index + 1 < len(lines):
                    index += 1
                    size += len(lines[index]) + 1
                    if lines[index].startswith(HEREDOC_MARKER):
                        break
        index += 1
    return {"hostside_calls": calls, "hostside_bytes": size, "estimated": "from -vv"}


# Measurements: turnout ----------------------------------------------------------------------------


def fresh_stamp(key: str, what: str, round_no: int) -> str:
    return f"bench-{key}-{what}-r{round_no}-{time.time_ns() // 1_000_000}"


def turnout_run(
    ctx: Context,
    tree: Tree,
    measurement: str,
    round_no: int,
    deploy: str,
    stamp: str,
    flags: tuple[str, ...] = (),
    step: str = "",
) -> Sample:
    """One ``pyinfra`` run of the tree's venv from the tree's root, timed, with TURNOUT_STATS
    (and ``TURNOUT_BENCH_STEP`` for ``step_only.py``)."""
    name = f"{stamp}-{measurement}"
    stats_path = RUNS / f"{name}.stats.json"
    argv = [tree.pyinfra, "-y", *flags, INVENTORY, deploy, *LIMIT]
    argv += ["--data", f"evidence_timestamp={stamp}"]
    load = os.getloadavg()[0]
    env = tree_env(tree, TURNOUT_STATS=str(stats_path), TURNOUT_BENCH_STEP=step)
    run = run_timed(argv, tree.root, env, ctx.options.timeout)
    log = RUNS / f"{name}.log"
    log.write_text(run.text + "\n")
    sample = Sample(measurement, tree.side, round_no, round(run.seconds, 3), run.code == 0)
    sample.load, sample.log = round(load, 2), str(log.relative_to(REPO))
    sample.spans = operation_spans(run)
    if stats_path.exists():
        sample.stats = json.loads(stats_path.read_text())
    total = grand_total(run.text)
    if run.code != 0:
        sample.note = f"exit {run.code}: {tail(run.text)}"
    elif measurement.startswith("whole") and "rehearsal passed" not in run.text:
        sample.ok, sample.note = False, f"no verdict: {tail(run.text)}"
    elif measurement.startswith("rerun") and total and total[1]:
        sample.note = f"{total[1]} operation(s) changed something on the rerun"
    if total and sample.ok and measurement == "whole":
        ctx.operations.setdefault(tree.key, total[0])
    return sample


def turnout_whole(ctx: Context, tree: Tree, round_no: int) -> list[Sample]:
    reset_staging(ctx)
    ensure_app(ctx)
    stamp = fresh_stamp(tree.key, "whole", round_no)
    whole = turnout_run(ctx, tree, "whole", round_no, REHEARSAL, stamp)
    if not whole.ok:
        return [whole]
    return [whole, turnout_run(ctx, tree, "rerun", round_no, REHEARSAL, stamp)]


def turnout_step(ctx: Context, tree: Tree, measurement: str, step: str, round_no: int) -> Sample:
    """One step of the tree's rehearsal alone (``step_only.py``), in a fresh evidence directory
    made beforehand (the evidence step is left out)."""
    stamp = fresh_stamp(tree.key, measurement, round_no)
    run_dir = ctx.evidence_root / "dry_run" / stamp
    for sub in ("logs", "outputs", "src_artifacts"):
        (run_dir / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    deploy = str(STEP_ONLY)
    sample = turnout_run(ctx, tree, measurement, round_no, deploy, stamp, step=step)
    if sample.ok and step not in sample.spans:
        sample.ok, sample.note = False, f"no operation {step!r} in the output"
    shutil.rmtree(run_dir, ignore_errors=True)
    return sample


def turnout_dump(ctx: Context, tree: Tree, round_no: int) -> Sample:
    return turnout_step(ctx, tree, "dump", DUMP_STEP, round_no)


def turnout_mirror(ctx: Context, tree: Tree, round_no: int) -> Sample:
    empty_directory(ctx.assets_target)
    return turnout_step(ctx, tree, "mirror", MIRROR_STEP, round_no)


VALIDATE_HELPER = (
    "import json, sys\n"
    "from turnout.remote import hostside_command\n"
    "for action, params in json.loads(sys.argv[2]):\n"
    "    print(json.dumps(hostside_command(action, params, python=sys.argv[1]).get_raw_value()))\n"
)


def validate_commands(ctx: Context, tree: Tree) -> list[str]:
    """The host-side commands ``validate.database`` runs (row counts on both sides, orphans on
    the target), built by the tree's own ``turnout.remote``."""
    env_file = ctx.stack["hosts"]["staging"]["env_file"]
    calls = [
        ("row_counts", {"dsn_env": env, "env_file": env_file, "tables": None, "timeout_ms": 3000})
        for env in ("SOURCE_DATABASE_URL", "DATABASE_URL")
    ]
    orphans = {"dsn_env": "DATABASE_URL", "env_file": env_file}
    calls.append(("orphans", {**orphans, "foreign_keys": True, "relations": []}))
    result = check(
        [tree.python, "-c", VALIDATE_HELPER, ctx.host_python, json.dumps(calls)],
        cwd=tree.root,
        env=tree_env(tree),
        capture_output=True,
        text=True,
    )
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def hostside_answer(stdout: str) -> dict:
    for line in reversed(stdout.splitlines()):
        if line.strip().startswith("{"):
            return json.loads(line)
    return {"ok": False, "error": "no answer"}


def turnout_validate(ctx: Context, tree: Tree, round_no: int) -> Sample:
    commands = ctx.validate_commands.get(tree.key)
    if not commands:
        return Sample("validate", tree.side, round_no, 0.0, False, "no host-side commands")
    load = os.getloadavg()[0]
    answers, started = [], time.perf_counter()
    for command in commands:
        result = check(["sh", "-c", command], capture_output=True, text=True, check=False)
        answers.append(hostside_answer(result.stdout))
    seconds = time.perf_counter() - started
    sample = Sample("validate", tree.side, round_no, round(seconds, 3), True, load=round(load, 2))
    failed = [a.get("error", "failed") for a in answers if not a.get("ok", True)]
    source, target = (a.get("tables", {}) for a in answers[:2])
    if failed:
        sample.ok, sample.note = False, "; ".join(str(f) for f in failed)[:500]
    elif source != target or not all(c.get("exact") for c in source.values()):
        sample.note = "row counts differ or are estimates"
    return sample


# Measurements: the raw tools and pyinfra's floor --------------------------------------------------


def raw_step(
    steps: dict[str, float], name: str, argv: list[str], env: dict[str, str] | None = None
) -> str:
    started = time.perf_counter()
    result = check(argv, env=base_env(**(env or {})), capture_output=True, text=True, check=False)
    steps[name] = round(time.perf_counter() - started, 3)
    if result.returncode != 0:
        raise RuntimeError(f"{name}: exit {result.returncode}: {tail(result.stderr, 3)}")
    return result.stdout


def pg(tool: str) -> str:
    return str(PG_BIN / tool) if (PG_BIN / tool).exists() else tool


def psql_argv(*files: str) -> list[str]:
    argv = [pg("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"]
    for name in files:
        argv += ["-f", str(WORK / name)]
    return argv


def raw_sample(measurement: str, round_no: int, work) -> Sample:  # noqa: ANN001 - a callable
    """Time ``work(steps)`` (it fills per-step seconds, raises on a failure)."""
    steps: dict[str, float] = {}
    load = os.getloadavg()[0]
    started = time.perf_counter()
    try:
        note = work(steps) or ""
        ok = True
    except RuntimeError as error:
        note, ok = str(error), False
    seconds = round(time.perf_counter() - started, 3)
    return Sample(measurement, RAW, round_no, seconds, ok, note, spans=steps, load=round(load, 2))


def raw_dump_argv(dest: Path) -> list[str]:
    return [pg("pg_dump"), "--no-owner", "--no-acl", "--format=custom", f"--file={dest}"]


def raw_whole(ctx: Context, round_no: int) -> Sample:
    reset_staging(ctx)
    ensure_app(ctx)
    dump = WORK / "raw-whole.dump"
    dump.unlink(missing_ok=True)

    def work(steps: dict[str, float]) -> str:
        raw_step(steps, "pg_dump", raw_dump_argv(dump), ctx.source_env)
        raw_step(steps, "read-back", [pg("pg_restore"), "--file=/dev/null", str(dump)])
        restore = [pg("pg_restore"), "--no-owner", "--no-acl", "--clean", "--if-exists"]
        restore += ["--exit-on-error", "--single-transaction"]
        restore += [f"--dbname={ctx.target_env['PGDATABASE']}"]
        raw_step(steps, "pg_restore", [*restore, str(dump)], ctx.target_env)
        raw_step(steps, "rsync", ["rsync", "-a", f"{ctx.assets_source}/", f"{ctx.assets_target}/"])
        source = raw_step(steps, "counts source", psql_argv("counts.sql"), ctx.source_env)
        target = raw_step(
            steps, "counts+orphans target", psql_argv("counts.sql", "orphans.sql"), ctx.target_env
        )
        curl = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", ctx.health_url]
        code = raw_step(steps, "health", curl)
        return raw_verdict(source, target, code)

    sample = raw_sample("whole", round_no, work)
    dump.unlink(missing_ok=True)
    return sample


def raw_verdict(source: str, target: str, http_code: str) -> str:
    source_counts = source.split()
    target_lines = target.split()
    counts, orphans = target_lines[: len(source_counts)], target_lines[len(source_counts) :]
    problems = []
    if counts != source_counts:
        problems.append("row counts differ")
    if any(value != "0" for value in orphans):
        problems.append("orphans found")
    if http_code.strip() != "200":
        problems.append(f"health answered {http_code.strip()}")
    if problems:
        raise RuntimeError("raw rehearsal did not check out: " + ", ".join(problems))
    return ""


def raw_dump(ctx: Context, round_no: int) -> Sample:
    dump = WORK / "raw-dump.dump"
    dump.unlink(missing_ok=True)
    sample = raw_sample(
        "dump", round_no, lambda s: raw_step(s, "pg_dump", raw_dump_argv(dump), ctx.source_env)
    )
    dump.unlink(missing_ok=True)
    return sample


def raw_mirror(ctx: Context, round_no: int) -> Sample:
    empty_directory(ctx.assets_target)
    argv = ["rsync", "-a", f"{ctx.assets_source}/", f"{ctx.assets_target}/"]
    return raw_sample("mirror", round_no, lambda s: raw_step(s, "rsync", argv))


def raw_validate(ctx: Context, round_no: int) -> Sample:
    def work(steps: dict[str, float]) -> str:
        raw_step(steps, "counts source", psql_argv("counts.sql"), ctx.source_env)
        both = psql_argv("counts.sql", "orphans.sql")
        raw_step(steps, "counts+orphans target", both, ctx.target_env)
        return ""

    return raw_sample("validate", round_no, work)


def floor_deploy(operations: int) -> Path:
    """A deploy of ``operations`` ``files.directory`` no-ops, one existing directory each (each
    needs its own fact, as each of turnout's operations does)."""
    deploy = FLOOR / f"noop_{operations}.py"
    directories = [FLOOR / "dirs" / f"d{index:03d}" for index in range(operations)]
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
    deploy.write_text(
        '"""pyinfra\'s floor: no-op operations (generated by scripts/bench.py)."""\n\n'
        "from pyinfra.operations import files\n\n"
        f"for index, path in enumerate({[str(d) for d in directories]!r}):\n"
        '    files.directory(name=f"no-op {index + 1}", path=path)\n'
    )
    return deploy


def floor_run(ctx: Context, operations: int, where: str, round_no: int) -> Sample:
    """pyinfra's floor, from the working tree's venv, outside the repo (no group data)."""
    tree = ctx.trees[0]
    deploy = str(floor_deploy(operations))
    target = ["@local"] if where == "local" else [str(REPO / INVENTORY)]
    argv = [tree.pyinfra, "-y", *target, deploy, *(LIMIT if where == "ssh" else ())]
    load = os.getloadavg()[0]
    run = run_timed(argv, FLOOR, tree_env(tree), ctx.options.timeout)
    side = f"floor@{where}/{operations}"
    sample = Sample("noop", side, round_no, round(run.seconds, 3), run.code == 0)
    sample.load = round(load, 2)
    total = grand_total(run.text)
    if run.code != 0:
        sample.note = f"exit {run.code}: {tail(run.text)}"
    elif total != (operations, 0):
        sample.note = f"expected {operations} no-ops, got {total}"
    return sample


# Rounds -------------------------------------------------------------------------------------------


def record(ctx: Context, samples: list[Sample] | Sample) -> None:
    for sample in samples if isinstance(samples, list) else [samples]:
        ctx.samples.append(sample)
        state = "ok" if sample.ok else "FAILED"
        note = f"  ({sample.note.splitlines()[0][:120]})" if sample.note else ""
        what = f"{sample.measurement:<8} {sample.side:<20}"
        say(f"r{sample.round} {what} {sample.seconds:8.2f}s {state}{note}")


def floor_sizes(ctx: Context) -> list[int]:
    return sorted(
        {ctx.operations.get(t.key) or count_operations(t.root / REHEARSAL) for t in ctx.trees}
    )


def run_round(ctx: Context, round_no: int) -> None:
    sides: list[Tree | str] = [ctx.trees[0], RAW, *ctx.trees[1:]]
    if round_no % 2 == 0:
        sides.reverse()
    for side in sides:
        record(ctx, raw_whole(ctx, round_no) if side == RAW else turnout_whole(ctx, side, round_no))
    for operations in floor_sizes(ctx):
        for where in ("local", "ssh"):
            record(ctx, floor_run(ctx, operations, where, round_no))
    for raw, turnout in (
        (raw_dump, turnout_dump),
        (raw_mirror, turnout_mirror),
        (raw_validate, turnout_validate),
    ):
        for side in sides:
            record(ctx, raw(ctx, round_no) if side == RAW else turnout(ctx, side, round_no))


def estimate_missing_stats(ctx: Context) -> None:
    """For a revision that never wrote TURNOUT_STATS: one untimed ``-vv`` rehearsal and rerun."""
    for tree in ctx.trees:
        ran = [s for s in ctx.samples if s.side == tree.side and s.measurement == "whole"]
        if any(s.stats for s in ran) or not any(s.ok for s in ran):
            continue
        say(f"{tree.label} wrote no TURNOUT_STATS; estimating from one untimed -vv run")
        reset_staging(ctx)
        ensure_app(ctx)
        stamp = fresh_stamp(tree.key, "vv", 0)
        for measurement in ("whole-vv", "rerun-vv"):
            sample = turnout_run(ctx, tree, measurement, 0, REHEARSAL, stamp, flags=("-vv",))
            sample.stats = sample.stats or estimate_hostside(Path(REPO / sample.log).read_text())
            record(ctx, sample)


# Summary ------------------------------------------------------------------------------------------


def seconds_of(ctx: Context, measurement: str, side: str, span: str | None = None) -> list[float]:
    """The timed, successful samples' seconds: the whole run's, or one operation's (``span``)."""
    found = [s for s in ctx.samples if s.measurement == measurement and s.side == side and s.ok]
    if span is None:
        return [s.seconds for s in found if s.round > 0]
    return [s.spans[span] for s in found if s.round > 0 and span in s.spans]


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


@dataclass(frozen=True)
class Comparison:
    label: str
    measurement: str  # turnout's
    span: str | None  # an operation's own time inside the run; None: the whole pyinfra run
    raw_measurement: str
    raw_side: str  # RAW, or a floor (``floor@local``, ``floor@ssh``) sized per revision
    raw_name: str
    target: float | None


COMPARISONS = (
    Comparison("whole rehearsal", "whole", None, "whole", RAW, "raw tools", 1.1),
    Comparison("dump step (operation)", "dump", DUMP_STEP, "dump", RAW, "pg_dump -Fc", 1.1),
    Comparison("dump step (pyinfra run)", "dump", None, "dump", RAW, "pg_dump -Fc", None),
    Comparison("mirror step (operation)", "mirror", MIRROR_STEP, "mirror", RAW, "rsync -a", 1.1),
    Comparison("mirror step (pyinfra run)", "mirror", None, "mirror", RAW, "rsync -a", None),
    Comparison("no-op rerun", "rerun", None, "noop", "floor@local", "floor @local", 2.0),
    Comparison("no-op rerun", "rerun", None, "noop", "floor@ssh", "floor @ssh", 2.0),
    Comparison("validation (host-side)", "validate", None, "validate", RAW, "psql", None),
)


def comparison_rows(ctx: Context) -> list[dict]:
    rows = []
    for tree in ctx.trees:
        operations = ctx.operations.get(tree.key) or count_operations(tree.root / REHEARSAL)
        for c in COMPARISONS:
            floor = c.raw_side != RAW
            side = f"{c.raw_side}/{operations}" if floor else RAW
            mine = summary(seconds_of(ctx, c.measurement, tree.side, c.span))
            raw = summary(seconds_of(ctx, c.raw_measurement, side))
            ratio = round(mine["median"] / raw["median"], 2) if mine and raw else None
            verdict = ""
            if c.target and ratio is not None:
                verdict = "met" if ratio <= c.target else "missed"
            rows.append(
                {
                    "measurement": c.label,
                    "turnout": tree.label,
                    "turnout_s": mine,
                    "raw": f"{c.raw_name} ({operations} ops)" if floor else c.raw_name,
                    "raw_s": raw,
                    "ratio": ratio,
                    "target": f"<= {c.target}x" if c.target else "",
                    "verdict": verdict,
                }
            )
    return rows


def format_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main_table(rows: list[dict]) -> str:
    header = [
        "measurement",
        "turnout",
        "turnout s (min-max)",
        "raw",
        "raw s (min-max)",
        "ratio",
        "target",
    ]
    body = [
        [
            r["measurement"],
            r["turnout"],
            cell(r["turnout_s"]),
            r["raw"],
            cell(r["raw_s"]),
            f"{r['ratio']:.2f}x" if r["ratio"] is not None else "n/a",
            f"{r['target']} {r['verdict']}".strip(),
        ]
        for r in rows
    ]
    return format_table(header, body)


def before_after_table(ctx: Context) -> str:
    base, others = ctx.trees[0], ctx.trees[1:]
    header = ["measurement"] + [f"{t.label} s" for t in others] + [f"{base.label} s"]
    header += [f"{base.label} / {t.label}" for t in others]
    body = []
    seen: set[tuple[str, str | None]] = set()
    for c in COMPARISONS:
        if (c.measurement, c.span) in seen:  # the rerun is compared with two floors
            continue
        seen.add((c.measurement, c.span))
        ours = summary(seconds_of(ctx, c.measurement, base.side, c.span))
        theirs = [summary(seconds_of(ctx, c.measurement, t.side, c.span)) for t in others]
        ratios = [f"{ours['median'] / t['median']:.2f}x" if ours and t else "n/a" for t in theirs]
        body.append([c.label, *(cell(t) for t in theirs), cell(ours), *ratios])
    return format_table(header, body)


def stats_of(ctx: Context, tree: Tree, measurement: str) -> dict | None:
    for name in (measurement, f"{measurement}-vv"):
        found = [s.stats for s in ctx.samples if s.side == tree.side and s.measurement == name]
        found = [s for s in found if s]
        if found:
            return found[-1]
    return None


def stats_table(ctx: Context) -> str:
    header = ["turnout", "run", *STATS_KEYS, "source"]
    body = []
    for tree in ctx.trees:
        for measurement in ("whole", "rerun", "dump", "mirror"):
            stats = stats_of(ctx, tree, measurement)
            if stats is None:
                body.append([tree.label, measurement, *["n/a"] * len(STATS_KEYS), "none"])
                continue
            approx = "~" if stats.get("estimated") else ""
            values = [f"{approx}{stats[k]:,}" if k in stats else "n/a" for k in STATS_KEYS]
            source = "-vv estimate" if approx else "TURNOUT_STATS"
            body.append([tree.label, measurement, *values, source])
    return format_table(header, body)


def whole_samples(ctx: Context, side: str) -> list[Sample]:
    return [s for s in ctx.samples if s.side == side and s.measurement == "whole" and s.ok]


def spans_table(ctx: Context) -> str:
    """Median seconds per phase inside the whole rehearsal, per revision; the raw steps."""
    names: list[str] = []
    medians: dict[str, dict[str, float]] = {}
    for tree in ctx.trees:
        runs = [s.spans for s in whole_samples(ctx, tree.side)]
        for spans in runs:
            names += [n for n in spans if n not in names]
        medians[tree.label] = {
            n: statistics.median([r[n] for r in runs if n in r])
            for n in names
            if any(n in r for r in runs)
        }
    header = ["phase of the whole rehearsal", *medians]
    body = [[n, *(f"{m[n]:.2f}" if n in m else "" for m in medians.values())] for n in names]
    raw_runs = [s.spans for s in whole_samples(ctx, RAW)]
    table = format_table(header, body)
    if raw_runs:
        steps = ", ".join(
            f"{n} {statistics.median([r[n] for r in raw_runs]):.2f}" for n in raw_runs[0]
        )
        table += f"\nraw tools, median s per step: {steps}"
    return table


def throughput_line(ctx: Context, rows: int) -> str:
    """Validation throughput (the former tests/integration/test_bench.py): rows counted on both
    sides per second of the median validation."""
    parts = []
    for label, side in [*((t.label, t.side) for t in ctx.trees), ("psql", RAW)]:
        stat = summary(seconds_of(ctx, "validate", side))
        if stat and stat["median"] > 0:
            parts.append(f"{label} {2 * rows / stat['median']:,.0f}")
    return "validation throughput, rows counted per second (both sides): " + ", ".join(parts)


def tree_lines(ctx: Context) -> list[str]:
    changed = len(git("status", "--short").splitlines())
    lines = []
    for tree in ctx.trees:
        what = f"{tree.sha[:7]} + {changed} changed files" if tree.key == "wt" else tree.sha[:12]
        lines.append(f"{tree.label}: {what}; turnout from {imported_turnout(tree)}")
    return lines


def load_line(ctx: Context) -> str:
    loads = [s.load for s in ctx.samples if s.round > 0]
    if not loads:
        return "load average: n/a"
    low, mid, high = min(loads), statistics.median(loads), max(loads)
    return (
        f"1-minute load average at the start of each sample ({os.cpu_count()} CPUs): median "
        f"{mid:.2f} ({low:.2f}-{high:.2f})"
    )


def report_text(ctx: Context, data: dict, wall: float) -> str:
    plan = ctx.plan
    head = (
        f"turnout benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}: {data['rows']:,} rows in "
        f"{data['tables']} tables ({data['foreign_keys']} foreign keys; bench_items "
        f"{plan.items:,}, bench_parents {plan.parents:,}, reference app {plan.refapp_rows:,} per "
        f"table), {data['files']:,} asset files; {ctx.options.rounds} round(s); medians in "
        f"seconds (min-max); wall {wall / 60:.1f} min"
    )
    parts = [head, *tree_lines(ctx), load_line(ctx), "", main_table(comparison_rows(ctx))]
    if len(ctx.trees) > 1:
        parts += ["", "before/after (medians, s)", before_after_table(ctx)]
    parts += ["", throughput_line(ctx, data["rows"])]
    parts += ["", "host-side calls per run", stats_table(ctx), "", spans_table(ctx)]
    failures = [s for s in ctx.samples if not s.ok]
    notes = list(ctx.notes)
    notes += [
        f"r{s.round} {s.measurement} {s.side}: {s.note.splitlines()[0]}"
        for s in ctx.samples
        if s.ok and s.note
    ]
    if notes:
        parts += ["", "notes:", *(f"- {n}" for n in notes)]
    if failures:
        parts += ["", "failures:"]
        for sample in failures:
            parts += [f"- r{sample.round} {sample.measurement} {sample.side} ({sample.log}):"]
            parts += [f"    {line}" for line in sample.note.splitlines()]
    return "\n".join(parts)


def write_results(ctx: Context, data: dict, text: str, wall: float) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    result = {
        "when": stamp,
        "options": asdict(ctx.options),
        "data": data,
        "plan": asdict(ctx.plan),
        "wall_seconds": round(wall, 1),
        "trees": [
            {**asdict(t), "root": str(t.root), "venv": str(t.venv), "turnout": imported_turnout(t)}
            for t in ctx.trees
        ],
        "working_tree_changes": git("status", "--short").splitlines(),
        "operations": ctx.operations,
        "comparisons": comparison_rows(ctx),
        "notes": ctx.notes,
        "samples": [asdict(s) for s in ctx.samples],
    }
    for name in (f"bench-{stamp}", "latest"):
        (BENCH / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        (BENCH / f"{name}.txt").write_text(text + "\n")


# Set-up and main ----------------------------------------------------------------------------------


@contextlib.contextmanager
def bench_lock() -> Iterator[None]:
    BENCH.mkdir(exist_ok=True)
    with open(BENCH / "bench.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit("bench: another benchmark holds .bench/bench.lock") from None
        yield


def prepare(options: Options, trees: list[Tree]) -> tuple[Context, dict]:
    for directory in (RUNS, WORK):
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
    say(f"stack in {STACK_DIR.relative_to(REPO)} on port base {options.port_base}")
    stack_command("up")
    stack = json.loads((STACK_DIR / "stack.json").read_text())
    staging = stack["hosts"]["staging"]
    env = read_env_file(staging["env_file"])
    plan = seed_plan(options.rows, options.files)
    ctx = Context(
        options=options,
        trees=trees,
        stack=stack,
        plan=plan,
        source_env=libpq_env(env["SOURCE_DATABASE_URL"]),
        target_env=libpq_env(env["DATABASE_URL"]),
        health_url=staging["base_url"] + "/api/v1/health",
        assets_source=STACK_DIR / "hosts" / "source" / "assets",
        assets_target=Path(staging["assets_dir"]),
        evidence_root=Path(staging["evidence_root"]),
    )
    seed_source(plan, ctx.assets_source)
    ctx.stack = json.loads((STACK_DIR / "stack.json").read_text())
    data = write_raw_sql()
    data["files"] = count_files(ctx.assets_source)
    if data["rows"] != plan.rows or data["files"] != plan.files:
        ctx.notes.append(f"seeded {data['rows']} rows, {data['files']} files (plan: {plan})")
    check(compose_argv(staging, "up", "--detach"), stdout=subprocess.DEVNULL, timeout=600)
    STACK.wait_until(lambda: app_answers(ctx.health_url), "the staging app to answer", 240)
    for tree in trees:
        try:
            ctx.validate_commands[tree.key] = validate_commands(ctx, tree)
        except subprocess.CalledProcessError as error:
            ctx.notes.append(f"{tree.label}: no host-side commands: {tail(error.stderr or '', 2)}")
        say(f"{tree.label}: pyinfra {tree.pyinfra}, turnout from {imported_turnout(tree)}")
    return ctx, data


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    with bench_lock():
        slot = SLOTS.claim_bench_slot(STACK_DIR, options.port_base)
        options = replace(options, port_base=slot.base)
        os.environ.update(
            TURNOUT_STACK_DIR=str(STACK_DIR), TURNOUT_STACK_PORT_BASE=str(options.port_base)
        )
        STACK.use_own_engine()  # the bench stack's own Docker engine, for every docker call
        started = time.perf_counter()
        trees = [working_tree(), *(compare_tree(rev) for rev in options.compare)]
        try:
            ctx, data = prepare(options, trees)
            try:
                for round_no in range(1, options.rounds + 1):
                    say(f"round {round_no} of {options.rounds}")
                    run_round(ctx, round_no)
                estimate_missing_stats(ctx)
            finally:  # what was measured is reported even when a later round broke off
                wall = time.perf_counter() - started
                text = report_text(ctx, data, wall)
                write_results(ctx, data, text, wall)
                print("\n" + text, flush=True)
        finally:
            if not options.keep:
                say("taking the stack down (--keep leaves it up)")
                stack_command("down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
