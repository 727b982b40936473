"""The host-side program: what turnout runs *on the target host*, never on the control machine.

turnout ships this file (with ``turnout/dsn.py`` in front of it, see ``turnout/remote.py``) to
the host through ``python3 - <action> <json-params>`` and a here-document, so nothing has to be
installed there but Python and psycopg. It reads DSNs on the host, from the process environment
or the server-side ``.env``, so the control machine never connects to a database nor holds a
password.

Every action prints exactly one JSON object on stdout. Fact actions (``FACT_ACTIONS``) always exit 0
and report problems as ``{"ok": false, "error": "…"}`` (a failing fact command would fail the host);
operation actions exit 1 after printing their one-line reason to stderr. Every message passes
through ``redact()`` with the passwords of the DSNs involved.

Rules for this file: stdlib + psycopg only, no ``from __future__``, no ``turnout`` imports (when
shipped, ``dsn.py``'s definitions precede this text; the import below is for local use and tests).

    python turnout/hostside.py http_get '{"url": "http://127.0.0.1:18080/api/v1/health"}'
"""

import json
import os
import random
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:  # Local use and tests. Shipped, dsn.py's text precedes this file and defines these names.
    from turnout.dsn import DsnError, libpq_env, normalize_dsn, redact
except ImportError:  # pragma: no cover - exercised on hosts without turnout installed
    pass


class HostsideError(Exception):
    """A failure whose message is safe to show (it is redacted before it leaves the host)."""


_SECRETS: list[str] = []


def remember_secret(value: str) -> None:
    """Add a value to the list every output of this process is redacted against."""
    if value and value not in _SECRETS:
        _SECRETS.append(value)


# Settings from the host -------------------------------------------------------------------------


def read_env_file(path: str) -> dict[str, str]:
    """Parse a docker-compose style ``.env`` file: ``KEY=value`` lines, ``#`` comments, optional
    ``export``, single- or double-quoted values. Variables are not expanded."""
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        raise HostsideError(f"env file {path} does not exist on this host") from None
    except PermissionError:
        raise HostsideError(f"env file {path} is not readable by this user") from None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


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


# Actions -----------------------------------------------------------------------------------------


def action_postgres_server(params: dict) -> dict:
    """Connect with the DSN named by ``dsn_env`` and describe the server (no secrets)."""
    import psycopg

    dsn = host_dsn(params["dsn_env"], params.get("env_file"))
    timeout = int(params.get("connect_timeout", 10))
    try:
        with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), current_database(), current_user"
            ).fetchone()
            host, port = conn.info.host, conn.info.port
    except psycopg.Error as error:
        raise HostsideError(f"cannot connect with {params['dsn_env']}: {error}") from None
    return {
        "server_version": row[0],
        "database": row[1],
        "user": row[2],
        "host": host,
        "port": port,
    }


def action_path_modes(params: dict) -> dict:
    """Type and permission bits of each path (``null`` when absent)."""
    result: dict[str, dict | None] = {}
    for path in params["paths"]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            result[path] = None
            continue
        kind = "other"
        if stat.S_ISDIR(st.st_mode):
            kind = "dir"
        elif stat.S_ISREG(st.st_mode):
            kind = "file"
        result[path] = {"type": kind, "mode": f"{stat.S_IMODE(st.st_mode):04o}"}
    return {"paths": result}


def http_get(url: str, timeout: float) -> dict:
    """One GET that never follows redirects; returns status and parsed JSON body (or text)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
            return None

    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read(1_000_000)
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read(1_000_000)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return {"status": None, "error": f"{url} unreachable: {reason}"}
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")[:2000]
    return {"status": status, "body": body}


def judge_health(response: dict, expect: dict) -> str | None:
    """Why a health response is not healthy, or None when it is (RELIABILITY 24)."""
    if response.get("status") is None:
        return response["error"]
    if response["status"] != 200:
        return f"health answered HTTP {response['status']}, not 200"
    body = response["body"]
    if not isinstance(body, dict):
        return "health answered 200 without a JSON object"
    if body.get("status") != "ok" and body.get("ok") is not True:
        return f"health reports status {body.get('status')!r}"
    for key, wanted in expect.items():
        if body.get(key) != wanted:
            return f"health reports {key}={body.get(key)!r}, expected {wanted!r}"
    return None


def action_http_health(params: dict) -> dict:
    """GET ``url`` once (a fact: no retries) and judge it against ``expect``."""
    response = http_get(params["url"], float(params.get("timeout", 10)))
    problem = judge_health(response, params.get("expect", {}))
    return {"healthy": problem is None, "problem": problem, **response}


def action_http_health_wait(params: dict) -> dict:
    """GET ``url`` with retries, exponential backoff and jitter, under an overall deadline; write
    the final response as JSON to ``record`` (0600, atomically). Fails when never healthy."""
    retries = int(params.get("retries", 5))
    timeout = float(params.get("timeout", 10))
    deadline = time.monotonic() + float(params.get("deadline", 120))
    delay = 0.5
    for attempt in range(retries + 1):
        response = http_get(params["url"], timeout)
        problem = judge_health(response, params.get("expect", {}))
        if problem is None or attempt == retries or time.monotonic() + delay > deadline:
            break
        time.sleep(delay + random.uniform(0, delay / 2))  # noqa: S311 - jitter, not crypto
        delay = min(delay * 2, 10.0)
    result = {"url": params["url"], "healthy": problem is None, "problem": problem, **response}
    if params.get("record"):
        write_json_atomically(params["record"], result)
    if problem:
        raise HostsideError(f"health check failed after {attempt + 1} attempt(s): {problem}")
    return result


def action_make_dirs(params: dict) -> dict:
    """Create each directory (with parents) and set its mode; ``mode`` is an octal string."""
    mode = int(params.get("mode", "0700"), 8)
    for path in params["paths"]:
        os.makedirs(path, mode=mode, exist_ok=True)
        os.chmod(path, mode)
    return {"paths": params["paths"]}


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


FACT_ACTIONS = {
    "postgres_server": action_postgres_server,
    "path_modes": action_path_modes,
    "http_health": action_http_health,
}
OPERATION_ACTIONS = {
    "http_health_wait": action_http_health_wait,
    "make_dirs": action_make_dirs,
}


def main(argv: list[str]) -> int:
    action = argv[1] if len(argv) > 1 else ""
    is_fact = action in FACT_ACTIONS
    handler = FACT_ACTIONS.get(action) or OPERATION_ACTIONS.get(action)
    try:
        if handler is None:
            raise HostsideError(f"unknown hostside action {action!r}")
        params = json.loads(argv[2]) if len(argv) > 2 else {}
        result = {"ok": True, **handler(params)}
    except Exception as error:  # noqa: BLE001 - every failure becomes one redacted line
        kind = "" if isinstance(error, HostsideError) else f"{type(error).__name__}: "
        message = redact(f"{kind}{error}", _SECRETS)
        print(json.dumps({"ok": False, "error": message}))
        if not is_fact:
            print(f"turnout: {action}: {message}", file=sys.stderr)
            return 1
        return 0
    print(redact(json.dumps(result, sort_keys=True), _SECRETS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
