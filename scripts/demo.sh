#!/usr/bin/env bash
# The main job on the local default: install what is missing, bring the real stack up (PostgreSQL
# clusters, two SSH hosts, Docker + Compose v2), seed the source side, bring the apps up over @ssh
# on both SSH hosts, then the staging rehearsal: its --dry plan, and the rehearsal itself.
# The stack stays up afterwards; `scripts/stack down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
scripts/stack up
scripts/stack seed "${TURNOUT_DEMO_ROWS:-200}"
export PATH="$PWD/.venv/bin:$PATH"
inventory=tests/stack/inventory.py

echo "== the apps, over @ssh on both hosts (deploys/app_up.py)"
pyinfra -y "$inventory" deploys/app_up.py
for host in staging prod; do
  url=$(.venv/bin/python -c "import json,sys; print(json.load(open('.stack/stack.json'))['hosts'][sys.argv[1]]['base_url'])" "$host")
  printf '%s health: ' "$host"
  .venv/bin/python -c 'import httpx,sys; print(httpx.get(sys.argv[1] + "/api/v1/health", timeout=10).text)' "$url"
done

echo "== the staging rehearsal: the plan (--dry), then the run (deploys/dry_run.py)"
pyinfra "$inventory" deploys/dry_run.py --limit stack-staging --dry
pyinfra -y "$inventory" deploys/dry_run.py --limit stack-staging
