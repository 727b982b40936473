#!/usr/bin/env bash
# The side-by-side benchmark: turnout's staging rehearsal (and its dump, mirror, no-op rerun and
# validation) beside the raw tools on the same data, in interleaved rounds, on its own stack in
# .bench/stack; results in .bench/latest.{txt,json}. See scripts/bench.py for the options, e.g.
#   scripts/bench.sh --rows 20000 --files 500 --rounds 1      # a quick look
#   scripts/bench.sh --compare 58f0abe                        # before/after against a revision
# `scripts/bench.sh copy [...]` runs the SQLite -> PostgreSQL copy benchmark instead (turnout's
# copy beside pgloader and psql \copy, on a private cluster in .bench/copy-stack; results in
# .bench/copy-latest.{txt,json}; see scripts/bench_copy.py), e.g.
#   scripts/bench.sh copy --rows 100000 --rounds 1            # a quick look
# `scripts/bench.sh rollback [...]` times the SQLite -> PostgreSQL rollback phase (db_phase.py)
# beside the raw .env edit + compose up (scripts/bench_rollback.py; .bench/rollback-latest.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${1:-}" = copy ]; then
  shift
  exec .venv/bin/python scripts/bench_copy.py "$@"
fi
if [ "${1:-}" = rollback ]; then
  shift
  exec .venv/bin/python scripts/bench_rollback.py "$@"
fi
exec .venv/bin/python scripts/bench.py "$@"
