"""The training losses' onset targets (train/train.py: soft_onsets, losses)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from train.train import losses, soft_onsets  # noqa: E402


def _onsets(t, keys, hits):
    o = np.zeros((1, t, keys), np.float32)
    for frame, key in hits:
        o[0, frame, key] = 1.0
    return tf.constant(o)


def test_width_zero_is_the_hard_target():
    o = _onsets(6, 2, [(0, 0), (5, 1)])
    np.testing.assert_array_equal(soft_onsets(o, 0).numpy(), o.numpy())


def test_triangle_either_side_clipped_at_the_crop_edges():
    o = _onsets(8, 2, [(3, 0), (0, 1)])
    got = soft_onsets(o, 2).numpy()[0]
    np.testing.assert_allclose(got[:, 0], [0, 1 / 3, 2 / 3, 1, 2 / 3, 1 / 3, 0, 0], atol=1e-6)
    np.testing.assert_allclose(got[:, 1], [1, 2 / 3, 1 / 3, 0, 0, 0, 0, 0], atol=1e-6)


def test_close_onsets_take_the_larger_target_not_the_sum():
    got = soft_onsets(_onsets(7, 1, [(2, 0), (4, 0)]), 2).numpy()[0, :, 0]
    np.testing.assert_allclose(got, [1 / 3, 2 / 3, 1, 2 / 3, 1, 2 / 3, 1 / 3], atol=1e-6)


def test_soft_targets_change_the_onset_loss_only():
    rng = np.random.default_rng(0)
    shape = (2, 10, 88)
    labels = {h: tf.constant((rng.random(shape) < 0.1).astype(np.float32)) for h in ("frame", "onset")}
    labels["velocity"] = tf.constant(rng.random(shape).astype(np.float32))
    outputs = {h: tf.constant(rng.uniform(0.05, 0.95, shape).astype(np.float32))
               for h in ("frame", "onset", "velocity")}
    hard = losses(outputs, labels, frame_pos_weight=2.0, onset_pos_weight=20.0)
    soft = losses(outputs, labels, frame_pos_weight=2.0, onset_pos_weight=20.0, onset_width=2)
    assert float(soft["frame"]) == float(hard["frame"])
    assert float(soft["velocity"]) == float(hard["velocity"])  # velocity stays on the onset frames
    assert float(soft["onset"]) > float(hard["onset"])  # more positive targets, each weighted 20


def test_quiet_onsets_weigh_more_and_loud_ones_as_before():
    from train.train import quiet_weight
    vel = tf.constant(np.array([0, 32, 48, 64, 100], np.float32).reshape(1, 5, 1) / 127.0)
    got = quiet_weight(vel, 3.0, 64.0).numpy().ravel()
    np.testing.assert_allclose(got, [4.0, 2.5, 1.75, 1.0, 1.0], atol=1e-5)


def test_quiet_onset_weight_changes_the_onset_loss_of_quiet_onsets_only():
    shape = (1, 4, 2)
    onset = np.zeros(shape, np.float32)
    onset[0, 1, 0] = 1.0  # a quiet onset (velocity 20) and a loud one (velocity 100)
    onset[0, 2, 1] = 1.0
    velocity = onset * np.array([20, 100], np.float32) / 127.0
    labels = {"frame": tf.constant(onset), "onset": tf.constant(onset), "velocity": tf.constant(velocity)}
    outputs = {h: tf.constant(np.full(shape, 0.3, np.float32)) for h in ("frame", "onset", "velocity")}
    kw = dict(frame_pos_weight=2.0, onset_pos_weight=20.0)
    plain = losses(outputs, labels, **kw)
    weighted = losses(outputs, labels, quiet_onset_weight=3.0, **kw)
    # positives' term: 20 * -log(0.3) each; the quiet one weighs 1 + 3 * (1 - 20 / 64) = 3.0625
    per_positive = -20.0 * np.log(0.3) / 8
    np.testing.assert_allclose(float(weighted["onset"]) - float(plain["onset"]), 2.0625 * per_positive, rtol=1e-5)
    assert float(weighted["frame"]) == float(plain["frame"])
    with pytest.raises(ValueError, match="onset_width"):
        losses(outputs, labels, quiet_onset_weight=3.0, onset_width=1, **kw)


def test_held_weight_starts_held_after_frames_past_the_onset():
    from train.train import held_weight
    o = _onsets(8, 2, [(2, 0)])  # key 1 has no onset in the crop: held from before it
    got = held_weight(o, 2.0, 3).numpy()[0]
    np.testing.assert_allclose(got[:, 0], [3, 3, 1, 1, 1, 3, 3, 3])
    np.testing.assert_allclose(got[:, 1], [3] * 8)


def test_held_frame_weight_changes_the_frame_loss_of_held_positives_only():
    shape = (1, 6, 1)
    frame = np.zeros(shape, np.float32)
    frame[0, 1:5, 0] = 1.0  # a note from frame 1 to 4: frames 3 and 4 are 2+ frames past its onset
    onset = np.zeros(shape, np.float32)
    onset[0, 1, 0] = 1.0
    labels = {"frame": tf.constant(frame), "onset": tf.constant(onset), "velocity": tf.constant(onset)}
    outputs = {h: tf.constant(np.full(shape, 0.3, np.float32)) for h in ("frame", "onset", "velocity")}
    kw = dict(frame_pos_weight=2.0, onset_pos_weight=20.0)
    plain = losses(outputs, labels, **kw)
    held = losses(outputs, labels, held_frame_weight=1.5, held_after=2, **kw)
    per_positive = -2.0 * np.log(0.3) / 6
    np.testing.assert_allclose(float(held["frame"]) - float(plain["frame"]), 2 * 1.5 * per_positive, rtol=1e-5)
    assert float(held["onset"]) == float(plain["onset"])
