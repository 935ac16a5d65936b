"""Notes as heard with the sustain pedal (train/evaluate.py): the reference's pedal
track and a transcription's pedal events hold released keys on."""

import numpy as np

from rtpitch.events import PedalEvent
from train.evaluate import pedal_event_intervals, pedal_frame_f1, pedal_intervals, score, sustain


def test_pedal_track_becomes_down_up_intervals():
    down = np.array([0, 1, 1, 0, 255, 1, 1, 1], np.uint8)  # 255: unknown counts as up
    np.testing.assert_allclose(pedal_intervals(down, 0.01), [[0.01, 0.03], [0.05, 0.08]])
    assert pedal_intervals(np.zeros(5, np.uint8), 0.01).shape == (0, 2)


def test_pedal_events_become_intervals_and_one_left_down_ends_with_the_audio():
    ev = [PedalEvent(1.0, True, 100), PedalEvent(2.0, False, 200), PedalEvent(3.0, True, 300)]
    np.testing.assert_allclose(pedal_event_intervals(ev, 5.0), [[1.0, 2.0], [3.0, 5.0]])
    assert pedal_event_intervals([], 5.0).shape == (0, 2)


def test_a_key_released_under_the_pedal_sounds_until_the_pedal_rises_or_the_key_is_struck_again():
    notes = np.array([[0.0, 0.5, 60, 80],   # released at 0.5 under the pedal (0.4 .. 2.0): held to 2.0
                      [0.1, 0.3, 64, 80],   # released before the pedal: unchanged
                      [0.2, 0.6, 67, 80],   # held, but 67 is struck again at 1.0: ends there
                      [1.0, 1.2, 67, 90],   # held to 2.0
                      [2.5, 3.0, 72, 70]])  # after the pedal
    got = sustain(notes, np.array([[0.4, 2.0]]))
    np.testing.assert_allclose(got[:, 1], [2.0, 0.3, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(got[:, [0, 2, 3]], notes[:, [0, 2, 3]])


def test_sustained_offsets_score_what_is_heard():
    ref = np.array([[0.0, 0.5, 60, 80], [1.0, 1.5, 62, 80]])
    pedal = np.array([[0.2, 1.0]])
    heard = sustain(ref, pedal)  # 60 sounds to 1.0
    assert score(heard, heard)["note_offset_f1"] == 1.0
    assert score(heard, ref)["note_offset_f1"] == 0.5  # a transcription that ignores the pedal loses 60's offset


def test_pedal_frame_f1_scores_the_sent_pedal_where_the_labels_know_it():
    down = np.array([0, 1, 1, 1, 0, 0, 255, 255, 1, 1], np.uint8)  # hop 0.1 s
    assert pedal_frame_f1(down, 0.1, np.array([[0.1, 0.4], [0.8, 1.0]])) == 1.0
    # down from 0.2 (one frame late) to the end, the unknown frames 6-7 not scored: tp 4, fp 2 (4, 5), fn 1
    assert pedal_frame_f1(down, 0.1, np.array([[0.2, 1.0]])) == 2 * 4 / (2 * 4 + 2 + 1)
    assert pedal_frame_f1(down, 0.1, np.zeros((0, 2))) == 0.0
    assert pedal_frame_f1(np.zeros(5, np.uint8), 0.1, np.zeros((0, 2))) is None


def test_pedal_frame_counts_pool_over_pieces_unlike_the_mean_of_their_f1():
    from train.evaluate import counts_f1, pedal_frame_counts
    long_piece = np.ones(90, np.uint8)  # pedal down throughout, sent throughout
    short_piece = np.zeros(10, np.uint8)  # no pedal, sent throughout: F1 0
    a = pedal_frame_counts(long_piece, 0.1, np.array([[0.0, 9.0]]))
    b = pedal_frame_counts(short_piece, 0.1, np.array([[0.0, 1.0]]))
    assert a.tolist() == [90, 0, 0] and b.tolist() == [0, 10, 0]
    assert (counts_f1(a) + counts_f1(b)) / 2 == 0.5
    assert counts_f1(a + b) == 2 * 90 / (2 * 90 + 10)
    assert counts_f1(np.zeros(3)) is None
