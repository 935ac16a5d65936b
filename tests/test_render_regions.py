"""train/render.py's region sampler: the sampled grands headroom-c3 and splendid-grand.

Needs ../shared/data/samples (``RTPITCH_SHARED_DATA`` points at ../shared/data); the
plan test at the end needs nothing.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RTPITCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
SAMPLES = SHARED / "samples"
PIANOS = ("headroom-c3", "splendid-grand")
SR = 16000

needs_samples = pytest.mark.skipif(
    not all((SAMPLES / p / "regions.json").exists() for p in PIANOS),
    reason=f"sample sets absent ({SAMPLES}); set RTPITCH_SHARED_DATA to ../shared/data")


def _perf(notes, pedal=()):
    from train.render import Performance

    on, off, p, v = (np.array(c) for c in zip(*notes))
    return Performance(onset=on.astype(float), offset=off.astype(float), pitch=p.astype(np.int64),
                       velocity=v.astype(np.int64), pedal_time=np.array([t for t, _ in pedal], float),
                       pedal_value=np.array([c for _, c in pedal], np.int64))


def _render(name, notes, pedal=(), **kw):
    from train.render import render_regions

    kw = dict(dict(detune_cents=0.0, veltrack_db=40.0, release_scale=1.0, loop_decay_db_s=None), **kw)
    return render_regions(_perf(notes, pedal), name, sr=SR, samples_root=SAMPLES,
                          rng=np.random.default_rng(0), **kw)


def _db(x):
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))) + 1e-12)


def _win(y, a, b):
    return y[int(a * SR):int(b * SR)]


def _pitch_cents(y, key):
    """Harmonic-sum pitch estimate, in cents from ``key``'s equal-tempered frequency."""
    n = len(y)
    sp = np.abs(np.fft.rfft(y * np.hanning(n), 8 * n))
    df = SR / (8 * n)
    f0 = 440.0 * 2 ** ((key - 69) / 12)
    cents = np.arange(-150, 151)
    score = [sum(sp[int(round(h * f0 * 2 ** (c / 1200) / df))] for h in range(1, 6)) for c in cents]
    return int(cents[int(np.argmax(score))])


@needs_samples
@pytest.mark.parametrize("name", PIANOS)
def test_notes_sound_at_their_pitch_also_between_sampled_keys(name):
    from train.render import region_bank

    bank = region_bank(name, SAMPLES, SR)
    for key in (48, 60, 61, 62, 70, 74):
        r = bank.regions[bank.table[key, 80]]
        y = _render(name, [(0.1, 1.5, key, 80)])
        c = _pitch_cents(_win(y, 0.2, 1.2), key)
        assert abs(c) <= 20, (name, key, r["key_center"], c)
    assert any(bank.regions[bank.table[k, 80]]["key_center"] != k for k in (61, 62, 70, 74))  # shifted ones


@needs_samples
@pytest.mark.parametrize("name", PIANOS)
def test_attack_lands_at_the_onset(name):
    for key, vel in ((30, 40), (45, 100), (60, 20), (60, 127), (72, 70), (96, 90)):
        y = _render(name, [(0.5, 1.0, key, vel)])
        assert not np.any(y[:int(0.5 * SR)]), "sound before the onset"
        e = np.convolve(np.square(y[:int(0.9 * SR)]), np.ones(32) / 32, "same")  # 2 ms power
        t_attack = np.argmax(e >= 0.04 * e.max()) / SR  # -14 dB of the note's loudest 2 ms
        assert 0.5 <= t_attack <= 0.5 + 0.006, (name, key, vel, t_attack)


@needs_samples
@pytest.mark.parametrize("name", PIANOS)
def test_louder_velocity_is_louder(name):
    for key in (33, 50, 60, 75, 90):
        lv = [_db(_win(_render(name, [(0.0, 0.8, key, v)]), 0, 0.8)) for v in (15, 40, 70, 100, 125)]
        assert np.all(np.diff(lv) > 1.0), (name, key, np.round(lv, 1))


@needs_samples
@pytest.mark.parametrize("name", PIANOS)
def test_released_notes_are_damped_and_pedalled_notes_ring_until_the_pedal_lifts(name):
    for key in (36, 60, 84):
        notes = [(0.2, 1.0, key, 80), (3.0, 3.2, 100, 30)]  # the second one makes the audio 4.2 s long
        free = _render(name, notes)
        held = _render(name, notes, pedal=[(0.1, 127), (2.5, 0)])
        before = _db(_win(free, 0.8, 1.0))
        assert np.array_equal(free[:int(1.0 * SR)], held[:int(1.0 * SR)])
        assert _db(_win(free, 1.0 + 0.15, 1.35)) < before - 40  # damped within ~150 ms
        rel = _win(free, 1.0, 1.35)
        env = np.array([_db(rel[i:i + 80]) for i in range(0, len(rel) - 80, 80)])  # 5 ms
        assert env[0] > before - 15  # a decay, not a cut ...
        assert env[np.argmax(env < -200) - 1] < before - 40  # ... down to -40 dB before it stops
        assert _db(_win(held, 1.15, 1.35)) > before - 10  # the pedal keeps it sounding
        assert _db(_win(held, 2.2, 2.4)) > before - 25
        assert _db(_win(held, 2.65, 2.85)) < _db(_win(held, 2.2, 2.4)) - 40  # until it lifts
        assert len(free) == len(held) == int(np.ceil((3.2 + 1.0) * SR)) + 1  # end_s + TAIL_S


@needs_samples
def test_long_held_notes_on_splendid_grand_loop_without_gap_or_click():
    from train.render import region_bank

    bank = region_bank("splendid-grand", SAMPLES, SR)
    for key, vel in ((40, 30), (60, 90), (80, 110)):
        y = _render("splendid-grand", [(0.0, 25.0, key, vel)], detune_cents=7.0, loop_decay_db_s=0.0)
        ri = bank.table[key, vel]
        x, start, last, ls, le = bank.sample(ri)
        ratio = 2 ** ((key - bank.regions[ri]["key_center"]) / 12 + 7.0 / 1200)
        t_loop, span = (ls - start) / ratio, (le - ls + 1) / ratio
        assert (last - start) / ratio < 20 * SR  # the sample alone would end before the release
        held = y[int(t_loop) + 1:int(25.0 * SR)]
        w = int(0.1 * SR)
        lv = 20 * np.log10(np.sqrt(np.mean(held[:len(held) // w * w].reshape(-1, w) ** 2, 1)) + 1e-12)
        assert lv.min() > np.median(lv) - 12, (key, vel, lv.min(), np.median(lv))  # no gap, no drop
        wraps = (t_loop + span * np.arange(1, int((25 * SR - t_loop) / span))).astype(int)
        jump = np.abs(np.diff(y))
        assert jump[wraps[:, None] + np.arange(-2, 2)].max() <= 1.5 * np.percentile(jump[int(t_loop):int(20 * SR)], 99.9)


@needs_samples
@pytest.mark.parametrize("name", PIANOS)
def test_every_key_and_velocity_renders_finite_audio(name):
    from train.render import TIMBRES

    notes = [(0.05 * i, 0.05 * i + 0.3, key, vel)
             for i, (key, vel) in enumerate((k, v) for k in range(21, 109) for v in (1, 45, 90, 127))]
    perf = _perf(notes, pedal=[(0.0, 0), (5.0, 127), (10.0, 0)])
    y = TIMBRES[name](perf, SR, np.random.default_rng(1), samples_root=SAMPLES)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    assert len(y) == int(np.ceil((perf.end_s + 1.0) * SR)) + 1
    assert 0.01 < np.abs(y).max() < 8
    for on, _, key, vel in notes[1::4]:  # every key sounds (velocity 1 is 84 dB below 127: SFZ amp_veltrack)
        assert _db(_win(y, on, on + 0.04)) > -80, (key, vel)


def test_default_dataset_plan_is_unchanged():
    """Pinned from the plan before the sampled grands existed: the default timbre table, and
    any subset of the old four, draw exactly as before; the new ones only when named."""
    from train.build_dataset import EXTENDED_TIMBRE_WEIGHTS, TIMBRE_WEIGHTS, plan_split

    assert TIMBRE_WEIGHTS == {"salamander": 0.5, "fluid-r3": 0.5 / 3, "musescore": 0.5 / 3, "timgm6mb": 0.5 / 3}

    class Durs:
        def get(self, p):
            k = int(p.rsplit("_", 1)[1])
            return [30.0 + 17.0 * (k % 9), 0.25 * (k % 3), 50]

    perfs = [dict(collection=c, piece=f"{c}{k}", path=f"/x/{c}_{k}", split="val" if k % 7 == 0 else "train")
             for c in ("asap", "batik", "vienna4x22", "pop909") for k in range(40)]

    def plan(timbres):
        return plan_split(perfs, "train", 2.0, 3, Durs(), timbres) + plan_split(perfs, "val", 0.3, 3, Durs(), timbres)

    def h(p):
        return len(p), hashlib.sha1(json.dumps(p, sort_keys=True).encode()).hexdigest()[:16]

    assert h(plan(None)) == (153, "03902e49cf292aab")
    assert h(plan(["salamander", "fluid-r3"])) == (153, "271b82f447e51096")
    assert h(plan(["fluid-r3"])) == (153, "eceb881c1b825da3")
    new = plan(list(EXTENDED_TIMBRE_WEIGHTS))
    counts = {t: sum(s["timbre"] == t for s in new) for t in EXTENDED_TIMBRE_WEIGHTS}
    assert counts["headroom-c3"] > 10 and counts["splendid-grand"] > 10, counts


@needs_samples
def test_a_dataset_segment_renders_with_a_sampled_grand(tmp_path):
    if not (SHARED / "midi").is_dir():
        pytest.skip(f"../shared/data absent ({SHARED})")
    from train.build_dataset import DEFAULT_FRONTEND, list_performances, make_segment

    perf = next(p for p in list_performances(SHARED) if p["collection"] == "pop909")
    seg = dict(id="train_00000", split="train", collection="pop909", piece=perf["piece"], source=perf["path"],
               start_s=0.0, dur_s=6.0, timbre="splendid-grand", seed=7)
    meta = make_segment(seg, str(tmp_path), DEFAULT_FRONTEND, None, str(SAMPLES))
    assert meta["timbre"] == "splendid-grand"  # rendered, not the salamander fallback
    with np.load(tmp_path / "train" / "train_00000.npz") as z:
        assert np.isfinite(z["mel"].astype(np.float32)).all() and z["onset"].sum() > 5
