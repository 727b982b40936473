"""Benchmark deploy: only the dump step of ``deploys/dry_run.py``, timed by ``scripts/bench.py``.

    pyinfra -y tests/stack/inventory.py scripts/bench_deploys/dump_only.py --limit stack-staging \
        --data evidence_timestamp=<fresh>

The ``db.dump(...)`` call is copied from ``deploys/dry_run.py``, and the names it uses (``settings``,
``env_file``, ``python``, ``run_dir``, ``dump_file``) are computed the same way, so the two calls read
the same; ``scripts/bench.py`` compares them (keyword by keyword) before timing and reports any
difference. The evidence goes to ``<evidence_root>/bench_dump/<timestamp>/``, whose ``logs/`` and
``src_artifacts/`` the benchmark creates beforehand (dry_run.py's evidence step is not timed here).
"""

from pyinfra import host, state

from turnout.evidence import evidence_dir, run_timestamp
from turnout.operations import db
from turnout.settings import load_settings

settings = load_settings(host.data)
python = settings.hostside_python
env_file = settings.env_file_path
run_dir = evidence_dir(settings.evidence_root, "bench_dump", run_timestamp(settings, state))
artifacts = settings.work_dir or f"{run_dir}/src_artifacts"
suffix = "dump" if settings.dump_format == "custom" else "dir"
dump_file = f"{artifacts}/source.{suffix}"

# Copied from deploys/dry_run.py: keep in sync (scripts/bench.py checks).
db.dump(
    name="Dump the source database",
    dsn_env=settings.source_dsn_env,
    env_file=env_file,
    dest=dump_file,
    format=settings.dump_format,
    jobs=settings.dump_jobs,
    log_path=f"{run_dir}/logs/pg_dump.log",
    python=python,
)
