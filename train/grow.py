"""Grow a trained layer's weights into a wider layer of the same kind, so a wider
model starts out computing exactly what the narrow one did (train.py --init-from).
numpy only: no TensorFlow."""

from __future__ import annotations

import numpy as np


def grow_weights(theirs: list[np.ndarray], ours: list[np.ndarray]) -> list[np.ndarray] | None:
    """``theirs`` placed in the leading entries of ``ours`` (train.train's init_from_run), or None
    where a weight differs in rank, is smaller here, or a kernel's spatial shape
    differs. Kernels (ndim >= 2) are (..., inputs, outputs); rows for new inputs
    become zero; 1-D weights (bias, batch-norm) keep ours beyond theirs."""
    if len(theirs) != len(ours):
        return None
    grown = []
    for t, o in zip(theirs, ours):
        if t.ndim != o.ndim or any(a > b for a, b in zip(t.shape, o.shape)):
            return None
        w = np.array(o, copy=True)
        if t.ndim >= 2:
            if t.shape[:-2] != o.shape[:-2]:
                return None
            w[..., t.shape[-2]:, :] = 0.0
        w[tuple(slice(0, n) for n in t.shape)] = t
        grown.append(w)
    return grown


def between(lo: list[np.ndarray], hi: list[np.ndarray], t: float) -> list[np.ndarray]:
    """Weights a fraction ``t`` (0..1) of the way from ``lo`` to ``hi`` (same shapes): a head for a
    lookahead between two trained ones (train.train's init_from_run) starts between their outputs."""
    return [(1.0 - t) * a + t * b for a, b in zip(lo, hi)]
