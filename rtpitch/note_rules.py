"""The note decoder's per-frame rules, compiled (numba): :class:`rtpitch.decoder.NoteDecoder`
runs its frames through :func:`decide_frames`; the rules are in that module's docstring.

Each key is decided on its own, so the kernel walks frames, then keys, with the state
of each key in arrays of 88 that persist between calls (a stream cut anywhere gives the
same events). Comparisons and arithmetic stay in float32, as the thresholds are.
"""

from __future__ import annotations

import numba
import numpy as np

ENDED, RESTRUCK, ON = 0, 1, 2  # event kinds, in the order a frame emits them
NEW_ON, RESTRUCK_ON = 1, 2  # a key's note-on this frame (the scratch array ``started``)


@numba.njit(nogil=True, cache=True)
def decide_frames(frame, onset, offset, on_thr, trig_sounding, frame_on_thr, start, k0, limits, thresholds,
                  sounding, latched, armed, on_frame, prev_onset, prev_frame, peak, support_frame,
                  started, ev_row, ev_kind, ev_pitch):
    """Decide rows ``start ..`` of ``frame`` / ``onset`` (float32 (n, 88)), row i being frame
    ``k0 + i``; stops early when the event buffers could overflow.

    offset: float32 (n, 88) offset-head activations, or (0, 88) for none. on_thr,
    trig_sounding (a sounding key's trigger threshold), frame_on_thr: float32 (n,) per row.
    limits: int64 [gap_frames, min_frames, support_frames (-1: no onset support)];
    thresholds: float32 [gate, frame, off, release ratio, restrike, offset-head, onset support].
    The state arrays (88,) are updated in place; started (88,) int8 is scratch (0, NEW_ON, RESTRUCK_ON). Events go to
    ev_row / ev_kind / ev_pitch (int64 (cap,), cap >= 2 * 88), per row: ENDED keys,
    RESTRUCK keys, then ON keys (re-strikes' ons too), each by key.
    Returns (the row after the last one decided, the number of events written).
    """
    n_keys = frame.shape[1]
    cap = ev_row.shape[0]
    gap_frames, min_frames, support_frames = limits[0], limits[1], limits[2]
    gate_thr, frame_thr, off_thr, release = thresholds[0], thresholds[1], thresholds[2], thresholds[3]
    restrike_thr, offset_thr, support_thr = thresholds[4], thresholds[5], thresholds[6]
    use_offset = offset.shape[0] > 0
    n_ev = 0
    for i in range(start, frame.shape[0]):
        if n_ev + 2 * n_keys > cap:
            return i, n_ev
        k = k0 + i
        n_restruck = 0
        for p in range(n_keys):
            f, o = frame[i, p], onset[i, p]
            was = sounding[p]
            # a sounding key triggers at trig_sounding (restrike_threshold - onset_threshold under the onset
            # threshold where that is negative, so it moves with the noise-adaptive threshold)
            trig = armed[p] and o >= (trig_sounding[i] if was else on_thr[i]) and o > prev_onset[p]
            gate = f >= gate_thr
            age = k - on_frame[p]
            in_gap = trig and was and age < gap_frames
            restrike = trig and was and not in_gap and gate and o >= restrike_thr
            rise = f >= frame_on_thr[i] and prev_frame[p] < frame_on_thr[i]
            if support_frames >= 0:
                if o >= support_thr:
                    support_frame[p] = k
                rise = rise and k - support_frame[p] <= support_frames
            new_on = not was and ((trig and gate) or rise)
            if was and f >= frame_thr:
                latched[p] = True
            if f > peak[p]:  # a silent key's peak is unused: a note-on resets it
                peak[p] = f
            keep_thr = max(off_thr, release * peak[p]) if latched[p] else frame_thr
            may_end = was and not restrike and age >= min_frames
            ended = may_end and f < keep_thr
            if use_offset and may_end and latched[p] and o < on_thr[i] and offset[i, p] >= offset_thr:
                ended = True
            consumed = restrike or new_on or in_gap  # a trigger under restrike_thr stays armed: it may still rise
            armed[p] = (armed[p] and not consumed) or o < prev_onset[p] or o < on_thr[i]
            prev_onset[p] = o
            prev_frame[p] = f
            if ended:
                ev_row[n_ev], ev_kind[n_ev], ev_pitch[n_ev] = i, ENDED, p
                n_ev += 1
            started[p] = RESTRUCK_ON if restrike else (NEW_ON if new_on else 0)
            if restrike:
                n_restruck += 1
            if restrike or new_on:
                on_frame[p] = k
                latched[p] = f >= frame_thr
                peak[p] = f
            sounding[p] = (was and not ended) or new_on
        if n_restruck:
            for p in range(n_keys):
                if started[p] == RESTRUCK_ON:
                    ev_row[n_ev], ev_kind[n_ev], ev_pitch[n_ev] = i, RESTRUCK, p
                    n_ev += 1
        for p in range(n_keys):
            if started[p]:
                ev_row[n_ev], ev_kind[n_ev], ev_pitch[n_ev] = i, ON, p
                n_ev += 1
    return frame.shape[0], n_ev
