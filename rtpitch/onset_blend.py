"""One onset probability per frame from the onset heads of several lookaheads.

A model trained with heads for several lookaheads (train.py ``--lookaheads``)
may ship, beside its heads of lookahead ``L``, onset heads of smaller
lookaheads ``m`` (outputs ``onset_la{m}``).  In the row of predictions whose
main heads are for frame ``j``, such a head predicts frame ``j + L - m``
(the window is the same; it looks ``m`` frames less ahead).  So by the time
frame ``j`` is decided, ``L`` frames after it, the predictions of frame ``j``
at every lookahead ``m <= L`` are in: made ``L - m`` rows earlier.  Their
weighted mean replaces the ``onset`` row, at no added latency (a small
ensemble: each lookahead's head errs on other frames).  The frames before the
``L - m``-th after a reset have no prediction of lookahead ``m``; their mean is
over the lookaheads that have one.
"""

from __future__ import annotations

import numpy as np

from .events import N_KEYS


class OnsetBlend:
    """Blend ``onset`` with the earlier rows of the ``onset_la{m}`` outputs.

    ``blend``: ((lookahead frames, weight), ...), one of them ``lookahead`` (the
    model's, whose head is ``onset``).  Call it with each predictor output, rows
    for consecutive frames (head -> (n, 88) float32); it returns the output with
    ``onset`` blended and the ``onset_la{m}`` entries removed.
    """

    def __init__(self, blend, lookahead: int):
        weights = dict(blend)
        self.main_weight = np.float32(weights.pop(lookahead))
        # (output name, rows between the prediction and the decision, weight)
        self._others = [(f"onset_la{m}", lookahead - m, np.float32(w)) for m, w in sorted(weights.items())]
        self.reset()

    @property
    def outputs(self) -> list[str]:
        """The extra outputs the model must have."""
        return [name for name, _, _ in self._others]

    def reset(self) -> None:
        """No earlier rows (a new stream)."""
        self._held = {name: np.zeros((0, N_KEYS), np.float32) for name, _, _ in self._others}

    def __call__(self, out: dict) -> dict:
        out = dict(out)
        n = out["onset"].shape[0]
        total = self.main_weight * out["onset"]
        weight = np.full((n, 1), self.main_weight, np.float32)
        for name, delay, w in self._others:
            held = self._held[name]
            rows = np.concatenate([held, out.pop(name)])  # rows[i] predicts frame first + i - len(held) + delay
            lo = max(0, delay - len(held))  # the first frame of this output with a prediction
            if lo < n:
                total[lo:] += w * rows[lo + len(held) - delay : n + len(held) - delay]
                weight[lo:] += w
            self._held[name] = rows[-delay:] if delay else rows[:0]
        out["onset"] = (total / weight).astype(np.float32)
        return out
