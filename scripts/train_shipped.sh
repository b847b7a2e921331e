#!/usr/bin/env bash
# The exact training runs behind the weights in vidsr/weights/ (2-core CPU, torch fp32).
# Each run resumes from runs/<name>/checkpoint.pt if interrupted and is skipped once finished;
# a finished run is published into vidsr/weights/ (manifest updated with sha256 and val PSNR).
# What really ran for the shipped ARM/PCSR weights, to fit the CPU time we had (more iterations
# train better nets): the ARM runs started at 16000/12000 iterations and were cut short with
# --extend (a new cosine segment from step 1000/400, peak lr 1e-3). ARM x2 then diverged between
# steps 2000 and 3000 (val PSNR fell below bicubic), so it was restarted from its step-1800
# checkpoint with a segment to 3300 at peak lr 5e-4 (the line below). A fresh run of these lines
# gives one cosine schedule instead: close to, not bit-identical with, the shipped weights.
# Usage: scripts/train_shipped.sh [run-name ...]   (default: all, in this order)
set -euo pipefail
cd "$(dirname "$0")/.."
VIDSR=${VIDSR:-.venv/bin/vidsr}
THREADS=${THREADS:-2}

run() {  # run NAME ARGS...
  local name=$1; shift
  if [ ! -f "runs/$name/manifest.json" ]; then
    echo "== $name: $*"
    "$VIDSR" train --out "runs/$name" --threads "$THREADS" --quiet "$@"
  fi
  [ -f "runs/$name/manifest.json" ] && "$VIDSR" train --publish "runs/$name"
}

declare -A RUNS=(
  [plain-x2]="--arch plain --scale 2 --iterations 4500"
  [plain-x4]="--arch plain --scale 4 --iterations 4500"
  [espcn-x2]="--arch espcn --scale 2 --iterations 6000 --lr 2e-3"
  [espcn-x4]="--arch espcn --scale 4 --iterations 6000 --lr 2e-3"
  [arm-wdsr-x2]="--arch arm-wdsr --scale 2 --iterations 3300 --extend --lr 5e-4"
  [arm-wdsr-x4]="--arch arm-wdsr --scale 4 --iterations 3500 --extend"
  [pcsr-wdsr-x2]="--arch pcsr-wdsr --scale 2 --iterations 2000"
  [pcsr-wdsr-x4]="--arch pcsr-wdsr --scale 4 --iterations 2000 --patch 32"
)
ORDER=(plain-x2 plain-x4 espcn-x2 espcn-x4 arm-wdsr-x2 arm-wdsr-x4 pcsr-wdsr-x2 pcsr-wdsr-x4)
for name in "${@:-${ORDER[@]}}"; do
  # shellcheck disable=SC2086
  run "$name" ${RUNS[$name]}
done
