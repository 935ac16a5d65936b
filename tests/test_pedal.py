"""The sustain pedal: a model's pedal head -> PedalEvents -> MIDI CC64 on the port
and in the file, lifted at every end; a model without one changes nothing."""

from __future__ import annotations

import dataclasses
import io
import threading
import types

import numpy as np
import pytest

from fakes import A4, ArraySource, LevelBackend, ListSink, check_note_invariants, make_spec, tone
from rtpitch.decoder import DecoderSpec, DecoderStage, PedalDecoder
from rtpitch.engine import Engine
from rtpitch.errors import ConfigError
from rtpitch.events import N_KEYS, Activations, NoteEvent, PedalEvent
from rtpitch.runner import run_stream
from rtpitch.sinks.midi_file import TICKS_PER_S, MidiFileSink, midi_file_bytes, read_midi_notes
from rtpitch.sinks.terminal import TerminalView

HOP = 0.01
SPEC = DecoderSpec(pedal_on_threshold=0.5, pedal_off_threshold=0.3, pedal_min_change_ms=0.0)
SR = 16000
PEDAL_SPEC = make_spec(lookahead=3, pedal=True)
NOTE_SPEC = make_spec(lookahead=3)


def _acts(pedal, first=0, start_s=0.0):
    n = len(pedal)
    z = np.zeros((n, N_KEYS), np.float32)
    return Activations(first, z, z, start_s=start_s, pedal=np.asarray(pedal, np.float32))


def _changes(events):
    return [(e.frame, e.down) for e in events]


# -- the decoder --------------------------------------------------------------------
def test_hysteresis_down_at_on_threshold_up_below_off_threshold():
    dec = PedalDecoder(SPEC, HOP)
    ev = dec.process(_acts([0.0, 0.49, 0.5, 0.4, 0.3, 0.29, 0.45, 0.9, 0.1]))
    assert _changes(ev) == [(2, True), (5, False), (7, True), (8, False)]
    assert not dec.down


def test_stamps_half_a_hop_before_the_frame_and_never_before_the_start():
    dec = PedalDecoder(SPEC, HOP)
    ev = dec.process(_acts([1.0, 1.0, 0.0, 1.0], start_s=2.0))
    assert [e.time_s for e in ev] == pytest.approx([2.0, 2.0 + 1.5 * HOP, 2.0 + 2.5 * HOP])
    assert dec.close() == [PedalEvent(2.0 + 4 * HOP, False, 4)]  # the frame after the last one
    assert dec.close() == []


def test_close_at_a_later_time_and_only_when_down():
    dec = PedalDecoder(SPEC, HOP)
    assert dec.process(_acts([0.0, 0.0])) == [] and dec.close(5.0) == []
    dec.process(_acts([0.8], first=2))
    assert dec.close(0.01) == [PedalEvent(3 * HOP, False, 3)]  # never before the next frame
    dec.process(_acts([0.8], first=3))
    assert dec.close(1.0) == [PedalEvent(1.0, False, 100)]


def test_minimum_time_between_changes():
    """A dip inside pedal_min_change_ms is ignored; a change due inside it that
    still holds when it has passed happens then."""
    spec = dataclasses.replace(SPEC, pedal_min_change_ms=50.0)  # 5 frames
    dec = PedalDecoder(spec, HOP)
    p = [0.9, 0.9, 0.1, 0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.9]
    #    ^down      ^dip ignored           ^up due at 7, ok (7-0 >= 5)      ^ 13-7 >= 5: down
    assert _changes(dec.process(_acts(p))) == [(0, True), (7, False), (13, True)]
    dec.reset()
    assert _changes(dec.process(_acts([0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]))) == [(0, True), (5, False)]


def test_whole_equals_chunked_and_reset_restarts():
    rng = np.random.default_rng(3)
    p = np.clip(np.cumsum(rng.normal(0, 0.15, 600)) % 1.0, 0, 1).astype(np.float32)
    spec = dataclasses.replace(SPEC, pedal_min_change_ms=30.0)
    dec = PedalDecoder(spec, HOP)
    whole = dec.process(_acts(p)) + dec.close()
    assert len(whole) > 10
    for seed in range(3):
        dec.reset()
        cuts = np.unique(np.r_[0, np.sort(np.random.default_rng(seed).integers(0, 600, 20)), 600])
        got = [e for a, b in zip(cuts, cuts[1:]) for e in dec.process(_acts(p[a:b], first=int(a)))]
        assert got + dec.close() == whole
    assert all(a.down != b.down for a, b in zip(whole, whole[1:])) and whole[0].down and not whole[-1].down


def test_no_pedal_row_no_pedal_events():
    stage = DecoderStage(SPEC, HOP)
    z = np.zeros((5, N_KEYS), np.float32)
    assert stage.process(Activations(0, z, z)) == [] and stage.flush() == []
    with pytest.raises(ConfigError, match="pedal must be"):
        stage.process(Activations(0, z, z, pedal=np.zeros(4, np.float32)))


def test_pedal_does_not_change_the_notes_and_comes_after_offs_of_its_time():
    """Same notes with and without a pedal row; a pedal change stamped at the
    time of note-offs comes after them, before the ons of its frame."""
    n = 40
    frame, onset = np.zeros((n, N_KEYS), np.float32), np.zeros((n, N_KEYS), np.float32)
    frame[5:20, 39] = 1.0
    onset[5, 39] = 1.0
    frame[20:30, 40] = 1.0
    onset[20, 40] = 1.0
    pedal = np.zeros(n, np.float32)
    pedal[20:35] = 1.0  # down at the frame where key 39 is released and key 40 struck
    spec = DecoderSpec(min_duration_ms=0.0)
    plain = DecoderStage(spec, HOP)
    notes = plain.process(Activations(0, frame, onset)) + plain.flush()
    stage = DecoderStage(spec, HOP)
    both = stage.process(Activations(0, frame, onset, pedal=pedal)) + stage.flush()
    assert [e for e in both if isinstance(e, NoteEvent)] == notes
    at20 = [e for e in both if e.frame == 20]
    assert [(type(e).__name__, getattr(e, "on", None)) for e in at20] == \
        [("NoteEvent", False), ("PedalEvent", None), ("NoteEvent", True)]
    assert check_note_invariants(both) == 2


@pytest.mark.parametrize("bad, match", [
    ({"pedal_on_threshold": 1.5}, "pedal_on_threshold must be in 0..1"),
    ({"pedal_off_threshold": -0.1}, "pedal_off_threshold must be in 0..1"),
    ({"pedal_on_threshold": 0.3, "pedal_off_threshold": 0.6}, "pedal_off_threshold .* must be <="),
    ({"pedal_min_change_ms": -5.0}, "pedal_min_change_ms must be >= 0"),
    ({"pedal_threshold": 0.5}, "unknown setting"),
])
def test_bad_pedal_settings_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        DecoderSpec.from_dict(bad)
    assert DecoderSpec.from_dict({"pedal_on_threshold": 0.6, "pedal_off_threshold": 0.6}).pedal_on_threshold == 0.6


# -- the engine and the run loop ------------------------------------------------------
SPANS = [(0.3, 0.8), (1.2, 1.6)]


def _events(spec, backend, x, blocks=(257,)):
    engine = Engine(spec, backend, source_rate=SR)
    out, pos = [], 0
    while pos < x.shape[0]:
        for b in blocks:
            out += engine.feed(x[pos:pos + b])
            pos += b
    return out + engine.finish(silence_after=True)


def test_engine_gives_pedal_events_and_the_same_notes_as_without():
    x = tone(SR, 2.2, SPANS)
    with_pedal = _events(PEDAL_SPEC, LevelBackend(PEDAL_SPEC, pedal_level=-4.0), x)
    pedal = [e for e in with_pedal if isinstance(e, PedalEvent)]
    assert [e.down for e in pedal] == [True, False, True, False]
    hop = PEDAL_SPEC.frontend.hop_s
    for e, t in zip(pedal, [t for span in SPANS for t in span]):
        assert abs(e.time_s - t) <= 2 * hop, (e, t)
    assert check_note_invariants(with_pedal) == 2
    without = _events(NOTE_SPEC, LevelBackend(NOTE_SPEC), x)
    assert not any(isinstance(e, PedalEvent) for e in without)
    assert [e for e in with_pedal if isinstance(e, NoteEvent)] == without
    # any cut into blocks gives the same events
    assert _events(PEDAL_SPEC, LevelBackend(PEDAL_SPEC, pedal_level=-4.0), x, blocks=(1, 700, 33)) == with_pedal


def _run(spec, source, sinks, **kw):
    engine = Engine(spec, LevelBackend(spec, **kw), source_rate=source.sample_rate)
    return run_stream(source, engine, sinks, stop=threading.Event()), engine


def _midi_messages(path):
    import mido

    t, out = 0.0, []
    for msg in mido.MidiFile(str(path)):
        t += msg.time
        if msg.type in ("note_on", "note_off", "control_change"):
            out.append((t, msg))
    return out


def test_midi_file_has_cc64_in_time_order_with_the_notes(tmp_path):
    """``transcribe -o`` and ``listen --record``: CC64 127/0 on the notes'
    channel; the archive's bytes (notes + pedal of the summary) are the same."""
    x = tone(SR, 2.2, SPANS)
    record = MidiFileSink(tmp_path / "take.mid", channel=3)
    sink = ListSink()
    summary, _ = _run(PEDAL_SPEC, ArraySource(x, SR, blocksize=512), [record, sink], pedal_level=-4.0)
    assert summary.ok and summary.notes == 2
    assert all(isinstance(e, NoteEvent) for e in summary.events)
    assert [e.down for e in summary.pedal_events] == [True, False, True, False]
    check_note_invariants(sink.events)
    msgs = _midi_messages(tmp_path / "take.mid")
    cc = [(t, m) for t, m in msgs if m.type == "control_change"]
    assert [(m.control, m.value, m.channel) for _, m in cc] == [(64, 127, 2), (64, 0, 2)] * 2
    for (t, _), e in zip(cc, summary.pedal_events):
        assert abs(t - e.time_s) <= 1 / TICKS_PER_S
    kinds = [("cc" if m.type == "control_change" else m.type) for _, m in msgs]
    want = ["cc" if isinstance(e, PedalEvent) else ("note_on" if e.on else "note_off") for e in sink.events]
    assert kinds == want  # the events' order, pedal between the notes
    assert len(read_midi_notes(tmp_path / "take.mid")) == 2
    assert midi_file_bytes(summary.events + summary.pedal_events, channel=3) == (tmp_path / "take.mid").read_bytes()


def test_model_without_pedal_head_writes_no_cc(tmp_path):
    x = tone(SR, 2.2, SPANS)
    record = MidiFileSink(tmp_path / "take.mid")
    summary, _ = _run(NOTE_SPEC, ArraySource(x, SR, blocksize=512), [record])
    assert summary.notes == 2 and summary.pedal_events == []
    assert not [m for _, m in _midi_messages(tmp_path / "take.mid") if m.type == "control_change"]
    assert midi_file_bytes(summary.events) == (tmp_path / "take.mid").read_bytes()


def test_midi_file_autosave_lifts_a_pedal_that_is_down(tmp_path):
    path = tmp_path / "take.mid"
    sink = MidiFileSink(path, autosave_s=0.0)
    sink.send([PedalEvent(0.4, True, 40), NoteEvent(0.5, 60, 80, True, 50)])
    sink._saver.join()
    # the snapshot: note-off, then pedal up, one tick after the latest event
    msgs = [(round(t * TICKS_PER_S), m.type, getattr(m, "value", None)) for t, m in _midi_messages(path)]
    assert msgs == [(384, "control_change", 127), (480, "note_on", None), (481, "note_off", None),
                    (481, "control_change", 0)]
    sink.send([PedalEvent(0.6, False, 60)])
    sink._saver.join()
    sink.send([NoteEvent(0.8, 60, 0, False, 80)])
    sink._saver.join()
    sink.close()
    cc = [(round(t * TICKS_PER_S), m.value) for t, m in _midi_messages(path) if m.type == "control_change"]
    assert cc == [(384, 127), (576, 0)]  # pedal up already: no second CC64 0


def _last_is_pedal_up(events):
    check_note_invariants(events)
    last_pedal = [e for e in events if isinstance(e, PedalEvent)][-1]
    assert not last_pedal.down and events[-1] is last_pedal  # after the notes' offs
    return last_pedal


@pytest.mark.parametrize("end", ["finish", "lost", "engine fault", "stop"])
def test_a_pedal_down_at_the_end_goes_up(tmp_path, end):
    """The stream ends while the pedal is down (a held note): every way out
    lifts it after the note-offs, in the events and in the MIDI file."""
    x = tone(SR, 3.0, [(0.3, 3.0)])
    record = MidiFileSink(tmp_path / "take.mid")
    sink = ListSink()
    kw = {"pedal_level": -4.0}
    source = ArraySource(x, SR, blocksize=800)
    if end == "lost":
        source = ArraySource(x, SR, blocksize=800, lose_after=30)
    elif end == "engine fault":
        kw["fail_after"] = 40
    if end == "stop":
        stop = threading.Event()
        engine = Engine(PEDAL_SPEC, LevelBackend(PEDAL_SPEC, **kw), source_rate=SR)

        class StopAfter(ListSink):
            def send(self, events):
                super().send(events)
                if any(isinstance(e, PedalEvent) and e.down for e in events):
                    stop.set()

        sink = StopAfter()
        summary = run_stream(source, engine, [record, sink], stop=stop)
    else:
        summary, _ = _run(PEDAL_SPEC, source, [record, sink], **kw)
    assert (end in ("finish", "stop")) == summary.ok
    up = _last_is_pedal_up(sink.events)
    cc = [(t, m.value) for t, m in _midi_messages(tmp_path / "take.mid") if m.type == "control_change"]
    assert cc[-1][1] == 0 and abs(cc[-1][0] - up.time_s) <= 1 / TICKS_PER_S


def test_a_gap_lifts_the_pedal_at_the_gap():
    x = tone(SR, 3.0, [(0.3, 3.0)])
    engine = Engine(PEDAL_SPEC, LevelBackend(PEDAL_SPEC, pedal_level=-4.0), source_rate=SR)
    from rtpitch.stage import Block

    events = engine.process(Block(0, x[:SR])) + engine.process(Block(2 * SR, x[2 * SR:])) + engine.finish()
    pedal = [e for e in events if isinstance(e, PedalEvent)]
    assert [e.down for e in pedal] == [True, False, True, False]
    assert 1.0 <= pedal[1].time_s <= 1.0 + PEDAL_SPEC.frontend.hop_s + 1e-9  # as the notes: within a hop
    assert pedal[2].time_s >= 2.0
    check_note_invariants(events)


# -- the MIDI port (a stand-in rtmidi) and the terminal -------------------------------
class _FakeMidiOut:
    instances: list = []

    def __init__(self, api, name):
        self.sent = []
        _FakeMidiOut.instances.append(self)

    def open_virtual_port(self, name):
        self.port = name

    def send_message(self, msg):
        self.sent.append(list(msg))

    def close_port(self):
        pass

    def delete(self):
        pass


@pytest.fixture
def fake_rtmidi(monkeypatch):
    from rtpitch.sinks import midi_port

    fake = types.SimpleNamespace(API_UNSPECIFIED=0, API_UNIX_JACK=3, get_compiled_api=lambda: [3],
                                 MidiOut=_FakeMidiOut, RtMidiError=RuntimeError)
    monkeypatch.setattr(midi_port, "_import_rtmidi", lambda: fake)
    monkeypatch.setattr(midi_port, "_jack_server_socket", lambda: None)
    monkeypatch.setattr(midi_port, "JACK_DRAIN_S", 0.0)
    _FakeMidiOut.instances = []
    return midi_port.MidiPortSink


def test_midi_port_sends_cc64_and_lifts_the_pedal_on_close(fake_rtmidi):
    sink = fake_rtmidi("rtpitch", channel=2, api="jack")
    sink.send([PedalEvent(0.1, True, 10), NoteEvent(0.1, 60, 90, True, 10), PedalEvent(0.2, False, 20),
               PedalEvent(0.3, True, 30)])
    assert sink.pedal_down
    sink.close()
    assert _FakeMidiOut.instances[0].sent == [
        [0xB1, 64, 127], [0x91, 60, 90], [0xB1, 64, 0], [0xB1, 64, 127],
        [0x81, 60, 0], [0xB1, 64, 0], [0xB1, 123, 0],  # close: note-offs, pedal up, all notes off
    ]
    assert not sink.pedal_down and sink.error is None


def test_midi_port_close_sends_no_cc64_when_the_pedal_is_up(fake_rtmidi):
    sink = fake_rtmidi("rtpitch", api="jack")
    sink.send([NoteEvent(0.1, 60, 90, True, 10), PedalEvent(0.2, True, 20), PedalEvent(0.3, False, 30)])
    sink.close()
    assert _FakeMidiOut.instances[0].sent == [[0x90, 60, 90], [0xB0, 64, 127], [0xB0, 64, 0],
                                              [0x80, 60, 0], [0xB0, 123, 0]]  # pedal already up: no CC64 0


def test_terminal_shows_the_pedal():
    out = io.StringIO()
    view = TerminalView(out)
    assert "pedal" not in view.status_line()
    view.send([PedalEvent(0.605, True, 60), NoteEvent(0.61, A4, 64, True, 61)])
    assert "pedal down" in view.status_line() and view.n_notes == 1
    view.send([PedalEvent(0.9, False, 90)])
    assert "pedal up" in view.status_line()
    view.close()
    lines = out.getvalue().splitlines()
    assert lines[:3] == ["   0.60 s  pedal down", "   0.61 s  A4   on  v=64", "   0.90 s  pedal up"]
    assert "pedal up" in TerminalView(io.StringIO(), pedal=True).status_line()


def test_archive_and_transcribe_write_the_same_cc64(tmp_path, monkeypatch):
    """The archive path (``transcribe_one``: the summary's notes and pedal through
    ``midi_file_bytes``) gives the bytes ``rtpitch transcribe -o`` writes."""
    import soundfile as sf

    from rtpitch import archive
    from rtpitch.runner import transcribe_file

    wav = tmp_path / "take.wav"
    sf.write(wav, tone(SR, 2.2, SPANS), SR, subtype="FLOAT")
    backend = LevelBackend(PEDAL_SPEC, pedal_level=-4.0)
    monkeypatch.setattr(archive, "_loaded", lambda settings: (PEDAL_SPEC, backend))
    got = archive.transcribe_one(str(wav), archive.Settings())
    assert got.error is None and got.notes == 2
    record = MidiFileSink(tmp_path / "take.mid")
    transcribe_file(str(wav), PEDAL_SPEC, backend, sinks=[record])
    assert got.midi == (tmp_path / "take.mid").read_bytes()
    cc = [m for _, m in _midi_messages(tmp_path / "take.mid") if m.type == "control_change"]
    assert [(m.control, m.value) for m in cc] == [(64, 127), (64, 0)] * 2
