#!/usr/bin/env bash
# The tests marked `slow` (deselected in CI, which runs -m "not slow"): run them all, with the
# project's virtual environment, from the repository root, and print pytest's summary and the
# slowest tests. Record the summary line in benchmarks/RESULTS.md.
#
#   benchmarks/slow_tests.sh              # every slow test (minutes on a 2-core CPU)
#   benchmarks/slow_tests.sh -k reproduce # extra pytest arguments are passed on
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
[ -x "$python" ] || python=python3
echo "slow tests: $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
exec "$python" -m pytest -m slow -q -rA --durations=5 "$@"
