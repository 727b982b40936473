"""
turnout's settings: documented defaults, read from pyinfra host data and validated.

Settings come from ``group_data/all.py`` (the documented defaults), per-environment group data
(``group_data/staging.py``, ``group_data/prod.py``) and ``--data key=value`` on the command line.
``load_settings`` reads only the keys below, checks every one and reports all problems at once,
one sentence per line naming the key, the bad value and the fix. Secrets are never settings: DSNs
are read on the host from the environment variables named by ``source_dsn_env``/``target_dsn_env``
or from the server-side ``.env``.
"""

from __future__ import annotations

import math
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from pyinfra.api.exceptions import PyinfraError

from turnout.dsn import redact
from turnout.evidence import is_safe_component

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_$]*"
_TABLE_RE = re.compile(rf"(?:{_IDENTIFIER}\.)?{_IDENTIFIER}")
_COLUMN_RE = re.compile(rf"(?:{_IDENTIFIER}\.)?{_IDENTIFIER}\.{_IDENTIFIER}")
_EXTENSION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMPOSE_PROJECT_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_PROGRAM_RE = re.compile(r"[A-Za-z0-9_./+@-]+")

DUMP_FORMATS = ("custom", "directory")

_SHOWN_VALUE_MAX = 60


class SettingsError(PyinfraError, ValueError):
    """
    One or more settings are invalid; the message has one line per problem.

    A ``PyinfraError`` so that the pyinfra CLI prints the message without a traceback when a deploy
    file's ``load_settings(host.data)`` fails.
    """


@dataclass(frozen=True)
class Settings:
    """
    Every turnout setting with its default. Build it with ``load_settings(host.data)``.

    List-valued settings are tuples so that a loaded ``Settings`` is truly immutable.
    """

    # Where evidence directories are created: <evidence_root>/<task>/<timestamp>/.
    evidence_root: str = "/var/lib/turnout/evidence"
    # Pinned evidence timestamp ([A-Za-z0-9._-]+); reuses one directory and makes reruns idempotent.
    evidence_timestamp: str | None = None
    # Who runs the change, recorded in the audit record.
    operator: str | None = None
    # The app's directory on the host (compose file, .env).
    app_root: str = "/srv/app"
    # Env file passed to every compose call; None means <app_root>/.env.
    env_file: str | None = None
    # Compose file; None means <app_root>/docker-compose.yml.
    compose_file: str | None = None
    # Compose project name (docker compose -p); None lets compose derive it.
    compose_project: str | None = None
    # Docker client program (name on PATH or absolute path).
    docker_bin: str = "docker"
    # Command that runs Python with the app's dependencies inside the api container.
    app_python_cmd: str = "uv run python"
    # Python interpreter on the host that runs turnout's host-side script.
    hostside_python: str = "python3"
    # Base URL of the app for health and smoke checks.
    base_url: str = "http://127.0.0.1:18080"
    # Path of the health endpoint under base_url.
    health_path: str = "/api/v1/health"
    # Timeout of one HTTP request, in seconds.
    http_timeout_s: float = 10.0
    # How many times the health check is tried before it fails.
    health_retries: int = 5
    # What the health body must report besides status ok, as "key=value" items.
    health_expect: tuple[str, ...] = ()
    # Timeout of one exact count(*) before falling back to the planner estimate, in ms.
    count_timeout_ms: int = 3000
    # Allowed row-count difference per table (applies only when both counts are exact).
    allowed_row_diff: int = 0
    # Fail when a count is only an estimate.
    require_exact_counts: bool = False
    # Tables to validate ("schema.table" or "table"); None means all tables.
    tables: tuple[str, ...] | None = None
    # Orphan checks, each "child_table.column->parent_table.column".
    orphan_relations: tuple[str, ...] = ()
    # How many DB-referenced asset paths are sampled and checked on the target.
    asset_sample_size: int = 50
    # Seed of the asset sample, so a rerun checks the same paths.
    asset_sample_seed: int = 0
    # Prefix every asset path stored in the DB must start with (path inside the container).
    asset_prefix: str = "/app/.data"
    # Columns holding asset paths, each "table.column".
    asset_path_columns: tuple[str, ...] = (
        "knowledge_materials.storage_path",
        "ugc_assets.storage_path",
        "gallery_items.storage_dir",
    )
    # Host directory mounted at asset_prefix in the container.
    assets_dir: str | None = None
    # Extensions that must exist in the target database.
    required_extensions: tuple[str, ...] = ("vector",)
    # Environment variable (on the host) holding the source DSN.
    source_dsn_env: str = "SOURCE_DATABASE_URL"
    # Environment variable (on the host) holding the target DSN.
    target_dsn_env: str = "DATABASE_URL"
    # pg_dump format: custom or directory.
    dump_format: str = "custom"
    # Parallel jobs for directory-format dumps and restores.
    dump_jobs: int = 2
    # Existing dump to restore instead of dumping the source.
    dump_path: str | None = None
    # Drop and recreate schema public before restoring (staging only; refused on prod).
    drop_schema: bool = False
    # rsync source of the assets (local path or remote host:path).
    rsync_source: str | None = None
    # Pass --delete to rsync (only when explicitly asked).
    rsync_delete: bool = False
    # Remote shell for a host:path rsync source, e.g. "ssh -p 2222" (default: plain ssh).
    rsync_rsh: str | None = None
    # Migrate Redis too (off unless explicitly asked).
    migrate_redis: bool = False
    # Fixed work directory so dumps and temporaries are kept for audit; None uses a temporary one.
    work_dir: str | None = None
    # Rows per primary-key batch when copying SQLite to PostgreSQL.
    batch_size: int = 5000
    # Share of rows whose hashes are compared after a copy, in (0, 1].
    sample_ratio: float = 0.05
    # Release flag for destructive steps; see turnout.guard.
    i_know_what_im_doing: bool = False

    @property
    def env_file_path(self) -> str:
        """The env file given to compose: ``env_file`` or ``<app_root>/.env``."""
        return self.env_file or posixpath.join(self.app_root, ".env")

    @property
    def compose_file_path(self) -> str:
        """The compose file: ``compose_file`` or ``<app_root>/docker-compose.yml``."""
        return self.compose_file or posixpath.join(self.app_root, "docker-compose.yml")

    @property
    def health_expect_map(self) -> dict[str, str]:
        """``health_expect`` as a dict: ``("db_backend=postgresql",)`` -> ``{"db_backend": …}``."""
        return dict(item.split("=", 1) for item in self.health_expect)


DEFAULTS: dict[str, object] = {field.name: field.default for field in fields(Settings)}


class _Invalid(Exception):
    """Raised by a validator: what the value must be (completes "setting X must be …")."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


_MISSING = object()


def data_value(data: object, key: str, default: Any = None) -> Any:
    """
    Read ``key`` from a Mapping or a pyinfra ``HostData``-like object (attribute access).

    Example:

    .. code:: python

        data_value({"dump_jobs": 4}, "dump_jobs")  # 4
        data_value(host.data, "dump_jobs", 2)
    """
    if isinstance(data, Mapping):
        return data.get(key, default)
    return getattr(data, key, default)


def load_settings(data: object) -> Settings:
    """
    Read and validate turnout's settings from host data; ``SettingsError`` lists all problems.

    Missing keys take their default; keys that are not settings are ignored. List settings accept
    a list/tuple of strings or a comma-separated string (``--data tables=users,meters``).

    + data: ``host.data`` or any Mapping

    Example:

    .. code:: python

        from pyinfra import host
        settings = load_settings(host.data)
        load_settings({"tables": "public.users,meters"}).tables  # ('public.users', 'meters')
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for field in fields(Settings):
        raw = data_value(data, field.name, _MISSING)
        if raw is _MISSING:
            continue
        validate, example = _RULES[field.name]
        if raw is None and field.default is None:
            values[field.name] = None
            continue
        try:
            values[field.name] = validate(raw)
        except _Invalid as invalid:
            problems.append(_problem(field.name, raw, invalid.expected, example))
    if problems:
        raise SettingsError("\n".join(problems))
    return Settings(**values)


def _problem(key: str, value: object, expected: str, example: str) -> str:
    return (
        f"setting {key} must be {expected}, got {_show(value)}; "
        f"set it in group_data/ or with --data {key}={example}"
    )


def _show(value: object) -> str:
    """repr of a bad value, redacted and truncated."""
    shown = redact(repr(value))
    if len(shown) > _SHOWN_VALUE_MAX:
        shown = shown[: _SHOWN_VALUE_MAX - 1] + "…"
    return shown


# Validators: each takes the raw value and returns the clean one or raises _Invalid.


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _release_flag(value: object) -> bool:
    """Like ``_bool`` but also takes the string "true", exactly as ``turnout.guard`` does."""
    if value == "true" and isinstance(value, str):
        return True
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid("an integer")
    return value


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Invalid("a positive integer")
    return value


def _non_negative_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Invalid("an integer >= 0")
    return value


def _positive_number(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise _Invalid("a positive number")
    return float(value)


def _ratio(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= 1
    ):
        raise _Invalid("a number in (0, 1]")
    return float(value)


def _text(value: object) -> str:
    """A string; an int becomes its digits (``--data operator=1234`` arrives as an int)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _Invalid("a string")
    return value


def _single_line(value: object) -> str:
    text = _text(value).strip()
    if not text or len(text) > 200 or any(ord(char) < 32 for char in text):
        raise _Invalid("a non-empty single line of at most 200 characters")
    return text


def _abs_path(value: object) -> str:
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or value.rstrip("/") == ""
        or ".." in value.split("/")
        or any(ord(char) < 32 for char in value)
    ):
        raise _Invalid("an absolute path other than / (no '..', no control characters)")
    return value


def _timestamp(value: object) -> str:
    text = _text(value)
    if not is_safe_component(text):
        raise _Invalid("a timestamp like 20240102T030405Z (letters, digits, '.', '_', '-')")
    return text


def _compose_project(value: object) -> str:
    text = _text(value)
    if not _COMPOSE_PROJECT_RE.fullmatch(text):
        raise _Invalid("a compose project name (lowercase letters, digits, '_', '-')")
    return text


def _program(value: object) -> str:
    if not isinstance(value, str) or not _PROGRAM_RE.fullmatch(value) or value.startswith("-"):
        raise _Invalid("a program name or absolute path (one word, not starting with '-')")
    return value


def _command(value: object) -> str:
    try:
        words = shlex.split(value) if isinstance(value, str) else []
    except ValueError:
        words = []
    if not words or words[0].startswith("-"):
        raise _Invalid("a command line like 'uv run python' (first word not starting with '-')")
    return value


def _http_url(value: object) -> str:
    expected = "an http:// or https:// URL with a host"
    if not isinstance(value, str) or any(char.isspace() for char in value):
        raise _Invalid(expected)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _Invalid(expected) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _Invalid(expected)
    if parts.username is not None or parts.password is not None:
        raise _Invalid("a URL without credentials (credentials never go in URLs)")
    return value.rstrip("/")


def _url_path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or any(c.isspace() for c in value):
        raise _Invalid("a URL path starting with / (no spaces)")
    return value


def _env_name(value: object) -> str:
    if not isinstance(value, str) or not _ENV_NAME_RE.fullmatch(value):
        raise _Invalid("an environment variable name like DATABASE_URL")
    return value


def _dump_format(value: object) -> str:
    if value not in DUMP_FORMATS:
        raise _Invalid("one of " + ", ".join(DUMP_FORMATS))
    return value


def _rsync_source(value: object) -> str:
    text = _text(value).strip()
    if not text or text.startswith("-") or any(ord(char) < 32 for char in text):
        raise _Invalid("an rsync source path or host:path (not starting with '-')")
    return text


def _string_list(value: object) -> tuple[str, ...] | None:
    """A list/tuple of strings, or a comma-separated string; None when it is neither."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        items = list(value)
    else:
        return None
    return tuple(item.strip() for item in items if item.strip())


def _key_values(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    if items is None or any(not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", i) for i in items):
        raise _Invalid("a list of key=value items")
    return items


def _tables(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    if not items or not all(_TABLE_RE.fullmatch(item) for item in items):
        raise _Invalid(
            "a non-empty list of table names like public.users or users "
            "(leave it unset for all tables)",
        )
    return items


def _columns(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    if items is None or not all(_COLUMN_RE.fullmatch(item) for item in items):
        raise _Invalid("a list of column references like knowledge_materials.storage_path")
    return items


def _orphan_relation(item: str) -> str | None:
    """``child.col->parent.col`` with spaces removed around ``->``, or None if malformed."""
    child, arrow, parent = item.partition("->")
    child, parent = child.strip(), parent.strip()
    if not arrow or not _COLUMN_RE.fullmatch(child) or not _COLUMN_RE.fullmatch(parent):
        return None
    return f"{child}->{parent}"


def _orphan_relations(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    relations = tuple(_orphan_relation(item) for item in items or ())
    if items is None or None in relations:
        raise _Invalid(
            "a list like meters.unit_id->units.id (child_table.column->parent_table.column)",
        )
    return relations


def _extensions(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    if items is None or not all(_EXTENSION_RE.fullmatch(item) for item in items):
        raise _Invalid("a list of extension names like vector,pg_trgm")
    return items


_Validator = Callable[[object], Any]

# key -> (validator, example value for the "--data key=example" fix).
_RULES: dict[str, tuple[_Validator, str]] = {
    "evidence_root": (_abs_path, "/var/lib/turnout/evidence"),
    "evidence_timestamp": (_timestamp, "20240102T030405Z"),
    "operator": (_single_line, "alice"),
    "app_root": (_abs_path, "/srv/app"),
    "env_file": (_abs_path, "/srv/app/.env"),
    "compose_file": (_abs_path, "/srv/app/docker-compose.yml"),
    "compose_project": (_compose_project, "app"),
    "docker_bin": (_program, "docker"),
    "app_python_cmd": (_command, "'uv run python'"),
    "hostside_python": (_command, "python3"),
    "base_url": (_http_url, "http://127.0.0.1:18080"),
    "health_path": (_url_path, "/api/v1/health"),
    "http_timeout_s": (_positive_number, "10"),
    "health_retries": (_positive_int, "5"),
    "health_expect": (_key_values, "db_backend=postgresql"),
    "count_timeout_ms": (_positive_int, "3000"),
    "allowed_row_diff": (_non_negative_int, "0"),
    "require_exact_counts": (_bool, "true"),
    "tables": (_tables, "public.users,public.meters"),
    "orphan_relations": (_orphan_relations, "meters.unit_id->units.id"),
    "asset_sample_size": (_positive_int, "50"),
    "asset_sample_seed": (_integer, "0"),
    "asset_prefix": (_abs_path, "/app/.data"),
    "asset_path_columns": (_columns, "ugc_assets.storage_path,gallery_items.storage_dir"),
    "assets_dir": (_abs_path, "/srv/app/.data"),
    "required_extensions": (_extensions, "vector"),
    "source_dsn_env": (_env_name, "SOURCE_DATABASE_URL"),
    "target_dsn_env": (_env_name, "DATABASE_URL"),
    "dump_format": (_dump_format, "custom"),
    "dump_jobs": (_positive_int, "2"),
    "dump_path": (_abs_path, "/var/backups/app.dump"),
    "drop_schema": (_bool, "false"),
    "rsync_source": (_rsync_source, "backup@source:/srv/app/.data/"),
    "rsync_delete": (_bool, "false"),
    "rsync_rsh": (_single_line, "'ssh -p 2222'"),
    "migrate_redis": (_bool, "false"),
    "work_dir": (_abs_path, "/var/lib/turnout/work"),
    "batch_size": (_positive_int, "5000"),
    "sample_ratio": (_ratio, "0.05"),
    "i_know_what_im_doing": (_release_flag, "true"),
}
