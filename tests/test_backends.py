"""Inference backends: ONNX Runtime against a numpy reference, model checks, backend choice,
TensorRT parity where TensorRT and a GPU exist."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pytest

from rtpitch.backends import make_backend, resolve_backend
from rtpitch.errors import BackendError, ConfigError, ModelError
from rtpitch.model import MODELS_DIR, load_model_spec

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

N_MELS = 16
WINDOW = 20
from rtpitch.events import N_KEYS  # noqa: E402
HEADS = {"frame": "frame_probs", "onset": "onset_probs", "velocity": "velocity_probs"}


def _weights(n_mels: int = N_MELS, window: int = WINDOW):
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((3 * N_KEYS, n_mels, window)) * 0.05).astype(np.float32)
    b = (rng.standard_normal(3 * N_KEYS) * 0.1).astype(np.float32)
    return w, b


def tiny_onnx(n_mels: int = N_MELS, window: int = WINDOW, *, input_name: str = "mel", pedal: bool = False) -> bytes:
    """(N, T, n_mels) -> Conv1D over time (kernel `window`, 3*88 channels) -> sigmoid -> 3 heads (N, T-window+1, 88).

    ``pedal``: also a pedal head ``pedal_probs`` (N, T-window+1, 1), the frame head's
    mean over the keys.
    """
    w, b = _weights(n_mels, window)
    nodes = [
        helper.make_node("Transpose", [input_name], ["x_nct"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["x_nct", "W", "B"], ["conv"], kernel_shape=[window]),
        helper.make_node("Sigmoid", ["conv"], ["prob_nct"]),
        helper.make_node("Transpose", ["prob_nct"], ["prob"], perm=[0, 2, 1]),
        helper.make_node("Split", ["prob", "split"], list(HEADS.values()), axis=2),
    ]
    out_t = "T_out"
    outputs = [helper.make_tensor_value_info(t, TensorProto.FLOAT, ["N", out_t, N_KEYS]) for t in HEADS.values()]
    inits = [
        numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B"),
        numpy_helper.from_array(np.array([N_KEYS] * 3, np.int64), "split"),
    ]
    if pedal:
        nodes.append(helper.make_node("ReduceMean", ["frame_probs"], ["pedal_probs"], axes=[2], keepdims=1))
        outputs.append(helper.make_tensor_value_info("pedal_probs", TensorProto.FLOAT, ["N", out_t, 1]))
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", "T", n_mels])],
        outputs, initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def reference(mel: np.ndarray) -> dict[str, np.ndarray]:
    """numpy version of tiny_onnx: mel (1, T, n_mels) -> head -> (T-window+1, 88)."""
    w, b = _weights(mel.shape[2])
    win = np.lib.stride_tricks.sliding_window_view(mel[0].astype(np.float64), WINDOW, axis=0)  # (T', M, W)
    z = np.einsum("tmk,cmk->tc", win, w) + b
    p = 1.0 / (1.0 + np.exp(-z))
    return {head: p[:, i * N_KEYS:(i + 1) * N_KEYS] for i, head in enumerate(HEADS)}


def write_model(tmp_path, onnx_bytes: bytes, *, n_mels: int = N_MELS, sha: str | None = None,
                outputs: dict | None = None, window: int = WINDOW, name: str = "tiny"):
    (tmp_path / f"{name}.onnx").write_bytes(onnx_bytes)
    meta = {
        "name": name,
        "onnx": f"{name}.onnx",
        "onnx_sha256": sha or hashlib.sha256(onnx_bytes).hexdigest(),
        "frontend": {"sample_rate": 16000, "n_fft": 2048, "hop_length": 512, "n_mels": n_mels,
                     "fmin": 30.0, "fmax": 8000.0, "log_offset": 1e-4},
        "window": {"frames": window, "lookahead_frames": 9},
        "input": "mel",
        "outputs": outputs or dict(HEADS),
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(meta))
    return load_model_spec(str(path))


@pytest.fixture(scope="module")
def tiny_bytes():
    return tiny_onnx()


@pytest.fixture
def tiny_spec(tmp_path, tiny_bytes):
    return write_model(tmp_path, tiny_bytes)


def random_mel(t: int, n_mels: int = N_MELS, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, t, n_mels)).astype(np.float32)


# --- ONNX Runtime ---------------------------------------------------------------------------

def test_ort_matches_numpy_reference(tiny_spec):
    be = make_backend("onnxruntime", tiny_spec)
    assert be.name == "onnxruntime"
    assert be.describe().startswith("onnxruntime ") and "CPUExecutionProvider, 1 thread" in be.describe()
    mel = random_mel(WINDOW)
    out = be.infer(mel)
    ref = reference(mel)
    assert set(out) == set(HEADS)
    for head in HEADS:
        assert out[head].shape == (1, N_KEYS) and out[head].dtype == np.float32
        np.testing.assert_allclose(out[head], ref[head], atol=1e-5)
    be.close()


def test_ort_long_input_equals_windows(tiny_spec):
    be = make_backend("onnxruntime", tiny_spec)
    mel = random_mel(25, seed=3)
    long = be.infer(mel)
    assert long["onset"].shape == (6, N_KEYS)
    for i in range(6):
        one = be.infer(np.ascontiguousarray(mel[:, i:i + WINDOW]))
        for head in HEADS:
            np.testing.assert_allclose(one[head][0], long[head][i], atol=1e-5)
    for head, ref in reference(mel).items():
        np.testing.assert_allclose(long[head], ref, atol=1e-5)


def test_ort_two_heads_only(tmp_path, tiny_bytes):
    spec = write_model(tmp_path, tiny_bytes, outputs={"frame": "frame_probs", "onset": "onset_probs"})
    out = make_backend("onnxruntime", spec, threads=2).infer(random_mel(WINDOW))
    assert set(out) == {"frame", "onset"}


def test_ort_pedal_head_passes_through_to_activations(tmp_path):
    """A (N, T, 1) pedal output: the backend gives (T', 1), the predictor's
    Activations carry it as ``pedal`` (T',); the note heads are unchanged."""
    from rtpitch.predictor import PredictorStage
    from rtpitch.stage import Block

    spec = write_model(tmp_path, tiny_onnx(pedal=True), outputs={**HEADS, "pedal": "pedal_probs"})
    be = make_backend("onnxruntime", spec)
    mel = random_mel(30, seed=5)
    out = be.infer(mel)
    assert out["pedal"].shape == (11, 1)
    ref = reference(mel)
    np.testing.assert_allclose(out["pedal"][:, 0], ref["frame"].mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(out["frame"], ref["frame"], atol=1e-5)
    stage = PredictorStage(be, spec)
    acts = [a for a in (stage.process(Block(0, mel[0])), stage.flush()) if a is not None]
    pedal = np.concatenate([a.pedal for a in acts])
    frame = np.concatenate([a.frame for a in acts])
    assert pedal.shape == (30,)
    np.testing.assert_allclose(pedal, frame.mean(axis=1), atol=1e-5)
    plain_spec = write_model(tmp_path, tiny_onnx(), name="plain")
    plain = PredictorStage(make_backend("onnxruntime", plain_spec), plain_spec)
    assert all(a.pedal is None for a in (plain.process(Block(0, mel[0])), plain.flush()) if a is not None)


def test_pedal_head_must_be_one_wide(tmp_path):
    spec = write_model(tmp_path, tiny_onnx(), outputs={**HEADS, "pedal": "onset_probs"})
    with pytest.raises(ModelError, match=r"output 'onset_probs' has shape \(\?, \?, 88\), expected \(batch, time, 1\)"):
        make_backend("onnxruntime", spec)


# --- model checks ---------------------------------------------------------------------------

def test_hash_mismatch(tmp_path, tiny_bytes):
    spec = write_model(tmp_path, tiny_bytes, sha="0" * 64)
    with pytest.raises(ModelError, match="does not match the sha256"):
        make_backend("onnxruntime", spec)


def test_corrupt_onnx(tmp_path, tiny_bytes):
    spec = write_model(tmp_path, tiny_bytes[: len(tiny_bytes) // 2])  # hash matches the truncated file
    with pytest.raises(ModelError, match="onnxruntime cannot load tiny.onnx") as err:
        make_backend("onnxruntime", spec)
    assert "\n" not in str(err.value)


def test_wrong_n_mels(tmp_path, tiny_bytes):
    spec = write_model(tmp_path, tiny_bytes, n_mels=229)
    with pytest.raises(ModelError, match=r"model 'tiny': ONNX input 'mel' has 16 mel bins, JSON says 229"):
        make_backend("onnxruntime", spec)


def test_wrong_output_name(tmp_path, tiny_bytes):
    spec = write_model(tmp_path, tiny_bytes, outputs={"frame": "frame_probs", "onset": "onsets"})
    with pytest.raises(ModelError, match="no output 'onsets' for head 'onset'"):
        make_backend("onnxruntime", spec)


def test_wrong_input_name(tmp_path):
    spec = write_model(tmp_path, tiny_onnx(input_name="spec"))
    with pytest.raises(ModelError, match="no input 'mel'.*inputs: 'spec'"):
        make_backend("onnxruntime", spec)


def test_window_disagrees_with_model(tmp_path, tiny_bytes):
    spec = write_model(tmp_path, tiny_bytes, window=22)
    with pytest.raises(ModelError, match="22-frame window gave 'frame' output shape \\(3, 88\\)"):
        make_backend("onnxruntime", spec)


# --- choosing a backend ---------------------------------------------------------------------

def test_unknown_backend(tiny_spec):
    with pytest.raises(ConfigError, match="unknown backend 'cuda'.*auto, onnxruntime, tensorrt"):
        make_backend("cuda", tiny_spec)


def test_resolve_explicit_and_env(monkeypatch):
    monkeypatch.setenv("RTPITCH_BACKEND", "tensorrt")
    assert resolve_backend("onnxruntime") == ("onnxruntime", "onnxruntime (requested)")
    assert resolve_backend("auto") == ("tensorrt", "auto -> tensorrt (RTPITCH_BACKEND=tensorrt)")
    monkeypatch.setenv("RTPITCH_BACKEND", "openvino")
    with pytest.raises(ConfigError, match="in RTPITCH_BACKEND"):
        resolve_backend("auto")


def test_resolve_auto_without_tensorrt(monkeypatch):
    monkeypatch.delenv("RTPITCH_BACKEND", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "tensorrt" else real(n, *a))
    assert resolve_backend("auto") == ("onnxruntime", "auto -> onnxruntime (TensorRT not installed)")


def test_no_runtime_imported_at_package_import():
    import subprocess
    import sys

    code = "import sys, rtpitch.backends; print('tensorrt' in sys.modules, 'onnxruntime' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# --- TensorRT -------------------------------------------------------------------------------

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def _gpu_skip_reason() -> str | None:
    if not HAVE_TRT:
        return "TensorRT not installed"
    from rtpitch.backends.tensorrt import cuda_device_count

    count, why = cuda_device_count()
    return None if count else why


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
def test_tensorrt_missing_names_extra(tiny_spec):
    with pytest.raises(BackendError, match=r"TensorRT is not installed: pip install 'rtpitch\[tensorrt\]'"):
        make_backend("tensorrt", tiny_spec)


def test_tensorrt_parity_with_onnxruntime(tmp_path, tiny_spec):
    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    from rtpitch.backends.tensorrt import TensorRTBackend

    trt_be = TensorRTBackend(tiny_spec, cache_dir=tmp_path / "trt")
    assert "cache miss" in trt_be.describe()
    ort_be = make_backend("onnxruntime", tiny_spec)
    for t in (WINDOW, 25, 300):  # 300 > MAX_FRAMES: split into chunks
        mel = random_mel(t, seed=t)
        a, b = trt_be.infer(mel), ort_be.infer(mel)
        for head in HEADS:
            assert a[head].shape == b[head].shape == (t - WINDOW + 1, N_KEYS)
            assert np.abs(a[head] - b[head]).max() <= 1e-2
    trt_be.close()
    again = TensorRTBackend(tiny_spec, cache_dir=tmp_path / "trt")
    assert "cache hit" in again.describe()
    again.close()


def test_tensorrt_pedal_head_parity_with_onnxruntime(tmp_path):
    """The pedal head's (T', 1) buffer, in one run and in chunks."""
    reason = _gpu_skip_reason()
    if reason:
        pytest.skip(reason)
    from rtpitch.backends.tensorrt import TensorRTBackend

    spec = write_model(tmp_path, tiny_onnx(pedal=True), outputs={**HEADS, "pedal": "pedal_probs"})
    trt_be, ort_be = TensorRTBackend(spec, cache_dir=tmp_path / "trt"), make_backend("onnxruntime", spec)
    for t in (WINDOW, 300):
        mel = random_mel(t, seed=t)
        a, b = trt_be.infer(mel), ort_be.infer(mel)
        assert a["pedal"].shape == b["pedal"].shape == (t - WINDOW + 1, 1)
        assert np.abs(a["pedal"] - b["pedal"]).max() <= 1e-2
        assert np.abs(a["frame"] - b["frame"]).max() <= 1e-2
    trt_be.close()


# --- the shipped model ----------------------------------------------------------------------

@pytest.mark.skipif(not (MODELS_DIR / "seed-cnn.onnx").is_file(), reason="rtpitch/models/seed-cnn.onnx not present")
def test_seed_model_windows_equal_long_call():
    spec = load_model_spec("seed-cnn")
    be = make_backend("onnxruntime", spec)
    w = spec.window_frames
    mel = np.random.default_rng(7).standard_normal((1, w + 9, spec.frontend.n_mels)).astype(np.float32) - 4.0
    long = be.infer(mel)
    for i in range(10):
        one = be.infer(np.ascontiguousarray(mel[:, i:i + w]))
        for head in spec.outputs:
            np.testing.assert_allclose(one[head][0], long[head][i], atol=1e-5)
