"""MelFrontend: streaming equals whole-signal output bit for bit, reset() restores
the start state, and the features match librosa within a stated tolerance."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpitch.errors import ConfigError
from rtpitch.frontend import FrontendSpec, MelFrontend, analysis_window, logmel, mel_filterbank
from rtpitch.model import load_model_spec

SPEC = load_model_spec("seed-cnn").frontend  # 16 kHz, n_fft 2048, hop 320, 229 mels, 30-8000 Hz
SMALL = FrontendSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=40, fmin=50.0, fmax=4000.0)
# the low-latency shape: a long window that ends 3 ms (24 samples) after its peak
SKEW = FrontendSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=40, fmin=50.0, fmax=4000.0, window_fall=24)

# librosa parity: log(mel + log_offset) from float32 frames vs librosa's float32
# STFT; measured max |diff| <= 1e-6 log units on noise, tones and quiet noise (librosa 0.11)
LIBROSA_ATOL = 1e-4


def _signal(n: int, seed: int = 0, rate: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-2 * t) + 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


def _stream(fe: MelFrontend, x: np.ndarray, sizes) -> np.ndarray:
    out, i = [], 0
    for n in sizes:
        out.append(fe.process(x[i:i + n]))
        i += n
    out.append(fe.process(x[i:]))
    out.append(fe.flush())
    return np.concatenate(out)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 3000), sizes=st.lists(st.integers(0, 700), max_size=25), seed=st.integers(0, 5),
       skew=st.booleans())
def test_streaming_equals_whole_signal(n, sizes, seed, skew):
    """Any block sizes (empty blocks included) give bit-identical frames, for the
    centred and the skewed window."""
    spec = SKEW if skew else SMALL
    x = _signal(n, seed, spec.sample_rate)
    whole = logmel(x, spec)
    assert whole.shape == (1 + n // spec.hop_length, spec.n_mels)
    streamed = _stream(MelFrontend(spec), x, sizes)
    assert streamed.dtype == np.float32
    np.testing.assert_array_equal(streamed, whole)


def test_default_window_is_the_periodic_hann():
    n = SMALL.n_fft
    np.testing.assert_allclose(analysis_window(SMALL), 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n), atol=1e-15)


def test_skewed_window_shape_and_latency():
    w = analysis_window(SKEW)
    assert w.shape == (SKEW.n_fft,) and SKEW.rise == 232 and SKEW.fall == 24
    assert w[SKEW.rise] == 1.0 and w.argmax() == SKEW.rise
    assert np.all(np.diff(w[: SKEW.rise + 1]) > 0) and np.all(np.diff(w[SKEW.rise:]) < 0)
    assert SKEW.alignment_s == 24 / 8000 and MelFrontend(SKEW).latency_frames == 24 / 64


@pytest.mark.parametrize("spec", [SMALL, SKEW], ids=["centred", "skewed"])
def test_an_impulse_reaches_exactly_the_frames_whose_window_covers_it(spec):
    """Frame k covers samples [k*hop - rise, k*hop + fall): an impulse at t moves
    those frames off the silence floor and no others."""
    hop, n = spec.hop_length, 40 * spec.hop_length
    floor = np.float32(np.log(spec.log_offset))
    for t in (0, 5 * hop, 7 * hop + 13, n - 1):
        x = np.zeros(n, np.float32)
        x[t] = 1.0
        lit = np.flatnonzero((logmel(x, spec) > floor + 1e-3).any(axis=1))
        # the window is exactly 0 only at its first sample
        expect = [k for k in range(1 + n // hop) if k * hop - spec.rise < t < k * hop + spec.fall]
        assert lit.tolist() == expect, t


def test_skewed_frames_are_emitted_once_their_last_sample_is_in():
    fe = MelFrontend(SKEW)
    assert fe.process(np.zeros(SKEW.fall - 1, np.float32)).shape[0] == 0
    assert fe.process(np.zeros(1, np.float32)).shape[0] == 1          # frame 0
    assert fe.process(np.zeros(SKEW.hop_length, np.float32)).shape[0] == 1


@pytest.mark.parametrize("fall", [0, 129, -3])
def test_window_fall_out_of_range_is_a_config_error(fall):
    with pytest.raises(ConfigError, match="window_fall"):
        FrontendSpec(sample_rate=8000, n_fft=256, hop_length=64, n_mels=40, fmin=50.0, fmax=4000.0, window_fall=fall)


def test_streaming_equals_whole_signal_model_spec():
    x = _signal(16000 * 2 + 123)
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 5000, size=40)
    np.testing.assert_array_equal(_stream(MelFrontend(SPEC), x, sizes), logmel(x, SPEC))


def test_frames_are_emitted_as_soon_as_complete():
    """Frame k (centred at k*hop) comes out once sample k*hop + n_fft/2 is in."""
    fe = MelFrontend(SMALL)
    half, hop = SMALL.n_fft // 2, SMALL.hop_length
    assert fe.process(np.zeros(half - 1, np.float32)).shape[0] == 0
    assert fe.process(np.zeros(1, np.float32)).shape[0] == 1          # frame 0
    assert fe.process(np.zeros(hop - 1, np.float32)).shape[0] == 0
    assert fe.process(np.zeros(1, np.float32)).shape[0] == 1          # frame 1
    assert fe.frames_out == 2


def test_reset_restores_the_start_state():
    x, y = _signal(5000, 1, 8000), _signal(4000, 2, 8000)
    fe = MelFrontend(SMALL)
    fe.process(x)
    fe.reset()
    assert fe.frames_out == 0
    np.testing.assert_array_equal(_stream(fe, y, [333, 1000]), logmel(y, SMALL))
    # reset in the middle of a flush-less stream, too
    fe.process(x[:777])
    fe.reset()
    np.testing.assert_array_equal(np.concatenate([fe.process(y), fe.flush()]), logmel(y, SMALL))


def test_silence_is_the_log_offset():
    out = logmel(np.zeros(4000, np.float32), SPEC)
    np.testing.assert_allclose(out, np.log(SPEC.log_offset), rtol=0, atol=1e-6)


def test_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    for spec in (SPEC, SMALL):
        ref = librosa.filters.mel(sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin,
                                  fmax=spec.fmax, htk=spec.htk, norm="slaney")
        np.testing.assert_allclose(mel_filterbank(spec), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["noise", "tones", "quiet"])
def test_logmel_matches_librosa(kind):
    """``logmel`` = log(librosa mel spectrogram + log_offset) with center=True,
    pad_mode='constant', power=1 (magnitude), Slaney mel filters, Hann window;
    max |difference| <= 1e-4 in log units."""
    librosa = pytest.importorskip("librosa")
    rate, n = SPEC.sample_rate, SPEC.sample_rate * 2 + 777
    rng = np.random.default_rng(7)
    t = np.arange(n) / rate
    if kind == "noise":
        x = 0.3 * rng.standard_normal(n)
    elif kind == "tones":
        x = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (55.0, 261.6, 1760.0, 4186.0))
    else:
        x = 1e-3 * rng.standard_normal(n)
    x = x.astype(np.float32)
    mel = librosa.feature.melspectrogram(
        y=x, sr=rate, n_fft=SPEC.n_fft, hop_length=SPEC.hop_length, window="hann", center=True,
        pad_mode="constant", power=1.0, n_mels=SPEC.n_mels, fmin=SPEC.fmin, fmax=SPEC.fmax, htk=SPEC.htk,
        norm="slaney")
    ref = np.log(mel + SPEC.log_offset).T
    got = logmel(x, SPEC)
    assert got.shape == ref.shape
    err = float(np.max(np.abs(got - ref)))
    assert err <= LIBROSA_ATOL, f"max |logmel - librosa| = {err:.2e} log units"
