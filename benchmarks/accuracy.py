"""Accuracy and speed side by side: rtpitch and peer transcribers on the same audio.

    python -m benchmarks.accuracy                      # real MAPS + rendered, all systems
    python -m benchmarks.accuracy --tiny               # CI: one 8 s excerpt, rtpitch only
    python -m benchmarks.accuracy --systems rtpitch,basic-pitch --rendered-limit 5

Sets:
  real      the 14 real MAPS ENSTDkCl recordings (../shared/data/real/maps-enstdkcl:
            flac/ + tsv/; a Disklavier, close microphones, 16 kHz)
  rendered  held-out rendered pieces: work/data/val/*.flac + .tsv when present
            (the training pipeline's validation split), else benchmarks/audio/*.flac

Systems (all on the CPU, ``--threads`` threads each, default 1):
  rtpitch      the model given by ``--model`` (default: the default model; seed-cnn is the seed's CNN as
               reproduced here), streamed through rtpitch's engine exactly as
               ``rtpitch transcribe`` does (in this process)
  basic-pitch  Spotify's Basic Pitch 0.4.0, its shipped ONNX model on ONNX Runtime
  transkun     Transkun 2.0.1 (shipped weights, CPU PyTorch) -- an OFFLINE
               transcriber (16 s segments, semi-CRF decoding), shown for accuracy
Peers run as subprocesses of their own venv (benchmarks/peers/setup.sh makes
.venv-peers) through the drivers in benchmarks/peers/; a peer whose venv is
missing is skipped with the reason printed and stored.

Scoring: train/evaluate.py's ``score`` (mir_eval: note onset F1 at 50 ms, note
with offset F1 (ratio 0.2, min 50 ms), the same with velocity, frame F1 on a
10 ms grid) against key-release offsets; means over files. Speed: real-time
factor = transcription wall time / audio time, model loading excluded (each
system first loads its model and transcribes a short warm-up signal).

Transkun is slow on a CPU: it gets a time budget per set (``--transkun-minutes``)
and runs the files shortest first until the budget is spent; the JSON then says
which files it covered, and every system is also scored on that common subset.

Results -> benchmarks/results/accuracy.json and pianoroll.png (an excerpt of one
MAPS piece: reference, rtpitch, each peer, one under the other). Estimated note
lists stay in benchmarks/results/work/ (gitignored).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

from rtpitch.bench import machine_info
from rtpitch.model import DEFAULT_MODEL
from train.evaluate import events_to_notes, read_tsv, score

SHARED = Path(os.environ.get("RTPITCH_SHARED_DATA") or REPO.parent / "shared" / "data")
REAL = SHARED / "real" / "maps-enstdkcl"
RESULTS = REPO / "benchmarks" / "results"
PEERS_PY = REPO / ".venv-peers" / "bin" / "python"
SYSTEMS = ("rtpitch", "basic-pitch", "transkun")
DRIVERS = {"basic-pitch": "benchmarks.peers.basic_pitch_run", "transkun": "benchmarks.peers.transkun_run"}
OFFLINE = {"rtpitch": False, "basic-pitch": False, "transkun": True}
METRICS = ("note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1")
ROLL_FILE = "MAPS_MUS-chpn-p19_ENSTDkCl"


# -- data ------------------------------------------------------------------------------
def real_pairs(folder: Path) -> list[tuple[str, str]]:
    flacs = sorted(glob.glob(str(folder / "flac" / "*.flac")))
    return [(f, str(folder / "tsv" / (Path(f).stem + ".tsv"))) for f in flacs]


def rendered_pairs(folder: Path, limit: int) -> list[tuple[str, str]]:
    flacs = sorted(glob.glob(str(folder / "*.flac")))
    pairs = [(f, f[:-5] + ".tsv") for f in flacs if os.path.exists(f[:-5] + ".tsv")]
    return pairs[:limit]


def duration(path: str) -> float:
    import soundfile as sf

    return sf.info(path).duration


def load_notes(path: str) -> np.ndarray:
    """(n, 4) onset, offset, pitch, velocity from a .tsv with one header line (empty -> (0, 4))."""
    with open(path) as f:
        rows = [line for line in f.read().splitlines()[1:] if line.strip()]
    if not rows:
        return np.zeros((0, 4))
    return read_tsv(path)


def set_dir(work: Path, set_name: str) -> Path:
    return work / set_name.replace(":", "_").replace("/", "_")


def write_notes(path: Path, notes: np.ndarray) -> None:
    with open(path, "w") as f:
        f.write("onset\toffset\tpitch\tvelocity\n")
        for on, off, p, v in notes:
            f.write(f"{on:.6f}\t{off:.6f}\t{int(p)}\t{int(v)}\n")


# -- systems -----------------------------------------------------------------------------
def run_rtpitch(pairs, out_dir: Path, *, model: str, threads: int) -> dict:
    """rtpitch's transcribe path in this process; returns {file: {audio_s, wall_s}} and writes .tsv."""
    from rtpitch.backends import make_backend
    from rtpitch.engine import Engine
    from rtpitch.model import load_model_spec
    from rtpitch.runner import transcribe_file, warm_up

    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    spec = load_model_spec(model)
    backend = make_backend("onnxruntime", spec, threads=threads)
    warm_up(Engine(spec, backend, source_rate=44100), seconds=2.0)
    load_s = time.perf_counter() - t0
    rows = []
    for audio, _ in pairs:
        t0, c0 = time.perf_counter(), time.process_time()
        summary = transcribe_file(audio, spec, backend)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        notes = events_to_notes(summary.events)
        write_notes(out_dir / (Path(audio).stem + ".tsv"), notes)
        rows.append({"file": os.path.basename(audio), "audio_s": round(summary.audio_s, 3),
                     "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "notes": len(notes)})
        print(f"rtpitch: {os.path.basename(audio)}: {len(notes)} notes, {summary.audio_s:.1f} s audio in "
              f"{wall:.1f} s (RTF {wall / max(summary.audio_s, 1e-9):.3f})", flush=True)
    res = {"system": "rtpitch", "version": f"model {spec.name} ({backend.describe()})", "threads": threads,
           "load_s": round(load_s, 3), "files": rows}
    (out_dir / "timing.json").write_text(json.dumps(res, indent=2))
    return res


def start_peer(name: str, pairs, out_dir: Path, *, threads: int, python: Path) -> subprocess.Popen:
    out_dir.mkdir(parents=True, exist_ok=True)
    # run as a module from the repository root, so the driver imports benchmarks.peers.common
    cmd = [str(python), "-m", DRIVERS[name], "--out", str(out_dir), "--threads", str(threads),
           *[a for a, _ in pairs]]
    log = open(out_dir / "log.txt", "w")
    return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def finish_peer(name: str, proc: subprocess.Popen, out_dir: Path, *, deadline: float | None) -> dict:
    """Wait for a peer (until ``deadline``, time.monotonic(); then stop it) and read its timing.json."""
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    cut = False
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        cut = True
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    timing_path = out_dir / "timing.json"
    log = (out_dir / "log.txt").read_text(errors="replace")
    if not timing_path.is_file():
        why = "stopped at its time budget" if cut else f"exited with {proc.returncode}"
        return {"system": name, "error": f"{why} before its model was loaded; log tail: "
                                         + " | ".join(log.strip().splitlines()[-3:]), "files": []}
    res = json.loads(timing_path.read_text())
    if cut:
        res["cut_at_time_budget"] = True
    elif proc.returncode != 0:
        res["error"] = f"exited with {proc.returncode}; log tail: " + " | ".join(log.strip().splitlines()[-3:])
    timing_path.write_text(json.dumps(res, indent=2))  # with the flags, for --reuse
    return res


def reuse_run(name: str, pairs, out_dir: Path) -> dict | None:
    """A previous run's timing.json (from --reuse), if it covers files of this set."""
    path = out_dir / "timing.json"
    if not path.is_file():
        return None
    res = json.loads(path.read_text())
    names = {os.path.basename(a) for a, _ in pairs}
    if not res.get("files") or not {r["file"] for r in res["files"]} <= names:
        return None
    res["reused"] = True
    print(f"{name}: reusing {len(res['files'])} files from {path}")
    return res


# -- scoring -------------------------------------------------------------------------------
def score_system(run: dict, pairs, out_dir: Path) -> dict:
    """Score every file the system finished; RTF over those files."""
    refs = {os.path.basename(a): t for a, t in pairs}
    per_file = []
    for row in run.get("files", []):
        tsv = refs.get(row["file"])
        if tsv is None:
            continue
        est = load_notes(str(out_dir / (Path(row["file"]).stem + ".tsv")))
        s = score(read_tsv(tsv), est)
        per_file.append({**row, **{k: round(v, 4) for k, v in s.items()}})
    audio_s = sum(r["audio_s"] for r in per_file)
    wall_s = sum(r["wall_s"] for r in per_file)
    out = {k: v for k, v in run.items() if k not in ("files",)}
    out.update(files_scored=len(per_file), files_in_set=len(pairs), audio_s=round(audio_s, 1),
               real_time_factor=round(wall_s / audio_s, 4) if audio_s else None,
               cpu_per_audio_s=round(sum(r["cpu_s"] for r in per_file) / audio_s, 4) if audio_s else None,
               mean=mean_of(per_file), per_file=per_file)
    return out


def mean_of(rows: list[dict]) -> dict:
    if not rows:
        return {}
    keys = [k for k in rows[0] if k.endswith(("_f1", "_precision", "_recall"))]
    return {k: round(float(np.mean([r[k] for r in rows])), 4) for k in keys}


def common_subset(systems: dict) -> dict | None:
    """Means of every system over the files all of them finished (when one ran on a subset)."""
    done = [s for s in systems.values() if s.get("per_file")]
    if len(done) < 2:
        return None
    sets = [{r["file"] for r in s["per_file"]} for s in done]
    common = set.intersection(*sets)
    if all(len(s) == len(common) for s in sets):
        return None  # everyone ran everything
    out = {"files": sorted(common), "systems": {}}
    for name, s in systems.items():
        rows = [r for r in s.get("per_file", []) if r["file"] in common]
        if rows:
            a = sum(r["audio_s"] for r in rows)
            out["systems"][name] = {"mean": mean_of(rows), "audio_s": round(a, 1),
                                    "real_time_factor": round(sum(r["wall_s"] for r in rows) / a, 4)}
    return out


# -- piano roll ------------------------------------------------------------------------------
def plot_pianoroll(ref: np.ndarray, estimates: dict, path: Path, *, start: float, seconds: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def window(notes):
        if len(notes) == 0:
            return notes
        keep = (notes[:, 1] > start) & (notes[:, 0] < start + seconds)
        return notes[keep]

    ref_w = window(ref)
    rows = [("reference", ref_w, None)] + [(name, window(n), f1) for name, (n, f1) in estimates.items()]
    lo = int(ref_w[:, 2].min()) - 3 if len(ref_w) else 21
    hi = int(ref_w[:, 2].max()) + 3 if len(ref_w) else 108
    fig, axes = plt.subplots(len(rows), 1, figsize=(12, 2.1 * len(rows)), sharex=True, squeeze=False)
    for ax, (name, notes, f1) in zip(axes[:, 0], rows):
        if name != "reference":  # the reference, faint, under every estimate
            for on, off, p, _ in ref_w:
                ax.add_patch(plt.Rectangle((on, p - 0.5), off - on, 1.0, color="0.85", lw=0))
        color = "black" if name == "reference" else "tab:blue"
        for on, off, p, _ in notes:
            ax.add_patch(plt.Rectangle((on, p - 0.45), max(off - on, 0.01), 0.9, color=color, lw=0, alpha=0.85))
        label = name if f1 is None else f"{name}\nnote F1 {f1:.2f}"
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_ylim(lo, hi)
        ax.set_xlim(start, start + seconds)
        ax.grid(axis="x", color="0.9", lw=0.5)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main --------------------------------------------------------------------------------------
def print_table(name: str, res: dict) -> None:
    print(f"\n{name}: {len(res['files'])} files, {res['audio_s'] / 60:.1f} min of audio")
    print(f"  {'system':<12} {'files':>5} {'note F1':>8} {'+offset':>8} {'+vel':>8} {'frame F1':>8} {'RTF':>8}")
    for sysname, s in res["systems"].items():
        if not s.get("files_scored"):
            print(f"  {sysname:<12} skipped: {s.get('skipped') or s.get('error') or 'no file finished'}")
            continue
        m = s["mean"]
        print(f"  {sysname:<12} {s['files_scored']:>5} {m['note_f1']:8.3f} {m['note_offset_f1']:8.3f} "
              f"{m['note_offset_velocity_f1']:8.3f} {m['frame_f1']:8.3f} {s['real_time_factor']:8.3f}"
              + ("  (offline)" if OFFLINE[sysname] else ""))
    sub = res.get("common_subset")
    if sub:
        print(f"  on the {len(sub['files'])} files every system finished:")
        for sysname, s in sub["systems"].items():
            m = s["mean"]
            print(f"  {sysname:<12} {len(sub['files']):>5} {m['note_f1']:8.3f} {m['note_offset_f1']:8.3f} "
                  f"{m['note_offset_velocity_f1']:8.3f} {m['frame_f1']:8.3f} {s['real_time_factor']:8.3f}")


def tiny_pairs(tmp: Path) -> list[tuple[str, str]]:
    """An 8 s excerpt of benchmarks/audio/bench-200 (audio + notes) for CI."""
    import soundfile as sf

    src = REPO / "benchmarks" / "audio" / "bench-200.flac"
    x, sr = sf.read(str(src), dtype="float32", frames=8 * 48000, always_2d=True)
    x = x[: 8 * sr]
    audio = tmp / "tiny.flac"
    sf.write(str(audio), x, sr)
    ref = read_tsv(str(src.with_suffix(".tsv")))
    ref = ref[ref[:, 0] < 7.8]
    ref[:, 1] = np.minimum(ref[:, 1], 8.0)
    tsv = tmp / "tiny.tsv"
    write_notes(tsv, ref)
    return [(str(audio), str(tsv))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--systems", default=None, help=f"comma-separated, from {','.join(SYSTEMS)} (default: all; "
                                                    "--tiny: rtpitch)")
    ap.add_argument("--sets", default="real,rendered", help="comma-separated: real, rendered")
    ap.add_argument("--real", default=str(REAL), help="folder with flac/ and tsv/ (MAPS ENSTDkCl)")
    ap.add_argument("--rendered", default=None,
                    help="folder of rendered .flac + .tsv (default work/data/val, else benchmarks/audio)")
    ap.add_argument("--rendered-limit", type=int, default=10, help="first N rendered files (default 10)")
    ap.add_argument("--real-limit", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for every system (default 1)")
    ap.add_argument("--transkun-minutes", default="15,5",
                    help="transkun's time budget per set, minutes: real,rendered (default 15,5)")
    ap.add_argument("--concurrent", action="store_true",
                    help="run transkun beside the others (2 cores: faster, timings slightly pessimistic)")
    ap.add_argument("--reuse", default="",
                    help="comma-separated systems whose previous results in the work dir are scored again "
                         "instead of rerun (e.g. the peers, when only rtpitch's model changed)")
    ap.add_argument("--peers-python", default=str(PEERS_PY))
    ap.add_argument("--tiny", action="store_true", help="CI: an 8 s excerpt, rtpitch only")
    ap.add_argument("--out-dir", default=str(RESULTS))
    ap.add_argument("--work-dir", default=None, help="estimated notes (default <out-dir>/work)")
    ap.add_argument("--roll-file", default=ROLL_FILE, help="MAPS piece (stem) for the piano roll")
    ap.add_argument("--roll-start", type=float, default=10.0)
    ap.add_argument("--roll-seconds", type=float, default=10.0)
    args = ap.parse_args(argv)

    systems = (args.systems or ("rtpitch" if args.tiny else ",".join(SYSTEMS))).split(",")
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r}; choose from {', '.join(SYSTEMS)}")
    out_dir = Path(args.out_dir)
    work = Path(args.work_dir) if args.work_dir else out_dir / "work"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="rtpitch-accuracy-"))

    sets: dict[str, list] = {}
    if args.tiny:
        sets["tiny"] = tiny_pairs(tmp)
    else:
        for name in args.sets.split(","):
            if name == "real":
                pairs = real_pairs(Path(args.real))[: args.real_limit]
                if not pairs:
                    print(f"accuracy.py: error: no recordings in {args.real}/flac", file=sys.stderr)
                    return 1
                sets["real_maps_enstdkcl"] = pairs
            elif name == "rendered":
                folder = Path(args.rendered) if args.rendered else REPO / "work" / "data" / "val"
                if args.rendered is None and not rendered_pairs(folder, 1):
                    folder = REPO / "benchmarks" / "audio"
                sets[f"rendered:{folder.relative_to(REPO) if folder.is_relative_to(REPO) else folder}"] = \
                    rendered_pairs(folder, args.rendered_limit)
            else:
                ap.error(f"unknown set {name!r}")
    budgets = [float(m) for m in args.transkun_minutes.split(",")]
    reuse = set(filter(None, args.reuse.split(",")))

    skipped = {}
    for peer in (s for s in systems if s != "rtpitch"):
        if not Path(args.peers_python).is_file():
            skipped[peer] = f"peers' venv missing ({args.peers_python}): run benchmarks/peers/setup.sh"
    for peer, why in skipped.items():
        print(f"skipping {peer}: {why}")

    results = {"machine": machine_info(), "threads": args.threads, "concurrent": args.concurrent,
               "protocol": "mir_eval via train/evaluate.py score(): note onset tolerance 50 ms; offsets = key "
                           "releases (no pedal extension), offset ratio 0.2 / min 50 ms; frame F1 on a 10 ms grid; "
                           "means over files. RTF = transcription wall time / audio time, model load and a warm-up "
                           "excluded, each system on --threads CPU threads.",
               "offline": {s: OFFLINE[s] for s in systems}, "sets": {}}
    t_all = time.monotonic()
    for k, (set_name, pairs) in enumerate(sets.items()):
        print(f"\n== {set_name}: {len(pairs)} files", flush=True)
        set_work = set_dir(work, set_name)
        runs: dict[str, dict] = {}
        procs = {}
        budget_min = budgets[min(k, len(budgets) - 1)]
        ordered = sorted(pairs, key=lambda p: duration(p[0]))  # transkun: shortest first
        tk_deadline = None
        if "transkun" in systems and "transkun" not in skipped and args.concurrent and \
                not ("transkun" in reuse and reuse_run("transkun", pairs, set_work / "transkun")):
            procs["transkun"] = start_peer("transkun", ordered, set_work / "transkun", threads=args.threads,
                                           python=Path(args.peers_python))
            tk_deadline = time.monotonic() + 60 * budget_min
        for name in systems:
            if name in reuse:
                prev = reuse_run(name, pairs, set_work / name)
                if prev is not None:
                    runs[name] = prev
                    continue
                print(f"{name}: nothing to reuse in {set_work / name}: running it")
            if name in skipped:
                runs[name] = {"system": name, "skipped": skipped[name], "files": []}
            elif name == "rtpitch":
                runs[name] = run_rtpitch(pairs, set_work / "rtpitch", model=args.model, threads=args.threads)
            elif name == "basic-pitch":
                p = start_peer(name, pairs, set_work / name, threads=args.threads, python=Path(args.peers_python))
                runs[name] = finish_peer(name, p, set_work / name, deadline=None)
            elif name == "transkun" and "transkun" not in procs:
                p = start_peer(name, ordered, set_work / name, threads=args.threads, python=Path(args.peers_python))
                runs[name] = finish_peer(name, p, set_work / name, deadline=time.monotonic() + 60 * budget_min)
        if "transkun" in procs:
            runs["transkun"] = finish_peer("transkun", procs["transkun"], set_work / "transkun",
                                           deadline=tk_deadline)
        for name, run in runs.items():
            if not run.get("reused") and hasattr(os, "getloadavg"):
                run.setdefault("load_average_1min_after", round(os.getloadavg()[0], 2))
        scored = {name: score_system(runs[name], pairs, set_work / name) for name in systems}
        if "transkun" in scored and scored["transkun"].get("cut_at_time_budget"):
            scored["transkun"]["note"] = (f"time budget {budget_min:g} min: ran on the "
                                          f"{scored['transkun']['files_scored']} shortest of {len(pairs)} files")
        res = {"files": [os.path.basename(a) for a, _ in pairs],
               "audio_s": round(sum(duration(a) for a, _ in pairs), 1), "systems": scored}
        sub = common_subset(scored)
        if sub:
            res["common_subset"] = sub
        results["sets"][set_name] = res
        print_table(set_name, res)

    # piano roll: an excerpt of one real piece (the tiny file in --tiny)
    set_name = "tiny" if args.tiny else "real_maps_enstdkcl"
    if set_name in results["sets"]:
        res = results["sets"][set_name]
        stem = Path(sets[set_name][0][0]).stem if args.tiny else args.roll_file
        ref_path = dict((Path(a).stem, t) for a, t in sets[set_name]).get(stem)
        if ref_path is not None:
            set_work = set_dir(work, set_name)
            est = {}
            for name, s in res["systems"].items():
                tsv = set_work / name / f"{stem}.tsv"
                row = next((r for r in s.get("per_file", []) if Path(r["file"]).stem == stem), None)
                if tsv.is_file() and row is not None:
                    est[name] = (load_notes(str(tsv)), row["note_f1"])
            start = 0.0 if args.tiny else args.roll_start
            seconds = 8.0 if args.tiny else args.roll_seconds
            png = out_dir / "pianoroll.png"
            plot_pianoroll(read_tsv(ref_path), est, png, start=start, seconds=seconds,
                           title=f"{stem}, {start:g}-{start + seconds:g} s: reference and each system "
                                 f"(grey: reference under each; note F1 over the whole piece)")
            results["pianoroll"] = {"file": stem, "start_s": start, "seconds": seconds, "png": png.name}
            print(f"wrote {png}")
    results["wall_s"] = round(time.monotonic() - t_all, 1)
    path = out_dir / "accuracy.json"
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
