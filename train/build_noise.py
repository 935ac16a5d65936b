"""Noise-only training segments: what a microphone hears when nobody plays.

    python -m train.build_noise --out work/data-noise --segments 240 --seconds 30 \
        --frontend train/frontend-lowlat.json

The rendered music carries its noise and hum 25-60 dB under the piano
(train/augment.py), so a model never hears loud noise alone; the stream CNN's
heads then rise on it and fire a burst of notes when such noise starts
(docs/RESULTS.md, "Noise"). Each segment here is steady
white, pink or brown noise (drawn at -70 to -10 dBFS RMS), mains hum (50 or
60 Hz with harmonics), or both; half of them start in near-silence and switch
the noise on (fade 5-200 ms) at a random time; then ``microphone_in_room``
(room, mic EQ, gain: the level heard is the drawn one moved by -18..+6 dB).
Labels are all zero. Stored as build_dataset.py stores a segment
(``OUT/train/noise_<i>.npz``, a line each in ``OUT/manifest.jsonl``), so
``python -m train.train --data music,OUT`` mixes them in by length. Deterministic in
``--seed``; existing files are kept.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from rtpitch.frontend import FrontendSpec, logmel
from train.augment import colored_noise, mains_hum, microphone_in_room
from train.build_dataset import load_frontend
from train.labels import N_KEYS


def noise_audio(n: int, sr: int, rng) -> tuple[np.ndarray, dict]:
    """One segment's noise (float64, n samples) and what was drawn."""
    kind = rng.choice(["noise", "hum", "both"], p=[0.5, 0.2, 0.3])
    level_db = float(rng.uniform(-70, -10))
    x = np.zeros(n)
    P = {"kind": str(kind), "level_dbfs": round(level_db, 1)}
    if kind in ("noise", "both"):
        color = str(rng.choice(["white", "pink", "brown"]))
        nz = colored_noise(n, rng, color)
        x += nz / np.sqrt(np.mean(nz ** 2))
        P["color"] = color
    if kind in ("hum", "both"):
        hum, f = mains_hum(n, sr, rng, harmonics=7)
        x += hum / np.sqrt(np.mean(hum ** 2)) * (1.0 if kind == "hum" else 10 ** (-rng.uniform(0, 20) / 20))
        P["hum_hz"] = round(f, 2)
    x *= 10 ** (level_db / 20) / np.sqrt(np.mean(x ** 2))
    if rng.random() < 0.5:  # switched on after near-silence
        start = int(rng.uniform(0.05, 0.5) * n)
        fade = max(1, int(rng.uniform(0.005, 0.2) * sr))
        env = np.clip((np.arange(n) - start) / fade, 0.0, 1.0)
        x = x * env + 10 ** (rng.uniform(-90, -60) / 20) * rng.standard_normal(n)
        P["switched_on_s"] = round(start / sr, 3)
    return x, P


def make_noise_segment(i: int, out: Path, spec: FrontendSpec, seconds: float, seed: int) -> dict:
    """Make (or find) segment ``i``; returns its manifest record."""
    npz = out / "train" / f"noise_{i:05d}.npz"
    if npz.exists():
        with np.load(npz) as z:
            return json.loads(str(z["meta"]))
    rng = np.random.default_rng([seed, i])
    sr = spec.sample_rate
    x, P = noise_audio(int(seconds * sr), sr, rng)
    peak = np.abs(x).max()
    # microphone_in_room scales its input to peak 0.5 and its output to a peak of
    # aug["peak_dbfs"] (-24..0): scaling back by peak / 0.5 keeps the drawn level,
    # moved by that gain + 6 dB (-18..+6 dB; the loudest segments clip at full scale)
    room, aug = microphone_in_room(x, sr, rng, return_params=True)
    audio = np.clip(room.astype(np.float64) * (peak / 0.5 if peak > 0 else 1.0), -1.0, 1.0).astype(np.float32)
    mel = logmel(audio, spec)
    T = len(mel)
    zeros = np.zeros((T, N_KEYS), np.uint8)
    meta = {"id": npz.stem, "split": "train", "dur_s": seconds, "collection": "noise", "timbre": f"noise ({P['kind']})",
            "noise": P, "augment": aug, "frames": T, "hop_s": spec.hop_s}
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz.with_name(npz.stem + ".tmp.npz")
    np.savez_compressed(tmp, mel=mel.astype(np.float16), frame=zeros, onset=zeros, offset=zeros, velocity=zeros,
                        pedal=np.zeros(T, np.uint8), augment=np.array(json.dumps(aug)), meta=np.array(json.dumps(meta)))
    os.replace(tmp, npz)
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="work/data-noise")
    ap.add_argument("--segments", type=int, default=240)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frontend", default=None, help="as build_dataset.py --frontend")
    args = ap.parse_args(argv)
    spec = FrontendSpec(**load_frontend(args.frontend))
    out = Path(args.out)
    metas = [make_noise_segment(i, out, spec, args.seconds, args.seed) for i in range(args.segments)]
    (out / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metas))
    print(f"{args.segments} noise segments x {args.seconds:g} s in {out / 'train'}")


if __name__ == "__main__":
    main()
