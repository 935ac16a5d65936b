"""train/export.py reads a model's parameters from the run that made the weights
(train/run_info.py): the recipe's architecture, window and lookahead, the data's
frontend; what its command line gives is only checked, and a mismatch is an error."""

from __future__ import annotations

import json

import pytest

from train.run_info import run_frontend, run_parameters

FE = {"sample_rate": 16000, "n_fft": 2048, "window_fall": 256, "hop_length": 160, "n_mels": 229,
      "fmin": 30.0, "fmax": 8000.0, "log_offset": 0.0001, "htk": False}


def _phase(data, **kw):
    return {"from_step": 0, "data": str(data), "window": 20, "lookahead": 2, "arch": "stream",
            "lookaheads": "0,2", **kw}


def _dataset(path, frontend):
    path.mkdir()
    lines = [{"id": "a", "split": "train", "frontend": frontend}, {"id": "n", "split": "train"}]  # noise: none
    (path / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_parameters_come_from_the_recipe():
    multi = [_phase("d"), _phase("d", lr=1e-4)]
    assert run_parameters(multi, lookahead=0) == {"arch": "stream", "window": 20, "lookaheads": [0, 2],
                                                  "lookahead": 0}
    with pytest.raises(ValueError, match="name the one to export"):
        run_parameters(multi)
    with pytest.raises(ValueError, match=r"lookaheads \[0, 2\], not 9"):
        run_parameters(multi, lookahead=9)
    single = [{"data": "d", "window": 20, "lookahead": 9}]  # an early seed-cnn phase: no arch recorded
    assert run_parameters(single) == {"arch": "seed", "window": 20, "lookaheads": None, "lookahead": 9}
    with pytest.raises(ValueError, match="trained lookahead 9, not 2"):
        run_parameters(single, lookahead=2)
    with pytest.raises(ValueError, match="disagree on window"):
        run_parameters([_phase("d"), _phase("d", window=30)], lookahead=2)


def test_frontend_comes_from_the_data(tmp_path):
    data = _dataset(tmp_path / "data", FE)
    recipe = [_phase(data)]
    assert run_frontend(recipe) == FE
    given = tmp_path / "fe.json"
    given.write_text(json.dumps({k: v for k, v in FE.items() if k != "htk"}))  # defaults are the same frontend
    assert run_frontend(recipe, check=str(given)) == FE
    given.write_text(json.dumps({**FE, "hop_length": 320}))
    with pytest.raises(ValueError, match="is not the frontend it trained with"):
        run_frontend(recipe, check=str(given))
    other = _dataset(tmp_path / "other", {**FE, "n_mels": 128})
    with pytest.raises(ValueError, match="2 different frontends"):
        run_frontend([_phase(data), _phase(f"{data},{other}")])
    with pytest.raises(ValueError, match="missing"):
        run_frontend([_phase(tmp_path / "gone")])
    # a run restored from a model file records its frontend in the recipe (train/from_onnx.py)
    assert run_frontend([_phase(tmp_path / "gone", frontend=FE), _phase(data)]) == FE
