#!/usr/bin/env bash
# The whole test suite: install what is missing, lint, then unit and integration tests against
# the real stack (brought up and down by the tests themselves, in .stack-test/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
