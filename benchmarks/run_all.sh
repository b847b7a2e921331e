#!/usr/bin/env bash
# Rerun every benchmark in BENCHMARKS.md with the arguments used there. Each writes its markdown
# table to benchmarks/results/NAME.md and its raw numbers to benchmarks/results/NAME.json.
# Run it on a quiet machine: the timings are ratios measured in the same run, but anything else
# running moves them.
# Usage: benchmarks/run_all.sh [overhead] [quality] [routing] [routing-tile32] [fps] [fps-espcn] [batch]
#        [video] [video-predictors] [video-still] [delivery] [delivery-long]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
VIDSR=${VIDSR:-.venv/bin/vidsr}
mkdir -p benchmarks/results
declare -A ARGS=(
  [overhead]="--repeats 3 --seconds 4 --network plain"
  [quality]="--scales 2 3 4"
  [routing]="--scales 2 4"
  [routing-tile32]="--scales 2 --models arm-espcn arm-plain --tile 32"
  [fps]="--seconds 4 --targets 1 2 5 10 30 60 --repeats 3"
  [fps-espcn]="--seconds 4 --targets 10 30 60 --model arm-espcn --repeats 3"
  [batch]="--clips 8 --seconds 4 --long-seconds 24 --segment-seconds 6"
  [video]="--seconds 2 --models arm-espcn arm-plain --parts targets"
  [video-predictors]="--seconds 2 --parts predictors"
  [video-still]="--seconds 2 --parts still"
  [delivery]="--frames 12 --plot benchmarks/results/delivery.png"
  [delivery-long]="--frames 48 --scales 2 --codecs libx264 --hcd-qp 26"
)
for result in "${@:-overhead quality routing routing-tile32 fps fps-espcn batch video video-predictors video-still delivery delivery-long}"; do
  for name in $result; do
    which=${name%%-*}  # fps-espcn is the fps bench with other arguments (video-predictors, video-still: video; delivery-long: delivery)
    echo "== vidsr bench $which ${ARGS[$name]}"
    # shellcheck disable=SC2086
    "$VIDSR" bench "$which" ${ARGS[$name]} --json "benchmarks/results/$name.json" | tee "benchmarks/results/$name.md"
  done
done
