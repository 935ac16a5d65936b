"""An exponential moving average of a model's weights, kept beside them in the checkpoint.

    ema = WeightAverage(model, decay=0.999)
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, step=step, ema=ema)
    ...; opt.apply_gradients(...); ema.update()          # after every step
    with ema.swapped_in(): validate(model)                 # the average, then the raw weights back

Every one of ``model.weights`` is averaged, BatchNormalization's moving
statistics too (they are averages already; averaging them again keeps them
matched to the averaged kernels). ``started`` is False until the average holds
something: a checkpoint written without it (an older run) restores the model
alone, and :meth:`start` then copies the weights in. Exports and other runs read a
checkpoint's weights through :func:`restore_weights`, which takes the average
where there is one.
"""

from __future__ import annotations

import contextlib

import tensorflow as tf


class WeightAverage(tf.Module):
    """Shadow copies of ``model.weights`` (float32, same order) and their decay."""

    def __init__(self, model, decay: float = 0.999):
        super().__init__(name="weight_average")
        self._weights = lambda: model.weights  # a function: the model is not tracked as part of this
        self.decay = float(decay)
        self.shadow = [tf.Variable(w, trainable=False, name=f"avg_{i}") for i, w in enumerate(model.weights)]
        self.started = tf.Variable(False, trainable=False, name="started")

    def start(self) -> None:
        """The average starts at the model's current weights."""
        for s, w in zip(self.shadow, self._weights()):
            s.assign(w)
        self.started.assign(True)

    def update(self) -> None:
        """shadow <- decay * shadow + (1 - decay) * weights (traceable in a tf.function)."""
        for s, w in zip(self.shadow, self._weights()):
            s.assign(self.decay * s + (1.0 - self.decay) * tf.cast(w, s.dtype))

    def apply(self) -> None:
        """Overwrite the model's weights with the average (an export's last step)."""
        for s, w in zip(self.shadow, self._weights()):
            w.assign(s)

    @contextlib.contextmanager
    def swapped_in(self):
        """The model holds the average inside the block, its own weights again after it."""
        raw = [w.numpy() for w in self._weights()]
        self.apply()
        try:
            yield
        finally:
            for w, v in zip(self._weights(), raw):
                w.assign(v)


def restore_weights(model, prefix: str) -> bool:
    """Restore ``model`` from checkpoint ``prefix``; where the checkpoint holds a
    started weight average, the model takes the average. Returns whether it did."""
    ema = WeightAverage(model, decay=0.0)
    tf.train.Checkpoint(model=model, ema=ema).restore(prefix).expect_partial()
    if bool(ema.started.numpy()):
        ema.apply()
        return True
    return False
