"""Where a piano's partials lie in the log-mel: the stretch the harmonic stack should read.

    python -m benchmarks.partial_stretch --frontend train/frontend-fall176.json \
        --data work/fall176/data-maps-synth,work/fall176/data-render-s6-dyn \
        --real ../shared/data/real/maps-enstdkcl --out benchmarks/results/partial_stretch.json

For every labelled onset of key k, the log-mel's rise (2 frames after the onset
frame minus 3 before it) read at partial h of k (h = 4 .. 15, inside fmax), where
a stiff string puts it: h f0 sqrt(1 + s B(k) h^2), B from
train.harmonics.inharmonicity, for stretch scales s (0: the integer harmonics
the plain stack reads; 1: the curve stream-keys-h16-ih reads). The partials'
rise is largest where the reading meets them; other notes sounding at the
onset add the same at every s. Per group of 6 keys and source: the mean rise
per scale and the best scale. And whether a key's partials tell it from its
neighbours at the onset: per octave, the rise read at the played key's partials
(1-3, 4-15, 16-31, at s = 1) minus the mean of the rises read at the partials of
the keys a semitone above and below. The real recordings are only measured
here: the curve was not fit to them.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

from rtpitch.frontend import FrontendSpec
from train.harmonics import band_position, partial_hz
from train.onset_levels import recording, segment

SCALES = (0.0, 0.5, 1.0, 2.0, 4.0)
PARTIALS = np.arange(4, 16)
CONTRAST_PARTIALS = {"1-3": np.arange(1, 4), "4-15": np.arange(4, 16), "16-31": np.arange(16, 32)}
GROUP = 6  # keys
MIN_ONSETS = 30
DB = 20 / np.log(10)  # natural log of a magnitude -> dB
BEFORE, AFTER = 3, 2  # the onset rise: AFTER frames after the onset frame minus BEFORE frames before it


def read_positions(spec: FrontendSpec, scale: float, partials=PARTIALS) -> tuple[np.ndarray, np.ndarray]:
    """(88, P) fractional mel band of each key's partials at stretch ``scale``, and which lie in range."""
    f = partial_hz(partials, scale)
    return band_position(spec, f), (f >= spec.fmin) & (f <= spec.fmax)


class Rise:
    """Sums of the onset rise per (scale, key group, partial), and counts."""

    def __init__(self, spec: FrontendSpec):
        self.spec = spec
        self.readers = [read_positions(spec, s) for s in SCALES]
        self.inside = np.logical_and.reduce([ok for _, ok in self.readers])  # in range at every scale
        groups = -(-88 // GROUP)
        self.sum = np.zeros((len(SCALES), groups, len(PARTIALS)))
        self.count = np.zeros((groups, len(PARTIALS)))

    def add(self, mel: np.ndarray, onset_frames: np.ndarray, keys: np.ndarray) -> None:
        """mel (T, n_mels) log-mel; one onset per (frame, key 0..87)."""
        keep = in_reach(onset_frames, len(mel))
        t, k = onset_frames[keep], keys[keep]
        ok = self.inside[k]
        g = k // GROUP
        for i, (pos, _) in enumerate(self.readers):
            np.add.at(self.sum[i], g, np.where(ok, onset_rise(mel, t, pos[k]), 0.0))
        np.add.at(self.count, g, ok.astype(float))

    def summary(self) -> list[dict]:
        rows = []
        for gi in range(self.count.shape[0]):
            used = self.count[gi] >= MIN_ONSETS
            if not used.any():
                continue
            rise = (self.sum[:, gi, used] / self.count[gi, used]).mean(axis=1)
            rows.append({"keys": [21 + GROUP * gi, min(20 + GROUP * (gi + 1), 108)],
                         "onsets": int(self.count[gi].max()), "partials": int(used.sum()),
                         "rise_db_by_scale": {str(s): round(float(r) * DB, 3) for s, r in zip(SCALES, rise)},
                         "best_scale": SCALES[int(np.argmax(rise))]})
        return rows


def in_reach(t: np.ndarray, n_frames: int) -> np.ndarray:
    """Which onset frames ``t`` have the frames :func:`onset_rise` reads inside the recording."""
    return (t >= BEFORE) & (t + AFTER < n_frames)


def onset_rise(mel: np.ndarray, t: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """(E, P) log-mel AFTER frames after each onset frame ``t`` (E,) minus BEFORE frames
    before, read at the fractional bands ``pos`` (E, P)."""
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, mel.shape[1] - 1)
    frac = pos - lo

    def read(frames):
        rows = mel[frames]
        return np.take_along_axis(rows, lo, 1) * (1 - frac) + np.take_along_axis(rows, hi, 1) * frac

    return read(t + AFTER) - read(t - BEFORE)


class KeyContrast:
    """Per partial set and octave: the onset rise at the played key's partials minus the
    mean rise at its two neighbours' (dB, averaged over partials in range, then onsets)."""

    def __init__(self, spec: FrontendSpec):
        self.readers = {name: read_positions(spec, 1.0, p) for name, p in CONTRAST_PARTIALS.items()}
        self.values = {name: [[] for _ in range(8)] for name in CONTRAST_PARTIALS}

    def add(self, mel: np.ndarray, onset_frames: np.ndarray, keys: np.ndarray) -> None:
        keep = in_reach(onset_frames, len(mel)) & (keys >= 1) & (keys <= 86)
        t, k = onset_frames[keep], keys[keep]
        for name, (pos, inside) in self.readers.items():
            ok = inside[k] & inside[k - 1] & inside[k + 1]
            own = onset_rise(mel, t, pos[k])
            neighbours = 0.5 * (onset_rise(mel, t, pos[k - 1]) + onset_rise(mel, t, pos[k + 1]))
            n = ok.sum(axis=1)
            has = n > 0
            contrast = np.where(ok, own - neighbours, 0.0).sum(axis=1)[has] / n[has] * DB
            for octave, c in zip(k[has] // 12, contrast):
                self.values[name][octave].append(c)

    def summary(self) -> dict:
        return {name: [{"octave": o, "onsets": len(v), "contrast_db": round(float(np.mean(v)), 3)}
                       for o, v in enumerate(octaves) if len(v) >= MIN_ONSETS]
                for name, octaves in self.values.items()}


def add_dataset(measures: list, folder: str, max_files: int) -> int:
    files = sorted(glob.glob(os.path.join(folder, "**", "*.npz"), recursive=True))[:max_files]
    for path in files:
        add(measures, *segment(path))
    return len(files)


def add_real(measures: list, folder: str, spec: FrontendSpec) -> int:
    flacs = sorted(glob.glob(os.path.join(folder, "flac", "*.flac")))
    for path in flacs:
        add(measures, *recording(path, os.path.join(folder, "tsv", os.path.basename(path)[:-5] + ".tsv"), spec))
    return len(flacs)


def add(measures: list, mel: np.ndarray, onsets: np.ndarray) -> None:
    """One recording's log-mel (T, n_mels) and onsets (n, 3: frame, key, velocity) to each measure."""
    t, k = onsets[:, 0].astype(int), onsets[:, 1].astype(int)
    for m in measures:
        m.add(mel, t, k)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frontend", required=True, help="frontend JSON the data's mel was made with")
    ap.add_argument("--data", default="", help="comma-separated dataset folders (train.build_dataset's .npz)")
    ap.add_argument("--max-files", type=int, default=80, help="per dataset folder")
    ap.add_argument("--real", default=None, help="folder with flac/ and tsv/ (MAPS layout)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    with open(args.frontend) as f:
        spec = FrontendSpec(**json.load(f))
    out = {"frontend": args.frontend, "scales": list(SCALES), "partials": [int(PARTIALS[0]), int(PARTIALS[-1])],
           "sources": {}}
    sources = [(folder, lambda m, f=folder: add_dataset(m, f, args.max_files))
               for folder in filter(None, args.data.split(","))]
    if args.real:
        sources.append((args.real, lambda m: add_real(m, args.real, spec)))
    for name, add in sources:
        rise, contrast = Rise(spec), KeyContrast(spec)
        n = add([rise, contrast])
        if n == 0:
            print(f"error: no audio or .npz under {name}", file=sys.stderr)
            return 2
        out["sources"][name] = {"files": n, "groups": rise.summary(), "key_contrast": contrast.summary()}
    for name, src in out["sources"].items():
        print(name)
        for row in src["groups"]:
            r = row["rise_db_by_scale"]
            print(f"  keys {row['keys'][0]:3d}-{row['keys'][1]:3d}  onsets {row['onsets']:5d}  "
                  + "  ".join(f"s={s}: {v:5.2f}" for s, v in r.items()) + f"  best {row['best_scale']}")
        for part, rows in src["key_contrast"].items():
            print(f"  partials {part:5s} against the neighbours' (dB): "
                  + "  ".join(f"octave {r['octave']} {r['contrast_db']:5.2f}" for r in rows))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
