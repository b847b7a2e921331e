#!/usr/bin/env bash
# The exact training runs behind the weights in vidsr/weights/ (2-core CPU, torch fp32).
# Each run resumes from runs/<name>/checkpoint.pt if interrupted and is skipped once finished;
# a finished run is published into vidsr/weights/ (manifest updated with sha256 and val PSNR).
# What really ran for the shipped ARM/PCSR weights, to fit the CPU time we had (more iterations
# train better nets): the ARM runs started at 16000/12000 iterations and were cut short with
# --extend (a new cosine segment from step 1000/400, peak lr 1e-3). ARM x2 then diverged between
# steps 2000 and 3000 (val PSNR fell below bicubic), so it was restarted from its step-1800
# checkpoint with a segment to 3300 at peak lr 5e-4. Continued from 3300 (x2) / 3500 (x4) the next
# session, warm restarts at 5e-4 blew up again (both runs, within 200-700 steps); with gradient
# clipping (now the trainer's default) they were fine-tuned in runs/arm-wdsr-xS-ft: x2 in segments
# 3300->5300 at peak 2e-4 (stopped at 4201), 4201->7100 at 1.45e-4; x4 3500->5500 at 2e-4
# (stopped at 4427), 4427->8000 at 1.2e-4; then x2 7100->12000 at 1.2e-4, cut short at 11866 with
# --finish (exported: best validated step 10500, +4.20 dB), x4 8000->12000 at 1e-4, cut short at
# 11398 (exported: step 11000, +2.46 dB); x4 was then fine-tuned 11398->13000 with --width-power 1
# at peak lr 2e-4 in runs/arm-wdsr-x4-p1 (exported: step 12800, +2.55 dB, w16 +0.68 -> +1.11).
# x2 likewise 11866->13500 in runs/arm-wdsr-x2-p1 (exported: step 13500, +4.32 dB, w16 +1.03 -> +1.27).
# pcsr-wdsr x2 is exactly its two lines below, run with THREADS=1: pcsr-wdsr-x2 over three sessions
# in runs/pcsr-wdsr-x2-long (exported: stage-1 step 10,500, heavy +4.64 dB, light +2.27), then
# pcsr-wdsr-x2-light24 (runs/pcsr-wdsr-x2-light24) retrained only the light head, now 24-wide with
# a 3x3 feature neighbourhood, and the classifier over that backbone and heavy head (light +3.67 dB);
# the second is what ships. x4 likewise: pcsr-wdsr-x4 in runs/pcsr-wdsr-x4-long over three
# sessions, stopped at step 7776 (the end of its backbone + heavy stage) and exported with --finish
# (best validated step 7000, heavy +2.52 dB); then pcsr-wdsr-x4-light24 (exported: step 500, light
# +1.37 dB), shipped until 2026-12-03; since then pcsr-wdsr-x4-subpixel, which retrains the light
# head as a sub-pixel convolution (empty hidden sizes) and the classifier over that run's backbone
# and heavy head, exactly its line below (checkpoints/pcsr-wdsr-x4-subpixel; exported: step 750,
# light +1.05 dB, for 4,848 instead of 5,592 MACs a pixel and a fifteenth of the time).
# arm-plain starts from the published plain net of its scale (its full width has the same layout)
# and trains every width with --width-power 1: x2 ran its line below (6000 steps at peak 5e-4), then
# --extend --iterations 8000 --lr 2e-4 (exported: step 7500, best mean gain over the widths);
# x4 the same (exported: step 7000).
# arm-plain-wide x2 (shipped under that name, beside arm-plain) is two runs. First the 48-wide
# supernet in checkpoints/arm-plain-wide-x2 (16,000 steps at 3e-4, then --extend restarts at 1.5e-4
# to 28,000 and 1e-4 to 36,000; exported at step 34,500; shipped until 2026-12-02, now only the
# start of the next run). Then checkpoints/arm-plain-wide64-x2: that export widened to a 64-channel
# top width (--init keeps every old width), 14,000 steps at peak 1.5e-4 with --ema 0.999 (width
# power 2 to step 7,883, then 1), then --extend at 1e-4 (width power 2, --select full) to step
# 17,094 and a last segment towards 20,000 at 7e-5, stopped at 18,513 with --finish (exported: step
# 17,000, the best full width, +4.92 dB). The line below is that as one schedule, not tried end to end.
# Since 2026-12-03 arm-plain-wide x2 is checkpoints/arm-plain-deep10-x2: that 8-conv export deepened to
# 10 hidden convs (--init adds identity convs before the tail), a 6,000-step schedule at peak 1.5e-4,
# --extend at step 2,513 to a 9,000-step one, stopped at 7,349 with --finish (exported: step 3,500,
# +5.035 dB). The line below is that as one 9,000-step schedule, not tried end to end.
# arm-plain-wide x4 is checkpoints/arm-plain-wide64-x4: the 64-wide x2 export's body at x4 (--init
# across scales: the x4 tail starts fresh), its line below as run (20,000-step schedule at peak 2e-4);
# the full width peaked at step 2,500 (+2.855 dB) and fell after, so the run was stopped at 5,648 and
# exported with --finish (its best.pt, step 2,500). Running the line to its end exports the same best
# state if validation behaves alike; stopping it after ~3,000 steps and adding --finish is quicker.
# The arm-espcn and arm-wdsr runs drew widths from step 0 (--full-width-steps 0: they predate the
# trainer's full-width warm-up, which a fresh arm-plain needs). The arm-espcn lines below are exactly what ran. For the ARM/PCSR runs, the lines give the final
# lengths at the default peak lr 1e-3, clipped: one cosine schedule, close to but not bit-identical with the shipped
# weights, and not tried end to end.
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
  local as=${PUBLISH_AS[$name]:-}
  [ "$as" = "-" ] && return  # trained only as the start of another run
  [ -f "runs/$name/manifest.json" ] && "$VIDSR" train --publish "runs/$name" ${as:+--name "$as"}
}

# runs shipped under another name than their architecture's ("-": not shipped, another run's start)
declare -A PUBLISH_AS=([arm-plain-wide-x2]=- [arm-plain-wide64-x2]=- [arm-plain-deep10-x2]=arm-plain-wide [arm-plain-wide64-x4]=arm-plain-wide [pcsr-wdsr-x4-light24]=-)

declare -A RUNS=(
  [plain-x2]="--arch plain --scale 2 --iterations 4500"
  [plain-x4]="--arch plain --scale 4 --iterations 4500"
  [espcn-x2]="--arch espcn --scale 2 --iterations 6000 --lr 2e-3"
  [espcn-x4]="--arch espcn --scale 4 --iterations 6000 --lr 2e-3"
  [arm-espcn-x2]="--arch arm-espcn --scale 2 --iterations 6000 --full-width-steps 0"
  [arm-espcn-x3]="--arch arm-espcn --scale 3 --iterations 6000 --full-width-steps 0"
  [arm-espcn-x4]="--arch arm-espcn --scale 4 --iterations 6000 --full-width-steps 0"
  [arm-wdsr-x2]="--arch arm-wdsr --scale 2 --iterations 10500 --full-width-steps 0"
  [arm-wdsr-x4]="--arch arm-wdsr --scale 4 --iterations 11000 --full-width-steps 0"
  [pcsr-wdsr-x2]="--arch pcsr-wdsr --scale 2 --iterations 12000 --val-every 500"
  [pcsr-wdsr-x2-light24]="--arch pcsr-wdsr --scale 2 --iterations 3000 --val-every 500 --stage1-fraction 1 --init runs/pcsr-wdsr-x2/pcsr-wdsr-x2.safetensors --config {\"upsamplers\":[[24,24],[64,64,64]],\"unfold\":[true,true]}"
  [arm-plain-x2]="--arch arm-plain --scale 2 --iterations 6000 --lr 5e-4 --width-power 1 --init vidsr/weights/plain-x2.safetensors"
  [arm-plain-x4]="--arch arm-plain --scale 4 --iterations 6000 --lr 5e-4 --width-power 1 --init vidsr/weights/plain-x4.safetensors"
  [arm-plain-wide-x2]="--arch arm-plain --scale 2 --config {\"widths\":[16,24,32,48],\"convs\":8} --iterations 36000 --lr 3e-4 --width-power 1 --val-every 500"
  [arm-plain-wide64-x2]="--arch arm-plain --scale 2 --config {\"widths\":[16,24,32,48,64],\"convs\":8} --iterations 18000 --lr 1.5e-4 --width-power 2 --select full --ema 0.999 --val-every 500 --init runs/arm-plain-wide-x2/arm-plain-x2.safetensors"
  [arm-plain-deep10-x2]="--arch arm-plain --scale 2 --config {\"widths\":[16,24,32,48,64],\"convs\":10} --iterations 9000 --lr 1.5e-4 --width-power 2 --select full --ema 0.999 --val-every 500 --init runs/arm-plain-wide64-x2/arm-plain-x2.safetensors"
  [arm-plain-wide64-x4]="--arch arm-plain --scale 4 --config {\"widths\":[16,24,32,48,64],\"convs\":8} --iterations 20000 --lr 2e-4 --width-power 2 --select full --ema 0.999 --val-every 500 --init runs/arm-plain-wide64-x2/arm-plain-x2.safetensors"
  [pcsr-wdsr-x4]="--arch pcsr-wdsr --scale 4 --iterations 12000 --patch 32 --val-every 500"
  [pcsr-wdsr-x4-light24]="--arch pcsr-wdsr --scale 4 --iterations 3000 --patch 32 --val-every 500 --stage1-fraction 1 --init runs/pcsr-wdsr-x4/pcsr-wdsr-x4.safetensors --config {\"upsamplers\":[[24,24],[64,64,64]],\"unfold\":[true,true]}"
  [pcsr-wdsr-x4-subpixel]="--arch pcsr-wdsr --scale 4 --iterations 1500 --patch 32 --val-every 250 --stage1-fraction 1 --init runs/pcsr-wdsr-x4-light24/pcsr-wdsr-x4.safetensors --config {\"upsamplers\":[[],[64,64,64]],\"unfold\":[true,true]}"
)
ORDER=(plain-x2 plain-x4 arm-plain-x2 arm-plain-x4 arm-plain-wide-x2 arm-plain-wide64-x2 arm-plain-deep10-x2 arm-plain-wide64-x4 espcn-x2 espcn-x4 arm-espcn-x2 arm-espcn-x3 arm-espcn-x4 arm-wdsr-x2 arm-wdsr-x4 pcsr-wdsr-x2 pcsr-wdsr-x2-light24 pcsr-wdsr-x4 pcsr-wdsr-x4-light24 pcsr-wdsr-x4-subpixel)
set -f  # RUNS values are split on spaces but never globbed (a --config JSON has brackets)
for name in "${@:-${ORDER[@]}}"; do
  # shellcheck disable=SC2086
  run "$name" ${RUNS[$name]}
done
