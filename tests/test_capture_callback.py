"""The PortAudio callback path (rtpitch.capture): what it may and may not do.

The callback makes one call into a numba kernel. If PortAudio handed it arrays
of another type than the constructor's warm-up call used, numba would compile
a new specialisation inside the callback (hundreds of ms, and allocation): the
test checks that a real JACK stream adds no signature. A device that goes away
is covered by tests/test_listen_faults.py (the JACK server dies).
"""

from __future__ import annotations

import time

import pytest


@pytest.mark.jack
def test_callback_compiles_nothing_and_counts(jack_server):
    from rtpitch.capture import DeviceSource, _on_callback

    src = DeviceSource("system", None, ring_seconds=2.0)
    before = len(_on_callback.signatures)
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
    assert src.callbacks > 10 and got > 0
    assert len(_on_callback.signatures) == before, _on_callback.signatures
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
    audio clock at the end still matches the wall time the stream ran."""
    import threading

    from rtpitch.capture import DeviceSource
    from rtpitch.engine import Engine
    from rtpitch.model import load_model_spec
    from rtpitch.runner import run_stream

    spec = load_model_spec("seed-cnn")
    src = DeviceSource("system", None, ring_seconds=0.02)
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
    assert abs(summary.audio_s - wall) < 0.25, (summary.audio_s, wall)
