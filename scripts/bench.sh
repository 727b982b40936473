#!/usr/bin/env bash
# The side-by-side benchmark: turnout's staging rehearsal (and its dump, mirror, no-op rerun and
# validation) beside the raw tools on the same data, in interleaved rounds, on its own stack in
# .bench/stack; results in .bench/latest.{txt,json}. See scripts/bench.py for the options, e.g.
#   scripts/bench.sh --rows 20000 --files 500 --rounds 1      # a quick look
#   scripts/bench.sh --compare 58f0abe                        # before/after against a revision
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/bench.py "$@"
