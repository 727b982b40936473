"""Shipping the host-side program (``turnout/hostside/``) to a host once, and calling it.

The program is a zip application built once per process from the real modules (``turnout/dsn.py``,
``turnout/constants.py`` and ``turnout/hostside/*.py``, under their own names, so a traceback on
the host names the real file and line). It is placed on each host once per run, content-addressed
(``<cache>/turnout/hostside-<sha256[:16]>/`` under the user's ``${XDG_CACHE_HOME:-~/.cache}``,
0700), by one command that reads it base64-encoded on stdin (never argv), checks its sha256,
unpacks and compiles it with the host's Python (so no call recompiles it) and prints where it is.
Every later call is a short command: ``<python> <cache>/hostside-… <action> '<json params>'``
(Python runs a directory's ``__main__.py``). Placing the program is not a change to the app and
happens during ``--dry`` as well (facts need it).

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
import shlex
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

from pyinfra.api import FunctionCommand, QuoteString, StringCommand
from pyinfra.api.exceptions import PyinfraError

# The modules of the program, relative to the ``turnout`` package, under their real names.
# The turnout modules the host program carries besides every ``hostside/*.py`` (all of those go:
# a module added there is shipped without being listed).
SHARED_MODULES = ("__init__.py", "dsn.py", "constants.py")


def program_modules() -> tuple[str, ...]:
    """The program's modules, relative to the ``turnout`` package, in a stable order."""
    here = Path(__file__).parent
    hostside = sorted(f"hostside/{path.name}" for path in (here / "hostside").glob("*.py"))
    return (*SHARED_MODULES, *hostside)


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


# How many calls of each action this process made (written with STATS as "actions").
ACTIONS: dict[str, int] = {}


class ShipError(PyinfraError):
    """The program could not be placed on a host; pyinfra prints the one line."""


@cache
def program_zip() -> bytes:
    """The host-side program as a zip application (deterministic bytes)."""
    root = Path(__file__).parent
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entries = [("__main__.py", ENTRY_POINT)]
        for name in program_modules():
            entries.append((f"turnout/{name}", (root / name).read_text(encoding="utf-8")))
        for name, text in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            archive.writestr(info, text)
    return buffer.getvalue()


@cache
def program_name() -> str:
    """``hostside-<sha256[:16]>``: the program's directory name, the same for the same code."""
    return f"hostside-{hashlib.sha256(program_zip()).hexdigest()[:16]}"


def ship_command(python: str = "python3") -> StringCommand:
    """A command that reads the program base64-encoded on stdin and keeps it, unpacked and
    compiled by the host's ``python``, in the user's cache: ``<cache>/turnout/hostside-<sha>/``
    (0700, owned by the user that runs it; unpacked under a temporary name, its sha256 checked,
    then renamed; a copy already there with the right sha256 is kept as it is). Prints the
    directory's absolute path. Bytecode is cached there, so no call recompiles the program."""
    digest = hashlib.sha256(program_zip()).hexdigest()
    script = (
        "umask 077; "
        'd="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/turnout"; '
        'mkdir -p "$d" && chmod 700 "$d" || exit 1; '
        f'f="$d/{program_name()}"; '
        f'if [ -f "$f/__main__.py" ] && [ "$(cat "$f/.sha256" 2>/dev/null)" = "{digest}" ]; then '
        "cat > /dev/null; "
        'else t="$f.tmp.$$"; rm -rf "$t" && mkdir "$t" && base64 -d > "$t.zip" '
        f'&& echo "{digest}  $t.zip" | sha256sum -c --status '
        f'&& "$1" -m zipfile -e "$t.zip" "$t" && echo "{digest}" > "$t/.sha256" '
        '&& "$1" -m compileall -q "$t" > /dev/null; '
        'rm -f "$t.zip"; rm -rf "$f.old.$$"; '
        '[ -e "$f" ] && mv -T "$f" "$f.old.$$"; mv -T "$t" "$f" 2>/dev/null; '
        'rm -rf "$t" "$f.old.$$"; fi; '
        f'[ "$(cat "$f/.sha256" 2>/dev/null)" = "{digest}" ] || exit 1; '
        'echo "$f"'
    )
    return StringCommand("sh", "-c", QuoteString(script), "turnout-ship", QuoteString(python))


def program_payload() -> str:
    """The program base64-encoded in 76-character lines, for the ship command's stdin."""
    return base64.encodebytes(program_zip()).decode("ascii")


def local_program(python: str = sys.executable) -> str:
    """Place the program in this machine's cache without pyinfra (tests, tools); its path."""
    result = subprocess.run(
        ["sh", "-c", ship_command(python).get_raw_value()],
        input=program_payload(),
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stdout.split()
    if result.returncode != 0 or not lines:
        raise ShipError(f"cannot place turnout's host program here: {result.stderr.strip()}")
    return lines[-1]


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


def ensure_program(state: Any, host: Any, python: str) -> str:
    """The program's path on ``host``, placing it there on the first call of this run."""
    placed = getattr(host, "_turnout_program", None)
    if placed and placed[0] == (program_name(), python):
        return placed[1]
    if not host.connected:
        host.connect(reason="to place turnout's host program", raise_exceptions=True)
    payload = program_payload()
    status, output = host.run_shell_command(
        ship_command(python), _stdin=payload, **_connector_arguments(state, host)
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
    host._turnout_program = ((program_name(), python), lines[-1])
    return lines[-1]


def host_python() -> str:
    """The host's Python for the program: setting ``hostside_python`` of the current host."""
    from pyinfra.context import ctx_host, host

    if ctx_host.isset():
        return str(getattr(host.data, "hostside_python", None) or "python3")
    return "python3"


def hostside_command(
    action: str, params: dict, python: str | None = None, stdin: str | None = None
) -> StringCommand:
    """A short shell command running ``action`` of the host-side program with ``params``
    (and ``stdin``, which pyinfra sends without printing it, e.g. a report to keep).

    Inside a pyinfra run the program is placed on the current host first (once per run); outside
    one (tests, tools) it is placed on this machine. ``python`` defaults to the host's
    ``hostside_python`` setting (it needs psycopg for database actions).
    """
    from pyinfra.context import ctx_host, ctx_state, host, state

    python = python or host_python()
    if ctx_host.isset() and ctx_state.isset():
        program = ensure_program(state, host, python)
        error_log = getattr(host, "_turnout_error_log", None)
        if error_log and not params.get("log_path"):
            params = {**params, "error_log": error_log}
        run_params = getattr(host, "_turnout_run_params", None)
        if run_params and action in _operation_actions():
            # The run's lock and directory: the action registers with the lock holder while it
            # runs, and marks the run interrupted when it is stopped.
            params = {**run_params, **params}
    else:
        program = _local_program(python)
    command = StringCommand(
        QuoteString(python),
        QuoteString(program),
        QuoteString(action),
        QuoteString(json.dumps(params, sort_keys=True)),
        **({"_stdin": stdin} if stdin is not None else {}),
    )
    STATS["hostside_calls"] += 1
    STATS["hostside_bytes"] += len(command.get_raw_value())
    ACTIONS[action] = ACTIONS.get(action, 0) + 1
    return command


def hostside_argv(action: str, params: dict, python: str | None = None) -> list[str]:
    """``hostside_command`` as an argv (for a command the host program itself starts, such as
    the app's Python run on the host by ``app_exec`` under the migration lock).

    >>> hostside_argv("app_exec", {"argv": ["python", "-V"]}, python="python3")[2]
    'app_exec'
    """
    words = hostside_command(action, params, python).get_raw_value()
    return shlex.split(words)


def progress_interval(value: float | None = None) -> float:
    """The interval of a step's progress lines: ``value``, else the current host's
    ``progress_interval_s`` setting, else that setting's declared default."""
    from pyinfra.context import ctx_host, host

    from turnout.settings import DEFAULTS

    if value is None and ctx_host.isset():
        value = getattr(host.data, "progress_interval_s", None)
    return float(value or DEFAULTS["progress_interval_s"])


def run_printing(state: Any, host: Any, command: StringCommand, arguments: dict) -> bool:
    """Run ``command`` on ``host`` with its output printed as it arrives (pyinfra prints command
    output only at ``-vvv`` otherwise): the host step's progress lines and its one-line failure
    reach the operator at default verbosity. Its success."""
    from turnout.failures import install_live_output_filter

    install_live_output_filter()
    status, _ = host.run_shell_command(
        command, print_output=True, print_input=state.print_input, **arguments
    )
    return bool(status)


def hostside_progress_command(
    action: str, params: dict, interval: float | None = None
) -> FunctionCommand:
    """``action`` as a pyinfra ``FunctionCommand`` that runs the host-side command with its
    output printed live, the action printing a progress line every ``interval`` seconds
    (``progress_interval``) and no JSON answer. Built while the operation yields, so the
    connector arguments (``_sudo``…) are the operation's; not run while planning (``--dry``)."""
    from pyinfra.context import ctx_host, ctx_state, host, state

    params = {**params, "progress_interval_s": progress_interval(interval)}
    command = hostside_command(action, params)
    arguments = _connector_arguments(state, host) if ctx_host.isset() and ctx_state.isset() else {}
    return FunctionCommand(run_printing, (command, _Arguments(arguments)), {})


class _Arguments(dict):
    """Connector arguments whose repr shows no value (a ``_sudo_password`` stays unprinted
    wherever pyinfra shows a ``FunctionCommand``)."""

    def __repr__(self) -> str:
        return f"<connector arguments: {', '.join(sorted(self)) or 'none'}>"


@cache
def _operation_actions() -> frozenset[str]:
    """The host program's operation actions (the ones that change something)."""
    from turnout.hostside.main import OPERATION_ACTIONS

    return frozenset(OPERATION_ACTIONS)


def parse_hostside_output(output: list[str]) -> dict:
    """The JSON object printed by a host-side action (its last non-empty line)."""
    for line in reversed(output):
        line = line.strip()
        if line.startswith("{"):
            result = json.loads(line)
            STATS["full_dump_reads"] += int(result.get("full_dump_reads", 0) or 0)
            return result
    return {"ok": False, "error": "the host-side program printed no result"}


_LOCAL_PROGRAMS: dict[str, str] = {}


def _local_program(python: str) -> str:
    """``local_program`` once per process and interpreter."""
    if python not in _LOCAL_PROGRAMS:
        _LOCAL_PROGRAMS[python] = local_program(python)
    return _LOCAL_PROGRAMS[python]


def _write_stats() -> None:
    """At exit: the statistics as JSON in ``$TURNOUT_STATS`` (benchmarks and tests)."""
    path = os.environ.get("TURNOUT_STATS")
    if path:
        stats = {**STATS, "actions": ACTIONS}
        Path(path).write_text(json.dumps(stats, sort_keys=True) + "\n", encoding="utf-8")


atexit.register(_write_stats)
