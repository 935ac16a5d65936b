"""train.train's --init-from: a trained run grows into a wider model that starts out
computing exactly what it did (grow_weights), so a wider run starts where the narrow
one got to instead of from scratch. The Keras check runs in a subprocess: TensorFlow
stays out of the pytest process."""

import json

import numpy as np
import pytest

from helpers import REPO, run_python
from train.grow import grow_weights
from train.run_info import run_frontend


def test_grow_weights_puts_the_old_weights_first_and_zeroes_new_inputs():
    rng = np.random.default_rng(0)
    kernel, bias, gamma = rng.normal(size=(4, 1, 3, 2)), rng.normal(size=2), rng.normal(size=2)
    fresh = [rng.normal(size=(4, 1, 5, 6)), np.zeros(6), np.ones(6)]
    k, b, g = grow_weights([kernel, bias, gamma], fresh)
    np.testing.assert_array_equal(k[..., :3, :2], kernel)
    assert not k[..., 3:, :].any()                                # new inputs: no effect on any output
    np.testing.assert_array_equal(k[..., :3, 2:], fresh[0][..., :3, 2:])  # new outputs: their fresh start
    np.testing.assert_array_equal(b, [*bias, 0, 0, 0, 0])
    np.testing.assert_array_equal(g, [*gamma, 1, 1, 1, 1])
    assert grow_weights([kernel], [rng.normal(size=(3, 1, 5, 6))]) is None  # another kernel size
    assert grow_weights([kernel], [rng.normal(size=(4, 1, 2, 6))]) is None  # smaller here
    assert grow_weights([kernel, bias], [fresh[0]]) is None


_PROBE = """
import json, sys
import numpy as np
from train.model import build_model
from train.train import init_from_run, latest_weights, model_of_run, restore_weights
run = sys.argv[1]
narrow = model_of_run(run, 229)
restore_weights(narrow, latest_weights(run))
with np.load(run + "/mel_stats.npz") as z:
    wide = build_model(229, mean=z["mean"], std=z["std"], arch="stream-keys-wide", lookaheads=[0, 2],
                       frontend=json.load(open("train/frontend-lowlat.json")))
copied = init_from_run(wide, run, 229, 20)
x = np.random.default_rng(1).normal(-4.0, 2.0, (2, 45, 229)).astype(np.float32)
a, b = narrow(x, training=False), wide(x, training=False)
print(json.dumps({"copied": copied, "diff": max(float(np.abs(a[k] - b[k]).max()) for k in a),
                  "spread": float(np.std(a["onset_la2"])),
                  "params": [narrow.count_params(), wide.count_params()]}))
"""


def test_a_narrow_run_grown_wide_computes_the_same(tmp_path):
    pytest.importorskip("tensorflow")

    run_python("-m", "tests.tiny_run", tmp_path, "--arch", "stream-keys", "--lookaheads", "0,2")
    got = json.loads(run_python("-c", _PROBE, tmp_path / "run").stdout.splitlines()[-1])
    widened = {name.split(" ")[0] for name in got["copied"] if name.endswith("(widened)")}
    assert {"conv3", "conv4", "keyctx", "tconv1", "tconv2", "onset_la2_per_key"} <= widened
    assert got["params"][1] > 2 * got["params"][0]
    assert got["spread"] > 1e-3 and got["diff"] < 1e-5


_FROZEN_PROBE = """
import json, sys
import numpy as np
from train.train import latest_weights, model_of_run, restore_weights
src, head = sys.argv[1], sys.argv[2]
a = model_of_run(src, 229)
restore_weights(a, latest_weights(src))
b1, b3 = model_of_run(head, 229), model_of_run(head, 229)
restore_weights(b1, head + "/ckpt/ckpt-1")
restore_weights(b3, head + "/ckpt/ckpt-3")
x = np.random.default_rng(1).normal(-4.0, 2.0, (2, 45, 229)).astype(np.float32)
ya, yb = a(x, training=False), b3(x, training=False)
def moved(layer):
    return any(not np.array_equal(u, v) for u, v in zip(layer.get_weights(), b3.get_layer(layer.name).get_weights()))
print(json.dumps({"note_diff": max(float(np.abs(ya[k] - yb[k]).max()) for k in ya),
                  "heads": sorted(yb), "moved": sorted(l.name for l in b1.layers if l.weights and moved(l)),
                  "same_as_source": all(np.array_equal(u, v) for l in a.layers
                                        for u, v in zip(l.get_weights(), b3.get_layer(l.name).get_weights()))}))
"""


def _pedal_run(tmp_path, init_from=None, out="pedal", lr="1e-2"):
    """train.py --train-only pedal for 3 steps from ``init_from`` (default: a new tiny
    stream-keys-h16 run, tmp_path/run, and a labelled segment, tmp_path/data); its stdout."""
    if init_from is None:
        run_python("-m", "tests.tiny_run", tmp_path, "--arch", "stream-keys-h16", "--lookaheads", "0,2")
        rng = np.random.default_rng(0)
        t = 300
        for split in ("train", "val"):  # one labelled segment: random features, the pedal down in its second half
            (tmp_path / "data" / split).mkdir()
            labels = {k: (rng.random((t, 88)) < 0.05).astype(np.uint8) for k in ("frame", "onset", "offset")}
            np.savez(tmp_path / "data" / split / "a.npz", mel=rng.normal(-5, 2, (t, 229)).astype(np.float16),
                     velocity=labels["onset"] * 64, pedal=(np.arange(t) >= t // 2).astype(np.uint8), **labels)
    return run_python("-m", "train.train", "--data", tmp_path / "data", "--run", tmp_path / out,
                      "--arch", "stream-keys-h16-pedal", "--lookaheads", "0,2",
                      "--init-from", init_from or tmp_path / "run", "--train-only", "pedal", "--max-steps", "3",
                      "--batch", "2", "--seq", "40", "--lr", lr, "--ckpt-every", "1", "--eval-every", "100").stdout


def test_a_head_trained_alone_leaves_the_notes_as_they_were(tmp_path):
    """train.py --init-from a stream-keys-h16 run with --train-only pedal: the pedal head
    learns, every other weight (BatchNormalization's statistics too) stays the source
    run's, so the notes of the exported model are exactly the source's."""
    pytest.importorskip("tensorflow")

    out = _pedal_run(tmp_path)
    assert "training only pedal_tconv1, pedal_tconv2, pedal_hidden, pedal_la0_pooled, pedal_la2_pooled" in out
    val = json.loads(next(line for line in out.splitlines() if line.startswith("val "))[4:])
    assert set(val["la2"]) == {"frame_f1", "onset_frame_f1", "pedal_f1"}
    assert val["pedal_f1_always_down"] == pytest.approx(2 / 3, abs=1e-4)  # down in half the frames
    probe = run_python("-c", _FROZEN_PROBE, tmp_path / "run", tmp_path / "pedal")
    got = json.loads(probe.stdout.splitlines()[-1])
    assert {"pedal_la0", "pedal_la2", "onset_la2"} <= set(got["heads"])
    assert got["note_diff"] == 0.0 and got["same_as_source"]
    assert set(got["moved"]) == {"pedal_tconv1", "pedal_tconv2", "pedal_hidden", "pedal_la0_pooled", "pedal_la2_pooled"}
    # the recipe records the frontend its harmonic stack read with, so its model is built without the data
    phases = [json.loads(line) for line in (tmp_path / "pedal" / "recipe.jsonl").read_text().splitlines()]
    (tmp_path / "data" / "manifest.jsonl").unlink()
    assert run_frontend(phases) == json.loads((REPO / "train" / "frontend-lowlat.json").read_text())


_BETWEEN_PROBE = """
import json, sys
import numpy as np
from train.model import build_model
from train.train import init_from_run, latest_weights, model_of_run, restore_weights
run = sys.argv[1]
src = model_of_run(run, 229)
restore_weights(src, latest_weights(run))
with np.load(run + "/mel_stats.npz") as z:
    more = build_model(229, mean=z["mean"], std=z["std"], arch="stream-keys", lookaheads=[0, 1, 3],
                       frontend=json.load(open("train/frontend-lowlat.json")))
copied = init_from_run(more, run, 229, 20)
w = lambda m, n: m.get_layer(n).get_weights()
want = [(2 * a + b) / 3 for a, b in zip(w(src, "onset_la0_per_key"), w(src, "onset_la3_per_key"))]
print(json.dumps({"copied": copied, "diff": max(float(np.abs(g - h).max()) for g, h in
                                               zip(w(more, "onset_la1_per_key"), want)),
                  "apart": float(np.abs(want[0] - w(src, "onset_la0_per_key")[0]).max())}))
"""


def test_a_new_lookahead_starts_between_its_neighbours(tmp_path):
    """--init-from a run trained for lookaheads 0 and 3 into one for 0, 1 and 3: the lookahead-1
    heads start a third of the way from the lookahead-0 heads to the lookahead-3 ones."""
    pytest.importorskip("tensorflow")

    run_python("-m", "tests.tiny_run", tmp_path, "--arch", "stream-keys", "--lookaheads", "0,3")
    got = json.loads(run_python("-c", _BETWEEN_PROBE, tmp_path / "run").stdout.splitlines()[-1])
    assert "onset_la1_per_key (between lookaheads 0 and 3)" in got["copied"]
    assert "frame_la1_per_key (between lookaheads 0 and 3)" in got["copied"]
    assert got["apart"] > 1e-4 and got["diff"] < 1e-6


_SAME_PROBE = """
import json, sys
import numpy as np
from train.train import latest_weights, model_of_run, restore_weights
def load(run):
    m = model_of_run(run, 229)
    restore_weights(m, latest_weights(run))
    return {l.name: l.get_weights() for l in m.layers if l.weights}
got, pedal, notes = (load(r) for r in sys.argv[1:4])
same = lambda a, b: all(np.array_equal(u, v) for u, v in zip(a, b))
print(json.dumps({"from_pedal": sorted(n for n in got if n in pedal and same(got[n], pedal[n])),
                  "from_notes": sorted(n for n in got if n in notes and same(got[n], notes[n]))}))
"""


def test_init_from_several_runs_takes_each_layer_from_the_last_that_has_it(tmp_path):
    """--init-from PEDAL,NOTES: a pedal head trained on one run's notes, put on another
    run's notes (same input statistics): the pedal layers are PEDAL's, every other layer
    NOTES's (the run after it in the list wins where both have a layer)."""
    pytest.importorskip("tensorflow")

    _pedal_run(tmp_path)
    run_python("-m", "tests.tiny_run", tmp_path / "other", "--arch", "stream-keys-h16", "--lookaheads", "0,2")
    notes = tmp_path / "other" / "run"
    (notes / "mel_stats.npz").write_bytes((tmp_path / "run" / "mel_stats.npz").read_bytes())
    out = _pedal_run(tmp_path, init_from=f"{tmp_path / 'pedal'},{notes}", out="both", lr="0")
    assert f"from {tmp_path / 'pedal'}" in out and f"from {notes}" in out
    got = json.loads(run_python("-c", _SAME_PROBE, tmp_path / "both", tmp_path / "pedal", notes).stdout.splitlines()[-1])
    pedal_layers = {"pedal_tconv1", "pedal_tconv2", "pedal_hidden", "pedal_la0_pooled", "pedal_la2_pooled"}
    assert pedal_layers <= set(got["from_pedal"])
    assert {"conv1", "tconv1", "onset_la2_per_key", "frame_la0_per_key"} <= set(got["from_notes"])
    assert not pedal_layers & set(got["from_notes"]) and "conv1" not in got["from_pedal"]
