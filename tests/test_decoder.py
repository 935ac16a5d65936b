"""NoteDecoder on synthetic activations (no model)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpitch.decoder import EVENT_CAP, NoteDecoder
from rtpitch.events import Activations
from rtpitch.decoder import DecoderSpec
from rtpitch.errors import ConfigError

HOP = 0.01  # 10 ms frames
SPEC = DecoderSpec(onset_threshold=0.5, frame_threshold=0.5, off_threshold=0.3, min_duration_ms=30.0,
                   restrike_gap_ms=60.0)
C4 = 60
KEY = C4 - 21


def blank(n):
    return np.zeros((n, 88), np.float32), np.zeros((n, 88), np.float32), np.zeros((n, 88), np.float32)


def run(frame, onset, velocity=None, spec=SPEC, first=0):
    dec = NoteDecoder(spec, HOP)
    ev = dec.process(Activations(first, frame, onset, velocity))
    return ev + dec.close(), dec


def summary(events):
    return [(e.frame, e.pitch, e.on, e.velocity) for e in events]


def test_single_note_with_velocity():
    frame, onset, vel = blank(30)
    onset[5, KEY], onset[6, KEY], onset[7, KEY] = 0.7, 0.9, 0.2
    frame[5:15, KEY] = 0.9
    vel[5, KEY] = 0.5
    events, _ = run(frame, onset, vel)
    assert summary(events) == [(5, C4, True, 64), (15, C4, False, 0)]
    assert events[0].time_s == pytest.approx(0.05)
    assert events[1].time_s == pytest.approx(0.145)  # released between frames 14 and 15


def test_velocity_from_onset_without_head():
    frame, onset, _ = blank(20)
    onset[3, KEY] = 0.6
    frame[3:10, KEY] = 0.9
    events, _ = run(frame, onset, None)
    assert events[0].velocity == round(127 * 0.6)
    onset[3, KEY] = 1.0
    assert run(frame, onset)[0][0].velocity == 127


def test_velocity_clipped_to_1():
    frame, onset, vel = blank(20)
    onset[3, KEY] = 0.9
    frame[3:10, KEY] = 0.9
    events, _ = run(frame, onset, vel)  # velocity head says 0
    assert events[0].velocity == 1


def test_onset_without_frame_support_is_dropped():
    frame, onset, _ = blank(20)
    onset[3, KEY] = 0.9
    frame[3:10, KEY] = 0.1
    assert run(frame, onset)[0] == []


def test_frame_started_note_only_when_enabled():
    """A key whose frame activation rises without any onset: no note by default;
    with frame_onset_threshold, a note from the crossing frame until the frame falls."""
    frame, onset, vel = blank(30)
    frame[5:8, KEY] = [0.4, 0.7, 0.9]
    frame[8:15, KEY] = 0.8
    vel[6, KEY] = 0.5
    assert run(frame, onset, vel)[0] == []
    spec = DecoderSpec(**{**SPEC.__dict__, "frame_onset_threshold": 0.6})
    events, _ = run(frame, onset, vel, spec=spec)
    assert summary(events) == [(6, C4, True, 64), (15, C4, False, 0)]


def test_frame_started_note_needs_a_rising_crossing():
    """A frame that stays above the threshold after its note ended (here: the
    note's minimum duration is over and an onset-started note was cut by a
    dip below off_threshold) starts a new note only when it crosses again."""
    frame, onset, _ = blank(40)
    frame[0:10, KEY] = 0.9          # high from the start: crosses at frame 0
    frame[10:12, KEY] = 0.0         # the note ends at 10
    frame[12:20, KEY] = 0.9         # crosses again at 12
    spec = DecoderSpec(**{**SPEC.__dict__, "frame_onset_threshold": 0.6})
    events, _ = run(frame, onset, spec=spec)
    assert [(f, on) for f, _, on, _ in summary(events)] == [(0, True), (10, False), (12, True), (20, False)]


def test_plateau_gives_one_note_and_dip_gives_restrike():
    frame, onset, _ = blank(40)
    onset[2:6, KEY] = [0.6, 0.7, 0.8, 0.9]  # rising plateau: one trigger
    frame[2:40, KEY] = 0.9
    events, _ = run(frame, onset)
    assert [e.frame for e in events if e.on] == [2]
    # a second peak after a dip and after the gap -> off then on at the same frame
    onset[6:12, KEY] = 0.6
    onset[12, KEY] = 0.9
    events, _ = run(frame, onset)
    assert summary(events)[:3] == [(2, C4, True, 76), (12, C4, False, 0), (12, C4, True, 114)]
    assert events[1].time_s == events[2].time_s


def test_restrike_inside_gap_is_ignored():
    frame, onset, _ = blank(40)
    onset[2, KEY] = 0.9
    onset[5, KEY] = 0.9  # 30 ms later < 60 ms gap
    onset[10, KEY] = 0.9  # 80 ms later: restrike
    frame[2:30, KEY] = 0.9
    events, _ = run(frame, onset)
    assert summary(events) == [(2, C4, True, 114), (10, C4, False, 0), (10, C4, True, 114), (30, C4, False, 0)]


def test_restrike_threshold_applies_to_sounding_keys_only():
    """A second onset peak of 0.6 (over onset_threshold 0.5) re-strikes a held note
    by default, not with restrike_threshold 0.8; a trigger under it stays armed, so
    the onset still rising past 0.8 re-strikes at that frame. A silent key starts at 0.6."""
    frame, onset, _ = blank(40)
    onset[2, KEY] = 0.9
    onset[12, KEY] = 0.6
    frame[2:30, KEY] = 0.9
    spec = DecoderSpec(**{**SPEC.__dict__, "restrike_threshold": 0.8})
    assert [e.frame for e in run(frame, onset)[0] if e.on] == [2, 12]
    assert [e.frame for e in run(frame, onset, spec=spec)[0] if e.on] == [2]
    onset[13, KEY] = 0.85
    assert summary(run(frame, onset, spec=spec)[0])[:3] == [(2, C4, True, 114), (13, C4, False, 0),
                                                            (13, C4, True, 108)]
    frame, onset, _ = blank(20)
    onset[3, KEY] = 0.6
    frame[3:10, KEY] = 0.9
    assert [e.frame for e in run(frame, onset, spec=spec)[0] if e.on] == [3]


def test_restrike_threshold_under_the_onset_threshold_lets_a_held_key_restrike_lower():
    """onset_threshold 0.5, restrike_threshold 0.3: a held note's second onset peak of 0.4
    re-strikes it (the key was let go and struck again under its ringing), where without
    the setting it would not; a silent key's onset of 0.4 still starts nothing."""
    frame, onset, _ = blank(40)
    onset[2, KEY] = 0.9
    onset[12, KEY] = 0.4
    frame[2:30, KEY] = 0.9
    spec = DecoderSpec(**{**SPEC.__dict__, "restrike_threshold": 0.3})
    assert [e.frame for e in run(frame, onset)[0] if e.on] == [2]
    assert summary(run(frame, onset, spec=spec)[0])[:3] == [(2, C4, True, 114), (12, C4, False, 0),
                                                            (12, C4, True, 51)]
    frame, onset, _ = blank(20)
    onset[3, KEY] = 0.4
    frame[3:10, KEY] = 0.9
    assert [e.frame for e in run(frame, onset, spec=spec)[0] if e.on] == []


def test_frame_started_note_needs_onset_support_when_asked():
    """With frame_onset_support 0.2, a frame-started note needs the onset head at
    0.2 or more within the last 50 ms (5 frames): an onset too weak to trigger
    (0.3 < 0.5) two frames before the crossing is enough, one 80 ms before is not."""
    frame, onset, _ = blank(30)
    frame[6:15, KEY] = 0.9                      # crosses 0.6 at frame 6
    spec = DecoderSpec(**{**SPEC.__dict__, "frame_onset_threshold": 0.6, "frame_onset_support": 0.2})
    assert run(frame, onset, spec=spec)[0] == []
    onset[4, KEY] = 0.3
    assert [(e.frame, e.on) for e in run(frame, onset, spec=spec)[0]] == [(6, True), (15, False)]
    onset[4, KEY], onset[0, KEY] = 0.0, 0.3     # 6 frames before the crossing: outside 50 ms
    assert run(frame, onset, spec=spec)[0] == []


def test_min_duration():
    frame, onset, _ = blank(20)
    onset[2, KEY] = 0.9
    frame[2, KEY] = 0.9  # one frame of activity only
    events, _ = run(frame, onset)
    assert summary(events) == [(2, C4, True, 114), (5, C4, False, 0)]  # 30 ms = 3 frames


def test_hysteresis():
    frame, onset, _ = blank(30)
    onset[2, KEY] = 0.9
    frame[2:6, KEY] = 0.9
    frame[6:12, KEY] = 0.4  # below frame_threshold, above off_threshold: note held
    frame[12:, KEY] = 0.2
    events, _ = run(frame, onset)
    assert summary(events) == [(2, C4, True, 114), (12, C4, False, 0)]


def test_release_ratio_ends_a_note_whose_frame_drops_from_its_peak():
    frame, onset, _ = blank(40)
    onset[2, KEY] = 0.9
    frame[2:8, KEY] = np.linspace(0.6, 0.95, 6)  # peak 0.95 at frame 7
    frame[8:20, KEY] = 0.5                        # decays slowly: above 0.4 * 0.95 = 0.38
    frame[20:, KEY] = 0.35                        # the key is released: below 0.38, above off_threshold
    events, _ = run(frame, onset)
    assert summary(events)[-1] == (40, C4, False, 0)  # without it: held to the end
    spec = DecoderSpec(**{**SPEC.__dict__, "release_ratio": 0.4})
    events, _ = run(frame, onset, spec=spec)
    assert summary(events) == [(2, C4, True, 114), (20, C4, False, 0)]


def test_release_ratio_peak_restarts_with_each_note():
    """A re-strike starts a new peak: a soft second strike is not ended by the first one's peak."""
    frame, onset, _ = blank(60)
    onset[2, KEY] = 0.9
    frame[2:20, KEY] = 0.95
    onset[20, KEY] = 0.9                       # re-strike, softer and held
    frame[20:50, KEY] = 0.45                   # < 0.5 * 0.95 but > 0.5 * 0.45
    spec = DecoderSpec(**{**SPEC.__dict__, "release_ratio": 0.5, "frame_threshold": 0.4})
    events, _ = run(frame, onset, spec=spec)
    assert summary(events) == [(2, C4, True, 114), (20, C4, False, 0), (20, C4, True, 114), (50, C4, False, 0)]


def test_note_that_never_latches_ends_below_frame_threshold():
    frame, onset, _ = blank(30)
    onset[2, KEY] = 0.9
    frame[2:20, KEY] = 0.4  # never reaches frame_threshold
    events, _ = run(frame, onset)
    assert summary(events) == [(2, C4, True, 114), (5, C4, False, 0)]


def test_close_closes_all_and_default_time():
    frame, onset, _ = blank(10)
    keys = [0, 39, 87]
    onset[4, keys] = 0.9
    frame[4:, keys] = 0.9
    dec = NoteDecoder(SPEC, HOP)
    ons = dec.process(Activations(0, frame, onset))
    assert [e.pitch for e in ons] == [21, 60, 108]
    assert dec.sounding == {21, 60, 108}
    offs = dec.close()
    assert [(e.pitch, e.on, e.frame) for e in offs] == [(21, False, 10), (60, False, 10), (108, False, 10)]
    assert all(e.time_s == pytest.approx(0.10) for e in offs)
    assert dec.sounding == set() and dec.close() == []


def test_close_time_never_before_last_frame():
    frame, onset, _ = blank(10)
    onset[4, KEY] = 0.9
    frame[4:, KEY] = 0.9
    dec = NoteDecoder(SPEC, HOP)
    dec.process(Activations(0, frame, onset))
    assert dec.close(0.02)[0].time_s == pytest.approx(0.10)
    dec.reset()
    dec.process(Activations(0, frame, onset))
    off = dec.close(0.5)[0]
    assert off.time_s == 0.5 and off.frame == 50


def test_reset_restores_start_state():
    frame, onset, vel = random_acts(np.random.default_rng(3), 200)
    dec = NoteDecoder(SPEC, HOP)
    a = dec.process(Activations(0, frame, onset, vel)) + dec.close()
    dec.reset()
    b = dec.process(Activations(0, frame, onset, vel)) + dec.close()
    assert a == b and a


def test_latency_frames():
    assert NoteDecoder(SPEC, HOP).latency_frames == 0


def random_acts(rng, n, keys=(0, 30, 39, 40, 87)):
    """Bursty activations: onsets as sparse spikes, frames as decaying holds."""
    frame, onset, vel = blank(n)
    for k in keys:
        t = 0
        while t < n:
            t += int(rng.integers(1, 25))
            if t >= n:
                break
            length = int(rng.integers(1, 30))
            onset[t:t + 2, k] = rng.uniform(0.3, 1.0, size=len(onset[t:t + 2, k]))
            frame[t:t + length, k] = np.linspace(1.0, rng.uniform(0, 0.6), len(frame[t:t + length, k]))
            vel[t:t + 2, k] = rng.uniform(0, 1)
    frame += rng.uniform(0, 0.35, size=frame.shape).astype(np.float32)
    onset += rng.uniform(0, 0.1, size=onset.shape).astype(np.float32)
    return np.clip(frame, 0, 1), np.clip(onset, 0, 1), vel


@pytest.mark.parametrize("extra", [{}, {"release_ratio": 0.5},
                                   {"restrike_threshold": 0.8, "frame_onset_threshold": 0.6,
                                    "frame_onset_support": 0.05}])
def test_chunked_equals_one_shot(extra):
    rng = np.random.default_rng(0)
    frame, onset, vel = random_acts(rng, 600)
    spec = DecoderSpec(**{**SPEC.__dict__, **extra})
    whole = NoteDecoder(spec, HOP)
    expected = whole.process(Activations(0, frame, onset, vel)) + whole.close()
    assert len(expected) > 50
    for _ in range(5):
        dec = NoteDecoder(spec, HOP)
        got, i = [], 0
        while i < len(frame):
            n = int(rng.integers(1, 40))
            got += dec.process(Activations(i, frame[i:i + n], onset[i:i + n], vel[i:i + n]))
            i += n
        got += dec.close()
        assert got == expected


def test_a_block_with_more_events_than_one_kernel_call_holds_gives_them_all_in_order():
    # every key struck every 8 frames for 400 frames: 88 * 50 ons and their offs, over EVENT_CAP
    n = 400
    frame = np.zeros((n, 88), np.float32)
    onset = np.zeros((n, 88), np.float32)
    for start in range(0, n, 8):
        frame[start:start + 5] = 0.9
        onset[start] = 0.95
    vel = np.full((n, 88), 0.5, np.float32)
    whole = NoteDecoder(SPEC, HOP)
    got = whole.process(Activations(0, frame, onset, vel))
    assert len(got) > EVENT_CAP
    framewise = NoteDecoder(SPEC, HOP)
    expected = [e for i in range(n) for e in framewise.process(Activations(i, frame[i:i + 1], onset[i:i + 1],
                                                                             vel[i:i + 1]))]
    assert got == expected
    assert sum(e.on for e in got) == 88 * 50


def test_frames_already_processed_are_skipped():
    rng = np.random.default_rng(1)
    frame, onset, vel = random_acts(rng, 100)
    whole = NoteDecoder(SPEC, HOP)
    expected = whole.process(Activations(0, frame, onset, vel))
    dec = NoteDecoder(SPEC, HOP)
    got = dec.process(Activations(0, frame[:60], onset[:60], vel[:60]))
    got += dec.process(Activations(50, frame[50:], onset[50:], vel[50:]))  # 10 frames overlap
    assert got == expected


def test_bad_shapes():
    dec = NoteDecoder(SPEC, HOP)
    with pytest.raises(ConfigError):
        dec.process(Activations(0, np.zeros((3, 87), np.float32), np.zeros((3, 87), np.float32)))


@pytest.mark.parametrize("bad, match", [
    ({"onset_threshold": 1.5}, "onset_threshold must be in 0..1"),
    ({"min_duration_ms": -1.0}, "min_duration_ms must be >= 0"),
    ({"noise_floor_range": (-1.5, -2.5)}, "noise_floor_range must be"),
    ({"onset_gate_threshold": 0.3}, "unknown setting"),  # an option no shipped model used: gone
])
def test_bad_settings_are_config_errors(bad, match):
    with pytest.raises(ConfigError, match=match):
        DecoderSpec.from_dict({**SPEC.__dict__, **bad})
    with pytest.raises(ConfigError, match="hop_s"):
        NoteDecoder(SPEC, 0.0)


def check_invariants(events, spec, hop, end_frame):
    times = [(e.frame, not e.on) for e in events]
    # time order; offs before ons within a frame
    assert [(f, not off) for f, off in times] == sorted((f, not off) for f, off in times)
    stamps = [e.time_s for e in events]
    assert stamps == sorted(stamps), "events out of time order"
    for e in events:  # ons at their frame; offs there (re-strike, close) or half a hop before (ended)
        allowed = [e.frame * hop] if e.on else [e.frame * hop, (e.frame - 0.5) * hop]
        assert any(e.time_s == pytest.approx(t) for t in allowed)
    on_at: dict[int, int] = {}
    on_time: dict[int, float] = {}
    min_frames = max(1, int(np.ceil(spec.min_duration_ms / 1000 / hop - 1e-9)))
    gap = int(np.ceil(spec.restrike_gap_ms / 1000 / hop - 1e-9))
    for e in events:
        if e.on:
            assert e.pitch not in on_at, "overlapping notes of one pitch"
            assert 1 <= e.velocity <= 127
            on_at[e.pitch] = e.frame
            on_time[e.pitch] = e.time_s
        else:
            assert e.pitch in on_at, "off without on"
            assert e.velocity == 0
            assert e.time_s > on_time.pop(e.pitch), "a note of no duration"
            dur = e.frame - on_at.pop(e.pitch)
            if e.frame != end_frame:  # close() may end a note early
                assert dur >= min(min_frames, max(gap, 1))
    assert not on_at, "note left on after close()"


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 150),
    on_thr=st.floats(0.2, 0.9),
    frame_thr=st.floats(0.2, 0.9),
    off_frac=st.floats(0.1, 1.0),
    min_ms=st.floats(0, 80),
    gap_ms=st.floats(0, 120),
    frame_on=st.one_of(st.none(), st.floats(0.1, 0.95)),
    release=st.one_of(st.none(), st.floats(0.05, 0.9)),
    restrike=st.one_of(st.none(), st.floats(0.2, 1.0)),
    support=st.one_of(st.none(), st.floats(0.0, 0.5)),
)
def test_invariants_property(seed, n, on_thr, frame_thr, off_frac, min_ms, gap_ms, frame_on, release, restrike,
                             support):
    spec = DecoderSpec(onset_threshold=on_thr, frame_threshold=frame_thr, off_threshold=frame_thr * off_frac,
                       min_duration_ms=min_ms, restrike_gap_ms=gap_ms, frame_onset_threshold=frame_on,
                       release_ratio=release, restrike_threshold=restrike, frame_onset_support=support)
    rng = np.random.default_rng(seed)
    frame, onset, vel = random_acts(rng, n, keys=(0, 5, 87))
    dec = NoteDecoder(spec, HOP)
    events, i = [], 0
    while i < n:
        k = int(rng.integers(1, 20))
        events += dec.process(Activations(i, frame[i:i + k], onset[i:i + k], vel[i:i + k]))
        i += k
    events += dec.close()
    check_invariants(events, spec, HOP, n)


# -- the offset head ends notes (offset_threshold) --------------------------------------------

OFF_SPEC = DecoderSpec(onset_threshold=0.5, frame_threshold=0.5, off_threshold=0.3, min_duration_ms=30.0,
                       restrike_gap_ms=60.0, frame_onset_threshold=0.8, offset_threshold=0.6)


def _ringing_note():
    """A note struck at frame 5 whose frame activation rings on to frame 40 (0.9:
    above frame_onset_threshold) while the offset head says the key rose at 20."""
    frame, onset, offset = blank(50)
    onset[5, KEY] = 0.9
    frame[5:40, KEY] = 0.9
    offset[20, KEY] = 0.7
    return frame, onset, offset


def _run_offset(frame, onset, offset, spec=OFF_SPEC):
    dec = NoteDecoder(spec, HOP)
    return dec.process(Activations(0, frame, onset, offset=offset)) + dec.close()


def test_the_offset_head_ends_a_latched_note_and_its_ringing_tail_starts_none():
    frame, onset, offset = _ringing_note()
    events = _run_offset(frame, onset, offset)
    assert summary(events) == [(5, C4, True, 114), (20, C4, False, 0)]
    assert events[1].time_s == pytest.approx(0.195)  # half a hop before, as a frame-ended note
    # without the setting, or without the head's rows, the frame head alone ends it
    assert summary(_run_offset(frame, onset, offset, SPEC))[-1][:3] == (40, C4, False)
    assert summary(_run_offset(frame, onset, None))[-1][:3] == (40, C4, False)


def test_the_offset_head_waits_for_min_duration_and_yields_to_an_onset():
    frame, onset, offset = _ringing_note()
    offset[6, KEY] = 0.9  # inside min_duration_ms (30 ms): ignored
    offset[20, KEY] = 0.0
    offset[25, KEY], onset[25, KEY] = 0.9, 0.6  # an onset on the same frame: a re-strike, not an off
    offset[30, KEY] = 0.65  # 50 ms into the re-struck note
    events = _run_offset(frame, onset, offset)
    assert [(e.frame, e.on) for e in events] == [(5, True), (25, False), (25, True), (30, False)]


def test_after_an_offset_off_a_frame_that_falls_and_rises_again_starts_a_note():
    frame, onset, offset = _ringing_note()
    frame[25:28, KEY] = 0.2  # fell below frame_onset_threshold ...
    frame[28:40, KEY] = 0.9  # ... and rose past it: a note the onset head missed
    events = _run_offset(frame, onset, offset)
    assert [(e.frame, e.on) for e in events] == [(5, True), (20, False), (28, True), (40, False)]


def test_offset_rows_must_match_the_frame_rows():
    frame, onset, offset = _ringing_note()
    with pytest.raises(ConfigError, match="offset must be"):
        _run_offset(frame, onset, offset[:10])
