#!/usr/bin/env bash
# Rebuild a shipped model end to end (resumable: rerun the same command).
#   train/reproduce.sh seed-cnn        # the seed's CNN (issue 2); SEED_FROM_SCRATCH=1: from step 0
#   train/reproduce.sh stream          # the per-key streaming CNN reading 16 harmonics: stream (lookahead 3,
#                                      # an 11 ms window fall, partials stretched) and stream-fast (lookahead 1)
#   train/reproduce.sh stream-fast     # stream-fast only (and stream-fastest, on the way)
#   train/reproduce.sh stream-fastest  # stream-fastest only: lookahead 1 at a 9 ms window fall (24.3 ms)
#   train/reproduce.sh stream-cnn      # the former default's streaming CNN (an experiment now)
#   train/reproduce.sh stream-wide     # the wider streaming CNN (an experiment): its curve only
#   train/reproduce.sh stream-gru      # stream + GRU + pedal head (an experiment): the session runs
# Steps: fetch Salamander samples -> render + augment + features + labels ->
# train (checkpoints in work/runs/<run>) -> ONNX export + JSON -> step graph ->
# decoder thresholds on rendered validation -> evaluation on the real recordings.
# Needs: pip install -e '.[train]', apt fluidsynth fluid-soundfont-gm
# musescore-general-soundfont timgm6mb-soundfont, npm, and ../shared/data.
# Each training phase is resumable; --minutes is only a per-call cap. The step
# counts are those of the runs that produced the shipped files. The whole
# latency/accuracy curve of the stream run: python -m benchmarks.latency_curve.
# Every Python step runs as a module (python -m train.X) from the repository root,
# so train/ and benchmarks/ import rtpitch and each other as packages.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-seed-cnn}
DATA=${RTPITCH_DATA:-../shared/data}
PY=${PYTHON:-python}
train_phase() {  # run data max_steps lr [extra args...]
    local run=$1 data=$2 steps=$3 lr=$4
    shift 4
    $PY -m train.train --data "$data" --run "$run" --max-steps "$steps" --lr "$lr" --minutes 100000 "$@"
}
ship() {  # run data frontend name lookahead weights [export args...]
    # data: dataset folder(s) as for train.py; the first one's val/ tunes and evaluates
    # weights: int8 | float32, the step graph's dense layer (int8 pays only for a big one)
    local run=$1 data=$2 frontend=$3 name=$4 la=$5 weights=$6
    local val="${data%%,*}/val"
    shift 6
    $PY -m train.export --run "$run" --name "$name" --data "$data" --frontend "$frontend" --lookahead "$la" "$@"
    local int8
    case "$weights" in
    int8) int8=--int8 ;;
    float32) int8= ;;
    *) echo "ship: weights must be int8 or float32, got $weights" >&2; exit 2 ;;
    esac
    # the step graph is what ONNX Runtime runs (README: step graph)
    $PY -m train.step_graph --model "$name" $int8
    $PY -m train.tune_decoder --model "$name" --rendered "$val"
    $PY -m train.evaluate --model "$name" --real "$DATA/real/maps-enstdkcl" --rendered "$val" --write-json \
        --out "benchmarks/results/eval-$name.json"
}

seed_data() {  # the seed CNN's 8.5 h (work/data)
    $PY -m train.build_dataset --data "$DATA" --out work/data --hours-train 8 --hours-val 0.5 --seed 0 --jobs 2 \
        --frontend train/frontend.json
}

lowlat_data() {  # the stream runs' data: two 12 h renders with the 10 ms-hop frontend, 2 h of noise alone
    $PY -m train.build_dataset --data "$DATA" --out work/data-lowlat --hours-train 12 --hours-val 0.5 --seed 0 \
        --jobs 2 --frontend train/frontend-lowlat.json
    $PY -m train.build_dataset --data "$DATA" --out work/data-lowlat-s1 --hours-train 12 --hours-val 0.1 --seed 1 \
        --jobs 2 --frontend train/frontend-lowlat.json
    $PY -m train.build_noise --out work/data-noise --segments 240 --seconds 30 --frontend train/frontend-lowlat.json
}
resume_from_repo() {  # run: start from the checkpoint kept in train/runs/ when this machine has none
    local run=$1
    if [ ! -d "work/runs/$run/ckpt" ] && [ -d "train/runs/$run/ckpt" ]; then
        mkdir -p work/runs && cp -r "train/runs/$run" "work/runs/$run"
    fi
}

train/fetch_samples.sh cache/salamander
case "$NAME" in
seed-cnn)
    seed_data
    RUN=work/runs/seed-cnn
    # its checkpoint is not kept (68 MB): a new machine goes on from the shipped ONNX
    # weights (train/from_onnx.py), at the step rtpitch/models/seed-cnn.json records
    if [ ! -d "$RUN/ckpt" ] && [ "${SEED_FROM_SCRATCH:-0}" != 1 ]; then
        $PY -m train.from_onnx --model seed-cnn --run $RUN
    fi
    train_phase $RUN work/data 2353 1e-3 --eval-every 400
    train_phase $RUN work/data 2800 3e-4 --eval-every 400
    train_phase $RUN work/data 3400 3e-4
    train_phase $RUN work/data 4200 1e-4 --eval-every 400
    # from step 4200 BatchNormalization is frozen (inference mode): the same model
    # whether the run went on from its checkpoint or from the ONNX file (BN folded)
    train_phase $RUN work/data 5400 1e-4 --eval-every 400 --freeze-bn
    train_phase $RUN work/data 5800 3e-5 --eval-every 200 --freeze-bn
    # then 1 600 steps on its 8.5 h and 16 h more whose velocities are scaled by
    # 0.45-1.0 per segment (the MIDI collections play louder than real recordings:
    # onset velocity median 70, MAPS 47, scaled 48), bfloat16 compute; the soft
    # render's validation (first in the list) tunes the decoder
    $PY -m train.build_dataset --data "$DATA" --out work/data-s3 --hours-train 16 --hours-val 0.5 --seed 3 --jobs 2 \
        --frontend train/frontend.json --velocity-scale 0.45,1.0
    D=work/data-s3,work/data
    train_phase $RUN $D 7000 1e-4 --eval-every 400 --freeze-bn --precision mixed_bfloat16
    train_phase $RUN $D 7400 3e-5 --eval-every 200 --freeze-bn --precision mixed_bfloat16
    ship $RUN $D train/frontend.json seed-cnn 9 int8
    ;;
stream | stream-fast | stream-fastest)
    # Three runs, each grown from the one before. stream-keys: the per-key CNN on the harmonic stack
    # (train/model.py), from scratch at lr 1e-3 on train/session.sh's data of 2026-12-05 to step
    # 6 868, then at 3e-4 with the seed-4 render of all six pianos added, the weights' moving average
    # (--ema 0.999) from 7 018, at 1e-4 from 12 500; its sessions stopped at 3 561, 4 087, 6 868,
    # 7 018, 9 806, 12 500, 14 075 and 14 260 (as phases here the crops come in the same order).
    # stream-keys-h16: the same network reading harmonics 8..15 of each key too, grown from
    # stream-keys at 14 260 (the new input channels' kernel rows start at zero: the same function at
    # its step 0), lr 3e-4 to 3 327 then 1e-4, its own moving average; its sessions stopped at 1 841,
    # 2 235, 3 327, 5 157 and 5 179. stream-keys-h16-soft: that network at 5 179 trained on at lr 1e-4
    # with 6 h more rendered softer (work/data-render-s5-soft: velocities scaled 0.45-1.0, a chord's
    # notes differing), its own moving average. stream-keys-h16-soft-ih: that run at 1 500 reading each
    # key's partials where a piano's stiff strings put them (train/harmonics.py), 1 000 steps at 3e-4 with
    # the seed-6 render (wider dynamics) in place of the seed-2, -4 and soft ones, then on to 3 000 in a
    # second session (stopped at 2 117, then at 3 934); stream-fast is its step-3 000 export at lookahead 1.
    # stream-keys-h16-soft-ih-f144: soft-ih at 2 117 on the 9 ms-fall features; stream-fastest is its
    # step-2 750 export at lookahead 1.
    # stream-keys-h16-la3: the soft run at 1 500 with heads for lookahead 3 too (started between the
    # lookahead-2 and -4 heads: train.py --init-from), 774 steps at 1e-4 with the seed-6 render (wider
    # dynamics) added. stream-keys-h16-la3-f176: that run at 774, 858 steps at 1e-4 on the same pieces
    # rendered into features with an 11 ms window fall (train/frontend-fall176.json: lookahead 3 at 46 ms).
    # stream-keys-h16-ih: that run at 858 reading each key's partials where a piano's stiff strings put
    # them (train/harmonics.py; the same weights' shapes), lr 3e-4; stream is its step-1 000 export at
    # lookahead 3 (the run went on to 1 507 that session; 1 000 scored higher on MAPS). The kept
    # checkpoints move on in later sessions, so first restore the ones the models come from: git checkout
    # 352d6ea -- train/runs/stream-keys-h16-soft (1 500); git checkout c6dbc51 --
    # train/runs/stream-keys-h16-la3-f176 (858, where the ih run starts); git checkout 63ac8a8 --
    # train/runs/stream-keys-h16-ih (1 000); git checkout 20c7454 -- train/runs/stream-keys-h16-soft-ih
    # (3 000); git checkout 499348b -- train/runs/stream-keys-h16-soft-ih-f144 (2 750); a new machine
    # then only exports (a phase whose MAX_STEPS a kept run has passed does nothing). From scratch: remove
    # the eight runs from train/runs first.
    D=work/data-lowlat,work/data-render-s2,work/data-maps-synth,work/data-noise
    for steps in 3561 4087 6868; do
        PYTHON=$PY RUN=stream-keys LR=1e-3 MAX_STEPS=$steps SESSION_DATA=$D RTPITCH_SESSION=reproduce \
            train/session.sh run 100000
    done
    D=$D,work/data-render-s4
    PYTHON=$PY RUN=stream-keys LR=3e-4 MAX_STEPS=7018 SESSION_DATA=$D RTPITCH_SESSION=reproduce \
        train/session.sh run 100000
    for phase in 3e-4:9806 3e-4:12500 1e-4:14075 1e-4:14260; do
        PYTHON=$PY RUN=stream-keys LR=${phase%%:*} MAX_STEPS=${phase##*:} SESSION_DATA=$D \
            RTPITCH_SESSION=reproduce TRAIN_ARGS="--ema 0.999" train/session.sh run 100000
    done
    for phase in 3e-4:1841 3e-4:2235 3e-4:3327 1e-4:5157 1e-4:5179; do
        PYTHON=$PY RUN=stream-keys-h16 ARCH=stream-keys-h16 INIT=work/runs/stream-keys LR=${phase%%:*} \
            MAX_STEPS=${phase##*:} SESSION_DATA=$D RTPITCH_SESSION=reproduce \
            TRAIN_ARGS="--ema 0.999 --eval-every 250" train/session.sh run 100000
    done
    D=$D,work/data-render-s5-soft
    PYTHON=$PY RUN=stream-keys-h16-soft ARCH=stream-keys-h16 INIT=work/runs/stream-keys-h16 LR=1e-4 \
        MAX_STEPS=1500 SESSION_DATA=$D RTPITCH_SESSION=reproduce \
        TRAIN_ARGS="--ema 0.999 --eval-every 250" train/session.sh run 100000
    D2=work/data-lowlat,work/data-render-s6-dyn,work/data-maps-synth,work/data-noise
    soft_ih_to() {  # steps: the soft-ih run (stream-fast's) up to that step
        PYTHON=$PY RUN=stream-keys-h16-soft-ih ARCH=stream-keys-h16-ih INIT=work/runs/stream-keys-h16-soft LR=3e-4 \
            MAX_STEPS=$1 SESSION_DATA=$D2 RTPITCH_SESSION=reproduce TRAIN_ARGS="--ema 0.999 --eval-every 250" \
            train/session.sh run 100000
    }
    soft_ih_to 2117
    # stream-fastest: soft-ih at 2 117 on the same pieces rendered into features with a 9 ms window fall
    # (train/frontend-fall144.json: lookahead 1 at 24.3 ms), heads for lookaheads 0-2, lr 3e-4; its sessions
    # stopped at 2 000 and (2026-12-07g) went past 2 750, the step shipped
    F=work/fall144
    D3=$F/data-lowlat,$F/data-render-s6-dyn,$F/data-maps-synth,$F/data-noise
    for steps in 2000 2750; do
        PYTHON=$PY RUN=stream-keys-h16-soft-ih-f144 ARCH=stream-keys-h16-ih INIT=work/runs/stream-keys-h16-soft-ih \
            LR=3e-4 MAX_STEPS=$steps FRONTEND=train/frontend-fall144.json SESSION_DATA=$D3 RTPITCH_SESSION=reproduce \
            TRAIN_ARGS="--ema 0.999 --eval-every 250 --lookaheads 0,1,2" train/session.sh run 100000
    done
    ship work/runs/stream-keys-h16-soft-ih-f144 $D3 train/frontend-fall144.json stream-fastest 1 float32 \
        --arch stream-keys-h16-ih --checkpoint work/runs/stream-keys-h16-soft-ih-f144/ckpt/ckpt-2750
    [ "$NAME" != stream-fastest ] || exit 0
    soft_ih_to 3000
    ship work/runs/stream-keys-h16-soft-ih $D2 train/frontend-lowlat.json stream-fast 1 float32 \
        --arch stream-keys-h16-ih --checkpoint work/runs/stream-keys-h16-soft-ih/ckpt/ckpt-3000
    [ "$NAME" = stream ] || exit 0
    LA3="--ema 0.999 --eval-every 250 --lookaheads 0,1,2,3,4,6,9"
    D=work/data-lowlat,work/data-render-s6-dyn,work/data-maps-synth,work/data-noise,work/data-render-s4
    D=$D,work/data-render-s5-soft
    PYTHON=$PY RUN=stream-keys-h16-la3 ARCH=stream-keys-h16 INIT=work/runs/stream-keys-h16-soft LR=1e-4 \
        MAX_STEPS=774 SESSION_DATA=$D RTPITCH_SESSION=reproduce TRAIN_ARGS="$LA3" train/session.sh run 100000
    F=work/fall176
    D=$F/data-lowlat,$F/data-render-s6-dyn,$F/data-maps-synth,$F/data-noise
    PYTHON=$PY RUN=stream-keys-h16-la3-f176 ARCH=stream-keys-h16 INIT=work/runs/stream-keys-h16-la3 LR=1e-4 \
        MAX_STEPS=858 FRONTEND=train/frontend-fall176.json SESSION_DATA=$D RTPITCH_SESSION=reproduce \
        TRAIN_ARGS="$LA3" train/session.sh run 100000
    PYTHON=$PY RUN=stream-keys-h16-ih ARCH=stream-keys-h16-ih INIT=work/runs/stream-keys-h16-la3-f176 LR=3e-4 \
        MAX_STEPS=1000 FRONTEND=train/frontend-fall176.json SESSION_DATA=$D RTPITCH_SESSION=reproduce \
        TRAIN_ARGS="$LA3" train/session.sh run 100000
    ship work/runs/stream-keys-h16-ih $D train/frontend-fall176.json stream 3 float32 --arch stream-keys-h16-ih \
        --checkpoint work/runs/stream-keys-h16-ih/ckpt/ckpt-1000
    ;;
stream-cnn)
    # the former default (train/model.py stream: the mel image, a dense trunk), shipped as
    # stream / stream-fast until 2026-12-05 (their files: git show 0613589:rtpitch/models/stream.json).
    # Its run is kept in train/runs/stream (at 26 996; the shipped export was step 14 000:
    # git checkout 0771de7 -- train/runs/stream); its curve goes to benchmarks/results/latency_curve-cnn
    lowlat_data
    resume_from_repo stream
    RUN=work/runs/stream
    ARGS=(--arch stream --lookaheads 0,1,2,4,6,9 --lookahead 2 --seq 400 --batch 8 --eval-every 500)
    train_phase $RUN work/data-lowlat 3800 1e-3 "${ARGS[@]}"
    train_phase $RUN work/data-lowlat 5400 3e-4 "${ARGS[@]}"
    # from step 5 400: bfloat16 compute, and from 7 000 a second 12 h render
    ARGS+=(--precision mixed_bfloat16)
    train_phase $RUN work/data-lowlat 7000 3e-4 "${ARGS[@]}"
    train_phase $RUN work/data-lowlat,work/data-lowlat-s1 9400 3e-4 "${ARGS[@]}"
    train_phase $RUN work/data-lowlat,work/data-lowlat-s1 10400 1e-4 "${ARGS[@]}"
    train_phase $RUN work/data-lowlat,work/data-lowlat-s1 12200 2e-4 "${ARGS[@]}"
    # from 12 200: 2 h of noise alone mixed in (loud noise made the heads fire)
    D=work/data-lowlat,work/data-lowlat-s1,work/data-noise
    train_phase $RUN $D 13400 2e-4 "${ARGS[@]}"
    train_phase $RUN $D 14000 6e-5 "${ARGS[@]}"
    $PY -m benchmarks.latency_curve --run $RUN --arch stream --prefix stream-cnn \
        --models work/curve-cnn/models --out benchmarks/results/latency_curve-cnn
    # 14 000 -> 26 996, train/session.sh's data (a fresh 6 h render, MAPS's six virtual
    # pianos, noise alone) at 1e-4: validation flat (train/runs/README.md)
    PYTHON=$PY MAX_STEPS=26996 SESSION_DATA=work/data-lowlat,work/data-render-s2,work/data-maps-synth,work/data-noise \
        RTPITCH_SESSION=reproduce train/session.sh run 100000
    ;;
stream-gru)
    # the stream trunk + a GRU + a pedal head (an experiment, not shipped): from the stream
    # run's kept weights (function-preserving start), train/session.sh's data and recipe
    PYTHON=$PY RUN=stream-gru INIT=train/runs/stream MAX_STEPS=1997 RTPITCH_SESSION=reproduce \
        train/session.sh run 100000
    ;;
stream-wide)
    # an experiment, not shipped yet: the stream recipe on a wider CNN (train/model.py),
    # with all the data and bfloat16 from step 0; its curve goes beside the stream run's
    lowlat_data
    RUN=work/runs/stream-wide
    D=work/data-lowlat,work/data-lowlat-s1,work/data-noise
    ARGS=(--arch stream-wide --lookaheads 0,1,2,4,6,9 --lookahead 2 --seq 400 --batch 8 --eval-every 500
          --precision mixed_bfloat16)
    train_phase $RUN $D 3800 1e-3 "${ARGS[@]}"
    train_phase $RUN $D 9000 3e-4 "${ARGS[@]}"
    $PY -m benchmarks.latency_curve --run $RUN --arch stream-wide --prefix stream-wide \
        --models work/curve-wide/models --out benchmarks/results/latency_curve-wide
    ;;
*)
    echo "unknown model $NAME (seed-cnn, stream, stream-fast, stream-cnn, stream-wide, stream-gru)" >&2
    exit 2
    ;;
esac
