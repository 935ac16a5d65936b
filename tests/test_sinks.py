"""Sinks: MIDI file, MIDI port (real JACK ports), terminal view."""

from __future__ import annotations

import io
import os
import re
import time

import numpy as np
import pytest

from rtpitch.errors import ConfigError, MidiError
from rtpitch.events import NoteEvent, PedalEvent
from rtpitch.sinks import Sink
from rtpitch.sinks.midi_file import TICKS_PER_S, MidiFileSink, read_midi_notes
from rtpitch.sinks.terminal import TerminalView, note_name


def on(t, p, v=64):
    return NoteEvent(t, p, v, True, int(round(t * 100)))


def off(t, p):
    return NoteEvent(t, p, 0, False, int(round(t * 100)))


EVENTS = [on(0.0, 60, 100), on(0.012, 64, 50), off(0.5, 60), off(0.5, 64), on(0.5, 60, 1),
          on(1.2345, 108, 127), off(1.3, 60), off(2.0001, 108)]
EXPECTED = [(0.0, 0.5, 60, 100), (0.012, 0.5, 64, 50), (0.5, 1.3, 60, 1), (1.2345, 2.0001, 108, 127)]


# -- MIDI file ---------------------------------------------------------------
def test_midi_file_round_trip(tmp_path):
    path = tmp_path / "out.mid"
    sink = MidiFileSink(path)
    assert isinstance(sink, Sink)
    sink.send(EVENTS[:3])
    sink.send(EVENTS[3:])
    sink.close()
    sink.close()  # idempotent
    notes = read_midi_notes(path)
    assert [(n[2], n[3]) for n in notes] == [(e[2], e[3]) for e in EXPECTED]
    for got, want in zip(notes, EXPECTED):
        assert abs(got[0] - want[0]) <= 1 / TICKS_PER_S
        assert abs(got[1] - want[1]) <= 1 / TICKS_PER_S
    assert [p.name for p in tmp_path.iterdir()] == ["out.mid"]  # no temp file left

    import mido

    mid = mido.MidiFile(str(path))
    assert mid.ticks_per_beat == 480
    names = [m.name for m in mid.tracks[0] if m.type == "track_name"]
    assert names == ["rtpitch"]
    assert sum(1 for m in mid.tracks[0] if m.type == "note_off") == 4


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_midi_file_read_only_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        sink = MidiFileSink(ro / "x.mid")
        sink.send(EVENTS)
        with pytest.raises(MidiError) as info:
            sink.close()
        msg = str(info.value)
        assert "\n" not in msg and str(ro / "x.mid") in msg and "ermission" in msg
        # what was recorded is kept elsewhere
        assert sink.saved_path is not None and sink.saved_path.exists()
        assert len(read_midi_notes(sink.saved_path)) == 4
        sink.saved_path.unlink()
    finally:
        ro.chmod(0o700)


def test_midi_file_disk_full_keeps_notes(tmp_path, monkeypatch):
    import errno

    from rtpitch.sinks import midi_file

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(midi_file.os, "fsync", full)
    sink = MidiFileSink(tmp_path / "x.mid")
    sink.send(EVENTS)
    with pytest.raises(MidiError) as info:
        sink.close()
    msg = str(info.value)
    assert "\n" not in msg and str(tmp_path / "x.mid") in msg and "No space left" in msg
    assert list(tmp_path.iterdir()) == []  # no partial file, no temp file
    assert sink.saved_path is not None and str(sink.saved_path) in msg
    assert len(read_midi_notes(sink.saved_path)) == 4
    sink.saved_path.unlink()


def test_midi_file_missing_dir(tmp_path):
    sink = MidiFileSink(tmp_path / "nope" / "x.mid")
    with pytest.raises(MidiError, match="cannot write MIDI file .*x.mid: No such file"):
        sink.close()  # nothing recorded: no rescue copy
    assert sink.saved_path is None


# -- MIDI port: no server -------------------------------------------------------
def test_midi_port_without_jack_or_alsa(monkeypatch):
    pytest.importorskip("rtmidi")
    import rtmidi

    from rtpitch.sinks import midi_port

    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        pytest.skip("python-rtmidi built without JACK")
    # a server name nobody runs: no server whether or not a default one is up
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"rtpitch-absent-{os.getpid()}")
    monkeypatch.setattr(midi_port.sys, "platform", "linux")
    real_exists = os.path.exists
    monkeypatch.setattr(midi_port.os.path, "exists", lambda p: False if p == midi_port.ALSA_SEQ else real_exists(p))
    for api in ("auto", "jack"):
        t0 = time.monotonic()
        with pytest.raises(MidiError) as info:
            midi_port.MidiPortSink("rtpitch-test", api=api)
        assert time.monotonic() - t0 < 5
        assert str(info.value) == midi_port.NO_VIRTUAL_MSG
        assert "\n" not in str(info.value)


def test_midi_port_bad_options():
    pytest.importorskip("rtmidi")
    from rtpitch.sinks.midi_port import MidiPortSink

    with pytest.raises(ConfigError):
        MidiPortSink(channel=0)
    with pytest.raises(ConfigError):
        MidiPortSink(channel=17)
    with pytest.raises(ConfigError):
        MidiPortSink(api="bogus")


# -- MIDI port: real JACK ports --------------------------------------------------
def _receiver(port_substring):
    import rtmidi

    inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="rtpitch-test-reader")
    ports = inp.get_ports()
    idx = [i for i, p in enumerate(ports) if port_substring in p]
    assert idx, ports
    inp.open_port(idx[0])
    inp.ignore_types(sysex=True, timing=True, active_sense=True)
    return inp


def _collect(inp, n, timeout=3.0):
    got, deadline = [], time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        msg = inp.get_message()
        if msg is None:
            time.sleep(0.005)
        else:
            got.append(msg[0])
    return got


@pytest.mark.jack
def test_virtual_port_sends_notes(jack_server):
    from rtpitch.sinks.midi_port import MidiPortSink

    sink = MidiPortSink("rtpitch-test", channel=2, api="jack")
    assert sink.describe() == "virtual port 'rtpitch-test' (JACK)"
    inp = _receiver("rtpitch-test:rtpitch-test")
    try:
        time.sleep(0.1)
        sink.send([on(0.0, 60, 100), on(0.0, 64, 70), off(0.1, 60), PedalEvent(0.1, True, 10)])
        assert _collect(inp, 4) == [[0x91, 60, 100], [0x91, 64, 70], [0x81, 60, 0], [0xB1, 64, 127]]
        assert sink.sent_count == 4 and sink.sounding == {64} and sink.pedal_down
        sink.close()
        # note-off for the sounding note, the pedal up (CC 64 0), then CC 123
        assert _collect(inp, 3) == [[0x81, 64, 0], [0xB1, 64, 0], [0xB1, 123, 0]]
        sink.close()  # idempotent
        assert sink.error is None
    finally:
        inp.close_port()
        inp.delete()


@pytest.mark.jack
def test_connect_to_existing_port(jack_server):
    import rtmidi

    from rtpitch.sinks.midi_port import MidiPortSink

    inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="rtpitch-daw")
    inp.open_virtual_port("daw-in")
    try:
        with pytest.raises(MidiError) as info:
            MidiPortSink(port="no-such-port-xyz", api="jack")
        assert "not found" in str(info.value) and "rtpitch-daw:daw-in" in str(info.value)
        sink = MidiPortSink(port="DAW-IN", api="jack")
        assert sink.port_name == "rtpitch-daw:daw-in"
        time.sleep(0.1)
        sink.send([on(0.0, 21, 5)])
        assert _collect(inp, 1) == [[0x90, 21, 5]]
        sink.close()
        assert _collect(inp, 2) == [[0x80, 21, 0], [0xB0, 123, 0]]
    finally:
        inp.close_port()
        inp.delete()


# -- terminal view ------------------------------------------------------------------
def test_note_name():
    assert note_name(60) == "C4" and note_name(21) == "A0" and note_name(108) == "C8" and note_name(61) == "C#4"


def test_terminal_plain_lines_when_not_a_tty():
    out = io.StringIO()
    view = TerminalView(out)
    assert not view.enabled and view.print_notes
    view.update(events=[on(0.52, 60, 64)], level_peak=-6.0, level_rms=-20.0, overruns=0, audio_time_s=0.6)
    view.send([off(0.8, 60)])
    view.close()
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "   0.52 s  C4   on  v=64"
    assert lines[1] == "   0.80 s  C4   off"
    assert lines[2].startswith("rtpitch: 1 notes") and "0 overruns" in lines[2]


def test_terminal_forced_tty_renders_key_row():
    out = io.StringIO()
    view = TerminalView(out, enabled=True, latency_ms=52, refresh_hz=1000)
    assert not view.print_notes
    view.update(events=[on(0.1, 21), on(0.1, 60), on(0.1, 108)], level_peak=0.0, level_rms=-12.0,
                overruns=3, audio_time_s=1.0)
    text = out.getvalue()
    row = view.key_row()
    assert len(row) == 88 and row[0] == row[39] == row[87] == "█" and row[1] == "-" and row[2] == "·"
    assert row in text
    assert "CLIP" in text and "latency 52 ms" in text and "overruns 3" in text and "3.0 notes/s" in text
    assert "-12.0 rms" in text and "0:01.0" in text
    view.send([off(1.1, 60)])
    time.sleep(0.01)
    view.update(audio_time_s=1.2)
    assert "\x1b[2A" in out.getvalue()  # redrawn in place
    view.close()
    assert out.getvalue().rstrip().endswith("rtpitch: 3 notes in 0:01.2 of audio, 3 overruns")


def test_terminal_rate_limit():
    out = io.StringIO()
    view = TerminalView(out, enabled=True, refresh_hz=0.001)
    view.update(audio_time_s=0.1)
    first = out.getvalue()
    for i in range(100):
        view.update(audio_time_s=0.1 + i)
    assert out.getvalue() == first


# -- audio recording -------------------------------------------------------------------
def test_audio_recording_is_exact_and_fills_gaps_with_silence(tmp_path):
    import soundfile as sf

    from rtpitch.sinks.audio_file import AudioFileRecorder

    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, 300).astype(np.float32), rng.uniform(-1, 1, 200).astype(np.float32)
    rec = AudioFileRecorder(tmp_path / "take.wav", 48000)
    rec.write(0, a)
    rec.write(300 + 10_000, b)  # 10 000 samples lost to an overrun
    rec.close()
    rec.close()  # idempotent
    rec.write(10_500, b)  # after close: ignored
    x, sr = sf.read(tmp_path / "take.wav", dtype="float32")
    assert sr == 48000 and rec.error is None and rec.samples_written == x.shape[0] == 10_500
    np.testing.assert_array_equal(x, np.concatenate([a, np.zeros(10_000, np.float32), b]))


@pytest.mark.parametrize("name, message", [("take.flac", "use a .wav file name"),
                                           ("missing/take.wav", "No such file or directory")])
def test_audio_recording_refuses_what_it_cannot_write(tmp_path, name, message):
    from rtpitch.sinks.audio_file import AudioFileRecorder

    with pytest.raises(ConfigError, match=f"cannot record audio to .*{message}"):
        AudioFileRecorder(tmp_path / name, 48000)


def test_audio_recording_on_a_full_disk_is_kept_not_raised(tmp_path, monkeypatch):
    """A real full disk (/dev/full): the write fails, ``error`` says why, nothing raises."""
    from rtpitch.sinks import audio_file

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    monkeypatch.setattr(audio_file, "HEADER_EVERY_S", 0.5)
    (tmp_path / "take.wav").symlink_to("/dev/full")
    rec = audio_file.AudioFileRecorder(tmp_path / "take.wav", 48000)
    for k in range(200):
        rec.write(256 * k, np.zeros(256, np.float32))
    rec.close()
    assert rec.error is not None
    assert re.fullmatch(rf"audio recording {re.escape(str(tmp_path / 'take.wav'))} stopped at \d\.\d s: "
                        "No space left on device", rec.error), rec.error
    assert rec.samples_written <= 48000 // 2 + 256


def test_wav_header_is_read_back():
    import soundfile as sf

    from rtpitch.sinks.audio_file import wav_header

    info = sf.info(io.BytesIO(wav_header(44100, 3) + bytes(12)))
    assert (info.format, info.subtype, info.samplerate, info.channels, info.frames) == ("WAV", "FLOAT", 44100, 1, 3)
