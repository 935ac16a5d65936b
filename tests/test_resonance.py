"""train/resonance.py: the free strings ring on after a note while the pedal holds the dampers up,
and die within a fraction of a second once the dampers are down."""

import numpy as np

from train.render import Performance
from train.resonance import damper_free, string_resonance

SR = 16000


def _note(pitch=57, on=0.1, off=0.6, pedal=()):
    """One note; ``pedal``: (time s, CC64 value) events."""
    t, v = zip(*pedal) if pedal else ((), ())
    return Performance(onset=np.array([on]), offset=np.array([off]), pitch=np.array([pitch]),
                       velocity=np.array([80]), pedal_time=np.array(t, float), pedal_value=np.array(v, int))


def _tone(hz=220.0, on=0.1, dur=0.5, total=3.0):
    """(total * SR,) float32: a decaying harmonic tone from ``on`` for ``dur`` s, silence after."""
    t = np.arange(int(dur * SR)) / SR
    x = sum(np.sin(2 * np.pi * hz * h * t) / h for h in range(1, 6)) * np.exp(-t)
    out = np.zeros(int(total * SR), np.float32)
    out[int(on * SR):int(on * SR) + len(x)] = x
    return out


def _db(x, a, b, ref):
    rms = lambda y: np.sqrt(np.mean(y ** 2)) + 1e-12  # noqa: E731
    return 20 * np.log10(rms(x[int(a * SR):int(b * SR)]) / rms(ref))


def test_dampers_are_up_under_the_pedal_and_while_a_key_is_held():
    perf = _note(pitch=60, on=0.1, off=0.3, pedal=[(0.5, 127), (0.8, 0)])
    free = damper_free(perf, 100, 0.01)
    assert free.shape == (100, 88)
    key = 60 - 21
    assert free[10:30, key].all() and not free[10:30, key + 1].any()  # held: its own string alone
    assert free[50:80].all()  # pedal down: every string
    assert not free[30:50].any() and not free[80:].any()


def test_the_strings_ring_on_under_the_pedal_and_stop_without_it():
    dry = _tone()
    held = string_resonance(dry, _note(pedal=[(0.0, 127)]), SR, 0.0)
    damped = string_resonance(dry, _note(pedal=[(0.0, 0)]), SR, 0.0)
    ref = dry[int(0.2 * SR):int(0.6 * SR)]
    assert held.dtype == np.float32 and held.shape == dry.shape
    assert _db(held, 2.0, 3.0, ref) > -30  # 1.4 s after the tone: the free strings still sound
    assert _db(damped, 1.0, 3.0, ref) < -60  # key released, pedal up: the dampers stop them
    assert _db(damped, 0.2, 0.6, ref) > -6  # while the key is held its own string rings


def test_the_pedal_coming_up_damps_what_it_held():
    dry = _tone()
    res = string_resonance(dry, _note(pedal=[(0.0, 127), (1.5, 0)]), SR, 0.0)
    ref = dry[int(0.2 * SR):int(0.6 * SR)]
    assert _db(res, 1.2, 1.5, ref) > -25 and _db(res, 2.0, 3.0, ref) < -60


def test_coupling_scales_the_strings_and_silence_stays_silent():
    dry = _tone()
    perf = _note(pedal=[(0.0, 127)])
    a, b = string_resonance(dry, perf, SR, 0.0), string_resonance(dry, perf, SR, -20.0)
    np.testing.assert_allclose(b, a * 0.1, rtol=1e-5, atol=1e-9)
    assert not string_resonance(np.zeros(SR, np.float32), perf, SR, 0.0).any()
