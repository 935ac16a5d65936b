"""train/augment.py: the background noise's level is drawn in the range asked for, and nothing else moves."""

import numpy as np


def _tone(sr=16000):
    """0.3 s of A3, then 2.7 s of silence, in which the room's tail dies away (rt60 <= 1 s)."""
    t = np.arange(int(sr * 3.0)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (t < 0.3)).astype(np.float32)


def test_noise_snr_range_sets_only_the_noise_level():
    from train.augment import microphone_in_room

    x, sr = _tone(), 16000
    noisy = 0
    for seed in range(12):
        y0, p0 = microphone_in_room(x, sr, np.random.default_rng(seed), return_params=True)
        y1, p1 = microphone_in_room(x, sr, np.random.default_rng(seed), return_params=True, noise_snr_db=(70, 75))
        assert p0.keys() == p1.keys()
        assert {k: v for k, v in p0.items() if k != "noise"} == {k: v for k, v in p1.items() if k != "noise"}
        if "noise" in p0:
            noisy += 1
            assert 25 <= p0["noise"]["snr_db"] <= 60 and 70 <= p1["noise"]["snr_db"] <= 75
            assert p0["noise"]["color"] == p1["noise"]["color"]
            # in the last half second, (nearly) only noise: under the peak by about the asked level
            floor = [20 * np.log10(np.std(y[-8000:]) / np.abs(y).max()) for y in (y0, y1)]
            assert floor[1] < floor[0] - 5
        else:
            assert np.array_equal(y0, y1)
    assert noisy >= 4
