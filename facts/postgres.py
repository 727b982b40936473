"""Facts about PostgreSQL servers, observed on the host with the DSN the host holds.

The DSN never leaves the host: facts name the environment variable that holds it and the
server-side ``.env`` file to read it from.
"""

from pyinfra.api import StringCommand

from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


class PostgresServer(HostsideFact):
    """
    Connects with the DSN in ``dsn_env`` and describes the server.

    .. code:: python

        from turnout.facts.postgres import PostgresServer
        server = host.get_fact(
            PostgresServer, dsn_env="DATABASE_URL", env_file="/srv/app/.env",
            python="python3",
        )
        # {"ok": True, "server_version": "15.18 …", "database": "app", "user": "app",
        #  "host": "127.0.0.1", "port": 5432}   or   {"ok": False, "error": "…"}
    """

    def command(
        self, dsn_env: str, env_file: str | None = None, python: str = "python3"
    ) -> StringCommand:
        params = {"dsn_env": dsn_env, "env_file": env_file}
        return hostside_command("postgres_server", params, python=python)
