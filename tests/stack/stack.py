"""The real test stack: PostgreSQL clusters, SSH hosts and a Docker engine, all on loopback.

    python tests/stack/stack.py up      # idempotent: starts what is not running
    python tests/stack/stack.py down    # stops what it started (by pid), removes the stack dir
    python tests/stack/stack.py seed 200 # the source side: app schema, 200 rows per table, assets
    python tests/stack/stack.py seed-real 200 # the second source database ``real``
    python tests/stack/stack.py seed-items 200 # itemsapp's source database ``items``
    python tests/stack/stack.py status

What ``up`` provides (ports from ``TURNOUT_STACK_PORT_BASE``, default 25400; the apps answer on
``base+80`` (staging) and ``base+81`` (prod)):

- PostgreSQL 15 clusters for the roles source, staging and prod (``base+32``, ``+33``, ``+34``),
  scram-sha-256 auth with generated passwords, an ``app`` role and database in each;
- two SSH hosts, staging and prod: ``sshd`` on 127.0.0.1 (``base+22``, ``+23``), their own host
  keys, key auth for root with a generated client key, and a pinned ``known_hosts``;
- a Docker engine of its own (``dockerd --iptables=false --bridge=none`` with its data root, exec
  root, pid file and socket under ``<stack_dir>/docker``; ``DOCKER_HOST`` points every docker call
  of the stack, and of the SSH hosts' sessions, at it), with the locally built images
  ``turnout-refapp:dev`` and ``turnout-pg:15``;
- a Redis of its own (``redis-server`` on 127.0.0.1, ``base+79``, ``requirepass`` with a generated
  password, directory and pid file under ``<stack_dir>/redis``): each app host's ``.env`` has
  ``REDIS_URL`` (password percent-encoded; staging database 0, prod 1), the worker's job queue;
- per SSH host an app root with the reference app's ``docker-compose.yml`` and its server-side
  ``.env`` (0600): staging's app uses the staging cluster (a PostgreSQL outside compose), prod's app
  uses the compose ``db`` service (so ``docker compose exec -T db pg_restore`` is real);
- per SSH host a second app root ``<host root>/itemsapp/`` for the second fixture app
  (``tests/fixtures/itemsapp``, shaped like the FastAPI template; its compose db is reachable
  only by its Unix socket), apps on ``base+82`` (staging) and ``base+83`` (prod), and a host-mode
  root ``hosts/itemshost/`` (``base+84``) using database ``itemshost`` on the staging cluster.

Everything is described in ``<stack_dir>/stack.json`` (no secrets); secrets live in the 0600
``.env`` files and ``<stack_dir>/secrets/``. Every generated password holds ``@ : / % # ' "`` and a
space: URL DSNs carry it percent-encoded, keyword DSNs quoted, the ``.env`` files double-quoted.
The stack directory is ``TURNOUT_STACK_DIR`` or ``<repo>/.stack``.
"""

import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DOCKER = "/usr/bin/docker"
SSHD = "/usr/sbin/sshd"
REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
# Each app host has its own Redis database in the stack's one Redis (its worker's queue).
REDIS_DBS = {"staging": 0, "prod": 1}
PG_ROLES = ("source", "staging", "prod")
SSH_HOSTS = ("staging", "prod")


def stack_dir() -> Path:
    return Path(os.environ.get("TURNOUT_STACK_DIR", REPO / ".stack")).resolve()


def port_base() -> int:
    return int(os.environ.get("TURNOUT_STACK_PORT_BASE", "25400"))


def ports(base: int | None = None) -> dict[str, int]:
    """The stack's ports from ``base`` (default: ``TURNOUT_STACK_PORT_BASE``)."""
    base = port_base() if base is None else base
    return {
        "pg_source": base + 32,
        "pg_staging": base + 33,
        "pg_prod": base + 34,
        "compose_db_staging": base + 35,
        "compose_db_prod": base + 36,
        "ssh_staging": base + 22,
        "ssh_prod": base + 23,
        "app_staging": base + 80,
        "app_prod": base + 81,
        "redis": base + 79,
        # itemsapp (the second fixture app): compose apps on the SSH hosts, and host mode.
        "items_staging": base + 82,
        "items_prod": base + 83,
        "items_host": base + 84,
    }


def log(message: str) -> None:
    print(f"stack: {message}", flush=True)


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    kwargs.setdefault("check", True)
    return subprocess.run(args, **kwargs)  # noqa: S603 - argv lists only


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def write_secret_file(path: Path, content: str, owner: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(path, 0o600)
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)


# Every generated password holds these, so each way a secret is encoded is exercised for real:
# URL DSNs percent-encode them, keyword DSNs quote them, the .env files quote them.
SECRET_SPECIALS = "@:/%#'\" "


def new_secret() -> str:
    """A random password with every character of ``SECRET_SPECIALS`` inside it (never at its
    ends, so no reader's whitespace stripping can change it)."""
    middle = list(SECRET_SPECIALS + secrets.token_urlsafe(9))
    secrets.SystemRandom().shuffle(middle)
    return secrets.token_urlsafe(6) + "".join(middle) + secrets.token_urlsafe(6)


def secret(name: str) -> str:
    """A generated password, created once per stack and kept in ``secrets/<name>`` (0600)."""
    path = stack_dir() / "secrets" / name
    if not path.exists():
        write_secret_file(path, new_secret())
    return path.read_text().strip()


def env_line(key: str, value: str) -> str:
    """``KEY="value"`` as compose's .env reader reads it back exactly: double-quoted, with
    backslashes and double quotes escaped; ``$`` (an interpolation) is refused."""
    if "$" in value or "\n" in value:
        raise ValueError(f"{key}: a .env value here must not hold '$' or a newline")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key}="{escaped}"\n'


def url_password(password: str) -> str:
    """A password as it goes in a URL DSN's userinfo: every reserved character percent-encoded."""
    return urllib.parse.quote(password, safe="")


def keyword_value(value: str) -> str:
    """A libpq keyword DSN value: single-quoted, with backslashes and quotes escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def load_state() -> dict:
    path = stack_dir() / "stack.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_state(state: dict) -> None:
    path = stack_dir() / "stack.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    os.replace(tmp, path)


# PostgreSQL -------------------------------------------------------------------------------------


def pg_pid(datadir: Path) -> int | None:
    pidfile = datadir / "postmaster.pid"
    if not pidfile.exists():
        return None
    try:
        return int(pidfile.read_text().split()[0])
    except (ValueError, IndexError):
        return None


def postgres_ids() -> tuple[int, int]:
    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def chown_postgres(path: Path) -> None:
    uid, gid = postgres_ids()
    os.chown(path, uid, gid)


def initdb(datadir: Path, password: str) -> None:
    datadir.mkdir(parents=True, exist_ok=True)
    os.chmod(datadir, 0o700)
    chown_postgres(datadir)
    pwfile = datadir.parent / f".{datadir.name}.pw"
    write_secret_file(pwfile, password + "\n", owner="postgres")
    try:
        run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "initdb"),
                "-D",
                str(datadir),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
            stdout=subprocess.DEVNULL,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    with open(datadir / "postgresql.auto.conf", "a") as conf:
        conf.write("listen_addresses = '127.0.0.1'\nlog_min_messages = warning\n")


def start_cluster(role: str, port: int) -> dict:
    root = stack_dir() / "pg"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    datadir = root / role
    socket_dir = root / f"{role}.sock"
    socket_dir.mkdir(exist_ok=True)
    chown_postgres(socket_dir)
    password = secret(f"pg_{role}_superuser")
    if not (datadir / "PG_VERSION").exists():
        initdb(datadir, password)
    pid = pg_pid(datadir)
    if not pid_alive(pid):
        if port_open(port):
            raise RuntimeError(f"port {port} for the {role} cluster is taken by another process")
        logfile = root / f"{role}.log"
        logfile.touch()
        chown_postgres(logfile)
        run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(datadir),
                "-l",
                str(logfile),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port} -k {socket_dir}",
                "start",
            ],
            stdout=subprocess.DEVNULL,
        )
        pid = pg_pid(datadir)
    ensure_app_database(port, password, secret(f"pg_{role}_app"))
    return {"port": port, "datadir": str(datadir), "pid": pid, "log": str(root / f"{role}.log")}


def ensure_app_database(port: int, superuser_password: str, app_password: str) -> None:
    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        password=superuser_password,
        dbname="postgres",
        autocommit=True,
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'app'").fetchone():
            conn.execute(
                sql.SQL("CREATE ROLE app LOGIN PASSWORD {}").format(sql.Literal(app_password))
            )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'app'").fetchone():
            conn.execute("CREATE DATABASE app OWNER app")


def stop_pid(pid: int | None, what: str, timeout: float = 30.0) -> None:
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not pid_alive(pid), f"{what} (pid {pid}) to stop", timeout)
    except RuntimeError:
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), f"{what} (pid {pid}) to die", 10)
    # Reap it if it is our child (dockerd started by this process).
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# SSH hosts ----------------------------------------------------------------------------------------


def ensure_keypair(path: Path, comment: str) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            stdout=subprocess.DEVNULL,
        )


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None  # absent, or not written completely yet


def sshd_config(name: str, port: int, host_key: Path, authorized_keys: Path, pidfile: Path) -> str:
    return "\n".join(
        [
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {host_key}",
            f"PidFile {pidfile}",
            f"AuthorizedKeysFile {authorized_keys}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "StrictModes no",
            "UsePAM no",
            "PrintMotd no",
            "Subsystem sftp internal-sftp",
            f"SetEnv TURNOUT_STACK_HOST={name} DOCKER_HOST={docker_host()}",
            "",
        ]
    )


def start_sshd(name: str, port: int) -> dict:
    root = stack_dir() / "ssh"
    host_dir = root / name
    host_key = host_dir / "ssh_host_ed25519_key"
    ensure_keypair(host_key, f"turnout-stack-{name}-hostkey")
    authorized_keys = root / "authorized_keys"
    pidfile = host_dir / "sshd.pid"
    config = host_dir / "sshd_config"
    config.write_text(sshd_config(name, port, host_key, authorized_keys, pidfile))
    pid = read_pid(pidfile)
    if not pid_alive(pid):
        if port_open(port):
            raise RuntimeError(f"port {port} for the {name} SSH host is taken by another process")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        run([SSHD, "-t", "-f", str(config)])
        run([SSHD, "-f", str(config), "-E", str(host_dir / "sshd.log")])
        wait_until(lambda: read_pid(pidfile), f"sshd for {name} to write its pid file", 10)
        pid = read_pid(pidfile)
        wait_until(lambda: port_open(port), f"sshd for {name} on port {port}", 10)
    public_key = (host_key.with_suffix(".pub")).read_text().split()
    return {
        "port": port,
        "pid": pid,
        "host_key_type": public_key[0],
        "host_key": public_key[1],
        "config": str(config),
    }


def write_ssh_client_files(hosts: dict) -> dict:
    root = stack_dir() / "ssh"
    client_key = root / "client_ed25519"
    ensure_keypair(client_key, "turnout-stack-client")
    write_secret_file(root / "authorized_keys", client_key.with_suffix(".pub").read_text())
    known_hosts = root / "known_hosts"
    lines = [
        f"[127.0.0.1]:{info['port']} {info['host_key_type']} {info['host_key']}"
        for info in hosts.values()
    ]
    known_hosts.write_text("\n".join(lines) + "\n")
    return {"client_key": str(client_key), "known_hosts": str(known_hosts)}


# Redis --------------------------------------------------------------------------------------------


def redis_dir() -> Path:
    return stack_dir() / "redis"


def redis_password() -> str:
    """Generated like every other password (``@ : / % # ' "`` and a space inside): the config
    file double-quotes it, ``REDIS_URL`` percent-encodes it, redis-cli gets it by
    ``REDISCLI_AUTH`` (never argv)."""
    return secret("redis")


def redis_config_value(value: str) -> str:
    """A value as redis.conf reads it back exactly: double-quoted, backslash and quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_url(db: int) -> str:
    return f"redis://:{url_password(redis_password())}@127.0.0.1:{ports()['redis']}/{db}"


def redis_answers(port: int) -> bool:
    result = subprocess.run(  # noqa: S603
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), "--no-auth-warning", "ping"],
        capture_output=True,
        text=True,
        timeout=10,
        env={**os.environ, "REDISCLI_AUTH": redis_password()},
        check=False,
    )
    return result.stdout.strip() == "PONG"


def start_redis(port: int) -> dict:
    """The stack's own ``redis-server`` (never the machine's service): 127.0.0.1 only, its
    port, directory, pid file and password; no snapshots (a queue for tests)."""
    root = redis_dir()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    pidfile, logfile, config = root / "redis.pid", root / "redis.log", root / "redis.conf"
    write_secret_file(
        config,
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                "protected-mode yes",
                "daemonize yes",
                f"pidfile {pidfile}",
                f"logfile {logfile}",
                f"dir {root}",
                'save ""',
                "appendonly no",
                f"requirepass {redis_config_value(redis_password())}",
                "",
            ]
        ),
    )
    pid = read_pid(pidfile)
    if not pid_alive(pid):
        if port_open(port):
            raise RuntimeError(f"port {port} for the stack's Redis is taken by another process")
        run([REDIS_SERVER, str(config)], stdout=subprocess.DEVNULL)
        wait_until(lambda: read_pid(pidfile), "redis-server to write its pid file", 10)
        pid = read_pid(pidfile)
        wait_until(lambda: redis_answers(port), f"redis-server on port {port}", 10)
    return {
        "port": port,
        "pid": pid,
        "dir": str(root),
        "log": str(logfile),
        "dbs": dict(REDIS_DBS),
        "url_env": "REDIS_URL",
    }


# Docker -------------------------------------------------------------------------------------------


def docker_dir() -> Path:
    return stack_dir() / "docker"


def docker_host() -> str:
    """The stack's own Docker engine: ``unix://<stack_dir>/docker/docker.sock``. Everything the
    stack runs (compose, image builds) and the SSH hosts' sessions (``SetEnv``) use it."""
    return f"unix://{docker_dir() / 'docker.sock'}"


def use_own_engine() -> None:
    """Point this process and its children at the stack's engine, never the machine's."""
    os.environ["DOCKER_HOST"] = docker_host()


def docker_answers() -> bool:
    result = subprocess.run(  # noqa: S603
        [DOCKER, "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        timeout=20,
        env={**os.environ, "DOCKER_HOST": docker_host()},
    )
    return result.returncode == 0


def dockerd_argv(root: Path) -> list[str]:
    """A Docker engine of the stack's own: its data root, exec root (with its own containerd),
    pid file and socket under ``<stack_dir>/docker``; no iptables, no bridge (host network)."""
    return [
        "dockerd",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'dockerd.pid'}",
        f"--host={docker_host()}",
    ]


def ensure_dockerd(previous: dict) -> dict:
    """Start the stack's own engine unless it already runs (a second stack on this machine has
    another one: taking either down never touches the other's containers)."""
    root = docker_dir()
    pid = read_pid(root / "dockerd.pid")
    if pid_alive(pid) and docker_answers():
        return {**previous, "started_by_stack": True, "pid": pid, "host": docker_host()}
    root.mkdir(parents=True, exist_ok=True)
    logfile = open(root / "dockerd.log", "ab")  # noqa: SIM115 - handed to the daemon
    process = subprocess.Popen(  # noqa: S603
        dockerd_argv(root),
        stdout=logfile,
        stderr=logfile,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_until(docker_answers, "dockerd to answer", 90)
    return {
        "started_by_stack": True,
        "pid": process.pid,
        "host": docker_host(),
        "log": str(root / "dockerd.log"),
    }


def build_images() -> None:
    sys.path.insert(0, str(REPO / "tests" / "fixtures" / "refapp"))
    from images import build_images as build  # noqa: PLC0415 - fixture module

    build(docker=DOCKER)


# App hosts ----------------------------------------------------------------------------------------


def pg_url(role: str, port: int, scheme: str = "postgresql+psycopg", dbname: str = "app") -> str:
    """The ``app`` role's URL DSN, its password percent-encoded."""
    password = url_password(secret(f"pg_{role}_app"))
    return f"{scheme}://app:{password}@127.0.0.1:{port}/{dbname}"


def pg_keywords(role: str, port: int, dbname: str) -> str:
    """The ``app`` role's keyword DSN, its password quoted."""
    password = keyword_value(secret(f"pg_{role}_app"))
    return f"host=127.0.0.1 port={port} dbname={dbname} user=app password={password}"


def python_home() -> str:
    return str(Path(os.path.realpath(sys.base_prefix)))


def app_env(name: str, host_root: Path) -> dict[str, str]:
    p = ports()
    compose_db_port = p[f"compose_db_{name}"]
    env = {
        "APP_PORT": str(p[f"app_{name}"]),
        "DB_PORT": str(compose_db_port),
        "POSTGRES_USER": "app",
        "POSTGRES_DB": "app",
        "POSTGRES_PASSWORD": secret(f"compose_db_{name}"),
        "REFAPP_SECRET": secret(f"refapp_secret_{name}"),
        "REFAPP_ADMIN_PASSWORD": secret("refapp_admin"),
        "REFAPP_USER_PASSWORD": secret("refapp_user"),
        "ASSETS_DIR": str(host_root / "data" / "assets"),
        "PGDATA_DIR": str(host_root / "data" / "pgdata"),
        "REFAPP_SRC": str(REPO / "tests" / "fixtures" / "refapp"),
        "VENV": sys.prefix,
        "PYTHON_HOME": python_home(),
        # The worker's job queue: this host's database in the stack's Redis.
        "REDIS_URL": redis_url(REDIS_DBS[name]),
    }
    if name == "staging":
        # Staging's app runs against a PostgreSQL outside compose: the staging cluster.
        env["DATABASE_URL"] = pg_url("staging", p["pg_staging"])
        env["SOURCE_DATABASE_URL"] = pg_url("source", p["pg_source"])
        # The second source database (``seed-real``) and its staging target: keyword DSNs.
        env[REAL_SOURCE_ENV] = pg_keywords("source", p["pg_source"], REAL_DB)
        env[REAL_TARGET_ENV] = pg_keywords("staging", p["pg_staging"], REAL_DB)
    else:
        # Prod's app runs against the compose db service.
        password = url_password(env["POSTGRES_PASSWORD"])
        env["DATABASE_URL"] = f"postgresql+psycopg://app:{password}@127.0.0.1:{compose_db_port}/app"
    return env


def prepare_app_host(name: str) -> dict:
    host_root = stack_dir() / "hosts" / name
    app_root = host_root / "app"
    for path in (app_root, host_root / "data" / "assets", host_root / "evidence"):
        path.mkdir(parents=True, exist_ok=True)
    pgdata = host_root / "data" / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    chown_postgres(pgdata)
    os.chmod(pgdata, 0o700)
    shutil.copyfile(
        REPO / "tests" / "fixtures" / "refapp" / "compose.yml", app_root / "docker-compose.yml"
    )
    env = app_env(name, host_root)
    write_secret_file(app_root / ".env", "".join(env_line(k, v) for k, v in env.items()))
    return {
        "root": str(host_root),
        "app_root": str(app_root),
        "env_file": str(app_root / ".env"),
        "compose_file": str(app_root / "docker-compose.yml"),
        "compose_project": f"turnout{port_base()}-{name}",
        "assets_dir": env["ASSETS_DIR"],
        "evidence_root": str(host_root / "evidence"),
        "base_url": f"http://127.0.0.1:{env['APP_PORT']}",
    }


def compose_down(host: dict) -> None:
    if not Path(host.get("compose_file", "")).exists():
        return
    subprocess.run(  # noqa: S603
        [
            DOCKER,
            "compose",
            "--env-file",
            host["env_file"],
            "-f",
            host["compose_file"],
            "-p",
            host["compose_project"],
            "down",
            "--remove-orphans",
            "--timeout",
            "5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )


def superuser_conninfo(role: str) -> dict:
    return {
        "host": "127.0.0.1",
        "port": ports()[f"pg_{role}"],
        "user": "postgres",
        "password": secret(f"pg_{role}_superuser"),
    }


def seed_source(rows: int) -> dict:
    """The source side of a migration: the reference app's schema and ``rows`` rows per table in
    the source cluster, their asset files in ``hosts/source/assets``, and the ``pg_trgm``
    extension (a contrib extension standing in for pgvector, which Debian does not package)."""
    assets = stack_dir() / "hosts" / "source" / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(**superuser_conninfo("source"), dbname="app", autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    env = {
        **os.environ,
        "DATABASE_URL": pg_url("source", ports()["pg_source"]),
        "REFAPP_SECRET": secret("refapp_secret_source"),
        "REFAPP_ADMIN_PASSWORD": secret("refapp_admin"),
        "REFAPP_USER_PASSWORD": secret("refapp_user"),
        "PYTHONPATH": str(REPO / "tests" / "fixtures" / "refapp"),
    }
    refapp = [sys.executable, "-m", "refapp"]
    run([*refapp, "migrate"], env=env, stdout=subprocess.DEVNULL)
    run(
        [*refapp, "seed", "--rows", str(rows), "--data-dir", str(assets)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return {"assets_dir": str(assets), "rows": rows}


# The second source database ---------------------------------------------------------------------

REAL_DB = "real"
REAL_SOURCE_ENV = "REAL_SOURCE_DATABASE_URL"
REAL_TARGET_ENV = "REAL_DATABASE_URL"

# What real apps' schemas use besides plain tables: declarative partitioning (range and list, with
# primary keys, a default partition), a second schema (with a space in its name), quoted mixed-case
# table and column names, a table without a primary key, composite and self-referencing foreign keys
# (one to a partitioned table), identity and serial columns, a view, a materialized view, a domain,
# an enum, a generated column and a trigger.
REAL_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE SCHEMA "Odd Schema";
CREATE DOMAIN public.email AS text CHECK (VALUE LIKE '%@%');
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.artists (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    email public.email,
    mentor_id bigint REFERENCES public.artists (id)
);
CREATE TABLE public.albums (
    artist_id bigint NOT NULL REFERENCES public.artists (id),
    album_no int NOT NULL,
    title text NOT NULL,
    PRIMARY KEY (artist_id, album_no)
);
CREATE TABLE public.tracks (
    id serial PRIMARY KEY,
    artist_id bigint NOT NULL,
    album_no int NOT NULL,
    title text NOT NULL,
    seconds int NOT NULL,
    minutes numeric GENERATED ALWAYS AS (seconds / 60.0) STORED,
    mood public.mood NOT NULL DEFAULT 'ok',
    FOREIGN KEY (artist_id, album_no) REFERENCES public.albums (artist_id, album_no)
);
CREATE TABLE public."PlayCount" (
    "TrackId" int NOT NULL REFERENCES public.tracks (id),
    "Plays" bigint NOT NULL,
    "UpdatedAt" timestamptz NOT NULL DEFAULT '2026-01-01'
);
CREATE TABLE public.events (
    id bigint GENERATED BY DEFAULT AS IDENTITY,
    happened_at timestamptz NOT NULL,
    track_id int REFERENCES public.tracks (id),
    payload jsonb,
    PRIMARY KEY (id, happened_at)
) PARTITION BY RANGE (happened_at);
CREATE TABLE public.events_2025 PARTITION OF public.events
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.events_2026 PARTITION OF public.events
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE public.event_notes (
    id serial PRIMARY KEY,
    event_id bigint NOT NULL,
    happened_at timestamptz NOT NULL,
    note text,
    FOREIGN KEY (event_id, happened_at) REFERENCES public.events (id, happened_at)
);
CREATE TABLE "Odd Schema"."Listeners" (
    id bigserial,
    region text NOT NULL,
    "Display Name" text NOT NULL,
    mood public.mood,
    PRIMARY KEY (id, region)
) PARTITION BY LIST (region);
CREATE TABLE "Odd Schema"."Listeners_eu" PARTITION OF "Odd Schema"."Listeners" FOR VALUES IN ('eu');
CREATE TABLE "Odd Schema"."Listeners_us" PARTITION OF "Odd Schema"."Listeners" FOR VALUES IN ('us');
CREATE TABLE "Odd Schema"."Listeners_other" PARTITION OF "Odd Schema"."Listeners" DEFAULT;
CREATE TABLE "Odd Schema".audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tbl text NOT NULL,
    op text NOT NULL
);
CREATE FUNCTION "Odd Schema".log_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO "Odd Schema".audit_log (tbl, op) VALUES (TG_TABLE_NAME, TG_OP);
    RETURN NEW;
END $$;
CREATE TRIGGER tracks_audit AFTER INSERT OR UPDATE ON public.tracks
    FOR EACH ROW EXECUTE FUNCTION "Odd Schema".log_change();
CREATE VIEW public.artist_tracks AS
    SELECT a.name, t.title FROM public.artists a JOIN public.tracks t ON t.artist_id = a.id;
"""

# %(n)s rows: artists n/4 (each mentored by the one before), two albums each, n tracks, n play
# counts (duplicates allowed: no key), n events over two years, n/2 notes, n listeners.
REAL_DATA = """
INSERT INTO public.artists (name, email, mentor_id)
    SELECT 'artist ' || i, 'a' || i || '@example.org', NULL FROM generate_series(1, %(artists)s) i;
UPDATE public.artists SET mentor_id = id - 1 WHERE id > 1;
INSERT INTO public.albums SELECT a.id, k, 'album ' || a.id || '/' || k
    FROM public.artists a, generate_series(1, 2) k;
INSERT INTO public.tracks (artist_id, album_no, title, seconds, mood)
    SELECT 1 + (i %% %(artists)s), 1 + (i %% 2), 'track ' || i, 60 + i,
           (ARRAY['sad', 'ok', 'happy'])[1 + i %% 3]::public.mood
    FROM generate_series(1, %(n)s) i;
INSERT INTO public."PlayCount" ("TrackId", "Plays")
    SELECT 1 + (i %% %(n)s), i FROM generate_series(1, %(n)s) i;
INSERT INTO public.events (happened_at, track_id, payload)
    SELECT timestamptz '2025-01-01' + (i * 3 %% 700) * interval '1 day',
           1 + (i %% %(n)s), jsonb_build_object('i', i)
    FROM generate_series(1, %(n)s) i;
INSERT INTO public.event_notes (event_id, happened_at, note)
    SELECT id, happened_at, 'note ' || id FROM public.events WHERE id %% 2 = 0;
INSERT INTO "Odd Schema"."Listeners" (region, "Display Name", mood)
    SELECT (ARRAY['eu', 'us', 'apac'])[1 + i %% 3], 'Listener ' || i, 'happy'
    FROM generate_series(1, %(n)s) i;
CREATE MATERIALIZED VIEW public.track_plays AS
    SELECT t.id, t.title, coalesce(sum(p."Plays"), 0) AS plays
    FROM public.tracks t LEFT JOIN public."PlayCount" p ON p."TrackId" = t.id
    GROUP BY t.id, t.title;
ANALYZE;
"""


def ensure_database(role: str, dbname: str, fresh: bool) -> None:
    """Database ``dbname`` owned by ``app`` in the ``role`` cluster; ``fresh`` drops it first."""
    with psycopg.connect(**superuser_conninfo(role), dbname="postgres", autocommit=True) as conn:
        if fresh:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
        if not exists.fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER app").format(sql.Identifier(dbname)))


def seed_real(rows: int) -> dict:
    """The second source database ``real`` (``REAL_SCHEMA``, ``rows`` rows in the big tables),
    built by the ``app`` role as an app's migrations would; an empty ``real`` database on staging
    for it to be rehearsed into. Their DSNs are in staging's ``.env`` (keyword DSNs)."""
    ensure_database("source", REAL_DB, fresh=True)
    ensure_database("staging", REAL_DB, fresh=False)
    p = ports()
    with psycopg.connect(
        host="127.0.0.1",
        port=p["pg_source"],
        user="app",
        password=secret("pg_source_app"),
        dbname=REAL_DB,
        autocommit=True,
    ) as conn:
        conn.execute(REAL_SCHEMA)
        conn.execute(REAL_DATA % {"n": rows, "artists": max(rows // 4, 1)})
    return {
        "database": REAL_DB,
        "rows": rows,
        "source_dsn_env": REAL_SOURCE_ENV,
        "target_dsn_env": REAL_TARGET_ENV,
    }


# The second fixture app: itemsapp ---------------------------------------------------------------

ITEMS_DIR = REPO / "tests" / "fixtures" / "itemsapp"
ITEMS_SOURCE_DB = "items"
ITEMS_HOSTMODE = "itemshost"
ITEMS_SUPERUSER = "admin@example.com"
ITEMS_NORMAL_USER = "user@example.com"
# The compose db's socket directory as the app containers see it (the named volume ``pgsock``).
ITEMS_SOCKET_DIR = "/run/postgresql"


def items_users() -> dict[str, str]:
    return {
        "FIRST_SUPERUSER": ITEMS_SUPERUSER,
        "FIRST_SUPERUSER_PASSWORD": secret("items_admin"),
        "NORMAL_USER": ITEMS_NORMAL_USER,
        "NORMAL_USER_PASSWORD": secret("items_user"),
    }


def items_cluster_env(role: str, dbname: str) -> dict[str, str]:
    """The ``POSTGRES_*`` parts for the ``app`` role's database ``dbname`` on a stack cluster."""
    return {
        "POSTGRES_SERVER": "127.0.0.1",
        "POSTGRES_PORT": str(ports()[f"pg_{role}"]),
        "POSTGRES_USER": "app",
        "POSTGRES_PASSWORD": secret(f"pg_{role}_app"),
        "POSTGRES_DB": dbname,
    }


def items_compose_env(name: str) -> dict[str, str]:
    """An SSH host's itemsapp ``.env``: the compose db reached by its socket, the users, the
    mounts, and the source database for the rehearsal (a URL DSN, password percent-encoded)."""
    return {
        "POSTGRES_SERVER": ITEMS_SOCKET_DIR,
        "POSTGRES_PORT": "5432",
        "POSTGRES_USER": "app",
        "POSTGRES_PASSWORD": secret(f"items_db_{name}"),
        "POSTGRES_DB": "app",
        "SECRET_KEY": secret(f"items_secret_{name}"),
        **items_users(),
        "APP_PORT": str(ports()[f"items_{name}"]),
        "ITEMSAPP_SRC": str(ITEMS_DIR),
        "VENV": sys.prefix,
        "PYTHON_HOME": python_home(),
        "SOURCE_DATABASE_URL": pg_url(
            "source", ports()["pg_source"], scheme="postgresql", dbname=ITEMS_SOURCE_DB
        ),
    }


def prepare_items_host(name: str) -> dict:
    app_root = stack_dir() / "hosts" / name / "itemsapp"
    app_root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ITEMS_DIR / "compose.yml", app_root / "docker-compose.yml")
    env = items_compose_env(name)
    write_secret_file(app_root / ".env", "".join(env_line(k, v) for k, v in env.items()))
    return {
        "app_root": str(app_root),
        "env_file": str(app_root / ".env"),
        "compose_file": str(app_root / "docker-compose.yml"),
        "compose_project": f"turnout{port_base()}-{name}-items",
        "base_url": f"http://127.0.0.1:{env['APP_PORT']}",
        "app_port": int(env["APP_PORT"]),
    }


def prepare_items_hostmode() -> dict:
    """The host-mode root: its ``.env`` points at database ``itemshost`` on the staging cluster;
    ``tests/fixtures/itemsapp/hostctl.sh start <root>`` runs it (the stack does not)."""
    root = stack_dir() / "hosts" / ITEMS_HOSTMODE
    root.mkdir(parents=True, exist_ok=True)
    ensure_database("staging", ITEMS_HOSTMODE, fresh=False)
    env = {
        **items_cluster_env("staging", ITEMS_HOSTMODE),
        "SECRET_KEY": secret("items_secret_hostmode"),
        **items_users(),
        "APP_PORT": str(ports()["items_host"]),
    }
    write_secret_file(root / ".env", "".join(env_line(k, v) for k, v in env.items()))
    return {
        "app_root": str(root),
        "env_file": str(root / ".env"),
        "hostctl": str(ITEMS_DIR / "hostctl.sh"),
        "pidfile": str(root / "itemsapp.pid"),
        "log": str(root / "itemsapp.log"),
        "database": ITEMS_HOSTMODE,
        "base_url": f"http://127.0.0.1:{env['APP_PORT']}",
        "app_port": int(env["APP_PORT"]),
    }


def items_hostmode_pid() -> int | None:
    """The host-mode app's uvicorn, from its pid file, only while that pid is still it."""
    pid = read_pid(stack_dir() / "hosts" / ITEMS_HOSTMODE / "itemsapp.pid")
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid else b""
    except OSError:
        return None
    return pid if b"itemsapp.main:app" in cmdline else None


def prepare_itemsapp() -> dict:
    return {
        "hosts": {name: prepare_items_host(name) for name in SSH_HOSTS},
        "hostmode": prepare_items_hostmode(),
        "superuser": ITEMS_SUPERUSER,
        "normal_user": ITEMS_NORMAL_USER,
        "password_secrets": {"superuser": "items_admin", "normal_user": "items_user"},
        "source_database": ITEMS_SOURCE_DB,
    }


def seed_items(count: int) -> dict:
    """itemsapp's source database ``items`` (owner ``app``) on the source cluster, made anew:
    migrated to head by the app's prestart (which creates the users), then ``count`` items."""
    ensure_database("source", ITEMS_SOURCE_DB, fresh=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("POSTGRES_")},
        **items_cluster_env("source", ITEMS_SOURCE_DB),
        "SECRET_KEY": secret("items_secret_source"),
        **items_users(),
        "PYTHONPATH": str(ITEMS_DIR),
    }
    outputs = []
    for module, *args in (("itemsapp.prestart",), ("itemsapp.seed", "--items", str(count))):
        result = run(
            [sys.executable, "-m", module, *args],
            env=env,
            cwd=ITEMS_DIR,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"stack: {module} failed:\n{result.stdout}{result.stderr[-2000:]}")
        outputs.append(result.stdout)
    return {"database": ITEMS_SOURCE_DB, **json.loads(outputs[-1])}


# Commands -----------------------------------------------------------------------------------------


def check_app_ports_free(p: dict[str, int]) -> None:
    """Before a fresh stack starts its apps and compose databases, their ports must be free:
    something else answering there would be taken for the stack's app (clusters and sshd check
    their own ports when they start)."""
    taken = [
        f"{name} ({port})"
        for name, port in p.items()
        if name.startswith(("app_", "compose_db_", "items_")) and port_open(port)
    ]
    if taken:
        raise SystemExit(
            "stack: ports already in use on 127.0.0.1: " + ", ".join(taken) + "; stop what "
            "listens there or choose another TURNOUT_STACK_PORT_BASE"
        )


def up() -> dict:
    root = stack_dir()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    (root / "secrets").mkdir(mode=0o700, exist_ok=True)
    previous = load_state()
    p = ports()
    if not previous.get("hosts"):
        check_app_ports_free(p)
    state: dict = {"dir": str(root), "repo": str(REPO), "python": sys.executable}

    state["pg"] = {role: start_cluster(role, p[f"pg_{role}"]) for role in PG_ROLES}
    log("postgres clusters up: " + ", ".join(f"{r}:{p[f'pg_{r}']}" for r in PG_ROLES))

    write_ssh_client_files({})  # the client key must exist before sshd reads authorized_keys
    ssh_hosts = {name: start_sshd(name, p[f"ssh_{name}"]) for name in SSH_HOSTS}
    state["ssh"] = {"hosts": ssh_hosts, **write_ssh_client_files(ssh_hosts)}
    log("ssh hosts up: " + ", ".join(f"{n}:{p[f'ssh_{n}']}" for n in SSH_HOSTS))

    state["redis"] = start_redis(p["redis"])
    save_state(state)
    log(f"redis up: {p['redis']}")

    state["docker"] = ensure_dockerd(previous.get("docker", {}))
    save_state(state)  # so `down` can stop what is already running if the image build fails
    build_images()
    log("docker engine up, images built")

    state["hosts"] = {name: prepare_app_host(name) for name in SSH_HOSTS}
    save_state(state)
    state["itemsapp"] = {**previous.get("itemsapp", {}), **prepare_itemsapp()}
    save_state(state)
    log(f"ready; state in {root / 'stack.json'}")
    return state


def unmount_under(root: Path) -> None:
    """Lazily unmount whatever is still mounted under ``root`` (an engine killed mid-way leaves
    its overlay mounts), deepest first, so removing the tree never walks into a mount."""
    try:
        with open("/proc/self/mounts") as handle:
            points = [line.split()[1].replace("\\040", " ") for line in handle]
    except OSError:
        return
    inside = [point for point in points if point.startswith(f"{root}/")]
    for point in sorted(inside, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)  # noqa: S603,S607


def remove_tree(root: Path, every: float = 3.0) -> int:
    """Remove ``root`` bottom-up, saying every ``every`` seconds how many files are gone so far
    (a stack with 600k asset files takes minutes). Returns the number of files removed."""
    removed, last = 0, time.monotonic()
    for directory, dirs, names in os.walk(root, topdown=False):
        for name in names:
            try:
                os.unlink(os.path.join(directory, name))
            except FileNotFoundError:
                pass
            removed += 1
            if time.monotonic() - last >= every:
                log(f"removing {root}: {removed} files removed so far")
                last = time.monotonic()
        for name in dirs:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                os.unlink(path)
            else:
                os.rmdir(path)
    if root.exists():
        root.rmdir()
    return removed


def down() -> None:
    """Stop everything this stack started, found from stack.json and from the pid files on disk
    (so a half-finished ``up`` that never wrote stack.json is taken down too), then remove the
    stack directory, saying how far it got every few seconds."""
    root = stack_dir()
    state = load_state()
    log(f"taking down the stack in {root}")
    for host in state.get("hosts", {}).values():
        compose_down(host)
    for host in state.get("itemsapp", {}).get("hosts", {}).values():
        compose_down(host)
    stop_pid(items_hostmode_pid(), "itemsapp (host mode)")
    for pidfile in sorted(root.glob("ssh/*/sshd.pid")):
        stop_pid(read_pid(pidfile), f"sshd {pidfile.parent.name}")
    stop_pid(read_pid(root / "redis" / "redis.pid"), "redis-server")
    for pidfile in sorted(root.glob("pg/*/postmaster.pid")):
        stop_pid(pg_pid(pidfile.parent), f"postgres {pidfile.parent.name}")
    # The stack's own engine (never another stack's: each has its own pid file and socket).
    pid = read_pid(root / "docker" / "dockerd.pid")
    if pid_alive(pid):
        log(f"stopping the stack's docker engine (pid {pid})")
    stop_pid(pid, "dockerd", timeout=60)
    if root.exists():
        unmount_under(root)
        log(f"removing {root}")
        removed = remove_tree(root)
        log(f"removed {root}: {removed} files")
    log("down")


def status() -> dict:
    state = load_state()
    report = {
        "pg": {r: pid_alive(pg_pid(Path(i["datadir"]))) for r, i in state.get("pg", {}).items()},
        "ssh": {n: pid_alive(i["pid"]) for n, i in state.get("ssh", {}).get("hosts", {}).items()},
        "docker": docker_answers() if state else False,
        "redis": pid_alive(read_pid(stack_dir() / "redis" / "redis.pid")),
    }
    return report


def seed(rows: int) -> dict:
    state = load_state()
    if not state:
        raise SystemExit("stack: not up; run `stack.py up` first")
    state["source"] = seed_source(rows)
    save_state(state)
    log(f"source seeded with {rows} rows per table, assets in {state['source']['assets_dir']}")
    return state


def seed_real_command(rows: int) -> dict:
    state = load_state()
    if not state:
        raise SystemExit("stack: not up; run `stack.py up` first")
    state["real"] = seed_real(rows)
    save_state(state)
    log(f"database {REAL_DB} seeded with {rows} rows per big table ({REAL_SOURCE_ENV})")
    return state


def seed_items_command(count: int) -> dict:
    state = load_state()
    if not state:
        raise SystemExit("stack: not up; run `stack.py up` first")
    state.setdefault("itemsapp", {})["source"] = seed_items(count)
    save_state(state)
    log(f"database {ITEMS_SOURCE_DB} seeded with {count} items (itemsapp, source cluster)")
    return state


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    use_own_engine()
    if command == "up":
        up()
    elif command == "seed":
        seed(int(argv[2]) if len(argv) > 2 else 200)
    elif command == "seed-real":
        seed_real_command(int(argv[2]) if len(argv) > 2 else 200)
    elif command == "seed-items":
        seed_items_command(int(argv[2]) if len(argv) > 2 else 200)
    elif command == "down":
        down()
    elif command == "status":
        print(json.dumps(status(), indent=2))
    else:
        print(
            "usage: stack.py up|seed [ROWS]|seed-real [ROWS]|seed-items [N]|down|status",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
