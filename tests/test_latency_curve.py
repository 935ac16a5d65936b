"""benchmarks.latency_curve refuses an --out whose table would overwrite one of the models it makes."""

import pytest

from benchmarks.latency_curve import main


def test_out_that_names_a_lookahead_model_is_refused_before_any_work(tmp_path, capsys):
    models = tmp_path / "scored"
    with pytest.raises(SystemExit) as exc:
        main(["--models", str(models), "--prefix", "r-858", "--lookaheads", "3,1",
              "--out", str(models / "r-858-la1")])
    assert exc.value.code == 2
    assert "would write the table over the lookahead-1 model's JSON" in capsys.readouterr().err
    assert not models.exists()  # nothing exported


def test_the_onset_lag_bound_reaches_the_decoder_tuning(tmp_path, monkeypatch):
    import benchmarks.latency_curve as lc

    calls = []

    def run(*args):
        calls.append(args)
        if "train.tune_decoder" in args:
            raise RuntimeError("stop here")

    monkeypatch.setattr(lc, "_run", run)
    with pytest.raises(RuntimeError, match="stop here"):
        main(["--models", str(tmp_path), "--prefix", "r", "--lookaheads", "0", "--checkpoint", "run/kept/ckpt-9",
              "--max-onset-lag-ms", "15"])
    tune = calls[-1]
    assert tune[tune.index("--model") + 1] == str(tmp_path / "r-la0.json")
    assert tune[tune.index("--max-onset-lag-ms") + 1] == "15.0"
    assert [c[1] for c in calls] == ["train.export", "train.step_graph", "train.tune_decoder"]
