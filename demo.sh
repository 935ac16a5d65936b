#!/usr/bin/env bash
# The README's first command: set up, then play the bundled recording through
# `rtpitch listen` as if it were a microphone.
#
#   ./demo.sh                 # benchmarks/audio/demo.flac -> virtual MIDI port "rtpitch" + take.mid
#   ./demo.sh --model fake    # extra arguments go to `rtpitch listen`
#
# Needs Debian/Ubuntu with Python >= 3.10 (3.11 recommended) and root or sudo
# for the system packages (PortAudio, JACK, libsndfile); the package goes into
# .venv. Where there is no ALSA sequencer (/dev/snd/seq; containers) and no JACK
# server runs, a JACK server with the dummy backend is started for the virtual
# MIDI port and stopped again at exit. Ctrl-C ends the take; take.mid is
# written either way.
set -Eeuo pipefail
trap 'echo "demo.sh: FAILED at line $LINENO: $BASH_COMMAND (exit $?)" >&2' ERR

cd "$(dirname "$0")"

INPUT=benchmarks/audio/demo.flac
APT_PACKAGES=(libportaudio2 jackd2 libsndfile1)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "demo.sh: need root or sudo to run: $*" >&2
        return 1
    fi
}

missing_packages() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
    PY=$(command -v python3.11 || command -v python3 || true)
fi
if [ -z "$PY" ] || ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "demo.sh: need Python >= 3.10 (3.11 recommended); set PYTHON=/path/to/python3" >&2
    exit 1
fi

# -- set up (skipped when done) --------------------------------------------------
need=($(missing_packages "${APT_PACKAGES[@]}"))
if [ ! -x .venv/bin/python ] && ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
    need+=("python$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')-venv")
fi
if [ "${#need[@]}" -gt 0 ]; then
    echo "demo.sh: installing ${need[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    # noninteractive: jackd2 would otherwise ask about realtime priority and block
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
if [ ! -x .venv/bin/python ]; then
    echo "demo.sh: creating .venv"
    "$PY" -m venv .venv
fi
STAMP=.venv/.rtpitch-installed
if [ ! -x .venv/bin/rtpitch ] || [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    echo "demo.sh: pip install -e . (into .venv)"
    .venv/bin/python -m pip install -q -e .
    touch "$STAMP"
fi
if [ ! -f "$INPUT" ]; then
    echo "demo.sh: $INPUT is missing (it is part of the repository)" >&2
    exit 1
fi

# -- a MIDI system for the virtual port -----------------------------------------
JACKD_PID=
stop_jackd() {
    if [ -n "$JACKD_PID" ] && kill -0 "$JACKD_PID" 2>/dev/null; then
        kill "$JACKD_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$JACKD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$JACKD_PID" 2>/dev/null || true
    fi
}
jack_running() {
    jack_wait -c 2>/dev/null | grep -qx running
}
if [ ! -e /dev/snd/seq ] && ! jack_running; then
    echo "demo.sh: no ALSA sequencer here: starting a JACK server (dummy backend) for the MIDI port"
    JACKD_LOG=$(mktemp -t rtpitch-jackd.XXXXXX.log)
    # own session: the terminal's Ctrl-C must reach rtpitch, not the server under it
    JACK_NO_AUDIO_RESERVATION=1 setsid jackd --no-realtime -d dummy -r 48000 -p 256 \
        >"$JACKD_LOG" 2>&1 </dev/null &
    JACKD_PID=$!
    trap stop_jackd EXIT
    for _ in $(seq 100); do
        jack_running && break
        if ! kill -0 "$JACKD_PID" 2>/dev/null; then
            echo "demo.sh: jackd exited; its log ($JACKD_LOG):" >&2
            cat "$JACKD_LOG" >&2
            exit 1
        fi
        sleep 0.1
    done
    jack_running || { echo "demo.sh: jackd did not start in 10 s (log: $JACKD_LOG)" >&2; exit 1; }
fi

# -- the demo ------------------------------------------------------------------------
echo "demo.sh: rtpitch listen --input $INPUT --midi-out --record take.mid $*"
echo "demo.sh: connect a DAW or MIDI monitor to the port 'rtpitch'; Ctrl-C ends the take"
rc=0
.venv/bin/rtpitch listen --input "$INPUT" --midi-out --record take.mid "$@" || rc=$?
echo "demo.sh: rtpitch is installed in .venv: run '. .venv/bin/activate' in your shell, then 'rtpitch devices'," \
     "'rtpitch listen ...' work as the README writes them (or call .venv/bin/rtpitch)"
exit "$rc"
