"""Per-hop compute of models' step graphs alone, side by side.

    taskset -c 0 python -m benchmarks.step_hop --models stream,path/to/gru.json [--hops 8000]

Each model's :class:`~rtpitch.predictor.StepPredictor` (ONNX Runtime, one
thread) gets the same random log-mel stream one frame per hop, the models
interleaved hop by hop so that both see the same machine load. Per model: wall
and thread-CPU time of ``push`` per hop (median / p99 / max, ms), the first 200
hops left out (warm-up). Only the model term of ``benchmarks.compute``, so a
model's cost is seen without the frontend's (e.g. what stream-gru's GRU adds to
stream). Results -> benchmarks/results/step_hop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from rtpitch.backends import make_backend
from rtpitch.errors import RtpitchError
from rtpitch.model import load_model_spec
from rtpitch.predictor import StepPredictor, make_predictor

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
WARMUP = 200


def _stats(ms: np.ndarray) -> dict:
    return {"median": round(float(np.median(ms)), 4), "p99": round(float(np.percentile(ms, 99)), 4),
            "max": round(float(ms.max()), 4), "n": int(ms.size)}


def measure(models: list[str], hops: int, seed: int = 0) -> dict:
    preds, n_mels = {}, None
    for name in models:
        spec = load_model_spec(name)
        pred = make_predictor(make_backend("onnxruntime", spec, threads=1), spec)
        if not isinstance(pred, StepPredictor):
            raise RtpitchError(f"model '{name}' has no step graph")
        if n_mels not in (None, spec.frontend.n_mels):
            raise RtpitchError("the models have different mel bins: compare models of one frontend")
        preds[name], n_mels = pred, spec.frontend.n_mels
    mel = np.random.default_rng(seed).normal(-4.0, 2.0, (hops + WARMUP, n_mels)).astype(np.float32)
    wall = {n: np.empty(len(mel)) for n in preds}
    cpu = {n: np.empty(len(mel)) for n in preds}
    for i in range(len(mel)):
        frame = mel[i : i + 1]
        for name, pred in preds.items():
            c0, t0 = time.thread_time(), time.perf_counter()
            pred.push(frame)
            wall[name][i], cpu[name][i] = time.perf_counter() - t0, time.thread_time() - c0
    return {name: {"wall_ms": _stats(1e3 * wall[name][WARMUP:]), "thread_cpu_ms": _stats(1e3 * cpu[name][WARMUP:]),
                   "recurrent": load_model_spec(name).recurrent} for name in preds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="comma-separated model names or JSON paths")
    ap.add_argument("--hops", type=int, default=8000)
    ap.add_argument("--out", default=os.path.join(RESULTS, "step_hop.json"))
    args = ap.parse_args(argv)
    try:
        res = measure(args.models.split(","), args.hops)
    except RtpitchError as err:
        print(f"step_hop.py: error: {err}", file=sys.stderr)
        return 1
    for name, r in res.items():
        w, c = r["wall_ms"], r["thread_cpu_ms"]
        print(f"{name}: per hop wall median {w['median']:.3f} ms, p99 {w['p99']:.3f} ms, max {w['max']:.3f} ms; "
              f"thread CPU median {c['median']:.3f} ms, p99 {c['p99']:.3f} ms ({w['n']} hops)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"onnxruntime_threads": 1, "hops": args.hops, "models": res}, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
