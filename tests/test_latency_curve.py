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
