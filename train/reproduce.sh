#!/usr/bin/env bash
# Rebuild a shipped model end to end (resumable: rerun the same command).
#   train/reproduce.sh seed-cnn        # the seed's CNN (issue 2); SEED_FROM_SCRATCH=1: from step 0
#   train/reproduce.sh seed-cnn-24h    # a candidate: seed-cnn fine-tuned on 24 h (not shipped)
#   train/reproduce.sh seed-cnn-40h    # a candidate: seed-cnn-24h fine-tuned on 40 h (not shipped)
#   train/reproduce.sh seed-cnn-soft   # a candidate: seed-cnn-40h fine-tuned on softer renders (not shipped)
#   train/reproduce.sh seed-cnn-spread # a candidate: seed-cnn-soft fine-tuned on renders whose notes
#                                      # differ in loudness within a chord (not shipped)
#   train/reproduce.sh seed-cnn-avg    # a candidate: the weight average of seed-cnn-40h, -soft, -spread
#                                      # (not shipped)
#   train/reproduce.sh stream          # the streaming CNN, one run for every lookahead;
#                                      # exports stream (lookahead 2) and stream-fast (0)
# Steps: fetch Salamander samples -> render + augment + features + labels ->
# train (checkpoints in work/runs/<run>) -> ONNX export + JSON -> step graph ->
# decoder thresholds on rendered validation -> evaluation on the real recordings.
# Needs: pip install -e '.[train]', apt fluidsynth fluid-soundfont-gm
# musescore-general-soundfont timgm6mb-soundfont, npm, and ../shared/data.
# Each training phase is resumable; --minutes is only a per-call cap. The step
# counts are those of the runs that produced the shipped files. The whole
# latency/accuracy curve of the stream run: benchmarks/latency_curve.py.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-seed-cnn}
DATA=${RTPITCH_DATA:-../shared/data}
PY=${PYTHON:-python}
train_phase() {  # run data max_steps lr [extra args...]
    local run=$1 data=$2 steps=$3 lr=$4
    shift 4
    $PY train/train.py --data "$data" --run "$run" --max-steps "$steps" --lr "$lr" --minutes 100000 "$@"
}
ship() {  # run data frontend name lookahead [export args...]
    # data: dataset folder(s) as for train.py; the first one's val/ tunes and evaluates
    local run=$1 data=$2 frontend=$3 name=$4 la=$5
    local val="${data%%,*}/val"
    shift 5
    $PY train/export.py --run "$run" --name "$name" --data "$data" --frontend "$frontend" --lookahead "$la" "$@"
    $PY train/step_graph.py --model "$name" --int8  # what ONNX Runtime runs (README: step graph)
    $PY train/tune_decoder.py --model "$name" --rendered "$val"
    $PY train/evaluate.py --model "$name" --real "$DATA/real/maps-enstdkcl" --rendered "$val" --write-json \
        --out "benchmarks/results/eval-$name.json"
}

seed_data() {  # the seed CNN's 8.5 h (work/data; its val/ tunes and evaluates both seed models)
    $PY train/build_dataset.py --data "$DATA" --out work/data --hours-train 8 --hours-val 0.5 --seed 0 --jobs 2 \
        --frontend train/frontend.json
}

resume_from_repo() {  # run: start from the checkpoint kept in train/runs/ when this machine has none
    local run=$1
    if [ ! -d "work/runs/$run/ckpt" ] && [ -d "train/runs/$run/ckpt" ]; then
        mkdir -p work/runs && cp -r "train/runs/$run" "work/runs/$run"
    fi
}

branch_run() {  # from to: a fine-tune starts as a copy of the run it goes on from (once)
    [ -d "$2/ckpt" ] || cp -r "$1" "$2"
}

train/fetch_samples.sh cache/salamander
case "$NAME" in
seed-cnn)
    seed_data
    RUN=work/runs/seed-cnn
    # its checkpoint is not kept (68 MB): a new machine goes on from the shipped ONNX
    # weights (train/from_onnx.py), at the step models/seed-cnn.json records
    if [ ! -d "$RUN/ckpt" ] && [ "${SEED_FROM_SCRATCH:-0}" != 1 ]; then
        $PY train/from_onnx.py --model models/seed-cnn.json --run $RUN
    fi
    train_phase $RUN work/data 2353 1e-3 --eval-every 400
    train_phase $RUN work/data 2800 3e-4 --eval-every 400
    train_phase $RUN work/data 3400 3e-4
    train_phase $RUN work/data 4200 1e-4 --eval-every 400
    # from step 4200 BatchNormalization is frozen (inference mode): the same model
    # whether the run went on from its checkpoint or from the ONNX file (BN folded)
    train_phase $RUN work/data 5400 1e-4 --eval-every 400 --freeze-bn
    train_phase $RUN work/data 5800 3e-5 --eval-every 200 --freeze-bn
    ship $RUN work/data train/frontend.json seed-cnn 9
    ;;
seed-cnn-24h)
    # a candidate, not shipped: the shipped seed-cnn (step 5 800) fine-tuned on its
    # 8.5 h and 16 h of fresh renders (other segments, timbres, rooms: --seed 1).
    # 2026-12-02: MAPS note F1 0.708, frame F1 0.603, but on the e2e fixture it finds
    # 5 of 8 notes at 4 of 24 frame phases (tests/test_e2e_jack.py asks for 6)
    seed_data
    $PY train/build_dataset.py --data "$DATA" --out work/data-s1 --hours-train 16 --hours-val 0.1 --seed 1 --jobs 2 \
        --frontend train/frontend.json
    RUN=work/runs/seed-cnn-24h
    if [ ! -d "$RUN/ckpt" ]; then
        $PY train/from_onnx.py --model models/seed-cnn.json --run $RUN
    fi
    train_phase $RUN work/data,work/data-s1 7000 1e-4 --eval-every 400 --freeze-bn
    train_phase $RUN work/data,work/data-s1 7400 3e-5 --eval-every 200 --freeze-bn
    ship $RUN work/data,work/data-s1 train/frontend.json seed-cnn-24h 9
    ;;
seed-cnn-40h)
    # a candidate, not shipped: seed-cnn-24h (step 7 400) fine-tuned on a third
    # render (16 h, --seed 2) as well. 2026-12-02: MAPS note F1 0.713, frame F1
    # 0.604, but on the e2e fixture it finds 5 of 8 notes at all 12 frame phases
    # (the soft notes of its chord peak at 0.64-0.67, under the thresholds of 0.7
    # that rendered validation chooses)
    bash train/reproduce.sh seed-cnn-24h  # its data and run first (done phases are skipped)
    $PY train/build_dataset.py --data "$DATA" --out work/data-s2 --hours-train 16 --hours-val 0.1 --seed 2 --jobs 2 \
        --frontend train/frontend.json
    RUN=work/runs/seed-cnn-40h
    branch_run work/runs/seed-cnn-24h $RUN
    D=work/data,work/data-s1,work/data-s2
    train_phase $RUN $D 8800 1e-4 --eval-every 400 --freeze-bn
    train_phase $RUN $D 9200 3e-5 --eval-every 200 --freeze-bn
    ship $RUN $D train/frontend.json seed-cnn-40h 9
    ;;
seed-cnn-soft)
    # a candidate, not shipped: seed-cnn-40h (step 9 200) fine-tuned on a fourth
    # render (16 h, --seed 3) whose velocities are scaled by 0.45-1.0 per segment:
    # the MIDI collections play louder than the real recordings (onset velocity
    # median 70 vs MAPS 47; scaled: 48). Its validation (soft, first in the list)
    # tunes the decoder. 2026-12-03: MAPS note F1 0.714, note+offset 0.390, frame
    # F1 0.610, but on the e2e fixture 5 of 8 notes at 3 of 12 frame phases
    bash train/reproduce.sh seed-cnn-40h
    $PY train/build_dataset.py --data "$DATA" --out work/data-s3 --hours-train 16 --hours-val 0.5 --seed 3 --jobs 2 \
        --frontend train/frontend.json --velocity-scale 0.45,1.0
    RUN=work/runs/seed-cnn-soft
    branch_run work/runs/seed-cnn-40h $RUN
    D=work/data-s3,work/data
    train_phase $RUN $D 10400 1e-4 --eval-every 400 --freeze-bn
    train_phase $RUN $D 10800 3e-5 --eval-every 200 --freeze-bn
    ship $RUN $D train/frontend.json seed-cnn-soft 9
    ;;
seed-cnn-spread)
    # a candidate, not shipped: seed-cnn-soft (step 10 800) fine-tuned on a fifth render (16 h,
    # --seed 4), velocities scaled 0.45-1.0 per segment and each note's by
    # exp(N(0, 0.35)) (onset velocity median 49, 5-95 % 19-106): soft notes under
    # loud ones, which the e2e fixture's chord has and seed-cnn-soft missed.
    # 2026-12-03: MAPS note F1 0.701, note+offset 0.397, frame F1 0.588; the
    # fixture's soft chord notes rise (onset 0.45 -> 0.60) but stay under the
    # thresholds: 5 of 8 notes at 6 of 12 frame phases
    bash train/reproduce.sh seed-cnn-soft
    $PY train/build_dataset.py --data "$DATA" --out work/data-s4 --hours-train 16 --hours-val 0.5 --seed 4 --jobs 2 \
        --frontend train/frontend.json --velocity-scale 0.45,1.0 --velocity-spread 0.35
    RUN=work/runs/seed-cnn-spread
    branch_run work/runs/seed-cnn-soft $RUN
    D=work/data-s4,work/data-s3
    train_phase $RUN $D 11600 1e-4 --eval-every 400 --freeze-bn
    train_phase $RUN $D 12000 3e-5 --eval-every 200 --freeze-bn
    ship $RUN $D train/frontend.json seed-cnn-spread 9
    ;;
seed-cnn-avg)
    # a candidate, not shipped: the equal-weight average of seed-cnn-40h (step
    # 9 200), -soft (10 800) and -spread (12 000), one lineage with BN frozen
    # (train/average.py). 2026-12-03: MAPS note F1 0.710, note+offset 0.407,
    # +velocity 0.260, frame F1 0.607 (the best MAPS figures so far), but on the
    # e2e fixture 5 of 8 notes at 11 of 12 frame phases
    bash train/reproduce.sh seed-cnn-spread
    RUN=work/runs/seed-cnn-avg
    [ -d "$RUN/ckpt" ] || $PY train/average.py --runs work/runs/seed-cnn-40h,work/runs/seed-cnn-soft,work/runs/seed-cnn-spread \
        --run $RUN
    ship $RUN work/data-s3,work/data-s4,work/data-s2,work/data-s1,work/data train/frontend.json seed-cnn-avg 9
    ;;
stream | stream-fast)
    $PY train/build_dataset.py --data "$DATA" --out work/data-lowlat --hours-train 12 --hours-val 0.5 --seed 0 \
        --jobs 2 --frontend train/frontend-lowlat.json
    resume_from_repo stream  # the run is kept in the repo (ckpt-5400): a new machine goes on from there
    RUN=work/runs/stream
    ARGS=(--arch stream --lookaheads 0,1,2,4,6,9 --lookahead 2 --seq 400 --batch 8 --eval-every 500)
    train_phase $RUN work/data-lowlat 3800 1e-3 "${ARGS[@]}"
    train_phase $RUN work/data-lowlat 5400 3e-4 "${ARGS[@]}"
    ship $RUN work/data-lowlat train/frontend-lowlat.json stream 2 --arch stream
    ship $RUN work/data-lowlat train/frontend-lowlat.json stream-fast 0 --arch stream
    ;;
*)
    echo "unknown model $NAME (seed-cnn, seed-cnn-24h, seed-cnn-40h, seed-cnn-soft, seed-cnn-spread, seed-cnn-avg, stream, stream-fast)" >&2
    exit 2
    ;;
esac
