"""Start a training run from a shipped seed-CNN ONNX file (its checkpoint was not kept).

    python -m train.from_onnx --model seed-cnn --run work/runs/seed-cnn

Writes ``RUN/ckpt`` (the Keras seed CNN holding the ONNX weights, at the step
the JSON records), ``RUN/mel_stats.npz`` (the input statistics baked into the
graph), ``RUN/state.json`` and ``RUN/recipe.jsonl`` (training time and phases
from the JSON), so ``python -m train.train --run RUN --freeze-bn`` goes on from there.

tf2onnx folded each BatchNormalization into the convolution before it, so the
convolutions get the folded kernels and each BatchNormalization becomes the
identity plus the folded bias (moving mean 0, variance 1 - epsilon, gamma 1).
Training must then keep BatchNormalization in inference mode (``--freeze-bn``);
batch statistics would undo the folding.  Refuses a run that already has a
checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import onnx
import tensorflow as tf
from onnx import numpy_helper

from rtpitch.model import resolve_model_path
from train.model import build_model


def onnx_weights(graph) -> dict[str, np.ndarray]:
    """Initializers by name, float16 copies cast back to float32 under the plain name."""
    out = {}
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        name = init.name.removesuffix("__fp16")
        out[name] = arr.astype(np.float32) if arr.dtype == np.float16 else arr
    return out


def _pick(w: dict, *parts: str) -> np.ndarray:
    hits = [k for k in w if all(p in k for p in parts)]
    if len(hits) != 1:
        raise KeyError(f"expected one ONNX initializer with {parts}, found {hits}")
    return w[hits[0]]


def conv_weights(graph, w: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel (out, in, kt, kf), bias (out,)) of each Conv node, in graph order.

    Taken from the nodes' inputs, not from initializer names: tf2onnx names a
    folded kernel differently depending on how BatchNormalization was saved."""
    convs = [n for n in graph.node if n.op_type == "Conv"]
    return [(w[n.input[1]], w[n.input[2]]) for n in convs]


def load_seed_weights(model, graph, w: dict) -> None:
    """Copy the weights of an ONNX seed-CNN graph into the Keras seed CNN built by train/model.py."""
    convs = conv_weights(graph, w)
    names = [(f"block{b}_conv{i}", f"block{b}_bn{i}") for b in (1, 2) for i in range(2)]
    if len(convs) != len(names) + 1:
        raise ValueError(f"expected {len(names) + 1} Conv nodes (seed CNN), found {len(convs)}")
    for (conv, bn_name), (kernel, bias) in zip(names, convs):
        model.get_layer(conv).set_weights([kernel.transpose(2, 3, 1, 0)])
        bn = model.get_layer(bn_name)
        n = bias.shape[0]
        bn.set_weights([np.ones(n, np.float32), bias, np.zeros(n, np.float32),
                        np.full(n, 1.0 - bn.epsilon, np.float32)])
    kernel, bias = convs[-1]  # dense1: (256, 32, 12, 57)
    model.get_layer("dense1").set_weights([kernel.transpose(2, 3, 1, 0), bias])
    for head in ("frame", "onset", "velocity"):
        model.get_layer(head).set_weights([_pick(w, f"{head}_1/Cast/ReadVariableOp"),
                                           _pick(w, f"{head}_1/BiasAdd/ReadVariableOp")])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="seed-cnn", help="a shipped model's name or the path to its JSON")
    ap.add_argument("--run", default="work/runs/seed-cnn")
    args = ap.parse_args(argv)
    json_path = resolve_model_path(args.model)
    meta = json.loads(json_path.read_text())
    if not meta["architecture"].startswith("seed CNN"):
        sys.exit(f"{args.model}: only the seed CNN can be restored from ONNX")
    if tf.train.latest_checkpoint(os.path.join(args.run, "ckpt")):
        sys.exit(f"{args.run} already has a checkpoint")
    onnx_path = str(json_path.with_name(meta["onnx"]))
    graph = onnx.load(onnx_path).graph
    w = onnx_weights(graph)
    mean = _pick(w, "normalize_1/Const:0")  # mel - mean, then * inv_std
    std = 1.0 / _pick(w, "normalize_1/Const_1:0")
    n_mels = meta["frontend"]["n_mels"]
    model = build_model(n_mels, window=meta["window"]["frames"], mean=mean, std=std, arch="seed")
    load_seed_weights(model, graph, w)

    import onnxruntime as ort

    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(-4, 2, (1, 57, n_mels)).astype(np.float32)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))
    ref = model(x, training=False)
    err = max(float(np.abs(got[meta["outputs"][h]] - ref[h].numpy()).max()) for h in ("frame", "onset", "velocity"))
    print(f"Keras vs ONNX max abs diff: {err:.2e}")
    if err > 1e-4:
        sys.exit("restored weights do not reproduce the ONNX model")

    training = meta["training"]
    os.makedirs(args.run, exist_ok=True)
    np.savez(os.path.join(args.run, "mel_stats.npz"), mean=mean, std=std)
    step = tf.Variable(training["steps"], dtype=tf.int64)
    ckpt = tf.train.Checkpoint(model=model, optimizer=tf.keras.optimizers.Adam(1e-4), step=step)
    tf.train.CheckpointManager(ckpt, os.path.join(args.run, "ckpt"), max_to_keep=3).save(checkpoint_number=training["steps"])
    state = {k: training[k] for k in ("train_seconds", "steps", "batch", "seq", "labelled_frames_seen")}
    with open(os.path.join(args.run, "state.json"), "w") as f:
        json.dump(state, f)
    with open(os.path.join(args.run, "recipe.jsonl"), "w") as f:
        for phase in training["recipe_phases"]:  # their features: the model's frontend (export.py reads it)
            f.write(json.dumps({**phase, "frontend": meta["frontend"]}) + "\n")
    print(f"{args.run}: step {training['steps']} restored from {onnx_path}")


if __name__ == "__main__":
    main()
