"""The noise floor stage, its alignment in the engine, and the decoder's noise-adaptive onset threshold."""

from __future__ import annotations

import dataclasses

import numpy as np

from rtpitch.decoder import NoteDecoder
from rtpitch.engine import Engine
from rtpitch.events import Activations
from rtpitch.frontend import MelFrontend
from rtpitch.model import DecoderSpec
from rtpitch.noise_floor import NoiseFloor
from fakes import LoudnessBackend, make_spec, tone_bursts

HOP = 0.02
SPEC = DecoderSpec(onset_threshold=0.5, frame_threshold=0.5, off_threshold=0.3, min_duration_ms=30.0,
                   restrike_gap_ms=60.0)


def _levels(values, n_mels=4):
    return np.repeat(np.asarray(values, np.float32)[:, None], n_mels, axis=1)


def test_floor_ignores_notes_shorter_than_its_window_and_follows_steady_noise():
    quiet, loud = -8.0, -1.0
    x = _levels([quiet] * 100 + [loud] * 50 + [quiet] * 100 + [loud] * 400)  # 1 s burst, then 8 s of noise
    floor = NoiseFloor(HOP, window_s=3.0).push(x)
    assert np.allclose(floor[:250], quiet, atol=1e-3)  # a 1 s burst never lifts a 3 s minimum
    assert floor[-1] > loud - 0.01  # steady noise does, once the window has passed
    assert np.all(np.diff(floor[250:]) >= -1e-6)


def test_floor_is_the_same_for_any_chunking():
    rng = np.random.default_rng(0)
    x = rng.normal(-5, 2, (700, 8)).astype(np.float32)
    whole = NoiseFloor(HOP).push(x)
    nf, parts, i = NoiseFloor(HOP), [], 0
    while i < len(x):
        n = int(rng.integers(0, 40))
        parts.append(nf.push(x[i : i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_engine_hands_each_frame_its_own_floor():
    spec = make_spec()
    x = tone_bursts()
    acts = []
    events = Engine(spec, LoudnessBackend(spec), source_rate=16000, on_activations=acts.append)
    for i in range(0, x.size, 333):
        events.feed(x[i : i + 333])
    events.finish()
    fe = MelFrontend(spec.frontend)
    mel = np.concatenate([fe.process(x), fe.flush()])
    expected = NoiseFloor(spec.frontend.hop_s).push(mel)
    got = np.concatenate([a.noise_floor for a in acts])
    assert [a.first_frame for a in acts] == list(np.cumsum([0] + [a.n_frames for a in acts])[:-1])
    np.testing.assert_array_equal(got, expected)


def _one_onset(height: float, floor: float):
    frame = np.zeros((30, 88), np.float32)
    onset = np.zeros((30, 88), np.float32)
    onset[5, 40] = height
    frame[5:15, 40] = 0.9
    return Activations(0, frame, onset, None, np.full(30, floor, np.float32))


def test_onset_threshold_rises_with_the_noise_floor():
    spec = dataclasses.replace(SPEC, onset_threshold=0.7, noise_floor_range=(-2.5, -1.5), noisy_onset_threshold=0.9)
    ons = lambda acts: sum(e.on for e in NoteDecoder(spec, HOP).process(acts))  # noqa: E731
    assert ons(_one_onset(0.8, floor=-6.0)) == 1  # quiet room: 0.7
    assert ons(_one_onset(0.8, floor=-1.0)) == 0  # loud noise: 0.9
    assert ons(_one_onset(0.8, floor=-2.25)) == 1  # a quarter of the way: 0.75
    assert ons(_one_onset(0.8, floor=-1.75)) == 0  # three quarters: 0.85
    assert ons(_one_onset(0.95, floor=-1.0)) == 1  # a played note still passes
    assert sum(e.on for e in NoteDecoder(SPEC, HOP).process(_one_onset(0.8, floor=-1.0))) == 1  # feature off


def _frame_rise(height: float, floor: float):
    """A note the onset head missed: only its frame activation rises, to ``height``."""
    frame = np.zeros((30, 88), np.float32)
    frame[5:15, 40] = height
    return Activations(0, frame, np.zeros_like(frame), None, np.full(30, floor, np.float32))


def test_frame_started_notes_rise_with_the_noise_floor_and_stop_at_its_top():
    spec = dataclasses.replace(SPEC, onset_threshold=0.7, frame_onset_threshold=0.6,
                               noise_floor_range=(-2.5, -1.5), noisy_onset_threshold=0.9)
    ons = lambda acts: sum(e.on for e in NoteDecoder(spec, HOP).process(acts))  # noqa: E731
    assert ons(_frame_rise(0.65, floor=-6.0)) == 1  # quiet room: 0.6
    assert ons(_frame_rise(0.65, floor=-2.0)) == 0  # half way: 0.8
    assert ons(_frame_rise(0.85, floor=-2.0)) == 1
    assert ons(_frame_rise(0.99, floor=-1.5)) == 0  # top of the range: off
    assert ons(_frame_rise(1.0, floor=-1.0)) == 0
    no_frame_onsets = dataclasses.replace(spec, frame_onset_threshold=None)
    assert sum(e.on for e in NoteDecoder(no_frame_onsets, HOP).process(_frame_rise(0.99, floor=-6.0))) == 0
