"""The rollback phase of the SQLite → PostgreSQL move (issue 10 item 9, SPEC S3.7): turnout's
``db_phase.py --data phase=rollback`` beside the raw steps doing the same work, same stack, same
run, interleaved rounds.

    scripts/bench.sh rollback                       # 3 rounds
    scripts/bench.sh rollback --rounds 5 --keep     # leave the stack up afterwards

What it does:

1. A stack of its own (``tests/stack/stack.py up`` with ``TURNOUT_STACK_DIR=.bench/rollback-stack``
   and the port base ``--port-base``, default the first free benchmark slot of
   ``tests/stack/slots.py``, claimed machine-wide as the tests claim theirs). Its staging host's
   app is put on a SQLite file seeded with ``--rows`` rows per table (the app's own CLI), the
   data moved into a fresh PostgreSQL database with ``deploys/sqlite_to_pg.py``, and the app
   switched with ``deploys/db_phase.py``: shadow, then cutover (untimed).
2. Rounds, interleaved (turnout first in odd rounds, raw first in even ones), each sample from the
   cutover state back to the app healthy on SQLite:

   - ``turnout``: ``pyinfra -y <inventory> deploys/db_phase.py --data phase=rollback`` (released,
     ``sqlite_path`` given): the command's wall time, and the seconds it records itself
     (``outputs/rollback_time.json``: from the pyinfra process's start to the healthy app);
   - ``raw``: what an operator does by hand: the four keys of the ``.env`` rewritten (a line
     edit), ``docker compose up --detach --wait api worker`` (compose recreates what the ``.env``
     changed), then the health endpoint polled until it reports ``db_backend`` ``sqlite``.

   After each sample (untimed) the app goes back to cutover with ``db_phase.py``.
3. Results: ``.bench/rollback-latest.{txt,json}`` (also ``.bench/rollback-<time>.*``): medians
   (min-max), turnout's recorded seconds against the budget (``rollback_budget_s``, 60 s), and
   the ratio of turnout's wall time to the raw steps'.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
from bench import SLOTS, compose_argv, read_env_file, superuser  # noqa: E402 - stack helpers

BENCH = REPO / ".bench"
STACK_DIR = BENCH / "rollback-stack"
SQLITE_URL = "sqlite:////app/.data/app.sqlite3"
# The app on its SQLite file: what the rollback phase writes (turnout/phases.py's table).
ON_SQLITE = {
    "DATABASE_URL": SQLITE_URL,
    "DATABASE_URL_SECONDARY": "",
    "DB_WRITE_MODE": "single",
    "DB_READ_MODE": "primary",
}
TARGET_DB = "rollback_target"
BUDGET_S = 60.0


def say(message: str) -> None:
    print(f"bench-rollback: {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--rows", type=int, default=200, help="rows per table in the app's data")
    parser.add_argument(
        "--port-base", type=int, help="the stack's port base (default: a free benchmark slot)"
    )
    parser.add_argument("--keep", action="store_true", help="leave the stack up afterwards")
    return parser.parse_args(argv)


def stack_env(port_base: int) -> dict[str, str]:
    """The environment of every command, and of this process (the stack helpers read it)."""
    os.environ.update(TURNOUT_STACK_DIR=str(STACK_DIR), TURNOUT_STACK_PORT_BASE=str(port_base))
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}"
    return env


def run(argv: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(
        argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-8:])
        raise SystemExit(f"bench-rollback: {' '.join(argv[:4])} … failed:\n{tail}")
    return done


def compose(host: dict, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return run(compose_argv(host, *args), env)


def set_env_values(path: str, values: dict[str, str]) -> None:
    """The raw edit: each ``KEY=`` line replaced (appended when missing), nothing else touched."""
    lines = Path(path).read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.split("=", 1)[0].strip() not in values]
    kept += [f'{key}="{value}"\n' for key, value in values.items()]
    Path(path).write_text("".join(kept))


def health(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - the stack's own
            return json.loads(answer.read())
    except (OSError, ValueError):
        return {}


def pyinfra(env: dict[str, str], deploy: str, *data: str) -> subprocess.CompletedProcess:
    argv = [
        str(REPO / ".venv/bin/pyinfra"),
        "-y",
        "tests/stack/inventory.py",
        deploy,
        "--limit",
        "stack-staging",
    ]
    for item in data:
        argv += ["--data", item]
    return run(argv, env)


def prepare(env: dict[str, str], rows: int) -> dict:
    """The stack up, staging's app on a seeded SQLite file, the data moved, the app at cutover."""
    say(f"stack in {STACK_DIR}")
    run([sys.executable, "tests/stack/stack.py", "up"], env, timeout=1800)
    stack = json.loads((STACK_DIR / "stack.json").read_text())
    host = stack["hosts"]["staging"]
    env["DOCKER_HOST"] = stack["docker"]["host"]
    with superuser("staging", "postgres") as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TARGET_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TARGET_DB} OWNER app")
    values = read_env_file(host["env_file"])  # compose's own rules (quotes, escapes)
    staging_url = values["DATABASE_URL"]
    if staging_url.startswith("sqlite"):
        staging_url = values["PG_DATABASE_URL"]
    compose(host, env, "down", "--timeout", "5")
    database = Path(host["assets_dir"]) / "app.sqlite3"
    for leftover in database.parent.glob("app.sqlite3*"):
        leftover.unlink()
    for state in ("sqlite_to_pg", "state/sqlite_to_pg", "db_phase"):
        run(["rm", "-rf", str(Path(host["evidence_root"]) / state)], env)
    pg_url = staging_url.rsplit("/", 1)[0] + f"/{TARGET_DB}"
    set_env_values(host["env_file"], {**ON_SQLITE, "PG_DATABASE_URL": pg_url})
    compose(host, env, "up", "--detach", "--wait", "--wait-timeout", "180")
    accounts = {k: values[k] for k in ("REFAPP_ADMIN_PASSWORD", "REFAPP_USER_PASSWORD")}
    compose(
        host,
        {**env, **accounts},
        "exec",
        "-T",
        "-e",
        "REFAPP_ADMIN_PASSWORD",
        "-e",
        "REFAPP_USER_PASSWORD",
        "api",
        "python",
        "-m",
        "refapp",
        "seed",
        "--rows",
        str(rows),
    )
    say(f"app on SQLite with {rows} rows per table; moving it (sqlite_to_pg), shadow, cutover")
    pyinfra(
        env, "deploys/sqlite_to_pg.py", f"sqlite_path={database}", "evidence_timestamp=bench-move"
    )
    pyinfra(
        env,
        "deploys/db_phase.py",
        "phase=shadow",
        f"sqlite_path={database}",
        "evidence_timestamp=bench-shadow",
    )
    pyinfra(env, "deploys/db_phase.py", "phase=cutover", "evidence_timestamp=bench-cutover")
    return {"stack": stack, "host": host, "database": database}


def back_to_cutover(env: dict[str, str], ctx: dict, stamp: str) -> None:
    pyinfra(
        env,
        "deploys/db_phase.py",
        "phase=cutover",
        f"sqlite_path={ctx['database']}",
        f"evidence_timestamp={stamp}",
    )


def turnout_sample(env: dict[str, str], ctx: dict, stamp: str) -> dict:
    started = time.monotonic()
    pyinfra(
        env,
        "deploys/db_phase.py",
        "phase=rollback",
        "i_know_what_im_doing=true",
        f"sqlite_path={ctx['database']}",
        f"evidence_timestamp={stamp}",
    )
    wall = time.monotonic() - started
    record = Path(ctx["host"]["evidence_root"]) / "db_phase" / stamp / "outputs"
    timed = json.loads((record / "rollback_time.json").read_text())
    return {"wall_s": round(wall, 3), "recorded_s": timed["seconds"]}


def raw_sample(env: dict[str, str], ctx: dict) -> dict:
    host = ctx["host"]
    url = host["base_url"] + "/api/v1/health"
    started = time.monotonic()
    set_env_values(host["env_file"], ON_SQLITE)
    compose(host, env, "up", "--detach", "--wait", "--wait-timeout", "180", "api", "worker")
    deadline = time.monotonic() + 120
    while health(url).get("db_backend") != "sqlite":
        if time.monotonic() > deadline:
            raise SystemExit("bench-rollback: the raw rollback never reported db_backend sqlite")
        time.sleep(0.1)
    return {"wall_s": round(time.monotonic() - started, 3)}


def median_cell(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    slot = SLOTS.claim_bench_slot(STACK_DIR, options.port_base)  # held until the process ends
    say(f"port base {slot.base}")
    env = stack_env(slot.base)
    began = time.monotonic()
    ctx = prepare(env, options.rows)
    samples: list[dict] = []
    try:
        for round_no in range(1, options.rounds + 1):
            order = ["turnout", "raw"] if round_no % 2 else ["raw", "turnout"]
            for side in order:
                stamp = f"bench-r{round_no}-{side}"
                if side == "turnout":
                    sample = turnout_sample(env, ctx, stamp)
                else:
                    sample = raw_sample(env, ctx)
                samples.append({"round": round_no, "side": side, **sample})
                say(f"round {round_no} {side}: {sample}")
                back_to_cutover(env, ctx, f"{stamp}-back")
    finally:
        if not options.keep:
            run([sys.executable, "tests/stack/stack.py", "down"], env, timeout=900)
    turnout_wall = [s["wall_s"] for s in samples if s["side"] == "turnout"]
    recorded = [s["recorded_s"] for s in samples if s["side"] == "turnout"]
    raw_wall = [s["wall_s"] for s in samples if s["side"] == "raw"]
    ratio = statistics.median(turnout_wall) / statistics.median(raw_wall)
    worst = max(recorded)
    lines = [
        f"rollback benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC: {options.rounds} "
        f"round(s) interleaved, {options.rows} rows per table; {os.cpu_count()} CPUs; wall "
        f"{(time.monotonic() - began) / 60:.1f} min",
        "",
        f"{'turnout db_phase rollback, wall s':<46} {median_cell(turnout_wall)}",
        f"{'turnout, recorded (command start -> healthy)':<46} {median_cell(recorded)}",
        f"{'raw .env edit + compose up --wait + health':<46} {median_cell(raw_wall)}",
        f"{'turnout / raw (wall, medians)':<46} {ratio:.2f}x",
        f"budget {BUDGET_S:.0f} s: {'met' if worst <= BUDGET_S else 'missed'} "
        f"(slowest recorded {worst:.2f} s)",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data = {"samples": samples, "ratio": ratio, "budget_s": BUDGET_S, "rows": options.rows}
    for name in (f"rollback-{stamp}", "rollback-latest"):
        (BENCH / f"{name}.txt").write_text(text)
        (BENCH / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
