"""Harmonic stacking of the log-mel: the input of the ``stream-hs`` model (train/model.py).

For every piano key (A0 to C8, one bin per semitone) and every harmonic ``h`` of
HARMONICS, the (standardised) log-mel read at ``h`` times the key's equal-tempered
fundamental (A4 = 440 Hz): linearly interpolated, in mel, between the two bands
whose peaks surround it, the edge band between fmin and the first peak (or the
last peak and fmax), and 0 -- the band's training mean -- outside [fmin, fmax].
As one matrix (n_mels, 88 * H): column ``k * H + i`` reads harmonic ``i`` of key
``k``. A convolution over (time, key) then sees a key's fundamental and overtones
side by side in its channels, and a note's pattern is the same at every key
(harmonic stacking, Bittner et al. 2022, "Basic Pitch"). The half harmonic (the
octave below) lets it tell a note from the octave above it. A piano's partials
lie above the integer harmonics (string stiffness: the 8th of A4 a third of a
semitone sharp, the 15th of C4 half a semitone), so a stretched matrix reads them
there instead.
"""

from __future__ import annotations

import numpy as np

from rtpitch.events import LOWEST_MIDI, N_KEYS
from rtpitch.frontend import FrontendSpec, _hz_to_mel, mel_band_centres

HARMONICS = (0.5, 1, 2, 3, 4, 5, 6, 7)
# and harmonics 8 .. 15 after them: a bass key's low harmonics fall where the mel
# bands are 13 Hz apart (linear below 1 kHz), wider than a semitone below 220 Hz,
# so neighbouring bass keys read nearly the same bands; its 8th to 15th harmonics
# lie where the bands are a semitone or less apart. Appended, so a model on
# HARMONICS grows into one on these with its old input channels first.
HARMONICS_16 = HARMONICS + (8, 9, 10, 11, 12, 13, 14, 15)
# and the 1/3 and 1/4 sub-harmonics after those: a false note an octave and a fifth
# or two octaves above a played key (at the played note's 3rd or 4th harmonic)
# reads the played key's fundamental there, 19 or 24 keys below it: beyond the
# +-16 keys that the convolutions over keys see. Appended, as above.
HARMONICS_18 = HARMONICS_16 + (1 / 3, 1 / 4)


def key_hz(n_keys: int = N_KEYS, lowest: int = LOWEST_MIDI) -> np.ndarray:
    """Equal-tempered fundamentals of MIDI keys lowest .. lowest + n_keys - 1, Hz."""
    return 440.0 * 2.0 ** ((np.arange(lowest, lowest + n_keys) - 69) / 12.0)


def inharmonicity(n_keys: int = N_KEYS, lowest: int = LOWEST_MIDI) -> np.ndarray:
    """A grand piano's inharmonicity coefficient B of MIDI keys lowest .. lowest + n_keys - 1:
    the bass and treble asymptotes of Rigaud et al. 2013 ("A parametric model and
    estimation techniques for the inharmonicity and tuning of the piano"), about
    4e-4 at A0, 1e-4 at G2, 3e-4 at C4, 2e-3 at C6, 2e-2 at C8."""
    m = np.arange(lowest, lowest + n_keys, dtype=np.float64)
    return np.exp(-0.0915 * m - 5.8) + np.exp(0.0905 * m - 13.7)


def partial_hz(harmonics, stretch: float = 0.0) -> np.ndarray:
    """(88, H) Hz read for every key and harmonic ``h``: where a piano string puts its
    partial h, h f0 sqrt(1 + stretch B h^2), B from :func:`inharmonicity` (``stretch``
    0: the integer harmonics, 1: the curve; sub-harmonics, h < 1, are not partials:
    unchanged)."""
    h = np.asarray(harmonics, np.float64)[None, :]
    return key_hz()[:, None] * h * np.where(h >= 1, np.sqrt(1.0 + stretch * inharmonicity()[:, None] * h ** 2), 1.0)


def band_position(spec: FrontendSpec, hz: np.ndarray) -> np.ndarray:
    """Fractional mel band index (same shape as ``hz``) of each frequency: linear in
    mel between the two bands whose peaks surround it, clamped to the edge bands."""
    centres_mel = _hz_to_mel(mel_band_centres(spec), spec.htk)
    pos = np.interp(_hz_to_mel(hz, spec.htk).ravel(), centres_mel, np.arange(spec.n_mels, dtype=np.float64))
    return pos.reshape(np.shape(hz))


def harmonic_matrix(spec: FrontendSpec, harmonics=HARMONICS, stretched: bool = False) -> np.ndarray:
    """(n_mels, 88 * len(harmonics)) float32; each column has at most two non-zero
    weights, summing to 1 (in range) or 0 (outside [fmin, fmax]). ``stretched``:
    read partials where a piano puts them (:func:`partial_hz`)."""
    f = partial_hz(harmonics, 1.0 if stretched else 0.0)  # (88, H) Hz
    pos = band_position(spec, f).ravel()
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, spec.n_mels - 1)
    frac = pos - lo
    inside = ((f >= spec.fmin) & (f <= spec.fmax)).ravel()
    m = np.zeros((spec.n_mels, f.size), np.float64)
    cols = np.arange(f.size)
    np.add.at(m, (lo, cols), (1.0 - frac) * inside)
    np.add.at(m, (hi, cols), frac * inside)
    return m.astype(np.float32)
