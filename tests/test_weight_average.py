"""train/weight_average.py: the moving average, its swap, and what a checkpoint restores."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
from train.weight_average import WeightAverage, restore_weights  # noqa: E402


def _model():
    x = tf.keras.Input((3,))
    y = tf.keras.layers.BatchNormalization()(tf.keras.layers.Dense(2)(x))
    return tf.keras.Model(x, y)


def _values(model):
    return [w.numpy().copy() for w in model.weights]


def test_update_is_the_exponential_average_of_every_weight():
    model = _model()
    ema = WeightAverage(model, decay=0.75)
    ema.start()
    first = _values(model)
    for w in model.weights:  # BatchNormalization's moving statistics (non-trainable) too
        w.assign(w + 4.0)
    tf.function(ema.update)()  # as the training step runs it
    for s, v in zip(ema.shadow, first):
        np.testing.assert_allclose(s.numpy(), v + 1.0, rtol=1e-6, atol=1e-6)
    assert len(ema.shadow) == len(model.weights) > len(model.trainable_weights)


def test_swapped_in_gives_the_average_then_the_raw_weights_back():
    model = _model()
    ema = WeightAverage(model, decay=0.5)
    ema.start()
    for w in model.weights:
        w.assign(w + 2.0)
    raw = _values(model)
    x = np.ones((1, 3), np.float32)
    with ema.swapped_in():
        for w, v in zip(model.weights, raw):
            np.testing.assert_allclose(w.numpy(), v - 2.0, atol=1e-6)
        averaged = model(x, training=False).numpy()
    for w, v in zip(model.weights, raw):
        np.testing.assert_array_equal(w.numpy(), v)
    assert not np.allclose(averaged, model(x, training=False).numpy())


def test_restore_weights_takes_the_average_where_the_checkpoint_has_one(tmp_path):
    model = _model()
    ema = WeightAverage(model, decay=0.5)
    ema.start()
    for w in model.weights:
        w.assign(w + 2.0)
    ema.update()  # average = start + 1
    with_avg = tf.train.Checkpoint(model=model, ema=ema).save(str(tmp_path / "a" / "ckpt"))
    without = tf.train.Checkpoint(model=model).save(str(tmp_path / "b" / "ckpt"))

    other = _model()
    assert restore_weights(other, with_avg) is True
    for w, s in zip(other.weights, ema.shadow):
        np.testing.assert_array_equal(w.numpy(), s.numpy())
    other = _model()
    assert restore_weights(other, without) is False  # an older run: its weights as they are
    for w, v in zip(other.weights, model.weights):
        np.testing.assert_array_equal(w.numpy(), v.numpy())


def test_a_checkpoint_without_an_average_leaves_it_unstarted(tmp_path):
    model = _model()
    prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    again = _model()
    ema = WeightAverage(again, decay=0.9)
    tf.train.Checkpoint(model=again, ema=ema).restore(prefix).expect_partial()
    assert not bool(ema.started.numpy())  # train.py then starts it at the restored weights
