"""The harmonic stack's read-out matrix (train/harmonics.py): where each key's harmonics are read."""

import json

import numpy as np
import pytest

from helpers import run_python, stream_predictions
from rtpitch.frontend import FrontendSpec, mel_band_centres
from train.harmonics import HARMONICS, HARMONICS_16, HARMONICS_18, harmonic_matrix, inharmonicity, key_hz, partial_hz

SPEC = FrontendSpec(sample_rate=16000, n_fft=2048, window_fall=256, hop_length=160, n_mels=229,
                    fmin=30.0, fmax=8000.0, log_offset=1e-4, htk=False)


def test_keys_are_equal_tempered_from_a0_to_c8():
    hz = key_hz()
    assert hz.shape == (88,)
    assert hz[0] == pytest.approx(27.5) and hz[48] == pytest.approx(440.0) and hz[-1] == pytest.approx(4186.009, rel=1e-6)


def test_each_column_interpolates_two_neighbouring_bands_or_reads_nothing():
    m = harmonic_matrix(SPEC)
    assert m.shape == (229, 88 * len(HARMONICS)) and m.dtype == np.float32
    f = (key_hz()[:, None] * np.asarray(HARMONICS)[None, :]).ravel()
    inside = (f >= SPEC.fmin) & (f <= SPEC.fmax)
    np.testing.assert_allclose(m.sum(axis=0)[inside], 1.0, atol=1e-6)
    assert np.all(m[:, ~inside] == 0) and inside.sum() < f.size  # A0's half harmonic is below fmin
    assert np.all(m >= 0)
    for c in np.flatnonzero(inside):
        rows = np.flatnonzero(m[:, c])
        assert 1 <= len(rows) <= 2 and (len(rows) == 1 or rows[1] == rows[0] + 1)


def test_a4_fundamental_is_read_from_the_band_nearest_440_hz():
    m = harmonic_matrix(SPEC)
    a4 = 48 * len(HARMONICS) + HARMONICS.index(1)
    peak = int(np.argmax(m[:, a4]))
    centres = mel_band_centres(SPEC)
    assert abs(centres[peak] - 440.0) <= np.max(np.diff(centres)[max(peak - 1, 0):peak + 1])


def test_sixteen_harmonics_keep_the_eight_first_and_resolve_bass_keys_better():
    """stream-keys-h16's stack: the eight harmonics stream-keys reads come first in each
    key's columns (so a stream-keys run grows into it); A1 and A#1 read bands at least
    three apart at their 15th harmonic, where their 2nd and 3rd share a band or its neighbour."""
    m8, m16 = harmonic_matrix(SPEC), harmonic_matrix(SPEC, HARMONICS_16)
    assert HARMONICS_16[:len(HARMONICS)] == HARMONICS and len(HARMONICS_16) == 16
    np.testing.assert_array_equal(m16.reshape(229, 88, 16)[:, :, :8], m8.reshape(229, 88, 8))

    def band(key, h):  # the band a key's harmonic reads most
        return int(np.argmax(m16[:, key * 16 + HARMONICS_16.index(h)]))

    a1, a_sharp1 = 12, 13  # 55 Hz, 58.3 Hz
    assert band(a_sharp1, 2) - band(a1, 2) <= 1 and band(a_sharp1, 3) - band(a1, 3) <= 1
    assert band(a_sharp1, 15) - band(a1, 15) >= 3


def test_sub_harmonics_come_last_and_read_the_key_an_octave_and_a_fifth_or_two_octaves_below():
    """stream-keys-h18's stack: stream-keys-h16's sixteen columns first in each key's
    (a stream-keys-h16 run grows into it); its 1/3 column reads where the key 19
    semitones below reads its fundamental, its 1/4 column the key 24 below; keys whose
    sub-harmonic falls under fmin read nothing there."""
    m16, m18 = harmonic_matrix(SPEC, HARMONICS_16), harmonic_matrix(SPEC, HARMONICS_18)
    assert HARMONICS_18[:16] == HARMONICS_16 and len(HARMONICS_18) == 18
    np.testing.assert_array_equal(m18.reshape(229, 88, 18)[:, :, :16], m16.reshape(229, 88, 16))
    c6 = 63  # 1046.5 Hz; 19 and 24 keys below: F4 (349.2 Hz, 1046.5 / 3 = 348.8) and C4
    for h, below in ((1 / 3, 19), (1 / 4, 24)):
        col = m18[:, c6 * 18 + HARMONICS_18.index(h)]
        fundamental = m18[:, (c6 - below) * 18 + HARMONICS_18.index(1)]
        assert int(np.argmax(col)) == int(np.argmax(fundamental)), h
    assert not m18[:, 0 * 18 + 17].any()  # A0 / 4 = 6.9 Hz: under fmin


def cents(a, b):
    return 1200.0 * np.log2(a / b)


def test_inharmonicity_is_least_in_the_low_tenor_and_grows_a_hundredfold_to_the_top():
    b = inharmonicity()
    low = int(np.argmin(b))
    assert 12 <= low <= 30  # A1 .. D3: the wound strings' end
    assert 2e-4 < b[0] < 1e-3 and b[low] < 2e-4 and 1e-2 < b[-1] < 5e-2
    assert np.all(np.diff(b[low:]) > 0) and np.all(np.diff(b[:low + 1]) < 0)


def test_stretched_partials_lie_sharp_of_the_harmonics_by_what_a_piano_string_gives():
    """A4's 8th partial a third of a semitone sharp, C4's 15th half a semitone; the half
    harmonic (not a partial) where it was; each stretched column still two neighbouring
    bands summing to 1, read at or above the plain one."""
    exact, stretched = partial_hz(HARMONICS_16), partial_hz(HARMONICS_16, 1.0)
    a4, c4 = 48, 39
    assert 28 < cents(stretched[a4, HARMONICS_16.index(8)], exact[a4, HARMONICS_16.index(8)]) < 36
    assert 45 < cents(stretched[c4, HARMONICS_16.index(15)], exact[c4, HARMONICS_16.index(15)]) < 56
    np.testing.assert_array_equal(stretched[:, 0], exact[:, 0])
    assert np.all(stretched[:, 1:] > exact[:, 1:])
    plain, m = harmonic_matrix(SPEC, HARMONICS_16), harmonic_matrix(SPEC, HARMONICS_16, stretched=True)
    inside = (stretched >= SPEC.fmin).ravel() & (stretched <= SPEC.fmax).ravel()
    np.testing.assert_allclose(m.sum(axis=0)[inside], 1.0, atol=1e-6)
    assert np.all(m[:, ~inside] == 0)
    centre = np.arange(229) @ m  # the band read, fractional
    plain_centre = np.arange(229) @ plain
    both = inside & (exact.ravel() <= SPEC.fmax)
    assert np.all(centre[both] >= plain_centre[both] - 1e-6)
    assert (centre[both] - plain_centre[both]).max() > 2  # high partials of treble keys: bands apart


# -- a stream-hs / stream-keys(-pedal) run: train/export.py, then rtpitch's step graph ------------------------


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["stream-hs", "stream-keys", "stream-keys-pedal", "stream-keys-h16-kx",
                                  "stream-keys-h16-ih"])
def test_exported_harmonic_model_steps_as_keras_runs_the_stream(tmp_path, arch):
    """A random-weight run (tests/tiny_run.py) exported at lookahead 2: the harmonic
    stack is one more constant MatMul in the graph, and the step graph (one frame
    per run, caches between) gives the Keras model's outputs."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    from rtpitch.backends import make_backend
    from rtpitch.model import load_model_spec
    from rtpitch.predictor import StepPredictor, make_predictor

    run_python("-m", "tests.tiny_run", tmp_path, "--arch", arch, "--lookaheads", "0,2", "--reference", "120")
    run_python("-m", "train.export", "--run", tmp_path / "run", "--name", "hs-la2", "--models",
               tmp_path / "models", "--lookahead", 2)
    path = tmp_path / "models" / "hs-la2.json"
    run_python("-m", "train.step_graph", "--model", path)  # as train/reproduce.sh does after export
    meta = json.loads(path.read_text())
    assert meta["window"]["lookahead_frames"] == 2 and meta["streaming"]["parity_max_abs_diff"] <= 1e-4
    spec = load_model_spec(str(path))
    predictor = make_predictor(make_backend("onnxruntime", spec), spec)
    assert isinstance(predictor, StepPredictor)
    ref = np.load(tmp_path / "reference.npz")
    got = stream_predictions(predictor, np.array_split(ref["mel"], 7))
    heads = ("frame", "onset", "offset", "velocity") + (("pedal",) if arch.endswith("pedal") else ())
    assert set(got) == set(heads)
    for head in heads:
        stream = got[head]
        assert stream.shape == ref[f"{head}_la2"].shape
        assert np.abs(stream - ref[f"{head}_la2"]).max() <= 5e-4, head
