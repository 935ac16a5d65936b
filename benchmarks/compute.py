"""Per-hop compute of each engine stage, and the latency budget of a model.

    python benchmarks/compute.py --model seed-cnn [--audio FILE] [--seconds 60] [--out results/compute.json]

Feeds audio through the real engine one hop at a time (the live case: each
``feed`` completes one frame, so one inference on a single 20-frame window)
and reports median / p99 / max compute per hop of the frontend (resampling
excluded: the input is at the model rate), ONNX Runtime inference and the
decoder.  Pin it to one core with ``taskset -c 0`` for one-core figures; the
ONNX Runtime backend uses one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np

from rtpitch.backends import make_backend
from rtpitch.engine import Engine
from rtpitch.latency import latency_budget
from rtpitch.model import load_model_spec


def stats_ms(values) -> dict:
    a = 1e3 * np.asarray(values, dtype=np.float64)
    return {"median": round(float(np.median(a)), 4), "p99": round(float(np.percentile(a, 99)), 4),
            "max": round(float(a.max()), 4), "n": int(a.size)}


def load_audio(path: str | None, sr: int, seconds: float) -> np.ndarray:
    if path is None:
        rng = np.random.default_rng(0)
        t = np.arange(int(seconds * sr)) / sr
        # a few sustained partials plus noise: keeps the decoder busy
        x = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (110, 262, 330, 392, 523))
        return (x + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    import soundfile as sf
    import soxr

    x, file_sr = sf.read(path, dtype="float32", always_2d=True)
    x = soxr.resample(x.mean(1), file_sr, sr).astype(np.float32)
    return x[: int(seconds * sr)]


def measure(model: str, audio: str | None, seconds: float) -> dict:
    spec = load_model_spec(model)
    backend = make_backend("onnxruntime", spec, threads=1)
    sr, hop = spec.frontend.sample_rate, spec.frontend.hop_length
    x = load_audio(audio, sr, seconds)
    engine = Engine(spec, backend, source_rate=sr, keep_timings=True)
    for i in range(0, x.size - hop + 1, hop):
        engine.feed(x[i : i + hop])
    engine.finish()
    t = engine.timings
    warm = 50  # skip the first hops (JIT, caches)
    total = np.asarray(t.frontend[warm : warm + len(t.inference[warm:])]) + np.asarray(t.inference[warm:]) \
        + np.asarray(t.decoder[warm:])
    hop_ms = 1e3 * spec.frontend.hop_s
    per_hop = {"frontend": stats_ms(t.frontend[warm:]), "inference": stats_ms(t.inference[warm:]),
               "decoder": stats_ms(t.decoder[warm:]), "total": stats_ms(total)}
    terms = latency_budget(spec, capture_block_s=256 / 48000, resampler_delay_s=0.0,
                           compute_s=per_hop["total"]["median"] / 1e3)
    return {
        "model": spec.name, "audio_s": round(x.size / sr, 1), "hop_ms": hop_ms,
        "per_hop_ms": per_hop,
        "real_time_factor": round(per_hop["total"]["median"] / hop_ms, 4),
        "latency_budget_ms": {name: round(ms, 2) for name, ms in terms},
        "machine": {"cpu": _cpu_name(), "python": platform.python_version(),
                    "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None},
    }


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="seed-cnn")
    ap.add_argument("--audio", default=None, help="audio file (default: a synthetic chord signal)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    res = measure(args.model, args.audio, args.seconds)
    print(f"model {res['model']}: per-hop compute (ms, hop {res['hop_ms']:g} ms, {res['audio_s']} s of audio)")
    for stage, s in res["per_hop_ms"].items():
        print(f"  {stage:<10} median {s['median']:.3f}  p99 {s['p99']:.3f}  max {s['max']:.3f}")
    print("latency budget (ms; capture block = 256 frames at 48 kHz, input already at the model rate):")
    for name, ms in res["latency_budget_ms"].items():
        print(f"  {name:<40} {ms:7.2f}")
    print(f"  {'total':<40} {sum(res['latency_budget_ms'].values()):7.2f}")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
