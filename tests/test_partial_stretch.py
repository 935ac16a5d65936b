"""benchmarks/partial_stretch.py: the onset rise is largest at the stretch the partials have."""

import numpy as np
import pytest

from benchmarks.partial_stretch import SCALES, KeyContrast, Rise, read_positions
from rtpitch.frontend import FrontendSpec

SPEC = FrontendSpec(sample_rate=16000, n_fft=2048, window_fall=176, hop_length=160, n_mels=229,
                    fmin=30.0, fmax=8000.0, log_offset=1e-4, htk=False)


@pytest.mark.parametrize("true_scale", [0.0, 1.0, 4.0])
def test_the_best_scale_is_the_one_the_partials_were_put_at(true_scale):
    """Onsets of keys 63-68 whose partials 4-15 light the bands at ``true_scale``'s
    stretch (the rest of the spectrum noise): that scale reads the largest rise."""
    rng = np.random.default_rng(0)
    pos, _ = read_positions(SPEC, true_scale)
    mel = rng.normal(0.0, 0.1, size=(800, SPEC.n_mels))
    frames = np.arange(10, 790, 20)  # 39 onsets: over the summary's minimum of 30
    keys = 42 + np.arange(len(frames)) % 6
    for t, k in zip(frames, keys):
        bands = np.rint(pos[k]).astype(int)
        mel[t:t + 8, bands] += 3.0
    rise = Rise(SPEC)
    rise.add(mel, frames, keys)
    (row,) = rise.summary()
    assert row["keys"] == [63, 68] and row["best_scale"] == true_scale, row
    assert set(row["rise_db_by_scale"]) == {str(s) for s in SCALES}


def test_key_contrast_is_positive_where_the_played_keys_partials_rise_and_zero_where_all_do():
    """Onsets of E4 (octave 3) light its own partials 4-15 only: they read a rise over
    its neighbours'; onsets of A1 (octave 1) light every band: no contrast."""
    rng = np.random.default_rng(1)
    pos, _ = read_positions(SPEC, 1.0, np.arange(4, 16))
    mel = rng.normal(0.0, 0.1, size=(800, SPEC.n_mels))
    frames = np.arange(10, 790, 20)
    keys = np.where(np.arange(len(frames)) % 2 == 0, 43, 12)  # E4, A1
    for t, k in zip(frames, keys):
        if k == 43:
            mel[t:t + 8, np.rint(pos[k]).astype(int)] += 3.0
        else:
            mel[t:t + 8] += 3.0
    contrast = KeyContrast(SPEC)
    contrast.add(mel, frames, keys)
    got = {o: np.mean(v) for o, v in enumerate(contrast.values["4-15"]) if v}
    assert set(got) == {1, 3}
    assert got[3] > 5.0 and abs(got[1]) < 0.5, got
