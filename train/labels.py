"""Frame-level labels for a rendered performance.

Frame ``k`` is stamped at its centre ``k * hop_s`` (rtpitch.frontend). Labels follow the
keys (key release, no pedal extension); the pedal has its own label.
"""

from __future__ import annotations

import numpy as np

from rtpitch.events import LOWEST_MIDI, N_KEYS  # noqa: F401  (N_KEYS: build_noise.py)
PEDAL_UNKNOWN = 255  # a frame's pedal label where the source does not say (MAPS synth: heard, not labelled)


def frame_labels(perf, n_frames: int, hop_s: float) -> dict:
    """``frame``: 1 where onset <= k*hop < key release; ``onset``: 1 at round(onset/hop);
    ``velocity``: MIDI velocity at onset frames; ``offset``: 1 at round(release/hop).
    A note shorter than a hop still gets its onset frame and one active frame.
    All uint8 (n_frames, 88); events outside [0, n_frames) are dropped."""
    frame = np.zeros((n_frames, N_KEYS), np.uint8)
    onset = np.zeros((n_frames, N_KEYS), np.uint8)
    offset = np.zeros((n_frames, N_KEYS), np.uint8)
    velocity = np.zeros((n_frames, N_KEYS), np.uint8)
    eps = 1e-9
    for on, off, p, v in zip(perf.onset, perf.offset, perf.pitch, perf.velocity):
        key = int(p) - LOWEST_MIDI
        if not 0 <= key < N_KEYS:
            continue
        k_on = int(np.floor(on / hop_s + 0.5))
        a = int(np.ceil(on / hop_s - eps))  # first k with k*hop >= onset
        b = int(np.ceil(off / hop_s - eps))  # first k with k*hop >= release (exclusive)
        if b <= a:  # shorter than a hop: at least one frame
            a, b = k_on, k_on + 1
        a, b = max(a, 0), min(b, n_frames)
        if b > a:
            frame[a:b, key] = 1
        if 0 <= k_on < n_frames:
            onset[k_on, key] = 1
            velocity[k_on, key] = max(int(velocity[k_on, key]), int(np.clip(v, 1, 127)))
        k_off = int(np.floor(off / hop_s + 0.5))
        if 0 <= k_off < n_frames:
            offset[k_off, key] = 1
    return {"frame": frame, "onset": onset, "offset": offset, "velocity": velocity}


def pedal_frames(perf, n_frames: int, hop_s: float) -> np.ndarray:
    """uint8 (n_frames,): 1 where the sustain pedal (CC64) is >= 64 at k*hop."""
    t = np.arange(n_frames) * hop_s
    return perf.pedal_down_at(t).astype(np.uint8)
