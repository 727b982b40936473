"""How far the SQLite → PostgreSQL move is (SPEC S3.4; the seed's ``db:status``): per table the
rows copied of the total, the last key, and while a copy runs its rate and ETA; then the counts
of the app's shadow-compare log and dual-write failures in the target when those tables exist.
Reads only; run it beside a running copy to watch it.

    pyinfra inventories/prod.py deploys/db_status.py
"""

from pyinfra import host

from turnout import sqlite_pg
from turnout.operations import pgload
from turnout.settings import load_settings

sqlite_pg.install_failures()
settings = load_settings(host.data)
paths = sqlite_pg.state_paths(settings)

pgload.status(
    name="Copy status",
    target=sqlite_pg.target_of(settings),
    progress_path=paths["progress"],
    checkpoint=paths["checkpoint"],
    compare_log_table=settings.compare_log_table,
    dual_write_failures_table=settings.dual_write_failures_table,
    compare_log_mismatch_column=settings.compare_log_mismatch_column,
)
