"""train/frame_errors.py: missed frames by time since the onset, extra frames by kind, split by the pedal."""

import numpy as np

from train.frame_errors import piece_counts, summary


def notes(*rows):
    """(onset s, offset s, key, velocity) rows."""
    return np.array(rows, np.float64).reshape(-1, 4)


# C4 held 2 s (from 0 s), E4 released at 3.0 s; the 10 ms grid, frame head at the same rate
REF = notes((0.0, 2.0, 60, 80), (2.5, 3.0, 64, 80))
HOP = 0.01


def frame_head(value_c4: float) -> np.ndarray:
    head = np.zeros((400, 88), np.float32)
    head[:, 60 - 21] = value_c4
    return head


def test_missed_frames_fall_in_the_bands_since_the_onset_and_release_tails_are_extra():
    est = notes((0.0, 0.5, 60, 80), (2.5, 3.4, 64, 80), (1.0, 1.1, 72, 80))
    got = piece_counts(REF, est, frame_head(0.3), HOP, {})["all"]
    # C4: 0-0.3 s all sounding; 0.3-0.6 s: 0.5..0.6 missed; 0.6-1.2 s and 1.2-2.0 s all missed;
    # E4 (0.5 s) found throughout
    assert got["labelled"] == [30 + 30, 30 + 20, 60, 80]
    assert got["missed"] == [0, 10, 60, 80]
    # E4 went on 0.4 s past its release (within 1 s: after release); the C5 note is other
    assert got["extra"] == 40 + 10 and got["extra after release"] == 40
    # the frame head on C4 from 0.6 s to its release
    assert len(got["held"]) == 140 and np.allclose(got["held"], 0.3)
    s = summary([{"all": got}])["all"]
    assert s["missed_by_time_since_onset"]["0.3-0.6 s"] == round(10 / 50, 3)
    assert s["extra_after_release"] == round(40 / 50, 3)
    assert s["held_frame_head"] == {"frames": 140, "mean": 0.3, "over_0.2": 1.0, "over_0.5": 0.0}


def test_a_rendered_recording_is_split_by_the_pedal_at_each_frame():
    pedal = np.zeros(400, np.uint8)
    pedal[100:] = 1  # down from 1.0 s (labels at the same 10 ms hop)
    got = piece_counts(REF, notes((0.0, 2.0, 60, 80)), frame_head(0.9), HOP, {"pedal": (pedal, HOP)})
    up, down = got["pedal up"], got["pedal down"]
    assert sum(up["labelled"]) == 100 and sum(down["labelled"]) == 100 + 50
    assert sum(up["missed"]) == 0 and down["missed"] == [30, 20, 0, 0]  # E4, never transcribed
    assert len(up["held"]) == 40 and len(down["held"]) == 100
