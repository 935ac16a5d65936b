"""FrameWindow and Engine with a fake backend: streaming invariants, timing, gaps."""

import numpy as np
import pytest

from fakes import SMALL_FE, LoudnessBackend, make_spec, tone_bursts
from rtpitch.engine import Engine
from rtpitch.window import FrameWindow

def run(engine, x, blocks):
    events, i = [], 0
    for n in blocks:
        events += engine.feed(x[i : i + n])
        i += n
    return events + engine.finish()


def test_window_predicts_every_frame_once_for_any_chunking():
    rng = np.random.default_rng(1)
    frames = rng.normal(size=(57, 4)).astype(np.float32)
    for lookahead in (0, 3, 9):
        w = FrameWindow(n_mels=4, window_frames=20, lookahead_frames=lookahead, pad_value=-9.0)
        got, i = [], 0
        while i < 57:
            k = int(rng.integers(0, 6))
            first, mel = w.push(frames[i : i + k])
            i += k
            if mel is not None:
                got.append((first, mel[0].shape[0] - 19, mel[0]))
        first, mel = w.flush()
        if mel is not None:
            got.append((first, mel[0].shape[0] - 19, mel[0]))
        # frames 0..56 predicted once each, in order
        idx = np.concatenate([np.arange(f, f + n) for f, n, _ in got])
        assert np.array_equal(idx, np.arange(57))
        # window for frame j holds frames j-ctx .. j+lookahead (pad outside)
        ctx = 19 - lookahead
        padded = np.concatenate([np.full((ctx, 4), -9.0, np.float32), frames, np.full((lookahead, 4), -9.0, np.float32)])
        for f, n, mel in got:
            assert np.array_equal(mel, padded[f : f + n + 19])


def test_engine_events_have_audio_time_and_block_size_does_not_matter():
    spec = make_spec()
    x = tone_bursts()
    ref = run(Engine(spec, LoudnessBackend(spec), source_rate=16000), x, [x.size])
    assert [(e.pitch, e.on) for e in ref] == [(60, True), (60, False)]
    on, off = ref[0].time_s, ref[1].time_s
    assert abs(on - 0.30) <= 0.02 and abs(off - 0.80) <= 0.03
    rng = np.random.default_rng(2)
    blocks = []
    while sum(blocks) < x.size:
        blocks.append(int(rng.integers(1, 700)))
    assert run(Engine(spec, LoudnessBackend(spec), source_rate=16000), x, blocks) == ref


def test_engine_resamples_other_rates_with_the_same_timing():
    spec = make_spec()
    x16 = tone_bursts()
    import soxr

    x48 = soxr.resample(x16, 16000, 48000).astype(np.float32)
    ev = run(Engine(spec, LoudnessBackend(spec), source_rate=48000), x48, [256] * (x48.size // 256 + 1))
    assert [(e.pitch, e.on) for e in ev] == [(60, True), (60, False)]
    assert abs(ev[0].time_s - 0.30) <= 0.02


def test_skip_closes_notes_and_keeps_the_clock():
    spec = make_spec()
    x = tone_bursts()
    engine = Engine(spec, LoudnessBackend(spec), source_rate=16000)
    events = engine.feed(x[: int(0.6 * 16000)])  # the tone is sounding at 0.6 s
    events += engine.skip(16000)                  # one second lost
    closed = [e for e in events if not e.on]
    # the audio before the gap is finished first: the note ends at the gap, on the frame grid
    assert len(closed) == 1 and 0.6 <= closed[0].time_s <= 0.6 + spec.frontend.hop_s + 1e-9
    # the same tone again after the gap: its note-on is stamped 1 s later than in the stream
    events = engine.feed(x) + engine.finish()
    ons = [e for e in events if e.on]
    assert len(ons) == 1
    assert ons[0].time_s == pytest.approx(0.6 + 1.0 + 0.30, abs=0.02)
    assert engine.dropped_samples == 16000


def test_finish_with_silence_after_hears_the_end_as_a_live_stream_does():
    """A recording cut off while it sounds: ``finish(silence_after=True)``
    predicts every frame whose window holds the sound, exactly as a stream that
    goes on in silence does; plain ``finish()`` stops at the last frame whose
    window ends by the last sample."""
    spec = make_spec()
    t = np.arange(int(0.7 * 16000)) / 16000
    x = (0.5 * np.sin(2 * np.pi * 262 * t)).astype(np.float32)  # still sounding at its end

    def frames(audio, **finish):
        acts = []
        engine = Engine(spec, LoudnessBackend(spec), source_rate=16000, on_activations=acts.append)
        events = engine.feed(audio) + engine.finish(**finish)
        return np.concatenate([a.frame for a in acts]), events

    heard, events = frames(x, silence_after=True)
    live, _ = frames(np.concatenate([x, np.zeros(16000, np.float32)]))
    plain, _ = frames(x)
    n_window_holds_sound = (x.size + SMALL_FE.n_fft - SMALL_FE.fall) // SMALL_FE.hop_length + 1
    assert heard.shape[0] == n_window_holds_sound > plain.shape[0]
    np.testing.assert_array_equal(heard, live[: heard.shape[0]])
    assert [(e.pitch, e.on) for e in events] == [(60, True), (60, False)]
