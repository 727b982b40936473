"""The host lock of a run, and the record of what the run is doing on the host right now.

One run at a time per host: the first host-side call of a runbook starts ``lock_hold``, a small
process that takes ``flock`` on ``<evidence_root>/.turnout.lock`` and keeps it for as long as the
control machine keeps that process's ssh channel open (its stdin). It writes who holds the lock
into the file (pid, task, start time, the operator's ``user@host``, the run directory), and:

- ``release`` on stdin, or the channel closing (stdin at end of file: the control machine finished,
  exited or was killed), releases the lock; operation actions of the run still running then (a
  killed control machine) are stopped first and the run directory is marked ``interrupted``;
- ``interrupt <json>`` (the operator pressed Ctrl-C) stops the running operation actions (SIGTERM:
  each takes its tool's whole process group down), writes ``<run_dir>/interrupted`` naming what was
  running, answers one JSON line and releases.

A second run finds the lock taken and is refused with the holder's record. A record left in a lock
nobody holds (the holder itself was killed, the host rebooted) is *stale*: it is reported with the
command that clears it, and never cleared silently (the killed run's tools may still run).

Operation actions of a run register themselves in ``<lock>.d/<pid>.json`` while they run
(``running``), which is how the holder finds them.

    python -c 'from turnout.remote import hostside_command as c
    print(c("lock_hold", {"lock": "/tmp/ev/.turnout.lock", "task": "demo"}).get_raw_value())' | sh
"""

import contextlib
import fcntl
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator

from turnout.hostside.base import HostsideError, write_json_atomically

LOCK_NAME = ".turnout.lock"
MARK_NAME = "interrupted"
# How long the holder waits for an interrupted action to stop before killing it.
STOP_GRACE_S = 30.0


def utc_now() -> str:
    """``2026-11-25T00:40:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def clear_command(lock: str) -> str:
    """The command that clears a stale lock record, and only when nobody holds the lock.

    >>> clear_command("/srv/evidence/.turnout.lock")
    'flock --nonblock /srv/evidence/.turnout.lock truncate --size=0 /srv/evidence/.turnout.lock'
    """
    path = shlex.quote(lock)
    return f"flock --nonblock {path} truncate --size=0 {path}"


def read_record(fd: int) -> dict | None:
    """The holder record in the lock file (None when empty or unreadable)."""
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 65536)
    if not raw.strip():
        return None
    try:
        record = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return {"unreadable": raw[:200].decode("utf-8", "replace")}
    return record if isinstance(record, dict) else None


def write_record(fd: int, record: dict | None) -> None:
    """Replace the lock file's content with ``record`` (empty for None), on disk."""
    os.ftruncate(fd, 0)
    if record is not None:
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record, sort_keys=True) + "\n").encode("utf-8"))
    os.fsync(fd)


def registry(lock: str) -> str:
    """``<lock>.d``: where the run's operation actions register while they run."""
    return f"{lock}.d"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs (a zombie, exited but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@contextlib.contextmanager
def running(lock: str | None, action: str, what: str) -> Iterator[None]:
    """Register this process as the run's running ``action`` for as long as the block runs."""
    if not lock or not os.path.isdir(os.path.dirname(lock)):
        yield
        return
    directory = registry(lock)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    entry = os.path.join(directory, f"{os.getpid()}.json")
    write_json_atomically(
        entry, {"pid": os.getpid(), "action": action, "what": what, "started": utc_now()}
    )
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry)


def running_actions(lock: str) -> list[dict]:
    """The registered actions whose process is alive (entries of dead ones are removed)."""
    found = []
    try:
        names = sorted(os.listdir(registry(lock)))
    except FileNotFoundError:
        return []
    for name in names:
        path = os.path.join(registry(lock), name)
        try:
            with open(path, encoding="utf-8") as handle:
                entry = json.load(handle)
            pid = int(entry["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid_alive(pid):
            found.append(entry)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return found


def stop_running(lock: str, grace_s: float = STOP_GRACE_S) -> list[dict]:
    """SIGTERM every running action of the run (each kills its tool's process group and exits),
    wait up to ``grace_s`` for them, SIGKILL what is left; the actions that were running."""
    actions = running_actions(lock)
    for entry in actions:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(entry["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(pid_alive(int(e["pid"])) for e in actions):
        time.sleep(0.05)
    for entry in actions:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(entry["pid"]), signal.SIGKILL)
            entry["killed"] = True
    return actions


def write_mark(run_dir: str | None, mark: dict) -> str | None:
    """Write (or complete) ``<run_dir>/interrupted`` when the run directory exists (evidence is
    never created here); its path, or None."""
    if not run_dir or not os.path.isdir(run_dir):
        return None
    path = os.path.join(run_dir, MARK_NAME)
    previous: dict = {}
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="utf-8") as handle:
            previous = json.load(handle)
    write_json_atomically(path, {**previous, **mark})
    return path


def describe_stopped(actions: list[dict]) -> str:
    """``pg_restore (pg_restore of … into DATABASE_URL)`` for each, or ``nothing``.

    >>> describe_stopped([{"action": "pg_dump", "what": "dump to /x"}])
    'pg_dump (dump to /x)'
    >>> describe_stopped([])
    'nothing'
    """
    parts = [
        f"{a.get('action')} ({a.get('what')})" if a.get("what") else a.get("action", "?")
        for a in actions
    ]
    return ", ".join(parts) or "nothing"


def answer(data: dict) -> None:
    """One JSON line to the control machine (ignored when it is gone)."""
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
        sys.stdout.flush()


def lock_params(params: dict) -> dict:
    """The holder's parameters, checked."""
    lock = params.get("lock")
    if not isinstance(lock, str) or not lock.startswith("/") or not lock.endswith(LOCK_NAME):
        raise HostsideError(f"lock must be an absolute path ending in {LOCK_NAME}, got {lock!r}")
    return {
        "lock": lock,
        "task": str(params.get("task") or "?"),
        "run_dir": params.get("run_dir") if isinstance(params.get("run_dir"), str) else None,
        "operator": str(params.get("operator") or "?"),
    }


def take(options: dict) -> tuple[int | None, dict]:
    """Take the lock: (fd, our record), or (None, the answer refusing it)."""
    lock = options["lock"]
    directory = os.path.dirname(lock)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = read_record(fd) or {}
        os.close(fd)
        return None, {"ok": False, "state": "held", "holder": holder, "lock": lock}
    previous = read_record(fd)
    if previous:
        os.close(fd)  # releases the flock: the stale record stays until the operator clears it
        return None, {
            "ok": False,
            "state": "stale",
            "holder": previous,
            "lock": lock,
            "running": running_actions(lock),
            "clear": clear_command(lock),
        }
    record = {
        "pid": os.getpid(),
        "task": options["task"],
        "started": utc_now(),
        "operator": options["operator"],
        "run_dir": options["run_dir"],
    }
    write_record(fd, record)
    return fd, {"ok": True, "state": "taken", "holder": record, "lock": lock}


def serve(fd: int, options: dict) -> str:
    """Hold the lock until the control machine releases it, interrupts the run, or goes away;
    what ended it (``released``, ``interrupted``, ``closed``)."""
    lock, run_dir = options["lock"], options["run_dir"]
    ended = "closed"
    request: dict = {}
    try:
        for line in sys.stdin:
            word, _, rest = line.strip().partition(" ")
            if word == "release":
                ended = "released"
                break
            if word == "interrupt":
                ended = "interrupted"
                with contextlib.suppress(ValueError):
                    request = json.loads(rest or "{}")
                break
    except (OSError, ValueError, KeyboardInterrupt):
        ended = "closed"
    stopped = stop_running(lock) if ended != "released" else []
    mark_path = None
    if ended == "interrupted" or stopped:
        mark: dict = {
            "interrupted_at": utc_now(),
            "cause": request.get("cause") or "the connection to the control machine closed",
            "by": options["operator"],
        }
        if request.get("step"):
            mark["step"] = request["step"]
        if stopped:
            mark["running"] = [
                {k: a.get(k) for k in ("action", "what", "started", "pid", "killed") if k in a}
                for a in stopped
            ]
            mark["stopped"] = describe_stopped(stopped)
        mark_path = write_mark(run_dir, mark)
    answer({"ended": ended, "stopped": describe_stopped(stopped), "mark": mark_path})
    write_record(fd, None)
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return ended


def action_lock_hold(params: dict) -> int:
    """The holder process (see the module docstring). Prints the outcome of taking the lock as
    one JSON line, then holds it. Ctrl-C on the control machine's terminal and a hang-up never
    stop it directly: only its stdin (the control machine) does; SIGTERM ends it like a close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    options = lock_params(params)
    fd, outcome = take(options)
    answer(outcome)
    if fd is None:
        return 0
    serve(fd, options)
    return 0
