"""Test deploy: ``db.dump`` then ``db.restore`` with parameters from ``--data dbt_*=…``
(``dbt_dest`` unset skips the dump; ``dbt_marker`` unset skips the restore). Run by
tests/integration/test_db_ops.py; the DSNs live in the env file ``dbt_env_file`` on the host."""

from pyinfra import host

from turnout.database import Database
from turnout.operations import db

data = host.data

if data.get("dbt_dest"):
    db.dump(
        name="Dump the test database",
        source=Database(data.get("dbt_source_env"), data.get("dbt_env_file")),
        dest=data.get("dbt_dest"),
        format=data.get("dbt_format") or "custom",
        jobs=2,
        log_path=data.get("dbt_log"),
        timeout_s=120,
    )

if data.get("dbt_marker"):
    db.restore(
        name="Restore the test database",
        dump=data.get("dbt_dump") or data.get("dbt_dest"),
        into=Database(data.get("dbt_target_env"), data.get("dbt_env_file")),
        marker=data.get("dbt_marker"),
        drop_schema=data.get("dbt_drop_schema") is True,
        log_path=data.get("dbt_log"),
        timeout_s=120,
    )
