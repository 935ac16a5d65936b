"""rtpitch/onset_blend.py: each frame's onset is the mean of its predictions at several lookaheads."""

import json
from pathlib import Path

import numpy as np
import pytest

from rtpitch.errors import ModelError
from rtpitch.events import N_KEYS
from rtpitch.model import load_model_spec
from rtpitch.onset_blend import OnsetBlend

L = 2
MODELS = Path(__file__).resolve().parents[1] / "rtpitch" / "models"


def _rows(n, seed):
    """Predictor rows for frames 0..n-1 of a stream whose lookahead-m onset prediction of
    frame f is known: la2[f] and la0[f] (random), la1[f]; row j's onset_la{m} is for frame j + L - m."""
    rng = np.random.default_rng(seed)
    pred = {m: rng.uniform(size=(n + L, N_KEYS)).astype(np.float32) for m in (0, 1, 2)}
    rows = {"onset": pred[2][:n], "frame": rng.uniform(size=(n, N_KEYS)).astype(np.float32),
            "onset_la1": pred[1][1 : n + 1], "onset_la0": pred[0][2 : n + 2]}
    return pred, rows


@pytest.mark.parametrize("chunks", [[40], [1] * 40, [3, 1, 7, 2, 27]])
def test_blend_is_the_weighted_mean_of_each_frames_predictions_however_the_rows_arrive(chunks):
    pred, rows = _rows(40, 1)
    blend = OnsetBlend(((0, 1.0), (1, 2.0), (2, 3.0)), lookahead=L)
    assert blend.outputs == ["onset_la0", "onset_la1"]
    got, at = [], 0
    for n in chunks:
        out = blend({k: v[at : at + n] for k, v in rows.items()})
        assert set(out) == {"onset", "frame"}
        np.testing.assert_array_equal(out["frame"], rows["frame"][at : at + n])
        got.append(out["onset"])
        at += n
    got = np.concatenate(got)
    want = (pred[0][:40] + 2 * pred[1][:40] + 3 * pred[2][:40]) / 6
    np.testing.assert_allclose(got[2:], want[2:], rtol=1e-6)
    # after a reset, row -1 and row -2 were never run: frame 0 has la2's prediction
    # alone, frame 1 la1's (row 0) and la2's
    np.testing.assert_allclose(got[0], pred[2][0], rtol=1e-6)
    np.testing.assert_allclose(got[1], (2 * pred[1][1] + 3 * pred[2][1]) / 5, rtol=1e-6)


def test_reset_forgets_the_held_rows():
    pred, rows = _rows(10, 2)
    blend = OnsetBlend(((1, 1.0), (2, 1.0)), lookahead=L)
    first = blend(rows)["onset"]
    blend.reset()
    np.testing.assert_array_equal(blend(rows)["onset"], first)
    np.testing.assert_allclose(first[0], pred[2][0], rtol=1e-6)  # frame 0: la1's prediction was a row before it


def _spec_file(tmp_path, blend, outputs):
    src = json.loads((MODELS / "stream.json").read_text())
    if not (tmp_path / src["onnx"]).exists():
        (tmp_path / src["onnx"]).symlink_to(MODELS / src["onnx"])
    src.pop("streaming", None)
    src["outputs"] = {**src["outputs"], **outputs}
    if blend is not None:
        src["onset_blend"] = blend
    path = tmp_path / "m.json"
    path.write_text(json.dumps(src))
    return str(path)


def test_the_model_json_must_name_the_blended_outputs_and_lookaheads_it_has(tmp_path):
    ok = _spec_file(tmp_path, {"lookahead_frames": [1, 2], "weights": [1, 1]}, {"onset_la1": "onset_la1"})
    assert load_model_spec(ok).onset_blend == ((1, 1.0), (2, 1.0))
    with pytest.raises(ModelError, match="needs outputs onset_la1"):
        load_model_spec(_spec_file(tmp_path, {"lookahead_frames": [1, 2], "weights": [1, 1]}, {}))
    with pytest.raises(ModelError, match="must include the model's"):
        load_model_spec(_spec_file(tmp_path, {"lookahead_frames": [1, 3], "weights": [1, 1]},
                                   {"onset_la1": "onset_la1"}))
    with pytest.raises(ModelError, match="not a valid model description"):
        load_model_spec(_spec_file(tmp_path, {"lookahead_frames": [1, 2], "weights": [1]}, {"onset_la1": "x"}))
