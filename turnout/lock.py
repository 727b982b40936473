"""One run per host, and an honest Ctrl-C: the control side of the host lock and interruption.

``start_runbook`` takes the host lock after the pre-flight (``take_host_lock``): it opens one
extra ssh channel (a pipe for ``@local``) running the host program's ``lock_hold``
(``turnout/hostside/lock.py``), which holds ``flock`` on ``<evidence_root>/.turnout.lock`` for as
long as that channel stays open. A second run on the host is refused at once, naming the holder
(pid, task, start time, ``user@host``); a lock left by a holder that was killed is reported with the
command that clears it. The channel is closed when pyinfra disconnects from the host, which
releases the lock (``release``), so the lock lasts exactly as long as the run.

Interruption (``install_interrupt_handler``, also called by ``start_runbook`` while the deploy
loads): pyinfra's own CLI answers SIGINT with ``sys.exit(0)`` and leaves the host-side step running.
turnout's handler replaces it for SIGINT, SIGTERM and SIGHUP: the run exits ``128 + signal`` (130
for Ctrl-C). Before pyinfra disconnects, each host's lock holder is told ``interrupt``: it stops the
running host-side step (SIGTERM: the step kills its tool's whole process group — pg_dump, pg_restore
and rsync are stopped, never detached; a restore's transaction rolls back), writes
``<run_dir>/interrupted`` naming the step and what was running, and answers; turnout then prints one
line per host saying so and what to do next. If the control machine dies without a word (kill -9,
lost connection), the host notices its channels closing and does the same.

    from turnout.lock import install_interrupt_handler, take_host_lock
"""

from __future__ import annotations

import atexit
import getpass
import json
import select
import signal
import socket
import subprocess
from typing import Any

from pyinfra import logger
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.state import BaseStateCallback

from turnout.remote import _connector_arguments, hostside_command

LOCK_NAME = ".turnout.lock"
# The holder waits up to 30 s for a step to stop before killing it; we wait a little longer.
INTERRUPT_REPLY_S = 45.0
TAKE_REPLY_S = 60.0

# The signal that interrupted this run (empty while it was not interrupted).
INTERRUPT: dict[str, Any] = {}


class LockRefused(PyinfraError):
    """Another run holds the host lock, or left it stale; the message says who and what to do."""


def operator() -> str:
    """``user@host`` of the control machine (recorded in the lock and the interrupted mark)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()}"


def lock_path(evidence_root: str) -> str:
    """``<evidence_root>/.turnout.lock``.

    >>> lock_path("/var/lib/turnout/evidence/")
    '/var/lib/turnout/evidence/.turnout.lock'
    """
    return f"{evidence_root.rstrip('/')}/{LOCK_NAME}"


def refusal(host_name: str, outcome: dict) -> str:
    """The one line refusing a run when the lock is held or stale.

    >>> refusal("web1", {"state": "held", "holder": {"pid": 7, "task": "dry_run",
    ...     "started": "2026-11-25T00:00:00Z", "operator": "ann@lap", "run_dir": "/e/x"}})
    ... # doctest: +ELLIPSIS
    'another run holds the host lock on web1: pid 7, task dry_run, started 2026-11-25T00:00:00Z...'
    """
    holder = outcome.get("holder") or {}
    who = (
        f"pid {holder.get('pid', '?')}, task {holder.get('task', '?')}, started "
        f"{holder.get('started', '?')} by {holder.get('operator', '?')}"
    )
    if outcome.get("state") == "held":
        return (
            f"another run holds the host lock on {host_name}: {who} (evidence "
            f"{holder.get('run_dir') or '?'}); wait for it to finish or stop it with Ctrl-C in its "
            "terminal, then run again; nothing was changed"
        )
    still = outcome.get("running") or []
    running = (
        "; still running there: "
        + ", ".join(f"{a.get('action')} (pid {a.get('pid')})" for a in still)
        if still
        else ""
    )
    return (
        f"the host lock {outcome.get('lock')} on {host_name} is stale: the run that took it "
        f"({who}) was killed before releasing it{running}; check that none of its tools still run "
        f"(pg_dump, pg_restore, rsync), then clear it on the host with: {outcome.get('clear')}; "
        "nothing was changed"
    )


class _Holder:
    """The lock holder's channel: ``send`` a line, ``readline`` with a timeout, ``close``."""

    def __init__(self, host: Any, command: str) -> None:
        from pyinfra.connectors.local import LocalConnector
        from pyinfra.connectors.ssh import SSHConnector

        self.process: subprocess.Popen | None = None
        self.channel: Any = None
        if isinstance(host.connector, SSHConnector):
            self.channel = host.connector.client.get_transport().open_session()
            self.channel.exec_command(command)
            self.reader = self.channel.makefile("r")
        elif isinstance(host.connector, LocalConnector):
            self.process = subprocess.Popen(  # noqa: S603 - the host program, quoted by pyinfra
                ["sh", "-c", command],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            self.reader = self.process.stdout
        else:
            raise LockRefused(
                f"cannot hold a host lock on {host.name} through the "
                f"{type(host.connector).__name__} connector; use @ssh or @local"
            )

    def send(self, line: str) -> None:
        try:
            if self.channel is not None:
                self.channel.sendall((line + "\n").encode("utf-8"))
            elif self.process is not None and self.process.stdin:
                self.process.stdin.write(line + "\n")
                self.process.stdin.flush()
        except (OSError, EOFError):
            pass

    def readline(self, timeout: float) -> dict | None:
        try:
            if self.channel is not None:
                self.channel.settimeout(timeout)
            elif not select.select([self.reader], [], [], timeout)[0]:
                return None
            line = self.reader.readline()
        except (TimeoutError, OSError, EOFError):
            return None
        if isinstance(line, bytes):
            line = line.decode("utf-8", "replace")
        try:
            answer = json.loads(line) if line.strip() else None
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.process is not None:
            if self.process.stdin:
                self.process.stdin.close()
            try:
                self.process.wait(timeout=INTERRUPT_REPLY_S)
            except subprocess.TimeoutExpired:
                self.process.kill()


class _StepTracker(BaseStateCallback):
    """Remembers, per host, the step (operation) that runs now: the interrupted mark names it."""

    @staticmethod
    def operation_host_start(run_state: Any, run_host: Any, op_hash: Any) -> None:
        names = run_state.get_op_meta(op_hash).names
        run_host._turnout_step = ", ".join(sorted(names)) or "an operation"


def _real(obj: Any) -> Any:
    """The object behind one of pyinfra's context proxies (``pyinfra.host``/``state``)."""
    unwrap = getattr(obj, "_get_module", None)
    return unwrap() if callable(unwrap) else obj


def take_host_lock(state: Any, host: Any, evidence_root: str, task: str, run_dir: str) -> None:
    """Take this run's lock on ``host`` (once per host and run), or raise ``LockRefused``."""
    state, host = _real(state), _real(host)  # the objects, not pyinfra's context proxies
    if getattr(host, "_turnout_lock", None) is not None:
        return
    lock = lock_path(evidence_root)
    params = {"lock": lock, "task": task, "run_dir": run_dir, "operator": operator()}
    from pyinfra.connectors.util import extract_control_arguments, make_unix_command_for_host

    arguments = _connector_arguments(state, host)
    extract_control_arguments(arguments)  # a long-lived channel: no pty, timeout or exit codes
    command = make_unix_command_for_host(
        state, host, hostside_command("lock_hold", params), **arguments
    ).get_raw_value()
    holder = _Holder(host, command)
    outcome = holder.readline(TAKE_REPLY_S)
    if not outcome or not outcome.get("ok"):
        holder.close()
        if not outcome:
            raise LockRefused(
                f"cannot take the host lock {lock} on {host.name}: no answer from the host program;"
                " check that evidence_root is writable by the ssh user; nothing was changed"
            )
        if outcome.get("error"):
            raise LockRefused(f"cannot take the host lock on {host.name}: {outcome['error']}")
        raise LockRefused(refusal(host.name, outcome))
    host._turnout_lock = holder
    host._turnout_run_params = {"run_lock": lock, "run_dir": run_dir}
    if not getattr(state, "_turnout_steps", False):
        state.add_callback_handler(_StepTracker())
        state._turnout_steps = True
    connector = host.connector
    disconnect = getattr(connector, "disconnect", None)

    def release_then_disconnect() -> None:
        finish(host)
        if disconnect:
            disconnect()

    connector.disconnect = release_then_disconnect


def finish(host: Any) -> None:
    """Release ``host``'s lock at the end of the run; when the run was interrupted, first have the
    holder stop the running step and mark the evidence, and say so in one line."""
    holder = getattr(host, "_turnout_lock", None)
    if holder is None:
        return
    host._turnout_lock = None
    if not INTERRUPT:
        holder.send("release")
        holder.readline(10)
        holder.close()
        return
    step = getattr(host, "_turnout_step", None)
    cause = f"{INTERRUPT['signal']} on the control machine ({operator()})"
    holder.send("interrupt " + json.dumps({"step": step, "cause": cause}))
    reply = holder.readline(INTERRUPT_REPLY_S) or {}
    holder.close()
    INTERRUPT["reported"] = True
    logger.warning(interrupted_line(host.name, step, reply))


def interrupted_line(host_name: str, step: str | None, reply: dict) -> str:
    """The one line an interrupted run prints per host.

    >>> interrupted_line("web1", "Restore", {"stopped": "pg_restore (…)", "mark": "/e/interrupted"})
    ... # doctest: +ELLIPSIS
    '--> turnout: interrupted by SIGINT during "Restore" on web1: stopped pg_restore (…); ...'
    """
    signame = INTERRUPT.get("signal", "SIGINT")
    where = f'during "{step}"' if step else "before the first step"
    stopped = reply.get("stopped") or "nothing was running on the host"
    mark = reply.get("mark")
    marked = f"evidence marked {mark}" if mark else "no evidence directory to mark yet"
    return (
        f"--> turnout: interrupted by {signame} {where} on {host_name}: stopped {stopped}; "
        f"{marked}; nothing else will run — rerun the same command to start again"
    )


def _on_signal(signum: int, frame: object) -> None:
    """Ctrl-C (and SIGTERM, SIGHUP): exit ``128 + signum``; the lock holders stop the host-side
    steps when pyinfra disconnects (``finish``). A second signal while stopping is ignored."""
    if INTERRUPT:
        return
    INTERRUPT.update(signal=signal.Signals(signum).name, code=128 + signum)
    raise SystemExit(128 + signum)


def _report_early_interrupt() -> None:
    """At exit: the one line for an interruption that came before any lock was taken."""
    if INTERRUPT and not INTERRUPT.get("reported"):
        logger.warning(
            f"--> turnout: interrupted by {INTERRUPT['signal']} before any step ran; nothing was "
            "changed — rerun the same command to start again"
        )


def install_interrupt_handler() -> None:
    """Replace pyinfra's SIGINT handler (``sys.exit(0)``) with turnout's, for SIGINT, SIGTERM and
    SIGHUP; once per process, from the main thread, in the pyinfra CLI only (called by the
    inventories' ``ssh_hosts_from_env`` and by ``start_runbook`` while the deploy loads)."""
    import pyinfra

    if getattr(install_interrupt_handler, "installed", False) or not pyinfra.is_cli:
        return  # a program using pyinfra's API keeps its own signal handling
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    atexit.register(_report_early_interrupt)
    install_interrupt_handler.installed = True
