"""``rtpitch bench`` on a tiny input: the report's structure and sane values.

No timing assertions: figures are only checked to be present, positive and
ordered (median <= p99 <= max). Uses the default shipped model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rtpitch import bench
from rtpitch.cli import main
from rtpitch.model import DEFAULT_MODEL, load_model_spec, resolve_model_path

MODEL = DEFAULT_MODEL
pytestmark = pytest.mark.skipif(not resolve_model_path(MODEL).is_file(), reason="no model in models/")
STAGES = ("resampler", "frontend", "inference", "decoder", "total")


@pytest.fixture(scope="module")
def report():
    return bench.run_bench(model=MODEL, seconds=1.0)


def _check_stats(s: dict) -> None:
    assert s["n"] > 0
    assert 0.0 <= s["median"] <= s["p99"] <= s["max"]


def test_report_structure(report):
    spec = load_model_spec(MODEL)
    assert report["model"]["name"] == MODEL
    assert report["model"]["lookahead_frames"] == spec.lookahead_frames
    assert report["input"]["sample_rate"] == bench.DEFAULT_RATE and report["input"]["blocksize"] == 256
    ort = report["backends"]["onnxruntime"]
    assert ort["available"] is True and "onnxruntime" in ort["describe"]
    assert set(ort["per_hop_ms"]) == set(STAGES)
    for stage in ("frontend", "inference", "decoder", "total"):
        _check_stats(ort["per_hop_ms"][stage])
    # 1 s of audio at a 20 ms hop, the warm-up hops excluded
    assert 0 < ort["hops"] <= int(round(1.0 / spec.frontend.hop_s))
    assert ort["real_time_factor"] > 0 and ort["cpu_use"] > 0
    trt = report["backends"]["tensorrt"]
    assert trt["available"] or trt["reason"]
    assert report["peak_memory_mib"] > 10


def test_budget_terms(report):
    spec = load_model_spec(MODEL)
    b = report["latency_budget_ms"]
    fe = spec.frontend
    assert b["capture block"] == pytest.approx(1e3 * 256 / 48000, abs=0.01)
    assert b["FFT window alignment (peak to end)"] == pytest.approx(1e3 * fe.alignment_s, abs=0.01)
    look = [v for k, v in b.items() if k.startswith("lookahead")]
    assert look == [pytest.approx(1e3 * spec.lookahead_frames * fe.hop_s, abs=0.01)]
    assert b["resampler delay"] > 0  # 48 kHz -> 16 kHz
    assert "compute per hop (median)" in b
    assert b["total"] == pytest.approx(sum(v for k, v in b.items() if k != "total"), abs=0.05)
    assert report["latency_budget_backend"] == "onnxruntime" or report["backends"]["tensorrt"]["available"]


def test_cli_json_and_text(capsys):
    assert main(["bench", "--model", MODEL, "--seconds", "0.5", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert {"model", "machine", "input", "backends", "latency_budget_ms", "peak_memory_mib"} <= set(res)
    assert main(["bench", "--model", MODEL, "--seconds", "0.5", "--backend", "onnxruntime"]) == 0
    text = capsys.readouterr().out
    assert "latency budget" in text and "per-hop compute" in text and "real-time factor" in text
    assert "tensorrt" not in text  # only the backend asked for


def test_cli_errors_are_one_line(capsys):
    assert main(["bench", "--model", "no-such-model", "--seconds", "0.5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rtpitch: error: model 'no-such-model' not found")
    assert main(["bench", "--model", MODEL, "--seconds", "0.05"]) == 1
    assert "need at least 10 hops" in capsys.readouterr().err


def test_audio_file_input(tmp_path):
    import soundfile as sf

    path = tmp_path / "tone.wav"
    sf.write(path, bench.synthetic_piano(1.5, 44100), 44100)
    res = bench.run_bench(model=MODEL, seconds=0.5, audio=str(path), backends=["onnxruntime"])
    assert res["input"]["signal"] == str(path)
    assert res["backends"]["onnxruntime"]["hops"] > 0


def test_synthetic_signal_is_deterministic_and_bounded():
    a = bench.synthetic_piano(1.0, 16000)
    b = bench.synthetic_piano(1.0, 16000)
    assert a.dtype == np.float32 and a.shape == (16000,)
    assert np.array_equal(a, b)
    assert 0.1 < np.abs(a).max() <= 0.9


@pytest.mark.jack
def test_device_jitter_through_jack(jack_server):
    """With ``device``: the JACK dummy device's block size (the server's period)
    and callback statistics; no overruns expected on a 1 s run. The interval
    minimum is not asserted positive: PortAudio's JACK stream clock is JACK's
    frame-time estimate, which steps back after an xrun (min -54 ms seen on a
    loaded VM)."""
    import jack

    probe = jack.Client("bench-probe", no_start_server=True)
    period, rate = probe.blocksize, probe.samplerate
    probe.close()
    res = bench.run_bench(model=MODEL, seconds=0.5, device="system", device_seconds=1.0,
                          backends=["onnxruntime"])
    dev = res["device"]
    assert dev["sample_rate"] == rate and dev["blocksize"] == period
    assert dev["callbacks"] > 10 and dev["samples_read"] > 0
    ci = dev["callback_interval_ms"]
    assert ci["min"] <= ci["mean"] <= ci["max"] and ci["std"] >= 0 and ci["mean"] > 0
    assert res["input"]["blocksize"] == period and res["input"]["sample_rate"] == rate
    assert res["latency_budget_ms"]["capture block"] == pytest.approx(1e3 * period / rate, abs=0.01)
