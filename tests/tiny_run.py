"""Make a tiny training run with random weights, as train/train.py leaves one
(tests only; TensorFlow, so the tests run it in a subprocess).

    python -m tests.tiny_run OUT --arch stream-gru --lookaheads 0,2 [--reference N]

Writes ``OUT/data/manifest.jsonl`` (one segment, the low-latency frontend),
``OUT/run/`` (mel_stats.npz, ckpt/, recipe.jsonl, state.json) and, with
``--reference N``, ``OUT/reference.npz``: a random log-mel stream ``mel``
(N, n_mels) and, per lookahead ``la``, the Keras model's outputs over it laid
out as rtpitch's StepPredictor predicts a stream (window - 1 - la pad frames
before it, la after; the model's recurrent state starts at zero at the first
prediction, as at the start of every training crop): ``{head}_la{la}`` (N, units).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from train.model import HEADS, build_model, output_name

ROOT = Path(__file__).resolve().parent.parent


def _lean_on_state(heads, recurrent) -> None:
    """x4 the rows of each head's kernel that read ``recurrent``'s state: the inputs after
    the recurrent layer's own (the heads see [its input, its state], in that order)."""
    first = recurrent.input.shape[-1]
    for layer in heads:
        kernel = layer.kernel.numpy()
        kernel[..., first:, :] *= 4.0
        layer.kernel.assign(kernel)


def random_key_offsets(model, rng: np.random.Generator) -> None:
    """Random kernels for the key offsets (train/model.py ``_key_offsets``), which start at
    zero so that a grown run starts as its source: a test of them must see them act."""
    for layer in model.layers:
        if layer.name.startswith("keyoff") and layer.weights:
            layer.kernel.assign(rng.normal(0, 0.1, layer.kernel.shape).astype(np.float32))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--arch", default="stream-gru")
    ap.add_argument("--lookaheads", default="0,2")
    ap.add_argument("--reference", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    frontend = json.loads((ROOT / "train" / "frontend-lowlat.json").read_text())
    n_mels, window = frontend["n_mels"], 20
    data, run = out / "data", out / "run"
    data.mkdir(parents=True, exist_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    seg = {"id": "a", "split": "train", "dur_s": 60.0, "collection": "test", "timbre": "fluid-r3",
           "frontend": frontend}
    (data / "manifest.jsonl").write_text(json.dumps(seg) + "\n")
    rng = np.random.default_rng(0)
    mean = rng.normal(-5.0, 1.0, n_mels).astype(np.float32)
    std = rng.uniform(1.5, 2.5, n_mels).astype(np.float32)
    np.savez(run / "mel_stats.npz", mean=mean, std=std)
    lookaheads = [int(v) for v in args.lookaheads.split(",")]
    tf.random.set_seed(0)
    model = build_model(n_mels, window=window, mean=mean, std=std, arch=args.arch, lookaheads=lookaheads,
                        frontend=frontend)
    for layer in model.layers:  # BN statistics away from the identity, so the export must carry them
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, layer.moving_variance.shape).astype(np.float32))
    random_key_offsets(model, rng)  # so the export must carry them
    names = {layer.name for layer in model.layers}
    if "gru" in names:  # the heads lean on the state: a test that drops it fails
        _lean_on_state([model.get_layer(name) for name in model.output_names], model.get_layer("gru"))
    if "key_gru" in names:  # the same for the per-key state
        _lean_on_state([la for la in model.layers if la.name.endswith("_per_key")], model.get_layer("key_gru"))
    if "pedal_gru" in names:  # the same for the pedal's state, which also lasts longer (z ~ 0.95): one state,
        gru = model.get_layer("pedal_gru")  # easily swamped
        gru.gate_bias.assign(gru.gate_bias.numpy() + 2.0)
        _lean_on_state([la for la in model.layers if la.name.startswith("pedal_la") and la.name.endswith("_pooled")],
                       gru)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(run / "ckpt"), max_to_keep=1)
    manager.save()
    recipe = {"from_step": 0, "data": str(data), "window": window, "lookahead": lookaheads[-1],
              "arch": args.arch, "lookaheads": args.lookaheads, "seq": 200, "lr": 1e-3}
    (run / "recipe.jsonl").write_text(json.dumps(recipe) + "\n")
    (run / "state.json").write_text(json.dumps({"steps": 1, "train_seconds": 1.0}))
    if args.reference:
        mel = rng.normal(-4.0, 2.0, (args.reference, n_mels)).astype(np.float32)
        pad = np.float32(np.log(frontend["log_offset"]))
        ref = {"mel": mel}
        for la in lookaheads:
            x = np.concatenate([np.full((window - 1 - la, n_mels), pad, np.float32), mel,
                                np.full((la, n_mels), pad, np.float32)])
            y = model(x[None], training=False)
            for head in HEADS[args.arch]:
                ref[f"{head}_la{la}"] = y[output_name(head, la)].numpy()[0]
        np.savez(out / "reference.npz", **ref)


if __name__ == "__main__":
    main()
