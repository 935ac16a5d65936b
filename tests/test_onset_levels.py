"""train/onset_levels.py: the rise and level of labelled onsets on the log-mel."""

import json

import numpy as np
import soundfile as sf

from rtpitch.frontend import FrontendSpec, mel_band_centres
from train.onset_levels import DB, FRONTEND, harmonic_bands, onset_levels, recording, segment, summary

SPEC = FrontendSpec(**json.load(open(FRONTEND)))
A4 = 69 - 21


def test_harmonic_bands_are_the_bands_nearest_the_harmonics():
    bands = harmonic_bands(SPEC)
    centres = mel_band_centres(SPEC)
    assert [int(np.argmin(np.abs(centres - f))) for f in (440, 880, 1320, 1760)] == list(bands[A4])
    assert len(bands[87]) == 1  # C8: its second harmonic (8.4 kHz) is over fmax


def test_rise_and_level_of_an_onset():
    bands = harmonic_bands(SPEC)
    mel = np.full((60, SPEC.n_mels), -5.0)
    mel[20:, bands[A4]] += 2.0  # A4 starts at frame 20, 2 (natural log) over the background
    G4 = A4 - 2
    assert not set(bands[A4]) & set(bands[G4])
    mel[40:, bands[G4]] += 0.5  # G4 at frame 40, quieter
    rows = onset_levels(mel, np.array([[20, A4, 90], [40, G4, 30], [2, A4, 50], [58, A4, 50]]), bands)
    assert rows.shape == (2, 3)  # onsets too near either end are left out
    # the loudest key's track is A4's from frame 20 on: 2/3 of the frames, so its 99th percentile
    np.testing.assert_allclose(rows, [[90, 2 * DB, 0.0], [30, DB / 2, -1.5 * DB]], atol=1e-9)
    table = summary(rows)
    assert table["all"]["onsets"] == 2 and table["80-95"]["onsets"] == 1 and table["1-31"]["share"] == 0.5
    assert table["1-31"]["rise_under_6db"] == 1.0 and table["80-95"]["rise_under_6db"] == 0.0


def test_real_recording_and_dataset_segment(tmp_path):
    rate = 44100
    t = np.arange(2 * rate) / rate
    tone = sum(0.1 * np.sin(2 * np.pi * 440 * h * t) for h in (1, 2, 3, 4))  # A4 and its harmonics from 1 s
    tone = np.where(t >= 1.0, tone, 0.0) + 1e-4 * np.random.default_rng(0).normal(size=len(t))
    sf.write(tmp_path / "a.flac", tone.astype(np.float32), rate)
    (tmp_path / "a.tsv").write_text("onset\toffset\tnote\tvelocity\n1.0\t2.0\t69\t64\n")
    mel, onsets = recording(str(tmp_path / "a.flac"), str(tmp_path / "a.tsv"), SPEC)
    assert onsets.tolist() == [[100, A4, 64]] and abs(len(mel) - 200) <= 2
    (velocity, rise, level), = onset_levels(mel, onsets, harmonic_bands(SPEC))
    assert rise > 20 and level > -6  # a tone out of near silence, the loudest thing in the recording
    onset = np.zeros((50, 88), np.uint8)
    onset[10, A4] = 1
    np.savez(tmp_path / "s.npz", mel=np.zeros((50, SPEC.n_mels), np.float16), onset=onset, velocity=onset * 77)
    assert segment(str(tmp_path / "s.npz"))[1].tolist() == [[10, A4, 77]]
