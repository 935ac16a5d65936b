"""A few-step training run end to end: render -> features -> train -> ONNX -> rtpitch.

Keeps the training path alive in CI; it never trains for real.  Needs the
`train` extra (TensorFlow, tf2onnx), fluidsynth with FluidR3, and ../shared/data.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_python
from rtpitch.model import MODELS_DIR

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RTPITCH_SHARED_DATA", ROOT.parent / "shared" / "data"))

pytestmark = [pytest.mark.slow, pytest.mark.shared]


def _run(*args):
    return run_python(*args, timeout=900)  # a render or a TensorFlow start takes longer than the default


def _need_training_tools():
    """Skip unless ../shared/data, TensorFlow + tf2onnx and the FluidR3 soundfont are here."""
    if not (SHARED / "midi").is_dir():
        pytest.skip(f"../shared/data absent ({SHARED})")
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    if not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists():
        pytest.skip("FluidR3 soundfont not installed (apt fluid-soundfont-gm)")


@pytest.mark.parametrize("arch, frontend, lookaheads, lookahead, precision, ema", [
    ("seed", "frontend.json", None, 9, "float32", False),
    # one trunk, heads for two lookaheads (export one), trained with bfloat16 compute; the
    # resumed phase keeps a weight average (from the checkpoint written without one)
    ("stream", "frontend-lowlat.json", "0,2", 2, "mixed_bfloat16", True),
    # the GRU's state carried by the step graph, which export makes itself
    ("stream-gru", "frontend-lowlat.json", "0,2", 2, "float32", False),
])
def test_smoke_training_exports_a_model_rtpitch_can_run(tmp_path, arch, frontend, lookaheads, lookahead, precision,
                                                        ema):
    _need_training_tools()
    data, run, models = tmp_path / "data", tmp_path / "run", tmp_path / "models"
    _run("-m", "train.build_dataset", "--data", SHARED, "--out", data, "--hours-train", "0.01", "--hours-val", "0.005",
         "--timbres", "fluid-r3", "--frontend", f"train/{frontend}")
    assert list((data / "train").glob("*.npz")) and list((data / "val").glob("*.flac"))
    model_args = ["--arch", arch, "--lookahead", str(lookahead)]
    train_args = model_args + (["--lookaheads", lookaheads] if lookaheads else []) + ["--precision", precision]
    _run("-m", "train.train", "--data", data, "--run", run, "--max-steps", "3", "--batch", "2", "--seq", "40",
         "--ckpt-every", "100", "--eval-every", "3", "--keep-every", "2", *train_args)
    more = ["--ema", "0.9"] if ema else []
    out = _run("-m", "train.train", "--data", data, "--run", run, "--max-steps", "4", "--batch", "2", "--seq", "40",
               "--ckpt-every", "3", "--eval-every", "100", *train_args, *more)
    assert "resumed from" in out.stdout
    if ema:
        assert "weight average (decay 0.9) starts at step 3" in out.stdout
        last = json.loads((run / "sessions.jsonl").read_text().splitlines()[-1])
        assert set(last["val"]["raw"]) == set(last["val"]) - {"raw"}  # the average's figures and the raw ones
    phases = (run / "recipe.jsonl").read_text()
    again = _run("-m", "train.train", "--data", data, "--run", run, "--max-steps", "4", "--batch", "2", "--seq", "40",
                 *train_args, *more)  # a rerun recipe: the phase is done
    assert "nothing to train" in again.stdout and (run / "recipe.jsonl").read_text() == phases
    exported = _run("-m", "train.export", "--run", run, "--name", "smoke", "--models", models, "--data", data,
                    "--frontend", f"train/{frontend}", *model_args)
    assert ("moving average" in exported.stdout) == ema
    meta = json.loads((models / "smoke.json").read_text())
    assert meta["training"]["steps"] == 4 and meta["window"] == {"frames": 20, "lookahead_frames": lookahead}
    if arch == "stream-gru":  # served only through the step graph export made, the GRU state a cache
        assert meta["recurrent"] is True and meta["streaming"]["caches"][-1]["recurrent"] is True
    fe = meta["frontend"]
    fall_ms = 1e3 * (fe.get("window_fall") or fe["n_fft"] // 2) / fe["sample_rate"]
    hop_ms = 1e3 * fe["hop_length"] / fe["sample_rate"]
    assert meta["algorithmic_latency_ms"] == pytest.approx(1e3 * 256 / 48000 + fall_ms + lookahead * hop_ms, abs=0.02)
    _run("-m", "train.step_graph", "--model", models / "smoke.json", "--int8")  # as reproduce.sh ships it

    # an earlier checkpoint, kept by --keep-every between the --ckpt-every saves: its own weights, step, phases
    assert sorted(p.name for p in (run / "kept").iterdir()) == ["ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    _run("-m", "train.export", "--run", run, "--name", "early", "--models", models, *model_args,
         "--checkpoint", run / "kept" / "ckpt-2")
    early = json.loads((models / "early.json").read_text())
    assert early["training"]["checkpoint"] == "ckpt-2" and early["training"]["steps"] == 2
    assert early["training"]["labelled_frames_seen"] == 2 * 2 * 40 and "train_seconds" not in early["training"]
    assert len(early["training"]["recipe_phases"]) == 1 < len(meta["training"]["recipe_phases"])
    assert early["onnx_sha256"] != meta["onnx_sha256"]  # two more steps moved the weights
    gone = subprocess.run([sys.executable, "-m", "train.export", "--run", run, "--name", "gone", "--models", models,
                           *model_args, "--checkpoint", run / "kept" / "ckpt-9"],
                          cwd=ROOT, capture_output=True, text=True)
    assert gone.returncode != 0 and gone.stderr.strip().splitlines()[-1].endswith("no such checkpoint "
                                                                                 f"({run}/kept/ckpt-9.index)")

    from rtpitch.backends import make_backend
    from rtpitch.model import load_model_spec
    from rtpitch.runner import transcribe_file

    spec = load_model_spec(str(models / "smoke.json"))
    backend = make_backend("onnxruntime", spec)
    assert spec.step is not None and "step graph" in backend.describe()
    flac = sorted((data / "val").glob("*.flac"))[0]
    summary = transcribe_file(flac, spec, backend)
    assert summary.audio_s > 1.0
    ons = sum(e.on for e in summary.events)
    assert ons == len(summary.events) - ons  # every note-on has its note-off


def test_seed_run_restored_from_onnx_trains_on(tmp_path):
    """train/from_onnx.py turns the shipped seed-cnn ONNX back into a run that
    train.py resumes (BN frozen) and export.py exports again."""
    _need_training_tools()
    shipped = json.loads((MODELS_DIR / "seed-cnn.json").read_text())
    data, run, models = tmp_path / "data", tmp_path / "run", tmp_path / "models"
    start, soup = tmp_path / "start", tmp_path / "soup"
    out = _run("-m", "train.from_onnx", "--model", MODELS_DIR / "seed-cnn.json", "--run", run)
    assert "max abs diff" in out.stdout
    assert subprocess.run([sys.executable, "-m", "train.from_onnx", "--model", MODELS_DIR / "seed-cnn.json",
                           "--run", run], cwd=ROOT, capture_output=True).returncode != 0  # never overwrites a run
    shutil.copytree(run, start)
    _run("-m", "train.build_dataset", "--data", SHARED, "--out", data, "--hours-train", "0.01", "--hours-val", "0.005",
         "--timbres", "fluid-r3", "--frontend", "train/frontend.json")
    steps = shipped["training"]["steps"]
    out = _run("-m", "train.train", "--data", data, "--run", run, "--max-steps", str(steps + 2), "--batch", "2",
               "--seq", "40", "--eval-every", "100", "--freeze-bn", "--lr", "1e-5")
    assert f"at step {steps}" in out.stdout
    _run("-m", "train.export", "--run", run, "--name", "again", "--models", models, "--data", data,
         "--frontend", "train/frontend.json")
    meta = json.loads((models / "again.json").read_text())
    assert meta["training"]["steps"] == steps + 2
    assert meta["training"]["recipe_phases"][-1]["freeze_bn"] is True

    # train/average.py: the soup of the restored run and its fine-tune holds the mean of every variable
    _run("-m", "train.average", "--runs", f"{start},{run}", "--run", soup)
    import numpy as np

    from train.export import restore  # as a package module: a train/ on sys.path would shadow the package

    n_mels = json.loads((ROOT / "train" / "frontend.json").read_text())["n_mels"]

    def weights(path):
        return [w.numpy() for w in restore(str(path), n_mels, 20, "seed")[0].weights]

    a, b, mean = weights(start), weights(run), weights(soup)
    assert any(not np.array_equal(x, y) for x, y in zip(a, b))  # the fine-tune moved something
    for x, y, m in zip(a, b, mean):
        np.testing.assert_allclose(m, (x + y) / 2, rtol=1e-6, atol=1e-7)
    assert json.loads((soup / "recipe.jsonl").read_text().splitlines()[-1])["average_steps"] == [steps, steps + 2]
    assert subprocess.run([sys.executable, "-m", "train.average", "--runs", f"{start},{run}", "--run", soup],
                          cwd=ROOT, capture_output=True).returncode != 0  # never overwrites a run
