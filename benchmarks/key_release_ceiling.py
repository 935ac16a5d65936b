"""How much of a key-release label can audio tell? Two measurements.

    python -m benchmarks.key_release_ceiling

1. A perfect sound-following transcriber, scored as train/evaluate.py scores
   (mir_eval against key-release labels). On rendered validation, where the
   sustain pedal is known (per-frame ``pedal`` label), each reference note is
   extended while the pedal holds it (to the pedal release or the key's next
   onset, whichever comes first): that is the sound, perfectly transcribed.
   Its frame F1 and note-with-offset F1 against the key releases bound what
   a model that hears the strings, not the keys, can score.

2. Does the sound stop at the labelled offset? The energy of a note's first
   three harmonics (dB) in FFT windows (2048 points, 128 ms, 10 ms hop)
   centred 70-140 ms after the labelled offset against those centred 70-140
   ms before it (no window straddles the offset), for notes of MIDI 36-84
   lasting >= 0.25 s with no other note sounding near the offset at the same
   pitch, an octave, a twelfth or two octaves away (their harmonics share
   bins). Calibrated on rendered validation (offsets with the pedal up, where
   the dampers fall, against offsets with it down), then measured on the 14
   MAPS ENSTDkCl recordings, whose pedal is not labelled.

Writes benchmarks/results/key_release_ceiling.json (``--out``).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
from train.evaluate import read_tsv, score

N_FFT, HOP_S = 2048, 0.01
RELATED = (-24, -19, -12, 0, 12, 19, 24)  # semitones whose harmonics share bins with a note's first three


def sound_following(ref: np.ndarray, pedal: np.ndarray, hop_s: float) -> np.ndarray:
    """ref notes (n, 4) with each offset moved to when the pedal lets the string go:
    the first frame at or after the key release with the pedal up, but no later
    than the key's next onset. pedal: bool (frames,) at ``hop_s``."""
    out = ref.copy()
    up = np.flatnonzero(~pedal)
    for i, (on, off, p, _) in enumerate(ref):
        k = int(round(off / hop_s))
        j = np.searchsorted(up, k)
        release = up[j] * hop_s if j < len(up) else len(pedal) * hop_s
        later = ref[(ref[:, 2] == p) & (ref[:, 0] > on), 0]
        out[i, 1] = max(off, min(release, later.min() if len(later) else np.inf))
    return out


def offset_drops(audio: np.ndarray, sr: int, notes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dB drop after - before each usable note's labelled offset, index of that note)."""
    hop = int(round(HOP_S * sr))
    n = (len(audio) - N_FFT) // hop
    if n <= 0:
        return np.zeros(0), np.zeros(0, int)
    win = np.hanning(N_FFT).astype(np.float32)
    spec = np.empty((n, N_FFT // 2 + 1), np.float32)
    for a in range(0, n, 512):  # in chunks: a whole recording's frames at once would take GBs
        idx = np.arange(N_FFT)[None, :] + hop * np.arange(a, min(n, a + 512))[:, None]
        spec[a:a + idx.shape[0]] = np.abs(np.fft.rfft(audio[idx] * win, axis=1)) ** 2

    def frame(t):
        return int(round((t * sr - N_FFT / 2) / hop))

    drops, used = [], []
    for i, (on, off, p, _) in enumerate(notes):
        if off - on < 0.25 or not 36 <= p <= 84:
            continue
        near = notes[np.isin(notes[:, 2], [p + k for k in RELATED]) & (notes[:, 1] > off - 0.15)
                     & (notes[:, 0] < off + 0.25)]
        if len(near) > 1:
            continue
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        bins = [int(round(h * f0 * N_FFT / sr)) for h in (1, 2, 3)]
        b0, b1, a0, a1 = frame(off - 0.14), frame(off - 0.07), frame(off + 0.07), frame(off + 0.14)
        if b0 < 0 or a1 >= n:
            continue
        e = spec[b0:a1, bins].sum(1)  # the frames from the first before-window to the last after-window
        drops.append(10 * np.log10(e[a0 - b0:].mean() + 1e-12) - 10 * np.log10(e[:b1 - b0].mean() + 1e-12))
        used.append(i)
    return np.array(drops), np.array(used, int)


def _summary(d: np.ndarray) -> dict:
    return {"notes": int(len(d)), "median_db": round(float(np.median(d)), 1) if len(d) else None,
            "share_under_6db": round(float(np.mean(d > -6)), 3) if len(d) else None,
            "share_over_15db": round(float(np.mean(d < -15)), 3) if len(d) else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rendered", default="work/data-lowlat/val", help="rendered validation: NAME.{npz,tsv,flac}")
    ap.add_argument("--real", default=str(REPO.parent / "shared" / "data" / "real" / "maps-enstdkcl"))
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "key_release_ceiling.json"))
    args = ap.parse_args(argv)

    npzs = sorted(glob.glob(os.path.join(args.rendered, "*.npz")))
    if not npzs:
        sys.exit(f"no rendered validation in {args.rendered} (train/build_dataset.py writes it)")
    figures, up_drops, down_drops = [], [], []
    for path in npzs:
        with np.load(path) as z:
            pedal = z["pedal"].astype(bool)
            hop_s = float(json.loads(str(z["meta"]))["hop_s"])
        ref = read_tsv(path[:-4] + ".tsv")
        if not len(ref):
            continue
        figures.append(score(ref, sound_following(ref, pedal, hop_s)))
        audio, sr = sf.read(path[:-4] + ".flac", dtype="float32")
        drops, used = offset_drops(audio, sr, ref)
        held = np.array([pedal[min(len(pedal) - 1, int(round(ref[i, 1] / hop_s)))] for i in used], bool)
        up_drops += list(drops[~held])
        down_drops += list(drops[held])
    ceiling = {k: round(float(np.mean([f[k] for f in figures])), 3)
               for k in ("note_f1", "note_offset_f1", "frame_precision", "frame_recall", "frame_f1")}
    pedal_share = float(np.mean([np.load(p)["pedal"].mean() for p in npzs]))

    real = {}
    for tsv in sorted(glob.glob(os.path.join(args.real, "tsv", "*.tsv"))):
        audio, sr = sf.read(tsv.replace(os.sep + "tsv" + os.sep, os.sep + "flac" + os.sep)[:-4] + ".flac",
                            dtype="float32")
        if audio.ndim > 1:
            audio = audio.mean(1)
        real[Path(tsv).stem] = offset_drops(audio, sr, read_tsv(tsv))[0]
    all_real = np.concatenate(list(real.values())) if real else np.zeros(0)

    result = {
        "benchmark": "key_release_ceiling",
        "rendered": {"folder": args.rendered, "files": len(figures), "pedal_down_share": round(pedal_share, 3),
                     "sound_following_scores": ceiling,
                     "offset_drop_pedal_up": _summary(np.array(up_drops)),
                     "offset_drop_pedal_down": _summary(np.array(down_drops))},
        "real": {"folder": args.real, "files": len(real), "offset_drop": _summary(all_real),
                 "per_file": {k: _summary(v) for k, v in real.items()}},
    }
    print(f"rendered validation ({len(figures)} files, pedal down {pedal_share:.0%} of the time): a perfect "
          f"sound-following transcription against key releases: frame F1 {ceiling['frame_f1']:.3f} "
          f"(P {ceiling['frame_precision']:.3f}), note with offset F1 {ceiling['note_offset_f1']:.3f}")
    for label, s in (("rendered, pedal up", result["rendered"]["offset_drop_pedal_up"]),
                     ("rendered, pedal down", result["rendered"]["offset_drop_pedal_down"]),
                     ("MAPS ENSTDkCl", result["real"]["offset_drop"])):
        print(f"energy after the labelled offset, {label}: {s['notes']} notes, median {s['median_db']} dB, "
              f"{s['share_under_6db']:.0%} fall less than 6 dB, {s['share_over_15db']:.0%} more than 15 dB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
