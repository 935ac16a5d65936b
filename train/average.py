"""Average the weights of training runs of one lineage into a new run.

    python -m train.average --runs work/runs/seed-cnn-40h,work/runs/seed-cnn-soft --run work/runs/seed-cnn-avg

Each run's latest checkpoint (model only) is restored and every variable is
averaged with equal weights (a "model soup" of fine-tunes that went on one from
another; averaging along a fine-tuning path tends to generalise better than its
end point).  The runs must share their input statistics (``mel_stats.npz``) and,
where BatchNormalization is frozen (``--freeze-bn``, as after
train/from_onnx.py), their moving statistics, so the average is taken in one
parameter space; both are checked.  Writes ``RUN/ckpt`` (model, a fresh Adam
state, the step of the last run), ``RUN/mel_stats.npz``, ``RUN/state.json``
(training time: that of the last run, which went on from the others) and
``RUN/recipe.jsonl`` (the last run's phases plus one ``average`` line), so
train/export.py exports it like any run.  Refuses a run that already has a
checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np
import tensorflow as tf

from train.export import restore


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="comma-separated run folders, oldest first")
    ap.add_argument("--run", required=True, help="the new run folder")
    ap.add_argument("--frontend", default=os.path.join(os.path.dirname(__file__), "frontend.json"))
    ap.add_argument("--window", type=int, default=20)
    args = ap.parse_args(argv)
    runs = args.runs.split(",")
    if len(runs) < 2:
        sys.exit("--runs needs at least two runs")
    if os.path.isdir(os.path.join(args.run, "ckpt")):
        sys.exit(f"{args.run}/ckpt exists; not overwriting")
    n_mels = json.load(open(args.frontend))["n_mels"]

    stats = [dict(np.load(os.path.join(r, "mel_stats.npz"))) for r in runs]
    for r, st in zip(runs[1:], stats[1:]):
        if any(not np.array_equal(st[k], stats[0][k]) for k in ("mean", "std")):
            sys.exit(f"{r} has other input statistics than {runs[0]}: not one lineage")
    models = [restore(r, n_mels, args.window, "seed")[0] for r in runs]
    steps = [json.load(open(os.path.join(r, "state.json")))["steps"] for r in runs]
    out = models[-1]
    for i, var in enumerate(out.weights):
        vals = [m.weights[i].numpy() for m in models]
        if not var.trainable and any(not np.array_equal(v, vals[0]) for v in vals[1:]):
            sys.exit(f"non-trainable {var.name} differs between the runs (BatchNormalization not frozen?)")
        var.assign(np.mean(vals, axis=0))
    print(f"averaged {len(out.weights)} variables of {len(runs)} runs at steps {steps}")

    os.makedirs(args.run, exist_ok=True)
    shutil.copy(os.path.join(runs[-1], "mel_stats.npz"), args.run)
    shutil.copy(os.path.join(runs[-1], "state.json"), args.run)
    step = tf.Variable(steps[-1], dtype=tf.int64)
    ckpt = tf.train.Checkpoint(model=out, optimizer=tf.keras.optimizers.Adam(1e-4), step=step)
    tf.train.CheckpointManager(ckpt, os.path.join(args.run, "ckpt"), max_to_keep=3).save(checkpoint_number=steps[-1])
    with open(os.path.join(args.run, "recipe.jsonl"), "w") as f:
        f.writelines(open(os.path.join(runs[-1], "recipe.jsonl")))
        f.write(json.dumps({"from_step": steps[-1], "average": runs, "average_steps": steps}) + "\n")
    print(f"wrote {args.run}")


if __name__ == "__main__":
    main()
