"""The run loop under faults and overload, with fake sources, sinks and a level-detector backend.

Every case: the loop ends (or carries on) as documented in rtpitch.runner, every
note-on gets its note-off, the sinks are closed before the source is stopped,
and what went wrong is in the summary.
"""

from __future__ import annotations

import os
import re
import threading

import numpy as np
import pytest

from fakes import A4, ArraySource, LevelBackend, ListSink, check_note_invariants, tone
from rtpitch.engine import Engine
from rtpitch.errors import AudioFileError
from rtpitch.model import load_model_spec
from rtpitch.runner import run_stream
from rtpitch.sinks.midi_file import MidiFileSink, read_midi_notes

SR = 48000  # a device rate: the resampler is in the path
HOP_S = 0.02


@pytest.fixture(scope="module")
def spec():
    return load_model_spec("seed-cnn")


def _run(spec, source, sinks, **kw):
    engine = Engine(spec, LevelBackend(spec, **kw), source_rate=source.sample_rate)
    return run_stream(source, engine, sinks, stop=threading.Event()), engine


def _close(got, want, tol=HOP_S + 1e-9):
    """Same notes: equal pitches and count, times within ``tol``."""
    assert len(got) == len(want), (got, want)
    assert [n[2] for n in got] == [n[2] for n in want], (got, want)
    np.testing.assert_allclose([n[:2] for n in got], [n[:2] for n in want], atol=tol, err_msg=str(got))


def _notes(events):
    """(on_s, off_s, pitch) per note."""
    open_, notes = {}, []
    for e in events:
        if e.on:
            open_[e.pitch] = e.time_s
        else:
            notes.append((open_.pop(e.pitch), e.time_s, e.pitch))
    return sorted(notes)


# -- overload: a gap in the stream ----------------------------------------------------
def test_gap_closes_notes_and_keeps_audio_time(spec):
    """Blocks lost to an overrun (1.5 s .. 2.0 s) while a tone sounds (0.5 .. 3.0 s),
    and a second tone after the gap (2.5 .. 3.5 s on another run of the same key):
    the note sounding at the gap ends at the gap (within one hop); after the gap a
    new note starts at its end, and every later event has exactly the audio time
    it has in the run without the gap."""
    x = tone(SR, 5.0, [(0.5, 3.0), (3.4, 4.2)])
    full = ListSink("full")
    summary, _ = _run(spec, ArraySource(x, SR, blocksize=960), [full])
    assert summary.overrun_samples == 0
    _close(_notes(full.events), [(0.44, 3.06, A4), (3.34, 4.26, A4)])

    gapped = ListSink("gapped")
    drop = (int(1.5 * SR), int(2.0 * SR))
    summary, engine = _run(spec, ArraySource(x, SR, blocksize=960, drop=drop), [gapped])
    assert summary.overrun_samples == drop[1] - drop[0] == engine.dropped_samples
    check_note_invariants(gapped.events, t_max=5.0 + HOP_S)
    notes = _notes(gapped.events)
    assert len(notes) == 3, notes
    (on0, off0, _), (on1, off1, _), later = notes
    assert on0 == pytest.approx(full.events[0].time_s)
    assert 1.5 <= off0 <= 1.5 + HOP_S + 1e-9  # closed at the gap
    assert on1 == pytest.approx(2.0)  # the tone still sounds when audio resumes
    after = [e for e in gapped.events if e.time_s > 2.5]
    want = [e for e in full.events if e.time_s > 2.5]
    assert [(e.pitch, e.on) for e in after] == [(e.pitch, e.on) for e in want]
    np.testing.assert_allclose([e.time_s for e in after], [e.time_s for e in want], atol=1e-9)
    assert later[0] == pytest.approx(3.34, abs=2 * HOP_S)


def test_gap_at_the_start_and_back_to_back(spec):
    x = tone(SR, 3.0, [(0.2, 2.5)])
    sink = ListSink()
    summary, _ = _run(spec, ArraySource(x, SR, blocksize=960, drop=(0, 2 * 960)), [sink])
    check_note_invariants(sink.events)
    assert summary.overrun_blocks == 2
    assert _notes(sink.events)[0][0] == pytest.approx(0.14, abs=HOP_S)


# -- faults -------------------------------------------------------------------------------
def test_failing_sink_does_not_stop_the_others(spec, tmp_path):
    x = tone(SR, 3.0, [(0.3, 0.8), (1.2, 1.7), (2.0, 2.5)])
    log = []
    record = MidiFileSink(tmp_path / "take.mid")
    bad = ListSink("bad", fail_on=2, log=log)
    good = ListSink("good", log=log)
    summary, _ = _run(spec, ArraySource(x, SR, log=log), [record, bad, good])
    assert summary.sink_errors == ["ListSink: OSError: bad is broken"]  # once, though it would fail again
    assert not summary.errors
    assert check_note_invariants(good.events) == 3
    assert len(read_midi_notes(tmp_path / "take.mid")) == 3
    assert bad.closed and log[-3:] == ["bad.close", "good.close", "source.stop"]


def test_sink_close_error_is_reported_and_others_close(spec):
    log = []
    bad = ListSink("bad", log=log, close_error=OSError("disk gone"))
    good = ListSink("good", log=log)
    summary, _ = _run(spec, ArraySource(tone(SR, 1.0, [(0.2, 0.6)]), SR, log=log), [bad, good])
    assert summary.sink_errors == ["ListSink: OSError: disk gone"]
    assert log == ["source.start", "bad.close", "good.close", "source.stop"]


def test_engine_failure_keeps_the_take(spec, tmp_path):
    """The backend raises mid-stream: the loop ends, the notes that were on are
    closed (without the model), the take is written, the summary says why."""
    x = tone(SR, 4.0, [(0.3, 3.5)])
    record = MidiFileSink(tmp_path / "take.mid")
    sink = ListSink()
    summary, _ = _run(spec, ArraySource(x, SR, blocksize=960), [record, sink], fail_after=60)
    assert summary.errors == ["internal error in the engine: RuntimeError: backend exploded"]
    assert isinstance(summary.failure, RuntimeError)
    assert check_note_invariants(sink.events) == 1
    assert len(read_midi_notes(tmp_path / "take.mid")) == 1


def test_source_read_error_keeps_the_take(spec, tmp_path):
    x = tone(SR, 3.0, [(0.3, 2.5)])
    source = ArraySource(x, SR, blocksize=960, fail_after=60,
                         exc=AudioFileError("x.wav: read failed at sample 57600 (truncated)"))
    sink = ListSink()
    summary, _ = _run(spec, source, [sink])
    assert summary.errors == ["x.wav: read failed at sample 57600 (truncated)"]
    assert check_note_invariants(sink.events) == 1
    assert summary.audio_s == pytest.approx(60 * 960 / SR)
    assert source.stopped


def test_lost_source_ends_the_run_sinks_first(spec, tmp_path):
    """The device goes away (``source.lost``) while a note sounds: the loop ends,
    the note is closed, sinks are closed before the source is stopped."""
    log = []
    x = tone(SR, 4.0, [(0.3, 3.5)])
    record = MidiFileSink(tmp_path / "take.mid")
    sink = ListSink(log=log)
    source = ArraySource(x, SR, blocksize=960, lose_after=50, log=log)
    summary, _ = _run(spec, source, [record, sink])
    assert summary.source_lost
    assert summary.errors == ["audio device 'array' stopped (test)"]
    assert check_note_invariants(sink.events) == 1
    assert read_midi_notes(tmp_path / "take.mid")[0][1] <= 50 * 960 / SR + 2 * HOP_S
    assert log[-2:] == ["list.close", "source.stop"]


def test_stop_event_ends_the_run(spec):
    stop = threading.Event()
    stop.set()
    sink = ListSink()
    engine = Engine(spec, LevelBackend(spec), source_rate=SR)
    summary = run_stream(ArraySource(tone(SR, 1.0, [(0, 1)]), SR), engine, [sink], stop=stop)
    assert summary.audio_s == 0 and sink.closed and not sink.events


def test_summary_counts_overflows_and_nonfinite(spec):
    source = ArraySource(np.zeros(SR, np.float32), SR)
    source.input_overflows, source.nonfinite_samples = 3, 7
    summary, _ = _run(spec, source, [])
    assert (summary.input_overflows, summary.nonfinite_samples) == (3, 7)


# -- the recording survives a kill: autosave -------------------------------------------------
def test_midi_file_autosave(tmp_path):
    from rtpitch.events import NoteEvent

    path = tmp_path / "take.mid"
    sink = MidiFileSink(path, autosave_s=0.0)
    sink.send([NoteEvent(0.5, 60, 80, True, 25), NoteEvent(0.7, 64, 70, True, 35)])
    sink._saver.join()
    # an autosave ends the sounding notes one tick after the latest event
    assert read_midi_notes(path) == [(0.5, pytest.approx(0.7 + 1 / 960), 60, 80),
                                     (0.7, pytest.approx(0.7 + 1 / 960), 64, 70)]
    sink.send([NoteEvent(1.0, 60, 0, False, 50)])
    sink._saver.join()
    sink.close()
    assert sink.autosaves == 2 and sink.autosave_error is None
    assert read_midi_notes(path) == [(0.5, 1.0, 60, 80), (0.7, 1.0, 64, 70)]  # closed at the end of the file


def test_midi_file_autosave_failure_is_kept(tmp_path, monkeypatch):
    from rtpitch.events import NoteEvent
    import errno

    sink = MidiFileSink(tmp_path / "take.mid", autosave_s=0.0)

    def full(mid, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sink, "_write_atomic", full)
    sink.send([NoteEvent(0.5, 60, 80, True, 25)])
    sink._saver.join()
    assert sink.autosave_error == f"autosave of {tmp_path / 'take.mid'} failed: No space left on device"


# -- what the user is told --------------------------------------------------------------------
def test_view_shows_input_overflows():
    import io

    from rtpitch.sinks.terminal import TerminalView

    view = TerminalView(io.StringIO(), enabled=False)
    view.update(overruns=512, input_overflows=0)
    assert "overflows" not in view.status_line()
    view.update(overruns=512, input_overflows=3)
    assert "overruns 512 | overflows 3" in view.status_line()
    assert view.summary().endswith("512 overruns, 3 input overflows")


def test_report_lines_and_exit_status(capsys, tmp_path):
    import signal

    from rtpitch.cli import report
    from rtpitch.runner import RunSummary

    record = MidiFileSink(tmp_path / "take.mid")
    record.close()
    s = RunSummary(notes=3, audio_s=12.5, overrun_samples=512, overrun_blocks=2, input_overflows=3,
                   nonfinite_samples=7)
    assert report(s, record, stop_signal=signal.SIGINT) == 0
    assert report(s, record, stop_signal=None) == 0
    assert report(s, record, stop_signal=signal.SIGTERM) == 143
    assert report(s, record, stop_signal=signal.SIGHUP) == 129
    lines = capsys.readouterr().err.splitlines()
    assert lines[:3] == ["3 notes in 12.5 s of audio; overruns: 512 samples dropped (2 blocks); "
                         "input overflows: 3 callbacks",
                         "warning: 7 NaN/Inf input samples were replaced by 0",
                         f"wrote {tmp_path / 'take.mid'}"]
    assert lines[-1] == "rtpitch: stopped by SIGHUP"
    s.errors.append("audio device 'system' stopped (JACK server gone?)")
    assert report(s, record, stop_signal=signal.SIGTERM) == 1  # a fault wins over the signal
    lines = capsys.readouterr().err.splitlines()
    assert lines[2:] == ["rtpitch: error: audio device 'system' stopped (JACK server gone?)",
                         f"wrote {tmp_path / 'take.mid'}"]


def test_audio_recording_failure_is_a_sink_error_and_the_take_goes_on(spec, tmp_path):
    """The audio file holds every sample the engine got, overrun gaps as
    silence; on a full disk the run goes on, the MIDI take is written, and the
    failure is reported once."""
    import soundfile as sf

    from rtpitch.sinks.audio_file import AudioFileRecorder

    x = tone(SR, 3.0, [(0.3, 0.8), (1.2, 1.7), (2.0, 2.5)])
    drop = (int(0.9 * SR), int(1.0 * SR))
    rec = AudioFileRecorder(tmp_path / "take.wav", SR)
    record = MidiFileSink(tmp_path / "take.mid")
    engine = Engine(spec, LevelBackend(spec), source_rate=SR)
    summary = run_stream(ArraySource(x, SR, blocksize=960, drop=drop), engine, [record], stop=threading.Event(),
                         audio_recorder=rec)
    assert summary.ok and rec.error is None
    heard, _ = sf.read(tmp_path / "take.wav", dtype="float32")
    want = x.copy()
    want[drop[0]:drop[1]] = 0
    np.testing.assert_array_equal(heard, want[:heard.shape[0]])
    assert heard.shape[0] == x.shape[0] // 960 * 960

    if not os.path.exists("/dev/full"):
        return
    (tmp_path / "take2.wav").symlink_to("/dev/full")  # a real full disk
    rec = AudioFileRecorder(tmp_path / "take2.wav", SR)
    engine = Engine(spec, LevelBackend(spec), source_rate=SR)
    record = MidiFileSink(tmp_path / "take2.mid")
    summary = run_stream(ArraySource(x, SR, blocksize=960), engine, [record], stop=threading.Event(),
                         audio_recorder=rec)
    assert not summary.errors and len(summary.sink_errors) == 1, summary.sink_errors
    assert re.fullmatch(rf"audio recording {re.escape(str(tmp_path / 'take2.wav'))} stopped at \d+\.\d s: "
                        "No space left on device", summary.sink_errors[0]), summary.sink_errors
    assert len(read_midi_notes(tmp_path / "take2.mid")) == 3
