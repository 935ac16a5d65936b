"""Test data and helpers shared by several test modules (no test module imports another).

The shared data lives in ``../shared/data`` beside the repository, or where
``RTPITCH_SHARED_DATA`` points; tests that need it skip with that reason when
it is absent (:data:`needs_data`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtpitch.model import DEFAULT_MODEL

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RTPITCH_SHARED_DATA") or REPO.parent / "shared" / "data")
FIXTURE = SHARED_DATA / "fixtures" / "madmom" / "stereo_sample.wav"  # a real piano, 8 annotated notes
ANNOTATIONS = FIXTURE.with_suffix(".notes")
MODEL = os.environ.get("RTPITCH_TEST_MODEL", DEFAULT_MODEL)

ONSET_TOL_S = 0.050       # annotated onset vs detected onset
MIN_MATCHED = 6           # of the 8 annotated notes

needs_data = pytest.mark.skipif(not FIXTURE.is_file() or not ANNOTATIONS.is_file(),
                                reason=f"shared test data absent ({FIXTURE}); set RTPITCH_SHARED_DATA")


def read_annotations(path: Path = ANNOTATIONS) -> list[tuple[float, int]]:
    """(onset s, MIDI pitch) for each annotated note, by onset (the .notes file as
    train.evaluate --fixture reads it)."""
    from train.evaluate import read_notes

    return sorted((float(on), int(key)) for on, _, key, _ in read_notes(str(path)))


def run_python(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python ARGS`` (each str()-ed) in the repository root, output captured; asserts
    it succeeded (its stderr's tail in the message). TensorFlow work runs this way, so
    that it stays out of the pytest process."""
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def transcribe(audio: Path, out: Path, model: str = MODEL) -> subprocess.CompletedProcess:
    """``rtpitch transcribe AUDIO -o OUT --model MODEL`` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "rtpitch", "transcribe", str(audio), "-o", str(out), "--model", model],
                          cwd=REPO, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def stream_predictions(predictor, chunks) -> dict:
    """Push ``chunks`` (each (m, n_mels) log-mel frames) through a predictor
    (rtpitch/predictor.py), then flush: every head's predictions for the whole
    stream, (T, units), checked to neither skip nor repeat a frame."""
    got = {}
    for frames in list(chunks) + [None]:
        first, out = predictor.push(frames) if frames is not None else predictor.flush()
        if out is not None:
            assert first not in got
            got[first] = out
    starts = sorted(got)
    for a, b in zip(starts, starts[1:]):
        assert a + len(next(iter(got[a].values()))) == b, "predictions skip or repeat frames"
    return {h: np.concatenate([got[s][h] for s in starts]) for h in got[starts[0]]} if got else {}
