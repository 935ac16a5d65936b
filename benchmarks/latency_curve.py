"""The latency/accuracy curve: one model per lookahead, scored on the real recordings.

    python -m benchmarks.latency_curve --run work/runs/stream --lookaheads 0,1,2,4,6,9

A run trained with ``python -m train.train --lookaheads`` holds heads for several
lookaheads on one trunk. For each lookahead L this exports L's heads
(``train/export.py``) as ``<models>/<prefix>-la<L>``, chooses the decoder
thresholds on rendered validation (``train/tune_decoder.py``), and evaluates on
the 14 MAPS ENSTDkCl pieces and the rendered validation through rtpitch's engine
(``python -m train.evaluate --write-json``). Then a table (stdout, JSON) and a PNG:
note F1 and frame F1 against algorithmic latency (ms; capture block of 256
samples at 48 kHz + window alignment + lookahead x hop), with the median lag of
the note-ons the decoder places (audio time, on MAPS). Resumable: a lookahead
whose model JSON already has MAPS figures from the same checkpoint is not redone.

``--checkpoint`` scores an earlier checkpoint than the run's newest (one that
``train.train --keep-every`` kept in RUN/kept/); with ``--lookaheads 2`` and
``--out`` elsewhere, that is how an ablation's step is scored through the engine:

    python -m benchmarks.latency_curve --run work/runs/R --arch A --data D \
        --checkpoint work/runs/R/kept/ckpt-1300 --lookaheads 2 --prefix R-1300 \
        --models work/scored --out work/scored/R-1300

Writes benchmarks/results/latency_curve.json and .png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _run(*args: str) -> None:
    cmd = [sys.executable, *args]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)


def _latest_checkpoint(run: Path) -> str:
    line = (run / "ckpt" / "checkpoint").read_text().splitlines()[0]  # model_checkpoint_path: "ckpt-N"
    return line.split('"')[1]


def _model_json(args, la: int) -> Path:
    """Where lookahead ``la``'s model JSON goes (its .onnx and .step beside it)."""
    return Path(args.models) / f"{args.prefix}-la{la}.json"


def build_point(args, la: int) -> dict:
    """Export, tune and evaluate lookahead ``la``; returns its row of the table."""
    path = _model_json(args, la)
    name = path.stem
    ckpt = Path(args.checkpoint).name if args.checkpoint else _latest_checkpoint(Path(args.run))
    meta = json.loads(path.read_text()) if path.exists() else {}
    done = (meta.get("training", {}).get("checkpoint") == ckpt
            and "real_maps_enstdkcl" in meta.get("evaluation", {}))
    val = f"{args.data.split(',')[0]}/val"  # as train.py: validation from the first folder
    if not done:
        _run("-m", "train.export", "--run", args.run, "--name", name, "--models", args.models, "--data", args.data,
             "--frontend", args.frontend, "--arch", args.arch, "--lookahead", str(la),
             *(["--checkpoint", args.checkpoint] if args.checkpoint else []))
        _run("-m", "train.step_graph", "--model", str(path))  # as shipped: the engine runs the step graph
        _run("-m", "train.tune_decoder", "--model", str(path), "--rendered", val,
             "--limit", str(args.tune_limit),
             *(["--max-onset-lag-ms", str(args.max_onset_lag_ms)] if args.max_onset_lag_ms is not None else []))
        _run("-m", "train.evaluate", "--model", str(path), "--real", args.real, "--rendered", val,
             "--limit", str(args.eval_limit), "--write-json")
        meta = json.loads(path.read_text())
    real = meta["evaluation"]["real_maps_enstdkcl"]["mean"]
    rendered = meta["evaluation"].get("rendered_val", {}).get("mean", {})
    return {"lookahead_frames": la, "algorithmic_latency_ms": meta["algorithmic_latency_ms"],
            "model": name, "checkpoint": ckpt,
            "real_note_f1": real["note_f1"], "real_frame_f1": real["frame_f1"],
            "real_note_offset_f1": real["note_offset_f1"],
            "real_note_offset_velocity_f1": real["note_offset_velocity_f1"],
            "real_onset_lag_ms": real.get("onset_lag_ms"),
            "rendered_note_f1": rendered.get("note_f1"), "rendered_frame_f1": rendered.get("frame_f1"),
            "max_onset_lag_ms": meta["evaluation"].get("decoder_tuning", {}).get("max_onset_lag_ms"),
            "decoder": meta["decoder"]}


def _fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = [r["algorithmic_latency_ms"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, label, style in (("real_note_f1", "note onset F1", "o-"), ("real_frame_f1", "frame F1", "s-"),
                              ("real_note_offset_f1", "note with offset F1", "^-")):
        ax.plot(ms, [r[key] for r in rows], style, label=label)
    for r in rows:
        ax.annotate(f"L={r['lookahead_frames']}", (r["algorithmic_latency_ms"], r["real_note_f1"]),
                    textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.axvline(50, color="grey", ls=":", lw=1)
    ax.axvline(25, color="grey", ls=":", lw=1)
    ax.set_xlabel("algorithmic latency (ms)")
    ax.set_ylabel("F1 on MAPS ENSTDkCl (14 pieces)")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="work/runs/stream")
    ap.add_argument("--lookaheads", default="0,1,2,4,6,9")
    ap.add_argument("--checkpoint", default=None,
                    help="a checkpoint prefix other than the run's newest (e.g. RUN/kept/ckpt-1300)")
    ap.add_argument("--arch", default="stream")
    ap.add_argument("--data", default="work/data-lowlat,work/data-lowlat-s1,work/data-noise",
                    help="dataset folder(s) of the run, comma-separated (default: the stream run's, reproduce.sh)")
    ap.add_argument("--frontend", default="train/frontend-lowlat.json")
    ap.add_argument("--real", default=str(REPO.parent / "shared" / "data" / "real" / "maps-enstdkcl"))
    ap.add_argument("--models", default="work/curve/models", help="where the per-lookahead models go")
    ap.add_argument("--prefix", default="stream")
    ap.add_argument("--tune-limit", type=int, default=20, help="rendered validation files for the thresholds")
    ap.add_argument("--eval-limit", type=int, default=1000, help="files per evaluation set")
    ap.add_argument("--max-onset-lag-ms", type=float, default=None,
                    help="train.tune_decoder's bound on the note-ons' median lag (default: its own); a "
                         "lookahead-0 model may place none within it")
    ap.add_argument("--out", default=str(RESULTS / "latency_curve"), help="path stem of the .json and .png")
    args = ap.parse_args(argv)
    lookaheads = [int(v) for v in args.lookaheads.split(",")]
    summary = Path(args.out).with_suffix(".json").resolve()
    clash = [la for la in lookaheads if _model_json(args, la).resolve() == summary]
    if clash:
        ap.error(f"--out {args.out} would write the table over the lookahead-{clash[0]} model's JSON "
                 f"({summary}); give another --out")

    Path(args.models).mkdir(parents=True, exist_ok=True)
    rows = [build_point(args, la) for la in lookaheads]
    rows.sort(key=lambda r: r["algorithmic_latency_ms"])
    print(f"\n{'lookahead':>9} {'latency ms':>10} {'note F1':>8} {'frame F1':>8} {'offset F1':>9} {'+vel F1':>8}"
          f" {'rendered note F1':>16} {'onset lag ms':>12}")
    for r in rows:
        print(f"{r['lookahead_frames']:>9} {r['algorithmic_latency_ms']:>10.1f} {r['real_note_f1']:>8.3f} "
              f"{r['real_frame_f1']:>8.3f} {r['real_note_offset_f1']:>9.3f} {r['real_note_offset_velocity_f1']:>8.3f}"
              f" {_fmt(r['rendered_note_f1'], '.3f'):>16} {_fmt(r['real_onset_lag_ms'], '.1f'):>12}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": "latency_curve", "run": args.run, "real": "MAPS ENSTDkCl, 14 pieces, mir_eval 50 ms",
              "command": "python -m benchmarks.latency_curve " + " ".join(argv if argv is not None else sys.argv[1:]),
              "rows": rows}
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    plot(rows, out.with_suffix(".png"), f"{args.prefix}: one trunk, heads per lookahead ({rows[0]['checkpoint']})")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
