#!/usr/bin/env bash
# The peers' own virtual environment, apart from rtpitch's .venv:
#   bash benchmarks/peers/setup.sh            # creates/updates .venv-peers (gitignored)
#   PEERS_VENV=/path bash benchmarks/peers/setup.sh
#
# - Basic Pitch 0.4.0 with --no-deps: no TensorFlow, so the package runs its
#   shipped ONNX model (saved_models/icassp_2022/nmp.onnx) on ONNX Runtime.
#   resampy<0.4.3 and setuptools<81 (pkg_resources) are what it still needs.
# - Transkun 2.0.1 with --no-deps (weights ship in the wheel), CPU torch 2.13,
#   no torchaudio (its compiled extension does not load beside that torch;
#   transkun_run.py stands in for the one pure-Python function transkun calls).
# torch: a local CPU wheel where pip's find-links has one, else PyPI's (larger;
# runs on the CPU all the same). Used by benchmarks/accuracy.py.
set -Eeuo pipefail
cd "$(dirname "$0")/../.."
VENV="${PEERS_VENV:-.venv-peers}"
PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --no-deps basic-pitch==0.4.0 transkun==2.0.1
"$VENV/bin/python" -m pip install -q numpy scipy soundfile soxr librosa mir_eval pretty_midi \
    'resampy<0.4.3' 'setuptools<81' typing_extensions onnxruntime moduleconf \
    torch==2.13.0
echo "peers venv ready: $VENV"
