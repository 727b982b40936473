"""
turnout's settings: each declared once, read from pyinfra host data and validated.

Every setting is one field of ``Settings``, declared with ``setting(...)``: name, type, default,
validator, the ``--data`` example and a one-line doc. ``group_data/all.py`` (the documented
defaults pyinfra loads for every host) is generated from these declarations with
``python -m turnout.settings --group-data``. Per-environment group data (``group_data/staging.py``,
``group_data/prod.py``) and ``--data key=value`` on the command line override the defaults.

``load_settings`` checks every setting and refuses keys that are neither a setting nor pyinfra's own
data (``ssh_port``, ``_sudo``…) nor listed in ``extra_data_keys``; it reports all problems at once,
one sentence per line naming the key, the bad value and the fix. Secrets are never settings: DSNs
are read on the host from the environment variables named by ``source_dsn_env``/``target_dsn_env``
or from the server-side ``.env``.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import posixpath
import re
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, dataclass, field, fields
from functools import cache
from typing import Any, get_type_hints
from urllib.parse import urlsplit

from pyinfra.api.arguments import all_global_arguments
from pyinfra.api.connectors import get_all_connectors
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import HostData

from turnout.constants import (
    CUTOVER_STEPS,
    DUMP_FORMATS,
    PHASES,
    RESTORE_POLICIES,
    ROLLBACK_DB_MODES,
)
from turnout.dsn import redact
from turnout.evidence import is_safe_component
from turnout.hostside.base import HostsideError
from turnout.hostside.checks import KEEP_RULES, parse_check, parse_gate
from turnout.hostside.pg import pg_name_parts, pg_parse_relation, pg_split_list
from turnout.hostside.web import parse_body_rule

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_$]*"
_COLUMN_RE = re.compile(rf"(?:{_IDENTIFIER}\.)?{_IDENTIFIER}\.{_IDENTIFIER}")
_EXTENSION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATA_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COMPOSE_PROJECT_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")
_PROGRAM_RE = re.compile(r"[A-Za-z0-9_./+@-]+")
_COMPOSE_SERVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SQL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")

_SHOWN_VALUE_MAX = 60
# How alike an unknown key and a known one must be to suggest it (difflib ratio); the default 0.6
# would answer "operator" with "did you mean docker_platform?".
_SUGGEST_CUTOFF = 0.75
_LINE_MAX = 100


class SettingsError(PyinfraError, ValueError):
    """
    One or more settings are invalid; the message has one line per problem.

    A ``PyinfraError`` so that the pyinfra CLI prints the message without a traceback when a deploy
    file's ``load_settings(host.data)`` fails.
    """


class _Invalid(Exception):
    """Raised by a validator: what the value must be (completes "setting X must be …")."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


# Validators: each takes the raw value and returns the clean one or raises _Invalid.

_Validator = Callable[[object], Any]


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def parse_release_flag(value: object) -> bool | None:
    """
    The release flag's meaning: True for ``True`` or the string ``"true"``, False for ``False``,
    None for anything else (not a flag at all).

    The one parser of ``i_know_what_im_doing``, used by ``load_settings`` and ``turnout.guard``.
    pyinfra's ``--data i_know_what_im_doing=true`` (any case) arrives as True; the lowercase string
    "true" is accepted for group data or inventories that spell it as a string.

    Example:

    .. code:: python

        parse_release_flag(True), parse_release_flag("true")  # (True, True)
        parse_release_flag(False)  # False
        parse_release_flag("True"), parse_release_flag(1)  # (None, None)
    """
    if isinstance(value, bool):
        return value
    if type(value) is str and value == "true":
        return True
    return None


def _release_flag(value: object) -> bool:
    flag = parse_release_flag(value)
    if flag is None:
        raise _Invalid("true or false")
    return flag


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


def _text(value: object) -> str:
    """A string; an int becomes its digits (``--data evidence_timestamp=20240102`` is an int)."""
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


def _restore_policy(value: object) -> str:
    if value not in RESTORE_POLICIES:
        raise _Invalid("one of " + ", ".join(RESTORE_POLICIES))
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


def _table_name(item: str) -> str | None:
    """One table name as SQL writes it (``users``, ``public.users``, ``public."PlayCount"``,
    ``"Odd Schema"."T"``), normalised (quoted parts re-quoted), or None if it is not one."""
    try:
        parts = pg_name_parts(item)
    except HostsideError:
        return None
    if len(parts) > 2 or any(not q and not re.fullmatch(_IDENTIFIER, v) for v, q in parts):
        return None
    return ".".join('"' + v.replace('"', '""') + '"' if q else v for v, q in parts)


def _tables(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items = tuple(pg_split_list(value))  # commas inside double quotes belong to a name
    else:
        items = _string_list(value)
    names = tuple(_table_name(item) for item in items or ())
    if not names or None in names:
        raise _Invalid(
            'a non-empty list of table names like public.users, users or public."PlayCount" '
            "(SQL quoting for other names; leave it unset for all tables)",
        )
    return names


def _columns(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    if items is None or not all(_COLUMN_RE.fullmatch(item) for item in items):
        raise _Invalid("a list of column references like knowledge_materials.storage_path")
    return items


def _orphan_relation(item: str) -> str | None:
    """``child.col->parent.col`` (SQL quoting as in the pre-checks: ``"user".id->"Org".id``),
    normalised as the orphan check names it, or None if malformed."""
    try:
        return pg_parse_relation(item)["name"].removeprefix("declared:")
    except HostsideError:
        return None


def _orphan_relations(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items = tuple(item for item in pg_split_list(value) if item)  # commas in quotes stay
    else:
        items = _string_list(value)
    relations = tuple(_orphan_relation(item) for item in items or ())
    if items is None or None in relations:
        raise _Invalid(
            "a list like meters.unit_id->units.id (child_table.column->parent_table.column; "
            'SQL quoting for other names: "user".id->orgs.id)',
        )
    return relations


def _extensions(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    if items is None or not all(_EXTENSION_RE.fullmatch(item) for item in items):
        raise _Invalid("a list of extension names like vector,pg_trgm")
    return items


def _data_key_names(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    if items is None or not all(_DATA_KEY_RE.fullmatch(item) for item in items):
        raise _Invalid("a list of data key names like ticket,owner")
    return items


def _health_key(value: object) -> str:
    if not isinstance(value, str) or (value and not re.fullmatch(r"[A-Za-z0-9_.-]+", value)):
        raise _Invalid('a dotted key path like alembic_revision or checks.db.revision, or ""')
    return value


def _revision(value: object) -> str:
    text = _text(value)
    if not re.fullmatch(r"-1|[0-9A-Za-z_]+", text):
        raise _Invalid("an Alembic revision id, head, base or -1")
    return text


def _rollback(value: object) -> str:
    try:
        return _revision(value)
    except _Invalid:
        raise _Invalid("restore (the run's backup), -1 or an Alembic revision id") from None


def _write_body(value: object) -> str:
    if isinstance(value, dict):  # pyinfra's --data parses a JSON object already
        value = json.dumps(value)
    try:
        parsed = json.loads(value.replace("{n}", "0")) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _Invalid('a JSON object, {n} standing for the write\'s number, like {"slot": {n}}')
    return value


def _steps(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    if not items or any(item not in CUTOVER_STEPS for item in items):
        raise _Invalid("a list of cutover steps from " + ",".join(CUTOVER_STEPS))
    return tuple(step for step in CUTOVER_STEPS if step in items)  # the deploy's order


def _services(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    if items is None or not all(_COMPOSE_SERVICE_RE.fullmatch(item) for item in items):
        raise _Invalid("a list of compose service names like api,worker")
    return items


_LIBPQ_PART_KEYWORDS = frozenset(
    ("host", "hostaddr", "port", "user", "password", "dbname", "sslmode", "options",
     "application_name", "connect_timeout", "target_session_attrs")
)


def _dsn_parts(value: object) -> tuple[str, ...]:
    """``keyword=VARIABLE`` items (a libpq keyword and the variable holding its value); empty or
    ``none``: the DSN is one variable (``*_dsn_env``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return ()
    items = _string_list(value)
    if items == ():
        return ()
    pairs = [item.partition("=") for item in items or ()]
    if (
        items is None
        or any(not sep or key.strip() not in _LIBPQ_PART_KEYWORDS for key, sep, _ in pairs)
        or any(not _ENV_NAME_RE.fullmatch(name.strip()) for _, _, name in pairs)
    ):
        raise _Invalid(
            "libpq keyword=VARIABLE items like host=POSTGRES_SERVER,port=POSTGRES_PORT,"
            "user=POSTGRES_USER,password=POSTGRES_PASSWORD,dbname=POSTGRES_DB (keywords: "
            + ", ".join(sorted(_LIBPQ_PART_KEYWORDS)) + ")"
        )
    return tuple(f"{key.strip()}={name.strip()}" for key, _, name in pairs)


def _one_of(*choices: str) -> _Validator:
    def check(value: object) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _Invalid(" or ".join(choices))
        return value

    return check


def _optional_services(value: object) -> tuple[str, ...]:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return ()
    return _services(value)


def _optional_tables(value: object) -> tuple[str, ...]:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return ()
    if isinstance(value, list | tuple) and not value:
        return ()
    return _tables(value)


def _service(value: object) -> str:
    if not isinstance(value, str) or not _COMPOSE_SERVICE_RE.fullmatch(value):
        raise _Invalid("a compose service name like db")
    return value


def _fraction(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= 1
    ):
        raise _Invalid("a fraction in (0, 1], like 0.05")
    return float(value)


def _phase(value: object) -> str:
    if value not in PHASES:
        raise _Invalid(" or ".join(PHASES))
    return str(value)


def _names(value: object) -> tuple[str, ...]:
    items = _string_list(value)
    if items is None or not all(_SQL_NAME_RE.fullmatch(item) for item in items):
        raise _Invalid("a list of constraint or index names like uq_users_email,ix_meters_unit")
    return items


def _group_name(value: object) -> str:
    if not isinstance(value, str) or not _DATA_KEY_RE.fullmatch(value):
        raise _Invalid("an inventory group name like prod_app")
    return value


def _rollback_db(value: object) -> str:
    if value not in ROLLBACK_DB_MODES:
        raise _Invalid("one of " + ", ".join(ROLLBACK_DB_MODES))
    return value


def _split_checks(text: str) -> list[str]:
    """A comma-separated list whose items may hold commas inside parentheses."""
    items, current, depth = [], [], 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def _prechecks(value: object) -> tuple[str, ...]:
    expected = (
        "a list of name=kind:table(...) checks, kinds unique, duplicates, min_rows "
        "(active_admin=min_rows:users(role=admin, is_active=true)>=1)"
    )
    if isinstance(value, str):
        items = _split_checks(value)
    elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value if item.strip()]
    else:
        raise _Invalid(expected)
    try:
        names = [parse_check(item)["name"] for item in items]
    except ValueError:
        raise _Invalid(expected) from None
    if len(set(names)) != len(names):
        raise _Invalid(expected + " with distinct names")
    return tuple(items)


UNSET_WORDS = ("", "none", "null")  # how --data and group_data say "no value"


def _unique_gate(value: object) -> str | None:
    """The gate ``constraint=table(columns)``; None, or ``""``/``none``/``null`` (any case):
    no gate."""
    if value is None or (isinstance(value, str) and value.strip().lower() in UNSET_WORDS):
        return None
    try:
        parse_gate(value)
    except ValueError:
        raise _Invalid(
            "constraint_name=table(column, ...), e.g. uq_x=meters(unit_id, kind)"
        ) from None
    return value.strip()


def _keep_rule(value: object) -> str:
    if value not in KEEP_RULES:
        raise _Invalid("one of " + ", ".join(KEEP_RULES))
    return value


def _http_status(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise _Invalid("an HTTP status like 200 (100-599)")
    if 300 <= value <= 399:
        raise _Invalid("an HTTP status other than a redirect (3xx never passes)")
    return value


def _body_rule(value: object) -> str:
    try:
        parse_body_rule(_text(value))
    except ValueError:
        raise _Invalid(
            "ok, any, json:<JSON value>, text:<text> or dotted.path=value items "
            "(checks.db.status=up)"
        ) from None
    return _text(value).strip()


def _smoke_rule(parse: Callable[[Any], Any], expected: str) -> _Validator:
    """A validator from one of ``turnout.smoke``'s parsers (ValueError → what the value must be)."""

    def validate(value: object) -> Any:
        try:
            return parse(value)
        except ValueError:
            raise _Invalid(expected) from None

    return validate


def _statuses(value: object) -> tuple[int, ...]:
    from turnout.smoke import parse_statuses

    return _smoke_rule(parse_statuses, "HTTP statuses like 401,403 (no 3xx)")(value)


def _endpoints(value: object) -> tuple[str, ...]:
    from turnout.smoke import parse_endpoint

    items = _string_list(value)
    if items is None:
        raise _Invalid(_ENDPOINTS_EXPECTED)
    for item in items:
        _smoke_rule(parse_endpoint, _ENDPOINTS_EXPECTED)(item)
    return items


_ENDPOINTS_EXPECTED = (
    "a list of [admin:|user:|anonymous:]path=status items like /api/v1/me=200,user:/me=200"
)


def _item_path(value: object) -> str:
    from turnout.smoke import check_item_path

    return _smoke_rule(check_item_path, '"" or a path holding {id}, e.g. /api/v1/items/{id}')(
        value
    )


def _optional_url_path(value: object) -> str:
    return "" if value == "" else _url_path(value)


def _login_body(value: object) -> str:
    if value not in ("json", "form"):
        raise _Invalid("json or form")
    return value


def _field_name(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
        raise _Invalid("a field name like email or username")
    return value


def _token_path(value: object) -> str:
    from turnout.smoke import check_token_path

    return _smoke_rule(check_token_path, "a dotted path like access_token or data.token")(value)


def _auth_scheme(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", value):
        raise _Invalid("an Authorization scheme like Bearer or Token")
    return value


def _ws_auth(value: object) -> str:
    from turnout.smoke import auth_message_template

    return _smoke_rule(
        auth_message_template, 'a message holding {token}, e.g. {"type":"auth","token":"{token}"}'
    )(value)


# Declaring settings.

_INFO_KEY = "turnout.setting"


@dataclass(frozen=True)
class SettingInfo:
    """
    What ``setting()`` attaches to a ``Settings`` field, besides its name, type and default.

    + validate: takes the raw value, returns the clean one or raises (see the validators above)
    + example: a valid value as typed after ``--data <name>=`` (shell-quoted when needed)
    + doc: one line, the comment above the setting in ``group_data/all.py``
    + section: the heading the setting is listed under in ``group_data/all.py``
    """

    validate: _Validator
    example: str
    doc: str
    section: str


def setting(default: Any, validate: _Validator, *, example: str, doc: str, section: str) -> Any:
    """
    Declare one setting: a dataclass field with its default and its ``SettingInfo``.

    Example:

    .. code:: python

        from dataclasses import dataclass, fields

        @dataclass(frozen=True)
        class Demo:
            dump_jobs: int = setting(2, _positive_int, example="4", doc="Jobs.", section="dump")

        setting_info(fields(Demo)[0]).example  # '4'
        Demo().dump_jobs  # 2
    """
    if "\n" in doc or len(f"# {doc}") > _LINE_MAX:
        raise ValueError(f"the doc of a setting must be one line of at most 98 characters: {doc}")
    info = SettingInfo(validate=validate, example=example, doc=doc, section=section)
    return field(default=default, metadata={_INFO_KEY: info})


def setting_info(settings_field: Field) -> SettingInfo:
    """
    The ``SettingInfo`` of one ``Settings`` field.

    Example:

    .. code:: python

        from dataclasses import fields
        setting_info(fields(Settings)[0]).doc  # 'Where evidence directories are created: …'
    """
    return settings_field.metadata[_INFO_KEY]


# Sections of group_data/all.py, in order; each names the SPEC items its settings serve.
_EVIDENCE = "evidence (SPEC S0.3)"
_APP = "the app and compose (S0.4)"
_HTTP = "HTTP checks (S0.5, S1.7)"
_SMOKE = "smoke-core, run from the control machine (S0.6, S2.8)"
_DB_CHECKS = "database validation (S1.4, S1.6)"
_ASSETS = "assets (S1.5)"
_MOVE = "dump, restore, mirror (S1.1-S1.3, S1.10, S1.12)"
_DATA_KEYS = "data keys (C3)"
_CUTOVER = "production cutover and rollback (S0.1-S0.10)"
_RELEASE_SCHEMA = "schema release (S2.5-S2.7)"
_RELEASE_CHECKS = "schema release checks (S2.4, S2.10)"
_RELEASE = "release (S0.2)"
_PENDING_REVISIONS = "pending revisions (S2.10)"
_SQLITE_COPY = "SQLite to PostgreSQL copy and verification (S3.1-S3.4)"
_PHASES = "SQLite to PostgreSQL phases, acceptance, rollback (S3.5-S3.7)"


@dataclass(frozen=True)
class Settings:
    """
    Every turnout setting with its default. Build it with ``load_settings(host.data)``.

    Each field is declared once, with ``setting(...)``; ``group_data/all.py`` is generated from
    these declarations. List-valued settings are tuples so that a loaded ``Settings`` is truly
    immutable.
    """

    evidence_root: str = setting(
        "/var/lib/turnout/evidence",
        _abs_path,
        example="/var/lib/turnout/evidence",
        doc="Where evidence directories are created: <evidence_root>/<task>/<timestamp>/.",
        section=_EVIDENCE,
    )
    evidence_timestamp: str | None = setting(
        None,
        _timestamp,
        example="20240102T030405Z",
        doc="Pinned evidence timestamp (e.g. 20240102T030405Z): reuses one directory, "
        "reruns are idempotent.",
        section=_EVIDENCE,
    )
    app_root: str = setting(
        "/srv/app",
        _abs_path,
        example="/srv/app",
        doc="The app's directory on the host (compose file, .env).",
        section=_APP,
    )
    app_runs_in: str = setting(
        "compose",
        _one_of("compose", "host"),
        example="host",
        doc="Where the app runs: compose (its services) or host (systemd, a venv; app_unit).",
        section=_APP,
    )
    app_dir: str | None = setting(
        None,
        _abs_path,
        example="/srv/app/backend",
        doc="With app_runs_in=host: where the app's Python runs (Alembic); None: app_root.",
        section=_APP,
    )
    app_unit: str | None = setting(
        None,
        _single_line,
        example="myapp.service",
        doc="With app_runs_in=host: the systemd unit (systemctl start/stop/is-active).",
        section=_APP,
    )
    app_start_command: str | None = setting(
        None,
        _command,
        example="'/srv/app/bin/ctl start'",
        doc="With app_runs_in=host: starts the app (exit 0 once up); None: from app_unit.",
        section=_APP,
    )
    app_stop_command: str | None = setting(
        None,
        _command,
        example="'/srv/app/bin/ctl stop'",
        doc="With app_runs_in=host: stops the app; None: from app_unit.",
        section=_APP,
    )
    app_status_command: str | None = setting(
        None,
        _command,
        example="'/srv/app/bin/ctl status'",
        doc="With app_runs_in=host: exits 0 while the app runs; None: from app_unit.",
        section=_APP,
    )
    alembic_ini: str = setting(
        "alembic.ini",
        _text,
        example="backend/alembic.ini",
        doc="Alembic's config, relative to the app's working directory.",
        section=_APP,
    )
    env_file: str | None = setting(
        None,
        _abs_path,
        example="/srv/app/.env",
        doc="Env file passed to every compose call; None means <app_root>/.env.",
        section=_APP,
    )
    compose_file: str | None = setting(
        None,
        _abs_path,
        example="/srv/app/docker-compose.yml",
        doc="Compose file; None means <app_root>/docker-compose.yml.",
        section=_APP,
    )
    compose_project: str | None = setting(
        None,
        _compose_project,
        example="app",
        doc="Compose project name (docker compose -p); None lets compose derive it.",
        section=_APP,
    )
    docker_bin: str = setting(
        "docker",
        _program,
        example="docker",
        doc="Docker client program (name on PATH or absolute path).",
        section=_APP,
    )
    hostside_python: str = setting(
        "python3",
        _command,
        example="python3",
        doc="Python interpreter on the host that runs turnout's host-side script.",
        section=_APP,
    )
    base_url: str = setting(
        "http://127.0.0.1:18080",
        _http_url,
        example="http://127.0.0.1:18080",
        doc="Base URL of the app for health and smoke checks.",
        section=_HTTP,
    )
    health_path: str = setting(
        "/api/v1/health",
        _url_path,
        example="/api/v1/health",
        doc="Path of the health endpoint under base_url.",
        section=_HTTP,
    )
    http_timeout_s: float = setting(
        10.0,
        _positive_number,
        example="10",
        doc="Timeout of one HTTP request, in seconds.",
        section=_HTTP,
    )
    health_retries: int = setting(
        5,
        _positive_int,
        example="5",
        doc="How many times the health check is tried before it fails.",
        section=_HTTP,
    )
    health: bool = setting(
        True,
        _bool,
        example="false",
        doc="Check the app's health endpoint; false for an app without one (--dry says it is off).",
        section=_HTTP,
    )
    health_expect: tuple[str, ...] = setting(
        (),
        _key_values,
        example="db_backend=postgresql",
        doc='What the health body must also report, "key=value" items (dotted paths: a.b=1).',
        section=_HTTP,
    )
    health_revision_key: str = setting(
        "alembic_revision",
        _health_key,
        example="checks.db.revision",
        doc='Health body key (dotted) holding the Alembic revision the cutover expects; "" = none.',
        section=_HTTP,
    )
    health_status: int = setting(
        200,
        _http_status,
        example="200",
        doc="HTTP status the health endpoint must answer (a redirect always fails).",
        section=_HTTP,
    )
    health_body: str = setting(
        "ok",
        _body_rule,
        example="text:OK",
        doc="Health body rule: ok (status ok), any, json:true, text:OK, checks.db.status=up,a.b=1.",
        section=_HTTP,
    )
    smoke: bool = setting(
        True,
        _bool,
        example="false",
        doc="Run smoke-core where a runbook has it (login, core endpoints, admin, WebSocket).",
        section=_SMOKE,
    )
    smoke_login_path: str = setting(
        "/api/v1/auth/login",
        _url_path,
        example="/auth/token",
        doc="Login path under base_url (answers 200 with the token).",
        section=_SMOKE,
    )
    smoke_login_body: str = setting(
        "json",
        _login_body,
        example="form",
        doc="Login body: json, or form (OAuth2 password form, application/x-www-form-urlencoded).",
        section=_SMOKE,
    )
    smoke_username_field: str = setting(
        "email",
        _field_name,
        example="username",
        doc="Login field holding TURNOUT_SMOKE_EMAIL (OAuth2 forms: username).",
        section=_SMOKE,
    )
    smoke_password_field: str = setting(
        "password",
        _field_name,
        example="password",
        doc="Login field holding TURNOUT_SMOKE_PASSWORD.",
        section=_SMOKE,
    )
    smoke_token_path: str = setting(
        "access_token",
        _token_path,
        example="data.token",
        doc="Dotted path of the token in the login answer.",
        section=_SMOKE,
    )
    smoke_auth_scheme: str = setting(
        "Bearer",
        _auth_scheme,
        example="Token",
        doc="Authorization header scheme: <scheme> <token>.",
        section=_SMOKE,
    )
    smoke_endpoints: tuple[str, ...] = setting(
        ("/api/v1/me=200",),
        _endpoints,
        example="/api/v1/me=200,/api/v1/items=200|204",
        doc='Core endpoints, "[admin:|user:|anonymous:]path=status" items (alternatives: 200|204).',
        section=_SMOKE,
    )
    smoke_admin_path: str = setting(
        "/api/v1/admin/stats",
        _optional_url_path,
        example="/api/v1/admin/stats",
        doc='Admin-only endpoint: admin gets smoke_admin_status, others are refused; "" skips it.',
        section=_SMOKE,
    )
    smoke_admin_status: tuple[int, ...] = setting(
        (200,),
        _statuses,
        example="200",
        doc="Status(es) the admin endpoint answers the admin.",
        section=_SMOKE,
    )
    smoke_denied_status: tuple[int, ...] = setting(
        (401, 403),
        _statuses,
        example="401",
        doc="Status(es) the admin endpoint answers a request without a token.",
        section=_SMOKE,
    )
    smoke_user_status: tuple[int, ...] = setting(
        (403,),
        _statuses,
        example="403",
        doc="Status(es) it answers the normal user (TURNOUT_SMOKE_USER_EMAIL/_PASSWORD, if set).",
        section=_SMOKE,
    )
    smoke_ws_path: str = setting(
        "/api/v1/ws",
        _optional_url_path,
        example="/api/v1/ws",
        doc='WebSocket path under base_url (ws:// or wss://); "" skips the WebSocket check.',
        section=_SMOKE,
    )
    smoke_ws_auth: str = setting(
        '{"type": "auth", "token": "{token}"}',
        _ws_auth,
        example='\'{"action":"login","jwt":"{token}"}\'',
        doc="First WebSocket message; {token} is replaced in memory by the login token.",
        section=_SMOKE,
    )
    smoke_ws_expect: str = setting(
        "type=ready",
        _body_rule,
        example="event=welcome",
        doc="Rule the WebSocket's first answer must meet (same syntax as health_body).",
        section=_SMOKE,
    )
    smoke_writes: int = setting(
        0,
        _non_negative_int,
        example="2",
        doc="Sample writes after a release (S2.8): POST, read back, DELETE, gone; 0 = none.",
        section=_SMOKE,
    )
    smoke_write_path: str = setting(
        "/api/v1/meters",
        _url_path,
        example="/api/v1/notes",
        doc="Where sample writes are POSTed (smoke_item_path reads and deletes one).",
        section=_SMOKE,
    )
    smoke_item_path: str = setting(
        "",
        _item_path,
        example="/api/v1/items/{id}",
        doc='Where a sample item is read back and deleted; "" = <smoke_write_path>/{id}.',
        section=_SMOKE,
    )
    smoke_write_body: str = setting(
        '{"unit_id": 990001, "kind": "turnout-smoke", "slot": {n}, "value": 1.5}',
        _write_body,
        example="'{\"title\": \"turnout smoke {n}\"}'",
        doc="JSON body of a sample write; {n} is its number.",
        section=_SMOKE,
    )
    smoke_write_id: str = setting(
        "id",
        _health_key,
        example="data.id",
        doc="Dotted path of the created item's id in the answer to a sample write.",
        section=_SMOKE,
    )
    count_timeout_ms: int = setting(
        3000,
        _positive_int,
        example="3000",
        doc="Timeout of one exact count(*) before falling back to the planner estimate, in ms.",
        section=_DB_CHECKS,
    )
    allowed_row_diff: int = setting(
        0,
        _non_negative_int,
        example="0",
        doc="Allowed row-count difference per table (applies only when both counts are exact).",
        section=_DB_CHECKS,
    )
    require_exact_counts: bool = setting(
        False,
        _bool,
        example="true",
        doc="Fail when a count is only an estimate.",
        section=_DB_CHECKS,
    )
    tables: tuple[str, ...] | None = setting(
        None,
        _tables,
        example="public.users,public.meters",
        doc='Tables to validate, SQL names (users, public."PlayCount"); None means all tables.',
        section=_DB_CHECKS,
    )
    orphan_relations: tuple[str, ...] = setting(
        (),
        _orphan_relations,
        example="meters.unit_id->units.id",
        doc='Orphan checks, each "child_table.column->parent_table.column".',
        section=_DB_CHECKS,
    )
    required_extensions: tuple[str, ...] = setting(
        ("vector",),
        _extensions,
        example="vector",
        doc="Extensions that must exist in the target database.",
        section=_DB_CHECKS,
    )
    assets: bool = setting(
        True,
        _bool,
        example="false",
        doc="Mirror and validate asset files; false for an app without any (--dry says it is off).",
        section=_ASSETS,
    )
    asset_sample_size: int = setting(
        50,
        _positive_int,
        example="50",
        doc="How many DB-referenced asset paths are sampled and checked on the target.",
        section=_ASSETS,
    )
    asset_sample_seed: int = setting(
        0,
        _integer,
        example="0",
        doc="Seed of the asset sample, so a rerun checks the same paths.",
        section=_ASSETS,
    )
    asset_prefix: str = setting(
        "/app/.data",
        _abs_path,
        example="/app/.data",
        doc="Prefix every asset path stored in the DB must start with (path inside the container).",
        section=_ASSETS,
    )
    asset_path_columns: tuple[str, ...] = setting(
        (
            "knowledge_materials.storage_path",
            "ugc_assets.storage_path",
            "gallery_items.storage_dir",
        ),
        _columns,
        example="ugc_assets.storage_path,gallery_items.storage_dir",
        doc='Columns holding asset paths, each "table.column".',
        section=_ASSETS,
    )
    assets_dir: str | None = setting(
        None,
        _abs_path,
        example="/srv/app/.data",
        doc="Host directory mounted at asset_prefix in the container.",
        section=_ASSETS,
    )
    source_dsn_env: str = setting(
        "SOURCE_DATABASE_URL",
        _env_name,
        example="SOURCE_DATABASE_URL",
        doc="Environment variable (on the host) holding the source DSN.",
        section=_MOVE,
    )
    target_dsn_env: str = setting(
        "DATABASE_URL",
        _env_name,
        example="DATABASE_URL",
        doc="Environment variable (on the host) holding the target DSN.",
        section=_MOVE,
    )
    source_dsn_parts: tuple[str, ...] = setting(
        (),
        _dsn_parts,
        example="host=SRC_PGHOST,port=SRC_PGPORT,user=SRC_PGUSER,password=SRC_PGPASSWORD,"
        "dbname=SRC_PGDB",
        doc="The source DSN from parts (libpq keyword=VARIABLE); empty: source_dsn_env.",
        section=_MOVE,
    )
    target_dsn_parts: tuple[str, ...] = setting(
        (),
        _dsn_parts,
        example="host=POSTGRES_SERVER,port=POSTGRES_PORT,user=POSTGRES_USER,"
        "password=POSTGRES_PASSWORD,dbname=POSTGRES_DB",
        doc="The target DSN from parts (libpq keyword=VARIABLE); empty: target_dsn_env.",
        section=_MOVE,
    )
    dump_format: str = setting(
        "custom",
        _dump_format,
        example="custom",
        doc="pg_dump format: " + " or ".join(DUMP_FORMATS) + ".",
        section=_MOVE,
    )
    dump_jobs: int = setting(
        2,
        _positive_int,
        example="2",
        doc="Parallel jobs for directory-format dumps and restores.",
        section=_MOVE,
    )
    progress_interval_s: float = setting(
        10.0,
        _positive_number,
        example="10",
        doc="Seconds between progress lines of a long dump, restore or mirror.",
        section=_MOVE,
    )
    dump_path: str | None = setting(
        None,
        _abs_path,
        example="/var/backups/app.dump",
        doc="Existing dump to restore instead of dumping the source.",
        section=_MOVE,
    )
    restore: str = setting(
        "if_new_dump",
        _restore_policy,
        example="if_new_dump",
        doc="if_new_dump (skip a dump the marker says is restored) or always (heals drift).",
        section=_MOVE,
    )
    drop_schema: bool = setting(
        False,
        _bool,
        example="false",
        doc="Drop and recreate schema public before restoring (staging only; refused on prod).",
        section=_MOVE,
    )
    rsync_source: str | None = setting(
        None,
        _rsync_source,
        example="backup@source:/srv/app/.data/",
        doc="rsync source of the assets (local path or remote host:path).",
        section=_MOVE,
    )
    rsync_delete: bool = setting(
        False,
        _bool,
        example="false",
        doc="Pass --delete to rsync (only when explicitly asked).",
        section=_MOVE,
    )
    rsync_rsh: str | None = setting(
        None,
        _single_line,
        example="'ssh -p 2222'",
        doc='Remote shell for a host:path rsync source, e.g. "ssh -p 2222" (default: plain ssh).',
        section=_MOVE,
    )
    migrate_redis: bool = setting(
        False,
        _bool,
        example="false",
        doc="Migrate Redis too (off unless explicitly asked).",
        section=_MOVE,
    )
    work_dir: str | None = setting(
        None,
        _abs_path,
        example="/var/lib/turnout/work",
        doc="Fixed work directory so dumps and temporaries are kept for audit; "
        "None uses a temporary one.",
        section=_MOVE,
    )
    steps: tuple[str, ...] = setting(
        CUTOVER_STEPS,
        _steps,
        example="freeze,backup,migrate,up,health",
        doc="Cutover steps to run; the deploy fixes their order; a step not listed is skipped.",
        section=_CUTOVER,
    )
    freeze_services: tuple[str, ...] = setting(
        ("api", "worker"),
        _services,
        example="api,worker",
        doc="Compose services that write (stopped by freeze, started again by up).",
        section=_CUTOVER,
    )
    db_in_compose: bool = setting(
        False,
        _bool,
        example="true",
        doc="The database runs in compose: dump and restore run inside its container.",
        section=_CUTOVER,
    )
    migration_services: tuple[str, ...] = setting(
        (),
        _optional_services,
        example="prestart",
        doc="One-shot compose services (migrations, seeding); never started after a downgrade.",
        section=_CUTOVER,
    )
    db_connect: str = setting(
        "dsn",
        _one_of("dsn", "compose"),
        example="compose",
        doc="How to reach the app's database: dsn (from the host) or compose (db_service only).",
        section=_CUTOVER,
    )
    db_service: str = setting(
        "db",
        _service,
        example="db",
        doc="The compose service of the database (with db_in_compose or db_connect=compose).",
        section=_CUTOVER,
    )
    app_service: str = setting(
        "api",
        _service,
        example="api",
        doc="The compose service whose image runs the app's Python (Alembic).",
        section=_CUTOVER,
    )
    app_python: str = setting(
        "uv run python",
        _command,
        example="'uv run python'",
        doc="Python with the app's dependencies inside app_service (runs Alembic).",
        section=_CUTOVER,
    )
    src_dump: str | None = setting(
        None,
        _abs_path,
        example="/srv/backups/app.src.dump",
        doc="Dump to restore (restore-db; destructive, needs the release flag).",
        section=_CUTOVER,
    )
    src_assets: str | None = setting(
        None,
        _abs_path,
        example="/srv/backups/app.src.data.tar.gz",
        doc="Assets tarball to swap in (restore-assets; destructive, needs the release flag).",
        section=_CUTOVER,
    )
    sqlite_path: str | None = setting(
        None,
        _abs_path,
        example="/srv/app/data/app.db",
        doc="The app's SQLite file: backup copies it with the backup API instead of pg_dump.",
        section=_CUTOVER,
    )
    operator_name: str | None = setting(
        None,
        _single_line,
        example="ann",
        doc="Who runs the cutover, for run.json; None: $SUDO_USER or $USER of the control machine.",
        section=_CUTOVER,
    )
    app_hosts_group: str | None = setting(
        None,
        _group_name,
        example="prod_app",
        doc="Inventory group of the app hosts; None: every host is an app host.",
        section=_CUTOVER,
    )
    db_hosts_group: str | None = setting(
        None,
        _group_name,
        example="prod_db",
        doc="Inventory group of the host that runs backup and restore-db; None: every host.",
        section=_CUTOVER,
    )
    cutover_unchecked_tables: tuple[str, ...] = setting(
        (),
        _optional_tables,
        example="public.sessions",
        doc="Tables the app writes once up (sessions): no content digest after the cutover.",
        section=_CUTOVER,
    )
    rollback_run: str | None = setting(
        None,
        _timestamp,
        example="20240102T030405Z",
        doc="The cutover run (its timestamp) that rollback undoes; None: the latest.",
        section=_CUTOVER,
    )
    rollback_db: str = setting(
        "restore",
        _rollback_db,
        example="downgrade",
        doc="Rollback of the database: restore the baseline backup, alembic downgrade, or none.",
        section=_CUTOVER,
    )
    target_revision: str = setting(
        "head",
        _revision,
        example="0003",
        doc="The revision a schema release upgrades to (migrate runbook).",
        section=_RELEASE_SCHEMA,
    )
    dedupe: bool = setting(
        False,
        _bool,
        example="true",
        doc="Delete the rows that block unique_gate (rehearsed on a copy first; released only).",
        section=_RELEASE_SCHEMA,
    )
    rollback: str | None = setting(
        None,
        _rollback,
        example="-1",
        doc="Undo a schema release (released): -1 or <revision> (downgrade), restore (backup).",
        section=_RELEASE_SCHEMA,
    )
    prechecks: tuple[str, ...] = setting(
        (
            "meter_slots_unique=unique:meters(unit_id, kind, slot)",
            "active_admin=min_rows:users(role=admin, is_active=true)>=1",
            "no_duplicate_emails=duplicates:users(lower(email))",
        ),
        _prechecks,
        example="'active_admin=min_rows:users(role=admin)>=1'",
        doc="Read-only pre-checks, name=kind:table(...): unique, duplicates, min_rows (>=N).",
        section=_RELEASE_CHECKS,
    )
    precheck_limit: int = setting(
        20,
        _positive_int,
        example="20",
        doc="At most this many offending values (duplicate groups) per check in the reports.",
        section=_RELEASE_CHECKS,
    )
    precheck_timeout_ms: int = setting(
        5000,
        _positive_int,
        example="5000",
        doc="statement_timeout of the read-only pre-check and duplicates gate transaction.",
        section=_RELEASE_CHECKS,
    )
    unique_gate: str | None = setting(
        "uq_meter_unit_kind_slot=meters(unit_id, kind, slot)",
        _unique_gate,
        example="'uq_meter_unit_kind_slot=meters(unit_id, kind, slot)'",
        doc="Unique constraint a release adds, constraint=table(columns); empty or None: no gate.",
        section=_RELEASE_CHECKS,
    )
    dedupe_keep: str = setting(
        "lowest",
        _keep_rule,
        example="highest",
        doc="Which row of a duplicate group the dedupe keeps: the lowest or the highest id.",
        section=_RELEASE_CHECKS,
    )
    allow_unchecked_revisions: bool = setting(
        False,
        _bool,
        example="true",
        doc="Go on past a pending revision that is UNCHECKED (e.g. a data migration in Python).",
        section=_PENDING_REVISIONS,
    )
    pg_dsn_env: str = setting(
        "PG_DATABASE_URL",
        _env_name,
        example="PG_DATABASE_URL",
        doc="Variable (host env or server-side .env) with the DSN of the PostgreSQL to move to.",
        section=_SQLITE_COPY,
    )
    batch_size: int = setting(
        1000,
        _positive_int,
        example="1000",
        doc="Rows per batch of the copy; each batch commits with its checkpoint row.",
        section=_SQLITE_COPY,
    )
    checkpoint: str | None = setting(
        None,
        _abs_path,
        example="/srv/app/data/db_migrate_checkpoint.json",
        doc="Local JSON checkpoint (a cache of the target's); None: in the run's state directory.",
        section=_SQLITE_COPY,
    )
    copy_tables: tuple[str, ...] | None = setting(
        None,
        _tables,
        example="users,meters",
        doc="Tables to copy; None: every table of the SQLite file except alembic_version.",
        section=_SQLITE_COPY,
    )
    copy_jobs: int = setting(
        2,
        _positive_int,
        example="2",
        doc="Tables loaded at once, each on its own PostgreSQL connection.",
        section=_SQLITE_COPY,
    )
    copy_set_aside: bool = setting(
        True,
        _bool,
        example="false",
        doc="Drop secondary indexes and foreign keys for the load, recreate them after.",
        section=_SQLITE_COPY,
    )
    lossy: bool = setting(
        False,
        _bool,
        example="true",
        doc="Go on past values that cannot convert exactly; each one is counted in evidence.",
        section=_SQLITE_COPY,
    )
    copy_restart: bool = setting(
        False,
        _bool,
        example="true",
        doc="Discard the checkpoint and empty the copied tables first (destructive).",
        section=_SQLITE_COPY,
    )
    verify_sample: float | None = setting(
        None,
        _fraction,
        example="0.05",
        doc="Share of key ranges whose row hashes are compared; None: every row.",
        section=_SQLITE_COPY,
    )
    verify_max_keys: int = setting(
        20,
        _positive_int,
        example="20",
        doc="At most this many differing keys named per table in the verification report.",
        section=_SQLITE_COPY,
    )
    compare_log_table: str = setting(
        "db_compare_log",
        _text,
        example="db_compare_log",
        doc="The app's shadow-compare log table, counted by db_status when it exists.",
        section=_SQLITE_COPY,
    )
    compare_log_mismatch_column: str = setting(
        "matched",
        _text,
        example="matched",
        doc="Boolean column of the compare log, false for a read that differed (counted apart).",
        section=_SQLITE_COPY,
    )
    dual_write_failures_table: str = setting(
        "dual_write_failures",
        _text,
        example="dual_write_failures",
        doc="The app's dual-write failure table, counted by db_status when it exists.",
        section=_SQLITE_COPY,
    )
    phase: str | None = setting(
        None,
        _phase,
        example="shadow",
        doc="Phase db_phase.py puts the app in: shadow, dual, cutover or rollback.",
        section=_PHASES,
    )
    sqlite_url: str = setting(
        "sqlite:////app/.data/app.sqlite3",
        _single_line,
        example="sqlite:////app/.data/app.sqlite3",
        doc="The app's SQLite URL as its containers see it, written to .env by the phases.",
        section=_PHASES,
    )
    phase_services: tuple[str, ...] = setting(
        ("api", "worker"),
        _services,
        example="api,worker",
        doc="Compose services restarted after a phase's .env change.",
        section=_PHASES,
    )
    expected_unique: tuple[str, ...] = setting(
        ("uq_users_email",),
        _names,
        example="uq_users_email,uq_run_executions_run_key",
        doc="Unique constraints or unique indexes that must exist on the target at cutover.",
        section=_PHASES,
    )
    phase_require_verified_copy: bool = setting(
        True,
        _bool,
        example="true",
        doc="Leaving SQLite needs the copy complete, verified and the SQLite file unchanged since.",
        section=_PHASES,
    )
    rollback_budget_s: float = setting(
        60.0,
        _positive_number,
        example="60",
        doc="The rollback phase must reach a healthy app within this many seconds.",
        section=_PHASES,
    )
    extra_data_keys: tuple[str, ...] = setting(
        (),
        _data_key_names,
        example="ticket,owner",
        doc="Host data keys of your own that are not settings (otherwise refused as typos).",
        section=_DATA_KEYS,
    )
    i_know_what_im_doing: bool = setting(
        False,
        _release_flag,
        example="true",
        doc="Release flag for destructive steps; set it for one run only: "
        "--data i_know_what_im_doing=true.",
        section=_RELEASE,
    )

    @property
    def env_file_path(self) -> str:
        """The env file given to compose: ``env_file`` or ``<app_root>/.env``."""
        return self.env_file or posixpath.join(self.app_root, ".env")

    @property
    def compose_file_path(self) -> str:
        """The compose file: ``compose_file`` or ``<app_root>/docker-compose.yml``."""
        return self.compose_file or posixpath.join(self.app_root, "docker-compose.yml")

    @property
    def db_tools_in_compose(self) -> bool:
        """libpq tools run inside ``db_service``: ``db_in_compose``, or a database reachable only
        inside compose (``db_connect=compose``)."""
        return self.db_in_compose or self.db_connect == "compose"

    @property
    def health_expect_map(self) -> dict[str, str]:
        """``health_expect`` as a dict: ``("db_backend=postgresql",)`` -> ``{"db_backend": …}``."""
        return dict(item.split("=", 1) for item in self.health_expect)


DEFAULTS: dict[str, object] = {each.name: each.default for each in fields(Settings)}


# Reading host data.

_MISSING = object()

# Data keys pyinfra's connectors read or set without declaring them in ``data_meta``/``data_cls``:
# the chroot connector's ``chroot_directory`` and the dockerssh/podmanssh connectors'
# ``docker_image`` and ``docker_container_id`` (pyinfra/connectors/chroot.py, dockerssh.py).
_UNDECLARED_CONNECTOR_KEYS = ("chroot_directory", "docker_image", "docker_container_id")


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


def data_keys(data: object) -> list[object]:
    """
    Every key ``data`` holds: a Mapping's keys, all layers of a pyinfra ``HostData`` (override,
    host, group, global and ``@deploy`` data), or an attribute object's attributes.

    Example:

    .. code:: python

        from pyinfra.api.host import HostData
        data_keys(HostData("h", {"dump_jobs": 4}, {"ssh_port": 22}))  # ['ssh_port', 'dump_jobs']
    """
    if isinstance(data, Mapping):
        return list(data)
    if isinstance(data, HostData):
        return list(data.dict())
    return list(vars(data)) if hasattr(data, "__dict__") else []


@cache
def pyinfra_data_keys() -> frozenset[str]:
    """
    pyinfra's own data keys: every global argument (``_sudo``, ``_env``…) and the data keys of every
    installed connector (``ssh_port``, ``docker_identifier``…, from their ``data_meta`` and
    ``data_cls``), plus the few connector keys pyinfra does not declare.

    Example:

    .. code:: python

        {"ssh_port", "_sudo"} <= pyinfra_data_keys()  # True
    """
    keys = {name for name, _ in all_global_arguments()}
    for connector in get_all_connectors().values():
        keys.update(getattr(connector, "data_meta", {}))
        keys.update(get_type_hints(getattr(connector, "data_cls", dict)))
    keys.update(_UNDECLARED_CONNECTOR_KEYS)
    return frozenset(keys)


def known_data_keys(extra: Iterable[str] = ()) -> frozenset[str]:
    """
    Every data key ``load_settings`` accepts: turnout's settings, pyinfra's own keys and ``extra``.

    Example:

    .. code:: python

        "ticket" in known_data_keys(["ticket"])  # True
    """
    return frozenset(DEFAULTS) | pyinfra_data_keys() | frozenset(extra)


def _extra_keys(data: object) -> tuple[str, ...]:
    """``extra_data_keys`` from ``data``; none when unset or invalid (its problem is reported)."""
    raw = data_value(data, "extra_data_keys", None)
    try:
        return _data_key_names(raw) if raw is not None else ()
    except _Invalid:
        return ()


def unknown_keys(data: object) -> list[object]:
    """
    The keys of ``data`` that are neither a setting, nor pyinfra's own, nor in ``extra_data_keys``.

    + data: ``host.data`` or any Mapping

    Example:

    .. code:: python

        unknown_keys({"rsync_delte": True, "ssh_port": 22})  # ['rsync_delte']
        unknown_keys({"ticket": "T-1", "extra_data_keys": ("ticket",)})  # []
    """
    known = known_data_keys(_extra_keys(data))
    return [key for key in data_keys(data) if key not in known]


# Loading.


def load_settings(data: object) -> Settings:
    """
    Read and validate turnout's settings from host data; ``SettingsError`` lists all problems.

    Missing keys take their default; keys that are neither settings, pyinfra's own data nor listed
    in ``extra_data_keys`` are refused (with a "did you mean"). List settings accept a list/tuple
    of strings or a comma-separated string (``--data tables=users,meters``).

    + data: ``host.data`` or any Mapping

    Example:

    .. code:: python

        from pyinfra import host
        settings = load_settings(host.data)
        load_settings({"tables": "public.users,meters"}).tables  # ('public.users', 'meters')
    """
    values, problems = _read_settings(data)
    unknown = unknown_keys(data)
    if unknown:
        known = sorted(known_data_keys(_extra_keys(data)))
        problems += [_unknown_problem(key, known) for key in unknown]
    if problems:
        raise SettingsError("\n".join(problems))
    return Settings(**values)


def _read_settings(data: object) -> tuple[dict[str, Any], list[str]]:
    """The valid settings ``data`` sets, and one problem line per invalid one."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for each in fields(Settings):
        raw = data_value(data, each.name, _MISSING)
        if raw is _MISSING:
            continue
        if raw is None and each.default is None:
            values[each.name] = None
            continue
        info = setting_info(each)
        try:
            values[each.name] = info.validate(raw)
        except _Invalid as invalid:
            problems.append(_problem(each.name, raw, invalid.expected, info.example))
    return values, problems


def _problem(key: str, value: object, expected: str, example: str) -> str:
    return (
        f"setting {key} must be {expected}, got {_show(value)}; "
        f"set it in group_data/ or with --data {key}={example}"
    )


def _unknown_problem(key: object, known: list[str]) -> str:
    """One line for an unknown key, suggesting the closest known key if there is one."""
    shown = key if isinstance(key, str) and key.isidentifier() else _show(key)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=_SUGGEST_CUTOFF)
    if close:
        return (
            f"unknown setting {shown} (did you mean {close[0]}?); "
            "check the spelling in group_data/ or --data"
        )
    return (
        f"unknown setting {shown} (no setting has a similar name); check the spelling in "
        "group_data/ or --data: group_data/all.py lists every setting, and a key of your own "
        "belongs in extra_data_keys"
    )


def _show(value: object) -> str:
    """repr of a bad value, redacted and truncated."""
    shown = redact(repr(value))
    if len(shown) > _SHOWN_VALUE_MAX:
        shown = shown[: _SHOWN_VALUE_MAX - 1] + "…"
    return shown


# group_data/all.py, generated.

_GROUP_DATA_DOC = '''"""
turnout's documented defaults, loaded by pyinfra for every host.

Generated from the declarations in ``turnout/settings.py``; do not edit it by hand: change the
declaration there, then run ``python -m turnout.settings --group-data > group_data/all.py`` (a unit
test checks this file is current). Override the defaults per environment in
``group_data/<inventory name>.py`` or for one run with ``--data key=value`` (lists:
``--data tables=public.users,public.meters``). Every value is checked by
``turnout.settings.load_settings``, which also refuses keys that are neither settings nor pyinfra's
own (``ssh_*``, ``_sudo``…) unless listed in ``extra_data_keys``. No secret ever lives here: DSNs
are read on the host from the environment variables named below or from the server-side ``.env``.
"""
'''


def render_group_data() -> str:
    """
    The text of ``group_data/all.py``: every setting with its doc and default, by section.

    Example:

    .. code:: python

        "\\ndump_jobs = 2\\n" in render_group_data()  # True
    """
    lines = [_GROUP_DATA_DOC.rstrip("\n")]
    section = None
    for each in fields(Settings):
        info = setting_info(each)
        if info.section != section:
            section = info.section
            lines += ["", f"# --- {section} ---"]
        lines += [f"# {info.doc}", _assignment(each.name, each.default)]
    return "\n".join(lines) + "\n"


def _assignment(name: str, value: object) -> str:
    """``name = value`` as ruff formats it: one line, or one tuple item per line if too long."""
    line = f"{name} = {_literal(value)}"
    if len(line) <= _LINE_MAX or not isinstance(value, tuple):
        return line
    items = "".join(f"    {_literal(item)},\n" for item in value)
    return f"{name} = (\n{items})"


def _literal(value: object) -> str:
    """A Python literal for a default, strings in double quotes."""
    if isinstance(value, str):
        text = repr(value)
        return f'"{text[1:-1]}"' if text.startswith("'") and '"' not in value else text
    if isinstance(value, tuple):
        items = [_literal(item) for item in value]
        return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    return repr(value)


def main(argv: list[str] | None = None) -> int:
    """
    ``python -m turnout.settings --group-data``: print ``group_data/all.py``.

    Example:

    .. code:: shell

        python -m turnout.settings --group-data > group_data/all.py
    """
    parser = argparse.ArgumentParser(
        prog="python -m turnout.settings",
        description="Print files generated from turnout's setting declarations.",
    )
    parser.add_argument(
        "--group-data",
        action="store_true",
        help="print group_data/all.py (the documented defaults)",
    )
    args = parser.parse_args(argv)
    if not args.group_data:
        parser.error("nothing to print: pass --group-data")
    sys.stdout.write(render_group_data())
    return 0


if __name__ == "__main__":
    sys.exit(main())
