"""train/tune_decoder.py: the pedal's hysteresis is chosen on the labels, as evaluate scores it."""

import numpy as np

from rtpitch.decoder import DecoderSpec
from rtpitch.events import N_KEYS, Activations
from train.tune_decoder import _joined, pedal_f1, tune_pedal

HOP_S = 0.01


def _acts(pedal):
    n = len(pedal)
    z = np.zeros((n, N_KEYS), np.float32)
    return Activations(0, z, z, pedal=np.asarray(pedal, np.float32))


def _track(n, spans):
    down = np.zeros(n, np.uint8)
    for a, b in spans:
        down[a:b] = 1
    return down


def test_pedal_f1_is_one_for_the_labels_own_track_and_none_without_any_pedal():
    down = _track(300, [(20, 120), (200, 260)])
    assert pedal_f1(DecoderSpec(), HOP_S, _acts(down.astype(np.float32)), (down, HOP_S)) == 1.0
    assert pedal_f1(DecoderSpec(), HOP_S, _acts(np.zeros(300)), (np.zeros(300, np.uint8), HOP_S)) is None


def test_tune_pedal_finds_thresholds_that_follow_a_head_which_sits_at_0_45_when_down():
    rng = np.random.default_rng(0)
    down = _track(2000, [(100, 600), (800, 1500), (1700, 1900)])
    prob = np.where(down == 1, 0.45, 0.1) + rng.uniform(-0.04, 0.04, 2000)  # under the default on-threshold
    data = [(_acts(prob), (down, HOP_S))]
    default = pedal_f1(DecoderSpec(), HOP_S, *data[0])
    spec, f1 = tune_pedal(DecoderSpec(), HOP_S, data)
    assert default is None or default < 0.5
    assert f1 > 0.98 and spec.pedal_on_threshold <= 0.4 and spec.pedal_off_threshold <= spec.pedal_on_threshold
    assert tune_pedal(DecoderSpec(), HOP_S, [(_acts(np.zeros(50)), (np.zeros(50, np.uint8), HOP_S))]) is None


def test_joined_activations_keep_the_pedal_row():
    a, b = _acts([0.1, 0.9]), _acts([0.8])
    assert np.array_equal(_joined([a, b]).pedal, np.array([0.1, 0.9, 0.8], np.float32))
    assert _joined([Activations(0, a.frame, a.onset)]).pedal is None
