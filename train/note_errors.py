"""Where a model's note errors are: missed and false notes sorted by kind, recall per octave and per loudness;
and its frame errors (train/frame_errors.py: ``frames``).

    python -m train.note_errors --model stream --real ../shared/data/real/maps-enstdkcl \\
        --rendered work/data-lowlat/val --out benchmarks/results/note_errors-stream.json

Transcribes each recording as ``transcribe`` does (the model's decoder, or one
setting changed: ``--set restrike_threshold=None``), matches note onsets as
mir_eval does (50 ms), then names each unmatched note by the first kind that
fits (:func:`missed_kind`, :func:`false_kind`).  Missed notes: a note of the
same key within 150 ms (``late`` / ``early``), inside a transcribed note of the
same key that went on sounding (``held over``: the key was released and struck
again under it), else ``chord of N`` (notes starting within 30 ms).  False
notes: a labelled onset of the key within 150 ms (``timing``), the key sounding
(``double``), an overtone (12, 19, 24, 28, 31 semitones) or undertone (12, 19,
24) of a sounding note, a neighbour (1 or 2 semitones), the key released under
1 s before, else ``other``.  Recall is also given per band of the labels' MIDI
velocity (``VELOCITY_BANDS``): MAPS is played softer than the MIDI collections.
``frames``: missed labelled frames by time since the onset, extra frames after
a release, the frame head on held notes, split by the pedal where the rendered
labels carry it (train/frame_errors.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from collections import Counter

import numpy as np

from rtpitch.backends import make_backend
from rtpitch.errors import ConfigError
from rtpitch.model import load_model_spec
from train.evaluate import onset_matches, read_tsv, real_pairs, rendered_labels, rendered_pairs
from train.frame_errors import piece_counts, summary
from train.tune_decoder import activations, decode

NEAR_S = 0.15  # a note this close to one of the same key is a timing error
CHORD_S = 0.03
OVERTONES = (12, 19, 24, 28, 31)
UNDERTONES = (-12, -19, -24)
VELOCITY_BANDS = (1, 32, 48, 64, 80, 96, 128)  # band i: velocities VELOCITY_BANDS[i] .. VELOCITY_BANDS[i + 1] - 1


def match(ref: np.ndarray, est: np.ndarray) -> tuple[set, set]:
    """Indices of the matched reference and estimated notes (train.evaluate.onset_matches)."""
    pairs = onset_matches(ref, est)
    return {i for i, _ in pairs}, {j for _, j in pairs}


def missed_kind(note: np.ndarray, ref: np.ndarray, est: np.ndarray) -> str:
    """The kind of a missed reference ``note`` (onset s, offset s, key, velocity) given every
    reference and transcribed note (module docstring)."""
    same = est[est[:, 2] == note[2]]
    d = same[:, 0] - note[0]
    if len(d) and np.min(np.abs(d)) < NEAR_S:
        return "late" if d[np.argmin(np.abs(d))] > 0 else "early"
    if np.any((same[:, 0] < note[0]) & (same[:, 1] > note[0])):
        return "held over"
    n = int(np.sum(np.abs(ref[:, 0] - note[0]) < CHORD_S))
    return f"chord of {n}" if n < 4 else "chord of 4+"


def false_kind(note: np.ndarray, ref: np.ndarray) -> str:
    """The kind of a false transcribed ``note`` given the reference notes (module docstring)."""
    same = ref[ref[:, 2] == note[2]]
    if len(same) and np.min(np.abs(note[0] - same[:, 0])) < NEAR_S:
        return "timing"
    sounding = ref[(ref[:, 0] <= note[0] + 0.05) & (ref[:, 1] >= note[0] - 0.05)]
    interval = note[2] - sounding[:, 2]
    if np.any(interval == 0):
        return "double"
    if np.any(np.isin(interval, OVERTONES)):
        return "overtone"
    if np.any(np.isin(interval, UNDERTONES)):
        return "undertone"
    if np.any(np.abs(interval) <= 2):
        return "neighbour"
    if len(same) and np.any((note[0] > same[:, 1]) & (note[0] - same[:, 1] < 1.0)):
        return "after release"
    return "other"


def breakdown(pieces: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Counts over (reference, transcribed) note arrays: missed and false notes by kind,
    and per octave from A0 (keys 21-32, 33-44, ...) and per velocity band the reference
    notes and the share found."""
    missed, false = Counter(), Counter()
    total, found = np.zeros(8), np.zeros(8)
    n_bands = len(VELOCITY_BANDS) - 1
    v_total, v_found = np.zeros(n_bands), np.zeros(n_bands)
    for ref, est in pieces:
        mr, me = match(ref, est)
        for i, note in enumerate(ref):
            octave = min(7, int((note[2] - 21) // 12))
            total[octave] += 1
            found[octave] += i in mr
            band = min(n_bands - 1, max(0, int(np.searchsorted(VELOCITY_BANDS, note[3], side="right")) - 1))
            v_total[band] += 1
            v_found[band] += i in mr
            if i not in mr:
                missed[missed_kind(note, ref, est)] += 1
        for j, note in enumerate(est):
            if j not in me:
                false[false_kind(note, ref)] += 1
    return {"notes": int(total.sum()), "transcribed": int(sum(len(e) for _, e in pieces)),
            "missed": dict(missed.most_common()), "false": dict(false.most_common()),
            "recall_by_octave": _shares(found, total), "notes_by_octave": [int(t) for t in total],
            "recall_by_velocity": _shares(v_found, v_total), "notes_by_velocity": [int(t) for t in v_total]}


def _shares(found: np.ndarray, total: np.ndarray) -> list:
    """found / total per bin, 3 decimals; None where a bin holds no note."""
    return [round(float(f / t), 3) if t else None for f, t in zip(found, total)]


def _setting(text: str) -> tuple[str, float | None]:
    name, _, value = text.partition("=")
    return name, None if value == "None" else float(value)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="stream")
    ap.add_argument("--real", default=None, help="folder with flac/ and tsv/ (MAPS ENSTDkCl)")
    ap.add_argument("--rendered", default=None, help="rendered validation folder")
    ap.add_argument("--limit", type=int, default=30, help="rendered recordings to use")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a decoder setting to change (VALUE None: off); repeatable")
    ap.add_argument("--out", default=None, help="JSON to write")
    args = ap.parse_args(argv)

    spec = load_model_spec(args.model)
    try:
        decoder = dataclasses.replace(spec.decoder, **dict(map(_setting, args.set)))
    except (TypeError, ValueError) as e:
        raise SystemExit(f"--set: {e}")
    except ConfigError as e:
        raise SystemExit(str(e))
    backend = make_backend("onnxruntime", spec, threads=1)
    sets = {"real": real_pairs(args.real) if args.real else [],
            "rendered": rendered_pairs(args.rendered, args.limit) if args.rendered else []}
    out = {"model": args.model, "decoder": dataclasses.asdict(decoder)}
    for name, pairs in sets.items():
        if not pairs:
            continue
        pieces, frames = [], []
        for audio, tsv in pairs:
            ref, acts = read_tsv(tsv), activations(spec, backend, audio)
            est = decode(decoder, spec.frontend.hop_s, acts)
            pieces.append((ref, est))
            frames.append(piece_counts(ref, est, acts.frame, spec.frontend.hop_s, rendered_labels(audio)))
        out[name] = {"recordings": len(pairs), **breakdown(pieces), "frames": summary(frames)}
        print(name, json.dumps(out[name]), flush=True)
    if len(out) == 2:
        raise SystemExit("nothing to score: give --real and/or --rendered")
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
