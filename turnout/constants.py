"""
The enumerations turnout's settings validate, defined once.

Standard library only (nothing at all, in fact): this module is shipped to hosts inside the
host-side program (``turnout/remote.py``), which has no pyinfra. ``turnout.settings`` re-exports
what is here.

Example:

.. code:: python

    from turnout.constants import DUMP_FORMATS
    "directory" in DUMP_FORMATS  # True
"""

# pg_dump/pg_restore formats turnout writes and reads (setting ``dump_format``).
DUMP_FORMATS = ("custom", "directory")

# When the restore runs (setting ``restore``): only for a dump not yet restored into the target
# (its sha256 differs from the restore marker's), or every time (heals a drifted staging).
RESTORE_POLICIES = ("if_new_dump", "always")

# The production cutover's steps (setting ``steps``), in the only order the deploy runs them
# (SPEC S0.2): a list given in another order runs in this one.
CUTOVER_STEPS = (
    "freeze",
    "backup",
    "restore-assets",
    "restore-db",
    "migrate",
    "up",
    "health",
    "smoke",
)

# How rollback undoes the database (setting ``rollback_db``): restore the cutover's baseline
# backup, ``alembic downgrade`` to the revision recorded before, or leave the database alone.
ROLLBACK_DB_MODES = ("restore", "downgrade", "none")

# The phases of the SQLite → PostgreSQL move (setting ``phase``, SPEC S3.5), in the seed's order;
# ``turnout/phases.py`` says what each writes to the server-side ``.env``.
PHASES = ("shadow", "dual", "cutover", "rollback")
