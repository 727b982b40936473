"""A database as a host knows it: the variable holding its DSN, and where that variable is set.

The DSN itself never leaves the host: facts and operations pass this handle, and the host-side
program reads the DSN from its process environment or the server-side ``.env`` (compose's rules).

    from turnout.database import Database
    staging_db = Database("DATABASE_URL", env_file="/srv/app/.env")
    db.restore(name="Restore into staging", dump="/srv/dumps/app.dump", into=staging_db, marker=…)
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Database:
    """
    The database whose DSN is in the environment variable ``dsn_env`` on the host (or in
    ``env_file``, the server-side ``.env``). Hashable, printable, holds no secret.

    .. code:: python

        Database("SOURCE_DATABASE_URL", "/srv/app/.env").params()
        # {"dsn_env": "SOURCE_DATABASE_URL", "env_file": "/srv/app/.env"}
    """

    dsn_env: str
    env_file: str | None = None
    # ``keyword=VARIABLE`` items: the DSN is built on the host from these variables (the DSN in
    # parts, as ``POSTGRES_SERVER``/``POSTGRES_PASSWORD``/…); ``dsn_env`` then only names it.
    parts: tuple[str, ...] = ()
    # argv prefix running a program inside the database's compose service: the database is
    # reachable only inside compose, every connection goes through it (``hostside/tunnel.py``).
    via: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        """The host-side program's parameters naming this database.

        >>> Database("DATABASE_URL", parts=("host=PGHOST",)).params()["dsn_parts"]
        {'host': 'PGHOST'}
        """
        params: dict[str, Any] = {"dsn_env": self.dsn_env, "env_file": self.env_file}
        if self.parts:
            params["dsn_parts"] = dict(item.split("=", 1) for item in self.parts)
        if self.via:
            params["db_via"] = list(self.via)
        return params

    def __str__(self) -> str:
        return self.dsn_env


@dataclass(frozen=True)
class SqliteDatabase:
    """
    An app's SQLite file on the host (setting ``sqlite_path``): the read-only checks that work on
    PostgreSQL through ``Database`` take it too.

    .. code:: python

        SqliteDatabase("/srv/app/data/app.db").params()  # {"sqlite_path": "/srv/app/data/app.db"}
    """

    path: str

    def params(self) -> dict[str, str]:
        """The host-side program's parameters naming this file."""
        return {"sqlite_path": self.path}

    def __str__(self) -> str:
        return f"SQLite {self.path}"


def app_database(settings: Any) -> Database:
    """The app's own database as the settings describe it (``target_dsn_env`` or
    ``target_dsn_parts``; with ``db_connect=compose`` reached through ``db_service``)."""
    via: tuple[str, ...] = ()
    if settings.db_connect == "compose":
        from turnout.facts.compose import compose_exec_argv

        via = tuple(
            compose_exec_argv(
                settings.db_service,
                settings.env_file_path,
                settings.compose_file_path,
                settings.compose_project,
                settings.docker_bin,
            )
        )
    return Database(
        settings.target_dsn_env, settings.env_file_path, parts=settings.target_dsn_parts, via=via
    )


def source_database(settings: Any) -> Database:
    """The database a rehearsal copies (``source_dsn_env`` or ``source_dsn_parts``), reached
    from the host with its DSN."""
    return Database(
        settings.source_dsn_env, settings.env_file_path, parts=settings.source_dsn_parts
    )


def default_env_file(data: Any) -> str:
    """The host's server-side ``.env``: setting ``env_file``, else ``<app_root>/.env``."""
    env_file = (
        getattr(data, "env_file", None) if not isinstance(data, dict) else data.get("env_file")
    )
    if env_file:
        return str(env_file)
    app_root = (
        getattr(data, "app_root", None) if not isinstance(data, dict) else data.get("app_root")
    )
    return posixpath.join(str(app_root or "/srv/app"), ".env")


def as_database(value: Database | SqliteDatabase | str) -> Database | SqliteDatabase:
    """A ``Database`` as given, or the one named by a variable name (``"DATABASE_URL"``) read from
    the current host's ``.env`` (``default_env_file``): so a fact can be asked from the command
    line, ``pyinfra inventory.py fact turnout.facts.postgres.PostgresServer database=DATABASE_URL``.
    """
    if isinstance(value, Database | SqliteDatabase):
        return value
    from pyinfra import host

    return Database(str(value), default_env_file(host.data))
