"""Featurise MAPS's synthetic-piano pieces (../shared/data/maps-synth) as training segments.

    python -m train.build_maps_synth --data ../shared/data --out work/data-maps-synth \
        --frontend train/frontend-lowlat.json --copies 2 [--jobs 2]

Each of the 65 pieces (six commercial virtual pianos, 16 kHz FLAC, labels in
``tsv/``: onset, key release, pitch, velocity) is cut into segments of <= 60 s;
every copy passes each segment through ``microphone_in_room`` with its own draw.
Written as ``OUT/train/<piece>_c<copy>_<k>.npz`` in build_dataset.py's format
(pedal PEDAL_UNKNOWN: the pianos played it, MAPS labels do not say), and a line
per segment in ``OUT/manifest.jsonl``. All of it is training data: none of its
compositions is one of the real ENSTDkCl validation pieces. Resumable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from rtpitch.frontend import FrontendSpec, logmel
from train.augment import microphone_in_room
from train.build_dataset import load_frontend
from train.labels import PEDAL_UNKNOWN, frame_labels
from train.render import Performance

_HERE = Path(__file__).resolve().parent

SEG_S = 60.0


def read_tsv(path: Path) -> Performance:
    """MAPS label file (onset, offset, note, velocity; '#' header) as a pedal-less Performance."""
    a = np.loadtxt(path, comments="#", ndmin=2)
    empty = np.zeros(0)
    return Performance(onset=a[:, 0], offset=a[:, 1], pitch=a[:, 2].astype(np.int64),
                       velocity=a[:, 3].astype(np.int64), pedal_time=empty,
                       pedal_value=empty.astype(np.int64), source=str(path))


def plan(data: Path, copies: int, pieces: int | None = None) -> list[dict]:
    """One record per (piece, copy, segment): flac, tsv, start_s, dur_s, seed
    (``pieces``: only the first so many pieces, by name)."""
    import soundfile as sf

    out = []
    for flac in sorted((data / "maps-synth" / "flac").glob("*.flac"))[:pieces]:
        tsv = data / "maps-synth" / "tsv" / (flac.stem + ".tsv")
        if not tsv.exists():
            continue
        dur = sf.info(str(flac)).duration
        n_seg = max(1, int(np.ceil(dur / SEG_S)))
        for c in range(copies):
            for k in range(n_seg):
                sid = f"{flac.stem}_c{c}_{k:02d}"
                seed = int.from_bytes(hashlib.sha1(sid.encode()).digest()[:8], "big") % (2 ** 63)
                out.append(dict(id=sid, flac=str(flac), tsv=str(tsv), start_s=k * SEG_S,
                                dur_s=min(SEG_S, dur - k * SEG_S), timbre=flac.stem.rsplit("_", 1)[-1],
                                seed=seed))
    return out


def make_segment(seg: dict, out: Path, spec_d: dict) -> dict:
    import soundfile as sf

    npz = out / "train" / f"{seg['id']}.npz"
    if npz.exists():
        return seg
    spec = FrontendSpec(**spec_d)
    sr = spec.sample_rate
    info = sf.info(seg["flac"])
    if info.samplerate != sr:
        raise ValueError(f"{seg['flac']}: {info.samplerate} Hz, the frontend wants {sr} Hz")
    a = int(round(seg["start_s"] * sr))
    audio, _ = sf.read(seg["flac"], start=a, frames=int(round(seg["dur_s"] * sr)), dtype="float32",
                       always_2d=True)
    audio = audio.mean(1)
    perf = read_tsv(Path(seg["tsv"])).segment(seg["start_s"], seg["dur_s"])
    rng = np.random.default_rng(seg["seed"])
    audio, aug = microphone_in_room(audio, sr, rng, return_params=True)
    mel = logmel(audio, spec)
    T = len(mel)
    lab = frame_labels(perf, T, spec.hop_s)
    meta = dict(seg, frames=T, hop_s=spec.hop_s, n_notes=int(len(perf.onset)), augment=aug, frontend=spec_d)
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz.with_name(npz.stem + ".tmp.npz")
    np.savez_compressed(tmp, mel=mel.astype(np.float16), frame=lab["frame"], onset=lab["onset"],
                        offset=lab["offset"], velocity=lab["velocity"], pedal=np.full(T, PEDAL_UNKNOWN, np.uint8),
                        source=np.array(seg["flac"]), piece=np.array(Path(seg["flac"]).stem),
                        timbre=np.array(seg["timbre"]), start_s=np.array(seg["start_s"]),
                        augment=np.array(json.dumps(aug)), meta=np.array(json.dumps(meta)))
    os.replace(tmp, npz)
    return meta


def _work(job):
    seg, out, spec_d = job
    try:
        return make_segment(seg, Path(out), spec_d)
    except Exception as e:  # one bad file must not stop the build
        return dict(seg, error=f"{type(e).__name__}: {e}")


def write_manifest(out: Path) -> None:
    """``OUT/manifest.jsonl``: a line per segment in ``OUT/train`` (its metadata,
    split "train", collection "maps-synth"), as build_dataset.py writes one;
    export reads the frontend and the hours per timbre from it."""
    lines = []
    for f in sorted((out / "train").glob("*.npz")):
        with np.load(f) as z:
            meta = json.loads(str(z["meta"]))
        lines.append(json.dumps(dict(meta, split="train", collection="maps-synth")) + "\n")
    (out / "manifest.jsonl").write_text("".join(lines))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(_HERE.parent.parent / "shared" / "data"))
    ap.add_argument("--out", default="work/data-maps-synth")
    ap.add_argument("--frontend", default=None, help="JSON file or string (FrontendSpec fields)")
    ap.add_argument("--copies", type=int, default=1, help="augmented copies of every segment")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--pieces", type=int, default=None, help="only the first N pieces (tests)")
    a = ap.parse_args(argv)
    spec_d = load_frontend(a.frontend)
    segs = plan(Path(a.data), a.copies, a.pieces)
    if not segs:
        sys.exit(f"no maps-synth pieces under {a.data}/maps-synth")
    out = Path(a.out)
    jobs = [(s, str(out), spec_d) for s in segs]
    t0 = time.time()
    if a.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(a.jobs) as pool:
            done = list(pool.imap_unordered(_work, jobs, chunksize=1))
    else:
        done = [_work(j) for j in jobs]
    errors = [d for d in done if "error" in d]
    for d in errors:
        print(f"{d['id']}: {d['error']}", file=sys.stderr)
    write_manifest(out)
    hours = sum(s["dur_s"] for s in segs) / 3600
    print(f"{len(segs) - len(errors)} segments, {hours:.2f} h ({a.copies} copies) in {out}, "
          f"{time.time() - t0:.0f} s", flush=True)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
