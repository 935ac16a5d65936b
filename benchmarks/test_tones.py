"""What the shipped models do with test tones (README, "A test tone is not a piano").

    python -m benchmarks.test_tones [--models stream,stream-fast,stream-fastest,seed-cnn]

Each signal is written as a 44.1 kHz WAV and run through ``rtpitch transcribe``'s
path (``rtpitch.runner.transcribe_file``, ONNX Runtime, one thread); every note-on
is listed (time in s, note name). Signals: 3 s sines at -10 dBFS (440, 262 and
1 000 Hz), a 440 Hz sine at -3 dBFS that stops abruptly after 1 s, and a decaying
A4 with 8 harmonics (amplitude 1/k, 1.5 s decay). Writes
benchmarks/results/test_tones.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SR = 44100


def _sine(freq: float, seconds: float, dbfs: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (10 ** (dbfs / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def signals() -> dict[str, np.ndarray]:
    """name -> mono float32 at 44.1 kHz; 0.5 s of silence after each."""
    t = np.arange(3 * SR) / SR
    decaying = sum(np.sin(2 * np.pi * 440.0 * k * t) / k for k in range(1, 9)) * np.exp(-t / 1.5)
    sigs = {
        "sine 440 Hz, -10 dBFS, 3 s": _sine(440.0, 3.0, -10.0),
        "sine 262 Hz, -10 dBFS, 3 s": _sine(262.0, 3.0, -10.0),
        "sine 1 kHz, -10 dBFS, 3 s": _sine(1000.0, 3.0, -10.0),
        "sine 440 Hz, -3 dBFS, stops after 1 s": _sine(440.0, 1.0, -3.0),
        "A4 with 8 harmonics, decaying": (0.3 * decaying / np.abs(decaying).max()).astype(np.float32),
    }
    return {k: np.concatenate([v, np.zeros(SR // 2, np.float32)]) for k, v in sigs.items()}


def main(argv=None) -> int:
    import soundfile as sf

    from rtpitch.backends import make_backend
    from rtpitch.model import load_model_spec
    from rtpitch.runner import transcribe_file
    from rtpitch.sinks.terminal import note_name

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="stream,stream-fast,stream-fastest,seed-cnn")
    ap.add_argument("--out", default=str(RESULTS / "test_tones.json"))
    args = ap.parse_args(argv)
    out = {"benchmark": "test_tones", "rate": SR, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for i, (name, x) in enumerate(signals().items()):
            paths[name] = Path(tmp) / f"tone{i}.wav"
            sf.write(paths[name], x, SR, subtype="FLOAT")
        for model in args.models.split(","):
            spec = load_model_spec(model)
            backend = make_backend("onnxruntime", spec, threads=1)
            rows = {}
            for name, path in paths.items():
                ons = [(round(e.time_s, 2), note_name(e.pitch)) for e in transcribe_file(str(path), spec, backend).events
                       if e.on]
                rows[name] = ons
                print(f"{model:12s} {name:40s} {ons}")
            out["results"][model] = rows
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
