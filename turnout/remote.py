"""Shipping the host-side program (``turnout/hostside/``) to a host once, and calling it.

The program is a zip application built once per process from the real modules (``turnout/dsn.py``,
``turnout/constants.py`` and ``turnout/hostside/*.py``, under their own names, so a traceback on
the host names the real file and line). It is placed on each host once per run, content-addressed
(``<cache>/turnout/hostside-<sha256[:16]>.pyz`` under the user's ``${XDG_CACHE_HOME:-~/.cache}``,
directory 0700, file 0600), by one command that reads it base64-encoded on stdin (never argv) and
prints where it is. Every later call is a short command:
``<python> <cache>/hostside-….pyz <action> '<json params>'``. Placing the program is not a change to
the app and happens during ``--dry`` as well (facts need it).

Parameters travel as one JSON argument and must never contain a secret: DSNs are named by the
environment variable that holds them on the host (``dsn_env``) and the ``.env`` file to read.

    from turnout.remote import hostside_command
    command = hostside_command("http_health", {"url": "http://127.0.0.1:18080/api/v1/health"})
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import io
import json
import os
import tempfile
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

from pyinfra.api import QuoteString, StringCommand
from pyinfra.api.exceptions import PyinfraError

# The modules of the program, relative to the ``turnout`` package, under their real names.
PROGRAM_MODULES = (
    "__init__.py",
    "dsn.py",
    "constants.py",
    "hostside/__init__.py",
    "hostside/base.py",
    "hostside/envfile.py",
    "hostside/files.py",
    "hostside/web.py",
    "hostside/pg.py",
    "hostside/dump.py",
    "hostside/assets.py",
    "hostside/main.py",
)
ENTRY_POINT = "import sys\nfrom turnout.hostside.main import main\n\nsys.exit(main(sys.argv))\n"
# A fixed timestamp keeps the zip, and so its name on the host, the same for the same sources.
ZIP_DATE_TIME = (2020, 1, 1, 0, 0, 0)

# Statistics of this process's host-side calls, written at exit to ``$TURNOUT_STATS`` when set.
STATS: dict[str, int] = {
    "hostside_calls": 0,
    "hostside_bytes": 0,
    "ships": 0,
    "ship_bytes": 0,
    "full_dump_reads": 0,
}


class ShipError(PyinfraError):
    """The program could not be placed on a host; pyinfra prints the one line."""


@cache
def program_zip() -> bytes:
    """The host-side program as a zip application (deterministic bytes)."""
    root = Path(__file__).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [("__main__.py", ENTRY_POINT)]
        for name in PROGRAM_MODULES:
            path = root / name
            text = path.read_text(encoding="utf-8") if path.exists() else ""
            entries.append((f"turnout/{name}", text))
        for name, text in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            archive.writestr(info, text)
    return buffer.getvalue()


@cache
def program_name() -> str:
    """``hostside-<sha256[:16]>.pyz``: the program's file name, the same for the same code."""
    return f"hostside-{hashlib.sha256(program_zip()).hexdigest()[:16]}.pyz"


def ship_command() -> StringCommand:
    """A command that reads the program base64-encoded on stdin, keeps it in the user's cache
    (0700 directory, 0600 file, written under a temporary name and renamed; an existing copy with
    the right sha256 is kept) and prints its absolute path."""
    digest = hashlib.sha256(program_zip()).hexdigest()
    script = (
        "umask 077; "
        'd="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/turnout"; '
        'mkdir -p "$d" && chmod 700 "$d" || exit 1; '
        f'f="$d/{program_name()}"; '
        f'if ! echo "{digest}  $f" | sha256sum -c --status 2>/dev/null; then '
        'base64 -d > "$f.tmp.$$" && mv -f "$f.tmp.$$" "$f" || { rm -f "$f.tmp.$$"; exit 1; }; '
        "else cat > /dev/null; fi; "
        'echo "$f"'
    )
    return StringCommand("sh", "-c", QuoteString(script))


def program_payload() -> str:
    """The program base64-encoded in 76-character lines, for the ship command's stdin."""
    return base64.encodebytes(program_zip()).decode("ascii")


def local_program() -> str:
    """Place the program in this machine's cache without pyinfra (tests, tools); its path."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.environ.get("HOME", "/tmp"), ".cache"
    )
    directory = os.path.join(cache_home, "turnout")
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, program_name())
    data = program_zip()
    if os.path.exists(path) and Path(path).read_bytes() == data:
        return path
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
    return path


def _connector_arguments(state: Any, host: Any) -> dict:
    """The connector arguments (``_sudo``, ``_su_user``, …) a fact would run with right now, so
    the program is placed as the user that will run it."""
    from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments

    current = dict(host.current_op_global_arguments or {})
    arguments, _ = pop_global_arguments(state, host, current)
    return {
        key: value
        for key, value in arguments.items()
        if key in CONNECTOR_ARGUMENT_KEYS and key not in ("_stdin", "_timeout")
    }


def ensure_program(state: Any, host: Any) -> str:
    """The program's path on ``host``, placing it there on the first call of this run."""
    placed = getattr(host, "_turnout_program", None)
    if placed and placed[0] == program_name():
        return placed[1]
    if not host.connected:
        host.connect(reason="to place turnout's host program", raise_exceptions=True)
    payload = program_payload()
    status, output = host.run_shell_command(
        ship_command(), _stdin=payload, **_connector_arguments(state, host)
    )
    lines = [line.strip() for line in output.stdout_lines if line.strip()]
    if not status or not lines or not lines[-1].startswith("/"):
        last = (output.stderr_lines or ["no output"])[-1]
        raise ShipError(
            f"cannot place turnout's host program on {host.name}: {last}; check that the user "
            "has a writable home (or XDG_CACHE_HOME) and that base64 and sha256sum are installed"
        )
    STATS["ships"] += 1
    STATS["ship_bytes"] += len(payload)
    host._turnout_program = (program_name(), lines[-1])
    return lines[-1]


def host_python() -> str:
    """The host's Python for the program: setting ``hostside_python`` of the current host."""
    from pyinfra.context import ctx_host, host

    if ctx_host.isset():
        return str(getattr(host.data, "hostside_python", None) or "python3")
    return "python3"


def hostside_command(action: str, params: dict, python: str | None = None) -> StringCommand:
    """A short shell command running ``action`` of the host-side program with ``params``.

    Inside a pyinfra run the program is placed on the current host first (once per run); outside
    one (tests, tools) it is placed on this machine. ``python`` defaults to the host's
    ``hostside_python`` setting (it needs psycopg for database actions).
    """
    from pyinfra.context import ctx_host, ctx_state, host, state

    if ctx_host.isset() and ctx_state.isset():
        program = ensure_program(state, host)
        error_log = getattr(host, "_turnout_error_log", None)
        if error_log and not params.get("log_path"):
            params = {**params, "error_log": error_log}
    else:
        program = local_program()
    command = StringCommand(
        QuoteString(python or host_python()),
        QuoteString(program),
        QuoteString(action),
        QuoteString(json.dumps(params, sort_keys=True)),
    )
    STATS["hostside_calls"] += 1
    STATS["hostside_bytes"] += len(command.get_raw_value())
    return command


def parse_hostside_output(output: list[str]) -> dict:
    """The JSON object printed by a host-side action (its last non-empty line)."""
    for line in reversed(output):
        line = line.strip()
        if line.startswith("{"):
            result = json.loads(line)
            STATS["full_dump_reads"] += int(result.get("full_dump_reads", 0) or 0)
            return result
    return {"ok": False, "error": "the host-side program printed no result"}


def _write_stats() -> None:
    """At exit: the statistics as JSON in ``$TURNOUT_STATS`` (benchmarks and tests)."""
    path = os.environ.get("TURNOUT_STATS")
    if path:
        Path(path).write_text(json.dumps(STATS, sort_keys=True) + "\n", encoding="utf-8")


atexit.register(_write_stats)
