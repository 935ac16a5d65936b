"""The PortAudio callback (rtpitch.pa_stream.pa_callback, a numba cfunc).

Without a device, the cfunc is called through ctypes as PortAudio calls it:
an interleaved float32 input buffer, the three time-info doubles and the
userData array of a DeviceSource. A real JACK stream checks that every
callback's block lands in the ring. A device that goes away is covered by
tests/test_listen_faults.py (the JACK server dies); a Python thread holding
the GIL by tests/test_capture_jack.py.
"""

from __future__ import annotations

import ctypes
import time

import numpy as np
import pytest

from rtpitch import capture, pa_stream
from rtpitch.bench import callback_jitter

INPUTS = [{"index": 0, "name": "system", "hostapi": "JACK Audio Connection Kit", "max_input_channels": 2,
           "default_samplerate": 48000.0}]


def _source(monkeypatch, channel=None, ring_seconds=1.0):
    """A DeviceSource on a fake 2-channel 48 kHz device, never started, and its userData."""
    monkeypatch.setattr(capture, "list_input_devices", lambda rescan=True: INPUTS)
    src = capture.DeviceSource("system", channel, ring_seconds=ring_seconds)
    return src, pa_stream.user_data(src.ring, src._cb, src._times, src._channel, src.channels)


def _call(user, block, flags=0, adc=0.0, now=0.0) -> int:
    """One callback as PortAudio makes it: ``block`` float32 (frames, channels)."""
    block = np.ascontiguousarray(block, dtype=np.float32)
    time_info = np.array([adc, now, now + 0.01])  # inputBufferAdcTime, currentTime, outputBufferDacTime (s)
    return pa_stream.pa_callback.ctypes(block.ctypes.data, None, block.shape[0],
                                       time_info.ctypes.data_as(ctypes.POINTER(ctypes.c_double)), flags,
                                       user.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)))


def test_callback_downmixes_into_ring_and_time_stamps(monkeypatch):
    src, user = _source(monkeypatch)
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((256, 2)).astype(np.float32) for _ in range(3)]
    for k, b in enumerate(blocks):
        assert _call(user, b, adc=10.0 + k, now=10.5 + k) == 0  # paContinue
    assert src.callbacks == 3 and src.blocksize == 256  # blocksize=0: the last callback's frames
    assert src.input_overflows == 0
    np.testing.assert_array_equal(src.callback_times(), [10.5, 11.5, 12.5])  # currentTime
    out = np.empty(1024, dtype=np.float32)
    assert src.ring.read_into(out) == (0, 768)
    want = np.concatenate([b.astype(np.float64).mean(axis=1) for b in blocks]).astype(np.float32)
    np.testing.assert_array_equal(out[:768], want)


def test_callback_picks_channel_counts_flags_and_nonfinite(monkeypatch):
    src, user = _source(monkeypatch, channel=1)
    b = np.stack([np.full(64, 9.0), np.arange(64.0)], axis=1)
    b[5, 1] = np.nan
    _call(user, b, flags=2)  # paInputOverflow
    _call(user, b, flags=1)  # paInputUnderflow: flagged, not an overflow
    _call(user, b[:32])
    assert src.callbacks == 3 and src.input_overflows == 1
    assert src.blocksize == 32 and src.nonfinite_samples == 3
    out = np.empty(256, dtype=np.float32)
    assert src.ring.read_into(out) == (0, 160)
    want = np.arange(64.0)
    want[5] = 0.0
    np.testing.assert_array_equal(out[:160], np.concatenate([want, want, want[:32]]))


def test_callback_drops_whole_block_when_ring_full(monkeypatch):
    src, user = _source(monkeypatch, ring_seconds=0.01)  # 480 samples
    for _ in range(3):
        _call(user, np.ones((200, 2)))
    assert src.callbacks == 3 and src.overrun_samples == 200 and src.overrun_blocks == 1
    out = np.empty(480, dtype=np.float32)
    assert src.ring.read_into(out) == (0, 400)
    _call(user, np.ones((200, 2)))
    assert src.ring.read_into(out) == (600, 200)  # the dropped block is a gap in the positions


def test_callback_time_stamps_wrap(monkeypatch):
    src, user = _source(monkeypatch)
    n = pa_stream.N_TIMES + 5
    for k in range(n):
        _call(user, np.zeros((16, 2)), now=float(k))
    t = src.callback_times()
    assert t.shape == (pa_stream.N_TIMES,) and t[0] == 5.0 and t[-1] == n - 1
    assert callback_jitter(t)["mean_ms"] == pytest.approx(1000.0)


@pytest.mark.jack
def test_jack_stream_stores_every_callback(jack_server):
    src = capture.DeviceSource("system", None, ring_seconds=2.0)
    src.start()
    try:
        got = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            b = src.read(0.05)
            if b is not None:
                got += b.samples.shape[0]
    finally:
        src.stop()
    while (b := src.read(0.0)) is not None:
        got += b.samples.shape[0]
    assert src.callbacks > 10 and got == src.callbacks * src.blocksize and src.overrun_samples == 0
    assert isinstance(src.input_latency_s, float)  # JACK's dummy driver reports 0.0
    assert not src.lost and src.error is None and src.finished
    src.stop()  # idempotent


class _SlowBackend:
    """A level-detector model that takes ``delay_s`` per call: the engine falls behind."""

    def __init__(self, spec, delay_s: float):
        from fakes import LevelBackend

        self.inner = LevelBackend(spec)
        self.delay_s = delay_s

    def infer(self, mel):
        time.sleep(self.delay_s)
        return self.inner.infer(mel)


@pytest.mark.jack
def test_overload_drops_whole_blocks_counts_them_and_keeps_time(jack_server):
    """A real JACK stream into a tiny ring (20 ms) read by an engine that needs
    60 ms per hop: the callback keeps storing what fits and drops whole blocks,
    counted; the run loop sees every gap it reads across (Engine.skip), so the
    audio clock at the end counts every sample the callback was given, to the
    sample, and (when JACK delivered every cycle) matches the wall time the
    stream ran. On a stalled machine JACK skips whole cycles for late clients
    (PortAudio reports input overflows, not how many frames): those never reach
    the callback, so the audio clock cannot count them and the wall-time check
    is printed, not asserted."""
    import threading

    from rtpitch.engine import Engine
    from rtpitch.model import load_model_spec
    from rtpitch.runner import run_stream

    spec = load_model_spec("seed-cnn")
    src = capture.DeviceSource("system", None, ring_seconds=0.02)
    engine = Engine(spec, _SlowBackend(spec, 0.06), source_rate=src.sample_rate)
    stop = threading.Event()
    timer = threading.Timer(1.5, stop.set)
    t0 = time.monotonic()
    timer.start()
    summary = run_stream(src, engine, [], stop=stop)
    wall = time.monotonic() - t0
    assert summary.ok, summary
    assert summary.overrun_samples > 0 and summary.overrun_blocks > 0
    assert summary.overrun_samples % src.blocksize == 0  # whole blocks
    # every gap the reader crossed was skipped explicitly; drops after the last block read are not crossed
    assert 0 < engine.dropped_samples <= summary.overrun_samples
    left = 0  # stored after the last read
    while (b := src.read(0.0)) is not None:
        left += b.samples.shape[0]
    delivered = src.callbacks * src.blocksize
    # delivered = read + left + dropped; the engine's clock = read + the gaps it crossed
    assert delivered == engine.position + left + (summary.overrun_samples - engine.dropped_samples), (
        delivered, engine.position, left, summary.overrun_samples, engine.dropped_samples)
    print(f"audio clock {summary.audio_s:.3f} s, wall {wall:.3f} s, "
          f"JACK input overflows (cycles lost before the callback): {summary.input_overflows}")
    if summary.input_overflows == 0:
        assert abs(summary.audio_s - wall) < 0.25, (summary.audio_s, wall)
