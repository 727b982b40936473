"""Session fixtures for the integration tests: the real stack, brought up once and down at the end.

The tests' stack lives in ``.stack-test/`` on its own ports (``TURNOUT_STACK_PORT_BASE=26400``), so
it never collides with the demo's ``.stack/``; a second pytest run at the same time takes the next
free slot (``.stack-test-1/``, base 30400, …). ``TURNOUT_KEEP_STACK=1`` leaves it up afterwards.
"""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


# Slots are claimed machine-wide (ports are), not per checkout, by tests/stack/slots.py (the
# benchmarks claim theirs there too): two clones tested at once on one machine never both take
# the first port base, and a slot where another checkout's kept stack answers is passed over.
sys.path.insert(0, str(REPO / "tests" / "stack"))
import slots  # noqa: E402 - tests/stack is not a package

SLOT = slots.claim_slot(
    slots.TEST_BASES, lambda index: REPO / (f".stack-test-{index}" if index else ".stack-test")
)
STACK_DIR, PORT_BASE = SLOT.stack_dir, SLOT.base
# The stack runs its own Docker engine (tests/stack/stack.py): every docker call of this session
# (the compose helper below, the refapp's compose test) goes to it, never to the machine's.
os.environ["DOCKER_HOST"] = f"unix://{STACK_DIR / 'docker' / 'docker.sock'}"


def stack_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(TURNOUT_STACK_DIR=str(STACK_DIR), TURNOUT_STACK_PORT_BASE=str(PORT_BASE))
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env.update(extra)
    return env


def run_stack(command: str, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "tests" / "stack" / "stack.py"), command, *args],
        env=env or stack_env(),
        check=True,
        cwd=REPO,
    )


@pytest.fixture(scope="session")
def stack() -> dict:
    try:
        run_stack("up")
    except subprocess.CalledProcessError:
        run_stack("down")  # stop whatever came up before the failure
        raise
    yield json.loads((STACK_DIR / "stack.json").read_text())
    if os.environ.get("TURNOUT_KEEP_STACK") != "1":
        run_stack("down")


@pytest.fixture(scope="session")
def stack_secrets(stack: dict) -> list[str]:
    """Every password and token the stack generated, as generated and as URL DSNs carry them
    (percent-encoded): none may ever appear in output or evidence."""
    from urllib.parse import quote

    raw = [path.read_text().strip() for path in (STACK_DIR / "secrets").iterdir()]
    return raw + [quote(value, safe="") for value in raw]


def run_pyinfra(*args: str, env: dict[str, str] | None = None, timeout: int = 600):
    """The pyinfra CLI, exactly as an operator runs it, from the repo root; ``stdout`` holds
    stdout and stderr interleaved (pyinfra logs to stderr)."""
    return subprocess.run(
        [str(BIN / "pyinfra"), *args],
        env=env or stack_env(),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )


def changes(stdout: str) -> int:
    """How many operations changed something, from the ``Grand total`` row of pyinfra's results
    (columns: Hosts, Success, Error, No Change; a changed op counts under Success)."""
    for line in stdout.splitlines():
        if line.strip().startswith("Grand total"):
            success = line.split()[3]
            return 0 if success == "-" else int(success)
    raise AssertionError(f"no results table in pyinfra's output:\n{stdout[-2000:]}")


def read_env_file(path: str) -> dict[str, str]:
    """A stack host's ``.env`` as compose reads it (its values are double-quoted: the stack's
    passwords hold ``@ : / % # ' "`` and spaces)."""
    from turnout.hostside.envfile import read_env_file as read_with_compose_rules

    return read_with_compose_rules(path, lookup=lambda name: None)


def compose(host: dict, *args: str, env: dict[str, str] | None = None, check: bool = True):
    """``docker compose`` on a stack host's project, with its env file, as the ops run it."""
    return subprocess.run(
        [
            "/usr/bin/docker",
            "compose",
            "--env-file",
            host["env_file"],
            "-f",
            host["compose_file"],
            "-p",
            host["compose_project"],
            *args,
        ],
        capture_output=True,
        text=True,
        check=check,
        env=env,
        timeout=300,
    )


def superuser(stack: dict, role: str, dbname: str = "app"):
    """A superuser connection to one of the stack's clusters, for the tests' own checks and
    plantings (the product itself never connects from the control machine)."""
    import psycopg

    password = (STACK_DIR / "secrets" / f"pg_{role}_superuser").read_text().strip()
    return psycopg.connect(
        host="127.0.0.1",
        port=stack["pg"][role]["port"],
        user="postgres",
        password=password,
        dbname=dbname,
        autocommit=True,
    )


class ArgvWatcher:
    """Records the argv of every process on the machine while a run goes on (polling /proc), so
    a test can prove no secret was ever passed on a command line."""

    def __init__(self, interval: float = 0.01) -> None:
        import threading

        self.seen: set[str] = set()
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                            raw = handle.read()
                    except OSError:
                        continue
                    if raw:
                        self.seen.add(raw.replace(b"\0", b" ").decode("utf-8", "replace"))
            self._stop.wait(self.interval)

    def __enter__(self) -> "ArgvWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def seed_app(host: dict, rows: int) -> dict[str, str]:
    """Seed a stack host's running app with ``rows`` rows per table and its admin and normal
    user, by the app's own CLI inside the api container (S0.4); the accounts' passwords travel
    by environment only. Returns them."""
    env_file = read_env_file(host["env_file"])
    passwords = {k: env_file[k] for k in ("REFAPP_ADMIN_PASSWORD", "REFAPP_USER_PASSWORD")}
    compose(
        host,
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
        env={**os.environ, **passwords},
    )
    return passwords


def set_env_value(path: str, key: str, value: str | None) -> None:
    """Set one ``KEY="value"`` line of a stack host's .env (appended when missing; removed for
    None); the file stays 0600."""
    lines = Path(path).read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(f"{key}=")]
    if value is not None:
        kept.append(f'{key}="{value}"\n')
    Path(path).write_text("".join(kept))


def app_database_url(host: dict) -> str:
    """The DSN a stack host's app uses (its .env's DATABASE_URL), for libpq."""
    url = read_env_file(host["env_file"])["DATABASE_URL"]
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def app_revision(host: dict) -> str | None:
    """The Alembic revision of a stack host's app database."""
    import psycopg

    url = app_database_url(host)
    if not url.startswith("postgres"):
        return None  # an app on SQLite: its file is the test's to read or remove
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


@contextlib.contextmanager
def app_from_copy(host: dict, workdir: Path):
    """A stack host's app running from a copy of the reference app's source in ``workdir`` (a
    test adds revisions to its ``migrations/versions``), not migrating itself on start (the
    runbooks' migrate steps do); afterwards the database is taken back to 0002 with the copy's
    own revisions and the app runs from the repo again. Yields the copy's path."""
    source = workdir / "refapp"
    shutil.copytree(
        REPO / "tests" / "fixtures" / "refapp", source, ignore=shutil.ignore_patterns("__pycache__")
    )
    original = read_env_file(host["env_file"])["REFAPP_SRC"]
    compose(host, "down", "--timeout", "5")
    set_env_value(host["env_file"], "REFAPP_SRC", str(source))
    compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")
    set_env_value(host["env_file"], "REFAPP_MIGRATE_ON_START", "0")
    compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")
    try:
        yield source
    finally:
        if app_revision(host) not in ("0002", None):
            compose(host, "up", "--detach", "--wait", "--wait-timeout", "180", check=False)
            compose(host, "exec", "-T", "api", "python", "-m", "alembic", "downgrade", "0002")
        set_env_value(host["env_file"], "REFAPP_SRC", original)
        set_env_value(host["env_file"], "REFAPP_MIGRATE_ON_START", None)
        compose(host, "up", "--detach", "--wait", "--wait-timeout", "180")


def source_artifacts(state: dict, work: Path) -> tuple[Path, Path]:
    """The night's inputs made from the stack's seeded source, as an operator brings them: a
    custom-format ``pg_dump`` of its database and a tarball of its assets, in ``work``."""
    dump, tarball = work / "app.src.dump", work / "app.src.data.tar.gz"
    password = (STACK_DIR / "secrets" / "pg_source_superuser").read_text().strip()
    port = str(state["pg"]["source"]["port"])
    subprocess.run(
        ["pg_dump", "-Fc", "--no-owner", "--no-acl", "-h", "127.0.0.1", "-p", port,
         "-U", "postgres", "-d", "app", "-f", str(dump)],
        env={**os.environ, "PGPASSWORD": password},
        check=True,
    )
    with tarfile.open(tarball, "w:gz") as tar:
        for item in sorted(Path(state["source"]["assets_dir"]).iterdir()):
            tar.add(item, arcname=item.name)
    return dump, tarball
