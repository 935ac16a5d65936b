"""Every shipped model (rtpitch/models/): what its JSON promises, and the fixture through ``--model``.

The JSON is what a user reads to choose a model (``rtpitch --model``), so its
latency must be the budget rtpitch computes from the model itself, its decoder
thresholds must be there, and its figures must be the real-recording ones. Each
model must hear the fixture's notes when ``rtpitch transcribe --model NAME`` is
run as a user runs it (that each runs its step graph: tests/test_step_graph.py).
"""

from __future__ import annotations

import json

import pytest

from benchmarks.jackutil import match_onsets
from helpers import FIXTURE, MIN_MATCHED, ONSET_TOL_S, needs_data, read_annotations, transcribe
from rtpitch.latency import DEFAULT_CAPTURE_BLOCK_S, algorithmic_latency_ms, model_budget
from rtpitch.model import MODELS_DIR, available_models, load_model_spec

MAPS_FIGURES = ("note_f1", "note_precision", "note_recall", "note_offset_f1", "note_offset_velocity_f1",
                "frame_f1", "frame_precision", "frame_recall")
MODELS = available_models()


def test_the_shipped_models_are_the_documented_ones():
    assert MODELS == ["seed-cnn", "stream", "stream-fast", "stream-fastest"], f"rtpitch/models/ holds {MODELS} (README, Models)"


@pytest.mark.parametrize("name", MODELS)
def test_model_json_states_its_latency_decoder_and_real_figures(name):
    spec = load_model_spec(name)
    meta = json.loads((MODELS_DIR / f"{name}.json").read_text())
    assert meta["name"] == name
    # the sum of the stages' latencies, as train/export.py writes it
    assert DEFAULT_CAPTURE_BLOCK_S == 256 / 48000
    assert meta["algorithmic_latency_ms"] == pytest.approx(algorithmic_latency_ms(spec), abs=0.01)
    assert meta["algorithmic_latency_terms_ms"] == {k: pytest.approx(v, abs=0.01) for k, v in model_budget(spec)}
    for key in ("onset_threshold", "frame_threshold", "off_threshold"):
        assert 0.0 < meta["decoder"][key] < 1.0, key
    assert "decoder_tuning" in meta["evaluation"], "thresholds not chosen by train/tune_decoder.py"
    real = meta["evaluation"]["real_maps_enstdkcl"]
    assert real["files"] == 14
    assert all(0.0 <= real["mean"][k] <= 1.0 for k in MAPS_FIGURES)


@pytest.mark.shared
@needs_data
@pytest.mark.parametrize("name", MODELS)
def test_transcribe_with_model_hears_the_fixture(name, tmp_path):
    from rtpitch.sinks.midi_file import read_midi_notes

    out = tmp_path / "take.mid"
    res = transcribe(FIXTURE, out, model=name)
    assert res.returncode == 0, res.stderr
    ref = read_annotations()
    est = [(on, p) for on, _, p, _ in read_midi_notes(out)]
    pairs = match_onsets(ref, est, ONSET_TOL_S)
    assert len(pairs) >= MIN_MATCHED, f"--model {name}: {len(pairs)} of {len(ref)} notes within 50 ms; got {est}"
