"""Benchmark deploy: only the mirror step of ``deploys/dry_run.py``, timed by ``scripts/bench.py``.

    pyinfra -y tests/stack/inventory.py scripts/bench_deploys/mirror_only.py --limit stack-staging \
        --data evidence_timestamp=<fresh>

The ``assets.mirror(...)`` call is copied from ``deploys/dry_run.py``, and the names it uses
(``settings``, ``python``, ``run_dir``) are computed the same way, so the two calls read the same;
``scripts/bench.py`` compares them (keyword by keyword) before timing and reports any difference.
The log goes to ``<evidence_root>/bench_mirror/<timestamp>/logs/``, which the benchmark creates
beforehand.
"""

from pyinfra import host, state

from turnout.evidence import evidence_dir, run_timestamp
from turnout.operations import assets
from turnout.settings import load_settings

settings = load_settings(host.data)
python = settings.hostside_python
run_dir = evidence_dir(settings.evidence_root, "bench_mirror", run_timestamp(settings, state))

# Copied from deploys/dry_run.py: keep in sync (scripts/bench.py checks).
if settings.rsync_source:
    assets.mirror(
        name="Mirror the assets",
        source=settings.rsync_source,
        dest=settings.assets_dir,
        delete=settings.rsync_delete,
        rsh=settings.rsync_rsh,
        log_path=f"{run_dir}/logs/rsync.log",
        python=python,
    )
