"""benchmarks/key_release_ceiling.py: the pedal extension and the offset-energy probe."""

import numpy as np

from benchmarks.key_release_ceiling import offset_drops, sound_following


def test_sound_following_holds_a_note_until_the_pedal_lets_go_or_the_key_strikes_again():
    hop = 0.01
    pedal = np.zeros(300, bool)
    pedal[50:150] = True                      # down from 0.5 s to 1.5 s
    ref = np.array([[0.1, 0.3, 60, 80],       # released before the pedal: unchanged
                    [0.6, 0.8, 62, 80],       # released under the pedal: held to 1.5 s
                    [0.6, 0.7, 64, 80],       # held, but struck again at 1.0 s
                    [1.0, 1.2, 64, 80]])
    out = sound_following(ref, pedal, hop)
    np.testing.assert_allclose(out[:, 1], [0.3, 1.5, 1.0, 1.5])
    np.testing.assert_array_equal(out[:, [0, 2, 3]], ref[:, [0, 2, 3]])


def test_offset_drop_tells_a_damped_note_from_a_held_one():
    sr = 16000
    t = np.arange(3 * sr) / sr
    f0 = 440.0 * 2 ** ((60 - 69) / 12)
    tone = sum(np.sin(2 * np.pi * h * f0 * t) / h for h in (1, 2, 3)).astype(np.float32)
    damped = tone * (t < 1.5)                 # the sound stops at the labelled offset
    held = tone * np.exp(-0.5 * t)            # it rings on (the pedal)
    notes = np.array([[0.5, 1.5, 60, 80]])
    d_damped, used = offset_drops(damped.astype(np.float32), sr, notes)
    d_held, _ = offset_drops(held.astype(np.float32), sr, notes)
    assert list(used) == [0]
    assert d_damped[0] < -40 and -1.0 < d_held[0] < 0.0
