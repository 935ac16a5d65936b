import numpy as np
import pytest

from rtpitch.errors import ConfigError
from rtpitch.resample import StreamResampler


def _stream(rs, x, rng):
    out = []
    i = 0
    while i < len(x):
        n = int(rng.integers(1, 700))
        out.append(rs.process(x[i:i + n]))
        i += n
    out.append(rs.flush())
    return np.concatenate(out)


@pytest.mark.parametrize("rates", [(48000, 16000), (44100, 16000), (22050, 16000)])
@pytest.mark.parametrize("quality", ["HQ", "MQ"])
def test_stream_equals_one_shot(rates, quality):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(20_000).astype(np.float32) * 0.1
    rs = StreamResampler(*rates, quality=quality)
    whole = np.concatenate([rs.process(x), rs.flush()])
    rs.reset()
    streamed = _stream(rs, x, rng)
    assert abs(len(whole) - len(x) * rates[1] / rates[0]) <= 1
    np.testing.assert_allclose(streamed, whole, atol=1e-6)
    assert 0 < rs.delay_s <= rs.max_delay_s < 0.1


def test_sine_frequency_preserved():
    sr_in, sr_out, f = 48000, 16000, 1000.0
    t = np.arange(sr_in) / sr_in
    x = (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)
    rs = StreamResampler(sr_in, sr_out)
    y = _stream(rs, x, np.random.default_rng(1))
    seg = y[2000:14000]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    k = np.argmax(spec)
    assert abs(k * sr_out / len(seg) - f) < 2.0
    assert abs(np.sqrt(np.mean(seg ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_identity_and_errors():
    rs = StreamResampler(16000, 16000)
    x = np.arange(5, dtype=np.float32)
    assert rs.process(x) is x and rs.delay_s == 0 and rs.flush().size == 0
    with pytest.raises(ConfigError):
        StreamResampler(0, 16000)
    with pytest.raises(ConfigError):
        StreamResampler(48000, 16000, quality="best")
