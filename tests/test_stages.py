"""Every stage of the engine keeps the Stage protocol: the output for a whole
stream equals the concatenated output for random block sizes, positions run on
without gaps, side data (the noise floor) travels with its frames, and
``reset()`` restores the start state. The engine is the list of these stages
and its latency the sum of theirs."""

from __future__ import annotations

import numpy as np
import pytest
from fakes import SMALL_FE as FE, LevelBackend, make_spec

from rtpitch.decoder import DecoderSpec, DecoderStage
from rtpitch.engine import Engine
from rtpitch.events import N_KEYS, Activations, PedalEvent
from rtpitch.frontend import FrontendStage
from rtpitch.latency import latency_budget
from rtpitch.noise_floor import NoiseFloorStage
from rtpitch.predictor import PredictorStage
from rtpitch.resample import ResampleStage
from rtpitch.stage import Block, Stage

RNG = np.random.default_rng(7)


def _cuts(n: int, rng) -> list[int]:
    """Random block boundaries over n rows (some blocks empty)."""
    cuts = [0]
    while cuts[-1] < n:
        cuts.append(min(n, cuts[-1] + int(rng.integers(0, 700))))
    return cuts


def _blocks(x: np.ndarray, cuts, floor=None) -> list[Block]:
    return [Block(a, x[a:b], None if floor is None else floor[a:b]) for a, b in zip(cuts, cuts[1:])]


def _stream(stage, blocks) -> list:
    outs = [stage.process(b) for b in blocks]
    return [o for o in outs + [stage.flush()] if o is not None]


def _joined(outs) -> tuple:
    """Concatenated rows (and noise floors), checking that positions run on."""
    if isinstance(outs[0], Activations):
        pos = outs[0].first_frame
        for a in outs:
            assert a.first_frame == pos
            pos += a.n_frames
        cat = lambda name: np.concatenate([getattr(a, name) for a in outs])  # noqa: E731
        return cat("frame"), cat("onset"), cat("noise_floor"), None if outs[0].pedal is None else cat("pedal")
    pos = outs[0].position
    for b in outs:
        assert b.position == pos, (b.position, pos)
        pos = b.end
    rows = np.concatenate([b.samples.reshape(b.samples.shape[0], -1) for b in outs if b.samples.shape[0]])
    floors = [b.noise_floor for b in outs if b.noise_floor is not None and b.noise_floor.shape[0]]
    return rows, (np.concatenate(floors) if floors else None)


def _same(a, b):
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is y
        else:
            np.testing.assert_array_equal(x, y)


SPEC = make_spec(lookahead=3)
PEDAL_SPEC = make_spec(lookahead=3, pedal=True)


def _audio(n, rate):
    t = np.arange(n) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (t % 0.5 < 0.25) + 0.01 * RNG.standard_normal(n)).astype(np.float32)


def _frames(n):
    return RNG.normal(-5.0, 2.0, (n, FE.n_mels)).astype(np.float32)


CASES = {
    "resampler": (lambda: ResampleStage(44100, 16000), lambda: (_audio(20000, 44100), None)),
    "resampler (identity)": (lambda: ResampleStage(16000, 16000), lambda: (_audio(9000, 16000), None)),
    "frontend": (lambda: FrontendStage(FE), lambda: (_audio(9000, 16000), None)),
    "noise floor": (lambda: NoiseFloorStage(FE.hop_s), lambda: (_frames(400), None)),
    "predictor": (lambda: PredictorStage(LevelBackend(SPEC, level=-4.0), SPEC),
                  lambda: (_frames(300), RNG.normal(-3, 1, 300).astype(np.float32))),
    "predictor (pedal head)": (lambda: PredictorStage(LevelBackend(PEDAL_SPEC, level=-4.0, pedal_level=-1.0),
                                                      PEDAL_SPEC),
                               lambda: (_frames(300), RNG.normal(-3, 1, 300).astype(np.float32))),
}


@pytest.mark.parametrize("name", list(CASES))
def test_stage_whole_equals_blockwise_and_reset_restarts(name):
    make, data = CASES[name]
    x, floor = data()
    stage = make()
    assert isinstance(stage, Stage) and stage.latency_s >= 0 and stage.latency_label
    whole = _joined(_stream(stage, [Block(0, x, floor)]))
    for seed in range(3):
        stage.reset()  # the same stage object, restarted
        _same(_joined(_stream(stage, _blocks(x, _cuts(x.shape[0], np.random.default_rng(seed)), floor))), whole)
    fresh = make()
    _same(_joined(_stream(fresh, [Block(0, x, floor)])), whole)


def test_predictor_carries_each_frames_noise_floor():
    stage = PredictorStage(LevelBackend(SPEC, level=-4.0), SPEC)
    x = _frames(50)
    floor = np.arange(50, dtype=np.float32)
    outs = _stream(stage, _blocks(x, [0, 1, 2, 10, 33, 50], floor))
    np.testing.assert_array_equal(np.concatenate([a.noise_floor for a in outs]), floor)


@pytest.mark.parametrize("with_pedal", [False, True])
def test_decoder_stage_whole_equals_blockwise_and_reset(with_pedal):
    spec = DecoderSpec(onset_threshold=0.5, frame_threshold=0.5, off_threshold=0.3, min_duration_ms=20.0,
                       pedal_min_change_ms=30.0)
    n = 400
    frame = (RNG.random((n, N_KEYS)) > 0.97).astype(np.float32)
    frame = np.maximum(frame, np.roll(frame, 1, axis=0))
    onset = (RNG.random((n, N_KEYS)) > 0.99).astype(np.float32)
    pedal = RNG.random(n).astype(np.float32) if with_pedal else None
    cut = lambda a, b: None if pedal is None else pedal[a:b]  # noqa: E731
    stage = DecoderStage(spec, FE.hop_s)
    assert isinstance(stage, Stage) and stage.latency_s == 0.0
    whole = stage.process(Activations(0, frame, onset, pedal=pedal)) + stage.flush()
    assert whole
    assert any(isinstance(e, PedalEvent) for e in whole) == with_pedal
    for seed in range(3):
        stage.reset()
        cuts = _cuts(n, np.random.default_rng(seed))
        got = [e for a, b in zip(cuts, cuts[1:])
               for e in stage.process(Activations(a, frame[a:b], onset[a:b], pedal=cut(a, b)))]
        assert got + stage.flush() == whole


def test_engine_is_the_list_of_its_stages_and_its_latency_their_sum():
    engine = Engine(SPEC, LevelBackend(SPEC), source_rate=48000)
    assert [s.name for s in engine.stages] == ["resampler", "frontend", "noise floor", "predictor", "decoder"]
    assert all(isinstance(s, Stage) for s in engine.stages)
    terms = latency_budget(engine.stages, capture_block_s=0.0)
    assert [k for k, _ in terms][1:] == [s.latency_label for s in engine.stages]
    assert sum(ms for _, ms in terms) == pytest.approx(1e3 * engine.latency_s)
    assert engine.latency_s == pytest.approx(engine.stages[0].latency_s + FE.alignment_s + 3 * FE.hop_s)


def test_engine_keeps_audio_time_across_a_gap_without_restamping():
    """After a gap the stages restart and the blocks carry the new start: a tone
    after the gap is stamped at the audio time it has without the gap."""
    rate = 16000
    x = np.zeros(3 * rate, np.float32)
    t = np.arange(rate // 2) / rate
    x[2 * rate:2 * rate + rate // 2] = 0.5 * np.sin(2 * np.pi * 440 * t)
    gap = rate // 2 + 3 * FE.hop_length  # the frames after it fall on the same grid as without it

    def ons(engine, blocks):
        events = [e for b in blocks for e in engine.process(b)] + engine.finish()
        return [e for e in events if e.on]

    engine = Engine(SPEC, LevelBackend(SPEC, level=-4.0), source_rate=rate)
    gapped = ons(engine, [Block(0, x[:rate // 2]), Block(rate // 2 + gap, x[rate // 2 + gap:])])
    assert engine.dropped_samples == gap and engine.position == x.shape[0]
    whole = ons(Engine(SPEC, LevelBackend(SPEC, level=-4.0), source_rate=rate), [Block(0, x)])
    assert len(gapped) == len(whole) == 1
    assert gapped[0].time_s == pytest.approx(whole[0].time_s, abs=1e-9)
    assert gapped[0].frame == whole[0].frame - (rate // 2 + gap) // FE.hop_length  # counted from the restart
