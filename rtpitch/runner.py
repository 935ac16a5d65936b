"""The loop that drives a source through the engine into the sinks.

``listen`` (device or paced file) and ``transcribe`` (file, as fast as
possible) both call :func:`run_stream`; they differ only in their source and
sinks.  The loop ends when the source finishes or ``stop`` is set; it then
flushes the engine, so every note-on gets its note-off, and closes the sinks.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .engine import Engine
from .events import NoteEvent


@dataclass
class RunSummary:
    """What happened in one run."""

    audio_s: float = 0.0
    wall_s: float = 0.0
    notes: int = 0
    overrun_samples: int = 0
    nonfinite_samples: int = 0
    origin_monotonic_s: float | None = None  # time.monotonic() of audio time 0 (device sources)
    events: list = field(default_factory=list, repr=False)
    sink_errors: list = field(default_factory=list)


def _level(samples: np.ndarray) -> tuple[float, float]:
    """Peak and RMS of a block in dBFS."""
    if samples.shape[0] == 0:
        return -120.0, -120.0
    peak = float(np.max(np.abs(samples)))
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * np.log10(max(peak, 1e-6)), 20 * np.log10(max(rms, 1e-6))


def run_stream(source, engine: Engine, sinks: list, *, stop: threading.Event, view=None,
               keep_events: bool = True, read_timeout_s: float = 0.05) -> RunSummary:
    """Read blocks from ``source`` until it finishes or ``stop`` is set.

    Events go to every sink as soon as they are decoded; ``view`` (also one of
    the sinks, if given) additionally gets input levels and counters.  A jump in block
    positions (samples lost to an overrun) closes sounding notes and moves the
    engine's clock past the gap (:meth:`Engine.skip`).  For a device source
    ``origin_monotonic_s`` is the ``time.monotonic()`` of audio time 0, read
    from the stream's clock at the end of the run.
    """
    summary = RunSummary()
    t0 = time.monotonic()
    expected = 0  # next source position we expect
    rate = source.sample_rate
    source.start()
    try:
        while not stop.is_set():
            block = source.read(read_timeout_s)
            if block is None:
                if source.finished:
                    break
                _update_view(view, source, expected / rate, None)
                continue
            events = []
            if block.position > expected:
                events += engine.skip(block.position - expected)
            expected = block.position + block.samples.shape[0]
            events += engine.feed(block.samples)
            _dispatch(events, sinks, summary, keep_events)
            _update_view(view, source, expected / rate, block.samples)
    finally:
        if hasattr(source, "origin_monotonic"):  # while the stream still runs
            summary.origin_monotonic_s = source.origin_monotonic()
        source.stop()
        events = engine.finish()
        _dispatch(events, sinks, summary, keep_events)
        summary.audio_s = expected / rate
        summary.wall_s = time.monotonic() - t0
        summary.overrun_samples = source.overrun_samples
        summary.nonfinite_samples = getattr(source, "nonfinite_samples", 0)
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - every sink gets closed; errors are reported
                summary.sink_errors.append(str(exc))
    return summary


def warm_up(engine: Engine, seconds: float = 0.5) -> None:
    """Pay the engine's first-call costs (numba cache loads, ONNX Runtime's
    first runs) before a live stream starts, on a throwaway copy of ``engine``.

    While the engine thread holds the GIL the capture callback cannot run, and
    JACK drops the cycles of a late client: without this, the first blocks of
    a live stream can lose tens of ms of audio that no counter sees, shifting
    every audio-time stamp after them.
    """
    scratch = Engine(engine.spec, engine.backend, source_rate=engine.source_rate)
    scratch.feed(np.zeros(int(seconds * engine.source_rate), dtype=np.float32))
    scratch.finish()


def _dispatch(events: list[NoteEvent], sinks: list, summary: RunSummary, keep: bool) -> None:
    if not events:
        return
    summary.notes += sum(1 for e in events if e.on)
    if keep:
        summary.events.extend(events)
    for sink in sinks:
        sink.send(events)


def _update_view(view, source, audio_time_s, samples) -> None:
    """Levels and counters for the live view (it gets the events as a sink)."""
    if view is None:
        return
    peak, rms = _level(samples) if samples is not None else (None, None)
    view.update(level_peak=peak, level_rms=rms, overruns=source.overrun_samples, audio_time_s=audio_time_s)


def transcribe_file(path, spec, backend, *, channel: int | None = None, blocksize: int = 8192,
                    sinks: list | None = None) -> RunSummary:
    """Run a file through the engine as fast as possible (the ``transcribe`` path)."""
    from .filesource import FileSource

    source = FileSource(path, realtime=False, blocksize=blocksize, channel=channel)
    engine = Engine(spec, backend, source_rate=source.sample_rate)
    return run_stream(source, engine, sinks or [], stop=threading.Event())
