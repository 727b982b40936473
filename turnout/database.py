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

    def params(self) -> dict[str, str | None]:
        """The host-side program's parameters naming this database."""
        return {"dsn_env": self.dsn_env, "env_file": self.env_file}

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
