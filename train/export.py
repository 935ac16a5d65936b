"""Export a training run to <name>.onnx + <name>.json in rtpitch/models/.

    python -m train.export --run work/runs/seed-cnn --name seed-cnn

The ONNX graph takes mel (batch, time, n_mels) and gives each head as
(batch, time - window + 1, 88) (the pedal head: 1 unit); large weights are stored as float16 (cast to
float32 at load) when the outputs stay within 2e-3 of Keras's on random input (max abs difference of
the probabilities), otherwise every tensor stays float32.
The JSON carries every parameter the engine reads (see rtpitch/model.py) and
the training provenance; evaluate.py adds the measured figures.  The model's
parameters come from the run itself, never from defaults here: architecture,
window and lookahead from its recipe.jsonl (train.py's arguments, per phase),
the frontend from the data it trained on; ``--lookahead`` picks the heads of a
multi-lookahead run, and ``--frontend`` / ``--arch`` given anyway must match.
``--checkpoint`` exports an earlier checkpoint than the run's newest (a copy of
``RUN/ckpt/ckpt-N`` taken while it trained on): the JSON then records that
checkpoint's step and the recipe phases that made it.

A recurrent model (stream-gru: a GRU over the trunk's per-hop features;
stream-keys-rec: a MinGRU per key; stream-keys-h16-pedal-rec: a MinGRU in the
pedal head) is written with an ONNX ``GRU`` node (:func:`export_recurrent_onnx`,
:func:`export_key_recurrent_onnx`, :func:`export_pedal_recurrent_onnx`); its window
graph runs a whole sequence (the state starts at zero at its first output), so
rtpitch serves it only through its step graph, which carries the GRU's state
from hop to hop: export makes that too (train/step_graph.py), and the JSON says
``"recurrent": true``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import tensorflow as tf
import tf2onnx

from rtpitch.events import N_KEYS
from rtpitch.latency import model_budget
from rtpitch.model import MODELS_DIR, load_model_spec
from train.model import ARCHITECTURES, HEADS, build_model, is_recurrent, output_name
from train.run_info import progress, run_frontend, run_parameters
from train.train import latest_weights
from train.step_graph import write_step_graph
from train.weight_average import restore_weights


def restore(run: str, n_mels: int, window: int, arch: str, lookaheads=None, frontend: dict | None = None,
            checkpoint: str | None = None):
    """The run's model holding the weights of ``checkpoint`` (a prefix; default: the run's newest)."""
    with np.load(os.path.join(run, "mel_stats.npz")) as z:
        mean, std = z["mean"], z["std"]
    model = build_model(n_mels, window=window, mean=mean, std=std, arch=arch, lookaheads=lookaheads,
                        frontend=frontend)
    prefix = checkpoint or latest_weights(run)
    if prefix is None:
        sys.exit(f"no checkpoint in {run}/ckpt or {run}/weights")
    if restore_weights(model, prefix):
        print(f"{prefix}: the weights' moving average (train.py --ema)", flush=True)
    return model, prefix


def checkpoint_step(prefix: str) -> int:
    """The training step a train.py checkpoint was written at (its ``step`` variable)."""
    return int(tf.train.load_variable(prefix, "step/.ATTRIBUTES/VARIABLE_VALUE"))


def provenance(run: str, recipe: list[dict], checkpoint: str | None) -> tuple[dict, list[dict]]:
    """The run's state.json and recipe phases as of ``checkpoint`` (None: the newest, as kept):
    an earlier checkpoint's step, batch and frames seen, and the phases begun before it."""
    state = json.load(open(os.path.join(run, "state.json")))
    if checkpoint is None:
        return state, recipe
    step = checkpoint_step(checkpoint)
    phases = [p for p in recipe if p.get("from_step", 0) < step] or recipe[:1]
    if step == state.get("steps"):
        return state, phases
    # as train.py counts them; its training seconds are not recorded
    return progress(step, phases[-1]["batch"], phases[-1]["seq"]), phases


def data_summary(manifests: list[str]) -> dict:
    """Hours of rendered audio per split, collection and timbre: the training
    segments of every manifest, the validation segments of the first (as
    train/train.py uses ``--data A,B``)."""
    hours: dict = {}
    segs = [(i, json.loads(line)) for i, m in enumerate(manifests) for line in open(m)]
    for i, seg in segs:
        if i > 0 and seg["split"] != "train":
            continue
        split = hours.setdefault(seg["split"], {"total": 0.0, "collection": {}, "timbre": {}})
        h = seg["dur_s"] / 3600
        split["total"] += h
        for key in ("collection", "timbre"):
            split[key][seg[key]] = split[key].get(seg[key], 0.0) + h
    round_all = lambda d: {k: round_all(v) if isinstance(v, dict) else round(v, 3) for k, v in d.items()}  # noqa: E731
    out = {"hours": round_all(hours), "rendering": "train/build_dataset.py (Salamander Grand V3 samples, "
           "FluidR3 / MuseScore General / TimGM6mb soundfonts; synthetic room, mic EQ, noise, gain)",
           "split": "by piece"}
    from train.render import TIMBRE_CREDITS  # the sampled grands' attribution, when the run heard them

    seen = {t for split in hours.values() for t in split["timbre"]}
    credits = [TIMBRE_CREDITS[t] for t in TIMBRE_CREDITS if t in seen]
    if credits:
        out["sample_credits"] = credits
    return out


def export_onnx(model, n_mels: int, path: str, heads: dict) -> None:
    """Only ``heads`` go in: ONNX output name -> the Keras output it is (the heads of
    one lookahead: train/model.py output_name).
    A model with a GRU (stream-gru) goes through :func:`export_recurrent_onnx`, one
    with a MinGRU per key (stream-keys-rec) through :func:`export_key_recurrent_onnx`, one
    with a MinGRU in the pedal head through :func:`export_pedal_recurrent_onnx`."""
    if any(layer.name == "key_gru" for layer in model.layers):
        export_key_recurrent_onnx(model, n_mels, path, heads)
        return
    if any(layer.name == "pedal_gru" for layer in model.layers):
        export_pedal_recurrent_onnx(model, n_mels, path, heads)
        return
    if any(layer.name == "gru" for layer in model.layers):
        export_recurrent_onnx(model, n_mels, path, heads)
        return

    @tf.function(input_signature=[tf.TensorSpec((None, None, n_mels), tf.float32, name="mel")])
    def serve(mel):
        out = model(mel, training=False)
        return {h: tf.identity(out[k], name=h) for h, k in heads.items()}

    tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=17, output_path=path)


def export_recurrent_onnx(model, n_mels: int, path: str, heads: dict) -> None:
    """stream-gru: the trunk (up to the GRU's input) by tf2onnx, then the GRU as one
    ONNX ``GRU`` node and the heads as MatMul + Add + Sigmoid, from the Keras weights.

    tf2onnx writes a Keras GRU as a while ``Loop``; an ONNX ``GRU`` is what runtimes
    run well (ONNX Runtime's kernel, TensorRT's RNN layer) and what
    train/step_graph.py gives a state input and output (``initial_h``, ``Y_h``).
    Keras' GRU (``reset_after=True``, gates z, r, h) is ONNX's GRU with
    ``linear_before_reset=1``: W = kernel^T, R = recurrent_kernel^T, B = the
    input then the recurrent bias. Like the Keras model, the state starts at zero
    at the first output of each run.
    """
    from onnx import TensorProto, helper

    gru = model.get_layer("gru")
    cfg = gru.get_config()
    if not (cfg["reset_after"] and cfg["activation"] == "tanh" and cfg["recurrent_activation"] == "sigmoid"
            and cfg["use_bias"] and not cfg.get("go_backwards") and cfg["return_sequences"]):
        sys.exit(f"gru: {cfg} is not the GRU train/model.py builds; cannot write it as an ONNX GRU")
    m, trunk = _trunk_onnx(model, gru, n_mels)
    kernel, recurrent, bias = (w.astype(np.float32) for w in gru.get_weights())
    units = recurrent.shape[0]
    inits = {"gru_W": kernel.T[None], "gru_R": recurrent.T[None], "gru_B": bias.reshape(1, -1),
             "gru_axis1": np.array([1], np.int64)}
    nodes = [
        helper.make_node("Transpose", [trunk], ["gru_x"], perm=[1, 0, 2], name="gru_x"),      # (T, B, in)
        helper.make_node("GRU", ["gru_x", "gru_W", "gru_R", "gru_B"], ["gru_y"], name="gru",
                         hidden_size=units, linear_before_reset=1),                          # (T, 1, B, H)
        helper.make_node("Squeeze", ["gru_y", "gru_axis1"], ["gru_tbh"], name="gru_squeeze"),
        helper.make_node("Transpose", ["gru_tbh"], ["gru_seq"], perm=[1, 0, 2], name="gru_seq"),  # (B, T, H)
        # as train/model.py concatenates them (the check against Keras below catches any other order)
        helper.make_node("Concat", [trunk, "gru_seq"], ["trunk_and_state"], axis=2, name="trunk_and_state"),
    ]
    for h, k in heads.items():
        w, b = model.get_layer(k).get_weights()
        _dense(h, "trunk_and_state", h, w, b, "Sigmoid", inits, nodes)
        out = helper.make_tensor_value_info(h, TensorProto.FLOAT, ["batch", "frames", int(w.shape[1])])
        m.graph.output.append(out)
    _save_with(m, inits, nodes, path)


def export_key_recurrent_onnx(model, n_mels: int, path: str, heads: dict) -> None:
    """stream-keys-rec: the per-key features (B, T, 88, C) by tf2onnx, then the MinGRU
    (train/min_gru.py) as one ONNX ``GRU`` whose batch is the 88 keys of each row,
    with zero recurrent weights, and the heads as MatMul + Add + Sigmoid over
    [features, state] (the pedal's on their mean and max over the keys), from the
    Keras weights."""
    from onnx import TensorProto, helper

    rec = model.get_layer("key_gru")
    m, trunk = _trunk_onnx(model, rec, n_mels)
    c, units = rec.get_weights()[2].shape  # kernel (C, H)
    inits = {
        "kgru_rows": np.array([0, -1, c], np.int64),
        "kgru_keys": np.array([0, -1, N_KEYS, units], np.int64),
        "per_key": np.array([0, 0, N_KEYS], np.int64),
    }
    nodes = [
        helper.make_node("Transpose", [trunk], ["kgru_tb"], perm=[1, 0, 2, 3], name="kgru_tb"),   # (T, B, 88, C)
        helper.make_node("Reshape", ["kgru_tb", "kgru_rows"], ["kgru_x"], name="kgru_x"),        # (T, B*88, C)
    ]
    _min_gru_onnx(rec, "kgru_x", "kgru_seq", inits, nodes)                                      # (T, B*88, H)
    nodes += [
        helper.make_node("Reshape", ["kgru_seq", "kgru_keys"], ["kgru_tbkh"], name="kgru_keys"),  # (T, B, 88, H)
        helper.make_node("Transpose", ["kgru_tbkh"], ["key_state"], perm=[1, 0, 2, 3], name="key_state"),
        # as train/model.py concatenates them (the check against Keras below catches any other order)
        helper.make_node("Concat", [trunk, "key_state"], ["trunk_and_state"], axis=3, name="trunk_and_state"),
    ]

    def conv1x1(name: str, x: str, out: str, layer, activation: str) -> None:
        w, b = layer.get_weights()  # kernel (1, 1, in, out)
        _dense(name, x, out, w[0, 0], b, activation, inits, nodes)

    if "pedal" in heads:  # train/model.py _pool_keys: mean, max of the features, then of the state
        pooled = []
        for part in (trunk, "key_state"):
            for op in ("ReduceMean", "ReduceMax"):
                pooled.append(f"{part}_{op}")
                nodes.append(helper.make_node(op, [part], [pooled[-1]], axes=[2], keepdims=0, name=pooled[-1]))
        nodes.append(helper.make_node("Concat", pooled, ["keys_pooled"], axis=2, name="keys_pooled"))
        conv1x1("pedal_hidden", "keys_pooled", "pedal_hidden_relu", model.get_layer("pedal_hidden"), "Relu")
    for h, k in heads.items():
        if h == "pedal":
            conv1x1(h, "pedal_hidden_relu", h, model.get_layer(f"{k}_pooled"), "Sigmoid")
            units_out = 1
        else:
            conv1x1(h, "trunk_and_state", f"{h}_per_key", model.get_layer(f"{k}_per_key"), "Sigmoid")
            nodes.append(helper.make_node("Reshape", [f"{h}_per_key", "per_key"], [h], name=f"{h}_reshape"))
            units_out = N_KEYS
        m.graph.output.append(helper.make_tensor_value_info(h, TensorProto.FLOAT, ["batch", "frames", units_out]))
    _save_with(m, inits, nodes, path)


def _min_gru_onnx(layer, x: str, out: str, inits: dict, nodes: list) -> None:
    """A MinGRU (train/min_gru.py) over ``x`` (T, batch, C) as one ONNX ``GRU`` with zero
    recurrent weights (ONNX's gates z, r, h; r has nothing to act on, so its weights are
    zero too); ``out`` (T, batch, H). Appended to ``inits`` and ``nodes``."""
    from onnx import helper

    name = layer.name
    gate_kernel, gate_bias, kernel, bias = (w.astype(np.float32) for w in layer.get_weights())
    c, units = kernel.shape
    zero_w, zero_b = np.zeros((units, c), np.float32), np.zeros(units, np.float32)
    inits.update({
        f"{name}_W": np.concatenate([gate_kernel.T, zero_w, kernel.T])[None],                   # (1, 3H, C)
        f"{name}_R": np.zeros((1, 3 * units, units), np.float32),
        f"{name}_B": np.concatenate([gate_bias, zero_b, bias, zero_b, zero_b, zero_b])[None],  # (1, 6H)
        f"{name}_axis1": np.array([1], np.int64),
    })
    nodes += [helper.make_node("GRU", [x, f"{name}_W", f"{name}_R", f"{name}_B"], [f"{name}_y"], name=name,
                               hidden_size=int(units), linear_before_reset=1),                 # (T, 1, batch, H)
              helper.make_node("Squeeze", [f"{name}_y", f"{name}_axis1"], [out], name=f"{name}_squeeze")]


def export_pedal_recurrent_onnx(model, n_mels: int, path: str, heads: dict) -> None:
    """stream-keys-h16-pedal-rec: the note heads and the pooled pedal features
    (B, T, 32) by tf2onnx, then the pedal's MinGRU as one ONNX ``GRU`` (batch: the
    rows; :func:`_min_gru_onnx`) and the pedal head as MatMul + Add + Sigmoid over
    [pooled, state], from the Keras weights."""
    from onnx import TensorProto, helper

    gru = model.get_layer("pedal_gru")
    notes = {h: k for h, k in heads.items() if h != "pedal"}
    inner = tf.keras.Model(model.input, {**{k: model.get_layer(k).output for k in notes.values()},
                                         "pedal_pooled": gru.input})

    @tf.function(input_signature=[tf.TensorSpec((None, None, n_mels), tf.float32, name="mel")])
    def serve(mel):
        out = inner(mel, training=False)
        pooled = tf.cast(out["pedal_pooled"][:, :, 0, :], tf.float32)                  # (B, T, 32)
        return {**{h: tf.identity(out[k], name=h) for h, k in notes.items()},
                "pedal_pooled": tf.identity(pooled, name="pedal_pooled")}

    m, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=17)
    kept = [o for o in m.graph.output if o.name != "pedal_pooled"]
    (pooled,) = [o.name for o in m.graph.output if o.name == "pedal_pooled"]
    del m.graph.output[:]
    m.graph.output.extend(kept)
    inits, nodes = {}, [helper.make_node("Transpose", [pooled], ["pedal_gru_x"], perm=[1, 0, 2],
                                         name="pedal_gru_x")]                                  # (T, B, 32)
    _min_gru_onnx(gru, "pedal_gru_x", "pedal_gru_tbh", inits, nodes)
    nodes += [helper.make_node("Transpose", ["pedal_gru_tbh"], ["pedal_state"], perm=[1, 0, 2], name="pedal_state"),
              # as train/model.py concatenates them (the check against Keras catches any other order)
              helper.make_node("Concat", [pooled, "pedal_state"], ["pedal_and_state"], axis=2,
                               name="pedal_and_state")]
    w, b = model.get_layer(f"{heads['pedal']}_pooled").get_weights()  # kernel (1, 1, in, 1)
    _dense("pedal", "pedal_and_state", "pedal", w[0, 0], b, "Sigmoid", inits, nodes)
    m.graph.output.append(helper.make_tensor_value_info("pedal", TensorProto.FLOAT, ["batch", "frames", 1]))
    _save_with(m, inits, nodes, path)


def _trunk_onnx(model, layer, n_mels: int):
    """The part of ``model`` before ``layer`` (its input) by tf2onnx, with no graph
    outputs left: (ONNX model, name of the trunk's tensor) for the nodes after it."""
    trunk_model = tf.keras.Model(model.input, layer.input)

    @tf.function(input_signature=[tf.TensorSpec((None, None, n_mels), tf.float32, name="mel")])
    def serve(mel):
        return {"trunk": tf.identity(trunk_model(mel, training=False), name="trunk")}

    m, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=17)
    (trunk,) = [o.name for o in m.graph.output]
    del m.graph.output[:]
    return m, trunk


def _dense(name: str, x: str, out: str, w, b, activation: str, inits: dict, nodes: list) -> None:
    """``out = activation(x @ w + b)`` (w (in, units), b (units,)) as ONNX MatMul + Add +
    ``activation`` nodes, appended to ``nodes``; the weights to ``inits`` in float32."""
    from onnx import helper

    inits[f"{name}_W"], inits[f"{name}_b"] = np.asarray(w, np.float32), np.asarray(b, np.float32)
    nodes += [helper.make_node("MatMul", [x, f"{name}_W"], [f"{name}_mm"], name=f"{name}_matmul"),
              helper.make_node("Add", [f"{name}_mm", f"{name}_b"], [f"{name}_logit"], name=f"{name}_add"),
              helper.make_node(activation, [f"{name}_logit"], [out], name=f"{name}_{activation.lower()}")]


def _save_with(m, inits: dict, nodes: list, path: str) -> None:
    """Add ``inits`` (name -> array) and ``nodes`` to ``m``'s graph, check it, save it."""
    import onnx
    from onnx import numpy_helper

    m.graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in inits.items())
    m.graph.node.extend(nodes)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def store_fp16(path: str, min_elements: int = 65536) -> int:
    """Store the large float32 weights of an ONNX file as float16, each followed by
    a Cast back to float32 (runtimes fold it at load, so inference stays float32).
    Halves the file; returns the number of tensors converted."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(path)
    g = m.graph
    casts, keep = [], []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if init.data_type != TensorProto.FLOAT or arr.size < min_elements:
            keep.append(init)
            continue
        half = numpy_helper.from_array(arr.astype(np.float16), name=init.name + "__fp16")
        keep.append(half)
        casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__cast"))
    del g.initializer[:]
    g.initializer.extend(keep)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return len(casts)


TOLERANCE = 2e-3  # max abs difference of the probabilities, ONNX against Keras (float16 weights round by 5e-4)


def onnx_error(path: str, x: np.ndarray, ref: dict, heads: dict) -> float:
    """Max abs difference of the ONNX file's outputs from Keras's ``ref`` on input ``x``
    (heads: ONNX output name -> Keras output name)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))
    return max(float(np.abs(got[h] - ref[k].numpy()).max()) for h, k in heads.items())


def export_checked(model, n_mels: int, path: str, heads: dict) -> tuple[int, float]:
    """export_onnx (its outputs within TOLERANCE of Keras's on random input, else ValueError), then
    store_fp16 when float16 keeps them within TOLERANCE too, otherwise float32 throughout.
    Returns (tensors stored as float16, max abs difference)."""
    export_onnx(model, n_mels, path, heads)
    x = np.random.default_rng(0).normal(-4, 2, (1, 57, n_mels)).astype(np.float32)
    ref = model(x, training=False)
    err32 = onnx_error(path, x, ref, heads)
    if err32 > TOLERANCE:
        raise ValueError(f"ONNX vs Keras max abs diff {err32:.2e} in float32 (> {TOLERANCE:g})")
    plain = open(path, "rb").read()
    n_half = store_fp16(path)
    err = onnx_error(path, x, ref, heads) if n_half else err32
    if err <= TOLERANCE:
        return n_half, err
    print(f"float16 weights: ONNX vs Keras max abs diff {err:.2e} > {TOLERANCE:g}; storing float32")
    with open(path, "wb") as f:
        f.write(plain)
    return 0, err32


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="work/runs/seed-cnn")
    ap.add_argument("--name", default="seed-cnn")
    ap.add_argument("--models", default=str(MODELS_DIR), help="where the model goes (default: rtpitch/models/)")
    ap.add_argument("--frontend", default=None,
                    help="optional check: a frontend JSON that must equal the one the run trained on")
    ap.add_argument("--data", default=None,
                    help="dataset folder(s) for the data summary (default: those of the run's last phase)")
    ap.add_argument("--lookahead", type=int, default=None,
                    help="for a run trained with --lookaheads, which heads to keep (required then); "
                         "otherwise an optional check against the run's --lookahead")
    ap.add_argument("--arch", default=None, choices=sorted(HEADS),
                    help="optional check: the architecture the run must have trained")
    ap.add_argument("--checkpoint", default=None,
                    help="a checkpoint prefix other than the run's newest (e.g. a copy of RUN/ckpt/ckpt-1300)")
    args = ap.parse_args(argv)

    if args.checkpoint and not os.path.exists(args.checkpoint + ".index"):
        sys.exit(f"--checkpoint {args.checkpoint}: no such checkpoint ({args.checkpoint}.index)")
    state, recipe = provenance(args.run, [json.loads(line) for line in open(os.path.join(args.run, "recipe.jsonl"))],
                               args.checkpoint)
    try:
        trained = run_parameters(recipe, lookahead=args.lookahead)
        frontend = run_frontend(recipe, check=args.frontend)
        if args.arch is not None and args.arch != trained["arch"]:
            raise ValueError(f"it trained arch {trained['arch']}, not {args.arch}")
    except ValueError as err:
        sys.exit(f"{args.run}: {err}")
    data = args.data or recipe[-1]["data"]
    arch, window, lookahead, multi = trained["arch"], trained["window"], trained["lookahead"], trained["lookaheads"]
    n_mels = frontend["n_mels"]
    key = lookahead if multi else None
    heads = {h: output_name(h, key) for h in HEADS[arch]}  # ONNX output -> Keras output
    recurrent = is_recurrent(arch)
    model, ckpt = restore(args.run, n_mels, window, arch, multi, frontend, args.checkpoint)
    os.makedirs(args.models, exist_ok=True)
    onnx_path = os.path.join(args.models, f"{args.name}.onnx")
    try:
        n_half, err = export_checked(model, n_mels, onnx_path, heads)
    except ValueError as exc:
        sys.exit(f"export mismatch: {exc}")
    print(f"stored {n_half} large weight tensors as float16; ONNX vs Keras max abs diff: {err:.2e}")

    import onnx

    graph = onnx.load(onnx_path).graph
    outputs = {o.name for o in graph.output}
    if missing := [h for h in heads if h not in outputs]:
        sys.exit(f"export: {onnx_path} lacks the outputs {', '.join(missing)}")
    weights = {t.name for t in graph.initializer}

    json_path = os.path.join(args.models, f"{args.name}.json")
    old = json.load(open(json_path)) if os.path.exists(json_path) else {}
    data_info = data_summary([os.path.join(d, "manifest.jsonl") for d in data.split(",")])
    meta = {
        "name": args.name,
        "format_version": 1,
        "onnx": os.path.basename(onnx_path),
        "onnx_sha256": hashlib.sha256(open(onnx_path, "rb").read()).hexdigest(),
        "input": next(i.name for i in graph.input if i.name not in weights),
        "outputs": {h: h for h in heads},
        "frontend": frontend,
        "window": {"frames": window, "lookahead_frames": lookahead},
        **({"recurrent": True} if recurrent else {}),
        "decoder": old.get("decoder", {}),
        "architecture": ARCHITECTURES[arch],
        "parameters": int(model.count_params()),
        "training": {"checkpoint": os.path.basename(ckpt), **state, "recipe_phases": recipe, "data": data_info,
                     "command": f"train/reproduce.sh {args.name}"},
        "license": "Weights trained on audio rendered from ASAP (CC BY-NC-SA 4.0), Batik, Vienna 4x22 "
                   "and POP909 (MIT) performances: non-commercial use only (CC BY-NC-SA 4.0).",
        "evaluation": old.get("evaluation", {}),
    }
    with open(json_path, "w") as f:
        json.dump(meta, f, indent=2)
    if recurrent:  # served only through its step graph (rtpitch/predictor.py): made here
        print(write_step_graph(json_path))
        meta = json.load(open(json_path))
    # the budget as rtpitch computes it: the sum of its stages' latencies, for the model as
    # rtpitch loads it (which checks the JSON), at its own rate (capture block: latency.py's default)
    terms = model_budget(load_model_spec(json_path))
    meta["algorithmic_latency_ms"] = round(sum(ms for _, ms in terms), 2)
    meta["algorithmic_latency_terms_ms"] = {name: round(ms, 2) for name, ms in terms}
    with open(json_path, "w") as f:
        json.dump(meta, f, indent=2)
    print(f"wrote {onnx_path} and {json_path}")


if __name__ == "__main__":
    main()
