"""Archive throughput: audio hours transcribed per hour, one process, all cores, a local Ray cluster.

    python -m benchmarks.archive_throughput [--audio DIR] [--limit N] [--modes jobs1,jobs2,ray]
                                            [--jobs 2] [--tiny-files 60] [--out FILE.json]
    python -m benchmarks.archive_throughput --tiny      # CI: three 4-second files, no Ray

The same files (default: the 14 MAPS ENSTDkCl pieces, 44 min, in
``../shared/data/real/maps-enstdkcl/flac``) go through
:func:`rtpitch.archive.transcribe_many` as ``rtpitch transcribe DIR --out-dir
OUT --overwrite`` with ``--jobs 1``, ``--jobs N`` and ``--ray`` (a local Ray
instance with N CPUs, started before the clock runs; its start time is given
apart). For each: wall time including worker start and model loads,
throughput (audio hours per hour = audio seconds / wall seconds), the summed
per-file transcription time (wall and CPU) in the workers, the overhead per
file (``(wall x workers - summed per-file wall) / files``: start-up, dispatch,
idle workers at the end), and whether every output is the bytes of the
``--jobs 1`` run.

Per-file overhead is measured apart on ``--tiny-files`` files of 0.5 s
(transcription nearly free), through ``--jobs N`` and through Ray: each
is run on K/4 and on K files, and the wall-time difference over the
difference in files (times workers) is the marginal cost of a file per
worker, so a pool's start and model loads cancel out; minus the file's own
transcription time, it is the dispatch overhead (Ray: a task's
submission, scheduling and result; the pool: pickling and a pipe).

The projection to N machines uses the CPU time per audio second measured here
(ONNX Runtime, one thread per worker); it assumes inputs on storage every node
reads at the needed rate. Results -> benchmarks/results/archive_throughput.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RTPITCH_SHARED_DATA") or REPO.parent / "shared" / "data")
RESULTS = REPO / "benchmarks" / "results"


def _machine() -> dict:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import onnxruntime

    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "load_average_1min": round(os.getloadavg()[0], 2)}


def _mids(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.mid"))}


def run_mode(mode: str, inputs: list[str], out: Path, *, jobs: int) -> dict:
    """One pass over ``inputs``: figures and the outputs written."""
    from rtpitch.archive import transcribe_many

    workers = 1 if mode == "jobs1" else jobs
    kw = {"jobs": 1} if mode == "jobs1" else ({"ray": True} if mode == "ray" else {"jobs": jobs})
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    results = transcribe_many(inputs, out_dir=out, overwrite=True, **kw)
    wall = time.monotonic() - t0
    failed = [r for r in results if r.status != "done"]
    audio = sum(r.duration_s for r in results if r.duration_s)
    per_file_wall = sum(r.wall_s for r in results if r.wall_s)
    per_file_cpu = sum(r.cpu_s for r in results if r.cpu_s)
    return {
        "workers": workers,
        "files": len(results),
        "failed": len(failed),
        "audio_s": round(audio, 2),
        "wall_s": round(wall, 2),
        "audio_hours_per_hour": round(audio / wall, 2),
        "sum_file_wall_s": round(per_file_wall, 2),
        "sum_file_cpu_s": round(per_file_cpu, 2),
        "rtf_wall_mean": round(per_file_wall / audio, 4),
        "rtf_cpu_mean": round(per_file_cpu / audio, 4),
        "overhead_per_file_s": round((wall * workers - per_file_wall) / len(results), 3),
        "load_average_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
    }


def tiny_files(folder: Path, n: int) -> list[str]:
    """``n`` WAVs of 0.5 s of quiet noise (16 kHz): transcription costs almost nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"t{i:03d}.wav"
        sf.write(p, (rng.standard_normal(8000) * 1e-3).astype(np.float32), 16000)
        paths.append(str(p))
    return paths


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--audio", default=str(SHARED / "real" / "maps-enstdkcl" / "flac"), help="folder of audio files")
    ap.add_argument("--limit", type=int, default=None, help="only the first N files (sorted)")
    ap.add_argument("--modes", default="jobs1,jobs2,ray", help="comma list of jobs1, jobs2 (--jobs N), ray")
    ap.add_argument("--jobs", type=int, default=2, help="processes for jobs2 and CPUs of the local Ray instance")
    ap.add_argument("--tiny-files", type=int, default=60, help="0.5 s files for Ray's per-file overhead (0: skip)")
    ap.add_argument("--tiny", action="store_true", help="CI: three copies of the 4 s fixture, jobs1 and jobs2")
    ap.add_argument("--note", default="", help="a remark stored with the results (e.g. what else ran)")
    ap.add_argument("--out", default=str(RESULTS / "archive_throughput.json"))
    args = ap.parse_args(argv)

    from rtpitch.archive import plan

    tmp = Path(tempfile.mkdtemp(prefix="rtpitch-archive-bench-"))
    try:
        if args.tiny:
            src = SHARED / "fixtures" / "madmom" / "stereo_sample.wav"
            for i in range(3):
                shutil.copy(src, tmp / f"f{i}.wav")
            inputs = sorted(str(p) for p in tmp.glob("f*.wav"))
            modes = ["jobs1", "jobs2"]
            args.tiny_files = 0
        else:
            inputs = [t.input for t in plan([args.audio])]
            modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        inputs = inputs[: args.limit] if args.limit else inputs
        if "ray" in modes and importlib.util.find_spec("ray") is None:
            print("archive_throughput: Ray not installed (pip install '.[cluster]'): no ray mode", file=sys.stderr)
            modes.remove("ray")
        report = {"machine": _machine(), "note": args.note, "inputs": {"folder": args.audio, "files": len(inputs)},
                  "command": "python -m benchmarks.archive_throughput " + " ".join(argv if argv is not None
                                                                                     else sys.argv[1:]),
                  "modes": {}}
        ray = None
        if "ray" in modes:
            import ray as _ray

            from rtpitch.archive_ray import connect

            ray = _ray
            t0 = time.monotonic()
            connect(ray, address=None, num_cpus=args.jobs)
            report["ray_start_s"] = round(time.monotonic() - t0, 2)
            report["ray_version"] = ray.__version__
        outs = {}
        for mode in modes:
            out = tmp / f"out-{mode}"
            res = run_mode(mode, inputs, out, jobs=args.jobs)
            outs[mode] = _mids(out)
            res["outputs_identical_to_jobs1"] = outs[mode] == outs.get("jobs1", outs[mode])
            report["modes"][mode] = res
            print(f"{mode}: {res['files']} files, {res['audio_s'] / 60:.1f} min of audio in {res['wall_s']:.1f} s: "
                  f"{res['audio_hours_per_hour']:.1f} audio h/h; per-file overhead {res['overhead_per_file_s']:.3f} s; "
                  f"outputs = jobs1: {res['outputs_identical_to_jobs1']}", flush=True)
        if args.tiny_files:
            # the marginal cost of a file: K/4 and K tiny files, the difference over the difference in files
            # (a pool's start and model loads cancel out; Ray's workers are warm from the pass above)
            small_n = max(2, args.tiny_files // 4)
            small = tiny_files(tmp / "tiny", args.tiny_files)
            tiny = {}
            for mode in [m for m in modes if m != "jobs1"]:
                few = run_mode(mode, small[:small_n], tmp / f"tiny-{mode}-few", jobs=args.jobs)
                many = run_mode(mode, small, tmp / f"tiny-{mode}", jobs=args.jobs)
                workers = many["workers"]
                per_file = (many["wall_s"] - few["wall_s"]) * workers / (args.tiny_files - small_n)
                res = {
                    "workers": workers, "files": [small_n, args.tiny_files], "wall_s": [few["wall_s"], many["wall_s"]],
                    "wall_per_file_per_worker_s": round(per_file, 4),
                    "transcription_per_file_s": round(many["sum_file_wall_s"] / args.tiny_files, 4),
                    "fixed_cost_s": round(few["wall_s"] - small_n * per_file / workers, 2),
                }
                res["overhead_per_file_s"] = round(per_file - res["transcription_per_file_s"], 4)
                tiny[mode] = res
                print(f"tiny {mode}: {small_n} and {args.tiny_files} x 0.5 s files in {few['wall_s']:.1f} and "
                      f"{many['wall_s']:.1f} s: {per_file:.3f} s per file per worker, of which transcription "
                      f"{res['transcription_per_file_s']:.3f} s; fixed cost {res['fixed_cost_s']:.1f} s", flush=True)
            report["tiny_files"] = tiny
            if "ray" in tiny:
                report["ray_overhead_per_file_s"] = tiny["ray"]["overhead_per_file_s"]
        if ray is not None:
            ray.shutdown()
        base = report["modes"].get("jobs1")
        if base:
            cpu_per_audio = base["sum_file_cpu_s"] / base["audio_s"]
            report["projection"] = {
                "cpu_s_per_audio_s": round(cpu_per_audio, 4),
                "audio_hours_per_cpu_hour": round(1 / cpu_per_audio, 1),
                "formula": "audio h/h on N machines of C cores ~= N x C x audio_hours_per_cpu_hour x efficiency "
                           "(efficiency: measured audio h/h / (workers x audio_hours_per_cpu_hour))",
                "efficiency": {m: round(r["audio_hours_per_hour"] / (r["workers"] / cpu_per_audio), 3)
                               for m, r in report["modes"].items()},
            }
        report["machine"]["load_average_1min_end"] = round(os.getloadavg()[0], 2)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=2)
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
