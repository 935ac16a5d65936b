"""benchmarks/partial_stretch.py: the onset rise is largest at the stretch the partials have."""

import numpy as np
import pytest

from benchmarks.partial_stretch import SCALES, Rise, read_positions
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
