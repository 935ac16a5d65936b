#!/usr/bin/env bash
# Rebuild the shipped model end to end (resumable: rerun the same command).
#   train/reproduce.sh [NAME] [TRAIN_MINUTES]
# Steps: fetch Salamander samples -> render + augment + features + labels ->
# train (checkpoints in work/runs/NAME) -> ONNX export + JSON -> decoder
# thresholds on rendered validation -> evaluation on the real recordings.
# Needs: pip install -e '.[train]', apt fluidsynth fluid-soundfont-gm
# musescore-general-soundfont timgm6mb-soundfont, npm, and ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-seed-cnn}
MINUTES=${2:-62}
DATA=${RTPITCH_DATA:-../shared/data}
PY=${PYTHON:-python}
train/fetch_samples.sh cache/salamander
$PY train/build_dataset.py --data "$DATA" --out work/data --hours-train 8 --hours-val 0.5 --seed 0 --jobs 2 \
    --frontend train/frontend.json
$PY train/train.py --data work/data --run "work/runs/$NAME" --minutes "$MINUTES"
$PY train/export.py --run "work/runs/$NAME" --name "$NAME"
$PY train/tune_decoder.py --model "$NAME" --rendered work/data/val
$PY train/evaluate.py --model "$NAME" --real "$DATA/real/maps-enstdkcl" --rendered work/data/val --write-json \
    --out "benchmarks/results/eval-$NAME.json"
