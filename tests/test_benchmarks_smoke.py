"""Each benchmark runs once on a tiny input, so it keeps working.

Only that it exits 0 and writes its results is checked: benchmarks are never
timing assertions. The model is ``RTPITCH_TEST_MODEL`` (default: the default model);
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

from rtpitch.model import DEFAULT_MODEL, resolve_model_path

REPO = Path(__file__).resolve().parent.parent
MODEL = os.environ.get("RTPITCH_TEST_MODEL", DEFAULT_MODEL)

needs_model = pytest.mark.skipif(not resolve_model_path(MODEL).is_file(),
                                 reason=f"model {MODEL!r} absent ({resolve_model_path(MODEL)}); "
                                        "set RTPITCH_TEST_MODEL to a shipped model or a model JSON")


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"exit {res.returncode}\nstdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr
    return res


@needs_model
def test_compute(tmp_path):
    out = tmp_path / "compute.json"
    _run(["-m", "benchmarks.compute", "--model", MODEL, "--seconds", "2", "--out", str(out)], timeout=120)
    res = json.loads(out.read_text())
    assert res["backends"]["onnxruntime"]["per_hop_ms"]["total"]["n"] > 0
    assert "total" in res["latency_budget_ms"]


@needs_model
def test_step_hop(tmp_path):
    out = tmp_path / "step_hop.json"
    _run(["-m", "benchmarks.step_hop", "--models", MODEL, "--hops", "50", "--out", str(out)], timeout=120)
    res = json.loads(out.read_text())["models"][MODEL]
    assert res["wall_ms"]["n"] == 50 and res["thread_cpu_ms"]["median"] > 0


@needs_model
def test_test_tones(tmp_path):
    out = tmp_path / "test_tones.json"
    _run(["-m", "benchmarks.test_tones", "--models", MODEL, "--out", str(out)], timeout=120)
    res = json.loads(out.read_text())["results"][MODEL]
    assert len(res) == 5 and all(isinstance(v, list) for v in res.values())
    # the decaying A4 with harmonics is the one signal close to a plucked string
    assert "A4" in [name for _, name in res["A4 with 8 harmonics, decaying"]]


@needs_model
@pytest.mark.slow
def test_accuracy_tiny(tmp_path):
    res = _run(["-m", "benchmarks.accuracy", "--tiny", "--model", MODEL, "--out-dir", str(tmp_path)], timeout=300)
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
    _run(["-m", "benchmarks.latency", "--tiny", "--model", MODEL, "--out-dir", str(tmp_path),
          "--server-name", f"rtpitch-smoke-{os.getpid()}"], timeout=300)
    data = json.loads((tmp_path / "latency.json").read_text())
    p = data["periods"]["256"]
    assert p["take"]["returncode"] == 0
    assert {"note_on", "note_off", "budget", "per_note"} <= set(p)
    assert (tmp_path / "latency.png").stat().st_size > 1000


def test_latency_analysis_on_a_constructed_take(tmp_path):
    """benchmarks/latency.py's matching and delays, on a take built by hand
    (no JACK): known audio-time errors and known wall delays must come back."""
    import numpy as np

    from benchmarks.jackutil import LiveTake
    from benchmarks.latency import analyse
    from rtpitch.events import NoteEvent
    from rtpitch.sinks.midi_file import MidiFileSink

    sr, P, C = 48000, 100_000, 90_000  # player's first frame, rtpitch's sample 0 (JACK frames)
    take = LiveTake(returncode=0, stdout="", stderr="overruns: 0 samples dropped", record_path=tmp_path / "t.mid",
                    sr=sr, period=256, start_frame=P, capture_frame=C, snap_residual=0.0, blocks=[(0, P)])
    ref = np.array([[1.0, 1.5, 60, 80], [2.0, 2.6, 64, 70], [2.0, 2.4, 67, 90], [3.0, 3.2, 70, 60]])
    # (ref row, audio-time error of the on / off (s), wall delay of the on / off (s)); row 3 is missed
    plan = [(0, 0.012, 0.030, 0.280, 0.300), (1, -0.008, -0.050, 0.262, 0.250), (2, 0.004, 0.010, 0.270, 0.290)]
    events, messages = [], []
    for i, e_on, e_off, w_on, w_off in plan:
        on, off, p, v = ref[i]
        events += [NoteEvent(take.rt_time(on) + e_on, int(p), int(v), True, 0),
                   NoteEvent(take.rt_time(off) + e_off, int(p), 0, False, 0)]
        messages += [(take.frame_of(on) + w_on * sr, [0x90, int(p), int(v)]),
                     (take.frame_of(off) + w_off * sr, [0x80, int(p), 0])]
    # a false note far from any reference onset
    events += [NoteEvent(take.rt_time(0.5), 50, 64, True, 0), NoteEvent(take.rt_time(0.7), 50, 0, False, 0)]
    messages += [(take.frame_of(0.5) + 0.27 * sr, [0x90, 50, 64]), (take.frame_of(0.7) + 0.27 * sr, [0x80, 50, 0])]
    sink = MidiFileSink(take.record_path)
    sink.send(sorted(events, key=lambda e: e.time_s))
    sink.close()
    take.port_messages = sorted(messages)

    res = analyse(take, ref)
    assert res["matched"] == 3 and res["reported_notes"] == 4 and res["reference_notes"] == 4
    rows = {r["pitch"]: r for r in res["per_note"]}
    tick_ms = 1e3 / 960 + 0.01  # MIDI file resolution
    for i, e_on, e_off, w_on, w_off in plan:
        r = rows[int(ref[i, 2])]
        assert abs(r["on_audio_ms"] - 1e3 * e_on) <= tick_ms
        assert abs(r["off_audio_ms"] - 1e3 * e_off) <= tick_ms
        assert r["on_wall_ms"] == pytest.approx(1e3 * w_on, abs=0.01)
        assert r["off_wall_ms"] == pytest.approx(1e3 * w_off, abs=0.01)
    assert res["note_on"]["wall_ms"]["median"] == pytest.approx(270.0, abs=0.01)
    assert res["take"]["pitches_with_port_file_mismatch"] == []


def test_long_run_matching_follows_lost_jack_cycles():
    """benchmarks/long_run.py: a live take whose clock falls eight periods behind
    half-way (cycles lost to xruns) still matches note for note, each window's
    offset within the tolerance of the true one; a missing and a wrong-pitch
    note are not matched. One constant offset matches only the first half."""
    from benchmarks.long_run import match_piecewise

    step, base = 256 / 48000, -0.3
    ref = [(0.5 + 0.37 * i, 40 + i % 30) for i in range(100)]  # 0.5 .. 37 s
    live = [(t + base + (0.0 if t < 20 else -8 * step), p) for t, p in ref]
    live[10] = (live[10][0], live[10][1] + 1)  # wrong pitch
    del live[60]                               # lost
    matched, offsets = match_piecewise(ref, live, base, step, max_steps=10, tol_s=0.03)
    assert matched == 98
    assert len(offsets) == 4  # windows of 10 s
    for w, off in enumerate(offsets):
        truth = base if w < 2 else base - 8 * step
        assert abs(off - truth) <= 0.03
    assert match_piecewise(ref, live, base, step, max_steps=0, tol_s=0.03)[0] < 60
