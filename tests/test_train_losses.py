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
