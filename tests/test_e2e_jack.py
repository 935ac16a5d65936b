"""End to end through a real JACK server: the ``rtpitch`` command as a user runs it.

``rtpitch listen --device system --midi-out --record take.mid`` runs as a
subprocess. A JACK client of this test plays a real piano recording (madmom's
``stereo_sample.wav``, 8 annotated notes) into rtpitch's PortAudio input ports,
and an rtmidi JACK input connected to ``rtpitch:rtpitch`` records what arrives.
After SIGINT the command must exit 0 and its MIDI file must hold the notes that
went out of the port; the notes must match the annotations in audio time.

Audio-time alignment: how an annotated onset is placed in rtpitch's clock (the
player's block table, rtpitch's ``capture clock`` line, JACK's frame clock) is
described in :mod:`benchmarks.jackutil`, which holds the player, the MIDI
monitor and the live-take machinery shared with ``benchmarks/latency.py``.
A take in which JACK lost cycles (a stalled machine; it is retaken, up to 3
tries) no longer has that clock: its annotated onsets are found, sample for
sample, in the audio rtpitch recorded (``LiveTake.heard_time``), and the checks
that need JACK's clock (latency on it, the file at the live take's phase) skip.

:func:`test_capture_origin_is_sample_zero` checks the mapping without a model:
a click played at a known frame into a :class:`~rtpitch.capture.DeviceSource`
must appear at exactly the predicted sample position.

Environment: ``RTPITCH_TEST_MODEL`` (default: the default model, ``stream``; a shipped model's name or
a .json path) and ``RTPITCH_SHARED_DATA`` (default ``<repo>/../shared/data``).
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from benchmarks.jackutil import (TICK_S, JackError, LiveTake, Player, connections, frame_clock_offset,
                                 load_signal, match_onsets, portaudio_inputs, rtmidi_has_jack, run_live_take)
from helpers import FIXTURE, MIN_MATCHED, MODEL, ONSET_TOL_S, needs_data, read_annotations, transcribe
from rtpitch.model import resolve_model_path

TRAILING_SILENCE_S = 1.5  # played after the recording, before SIGINT
STARTUP_TIMEOUT_S = 60.0  # interpreter + model load on a loaded 2-core machine
EXIT_TIMEOUT_S = 10.0

needs_model = pytest.mark.skipif(not resolve_model_path(MODEL).is_file(),
                                 reason=f"model {MODEL!r} absent ({resolve_model_path(MODEL)}); "
                                        "set RTPITCH_TEST_MODEL to a shipped model or a model JSON")


# -- helpers -------------------------------------------------------------------
@pytest.fixture(scope="module")
def live_take(jack_server, tmp_path_factory) -> LiveTake:
    import jack

    if not rtmidi_has_jack():
        pytest.skip("python-rtmidi built without JACK")
    probe = jack.Client("e2e-probe", no_start_server=True)
    sr = probe.samplerate
    probe.close()
    # A take during which JACK lost cycles (skipped the test's own Python player,
    # or rtpitch saw input overflows) heard other audio than was played, placed
    # less exactly in the recording's time. Such a take is retaken (up to 3
    # tries); the last one is checked as it is.
    for attempt in range(3):
        workdir = tmp_path_factory.mktemp("e2e")
        try:
            take = run_live_take(load_signal(FIXTURE, sr), workdir=workdir,
                                 rtpitch_args=["--model", MODEL, "--record-audio", str(workdir / "heard.wav")],
                                 tag="e2e", startup_timeout_s=STARTUP_TIMEOUT_S,
                                 trailing_silence_s=TRAILING_SILENCE_S, exit_timeout_s=EXIT_TIMEOUT_S)
        except JackError as err:
            pytest.fail(str(err))
        if take.returncode != 0 or not _lost_cycles(take):
            return take
        print(f"take {attempt}: JACK lost cycles (player skipped {take.skipped_frames()} frames, "
              f"{take.xruns} xruns); retaking")
    return take


def _lost_cycles(take: LiveTake) -> bool:
    """JACK lost cycles during the take (the player was skipped, or rtpitch saw
    input overflows): the audio rtpitch captured is then not the played one."""
    return bool(take.skipped_frames()) or "input overflows" in take.stderr


def _in_rt_time(take: LiveTake, notes) -> list[tuple[float, int]]:
    """(onset, pitch) in recording time -> (onset in rtpitch audio time, pitch)."""
    return [(take.rt_time(t), p) for t, p in notes]


def _annotations_in_rt_time(take: LiveTake) -> tuple[list[tuple[float, int]], int, str]:
    """The annotated (onset, pitch) in rtpitch's audio time, how many of them
    rtpitch did not hear, and how they were placed: through JACK's clock (module
    docstring) or, in a take in which JACK lost cycles (the clock then no longer
    says which played sample rtpitch got when), found in the audio rtpitch
    recorded (``LiveTake.heard_time``); an onset JACK lost is not heard."""
    notes = read_annotations()
    if not _lost_cycles(take):
        return _in_rt_time(take, notes), 0, "JACK's clock"
    import soundfile as sf

    heard, sr = sf.read(str(take.record_path.parent / "heard.wav"), dtype="float32")
    assert sr == take.sr and heard.ndim == 1
    played = load_signal(FIXTURE, take.sr)
    placed = [(take.heard_time(t, heard, played), p) for t, p in notes]
    ref = [(t, p) for t, p in placed if t is not None]
    return ref, len(notes) - len(ref), "the recorded audio (JACK lost cycles in every take)"


def _describe(notes) -> str:
    return ", ".join(f"{p}@{t:.3f}" for t, p in notes) or "none"


# -- tests ---------------------------------------------------------------------------
@pytest.mark.jack
@pytest.mark.shared
@pytest.mark.slow
@needs_data
@needs_model
def test_listen_through_jack(live_take):
    take = live_take
    print(f"\nlive take: {take.wall_s:.1f} s wall ({take.ready_s:.1f} s until rtpitch captured); "
          f"JACK xruns seen by the player: {take.xruns}")
    # the command ends cleanly on SIGINT
    assert take.returncode == 0, f"exit status {take.returncode}; stderr:\n{take.stderr}"
    assert "Traceback" not in take.stderr, take.stderr
    assert f"wrote {take.record_path}" in take.stderr, take.stderr
    m = re.search(r"overruns: (\d+) samples dropped", take.stderr)
    assert m is not None and int(m.group(1)) == 0, take.stderr

    # audio-time alignment (module docstring); a take in which JACK lost cycles
    # (every retake did: a stalled machine) is placed through the recorded audio
    skipped = take.skipped_frames()
    assert take.capture_frame is not None, f"no 'capture clock' line or no playback; stderr:\n{take.stderr}"
    # |residual| near period / 2 would make the snap ambiguous by one period (5 ms):
    # harmless against the 50 ms tolerance, so it is printed, not asserted
    assert take.start_frame > take.capture_frame  # the recording started after capture
    print(f"recording's sample 0 at rtpitch audio time {take.rt_time(0.0):.4f} s (capture origin "
          f"{take.snap_residual:+.1f} frames off the cycle grid; player cycles skipped: {skipped} frames)")

    # the port carried exactly what the file holds, every note-on has its note-off
    recorded = take.recorded_notes()
    port_ons = take.port_note_ons()
    assert [(p, v) for _, p, v in port_ons] == [(n[2], n[3]) for n in recorded], (
        f"port note-ons {[(p, v) for _, p, v in port_ons]} != recorded {[(n[2], n[3]) for n in recorded]}")
    sounding: dict[int, int] = {}
    n_offs = 0
    for _, (status, d1, d2) in take.port_messages:
        kind = status & 0xF0
        if kind == 0x90 and d2 > 0:
            assert d1 not in sounding, f"note-on {d1} while it sounds (no note-off first)"
            sounding[d1] = 1
        elif kind == 0x80 or (kind == 0x90 and d2 == 0):
            assert d1 in sounding, f"note-off {d1} without a note-on"
            del sounding[d1]
            n_offs += 1
    assert not sounding, f"note-ons without note-off: {sorted(sounding)}"
    assert n_offs == len(recorded)
    assert take.port_messages and take.port_messages[-1][1][:2] == [0xB0, 123], "no all-notes-off at exit"
    # --print-notes with --no-view: one stdout line per event
    assert sum(" on  v=" in line for line in take.stdout.splitlines()) == len(recorded), take.stdout
    assert sum(line.endswith(" off") for line in take.stdout.splitlines()) == len(recorded), take.stdout

    # the notes against the annotations, both in rtpitch's audio time
    ref, unheard, how = _annotations_in_rt_time(take)
    est = [(on, p) for on, _, p, _ in recorded]
    pairs = match_onsets(ref, est, ONSET_TOL_S)
    print(f"annotated: {_describe(ref)}\nlive:      {_describe(est)}   (rtpitch audio time, placed through {how})")
    print(f"matched {len(pairs)}/{len(ref)} ({unheard} not heard); onset errors (ms): "
          f"{[round(1000 * (est[j][0] - ref[i][0]), 1) for i, j in pairs]}")
    if _lost_cycles(take):
        print("JACK lost cycles: the latency on JACK's clock is not measured in this take")
        return
    # wall-clock latency: annotated onset played (JACK frame) -> note-on at the monitor (JACK frame)
    lat_ms = [round(1000 * (port_ons[j][0] - take.capture_frame - ref[i][0] * take.sr) / take.sr, 1)
              for i, j in pairs]
    print(f"onset -> note-on at the monitor port (ms, JACK clock): {lat_ms}")
    assert max(lat_ms, default=0.0) < 1000.0  # loose: a shared CI machine; the figures are printed above


# Issue 2's bar: >= 6 of the 8 annotated notes, live and from the file.


@pytest.mark.jack
@pytest.mark.shared
@pytest.mark.slow
@needs_data
@needs_model
def test_live_notes_match_annotations(live_take):
    take = live_take
    assert take.returncode == 0 and take.capture_frame is not None, "the live run failed (see test_listen_through_jack)"
    ref, unheard, how = _annotations_in_rt_time(take)
    est = [(on, p) for on, _, p, _ in take.recorded_notes()]
    pairs = match_onsets(ref, est, ONSET_TOL_S)
    # an onset JACK lost before rtpitch heard it is not asked for (the bar drops by one)
    if len(ref) < MIN_MATCHED:
        pytest.skip(f"JACK lost {unheard} of {len(ref) + unheard} annotated onsets in every take (machine stalled)")
    assert len(pairs) >= MIN_MATCHED - unheard, (
        f"only {len(pairs)} of {len(ref) + unheard} annotated notes found within {ONSET_TOL_S * 1000:.0f} ms "
        f"(model {MODEL}; placed through {how}, {unheard} not heard); annotated {_describe(ref)}; "
        f"got {_describe(est)}")


@pytest.mark.shared
@needs_data
@needs_model
def test_transcribe_notes_match_annotations(tmp_path):
    from rtpitch.sinks.midi_file import read_midi_notes

    out = tmp_path / "file.mid"
    res = transcribe(FIXTURE, out)
    assert res.returncode == 0, res.stderr
    ref = read_annotations()
    est = [(on, p) for on, _, p, _ in read_midi_notes(out)]
    pairs = match_onsets(ref, est, ONSET_TOL_S)
    assert len(pairs) >= MIN_MATCHED, (
        f"transcribe found only {len(pairs)} of {len(ref)} annotated notes within {ONSET_TOL_S * 1000:.0f} ms; "
        f"annotated {_describe(ref)}; got {_describe(est)}")


@pytest.mark.shared
@needs_data
@needs_model
def test_fixture_notes_found_at_every_frame_phase(tmp_path):
    """The live take starts at a random point of a hop (when JACK's cycle meets
    rtpitch's first frame), so the notes must be found at every sub-hop phase,
    not at the one a file happens to start at: the fixture at 48 kHz behind
    0 .. 1 hop of silence, in 12 steps, through the engine as ``transcribe`` runs it."""
    import soundfile as sf

    from rtpitch.backends import make_backend
    from rtpitch.model import load_model_spec
    from rtpitch.runner import transcribe_file

    sr = 48000
    spec = load_model_spec(MODEL)
    backend = make_backend("onnxruntime", spec, threads=1)
    hop = int(round(spec.frontend.hop_s * sr))
    signal, ref = load_signal(FIXTURE, sr), read_annotations()
    found = {}
    for lead in range(0, hop, hop // 12):
        path = tmp_path / f"lead{lead}.wav"
        sf.write(path, np.concatenate([np.zeros(lead, np.float32), signal]), sr, subtype="FLOAT")
        est = [(e.time_s - lead / sr, e.pitch) for e in transcribe_file(str(path), spec, backend).events if e.on]
        found[lead] = len(match_onsets(ref, est, ONSET_TOL_S))
    assert min(found.values()) >= MIN_MATCHED, (
        f"notes found of {len(ref)} (model {MODEL}) per lead-in samples at {sr} Hz: {found}; need {MIN_MATCHED}")


@pytest.mark.jack
@pytest.mark.shared
@pytest.mark.slow
@needs_data
@needs_model
def test_transcribe_matches_live(live_take, tmp_path):
    """``rtpitch transcribe`` (file path, 44.1 -> 16 kHz) gives the notes the live
    path (player 44.1 -> 48 kHz, rtpitch 48 -> 16 kHz) gave, but for borderline ones.

    The file is transcribed behind the lead-in that puts its frame grid at the
    live take's phase (the recording time of rtpitch's sample 0, modulo one
    hop), since the live grid starts at an arbitrary point of a hop. Even so,
    notes whose activations just reach a threshold come and go with the two
    resampling chains, and one such decision can move a note: seed-cnn gave
    57@1.88 s and 65@2.92 s from the file where the live take had 56@2.94 s and
    65@3.46 s, at the same phase, and stream a note at the recording's cut
    (43@4.49 s) in some live takes only. So the two sets of notes are not
    asserted equal; of the annotated notes, each path finds at
    most one the other does not, and every live note but two is in the file's
    transcription, within one hop (a threshold crossing one frame apart), one
    JACK period (placing the live take in the recording's time: the snap to
    the cycle grid, or a cycle rtpitch's callback missed; see the module
    docstring) and the MIDI files' 1/960 s tick on each side.
    (test_transcribe_of_what_live_heard_equals_live shows that on the audio it
    captured, the live path gives exactly what the file path gives.)
    """
    import soundfile as sf

    from rtpitch.model import load_model_spec
    from rtpitch.sinks.midi_file import read_midi_notes

    take = live_take
    if take.returncode != 0 or take.capture_frame is None:
        pytest.fail("the live run failed (see test_listen_through_jack)")
    if _lost_cycles(take):
        pytest.skip("JACK lost cycles in every take: the live input is not the file's audio at one phase "
                    "(test_recorded_audio_is_what_was_played_and_transcribes_to_the_take covers what it heard)")
    hop_s = load_model_spec(MODEL).frontend.hop_s
    audio, file_sr = sf.read(str(FIXTURE), dtype="int16", always_2d=True)
    lead = int(round((take.rt_time(0.0) % hop_s) * file_sr))
    wav = tmp_path / "phased.wav"
    sf.write(str(wav), np.concatenate([np.zeros((lead, audio.shape[1]), np.int16), audio]), file_sr,
             subtype="PCM_16")
    out = tmp_path / "file.mid"
    t0 = time.monotonic()
    res = transcribe(wav, out)
    print(f"\ntranscribe: {time.monotonic() - t0:.1f} s wall, lead-in {lead} samples at {file_sr} Hz")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    file_notes = [(on - lead / file_sr, p) for on, _, p, _ in read_midi_notes(out)]
    assert file_notes, "transcribe found no notes"

    ref = _in_rt_time(take, read_annotations())
    live = [(on, p) for on, _, p, _ in take.recorded_notes()]
    file_rt = _in_rt_time(take, file_notes)
    print(f"annotated:  {_describe(ref)}\nlive:       {_describe(live)}\n"
          f"file:       {_describe(file_rt)}   (rtpitch audio time)")
    live_found = {i for i, _ in match_onsets(ref, live, ONSET_TOL_S)}
    file_found = {i for i, _ in match_onsets(ref, file_rt, ONSET_TOL_S)}
    assert len(live_found - file_found) <= 1 and len(file_found - live_found) <= 1, (
        f"annotated notes found live only: {_describe([ref[i] for i in sorted(live_found - file_found)])}; "
        f"from the file only: {_describe([ref[i] for i in sorted(file_found - live_found)])}")
    tol = hop_s + take.period / take.sr + 2 * TICK_S
    pairs = match_onsets(live, file_rt, tol)
    print(f"onset differences (ms): {[round(1000 * (file_rt[j][0] - live[i][0]), 1) for i, j in pairs]}")
    assert len(pairs) >= len(live) - 2, (
        f"live notes missing from the file transcription (tolerance {tol * 1000:.1f} ms): "
        f"live {_describe(live)}; file {_describe(file_rt)}")


@pytest.mark.jack
@pytest.mark.shared
@pytest.mark.slow
@needs_data
@needs_model
def test_transcribe_of_what_live_heard_equals_live(live_take, tmp_path):
    """`rtpitch transcribe` of the audio the live path captured (the silence
    before the player started, the signal as the player played it at the
    server's rate, the silence after it) gives the live take's notes exactly: same pitches and
    velocities, onsets and offsets to the MIDI tick. The live path adds nothing
    of its own; what differs in test_transcribe_matches_live is its input."""
    import soundfile as sf

    from rtpitch.sinks.midi_file import read_midi_notes

    take = live_take
    if take.returncode != 0 or take.capture_frame is None:
        pytest.fail("the live run failed (see test_listen_through_jack)")
    if _lost_cycles(take):
        pytest.skip("JACK lost cycles during the take: the captured audio is not the played one")
    lead = take.start_frame - take.capture_frame  # frames rtpitch captured before the signal
    heard = np.concatenate([np.zeros(lead, np.float32), load_signal(FIXTURE, take.sr),
                            np.zeros(int(TRAILING_SILENCE_S * take.sr), np.float32)])
    wav = tmp_path / "heard.wav"
    sf.write(str(wav), heard, take.sr, subtype="FLOAT")
    out = tmp_path / "heard.mid"
    res = transcribe(wav, out)
    assert res.returncode == 0, res.stderr
    file_notes = read_midi_notes(out)
    live = take.recorded_notes()
    assert len(live) == len(file_notes), f"live {len(live)} notes, transcribe {len(file_notes)}"
    for a, b in zip(sorted(live, key=lambda n: (n[0], n[2])), sorted(file_notes, key=lambda n: (n[0], n[2]))):
        assert a[2:] == b[2:] and abs(a[0] - b[0]) <= TICK_S and abs(a[1] - b[1]) <= TICK_S, (
            f"live {a} != transcribe {b}")


@pytest.mark.jack
@pytest.mark.shared
@pytest.mark.slow
@needs_data
@needs_model
def test_recorded_audio_is_what_was_played_and_transcribes_to_the_take(live_take, tmp_path):
    """``--record-audio`` holds the audio the engine heard: the played signal,
    sample for sample, after the captured lead-in (when JACK lost no cycles),
    and ``rtpitch transcribe`` of it gives the live take's notes exactly,
    whatever JACK lost."""
    import soundfile as sf

    from rtpitch.sinks.midi_file import read_midi_notes

    take = live_take
    if take.returncode != 0 or take.capture_frame is None:
        pytest.fail("the live run failed (see test_listen_through_jack)")
    wav = take.record_path.parent / "heard.wav"
    assert f"wrote {wav} (" in take.stderr, take.stderr
    heard, sr = sf.read(str(wav), dtype="float32")
    assert sr == take.sr and heard.ndim == 1
    if not _lost_cycles(take):
        lead, played = take.start_frame - take.capture_frame, load_signal(FIXTURE, take.sr)
        assert np.array_equal(heard[:lead], np.zeros(lead, np.float32))
        np.testing.assert_array_equal(heard[lead:lead + played.shape[0]], played)
    out = tmp_path / "heard.mid"
    res = transcribe(wav, out)
    assert res.returncode == 0, res.stderr
    assert read_midi_notes(out) == take.recorded_notes()


def _click_alignment(click_at: int = 1000) -> tuple[int, int, float, int, int]:
    """Play a click ``click_at`` samples after a player's first JACK frame into a
    fresh ``DeviceSource``; return (sample where the source got it, sample that
    ``origin_monotonic`` mapped to JACK frames and snapped to the cycle grid
    predicts, estimate - snapped origin in frames, JACK period, JACK xruns seen
    by the player plus input overflows seen by the source)."""
    from rtpitch.capture import DeviceSource

    sig = np.zeros(click_at + 1, dtype=np.float32)
    sig[click_at] = 1.0
    player = Player("e2e-click", sig)
    sr, period = player.client.samplerate, player.client.blocksize
    player.client.activate()
    try:
        before = portaudio_inputs(player.client)
        src = DeviceSource("system", None, ring_seconds=2.0)
        src.start()
        try:
            blocks = []
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                b = src.read(0.05)
                if b is not None:
                    blocks.append(b)
            assert blocks and blocks[0].position == 0
            for port in sorted(portaudio_inputs(player.client) - before):
                for s in connections(player.client, port):
                    player.client.disconnect(s, port)
                player.client.connect(player.port, port)
            time.sleep(0.2)
            player.st.armed = True
            deadline = time.monotonic() + 0.6  # the click comes 21 ms after arming
            while time.monotonic() < deadline:
                b = src.read(0.05)
                if b is not None:
                    blocks.append(b)
            origin = src.origin_monotonic()  # as the runner does: at the end, before stop()
            offset = frame_clock_offset(player.client)
            lost = player.st.xruns + src.input_overflows
        finally:
            src.stop()
        assert origin is not None and origin <= time.monotonic()
        assert src.origin_monotonic() is None  # closed
    finally:
        player.close()
    x = np.concatenate([b.samples for b in blocks])
    assert [b.position for b in blocks] == list(np.cumsum([0] + [len(b.samples) for b in blocks[:-1]]))
    found = int(np.argmax(np.abs(x)))
    assert x[found] > 0.4  # the click (downmix of two identical channels)
    P = player.st.start_frame
    c_est = origin * sr + offset
    C = P + int(round((c_est - P) / period)) * period
    return found, P + click_at - C, c_est - C, period, lost


@pytest.mark.jack
def test_capture_origin_is_sample_zero(jack_server):
    """The alignment used above: ``DeviceSource.origin_monotonic`` mapped to JACK
    frames and snapped to the cycle grid is the frame of the source's audio time 0.
    A click played at a known JACK frame must appear at exactly that position.

    On a loaded machine JACK may skip the capture client for a cycle; the origin
    is then later than the true start by whole periods (documented in
    ``origin_monotonic``), so the click lands that many periods after the
    prediction. Such a try is retried (up to 6 tries); a try that is off by
    anything else fails at once, and one try must be exact. A try during which
    JACK reported xruns (a stalled machine: clients' cycles dropped, any
    offset possible) is not judged; if every try had them, the test skips."""
    judged = 0
    for attempt in range(6):
        found, predicted, residual, period, lost = _click_alignment()
        err = found - predicted
        print(f"\ntry {attempt}: click at sample {found}; predicted {predicted}; "
              f"C_est - C = {residual:+.1f} frames; JACK xruns and input overflows: {lost}")
        if err == 0:
            return
        if lost:
            continue
        judged += 1
        if abs(residual) >= period / 4:  # ambiguous snap: a neighbouring cycle is possible, plus skipped ones
            assert err >= -period and err % period == 0, f"origin off by {err} samples, not whole cycles"
        else:
            assert err >= 0 and err % period == 0, f"origin off by {err} samples, not whole skipped cycles"
    if judged == 0:
        pytest.skip("JACK reported xruns in every try (machine stalled): the origin cannot be checked")
    pytest.fail("no try aligned exactly")
