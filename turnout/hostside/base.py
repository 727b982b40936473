"""Host-side basics: safe errors, the secrets to redact, the server-side .env, atomic JSON files."""

import contextlib
import json
import os
import select
import signal
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO

from turnout.dsn import DsnError, libpq_env, normalize_dsn, redact
from turnout.hostside import envfile


class HostsideError(Exception):
    """A failure whose message is safe to show (it is redacted before it leaves the host)."""


_SECRETS: list[str] = []


class Interrupted(BaseException):
    """The program was told to stop: SIGINT, SIGHUP or SIGTERM, or the ssh channel to the control
    machine closed. A ``BaseException`` so that no ``except Exception`` swallows it: ``run_tool``
    kills the tool's whole process group on its way out (the step is stopped, never detached)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


_CHANNEL: dict[str, bool] = {"closed": False}
# The cause of the stop signal received, kept for ``check_stop``.
_STOP: dict[str, str | None] = {"cause": None}
STOP_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTERM)


def stop_on_signals() -> None:
    """SIGINT, SIGHUP and SIGTERM raise ``Interrupted`` in the main thread (an operation action
    runs its tools in their own process group, so a terminal's Ctrl-C never reaches them: this
    program stops them deliberately). Only the first signal raises: a second one (Ctrl-C reaches
    the group, then the lock holder sends SIGTERM) must not break off the cleanup the first one
    started. The cause is kept for ``check_stop``."""

    def handler(signum: int, frame: object) -> None:
        if _STOP["cause"] is not None:
            return  # already stopping
        if _CHANNEL["closed"]:
            cause = "the connection to the control machine closed"
        else:
            cause = signal.Signals(signum).name
        _STOP["cause"] = cause
        raise Interrupted(cause)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)


def check_stop() -> None:
    """Raise ``Interrupted`` if a stop signal came whose exception was lost: a signal handler's
    exception raised inside an interpreter callback (an at-fork hook, a ``__del__``) is only
    printed as "Exception ignored". Called where a step goes on to more work and before an
    action reports success, so a stop is never swallowed.

    >>> check_stop()  # no signal: nothing happens
    """
    if _STOP["cause"]:
        raise Interrupted(_STOP["cause"])


@contextlib.contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGHUP and SIGTERM back (blocked, kept pending) for a short critical
    section such as a fork, whose at-fork hooks would swallow the handler's exception; they
    are delivered when it ends. A forked child starts with them blocked: it unblocks them
    once its own handlers are set.

    >>> with stop_signals_deferred():
    ...     pass
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def watch_channel(fd: int = 1) -> bool:
    """When ``fd`` (stdout: the ssh channel) is a pipe or socket, watch it in a daemon thread and
    send ourselves SIGHUP once its reading end closes (the control machine exited or was killed;
    sshd does not signal a command without a terminal). Whether it is watched."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return False

    def watch() -> None:
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR and POLLHUP are always reported
        while True:
            for _, events in poller.poll():
                if events & (select.POLLERR | select.POLLHUP | select.POLLNVAL):
                    _CHANNEL["closed"] = True
                    os.kill(os.getpid(), signal.SIGHUP)
                    return

    threading.Thread(target=watch, daemon=True, name="turnout-channel").start()
    return True


def remember_secret(value: str) -> None:
    """Add a value to the list every output of this process is redacted against."""
    if value and value not in _SECRETS:
        _SECRETS.append(value)


# Settings from the host -------------------------------------------------------------------------


def read_env_file(path: str) -> dict[str, str]:
    """The variables of a compose ``.env`` file, read with compose's own rules
    (``turnout.hostside.envfile``: quotes, escapes, ``${VAR}`` and defaults, inline comments)."""
    try:
        return envfile.read_env_file(path)
    except FileNotFoundError:
        raise HostsideError(f"env file {path} does not exist on this host") from None
    except PermissionError:
        raise HostsideError(f"env file {path} is not readable by this user") from None
    except envfile.EnvFileError as error:
        raise HostsideError(f"env file {path}: {error}") from None


def host_dsn(dsn_env: str, env_file: str | None = None) -> str:
    """The DSN named ``dsn_env``, from the process environment first, then the env file.
    Returned normalised for libpq (``postgresql+psycopg://`` becomes ``postgresql://``)."""
    raw = os.environ.get(dsn_env)
    if not raw and env_file:
        raw = read_env_file(env_file).get(dsn_env)
    if not raw:
        where = f"the environment or {env_file}" if env_file else "the environment"
        raise HostsideError(f"{dsn_env} is not set in {where}")
    remember_secret(raw)
    try:
        normalized = normalize_dsn(raw)
    except DsnError as error:
        raise HostsideError(f"{dsn_env}: {error}") from None
    _, env = libpq_env(normalized)
    remember_secret(env.get("PGPASSWORD", ""))
    return normalized


def parts_dsn(label: str, parts: dict[str, str], env_file: str | None = None) -> str:
    """The keyword DSN built from the variables ``parts`` names (libpq keyword → variable, e.g.
    ``{"host": "POSTGRES_SERVER", "password": "POSTGRES_PASSWORD"}``), each read from the
    process environment first, then the env file, as compose gives them to the app. Built with
    ``psycopg.conninfo.make_conninfo``, so a password needs no percent-encoding. A variable that
    is not set is an error naming it (an empty one is left out, as libpq would take it)."""
    from psycopg.conninfo import make_conninfo

    from_file: dict[str, str] | None = None
    values: dict[str, str] = {}
    for keyword, name in parts.items():
        value = os.environ.get(name)
        if value is None and env_file:
            if from_file is None:
                from_file = read_env_file(env_file)
            value = from_file.get(name)
        if value is None:
            where = f"the environment or {env_file}" if env_file else "the environment"
            raise HostsideError(f"{name} ({label}'s {keyword}) is not set in {where}")
        if value:
            values[keyword] = value
    if values.get("password"):
        remember_secret(values["password"])
    try:
        return make_conninfo("", **values)
    except Exception as error:  # psycopg.ProgrammingError: an unknown keyword
        raise HostsideError(f"{label}: the DSN parts do not make a DSN: {error}") from None


def params_dsn(params: dict) -> str:
    """The DSN of the database ``params`` name (``turnout.database.Database.params``): the
    variable ``dsn_env``, or the variables of ``dsn_parts``; with ``db_via`` (the database is
    reachable only inside compose) its host replaced by a tunnel through that service
    (``turnout.hostside.tunnel``)."""
    env_file = params.get("env_file")
    if params.get("dsn_parts"):
        dsn = parts_dsn(params["dsn_env"], params["dsn_parts"], env_file)
    else:
        dsn = host_dsn(params["dsn_env"], env_file)
    if params.get("db_via"):
        from turnout.hostside.tunnel import tunnel_dsn

        dsn = tunnel_dsn(dsn, list(params["db_via"]))
    return dsn


def write_json_atomically(path: str, data: dict) -> None:
    """Write ``data`` as JSON to ``path`` (mode 0600) via a temporary file, fsync and rename."""
    directory = os.path.dirname(path) or "."
    text = redact(json.dumps(data, indent=2, sort_keys=True), _SECRETS) + "\n"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def libpq_child(dsn: str) -> tuple[str, dict[str, str]]:
    """For a libpq tool (psql, pg_dump, pg_restore): the DSN to put in its argv (no password) and
    its whole environment, with ``PGPASSWORD`` set for that child only."""
    safe_dsn, secret_env = libpq_env(dsn)
    return safe_dsn, {**os.environ, **secret_env}


def run_tool(
    argv: list[str],
    env: dict[str, str] | None = None,
    log_path: str | None = None,
    timeout: float | None = None,
    ok_codes: tuple[int, ...] = (0,),
    feed: Callable[[IO[bytes]], None] | None = None,
    on_output: Callable[[bytes], None] | None = None,
    clean: Callable[[str], str] | None = None,
    stdout_path: str | None = None,
) -> str:
    """Run a tool with ``argv`` (never a shell) in its own process group, under an optional
    watchdog ``timeout`` that kills the whole group (``pg_dump --jobs`` workers, rsync's ssh);
    append the redacted command line and output to ``log_path`` (0600). ``feed`` writes the
    tool's stdin (else it reads /dev/null). Returns the redacted output; raises ``HostsideError``
    naming the tool and the last output line when the exit code is not in ``ok_codes`` or the
    watchdog fired. Secrets belong in ``env``, never in ``argv``. ``on_output`` sees the output
    as it arrives (progress); ``clean`` rewrites it before it is logged and returned.
    ``stdout_path``: the tool's stdout goes to this new file (0600), its stderr is the output."""
    tool = os.path.basename(argv[0])
    sink = None
    if stdout_path:
        sink = os.fdopen(os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
    try:
        process = subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            env=env,
            stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
            stdout=sink or subprocess.PIPE,
            stderr=subprocess.PIPE if sink else subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise HostsideError(f"{tool} is not installed on this host") from None
    finally:
        if sink:
            sink.close()  # the child holds its own descriptor
    chunks: list[bytes] = []
    output_pipe = process.stderr if sink else process.stdout

    def read() -> None:
        while chunk := output_pipe.read1(1 << 16):
            chunks.append(chunk)
            if on_output:
                try:
                    on_output(chunk)
                except Exception:  # noqa: BLE001, S110 - progress never breaks the tool
                    pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    fired = threading.Event()

    def watchdog() -> None:
        fired.set()
        kill_group(process, wait=False)

    timer = threading.Timer(timeout, watchdog) if timeout else None
    try:
        if timer:
            timer.daemon = True
            timer.start()
        if feed:
            try:
                feed(process.stdin)
            except BrokenPipeError:  # the tool stopped reading: its exit code says why
                pass
            finally:
                try:
                    process.stdin.close()
                except BrokenPipeError:
                    pass
        process.wait()
        reader.join()
    except BaseException:  # interrupted: take the tool's whole group down with us
        kill_group(process)
        raise
    finally:
        if timer:
            timer.cancel()
    raw = b"".join(chunks)
    code: int | None = process.returncode
    if fired.is_set():
        raw += f"\nturnout: {tool} killed by the watchdog after {timeout:.0f}s".encode()
        code = None
    output = redact(raw.decode("utf-8", "replace"), _SECRETS)
    if clean:
        output = clean(output)
    if log_path:
        append_log(log_path, redact(" ".join(argv), _SECRETS), output, code)
    if code is None or code not in ok_codes:
        last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
        status = "timed out" if code is None else f"exited {code}"
        raise HostsideError(f"{tool} {status}: {last[:300]}")
    return output


def kill_group(process: subprocess.Popen, wait: bool = True) -> None:
    """SIGKILL the process group ``process`` leads (it was started with ``start_new_session``):
    the tool and every child it made."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if wait:
        process.wait()


def append_log(log_path: str, command: str, output: str, code: int | None) -> None:
    """Append one command's record to a 0600 log file in the evidence directory; a failed write
    (a full evidence filesystem) fails the step with one line (RELIABILITY 23)."""
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as handle:
            handle.write(f"$ {command}\n{output.rstrip()}\n[exit {code}]\n")
    except OSError as error:
        raise HostsideError(
            f"cannot write the evidence log {log_path}: {error.strerror}; free space there (or "
            "point evidence_root elsewhere) and rerun"
        ) from None
