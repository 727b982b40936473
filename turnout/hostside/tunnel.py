"""Reach a database that only the compose network can reach: a local Unix socket whose every
connection is carried by ``docker compose exec -T <db service>`` to the server's own loopback.

A production compose file often publishes no port for its database (the seeds' production
shape: "copy the dump into the Postgres container and run pg_restore there"). turnout still needs
SQL connections for its checks (counts, orphans, constraints, the duplicates gate, terminating
sessions, the restore's preamble and sequences). ``open_tunnel`` binds a socket named as libpq
expects (``<dir>/.s.PGSQL.<port>``) in a private temporary directory (0700) of this process; a
thread accepts each connection and starts, for it, ``<via> sh -c <forwarder> <port>``, whose
standard input and output are the connection's bytes. Inside the container the forwarder opens
TCP to ``127.0.0.1:<port>`` with ``socat``, else bash's ``/dev/tcp``, else ``nc`` (the official
Debian images have bash, the Alpine ones busybox ``nc``). The server sees a TCP login from its own
loopback, so the DSN's user and password are checked as for the app; nothing is published and no
secret goes into argv (libpq sends the password inside the stream).

The directory and its socket go when the process exits; each forwarder is killed with its process
group when its connection ends. Forked children (the copy's workers) connect to the same socket:
the parent's thread serves them.

    from turnout.hostside.tunnel import tunnel_dsn
    dsn = tunnel_dsn("postgresql://app:pw@db:5432/app",
                     ["docker", "compose", "-f", "/srv/app/compose.yml", "exec", "-T", "db"])
    # 'host=/tmp/turnout-tunnel-…/ port=5432 user=app password=pw dbname=app'

Stdlib only at import time (psycopg lazily), no ``from __future__``: shipped to the hosts.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

# $1 is the port inside the container. Each branch replaces the shell, so killing the process
# group of `docker compose exec` on the host ends the forwarder's stdin and so the forwarder.
# The bash branch waits for its background `cat` after stopping it: a child left to die after
# bash would be reparented to the container's PID 1, which is the postmaster in a postgres
# image, and a postmaster that reaps an unknown child killed by a signal takes it for a crashed
# backend and restarts the whole database (every session cut, recovery mode).
FORWARDER = (
    'port="$1"; '
    "if command -v socat >/dev/null 2>&1; then exec socat - TCP:127.0.0.1:$port; fi; "
    "if command -v bash >/dev/null 2>&1; then exec bash -c "
    "'exec 3<>/dev/tcp/127.0.0.1/$0 || exit 111; cat <&3 & cat >&3; kill $! 2>/dev/null; wait' "
    '"$port"; fi; '
    'exec nc 127.0.0.1 "$port"'
)
_TUNNELS: dict[tuple[tuple[str, ...], str], str] = {}
_LOCK = threading.Lock()
_CHILDREN: set[subprocess.Popen] = set()


def forwarder_argv(via: list[str], port: str) -> list[str]:
    """The command carrying one connection: ``<via> sh -c <forwarder> turnout-tunnel <port>``.

    >>> forwarder_argv(["docker", "compose", "exec", "-T", "db"], "5432")[-2:]
    ['turnout-tunnel', '5432']
    """
    return [*via, "sh", "-c", FORWARDER, "turnout-tunnel", port]


def _pump(source: socket.socket | None, reader, sink: socket.socket | None, writer) -> None:  # noqa: ANN001
    """Copy bytes one way until end of file or an error, then close the writing side."""
    try:
        while True:
            data = source.recv(65536) if source is not None else reader.read1(65536)
            if not data:
                break
            if sink is not None:
                sink.sendall(data)
            else:
                writer.write(data)
                writer.flush()
    except (OSError, ValueError):
        pass
    finally:
        try:
            if sink is not None:
                sink.shutdown(socket.SHUT_WR)
            else:
                writer.close()
        except (OSError, ValueError):
            pass


def _kill(process: subprocess.Popen) -> None:
    """End a forwarder and everything it started (its own process group)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    _CHILDREN.discard(process)


def _carry(conn: socket.socket, via: list[str], port: str) -> None:
    """Carry one accepted connection through a forwarder, both ways, until either side ends."""
    try:
        process = subprocess.Popen(  # noqa: S603 - argv built from settings, no shell on the host
            forwarder_argv(via, port),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        conn.close()
        return
    _CHILDREN.add(process)
    inbound = threading.Thread(
        target=_pump, args=(conn, None, None, process.stdin), daemon=True
    )
    inbound.start()
    _pump(None, process.stdout, conn, None)
    conn.close()
    _kill(process)


def _serve(listener: socket.socket, via: list[str], port: str) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_carry, args=(conn, via, port), daemon=True).start()


def _cleanup(directory: str, listener: socket.socket, owner: int) -> None:
    if os.getpid() != owner:  # a forked worker exits: the parent still serves
        return
    listener.close()
    for process in list(_CHILDREN):
        _kill(process)
    shutil.rmtree(directory, ignore_errors=True)


def open_tunnel(via: list[str], port: str) -> str:
    """The directory of a Unix socket ``.s.PGSQL.<port>`` carried to ``127.0.0.1:<port>`` inside
    the container ``via`` runs in (one per ``via`` and port in this process)."""
    key = (tuple(via), port)
    with _LOCK:
        if key in _TUNNELS:
            return _TUNNELS[key]
        directory = tempfile.mkdtemp(prefix="turnout-tunnel-")
        os.chmod(directory, 0o700)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.path.join(directory, f".s.PGSQL.{port}"))
        listener.listen(16)
        threading.Thread(target=_serve, args=(listener, list(via), port), daemon=True).start()
        atexit.register(_cleanup, directory, listener, os.getpid())
        _TUNNELS[key] = directory
        return directory


# What a libpq connection through the tunnel must not keep: where the server was (the tunnel is
# the way now) and TLS (a Unix socket; the bytes cross no network).
_DROPPED = ("host", "hostaddr", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl")


def tunnel_dsn(dsn: str, via: list[str]) -> str:
    """``dsn`` with its host replaced by a tunnel into the container ``via`` runs in: the same
    user, password, database and port (default 5432), the server reached at its loopback.

    >>> tunnel_dsn("postgresql://app:pw@db:6543/app", ["true"]).startswith("host=/")
    True
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if k not in _DROPPED}
    port = params.pop("port", None) or "5432"
    directory = open_tunnel(via, port)
    return make_conninfo("", host=directory, port=port, **params)
