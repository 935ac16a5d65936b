"""train/note_errors.py: each unmatched note gets the kind that explains it."""

import numpy as np

from train.note_errors import breakdown, false_kind, missed_kind


def notes(*rows):
    """(onset s, offset s, key, velocity) rows."""
    return np.array(rows, np.float64).reshape(-1, 4)


REF = notes((1.0, 2.0, 60, 80), (1.0, 2.0, 64, 80), (1.01, 2.0, 67, 80), (3.0, 3.5, 40, 50),
            (4.0, 4.2, 50, 60), (4.5, 5.0, 50, 60))


def test_missed_notes_are_late_early_held_over_or_in_a_chord():
    est = notes((1.1, 2.0, 60, 80), (2.93, 3.4, 40, 50), (4.0, 5.0, 50, 60))
    assert missed_kind(REF[0], REF, est) == "late"
    assert missed_kind(REF[3], REF, est) == "early"
    assert missed_kind(REF[5], REF, est) == "held over"  # the first strike's note went on through the second
    assert missed_kind(REF[1], REF, est) == "chord of 3"
    assert missed_kind(REF[3], REF, notes((9.0, 9.5, 40, 50))) == "chord of 1"


def test_false_notes_are_timing_double_overtone_undertone_neighbour_or_other():
    assert false_kind(notes((1.12, 1.5, 60, 80))[0], REF) == "timing"
    assert false_kind(notes((1.5, 1.9, 60, 80))[0], REF) == "double"
    assert false_kind(notes((1.5, 1.9, 72, 80))[0], REF) == "overtone"  # octave over C4
    assert false_kind(notes((1.5, 1.9, 79, 80))[0], REF) == "overtone"  # twelfth over C4
    assert false_kind(notes((1.5, 1.9, 48, 80))[0], REF) == "undertone"
    assert false_kind(notes((1.5, 1.9, 62, 80))[0], REF) == "neighbour"
    assert false_kind(notes((4.3, 4.4, 50, 80))[0], REF) == "after release"
    assert false_kind(notes((7.0, 7.5, 90, 80))[0], REF) == "other"


def test_breakdown_counts_every_note_once():
    est = notes((1.0, 2.0, 60, 80), (1.0, 2.0, 64, 80), (1.5, 1.9, 72, 80), (7.0, 7.5, 90, 80))
    got = breakdown([(REF, est)])
    assert got["notes"] == 6 and got["transcribed"] == 4
    assert sum(got["missed"].values()) == 4 and got["false"] == {"overtone": 1, "other": 1}
    # C4, E4 found (octave 3: keys 57-68, which holds G4 too); E2 and the two D3s missed
    assert got["notes_by_octave"][:4] == [0, 1, 2, 3] and got["recall_by_octave"][3] == round(2 / 3, 3)
    assert got["recall_by_octave"][1] == 0.0 and got["recall_by_octave"][0] is None
    # by velocity: the three at 80 (band 80-95) hold both found notes; 50, 60, 60 (band 48-63) none
    assert got["notes_by_velocity"] == [0, 0, 3, 0, 3, 0] and got["recall_by_velocity"][4] == round(2 / 3, 3)
    assert got["recall_by_velocity"][2] == 0.0 and got["recall_by_velocity"][0] is None
