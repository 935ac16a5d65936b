"""The loop that drives a source through the engine into the sinks.

``listen`` (device or paced file) and ``transcribe`` (file, as fast as
possible) both call :func:`run_stream`; they differ only in their source and
sinks.  The loop ends when the source finishes, the source is lost (its device
went away) or ``stop`` is set; it then flushes the engine, so every note-on gets
its note-off, and closes the sinks.

Faults never lose the take
--------------------------
Once the source has started, nothing that goes wrong escapes the loop before
the sinks are closed:

* a sink whose ``send`` raises is reported once (``RunSummary.sink_errors``)
  and gets no more events; the other sinks carry on;
* an error in the engine or the source (a backend failure, a file that cannot
  be read further) ends the loop and is reported in ``RunSummary.errors``;
  the recorded events are still flushed and written;
* a source that stops by itself (``source.lost``: the JACK server died or
  hung, the device was unplugged) ends the loop with its ``source.error`` in
  ``RunSummary.errors``; sinks with a ``source_lost()`` method are told before
  they are closed (a JACK MIDI port then leaves its client alone).

Shutdown order: flush the engine (notes sounding are closed), close the sinks in
list order (put the MIDI file first: it must survive whatever follows), then
stop the source. Stopping a lost PortAudio stream can hang or abort; by then
the take is on disk.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from .engine import Engine
from .errors import RtpitchError
from .events import Event, NoteEvent, PedalEvent
from .stage import Source


@dataclass
class RunSummary:
    """What happened in one run.

    ``overrun_samples``: samples the ring buffer dropped (the engine closed the
    notes sounding across each gap and kept audio time right).
    ``input_overflows``: callbacks PortAudio flagged as input overflow (audio
    lost before rtpitch saw it; audio time after it is early by that much).
    ``errors``: one line per fault of the source or the engine (the run
    ended early); ``sink_errors``: one line per failing sink.
    ``events``: the note events (``keep_events``); ``pedal_events``: the
    sustain pedal's (a model with a pedal head), both in time order (the sinks
    got them merged).
    ``failure``: the exception behind the first of ``errors``, if any.
    """

    audio_s: float = 0.0
    wall_s: float = 0.0
    notes: int = 0
    overrun_samples: int = 0
    overrun_blocks: int = 0
    input_overflows: int = 0
    nonfinite_samples: int = 0
    origin_monotonic_s: float | None = None  # time.monotonic() of audio time 0 (device sources)
    source_lost: bool = False
    events: list = field(default_factory=list, repr=False)
    pedal_events: list = field(default_factory=list, repr=False)
    errors: list = field(default_factory=list)
    sink_errors: list = field(default_factory=list)
    failure: BaseException | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """No fault of the source, the engine or a sink."""
        return not self.errors and not self.sink_errors


def _level(samples: np.ndarray) -> tuple[float, float]:
    """Peak and RMS of a block in dBFS."""
    if samples.shape[0] == 0:
        return -120.0, -120.0
    peak = float(np.max(np.abs(samples)))
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return 20 * np.log10(max(peak, 1e-6)), 20 * np.log10(max(rms, 1e-6))


def _describe_failure(exc: BaseException, where: str) -> str:
    """One line for an exception: an RtpitchError's own message, else its type
    and text (a bug: the traceback is kept in ``RunSummary.failure``)."""
    if isinstance(exc, RtpitchError):
        return str(exc)
    text = " ".join(str(exc).split())
    return f"internal error in the {where}: {type(exc).__name__}: {text}"


class _Dispatcher:
    """Sends events to every sink; a sink that raises is reported once and skipped after."""

    def __init__(self, sinks: list, summary: RunSummary, keep: bool):
        self.sinks = list(sinks)
        self.summary = summary
        self.keep = keep
        self.failed: set[int] = set()

    def __call__(self, events: list[Event]) -> None:
        if not events:
            return
        notes = [e for e in events if isinstance(e, NoteEvent)]
        self.summary.notes += sum(1 for e in notes if e.on)
        if self.keep:
            self.summary.events.extend(notes)
            if len(notes) < len(events):
                self.summary.pedal_events.extend(e for e in events if isinstance(e, PedalEvent))
        for i, sink in enumerate(self.sinks):
            if i in self.failed:
                continue
            try:
                sink.send(events)
            except Exception as exc:  # noqa: BLE001 - one sink must not stop the others
                self.failed.add(i)
                self._report(sink, exc)

    def close_all(self) -> None:
        """Close every sink (failed ones too: a MIDI port still tries all-notes-off)."""
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - every sink gets closed; errors are reported
                self._report(sink, exc)
            late = getattr(sink, "error", None)  # MidiPortSink records instead of raising
            if late and late not in self.summary.sink_errors:
                self.summary.sink_errors.append(late)

    def _report(self, sink, exc: BaseException) -> None:
        line = str(exc) if isinstance(exc, RtpitchError) else \
            f"{type(sink).__name__}: {type(exc).__name__}: {' '.join(str(exc).split())}"
        if line not in self.summary.sink_errors:
            self.summary.sink_errors.append(line)


def run_stream(source: Source, engine: Engine, sinks: list, *, stop: threading.Event, view=None,
               keep_events: bool = True, read_timeout_s: float = 0.05, audio_recorder=None) -> RunSummary:
    """Read blocks from ``source`` until it finishes, is lost, or ``stop`` is set.

    Events go to every sink as soon as they are decoded; ``view`` (also one of
    the sinks, if given) additionally gets input levels and counters.  A jump in block
    positions (samples lost to an overrun) closes sounding notes and moves the
    engine's clock past the gap (:meth:`Engine.skip`).  For a device source
    ``origin_monotonic_s`` is the ``time.monotonic()`` of audio time 0, read
    from the stream's clock at the end of the run.  ``audio_recorder`` (an
    :class:`~rtpitch.sinks.audio_file.AudioFileRecorder`) gets every block the
    engine gets; it is closed first at the end, and its failure is a sink error.

    Raises only if ``source.start()`` fails (nothing was recorded then);
    every later fault is reported in the summary (module docstring).
    """
    summary = RunSummary()
    dispatch = _Dispatcher(sinks, summary, keep_events)
    t0 = time.monotonic()
    rate = source.sample_rate
    source.start()
    try:
        while not stop.is_set():
            block = source.read(read_timeout_s)
            if block is None:
                if source.finished:
                    break
                _update_view(view, source, engine.position / rate, None)
                continue
            if audio_recorder is not None:
                audio_recorder.write(block.position, block.samples)
            dispatch(engine.process(block))  # a jump in positions: the engine closes notes across the gap
            _update_view(view, source, engine.position / rate, block.samples)
    except Exception as exc:  # noqa: BLE001 - keep what was recorded, report the fault
        summary.failure = exc
        summary.errors.append(_describe_failure(exc, "engine"))
    finally:
        _shut_down(source, engine, dispatch, summary, audio_recorder)
        summary.wall_s = time.monotonic() - t0
    return summary


def _shut_down(source: Source, engine: Engine, dispatch: _Dispatcher, summary: RunSummary,
               audio_recorder=None) -> None:
    """Flush, close the sinks, stop the source; every step runs whatever the others did."""
    if audio_recorder is not None:
        audio_recorder.close()  # never raises
        if audio_recorder.error:
            summary.sink_errors.append(audio_recorder.error)
    summary.source_lost = bool(source.lost)
    if summary.source_lost:
        summary.errors.insert(0, source.error or "the audio source stopped by itself")
    try:  # while the stream still runs
        summary.origin_monotonic_s = source.origin_monotonic()
    except Exception:  # noqa: BLE001 - a clock we cannot read is only a missing figure
        summary.origin_monotonic_s = None
    try:
        # a recording that ended is followed by silence, as it would be live
        events = engine.finish(silence_after=source.ends_in_silence and not summary.source_lost)
    except Exception as exc:  # noqa: BLE001 - the backend failed: still close the notes
        if summary.failure is None:
            summary.failure = exc
            summary.errors.append(_describe_failure(exc, "engine"))
        events = engine.close_notes()
    dispatch(events)
    summary.audio_s = engine.position / source.sample_rate
    summary.overrun_samples = int(source.overrun_samples)
    summary.overrun_blocks = int(source.overrun_blocks)
    summary.input_overflows = int(source.input_overflows)
    summary.nonfinite_samples = int(source.nonfinite_samples)
    if summary.source_lost:
        for sink in dispatch.sinks:  # e.g. a MIDI port on the same (dead or hung) JACK server
            hook = getattr(sink, "source_lost", None)
            if hook is not None:
                try:
                    hook()
                except Exception as exc:  # noqa: BLE001 - a hint to a sink must not stop the shutdown
                    dispatch._report(sink, exc)
    dispatch.close_all()
    try:
        source.stop()
    except Exception as exc:  # noqa: BLE001 - the take is written; report and go on
        summary.errors.append(_describe_failure(exc, "audio source"))


def format_failure(summary: RunSummary) -> str:
    """The traceback of ``summary.failure`` (for ``RTPITCH_DEBUG``), or ''."""
    exc = summary.failure
    if exc is None:
        return ""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


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


def _update_view(view, source, audio_time_s, samples) -> None:
    """Levels and counters for the live view (it gets the events as a sink)."""
    if view is None:
        return
    peak, rms = _level(samples) if samples is not None else (None, None)
    view.update(level_peak=peak, level_rms=rms, overruns=source.overrun_samples,
                input_overflows=source.input_overflows, audio_time_s=audio_time_s)


def transcribe_file(path, spec, backend, *, channel: int | None = None, blocksize: int = 8192,
                    sinks: list | None = None, raise_errors: bool = True, on_activations=None) -> RunSummary:
    """Run a file through the engine as fast as possible (the ``transcribe`` path).

    With ``raise_errors`` (default) a fault during the run is raised after the
    sinks were closed; else it is left in ``summary.errors`` for the caller.
    ``on_activations``: see :class:`~rtpitch.engine.Engine`.
    """
    from .filesource import FileSource

    source = FileSource(path, realtime=False, blocksize=blocksize, channel=channel)
    engine = Engine(spec, backend, source_rate=source.sample_rate, on_activations=on_activations)
    summary = run_stream(source, engine, sinks or [], stop=threading.Event())
    if raise_errors and summary.failure is not None:
        raise summary.failure
    return summary
