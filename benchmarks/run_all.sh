#!/usr/bin/env bash
# Rerun every benchmark in BENCHMARKS.md, with the arguments used there. Each writes its markdown
# table to benchmarks/results/NAME.md and its raw numbers to benchmarks/results/NAME.json.
# Run it on a quiet machine: the timings are ratios measured in the same run, but anything else
# running (training, a browser) moves them.
# Usage: benchmarks/run_all.sh [pipeline] [quality] [routing] [fps]   (default: all four)
set -euo pipefail
cd "$(dirname "$0")/.."
VIDSR=${VIDSR:-.venv/bin/vidsr}
mkdir -p benchmarks/results
declare -A ARGS=(
  [pipeline]="--repeats 3 --seconds 4 --network plain"
  [quality]="--scales 2 4"
  [routing]="--scales 2 4"
  [fps]="--seconds 4 --targets 1 2 5 10 30 60"
)
for name in "${@:-pipeline quality routing fps}"; do
  for which in $name; do
    echo "== vidsr bench $which ${ARGS[$which]}"
    # shellcheck disable=SC2086
    "$VIDSR" bench "$which" ${ARGS[$which]} --json "benchmarks/results/$which.json" | tee "benchmarks/results/$which.md"
  done
done
