"""train/export.py stores large tensors as float16 only where the exported model
still gives Keras's outputs (within 2e-3); otherwise the ONNX file stays float32."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="needs the train extra (pip install -e '.[train]')")
pytest.importorskip("tf2onnx", reason="needs the train extra (pip install -e '.[train]')")
import onnx  # noqa: E402
import tensorflow as tf  # noqa: E402
from onnx import TensorProto  # noqa: E402

from train.export import TOLERANCE, export_checked, onnx_error  # noqa: E402

N_IN, N_OUT = 300, 256  # a 76 800-element kernel: over store_fp16's 65 536


def _model(kernel_scale: float):
    """frame = sigmoid(gain * (mel @ W)), W ~ N(0, 1) * kernel_scale, the gain making the logits' spread
    about 1 on export's test input (mel ~ N(-4, 2)): (B, T, N_IN) -> (B, T, N_OUT)."""
    w = np.random.default_rng(1).normal(0.0, 1.0, (N_IN, N_OUT)) * kernel_scale
    gain = 1.0 / (kernel_scale * 4.5 * np.sqrt(N_IN))
    mel = tf.keras.Input((None, N_IN))
    dense = tf.keras.layers.Dense(N_OUT, use_bias=False, kernel_initializer=tf.keras.initializers.Constant(w))
    frame = tf.keras.layers.Activation("sigmoid")(tf.keras.layers.Rescaling(gain)(dense(mel)))
    return tf.keras.Model(mel, {"frame": frame})


def _float16_tensors(path) -> int:
    return sum(init.data_type == TensorProto.FLOAT16 for init in onnx.load(str(path)).graph.initializer)


def test_float16_where_it_keeps_the_outputs(tmp_path):
    path = tmp_path / "m.onnx"
    n_half, err = export_checked(_model(0.01), N_IN, str(path), {"frame": "frame"})
    assert n_half == 1 and _float16_tensors(path) == 1
    assert err <= TOLERANCE


def test_float32_where_float16_would_move_the_outputs(tmp_path):
    # weights of 1e-10 are zero in float16 (its smallest subnormal is 6e-8); the gain makes them count
    path = tmp_path / "m.onnx"
    model = _model(1e-10)
    n_half, err = export_checked(model, N_IN, str(path), {"frame": "frame"})
    assert n_half == 0 and _float16_tensors(path) == 0
    x = np.random.default_rng(2).normal(-4, 2, (1, 30, N_IN)).astype(np.float32)
    ref = model(x, training=False)
    assert float(np.abs(ref["frame"].numpy() - 0.5).max()) > 0.1  # the outputs are not all sigmoid(0)
    assert err <= TOLERANCE and onnx_error(str(path), x, ref, {"frame": "frame"}) <= TOLERANCE
