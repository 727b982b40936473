"""Host-side basics: safe errors, the secrets to redact, the server-side .env, atomic JSON files."""

import json
import os
import tempfile

if __name__ != "__main__":
    from turnout.dsn import DsnError, libpq_env, normalize_dsn, redact


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
