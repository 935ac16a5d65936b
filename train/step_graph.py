"""Make a model's streaming "step" graph: the window graph with cached time context.

    python -m train.step_graph --model seed-cnn

The window graph (``rtpitch/models/<name>.onnx``) recomputes every layer over all 20
frames at each hop, although only one new frame arrived.  Its layers mix time
only in convolutions with no time padding ('valid'); everything else is per
frame.  So each such convolution can keep the last ``(kernel - 1) x dilation``
frames of its input from the previous hop and compute only the new columns.

The step graph takes ``mel`` (1, m, n_mels) -- the m newest frames, m >= 1 --
and one cache per time-mixing convolution, ``cache{k}``: its input's shape with
``frames_k`` on the time axis (found by shape inference at two input lengths);
it returns each head as (1, m, 88) (row i predicts input frame i minus the
lookahead) and the updated caches ``cache{k}_out``.  Each convolution's input
becomes ``Concat(cache{k}, x, axis=time)``; ``cache{k}_out`` is the last
``frames_k`` time steps of that concatenation.  Nothing else changes, so the
step graph computes exactly what the window graph computes (to float rounding);
this tool checks it by stepping a random stream in random chunk sizes against
the window graph (max abs difference of the probabilities <= 1e-4) and writes
the figure into the JSON.

A recurrent layer, an ONNX ``GRU`` (stream-gru's, stream-keys-rec's per key;
train/export.py writes them so), keeps its state the same way: ``state{k}``
(1, batch, units; batch 88 for a GRU per key) is its ``initial_h`` and
``state{k}_out`` its final state ``Y_h``, listed with the caches (``"recurrent":
true`` in the JSON).  The caches start at zero, not at pad frames, so the outputs
of the priming run are not the window graph's; rtpitch's StepPredictor zeroes the
recurrent state once they are behind it, at the first real prediction, where the
window graph run once over the whole stream (pad frames before it) starts its
state at zero, as training does at the first output of every crop.  The parity
check then compares against the window graph over the whole stream.

A "dense" convolution (its kernel covers the whole frequency axis, as the
seed CNN's 12 x 57 layer does) becomes one MatMul on the new frames whose
per-tap products are cached (see :func:`_cache_dense`).  That layer holds most
of the weights (5.6 M in the seed CNN: 22 MB read per hop in float32, which is
what bounds its per-hop time on a CPU); ``--int8`` stores its weights as int8
(ONNX Runtime's dynamic quantization: per output column, 7-bit range so AVX2
without VNNI does not saturate) and quantizes its input per hop.  That graph is
no longer exact: the parity check then allows 0.05, and the figures that count
are those evaluate.py measures through the engine, which runs this graph.

Writes ``<name>.step`` beside the model's JSON (ONNX; named so that it is not
taken for a model of its own, which would have a JSON beside it) and the
``streaming`` section of ``<name>.json`` (file, sha256, cache names and shapes,
parity).
Needs ``onnx`` (the ``train`` extra); never TensorFlow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, shape_inference

from rtpitch.model import load_model_spec, resolve_model_path

PARITY_TOL = 1e-4
PARITY_TOL_INT8 = 0.05


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _input_shapes(model, n_mels: int, frames: int) -> dict:
    """Static shapes of every tensor for one (1, frames, n_mels) input."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    for d, v in zip(dims, (1, frames, n_mels)):
        d.Clear()
        d.dim_value = v
    inferred = shape_inference.infer_shapes(fixed, data_prop=True)
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input):
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
    return shapes


def _time_axes(model, n_mels: int, window: int) -> tuple[dict, dict]:
    """Shapes for a window-long input, and the time axis of every tensor: the one
    axis whose size follows the input's length (tf2onnx puts time on H for 2-D
    convolutions, on W for 1-D ones)."""
    a, b = _input_shapes(model, n_mels, window), _input_shapes(model, n_mels, window + 1)
    axes = {}
    for name, shape in a.items():
        other = b.get(name)
        if other and len(other) == len(shape) and None not in shape + other:
            moved = [i for i, (x, y) in enumerate(zip(shape, other)) if x != y]
            if len(moved) == 1:
                axes[name] = moved[0]
    return a, axes


def _check_per_frame(graph, axes: dict) -> None:
    """Refuse graphs whose non-convolution ops could mix time (pooling over time,
    recurrences other than a forward ONNX ``GRU``, loops)."""
    for node in graph.node:
        if node.op_type in ("MaxPool", "AveragePool"):
            t = axes.get(node.input[0])
            if t is None or _attr(node, "kernel_shape")[t - 2] != 1 or (_attr(node, "strides") or [1, 1])[t - 2] != 1:
                sys.exit(f"{node.name}: pools over time (or its time axis is unknown); cannot make a step graph")
        if node.op_type in ("GlobalMaxPool", "GlobalAveragePool", "LSTM", "RNN", "ConvTranspose", "Loop", "Scan"):
            hint = " (a Keras RNN exported by tf2onnx: export with train/export.py, which writes an ONNX GRU)" \
                if node.op_type == "Loop" else ""
            sys.exit(f"{node.name}: {node.op_type} mixes time; cannot make a step graph{hint}")


def _downstream(graph, names: set) -> set:
    """Every tensor computed from ``names`` (nodes are in topological order)."""
    out = set(names)
    for node in graph.node:
        if any(i in out for i in node.input):
            out.update(node.output)
    return out


def _carry_gru_states(graph, cached_inputs: list, shapes: dict) -> list:
    """Give each ONNX ``GRU`` its state as a graph input and output: ``state{k}``
    becomes its ``initial_h`` (1, batch, hidden) and ``state{k}_out`` its ``Y_h``, the
    state after the last frame of the run; batch is the GRU's for one input
    stream (``shapes``: _input_shapes): 1, or 88 for a GRU per key (stream-keys-rec).
    Returns [(input, output, shape)].

    The step graph's caches are zeroed before the pad frames that prime them, so
    its first outputs come from zeros where the window graph sees pad frames; a
    recurrent state must therefore be zeroed again once the caches are full
    (rtpitch's StepPredictor does it at the first real prediction). A cached
    convolution after a GRU would carry those first outputs on: refused.
    """
    grus = [n for n in graph.node if n.op_type == "GRU"]
    if not grus:
        return []
    after = _downstream(graph, {o for n in grus for o in n.output if o})
    for x in cached_inputs:
        if x in after:
            sys.exit(f"a time-mixing convolution reads {x!r}, computed from a GRU's output; cannot make a step graph")
    states = []
    for k, node in enumerate(grus):
        if _attr(node, "direction", b"forward") != b"forward":
            direction = _attr(node, "direction").decode()
            sys.exit(f"{node.name}: a {direction} GRU sees the future; cannot make a step graph")
        inputs = list(node.input) + [""] * (6 - len(node.input))
        if inputs[4] or inputs[5]:
            sys.exit(f"{node.name}: a GRU with sequence_lens or initial_h already; cannot make a step graph")
        hidden = _attr(node, "hidden_size")
        cin, cout = f"state{k}", f"state{k}_out"
        inputs[5] = cin
        node.input[:] = inputs
        outputs = list(node.output) + [""] * (2 - len(node.output))
        if outputs[1]:  # Y_h is used in the graph already: pass it on
            graph.node.append(helper.make_node("Identity", [outputs[1]], [cout], name=f"state{k}_identity"))
        else:
            outputs[1] = cout
            node.output[:] = outputs
        x_shape = shapes.get(node.input[0])
        if not x_shape or len(x_shape) != 3 or not x_shape[1]:
            sys.exit(f"{node.name}: cannot infer the batch of its input {node.input[0]!r}")
        shape = [1, x_shape[1], hidden]
        graph.input.append(helper.make_tensor_value_info(cin, TensorProto.FLOAT, shape))
        graph.output.append(helper.make_tensor_value_info(cout, TensorProto.FLOAT, shape))
        states.append((cin, cout, shape))
    return states


def _time_mixing_convs(graph, axes: dict) -> list:
    """(Conv node, time axis, cached frames) for each convolution whose kernel
    spans more than one time step; all must leave time unpadded and unstrided."""
    convs = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        kernel, t = _attr(node, "kernel_shape"), axes.get(node.input[0])
        if kernel is None or len(kernel) != 2 or t not in (2, 3):
            sys.exit(f"{node.name}: expected a 2-D convolution with a kernel_shape and a known time axis")
        i = t - 2
        pads = _attr(node, "pads", [0, 0, 0, 0])
        if _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID") or pads[i] or pads[i + 2]:
            sys.exit(f"{node.name}: pads the time axis; only time-'valid' convolutions can be cached")
        if (_attr(node, "strides", [1, 1]))[i] != 1:
            sys.exit(f"{node.name}: strides over time; cannot make a step graph")
        frames = (kernel[i] - 1) * _attr(node, "dilations", [1, 1])[i]
        if frames:
            convs.append((node, t, frames))
    return convs


def _constant(graph, name: str) -> np.ndarray | None:
    """An initializer, or an initializer behind one Cast (tf2onnx's float16 weights), as float32."""
    inits = {i.name: i for i in graph.initializer}
    if name in inits:
        return numpy_helper.to_array(inits[name]).astype(np.float32)
    for node in graph.node:
        if node.op_type == "Cast" and node.output[0] == name and node.input[0] in inits:
            return numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
    return None


def _is_dense(node, in_shape, t: int) -> bool:
    """A convolution over (time = H, frequency = W) whose kernel covers the whole
    (unpadded) frequency axis."""
    kernel, pads = _attr(node, "kernel_shape"), _attr(node, "pads", [0, 0, 0, 0])
    return (t == 2 and kernel[1] == in_shape[3] and not pads[1] and not pads[3]
            and _attr(node, "group", 1) == 1 and len(node.input) == 3)


def _cache_dense(graph, node, k: int, frames: int, in_shape) -> tuple:
    """Replace a dense convolution (kernel = taps x whole frequency axis) by a
    MatMul on the new frames only, caching its per-tap products.

    With taps K, the convolution's output at t is sum_j W_j v[t + j] (v[t] the
    input's time step t flattened to C x F).  ``Y[t] = [W_0 v[t]; ..; W_{K-1} v[t]]``
    is one MatMul (m, C*F) x (C*F, K*out) per hop; the cache holds the last
    K - 1 rows of Y, and output t sums the diagonal Y[t + j, j] + bias.
    """
    w = _constant(graph, node.input[1])
    bias = _constant(graph, node.input[2])
    if w is None or bias is None:
        sys.exit(f"{node.name}: its weights are not constants")
    out_ch, c, taps, f = w.shape
    name = lambda s: f"dense{k}_{s}"  # noqa: E731
    wt = np.ascontiguousarray(w.transpose(1, 3, 2, 0).reshape(c * f, taps * out_ch))  # [(c,f), (j,o)]
    big = np.iinfo(np.int64).max
    consts = {
        "w": wt, "bias": bias, "perm_shape": np.array([-1, c * f], np.int64),
        "y_shape": np.array([-1, taps, out_ch], np.int64), "keep_starts": np.array([-frames], np.int64),
        "big": np.array([big], np.int64), "axis0": np.array([0], np.int64), "axes01": np.array([0, 1], np.int64),
    }
    for j in range(taps):
        consts[f"s{j}"] = np.array([j, j], np.int64)
        consts[f"e{j}"] = np.array([j - frames if j < frames else big, j + 1], np.int64)
    graph.initializer.extend(numpy_helper.from_array(v, name(n)) for n, v in consts.items())
    cin, cout = f"cache{k}", f"cache{k}_out"
    x, y = node.input[0], node.output[0]
    nodes = [
        helper.make_node("Transpose", [x], [name("tf")], perm=[0, 2, 1, 3]),          # (1, m, C, F)
        helper.make_node("Reshape", [name("tf"), name("perm_shape")], [name("v")]),    # (m, C*F)
        helper.make_node("MatMul", [name("v"), name("w")], [name("y2")], name=name("matmul")),
        helper.make_node("Reshape", [name("y2"), name("y_shape")], [name("y")]),       # (m, K, out)
        helper.make_node("Concat", [cin, name("y")], [name("yfull")], axis=0),         # (K-1+m, K, out)
        helper.make_node("Slice", [name("yfull"), name("keep_starts"), name("big"), name("axis0")], [cout]),
    ]
    for j in range(taps):
        nodes.append(helper.make_node("Slice", [name("yfull"), name(f"s{j}"), name(f"e{j}"), name("axes01")],
                                      [name(f"d{j}")]))                                  # (m, 1, out)
    nodes += [
        helper.make_node("Sum", [name(f"d{j}") for j in range(taps)], [name("sum")]),
        helper.make_node("Add", [name("sum"), name("bias")], [name("out")]),
        helper.make_node("Transpose", [name("out")], [name("nchw")], perm=[1, 2, 0]),  # (1, out, m)
        helper.make_node("Unsqueeze", [name("nchw"), name("axes3")], [y]),             # (1, out, m, 1)
    ]
    graph.initializer.append(numpy_helper.from_array(np.array([3], np.int64), name("axes3")))
    at = list(graph.node).index(node)
    graph.node.remove(node)
    for i, n in enumerate(nodes):
        graph.node.insert(at + i, n)
    return [frames, taps, out_ch]


def _prune(graph) -> None:
    """Drop nodes and initializers nothing uses any more (the replaced weights)."""
    while True:
        used = {o.name for o in graph.output} | {i for n in graph.node for i in n.input}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        for n in dead:
            graph.node.remove(n)
        if not dead:
            break
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def make_step_graph(model: onnx.ModelProto, n_mels: int, window: int):
    """The step graph of ``model`` and its caches [(input, output, shape, recurrent)]:
    ``recurrent`` for a GRU's state (see :func:`_carry_gru_states`), else a
    convolution's time context."""
    step = onnx.ModelProto()
    step.CopyFrom(model)
    graph = step.graph
    shapes, axes = _time_axes(model, n_mels, window)
    _check_per_frame(graph, axes)
    caches = []
    convs = _time_mixing_convs(graph, axes)
    cached_inputs = [node.input[0] for node, _, _ in convs]
    for k, (node, t, frames) in enumerate(convs):
        x = node.input[0]
        shape = shapes.get(x)
        if not shape or None in shape[1:] or len(shape) != 4:
            sys.exit(f"{node.name}: cannot infer the shape of its input {x!r}")
        if _is_dense(node, shape, t):
            cache_shape = _cache_dense(graph, node, k, frames, shape)
            graph.input.append(helper.make_tensor_value_info(f"cache{k}", TensorProto.FLOAT, cache_shape))
            graph.output.append(helper.make_tensor_value_info(f"cache{k}_out", TensorProto.FLOAT, cache_shape))
            caches.append((f"cache{k}", f"cache{k}_out", cache_shape, False))
            continue
        cache_shape = list(shape)
        cache_shape[0], cache_shape[t] = 1, frames
        cin, cout, joined = f"cache{k}", f"cache{k}_out", f"cache{k}_joined"
        graph.input.append(helper.make_tensor_value_info(cin, TensorProto.FLOAT, cache_shape))
        graph.output.append(helper.make_tensor_value_info(cout, TensorProto.FLOAT, cache_shape))
        starts, ends, axis = f"cache{k}_starts", f"cache{k}_ends", f"cache{k}_axis"
        graph.initializer.extend([
            numpy_helper.from_array(np.array([-frames], np.int64), starts),
            numpy_helper.from_array(np.array([np.iinfo(np.int64).max], np.int64), ends),
            numpy_helper.from_array(np.array([t], np.int64), axis),
        ])
        concat = helper.make_node("Concat", [cin, x], [joined], axis=t, name=f"cache{k}_concat")
        keep = helper.make_node("Slice", [joined, starts, ends, axis], [cout], name=f"cache{k}_slice")
        node.input[0] = joined
        at = list(graph.node).index(node)
        graph.node.insert(at, keep)
        graph.node.insert(at, concat)
        caches.append((cin, cout, cache_shape, False))
    caches += [(cin, cout, shape, True) for cin, cout, shape in _carry_gru_states(graph, cached_inputs, shapes)]
    if not caches:
        sys.exit("the graph has no time-mixing convolution; it needs no step graph")
    _prune(graph)
    onnx.checker.check_model(step)
    return step, caches


def quantize_dense(step: onnx.ModelProto) -> bytes | None:
    """``step`` with its dense MatMuls' weights in int8 (dynamic quantization);
    None when it has no dense layer."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = [n.name for n in step.graph.node if n.op_type == "MatMul" and n.name.endswith("_matmul")]
    if not names:
        return None
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process does not apply here
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "step.onnx"), Path(tmp, "step-int8.onnx")
        onnx.save(step, src)
        quantize_dynamic(src, dst, nodes_to_quantize=names, per_channel=True, reduce_range=True,
                         weight_type=QuantType.QInt8)
        return dst.read_bytes()


class _Stepper:
    """Runs a step graph over a stream, primed like rtpitch's engine."""

    def __init__(self, session, caches, heads, n_mels: int, window: int, pad: float):
        self.session, self.caches, self.heads = session, caches, heads
        self.state = {c[0]: np.zeros(c[2], np.float32) for c in caches}
        self.run(np.full((window - 1, n_mels), pad, np.float32))

    def run(self, frames: np.ndarray) -> list:
        outs = self.session.run(self.heads + [c[1] for c in self.caches], {"mel": frames[None], **self.state})
        for c, new in zip(self.caches, outs[len(self.heads):]):
            self.state[c[0]] = new
        return [o[0] for o in outs[: len(self.heads)]]

    def zero_recurrent(self) -> None:
        """Zero the recurrent states (as rtpitch's StepPredictor does at the first real prediction)."""
        for c in self.caches:
            if c[3]:
                self.state[c[0]] = np.zeros(c[2], np.float32)


def check_parity(window_bytes: bytes, step_bytes: bytes, caches, heads, spec, seed: int = 0) -> float:
    """Max abs difference, window graph vs step graph, over a random stream in
    random chunk sizes (the step graph primed with pad frames)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    n_mels, w, la = spec.frontend.n_mels, spec.window_frames, spec.lookahead_frames
    pad = float(np.log(spec.frontend.log_offset))
    n = 300
    mel = rng.normal(-4.0, 2.0, (n, n_mels)).astype(np.float32)
    context = np.full((w - 1 - la, n_mels), pad, np.float32)
    tail = np.full((la, n_mels), pad, np.float32)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    win = ort.InferenceSession(window_bytes, opts, providers=["CPUExecutionProvider"])
    ref = win.run(heads, {"mel": np.concatenate([context, mel, tail])[None]})
    step = _Stepper(ort.InferenceSession(step_bytes, opts, providers=["CPUExecutionProvider"]),
                    caches, heads, n_mels, w, pad)
    stream = np.concatenate([mel, tail])
    got, i = [], 0
    if la == 0:
        step.zero_recurrent()
    while i < len(stream):
        m = int(rng.integers(1, 8))
        if i < la:  # the first la outputs belong to pad frames: the recurrent state starts after them
            m = min(m, la - i)
        got.append(step.run(stream[i : i + m]))
        i += m
        if i == la:
            step.zero_recurrent()
    got = [np.concatenate(g)[la:] for g in zip(*got)]
    return float(max(np.abs(r[0] - g).max() for r, g in zip(ref, got)))


def write_step_graph(model: str, *, int8: bool = False) -> str:
    """Make the step graph of ``model`` (a shipped model's name or the path to its
    JSON), check it against the window graph, write ``<name>.step`` and the JSON's
    ``streaming`` section; returns one line saying what was written. Exits
    (SystemExit) with the reason when it cannot."""
    spec = load_model_spec(model)
    json_path = resolve_model_path(model)
    window_bytes = spec.onnx_bytes()
    step, caches = make_step_graph(onnx.load_from_string(window_bytes), spec.frontend.n_mels, spec.window_frames)
    heads = [spec.outputs[h] for h in spec.outputs]
    step_bytes = step.SerializeToString()
    diff = check_parity(window_bytes, step_bytes, caches, heads, spec)
    if not diff <= PARITY_TOL:
        sys.exit(f"step graph disagrees with the window graph: max abs difference {diff:.3g} > {PARITY_TOL}")
    quantized = quantize_dense(step) if int8 else None
    if int8 and quantized is None:
        print("no dense layer to quantize: the step graph stays float32")
    if quantized is not None:
        step_bytes = quantized
        diff = check_parity(window_bytes, step_bytes, caches, heads, spec)
        if not diff <= PARITY_TOL_INT8:
            sys.exit(f"int8 step graph is too far from the window graph: max abs difference {diff:.3g}")
    step_path = spec.onnx_path.with_name(f"{spec.onnx_path.stem}.step")  # ONNX bytes; not a model of its own
    step_path.write_bytes(step_bytes)
    meta = json.loads(json_path.read_text())
    recurrent = any(c[3] for c in caches)
    check = "random log-mel stream (300 frames) in chunks of 1-7 frames vs the window graph"
    if recurrent:
        check += " over the whole stream (the recurrent state zeroed at the first real prediction)"
    meta["streaming"] = {
        "onnx": step_path.name,
        "onnx_sha256": hashlib.sha256(step_bytes).hexdigest(),
        "caches": [{"input": cin, "output": cout, "shape": shape, **({"recurrent": True} if rec else {})}
                   for cin, cout, shape, rec in caches],
        "dense_weights": "int8 (dynamic quantization, per column, 7-bit)" if quantized is not None else "float32",
        "parity_max_abs_diff": diff,
        "parity_check": check,
        "made_by": "train/step_graph.py" + (" --int8" if quantized is not None else ""),
    }
    json_path.write_text(json.dumps(meta, indent=2) + "\n")
    return f"wrote {step_path} ({len(caches)} caches, max abs difference to the window graph {diff:.2g})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a shipped model's name or the path to its JSON")
    ap.add_argument("--int8", action="store_true", help="int8 weights for the dense layer (module docstring)")
    args = ap.parse_args(argv)
    print(write_step_graph(args.model, int8=args.int8))


if __name__ == "__main__":
    main()
