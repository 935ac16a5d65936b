import time

import numpy as np
import pytest
import soundfile as sf

from rtpitch.errors import AudioFileError, ConfigError
from rtpitch.filesource import FileSource


def _drain(src, timeout_s=1.0):
    blocks = []
    while not src.finished:
        b = src.read(timeout_s)
        if b is not None:
            blocks.append(b)
    return blocks


@pytest.fixture
def stereo(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, size=(10_000, 2)).astype(np.float32)
    path = tmp_path / "st.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    return path, x


@pytest.mark.parametrize("channel", [None, 0, 1])
def test_fast_blocks_downmix_and_pick(stereo, channel):
    path, x = stereo
    src = FileSource(path, realtime=False, blocksize=1000, channel=channel)
    assert src.sample_rate == 16000 and not src.finished
    src.start()
    blocks = _drain(src)
    assert [b.position for b in blocks] == list(range(0, 10_000, 1000))
    y = np.concatenate([b.samples for b in blocks])
    want = x.mean(axis=1) if channel is None else x[:, channel]
    np.testing.assert_allclose(y, want, atol=1e-7)
    assert y.dtype == np.float32 and src.overrun_samples == 0
    assert src.read(0.01) is None


def test_short_last_block_and_flac(tmp_path):
    x = (np.sin(np.arange(2500) * 0.01) * 0.5).astype(np.float32)
    path = tmp_path / "m.flac"
    sf.write(path, x, 22050)
    src = FileSource(path, realtime=False, blocksize=1024)
    src.start()
    blocks = _drain(src)
    assert [len(b.samples) for b in blocks] == [1024, 1024, 452]
    np.testing.assert_allclose(np.concatenate([b.samples for b in blocks]), x, atol=1e-4)


def test_realtime_pacing(tmp_path):
    path = tmp_path / "rt.wav"
    sf.write(path, np.zeros(4800, np.float32), 16000)  # 0.3 s
    src = FileSource(path, realtime=True, blocksize=1600)  # 0.1 s blocks
    src.start()
    t0 = time.monotonic()
    assert src.read(0.01) is None  # first block not due until 0.1 s
    blocks = _drain(src)
    elapsed = time.monotonic() - t0
    assert len(blocks) == 3
    assert 0.28 < elapsed < 0.5


def test_nonfinite_replaced_and_counted(tmp_path):
    x = np.ones((8, 1), np.float32)
    x[2] = np.nan
    x[5] = -np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    src = FileSource(path, realtime=False, blocksize=4)
    src.start()
    y = np.concatenate([b.samples for b in _drain(src)])
    np.testing.assert_array_equal(y, [1, 1, 0, 1, 1, 0, 1, 1])
    assert src.nonfinite_samples == 2


def test_errors(tmp_path):
    with pytest.raises(AudioFileError, match="nope.wav: file not found"):
        FileSource(tmp_path / "nope.wav", realtime=False)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(AudioFileError, match="bad.wav: cannot read audio"):
        FileSource(bad, realtime=False)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 16000)
    with pytest.raises(AudioFileError, match="empty.wav: contains no audio"):
        FileSource(empty, realtime=False)
    slow = tmp_path / "slow.wav"
    sf.write(slow, np.zeros(100, np.float32), 4000)
    with pytest.raises(ConfigError, match="slow.wav: sample rate 4000 Hz outside"):
        FileSource(slow, realtime=False)
    with pytest.raises(ConfigError, match="channel 1 does not exist"):
        FileSource(_mono(tmp_path), realtime=False, channel=1)


def _mono(tmp_path):
    p = tmp_path / "mono.wav"
    sf.write(p, np.zeros(100, np.float32), 16000)
    return p
