#!/usr/bin/env bash
# The main job on the local default: install what is missing, bring the real stack up (PostgreSQL
# clusters, two SSH hosts, Docker + Compose v2), and run a real pyinfra deploy over @ssh against
# both SSH hosts, then show the app's health as it answers through compose.
# The stack stays up afterwards; `scripts/stack down` removes it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
scripts/stack up
export PATH="$PWD/.venv/bin:$PATH"
pyinfra -y tests/stack/inventory.py deploys/app_up.py
for host in staging prod; do
  url=$(.venv/bin/python -c "import json,sys; print(json.load(open('.stack/stack.json'))['hosts'][sys.argv[1]]['base_url'])" "$host")
  printf '%s health: ' "$host"
  .venv/bin/python -c 'import httpx,sys; print(httpx.get(sys.argv[1] + "/api/v1/health", timeout=10).text)' "$url"
done
