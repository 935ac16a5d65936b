"""A run's newest checkpoint as weights only: what is kept where the full one
(weights + Adam's two moments) is over the repository's 20 MB file limit.

    python -m train.slim_checkpoint RUN

Writes ``RUN/weights/ckpt-STEP`` (the model's variables, their average where the run keeps
one (train/weight_average.py) and the step, float32);
train.py resumes from it when ``RUN/ckpt`` is absent, its optimiser's moments
starting afresh. Prints the files' total size (MB).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import tensorflow as tf

from train.train import WEIGHTS_DIR, model_of_run
from train.weight_average import WeightAverage


def slim(run: str) -> str:
    """Write ``run``'s newest full checkpoint as weights only; returns its prefix."""
    latest = tf.train.latest_checkpoint(os.path.join(run, "ckpt"))
    if latest is None:
        raise SystemExit(f"slim_checkpoint: no checkpoint in {run}/ckpt")
    with np.load(os.path.join(run, "mel_stats.npz")) as z:
        n_mels = int(z["mean"].shape[-1])
    model = model_of_run(run, n_mels)
    step = tf.Variable(0, dtype=tf.int64)
    ema = WeightAverage(model)
    tf.train.Checkpoint(model=model, step=step, ema=ema).restore(latest).expect_partial()
    parts = {"ema": ema} if bool(ema.started.numpy()) else {}  # the weight average stays with the weights
    light = tf.train.Checkpoint(model=model, step=step, **parts)
    manager = tf.train.CheckpointManager(light, os.path.join(run, WEIGHTS_DIR), max_to_keep=1)
    return manager.save(checkpoint_number=int(step))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    args = ap.parse_args(argv)
    prefix = slim(args.run)
    folder = os.path.dirname(prefix)
    mb = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)) / 1e6
    print(f"{prefix}: {mb:.1f} MB")


if __name__ == "__main__":
    main()
