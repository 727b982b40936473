"""Facts about the app's server-side ``.env`` for the phases of the SQLite → PostgreSQL move
(SPEC S3.5): what rewriting some of its keys would change, redacted. Answered by the host-side
program (``turnout/hostside/envedit.py``), which changes nothing here.
"""

from pyinfra.api import StringCommand

from turnout.facts.hostside import HostsideFact
from turnout.remote import hostside_command


class EnvPhasePlan(HostsideFact):
    """
    What setting ``values`` (``{key: compose template}``, e.g. ``${PG_DATABASE_URL}``) in the
    ``.env`` at ``env_file`` would change: the keys whose lines change, the current and resulting
    values (redacted), a unified diff of the file with every secret redacted, notes (a key moved
    below the variable it refers to, a key defined twice) and the file's mode and owner. A value
    referring to a variable the file does not define answers ``ok: false`` saying which.

    .. code:: python

        from turnout.facts.envphase import EnvPhasePlan
        plan = host.get_fact(
            EnvPhasePlan, env_file="/srv/app/.env",
            values={"DATABASE_URL": "${PG_DATABASE_URL}", "DB_WRITE_MODE": "single"},
        )
        # {"ok": True, "changed_keys": ["DATABASE_URL"],
        #  "current": {"DATABASE_URL": "sqlite:////app/.data/app.sqlite3", "DB_WRITE_MODE": None},
        #  "after": {"DATABASE_URL": "postgresql+psycopg://app:***@db:5432/app", …},
        #  "diff": "--- /srv/app/.env (now)\\n+++ /srv/app/.env (after)\\n@@ …", "notes": [],
        #  "mode": "0600", "owner": "root", "group": "root", "uid": 0, "gid": 0}
    """

    def command(self, env_file: str, values: dict[str, str]) -> StringCommand:
        return hostside_command("env_phase_plan", {"env_file": env_file, "values": values})
