"""Per-hop compute of each engine stage, and the latency budget of a model.

    python -m benchmarks.compute [--model stream] [--audio FILE] [--seconds 60] [--out FILE.json]
    taskset -c 0 python -m benchmarks.compute     # one-core figures

The measurement is ``rtpitch bench`` (:mod:`rtpitch.bench`) with more audio:
audio at 48 kHz fed to the real engine one hop at a time (the live case:
each ``feed`` completes one frame, so one inference on one window), median /
p99 / max compute per hop of the resampler, the log-mel frontend, inference
and the decoder, and of the whole ``feed`` (total); real-time factor, CPU use
and peak memory; the latency budget with the measured compute term. ONNX
Runtime uses one thread. Results -> benchmarks/results/compute.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from rtpitch.bench import format_report, run_bench
from rtpitch.errors import RtpitchError
from rtpitch.model import DEFAULT_MODEL

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--audio", default=None, help="audio file (default: a synthetic piano-like signal)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default=os.path.join(RESULTS, "compute.json"))
    args = ap.parse_args(argv)
    try:
        res = run_bench(model=args.model, seconds=args.seconds, audio=args.audio)
    except RtpitchError as err:
        print(f"compute.py: error: {err}", file=sys.stderr)
        return 1
    print(format_report(res))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
