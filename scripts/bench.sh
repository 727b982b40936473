#!/usr/bin/env bash
# Benchmarks (the tests marked slow): validation throughput on a 1,000,000-row database.
# Results are printed and kept in .bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -m slow -s -q tests/integration/test_bench.py "$@"
