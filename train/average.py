"""Average the weights of several checkpoints of one run into a new run.

    python train/average.py --run work/runs/seed-cnn --out work/runs/seed-cnn-avg \\
        [--also models/seed-cnn.json]

Uniform average of every checkpoint kept in ``RUN/ckpt`` (train.py keeps the
last three) and, with ``--also``, of the weights in a shipped model's ONNX file
(restored as train/from_onnx.py does).  Averaging points along one low-rate
stretch of training (stochastic weight averaging) usually lands nearer the
middle of the basin than any one of them.  All inputs must share one
architecture and, for the seed CNN restored from ONNX, frozen
BatchNormalization (``--freeze-bn``), so the averaged statistics stay the
identity the folding left.  Writes ``OUT/ckpt`` at the newest step plus
``mel_stats.npz``, ``state.json`` and ``recipe.jsonl`` (with an "average" entry),
ready for train/export.py.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np
import onnx
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))
from from_onnx import load_seed_weights, onnx_weights  # noqa: E402
from model import build_model  # noqa: E402

from rtpitch.model import load_model_spec  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--also", help="a model JSON whose ONNX weights join the average (seed CNN)")
    ap.add_argument("--arch", default="seed")
    args = ap.parse_args(argv)
    if os.path.exists(os.path.join(args.out, "ckpt")):
        sys.exit(f"{args.out} already has checkpoints")
    with np.load(os.path.join(args.run, "mel_stats.npz")) as z:
        mean, std = z["mean"], z["std"]
    model = build_model(len(mean), mean=mean, std=std, arch=args.arch)
    ckpt = tf.train.Checkpoint(model=model)
    paths = tf.train.get_checkpoint_state(os.path.join(args.run, "ckpt")).all_model_checkpoint_paths
    weights, names = [], []
    for path in paths:
        ckpt.restore(path).expect_partial()
        weights.append(model.get_weights())
        names.append(os.path.basename(path))
    if args.also:
        spec = load_model_spec(args.also)
        graph = onnx.load_from_string(spec.onnx_bytes()).graph
        load_seed_weights(model, graph, onnx_weights(graph))
        weights.append(model.get_weights())
        names.append(f"{spec.name} ({spec.info['training'].get('steps')} steps, ONNX)")
    model.set_weights([np.mean(ws, axis=0) for ws in zip(*weights)])
    state = json.load(open(os.path.join(args.run, "state.json")))
    os.makedirs(args.out, exist_ok=True)
    out = tf.train.Checkpoint(model=model, step=tf.Variable(state["steps"], dtype=tf.int64))
    tf.train.CheckpointManager(out, os.path.join(args.out, "ckpt"), max_to_keep=1).save(checkpoint_number=state["steps"])
    for name in ("mel_stats.npz", "state.json", "recipe.jsonl"):
        shutil.copy(os.path.join(args.run, name), os.path.join(args.out, name))
    with open(os.path.join(args.out, "recipe.jsonl"), "a") as f:
        f.write(json.dumps({"average": names, "made_by": "train/average.py"}) + "\n")
    print(f"averaged {len(weights)}: {', '.join(names)} -> {args.out}")


if __name__ == "__main__":
    main()
