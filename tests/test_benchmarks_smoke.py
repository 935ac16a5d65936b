"""Each benchmark runs once on a tiny input, so it keeps working.

Only that it exits 0 and writes its results is checked: benchmarks are never
timing assertions. The model is ``RTPITCH_TEST_MODEL`` (default ``seed-cnn``);
the tests skip when it is absent. Peers (benchmarks/peers) are not run here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rtpitch.model import resolve_model_path

REPO = Path(__file__).resolve().parent.parent
MODEL = os.environ.get("RTPITCH_TEST_MODEL", "seed-cnn")

needs_model = pytest.mark.skipif(not resolve_model_path(MODEL).is_file(),
                                 reason=f"model {MODEL!r} absent ({resolve_model_path(MODEL)}); "
                                        "set RTPITCH_TEST_MODEL to a model in models/")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr
    return res


@needs_model
def test_compute(tmp_path):
    out = tmp_path / "compute.json"
    _run(["benchmarks/compute.py", "--model", MODEL, "--seconds", "2", "--out", str(out)], timeout=120)
    res = json.loads(out.read_text())
    assert res["backends"]["onnxruntime"]["per_hop_ms"]["total"]["n"] > 0
    assert "total" in res["latency_budget_ms"]


@needs_model
@pytest.mark.slow
def test_accuracy_tiny(tmp_path):
    res = _run(["benchmarks/accuracy.py", "--tiny", "--model", MODEL, "--out-dir", str(tmp_path)], timeout=300)
    data = json.loads((tmp_path / "accuracy.json").read_text())
    s = data["sets"]["tiny"]["systems"]["rtpitch"]
    assert s["files_scored"] == 1 and s["real_time_factor"] > 0
    assert set(s["mean"]) >= {"note_f1", "note_offset_f1", "note_offset_velocity_f1", "frame_f1"}
    assert (tmp_path / "pianoroll.png").stat().st_size > 1000
    assert "tiny" in res.stdout


@needs_model
@pytest.mark.jack
@pytest.mark.slow
def test_latency_tiny(tmp_path):
    """Starts its own JACK server (a private name, so it does not meet the
    test session's server), plays 5 s into ``rtpitch listen``."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd not installed (Debian: apt install jackd2)")
    pytest.importorskip("jack")
    rtmidi = pytest.importorskip("rtmidi")
    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        pytest.skip("python-rtmidi built without JACK")
    _run(["benchmarks/latency.py", "--tiny", "--model", MODEL, "--out-dir", str(tmp_path),
          "--server-name", f"rtpitch-smoke-{os.getpid()}"], timeout=300)
    data = json.loads((tmp_path / "latency.json").read_text())
    p = data["periods"]["256"]
    assert p["take"]["returncode"] == 0
    assert {"note_on", "note_off", "budget", "per_note"} <= set(p)
    assert (tmp_path / "latency.png").stat().st_size > 1000
