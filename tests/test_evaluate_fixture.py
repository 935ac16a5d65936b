"""train.evaluate --fixture: an annotated recording's notes found, through the engine."""

import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import FIXTURE, MIN_MATCHED, REPO, needs_data, read_annotations
from train.evaluate import read_notes


def test_read_notes_gives_onset_offset_key_velocity_rows_by_onset(tmp_path):
    path = tmp_path / "a.notes"
    path.write_text("# onset key duration velocity\n1.5\t60\t0.5\t70\n0.25\t64\t1.0\t40\n")
    np.testing.assert_allclose(read_notes(str(path)), [[0.25, 1.25, 64, 40], [1.5, 2.0, 60, 70]])


@pytest.mark.shared
@needs_data
def test_fixture_notes_found_against_its_annotations(tmp_path):
    out = tmp_path / "fx.json"
    res = subprocess.run([sys.executable, "-m", "train.evaluate", "--model", "stream", "--fixture", str(FIXTURE),
                          "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(out.read_text())["fixture"]
    assert got["notes"] == len(read_annotations()) == 8
    assert MIN_MATCHED <= got["found"] <= got["sent"]  # the shipped models' bar (tests/test_shipped_models.py)
    assert f"{got['found']} of its 8 notes found" in res.stdout
