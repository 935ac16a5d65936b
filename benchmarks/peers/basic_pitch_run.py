"""Basic Pitch (Spotify, ICASSP 2022) through its shipped ONNX model on ONNX Runtime.

Runs in the peers' venv (benchmarks/peers/setup.sh): basic-pitch 0.4.0 installed
with --no-deps, without TensorFlow, CoreML or tflite-runtime, so the package's
``ICASSP_2022_MODEL_PATH`` is ``saved_models/icassp_2022/nmp.onnx``. The driver
checks that, and replaces the package's InferenceSession with one limited to
``--threads`` (the package's own uses every core). Notes come from
``basic_pitch.inference.predict`` with its default thresholds (what a user of
``basic-pitch`` gets); velocity = round(127 * amplitude) as the package writes it.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

logging.disable(logging.WARNING)  # "Tensorflow is not installed" etc. at import: expected here
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")  # resampy's import

from benchmarks.peers.common import parse_args, run  # noqa: E402  (after the warning filters)


def main():
    args = parse_args(__doc__.splitlines()[0])
    import importlib.metadata

    import numpy as np
    import onnxruntime as ort

    import basic_pitch
    from basic_pitch.inference import Model, predict

    path = str(basic_pitch.ICASSP_2022_MODEL_PATH)
    if not path.endswith(".onnx"):
        sys.exit(f"basic-pitch picked {path}, not its ONNX model: is TensorFlow/CoreML/tflite installed here?")

    def load():
        model = Model(basic_pitch.ICASSP_2022_MODEL_PATH)
        assert model.model_type == Model.MODEL_TYPES.ONNX
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.inter_op_num_threads = 1
        model.model = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
        return model

    def transcribe(model, audio):
        _, _, events = predict(audio, model)
        return [(float(s), float(e), int(p), int(np.round(127 * a))) for s, e, p, a, _ in events]

    version = importlib.metadata.version("basic-pitch")
    run("basic-pitch", version + f" (ONNX Runtime {ort.__version__}, {os.path.basename(path)})", args.threads,
        load, _quiet(transcribe), args.files, args.out)


def _quiet(fn):
    import contextlib
    import io

    def wrapped(*a):  # predict() prints a line per file
        with contextlib.redirect_stdout(io.StringIO()):
            return fn(*a)

    return wrapped


if __name__ == "__main__":
    main()
