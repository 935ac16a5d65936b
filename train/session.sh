#!/usr/bin/env bash
# Training that moves forward in every working session (issue 21): each session
# starts the trainer in the background early, works on other things, and keeps
# the run's checkpoint in the repository before it ends.
#
#   train/session.sh start [MINUTES]  # build missing data, resume RUN from train/runs/RUN,
#                                     # train in the background for MINUTES (default 120)
#   train/session.sh build            # build the missing data alone (start does it first)
#   train/session.sh status           # the trainer's pid and last log lines
#   train/session.sh stop             # SIGTERM: the trainer checkpoints and exits; then keep
#   train/session.sh keep             # copy the newest checkpoint + logs to train/runs/RUN
#                                     # (weights alone, train/slim_checkpoint.py, if over 20 MB)
#
# Environment: RUN (default stream), ARCH (default: RUN's name), INIT (a kept run a new
# RUN starts from: train.py --init-from; several, comma-separated, each over the one before), LR (default 1e-4), DATA (../shared/data),
# PYTHON (default .venv/bin/python), RTPITCH_SESSION (label of the session line),
# SESSION_DATA (the dataset folders, comma-separated: an earlier session's list, to rerun its phases;
# start builds those missing, by their names), FRONTEND (default train/frontend-lowlat.json: the one
# the data is made with; a folder made with another one is a separate folder, e.g. work/fall176/data-lowlat),
# NICE (default 19: the foreground work and tests come first; live-timing tests fail beside
# a trainer that gets more), MAX_STEPS (train.py --max-steps; train/reproduce.sh),
# TRAIN_ARGS (more train.py options, e.g. "--onset-width 2"; an ablation's own setting),
# TRAINER_GB (default 8: memory a trainer holds; start refuses one more than the machine holds),
# JOBS (default 2: rendering processes of a data build; 1 beside two trainers on 24 GB).
# Everything except train/runs/RUN is rebuilt by this script (deterministic seeds):
# the datasets under work/ and the Salamander samples under cache/.
# Log: work/session-RUN.log; pid: work/session-RUN.pid. The trainer appends one line
# per invocation to RUN/sessions.jsonl (steps, CPU-hours, validation figures).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${RUN:-stream}
ARCH=${ARCH:-$RUN}
INIT=${INIT:-}
LR=${LR:-1e-4}
DATA=${RTPITCH_DATA:-../shared/data}
PY=${PYTHON:-.venv/bin/python}
WORK=work/runs/$RUN
KEPT=train/runs/$RUN
LOG=work/session-$RUN.log
PIDFILE=work/session-$RUN.pid
FRONTEND=${FRONTEND:-train/frontend-lowlat.json}
JOBS=${JOBS:-2}  # rendering processes of a data build (each holds about 0.8 GB)
# the session run's data (build_one below says what each folder holds; the first one's val/ is what
# train.py validates on)
D=${SESSION_DATA:-work/data-lowlat,work/data-render-s2,work/data-maps-synth,work/data-noise,work/data-render-s4}
# --keep-every: the checkpoints at every 250 steps stay in work/runs/RUN/kept/, so runs compare at equal
# steps through the engine (benchmarks/latency_curve.py --checkpoint)
ARGS=(--arch "$ARCH" --lookaheads 0,1,2,4,6,9 --lookahead 2 --seq 400 --batch 8 --eval-every 500
      --precision mixed_bfloat16 --keep-every 250)

SIX_PIANOS=salamander,fluid-r3,musescore,timgm6mb,headroom-c3,splendid-grand  # every timbre build_dataset has

build_one() {  # the dataset folder $1, from its name (data-lowlat, data-noise, ...; any parent folder)
    local out=$1 R=(--data "$DATA" --out "$1" --jobs "$JOBS" --frontend "$FRONTEND")
    case $(basename "$out") in
    data-lowlat)  # validation: the stream run's (seed 0, 0.5 h), so its figures compare across sessions
        $PY -m train.build_dataset "${R[@]}" --hours-train 0 --hours-val 0.5 --seed 0 ;;
    data-noise)  # 2 h of noise alone
        $PY -m train.build_noise --out "$out" --segments 240 --seconds 30 --frontend "$FRONTEND" ;;
    data-maps-synth)  # MAPS's six virtual pianos, 2 augmented copies, 5.2 h
        $PY -m train.build_maps_synth --data "$DATA" --out "$out" --copies 2 --jobs "$JOBS" --frontend "$FRONTEND" ;;
    data-render-s2)  # a fresh 6 h render
        $PY -m train.build_dataset "${R[@]}" --hours-train 6 --hours-val 0 --seed 2 ;;
    data-render-s4)  # from 2026-12-05e: 8 h with all six pianos (the Yamaha C3 and Steinway samples too; its
        # 0.5 h val/ scores every timbre)
        $PY -m train.build_dataset "${R[@]}" --hours-train 8 --hours-val 0.5 --seed 4 --timbres $SIX_PIANOS ;;
    data-render-s5-soft)  # from 2026-12-06f: 6.5 h played softer (MAPS's median velocity is 47, the
        # collections' 70), chords' notes differing in loudness (stream-keys-h16-soft)
        $PY -m train.build_dataset "${R[@]}" --hours-train 6 --hours-val 0.5 --seed 5 --timbres $SIX_PIANOS \
            --velocity-scale 0.45,1.0 --velocity-spread 0.15 ;;
    data-render-s[0-9]*-dyn)  # data-render-s6-dyn from 2026-12-06h: 6.5 h with wider dynamics (soft notes sink
        # under loud ones as in MAPS: onsets' level in their recording, 10th percentile, -30.5 dB against MAPS's
        # -35.7 and the other renders' -27.4 to -29.3; benchmarks/results/onset_levels.json) (stream-keys-h16-dyn).
        # Another seed (data-render-s9-dyn, ...) is a fresh render of the same recipe: other pieces, other draws
        local seed
        seed=$(basename "$out")
        seed=${seed#data-render-s}
        seed=${seed%-dyn}
        $PY -m train.build_dataset "${R[@]}" --hours-train 6 --hours-val 0.5 --seed "$seed" --timbres $SIX_PIANOS \
            --velocity-curve 1.0,2.0 --velocity-spread 0.15 ;;
    data-render-s7-deep)  # from 2026-12-07: 6.5 h as deep as MAPS (a 0.4 h probe: onsets' level, 10th
        # percentile / median, -34.4 / -20.3 dB against MAPS's -35.7 / -19.4) over a quieter room (noise 30-70 dB
        # under the signal)
        $PY -m train.build_dataset "${R[@]}" --hours-train 6 --hours-val 0.5 --seed 7 --timbres $SIX_PIANOS \
            --velocity-curve 1.5,3.0 --velocity-spread 0.15 --noise-snr 30,70 ;;
    data-render-s8-res)  # from 2026-12-07f: s6-dyn's dynamics with the strings' sympathetic resonance
        # (train/resonance.py: under the pedal every string rings along; a free string's peak 18-30 dB under its input)
        $PY -m train.build_dataset "${R[@]}" --hours-train 6 --hours-val 0.5 --seed 8 --timbres $SIX_PIANOS \
            --velocity-curve 1.0,2.0 --velocity-spread 0.15 --resonance 18,30 ;;
    *)
        echo "build_data: no recipe for $out (the recipes: $(recipe_names))" >&2
        exit 1 ;;
    esac
}

recipe_names() {  # the folder names build_one has a recipe for: its case patterns (s[0-9]* shown as sN)
    sed -n 's/^    \(data-[][a-z0-9*-]*\)).*/\1/p' "$0" | sed 's/s\[0-9\]\*/sN/' | paste -sd, - | sed 's/,/, /g'
}

build_data() {  # the folders the run trains on (D), each made with FRONTEND
    train/fetch_samples.sh cache/salamander
    local folder
    for folder in ${D//,/ }; do
        build_one "$folder"
    done
}

resume_from_repo() {  # a machine without the run starts from the kept checkpoint
    if [ ! -d "$WORK/ckpt" ] && [ ! -d "$WORK/weights" ] && { [ -d "$KEPT/ckpt" ] || [ -d "$KEPT/weights" ]; }; then
        mkdir -p work/runs && cp -r "$KEPT" "$WORK"
    fi
}

newest() {  # the newest checkpoint prefix in folder $1
    sed -n 's/^model_checkpoint_path: "\(.*\)"$/\1/p' "$1/checkpoint" 2>/dev/null
}

keep() {  # one checkpoint (the newest) and the run's logs into train/runs/RUN
    local prefix src=ckpt
    prefix=$(newest "$WORK/ckpt")
    [ -n "$prefix" ] || { echo "keep: no checkpoint in $WORK/ckpt" >&2; exit 1; }
    if [ -n "$(find "$WORK/ckpt" -name "$prefix.*" -size +20M)" ]; then
        # weights + Adam's moments are over the file limit: keep the weights alone
        $PY -m train.slim_checkpoint "$WORK"
        src=weights
        prefix=$(newest "$WORK/weights")
    fi
    rm -rf "$KEPT/new" && mkdir -p "$KEPT/new"
    cp "$WORK/$src/$prefix".* "$KEPT/new/"
    printf 'model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' "$prefix" "$prefix" \
        > "$KEPT/new/checkpoint"
    local big
    big=$(find "$KEPT/new" -size +20M)
    if [ -n "$big" ]; then
        rm -rf "$KEPT/new"
        echo "keep: over the 20 MB file limit: $big" >&2
        exit 1
    fi
    rm -rf "$KEPT/ckpt" "$KEPT/weights" && mv "$KEPT/new" "$KEPT/$src"
    for f in state.json log.jsonl recipe.jsonl sessions.jsonl mel_stats.npz; do
        [ -f "$WORK/$f" ] && cp "$WORK/$f" "$KEPT/$f"
    done
    echo "kept $KEPT at $src/$prefix"
}

room_for_another_trainer() {  # each trainer holds the session data in memory (about 8 GB, TRAINER_GB); the
    # kernel's OOM killer ends one that does not fit, without its checkpoint or session line
    local running=0 f total_gb
    for f in work/session-*.pid; do
        running_pid "$f" > /dev/null && running=$((running + 1))
    done
    total_gb=$(awk '/^MemTotal:/ {print int($2 / 1048576)}' /proc/meminfo 2>/dev/null || echo 0)
    if [ "$total_gb" -gt 0 ] && [ $(( (running + 1) * ${TRAINER_GB:-8} )) -gt "$total_gb" ]; then
        echo "not starting $RUN: $running trainer(s) running and $total_gb GB of memory; each needs about" \
             "${TRAINER_GB:-8} GB (TRAINER_GB). Stop one first (train/session.sh stop)." >&2
        exit 1
    fi
}

running_pid() {  # [PIDFILE]: the pid it names, if that process is alive (default: this run's)
    local f=${1:-$PIDFILE}
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

case "${1:-}" in
start)
    MINUTES=${2:-120}
    if pid=$(running_pid); then echo "trainer already running (pid $pid); log $LOG"; exit 0; fi
    room_for_another_trainer
    mkdir -p work
    nohup "$0" run "$MINUTES" > "$LOG" 2>&1 &
    echo $! > "$PIDFILE"
    echo "trainer started (pid $!), $MINUTES min; log $LOG"
    ;;
run)  # the background job (start runs this)
    MINUTES=${2:-120}
    T_END=$(( $(date +%s) + MINUTES * 60 ))
    build_data
    resume_from_repo
    left=$(( (T_END - $(date +%s)) / 60 ))
    if [ "$left" -lt 5 ]; then echo "no time left to train after the data build"; exit 0; fi
    # exec: the pid file then names the trainer itself, which checkpoints on SIGTERM
    if [ -n "$INIT" ]; then ARGS+=(--init-from "$INIT"); fi
    if [ -n "${MAX_STEPS:-}" ]; then ARGS+=(--max-steps "$MAX_STEPS"); fi
    if [ -n "${TRAIN_ARGS:-}" ]; then read -r -a extra <<< "$TRAIN_ARGS"; ARGS+=("${extra[@]}"); fi
    exec nice -n "${NICE:-19}" $PY -m train.train --data "$D" --run "$WORK" --lr "$LR" --minutes "$left" "${ARGS[@]}"
    ;;
build)  # build the missing data alone (as start does first)
    build_data
    ;;
status)
    if pid=$(running_pid); then echo "running (pid $pid)"; else echo "not running"; fi
    [ -f "$LOG" ] && tail -n 5 "$LOG"
    ;;
stop)
    if pid=$(running_pid); then
        kill -TERM "$pid"
        echo "waiting for the trainer (pid $pid) to checkpoint"
        while kill -0 "$pid" 2>/dev/null; do sleep 2; done
    fi
    keep
    ;;
keep)
    keep
    ;;
*)
    sed -n '2,23p' "$0" >&2
    exit 2
    ;;
esac
