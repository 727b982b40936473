"""
Settings for the hosts of ``inventories/staging.py`` (the group named after the inventory file).

Staging rehearses the production move (SPEC S1). The defaults in ``group_data/all.py`` already
fit it, so ``evidence_root`` and ``base_url`` (http://127.0.0.1:18080) are left unchanged.
Staging-only switches such as ``drop_schema`` stay off here; turn one on for a single run with
``--data drop_schema=true`` after reading the ``--dry`` plan.
"""

# Staging tolerates planner estimates for tables whose exact count times out.
require_exact_counts = False
