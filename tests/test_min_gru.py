"""train/min_gru.py: the parallel scan is the recurrence, step by step."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from train.min_gru import CHUNK, LOG_Z_MIN, MinGRU, linear_scan  # noqa: E402


def _loop(z, u):
    h, out = np.zeros_like(u[:, 0]), []
    for t in range(u.shape[1]):
        h = z[:, t] * h + u[:, t]
        out.append(h)
    return np.stack(out, 1)


@pytest.mark.parametrize("frames", [1, CHUNK - 1, CHUNK, 3 * CHUNK + 5, 400])
def test_linear_scan_equals_the_loop(frames):
    rng = np.random.default_rng(frames)
    z = rng.uniform(0.0, 1.0, (2, frames, 3, 4)).astype(np.float32)
    z[:, ::7] = 1e-4  # near-resets and holds: decays far below float32's exp range over 400 frames
    z[:, 3::11] = 1.0
    u = rng.normal(size=(2, frames, 3, 4)).astype(np.float32)
    got = linear_scan(tf.math.log(tf.constant(z)), tf.constant(u)).numpy()
    np.testing.assert_allclose(got, _loop(z, u), atol=2e-5, rtol=1e-4)
    # a gate under the clip: the state differs by at most exp(LOG_Z_MIN) x the state before it
    z[:, ::7] = 1e-9
    want = _loop(z, u)
    got = linear_scan(tf.math.log(tf.constant(z)), tf.constant(u)).numpy()
    assert np.abs(got - want).max() <= 2 * np.exp(LOG_Z_MIN) * np.abs(want).max() + 2e-5


def test_min_gru_is_causal_with_finite_gradients():
    layer = MinGRU(5)
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 50, 3, 6)).astype(np.float32))
    x2 = tf.concat([x[:, :30], x[:, 30:] + 3.0], axis=1)
    a, b = layer(x).numpy(), layer(x2).numpy()
    assert np.abs(a[:, :30] - b[:, :30]).max() == 0.0 and np.abs(a[:, 30:] - b[:, 30:]).max() > 0.0
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x * 30.0) ** 2)  # saturated gates
    grads = tape.gradient(loss, layer.trainable_variables)
    assert all(np.isfinite(g.numpy()).all() for g in grads)
