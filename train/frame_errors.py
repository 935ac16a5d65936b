"""Where a model's frame errors are: missed frames by time since the note's onset, extra frames by kind,
the frame head on held notes, each with the pedal down and up where the labels carry it
(train/note_errors.py reports them beside the note errors, as ``frames``).

Compares a transcription's notes and the labels as rolls on frame F1's 10 ms grid
(train.evaluate: frames a labelled key is down, frames a transcribed note
sounds).  A labelled frame is *missed* where no
transcribed note of its key sounds; missed shares are given per band of time
since the labelled note's onset (``SINCE_ONSET_S``).  A transcribed frame
outside the labels is *extra*: ``after release`` when its key was released
under ``AFTER_RELEASE_S`` before, else ``other``.  ``held``: the frame head
itself (the model's lookahead, before the decoder) on labelled frames from
``HELD_AFTER_S`` after the onset: its mean, and the shares over 0.2 and 0.5.
A rendered recording whose labels carry the pedal splits each figure by the
pedal at the frame (``pedal down`` / ``pedal up``); MAPS has no pedal labels
(``all``).
"""

from __future__ import annotations

import numpy as np

from rtpitch.events import LOWEST_MIDI
from train.evaluate import FRAME_HOP_S, _roll

SINCE_ONSET_S = (0.0, 0.3, 0.6, 1.2, np.inf)
AFTER_RELEASE_S = 1.0
HELD_AFTER_S = 0.6


def _since_onset(ref: np.ndarray, n: int) -> np.ndarray:
    """(n, 128) seconds since the onset of the labelled note that holds each frame; -1 where none
    (the frames train.evaluate's ``_roll`` marks: >= 0 is the labelled roll)."""
    since = np.full((n, 128), -1.0)
    for on, off, key, _ in ref:
        a, b = int(round(on / FRAME_HOP_S)), int(round(off / FRAME_HOP_S))
        b = min(max(b, a + 1), n)
        since[a:b, int(key)] = (np.arange(a, b) - a) * FRAME_HOP_S
    return since


def _after_release(ref: np.ndarray, n: int) -> np.ndarray:
    """(n, 128) bool: frames within AFTER_RELEASE_S after a labelled release of that key."""
    after = np.zeros((n, 128), bool)
    for _, off, key, _ in ref:
        b = int(round(off / FRAME_HOP_S))
        after[b : b + int(round(AFTER_RELEASE_S / FRAME_HOP_S)), int(key)] = True
    return after


def _pedal_rows(labels: dict, n: int) -> dict:
    """{"pedal down": (n, 1) bool, "pedal up": ...} from a rendered recording's pedal labels,
    or {"all": (n, 1) True} without them."""
    if "pedal" not in labels:
        return {"all": np.ones((n, 1), bool)}
    down, hop_s = labels["pedal"]
    at = np.minimum((np.arange(n) * FRAME_HOP_S / hop_s).astype(int), len(down) - 1)
    d = (down[at] > 0)[:, None]
    return {"pedal down": d, "pedal up": ~d}


def piece_counts(ref: np.ndarray, est: np.ndarray, frame: np.ndarray, hop_s: float, labels: dict) -> dict:
    """Frame counts of one recording: {split: {"labelled", "missed" (per SINCE_ONSET_S band),
    "extra", "extra after release", "held" (frame head values)}}. ``frame``: the frame head
    (T, 88) at ``hop_s``."""
    n = int(max(ref[:, 1].max(), est[:, 1].max() if len(est) else 0) / FRAME_HOP_S) + 2
    since, after, sounding = _since_onset(ref, n), _after_release(ref, n), _roll(est, n)
    labelled = since >= 0
    at = np.round(np.arange(n) * FRAME_HOP_S / hop_s).astype(int)  # the model's frame at each grid frame
    inside = at < len(frame)
    out = {}
    for split, rows in _pedal_rows(labels, n).items():
        mask = labelled & rows
        bands = [mask & (since >= lo) & (since < hi) for lo, hi in zip(SINCE_ONSET_S[:-1], SINCE_ONSET_S[1:])]
        extra = sounding & ~labelled & rows
        t, k = np.nonzero(mask & (since >= HELD_AFTER_S) & inside[:, None])
        keys = k - LOWEST_MIDI
        ok = (keys >= 0) & (keys < frame.shape[1])
        out[split] = {"labelled": [int(b.sum()) for b in bands],
                      "missed": [int((b & ~sounding).sum()) for b in bands],
                      "extra": int(extra.sum()), "extra after release": int((extra & after).sum()),
                      "held": frame[at[t[ok]], keys[ok]]}
    return out


def summary(pieces: list[dict]) -> dict:
    """The counts of every recording (piece_counts) summed per split: shares, 3 decimals."""
    out = {}
    for split in dict.fromkeys(s for p in pieces for s in p):
        parts = [p[split] for p in pieces if split in p]
        labelled = np.sum([p["labelled"] for p in parts], axis=0)
        missed = np.sum([p["missed"] for p in parts], axis=0)
        held = np.concatenate([p["held"] for p in parts])
        extra = sum(p["extra"] for p in parts)
        out[split] = {
            "labelled_frames": int(labelled.sum()),
            "missed_by_time_since_onset": {f"{lo}-{hi} s": round(float(m / max(1, n)), 3) for lo, hi, m, n
                                           in zip(SINCE_ONSET_S[:-1], SINCE_ONSET_S[1:], missed, labelled)},
            "labelled_by_time_since_onset": [int(n) for n in labelled],
            "extra_frames": int(extra),
            "extra_after_release": round(sum(p["extra after release"] for p in parts) / max(1, extra), 3),
            "held_frame_head": {"frames": len(held), "mean": round(float(held.mean()), 3) if len(held) else None,
                                "over_0.2": round(float((held > 0.2).mean()), 3) if len(held) else None,
                                "over_0.5": round(float((held > 0.5).mean()), 3) if len(held) else None}}
    return out
