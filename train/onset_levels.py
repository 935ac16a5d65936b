"""How loud note onsets are, per velocity band, in real recordings and in training data.

    python -m train.onset_levels --real ../shared/data/real/maps-enstdkcl \\
        --data work/data-render-s4,work/data-render-s5-soft,work/data-maps-synth --files 60 \\
        --out benchmarks/results/onset_levels.json

Reads the log-mel the model reads (the real recordings through rtpitch's
resampler and frontend; a dataset's segments as build_dataset.py stored them).
For each labelled onset (key k, frame t) it takes the mean of the mel bands
nearest to k's first four harmonics (:func:`harmonic_bands`) and gives its rise
(the highest of frames t .. t+3 over the mean of t-5 .. t-2) and its level in
the recording (that highest value over the 99th percentile, over frames, of the
loudest key's same mean), both in dB of the mel magnitude. Onsets that rise little
over what already sounds are the ones a streaming onset head misses; this says
whether the training data has as many of them as the real recordings.
"""

from __future__ import annotations

import argparse
import glob
import json
import os

import numpy as np
import soundfile as sf

from rtpitch.frontend import FrontendSpec, logmel, mel_band_centres
from rtpitch.resample import StreamResampler
from train.evaluate import read_tsv, real_pairs
from train.harmonics import key_hz
from train.note_errors import VELOCITY_BANDS

DB = 20.0 / np.log(10.0)  # natural log of a magnitude -> dB
HARMONICS = 4
FRONTEND = os.path.join(os.path.dirname(__file__), "frontend-lowlat.json")


def harmonic_bands(spec: FrontendSpec) -> list[np.ndarray]:
    """Per key (88), the mel band indices nearest to its first HARMONICS harmonics below fmax."""
    centres = mel_band_centres(spec)
    bands = []
    for f0 in key_hz():
        fs = [f0 * h for h in range(1, HARMONICS + 1) if f0 * h < spec.fmax]
        bands.append(np.unique([int(np.argmin(np.abs(centres - f))) for f in fs]))
    return bands


def onset_levels(mel: np.ndarray, onsets: np.ndarray, bands: list[np.ndarray]) -> np.ndarray:
    """(n, 3) velocity, rise dB, level dB re the recording for ``onsets`` (n, 3) frame, key, velocity
    of log-mel ``mel`` (T, n_mels); onsets within 5 frames of the start or 3 of the end are left out."""
    tracks = np.stack([mel[:, b].mean(axis=1) for b in bands], axis=1)  # (T, 88)
    ref = np.percentile(tracks.max(axis=1), 99)
    rows = []
    for t, key, velocity in onsets.astype(np.int64):
        if t < 5 or t + 4 > len(mel):
            continue
        track = tracks[t - 5:t + 4, key]  # frames t-5 .. t+3
        peak = track[5:].max()
        rows.append((velocity, DB * (peak - track[:4].mean()), DB * (peak - ref)))
    return np.array(rows, np.float64).reshape(-1, 3)


def recording(flac: str, tsv: str, spec: FrontendSpec) -> tuple[np.ndarray, np.ndarray]:
    """Log-mel (T, n_mels) of a recording as rtpitch hears it, and its labels' onsets (n, 3)."""
    audio, rate = sf.read(flac, dtype="float32", always_2d=True)
    resampler = StreamResampler(rate, spec.sample_rate)
    x = np.concatenate([resampler.process(np.ascontiguousarray(audio.mean(axis=1))), resampler.flush()])
    notes = read_tsv(tsv)
    hop_s = spec.hop_length / spec.sample_rate
    return logmel(x, spec), np.stack([np.round(notes[:, 0] / hop_s), notes[:, 2] - 21, notes[:, 3]], axis=1)


def segment(path: str) -> tuple[np.ndarray, np.ndarray]:
    """A build_dataset.py segment's log-mel (T, n_mels) and onsets (n, 3)."""
    with np.load(path) as z:
        t, key = np.nonzero(z["onset"])
        return z["mel"].astype(np.float32), np.stack([t, key, z["velocity"][t, key]], axis=1)


def summary(rows: np.ndarray) -> dict:
    """Per velocity band (note_errors.VELOCITY_BANDS) and in all: count, share, quartiles of the rise,
    deciles of the level, and the shares of onsets rising under 6 dB or lying 50 dB under the recording."""
    def figures(r):
        return {"onsets": int(len(r)), "share": round(len(r) / max(len(rows), 1), 3),
                "rise_db_q25_50_75": [round(float(v), 1) for v in np.percentile(r[:, 1], [25, 50, 75])],
                "level_db_q10_50_90": [round(float(v), 1) for v in np.percentile(r[:, 2], [10, 50, 90])],
                "rise_under_6db": round(float(np.mean(r[:, 1] < 6)), 3),
                "level_under_50db": round(float(np.mean(r[:, 2] < -50)), 3)}

    out = {}
    for lo, hi in zip(VELOCITY_BANDS[:-1], VELOCITY_BANDS[1:]):
        r = rows[(rows[:, 0] >= lo) & (rows[:, 0] < hi)]
        if len(r):
            out[f"{lo}-{hi - 1}"] = figures(r)
    out["all"] = figures(rows)
    return out


def _print(name: str, table: dict) -> None:
    print(f"\n{name}")
    print(f"{'velocity':>9} {'onsets':>7} {'share':>6} {'rise dB q25/50/75':>19} {'level dB q10/50/90':>20}"
          f" {'rise<6dB':>9} {'level<-50dB':>11}")
    for band, f in table.items():
        r, lv = f["rise_db_q25_50_75"], f["level_db_q10_50_90"]
        print(f"{band:>9} {f['onsets']:>7} {f['share']:>6.2f} {r[0]:>6.1f}/{r[1]:5.1f}/{r[2]:5.1f}"
              f" {lv[0]:>7.1f}/{lv[1]:5.1f}/{lv[2]:5.1f} {f['rise_under_6db']:>9.3f} {f['level_under_50db']:>11.3f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--real", default=None, help="folder with flac/ and tsv/ (MAPS ENSTDkCl)")
    ap.add_argument("--data", default="", help="dataset folders (build_dataset.py), comma-separated")
    ap.add_argument("--split", default="train", help="which split of each dataset")
    ap.add_argument("--files", type=int, default=60, help="segments per dataset, spread evenly over its files")
    ap.add_argument("--frontend", default=FRONTEND, help="the frontend of the real recordings' log-mel")
    ap.add_argument("--out", default=None, help="JSON to write")
    args = ap.parse_args(argv)
    spec = FrontendSpec(**json.load(open(args.frontend)))
    bands = harmonic_bands(spec)
    result = {"frontend": os.path.basename(args.frontend), "harmonics": HARMONICS, "sets": {}}
    sets = []
    if args.real:
        sets.append((args.real, [recording(f, t, spec) for f, t in real_pairs(args.real)]))
    for folder in filter(None, args.data.split(",")):
        files = sorted(glob.glob(os.path.join(folder, args.split, "*.npz")))
        if not files:
            ap.error(f"--data {folder}: no {args.split}/*.npz")
        files = files[:: max(1, len(files) // args.files)][:args.files]
        sets.append((f"{folder}/{args.split} ({len(files)} segments)", [segment(f) for f in files]))
    for name, pieces in sets:
        rows = np.concatenate([onset_levels(mel, onsets, bands) for mel, onsets in pieces])
        result["sets"][name] = summary(rows)
        _print(name, result["sets"][name])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
