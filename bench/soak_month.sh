#!/usr/bin/env bash
# The simulated month as a soak campaign: tests/integration/test_simulated_month.py over
# 35 simulated days (the plans' schedules and retention: full daily 02:00 keep 30 d,
# binlog hourly keep 7 d, a model checked every 15 min keep 5) instead of CI's 2.
# Prints the figures (docs/benchmarks.md "A simulated month") as JSON.
#   bench/soak_month.sh [DAYS]      (default 35; needs scripts/bootstrap.sh --test)
set -euo pipefail
cd "$(dirname "$0")/.."
days=${1:-35}
report=$(mktemp --suffix=.json)
trap 'rm -f "$report"' EXIT
BACKUPCTL_SIM_DAYS=$days BACKUPCTL_SIM_REPORT=$report \
    .venv/bin/pytest -q tests/integration/test_simulated_month.py
cat "$report"
