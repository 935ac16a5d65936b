import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpitch.errors import ConfigError
from rtpitch.resample import StreamResampler

OUT = 16000
IN_RATES = [48000, 44100, 96000, 8000, 22050, 192000]


def _whole(rs, x):
    return np.concatenate([rs.process(x), rs.flush()])


def _stream(rs, x, sizes):
    """Feed x in blocks of the given sizes (cycled), then flush."""
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        out.append(rs.process(x[i:i + n]))
        i, k = i + n, k + 1
    out.append(rs.flush())
    return np.concatenate(out)


def _noise(n, seed=0):
    return (0.3 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _tone(f, rate, seconds=1.0, amp=1.0):
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


def _amplitude_db(y, rate, edge_s=0.02):
    """Peak amplitude (dB re 1.0) of a steady tone, edges dropped."""
    e = int(edge_s * rate)
    return 20 * np.log10(np.sqrt(2 * np.mean(y[e:-e].astype(np.float64) ** 2)))


@pytest.mark.parametrize("in_rate", IN_RATES)
def test_stream_is_bit_identical_to_one_call(in_rate):
    x = _noise(20_000)
    whole = _whole(StreamResampler(in_rate, OUT), x)
    sizes = [int(n) for n in np.random.default_rng(in_rate).integers(0, 700, 200)]
    np.testing.assert_array_equal(_stream(StreamResampler(in_rate, OUT), x, sizes), whole)
    assert len(whole) == math.ceil(len(x) * OUT / in_rate)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(0, 400), min_size=1, max_size=20).filter(any),
       in_rate=st.sampled_from([44100, 48000, 22050, 8000]))
def test_any_block_sizes_give_the_same_output(sizes, in_rate):
    x = _noise(3000, seed=1)
    whole = _whole(StreamResampler(in_rate, OUT), x)
    np.testing.assert_array_equal(_stream(StreamResampler(in_rate, OUT), x, sizes), whole)


@pytest.mark.parametrize("in_rate", IN_RATES)
@pytest.mark.parametrize("k", [0, 1001, 4567])
def test_impulse_comes_out_at_its_input_time(in_rate, k):
    x = np.zeros(6000, dtype=np.float32)
    x[k] = 1.0
    y = _whole(StreamResampler(in_rate, OUT), x).astype(np.float64)
    t = k * OUT / in_rate  # input time in output samples
    assert abs(np.argmax(y) - t) <= 1
    if k:  # away from the start the symmetric kernel's centroid is exact
        j = np.arange(y.size)
        near = np.abs(j - t) < 200
        assert abs(np.sum(j[near] * y[near]) / np.sum(y[near]) - t) < 0.01


@pytest.mark.parametrize("in_rate", [48000, 44100, 8000, 22050])
def test_sine_keeps_amplitude_and_phase(in_rate):
    f, amp = 1000.0, 0.5
    y = _stream(StreamResampler(in_rate, OUT), _tone(f, in_rate, amp=amp), [256])
    ref = amp * np.sin(2 * np.pi * f * np.arange(y.size) / OUT)
    e = int(0.01 * OUT)
    assert np.max(np.abs(y[e:-e] - ref[e:-e])) < 1e-3
    assert abs(_amplitude_db(y, OUT) - 20 * np.log10(amp)) < 0.1


def test_matches_soxr_on_band_limited_noise():
    soxr = pytest.importorskip("soxr")
    x = soxr.resample(_noise(44100), 44100, 12000, quality="VHQ")
    x = soxr.resample(x, 12000, 44100, quality="VHQ").astype(np.float32)
    y = _whole(StreamResampler(44100, OUT), x)
    ref = soxr.resample(x, 44100, OUT, quality="VHQ")
    n = min(y.size, ref.size) - 200
    err = y[200:n] - ref[200:n]
    assert np.sqrt(np.mean(err ** 2) / np.mean(ref[200:n] ** 2)) < 1e-3


@pytest.mark.parametrize("in_rate", [48000, 44100])
@pytest.mark.parametrize("f", [8100.0, 9000.0, 12000.0, 15500.0, 21000.0])
def test_tones_above_8k_do_not_alias(in_rate, f):
    y = _whole(StreamResampler(in_rate, OUT), _tone(f, in_rate))
    assert _amplitude_db(y, OUT) < -65


@pytest.mark.parametrize("in_rate", [48000, 44100, 96000])
@pytest.mark.parametrize("f", [100.0, 7000.0])
def test_passband_tones_keep_their_level(in_rate, f):
    y = _whole(StreamResampler(in_rate, OUT), _tone(f, in_rate))
    assert abs(_amplitude_db(y, OUT)) < 0.1


@pytest.mark.parametrize("in_rate", [48000, 44100, 8000, 22050, 11025])
def test_flush_length_is_ceil_of_the_signal(in_rate):
    for n in (0, 1, 2, 3, 100, 1001, 12345):
        rs = StreamResampler(in_rate, OUT)
        assert _whole(rs, _noise(n)).size == math.ceil(n * OUT / in_rate)


def test_reset_and_flush_start_a_new_signal():
    x = _noise(5000, seed=3)
    fresh = _whole(StreamResampler(44100, OUT), x)
    rs = StreamResampler(44100, OUT)
    rs.process(_noise(777, seed=4))
    rs.reset()
    np.testing.assert_array_equal(_whole(rs, x), fresh)
    np.testing.assert_array_equal(_whole(rs, x), fresh)  # flush ended the last one


@pytest.mark.parametrize("in_rate, block", [(48000, 256), (44100, 256), (44100, 64), (96000, 1024),
                                            (8000, 256), (22050, 100)])
def test_delay_is_the_measured_held_back_output(in_rate, block):
    rs = StreamResampler(in_rate, OUT, block=block)
    if in_rate in (48000, 44100) and block == 256:
        assert rs.delay_s <= 0.004
    x = np.zeros(block, dtype=np.float32)
    got, deficits = 0, []
    n_blocks = 3 * in_rate // block
    for k in range(1, n_blocks + 1):
        got += rs.process(x).size
        if k > n_blocks // 6:
            deficits.append((k * block * OUT / in_rate - got) / OUT)
    one = 1 / OUT  # one output sample
    assert abs(np.mean(deficits) - rs.delay_s) < one
    assert rs.max_delay_s - one < max(deficits) <= rs.max_delay_s + 1e-12
    assert 0 < rs.delay_s <= rs.max_delay_s


def test_identity_and_errors():
    rs = StreamResampler(16000, 16000)
    x = np.arange(5, dtype=np.float32)
    assert rs.process(x) is x and rs.delay_s == 0 and rs.flush().size == 0
    for rates in [(0, 16000), (48000, -1), (999, 16000), (48000, 384001), (500000, 16000),
                  (48001, 16000)]:  # 16000 branches: too big a table
        with pytest.raises(ConfigError):
            StreamResampler(*rates)
    with pytest.raises(ConfigError):
        StreamResampler(48000, 16000, block=0)
