#!/usr/bin/env bash
# Rebuild the shipped model end to end (resumable: rerun the same command).
#   train/reproduce.sh [NAME]
# Steps: fetch Salamander samples -> render + augment + features + labels ->
# train (checkpoints in work/runs/NAME) -> ONNX export + JSON -> decoder
# thresholds on rendered validation -> evaluation on the real recordings.
# Needs: pip install -e '.[train]', apt fluidsynth fluid-soundfont-gm
# musescore-general-soundfont timgm6mb-soundfont, npm, and ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-seed-cnn}
# The shipped seed-cnn: phase 1 at lr 1e-3, phase 2 at 3e-4 (step counts of the run
# that produced it; each phase is resumable, --minutes is only a per-call cap).
PHASE1_STEPS=${PHASE1_STEPS:-2353}
PHASE2_STEPS=${PHASE2_STEPS:-2800}
DATA=${RTPITCH_DATA:-../shared/data}
PY=${PYTHON:-python}
train/fetch_samples.sh cache/salamander
$PY train/build_dataset.py --data "$DATA" --out work/data --hours-train 8 --hours-val 0.5 --seed 0 --jobs 2 \
    --frontend train/frontend.json
$PY train/train.py --data work/data --run "work/runs/$NAME" --max-steps "$PHASE1_STEPS" --lr 1e-3 --minutes 100000
$PY train/train.py --data work/data --run "work/runs/$NAME" --max-steps "$PHASE2_STEPS" --lr 3e-4 --minutes 100000
$PY train/export.py --run "work/runs/$NAME" --name "$NAME" --data work/data
$PY train/tune_decoder.py --model "$NAME" --rendered work/data/val
$PY train/evaluate.py --model "$NAME" --real "$DATA/real/maps-enstdkcl" --rendered work/data/val --write-json \
    --out "benchmarks/results/eval-$NAME.json"
