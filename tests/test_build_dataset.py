"""train/build_dataset.py: --velocity-scale, -curve and -spread soften what is rendered and what is labelled;
--noise-snr moves the room noise alone.

Renders one short segment with FluidR3 (apt fluid-soundfont-gm) from ../shared/data.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RTPITCH_SHARED_DATA", ROOT.parent / "shared" / "data"))

pytestmark = pytest.mark.shared


def test_velocity_scales_are_drawn_per_segment_and_change_nothing_else():
    from train.build_dataset import draw_per_segment

    plan = [dict(id=f"train_{i:05d}", seed=1000 + i, timbre="salamander") for i in range(200)]
    before = [dict(s) for s in plan]
    draw_per_segment(plan, 0.45, 1.0)
    scales = np.array([s.pop("velocity_scale") for s in plan])
    assert plan == before
    assert scales.min() >= 0.45 and scales.max() <= 1.0 and scales.std() > 0.1
    again = [dict(s) for s in before]
    draw_per_segment(again, 0.45, 1.0)
    assert [s["velocity_scale"] for s in again] == scales.tolist()  # a resumed build draws the same


def _render_plain_and(tmp_path, seed=7, **change):
    """One 8 s POP909 segment rendered with FluidR3 (from ``seed``) as is and with ``change`` in its
    plan entry (skips without ../shared/data or the soundfont). Returns (plain npz, changed npz, changed meta)."""
    if not (SHARED / "midi").is_dir():
        pytest.skip(f"../shared/data absent ({SHARED})")
    if not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists():
        pytest.skip("FluidR3 soundfont not installed (apt fluid-soundfont-gm)")
    from train.build_dataset import DEFAULT_FRONTEND, list_performances, make_segment

    perf = next(p for p in list_performances(SHARED) if p["collection"] == "pop909")
    seg = dict(id="train_00000", split="train", collection="pop909", piece=perf["piece"], source=perf["path"],
               start_s=0.0, dur_s=8.0, timbre="fluid-r3", seed=seed)
    make_segment(seg, str(tmp_path / "plain"), DEFAULT_FRONTEND, None)
    meta = make_segment(dict(seg, **change), str(tmp_path / "changed"), DEFAULT_FRONTEND, None)
    npz = Path("train") / "train_00000.npz"
    return np.load(tmp_path / "plain" / npz), np.load(tmp_path / "changed" / npz), meta


def _same_timing(a, b) -> None:
    for head in ("frame", "onset", "offset"):
        assert np.array_equal(a[head], b[head])


def test_velocity_scale_lowers_rendered_velocities_and_their_labels(tmp_path):
    a, b, meta = _render_plain_and(tmp_path, velocity_scale=0.5)
    assert meta["velocity_scale"] == 0.5
    with a, b:
        assert json.loads(str(b["meta"]))["velocity_scale"] == 0.5
        _same_timing(a, b)
        on = a["onset"] > 0
        assert on.sum() > 10
        want = np.clip(np.round(a["velocity"][on].astype(float) * 0.5), 1, 127)
        assert np.array_equal(b["velocity"][on], want)
        assert not np.array_equal(a["mel"], b["mel"])  # softer notes sound different


def test_velocity_spread_varies_notes_within_a_segment_and_keeps_the_timing(tmp_path):
    a, b, _ = _render_plain_and(tmp_path, velocity_spread=0.35)
    with a, b:
        _same_timing(a, b)
        on = a["onset"] > 0
        ratio = np.log(b["velocity"][on].astype(float) / a["velocity"][on])
        assert 0.2 < ratio.std() < 0.5  # per note, about exp(N(0, 0.35)); not one factor for all
        assert abs(np.median(ratio)) < 0.15


def test_velocity_curves_are_drawn_apart_from_the_scales():
    from train.build_dataset import draw_per_segment

    plan = [dict(id=f"train_{i:05d}", seed=1000 + i) for i in range(100)]
    draw_per_segment(plan, 0.45, 1.0)
    draw_per_segment(plan, 1.0, 2.0, key="velocity_curve")
    curves = np.array([s["velocity_curve"] for s in plan])
    assert curves.min() >= 1.0 and curves.max() <= 2.0
    assert abs(np.corrcoef(curves, [s["velocity_scale"] for s in plan])[0, 1]) < 0.3


def test_velocity_curve_sinks_soft_notes_more_than_loud_ones(tmp_path):
    a, b, _ = _render_plain_and(tmp_path, velocity_curve=2.0)
    with a, b:
        _same_timing(a, b)
        on = a["onset"] > 0
        v = a["velocity"][on].astype(float)
        assert np.array_equal(b["velocity"][on], np.clip(np.round(127 * (v / 127) ** 2), 1, 127))
        assert not np.array_equal(a["mel"], b["mel"])


SEED_WITH_NOISE = 9  # a segment seed whose room draws background noise (7's and 8's do not)


def test_noise_snr_moves_only_the_room_noise(tmp_path):
    a, b, meta = _render_plain_and(tmp_path, seed=SEED_WITH_NOISE, noise_snr_db=[70.0, 75.0])
    with a, b:
        _same_timing(a, b)
        assert np.array_equal(a["velocity"], b["velocity"])
        plain = json.loads(str(a["augment"]))
        assert 70 <= meta["augment"]["noise"]["snr_db"] <= 75 and plain["noise"]["snr_db"] < 60
        assert {k: v for k, v in plain.items() if k != "noise"} == \
               {k: v for k, v in meta["augment"].items() if k != "noise"}


def test_resonance_couplings_are_drawn_apart_from_the_velocity_changes():
    from train.build_dataset import draw_per_segment, main

    plan = [dict(id=f"train_{i:05d}", seed=1000 + i) for i in range(100)]
    draw_per_segment(plan, 1.0, 2.0, key="velocity_curve")
    draw_per_segment(plan, -30.0, -18.0, key="resonance_db")
    db = np.array([s["resonance_db"] for s in plan])
    assert db.min() >= -30.0 and db.max() <= -18.0 and db.std() > 2
    assert abs(np.corrcoef(db, [s["velocity_curve"] for s in plan])[0, 1]) < 0.3
    with pytest.raises(SystemExit):  # dB under the input: a negative or reversed range is a usage error
        main(["--resonance", "30,18", "--hours-train", "0", "--hours-val", "0"])


def test_resonance_adds_the_strings_and_leaves_labels_and_room_alone(tmp_path):
    a, b, meta = _render_plain_and(tmp_path, resonance_db=-20.0)
    with a, b:
        _same_timing(a, b)
        assert np.array_equal(a["velocity"], b["velocity"]) and np.array_equal(a["pedal"], b["pedal"])
        assert json.loads(str(a["augment"])) == meta["augment"]  # the room draws the same
        assert meta["resonance_db"] == -20.0
        diff = np.abs(a["mel"].astype(np.float32) - b["mel"].astype(np.float32))
        assert diff.mean() > 0.01  # the strings are heard
