"""End-to-end latency of the live path, measured through a real JACK server.

    python -m benchmarks.latency [--model stream] [--periods 128,256,512] [--realtime]
    python -m benchmarks.latency --tiny          # CI: 5 s of audio, one period

For each JACK period size a JACK server with the dummy backend (48 kHz) is
started under a name of its own, and ``rtpitch listen --device system
--midi-out --record take.mid`` runs as a subprocess. A JACK client plays
benchmarks/audio/bench-200.flac (a rendered piece, 384 notes in 40 s, its
notes in bench-200.tsv) into rtpitch's input; a JACK MIDI input connected to
the ``rtpitch`` port (``jackutil.MidiMonitor``, GIL-free) stamps every message
that arrives with the JACK frame of its arrival (:mod:`benchmarks.jackutil`
explains how the clocks are aligned).

Each reference note is matched to the note rtpitch reported: same pitch,
onset (in rtpitch's audio time, from the --record file) within 100 ms of the
reference onset, nearest first, one to one. For every matched note:

* **audio delay** = rtpitch's audio-time stamp of the note-on - the reference
  onset, both in rtpitch's audio time: where in the audio the engine put the
  note (mostly the 20 ms frame quantisation; no processing time in it);
* **wall delay** = JACK frame at which the note-on arrived at the monitor -
  JACK frame at which the player played the onset sample: the latency a
  musician hears, through capture, resampling, frontend, model, decoder and
  the MIDI port.

The same for note-offs, against the reference key releases (the note-off of a
matched note is the k-th note-off of that pitch on the port, as its note-on
is the k-th note-on). Reported: median, p95, max per period; the latency
budget of the algorithmic terms for comparison (:mod:`rtpitch.latency`) and
the issue's target, median <= algorithmic + one period + 5 ms.

Results -> benchmarks/results/latency.json and latency.png.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

from benchmarks.jackutil import JackError, JackServer, load_signal, match_onsets, run_live_take
from rtpitch.bench import machine_info
from rtpitch.engine import build_stages
from rtpitch.latency import latency_budget
from rtpitch.model import DEFAULT_MODEL, load_model_spec
from train.evaluate import read_tsv

AUDIO = REPO / "benchmarks" / "audio" / "bench-200.flac"
RESULTS = REPO / "benchmarks" / "results"
MATCH_TOL_S = 0.100
RATE = 48000


def stats(values) -> dict:
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "median": None, "p95": None, "max": None, "min": None, "mean": None}
    r = lambda v: round(float(v), 2)  # noqa: E731
    return {"n": int(a.size), "median": r(np.median(a)), "p95": r(np.percentile(a, 95)), "max": r(a.max()),
            "min": r(a.min()), "mean": r(a.mean())}


def analyse(take, ref: np.ndarray, *, tol_s: float = MATCH_TOL_S) -> dict:
    """Per-note delays (ms) of one take; ``ref`` (n, 4): onset, offset, pitch, velocity (signal time)."""
    sr = take.sr
    recorded = take.recorded_notes()  # rtpitch audio time, sorted by onset
    ref_on = [(take.rt_time(on), int(p)) for on, _, p, _ in ref]
    est_on = [(on, int(p)) for on, _, p, _ in recorded]
    pairs = match_onsets(ref_on, est_on, tol_s)

    # k-th recorded note of a pitch <-> k-th note-on / note-off of that pitch on the port
    ons, offs = defaultdict(list), defaultdict(list)
    for f, p, _ in take.port_note_ons():
        ons[p].append(f)
    for f, p in take.port_note_offs():
        offs[p].append(f)
    rank, seen = {}, defaultdict(int)
    for j, (_, _, p, _) in enumerate(recorded):
        rank[j] = seen[p]
        seen[p] += 1
    mismatched = sorted(p for p in seen if len(ons[p]) != seen[p])

    rows = []
    for i, j in pairs:
        on, off, p, _ = ref[i]
        p = int(p)
        e_on, e_off = recorded[j][0], recorded[j][1]
        row = {"pitch": p, "ref_onset_s": round(float(on), 4),
               "on_audio_ms": round(1e3 * (e_on - take.rt_time(on)), 2),
               "off_audio_ms": round(1e3 * (e_off - take.rt_time(off)), 2),
               "on_wall_ms": None, "off_wall_ms": None}
        k = rank[j]
        if p not in mismatched:
            row["on_wall_ms"] = round(1e3 * (ons[p][k] - take.frame_of(on)) / sr, 2)
            if k < len(offs[p]):
                row["off_wall_ms"] = round(1e3 * (offs[p][k] - take.frame_of(off)) / sr, 2)
        rows.append(row)

    def col(key):
        return [r[key] for r in rows if r[key] is not None]

    m = re.search(r"overruns: (\d+) samples dropped", take.stderr)
    return {
        "reference_notes": int(len(ref)), "reported_notes": len(recorded), "matched": len(pairs),
        "note_on": {"audio_ms": stats(col("on_audio_ms")), "wall_ms": stats(col("on_wall_ms")),
                    "wall_minus_audio_ms": stats([r["on_wall_ms"] - r["on_audio_ms"] for r in rows
                                                  if r["on_wall_ms"] is not None])},
        "note_off": {"audio_ms": stats(col("off_audio_ms")), "wall_ms": stats(col("off_wall_ms"))},
        "take": {"returncode": take.returncode, "ready_s": round(take.ready_s, 1), "wall_s": round(take.wall_s, 1),
                 "player_xruns": take.xruns, "player_skipped_frames": take.skipped_frames(),
                 "rtpitch_overrun_samples": int(m.group(1)) if m else None,
                 "capture_origin_residual_frames": None if take.snap_residual is None
                 else round(take.snap_residual, 1),
                 "pitches_with_port_file_mismatch": mismatched},
        "per_note": rows,
    }


def budget(spec, period: int, rate: int) -> dict:
    """Algorithmic latency terms (ms) for a capture block of one period, and the target."""
    terms = latency_budget(build_stages(spec, None, source_rate=rate, block=period), capture_block_s=period / rate)
    algo = sum(ms for _, ms in terms)
    return {"terms_ms": {k: round(v, 2) for k, v in terms}, "algorithmic_ms": round(algo, 2),
            "target_median_ms": round(algo + 1e3 * period / rate + 5.0, 2)}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    periods = list(results["periods"])
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, (kind, title) in enumerate((("note_on", "note-on"), ("note_off", "note-off"))):
        for r, what in enumerate(("wall", "audio")):
            ax = axes[r, c]
            col = f"{kind.split('_')[1]}_{what}_ms"
            for n, per in enumerate(periods):
                res = results["periods"][per]
                vals = [row[col] for row in res["per_note"] if row[col] is not None]
                if not vals:
                    continue
                med = np.median(vals)
                ax.hist(vals, bins=40, histtype="step", lw=1.6, color=colors[n],
                        label=f"period {per} ({1e3 * int(per) / results['rate']:.1f} ms): median {med:.0f} ms")
                if what == "wall":
                    ax.axvline(res["budget"]["algorithmic_ms"], color=colors[n], ls="--", lw=1)
            what_text = "wall-clock delay at the MIDI port" if what == "wall" else "audio-time stamp error"
            ax.set_title(f"{title}: {what_text}")
            ax.set_xlabel("ms after the reference " + ("onset" if kind == "note_on" else "key release"))
            ax.set_ylabel("notes")
            if ax.has_data():
                ax.legend(fontsize=8)
    fig.suptitle(f"rtpitch end-to-end latency through JACK (dummy, {results['rate']} Hz), model "
                 f"{results['model']}, {results['audio']}; dashed: algorithmic budget", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--audio", default=str(AUDIO), help="audio file with a .tsv of its notes beside it")
    ap.add_argument("--periods", default="128,256,512", help="JACK period sizes (frames), comma-separated")
    ap.add_argument("--seconds", type=float, default=None, help="play only the first N seconds")
    ap.add_argument("--tiny", action="store_true", help="CI: first 5 s, period 256 only")
    ap.add_argument("--out-dir", default=str(RESULTS))
    ap.add_argument("--server-name", default="rtpitch-bench", help="JACK server name (jackd -n)")
    ap.add_argument("--realtime", action="store_true",
                    help="jackd -R (SCHED_FIFO, as on a musician's machine; needs CAP_SYS_NICE or an rtprio limit)")
    ap.add_argument("--startup-timeout", type=float, default=90.0, help="s to wait for rtpitch to come up")
    args = ap.parse_args(argv)
    periods = [256] if args.tiny else [int(p) for p in args.periods.split(",")]
    seconds = 5.0 if args.tiny and args.seconds is None else args.seconds
    audio = Path(args.audio)
    ref = read_tsv(str(audio.with_suffix(".tsv")))
    if seconds is not None:
        ref = ref[ref[:, 0] < seconds - 0.2]  # notes whose onset is played
        ref[:, 1] = np.minimum(ref[:, 1], seconds)  # release at the cut
    spec = load_model_spec(args.model)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"model": spec.name, "audio": audio.name, "seconds_played": seconds, "rate": RATE,
               "match": f"same pitch, onset within {MATCH_TOL_S * 1e3:.0f} ms (rtpitch audio time), nearest first",
               "machine": machine_info(), "jack_realtime": args.realtime, "periods": {}}
    with tempfile.TemporaryDirectory(prefix="rtpitch-latency-") as tmp:
        for period in periods:
            print(f"period {period}: starting JACK ({RATE} Hz) and rtpitch ...", flush=True)
            try:
                with JackServer(period=period, rate=RATE, name=args.server_name, realtime=args.realtime):
                    signal = load_signal(audio, RATE, seconds=seconds)
                    take = run_live_take(signal, workdir=Path(tmp) / f"p{period}", tag="latbench",
                                         rtpitch_args=["--model", args.model],
                                         startup_timeout_s=args.startup_timeout)
            except JackError as err:
                print(f"latency.py: error: period {period}: {err}", file=sys.stderr)
                return 1
            if take.returncode != 0 or take.capture_frame is None:
                print(f"latency.py: error: period {period}: rtpitch exited with {take.returncode} "
                      f"(capture clock {'found' if take.capture_frame is not None else 'missing'}); "
                      f"stderr:\n{take.stderr}", file=sys.stderr)
                return 1
            res = analyse(take, ref)
            res["budget"] = budget(spec, period, RATE)
            if res["take"]["player_skipped_frames"] > 0:
                res["warning"] = (f"JACK skipped {res['take']['player_skipped_frames']} frames of the player's cycles "
                                  f"({res['take']['player_xruns']} xruns): rtpitch's capture probably lost cycles too, "
                                  "so its audio clock drifts from the player's: the audio-time figures and the "
                                  "matching are uncertain by that much; the wall delays of matched notes hold")
                print(f"  warning: {res['warning']}")
            results["periods"][str(period)] = res
            on, off = res["note_on"], res["note_off"]
            def fmt(s):
                return "-" if s["median"] is None else f"{s['median']:.1f} / {s['p95']:.1f} / {s['max']:.1f}"

            print(f"period {period} ({1e3 * period / RATE:.1f} ms): matched {res['matched']}/"
                  f"{res['reference_notes']} notes ({res['reported_notes']} reported); algorithmic budget "
                  f"{res['budget']['algorithmic_ms']:.1f} ms, target median <= "
                  f"{res['budget']['target_median_ms']:.1f} ms", flush=True)
            print(f"  note-on  wall ms (median / p95 / max): {fmt(on['wall_ms'])};  audio-time: {fmt(on['audio_ms'])}")
            print(f"  note-off wall ms (median / p95 / max): {fmt(off['wall_ms'])};  "
                  f"audio-time: {fmt(off['audio_ms'])}")
            print(f"  take: {res['take']}", flush=True)
    json_path, png_path = out_dir / "latency.json", out_dir / "latency.png"
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1)
    plot(results, png_path)
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
