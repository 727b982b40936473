#!/usr/bin/env bash
# The main job on the local default: install what is missing, bring the real stack up (PostgreSQL
# clusters, two SSH hosts, Docker + Compose v2), seed the source side, bring the apps up over @ssh
# on both SSH hosts, then the staging rehearsal: its --dry plan, and the rehearsal itself; then the
# production cutover of the stack's prod host from the rehearsed staging (a dump and an assets
# tarball): its plan, the released run, and the testinfra checks after it.
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

echo "== the production cutover of the prod host from the rehearsed staging (deploys/cutover.py)"
artifacts=.stack/artifacts
mkdir -p "$artifacts"
dump=$(ls -t .stack/hosts/staging/evidence/dry_run/*/src_artifacts/source.dump | head -n 1)
cp "$dump" "$artifacts/app.src.dump"
staging_assets=$(.venv/bin/python -c "import json; print(json.load(open('.stack/stack.json'))['hosts']['staging']['assets_dir'])")
tar -C "$staging_assets" -czf "$artifacts/app.src.data.tar.gz" .
# smoke-core logs in as the stack's admin; the password stays in this environment only.
export TURNOUT_SMOKE_EMAIL=admin@example.test
TURNOUT_SMOKE_PASSWORD=$(cat .stack/secrets/refapp_admin)
export TURNOUT_SMOKE_PASSWORD
night=(--limit stack-prod --data "src_dump=$PWD/$artifacts/app.src.dump"
       --data "src_assets=$PWD/$artifacts/app.src.data.tar.gz" --data i_know_what_im_doing=true)
pyinfra "$inventory" deploys/cutover.py "${night[@]}" --dry
pyinfra -y "$inventory" deploys/cutover.py "${night[@]}"

echo "== testinfra checks after the cutover (tests/cutover)"
.venv/bin/pytest tests/cutover --inventory "$inventory" --limit stack-prod -q -p no:cacheprovider
