"""Streaming note decoder: per-frame activations -> MIDI note and pedal events.

Onsets-and-Frames style, decided frame by frame with no lookahead of its own
(``latency_frames == 0``): everything it sees about frame ``k`` it decides at
frame ``k``.  Each key is decided on its own; the rules run compiled
(rtpitch/note_rules.py).

Rules for key ``p`` at frame ``k`` (thresholds from :class:`DecoderSpec`):

* **Onset trigger**: ``onset[k] >= onset_threshold`` and ``onset[k] > onset[k-1]``
  and the key is *armed*.  With ``noise_floor_range`` and ``noisy_onset_threshold``
  set and the activations carrying the input's noise floor, the threshold rises
  linearly with the floor over that range up to ``noisy_onset_threshold``: in
  steady loud noise the onset head now and then passes 0.7 on nothing, while
  played notes still pass the higher threshold (frame-started notes likewise:
  their threshold rises over the same range from ``frame_onset_threshold`` to 1,
  and at the top of it they are off, since the frame head too rises on loud
  noise).  A key is armed at the start, and re-armed by any frame
  whose onset falls (``onset[k] < onset[k-1]``) or is below the threshold.  A
  trigger that is used (or ignored because of the re-strike gap) disarms the key,
  so one onset peak gives at most one note: the note starts on the first rising
  frame over the threshold, not on the peak (which would add a frame of delay).
* **Note-on**: a trigger on a silent key whose ``frame[k] >= off_threshold``
  (onset-gated, with frame support, so an onset with no sounding evidence is
  dropped; the key stays armed, so if frame activity catches up while the onset
  still rises, the note starts then).
* **Frame-started note** (only when ``frame_onset_threshold`` is set): a silent
  key whose frame activation rises past ``frame_onset_threshold``
  (``frame[k-1] <`` it ``<= frame[k]``) starts a note without an onset trigger:
  a note whose onset the model missed (a soft note in a chord) still sounds.
  With ``frame_onset_support`` set, only if the onset head reached that value
  at some frame of the last ``frame_onset_support_ms``: a weak onset, not a held
  or decaying note's frame activation rising again.
* **Re-strike**: a trigger on a sounding key, at least ``restrike_gap_ms`` after
  that note's on, with ``frame[k] >= off_threshold`` and, when
  ``restrike_threshold`` is set, ``onset[k] >=`` it: note-off then note-on at
  frame ``k`` (off first).  A sounding key's trigger threshold is the lower of
  ``onset_threshold`` and ``restrike_threshold`` (a lower one raised with the
  noise floor by as much as the onset threshold), so a threshold under the onset
  threshold lets a re-struck key's weaker onset through: the key was let go
  under a ringing note, and the frame head, still high, hid it.  A trigger
  inside the gap is ignored; one under ``restrike_threshold`` leaves the key
  armed (the onset may still rise past it).  (A held note's onset head wobbles
  when other notes start, so a threshold over the onset threshold guards
  against that.)
* **Note-off** (hysteresis): a note is *latched* once its frame activation has
  reached ``frame_threshold``; a latched note ends at the first frame with
  ``frame < off_threshold`` or, with ``release_ratio`` set, below that
  fraction of the highest frame activation since its on (the sound of a held
  key decays slowly, a released one drops), a note not (yet) latched at the first frame with
  ``frame < frame_threshold``.  Never earlier than ``min_duration_ms`` after
  its on (at least one frame); a re-strike may end a note earlier than that
  when ``restrike_gap_ms < min_duration_ms``.  Such an off is stamped half a hop
  *before* frame ``k``: the frame head is trained on key-down frames, so the key
  was released between frame ``k - 1`` (last seen down) and frame ``k``, and the
  midpoint is the unbiased estimate (stamping it at ``k`` makes every note half
  a hop too long).
* **Offset-head note-off** (only when ``offset_threshold`` is set and the
  activations carry the model's offset head): a latched note also ends at the
  first frame whose offset activation reaches ``offset_threshold`` (the head is
  trained on key releases; the frame head's tail lags them, most of all while
  the sound rings on), no earlier than ``min_duration_ms`` and not on a frame
  whose onset activation reaches the onset threshold.  A frame-started note
  needs the frame activation to rise past ``frame_onset_threshold``, so the
  tail of a note ended this way, still above it, starts none.  What each rule
  changed on the validation sets:
  docs/RESULTS.md, "Decoder rules".
* **Velocity**: ``round(127 * velocity[k])`` when the model has a velocity head,
  else ``round(127 * onset[k])`` (so a just-over-threshold onset gives about 64);
  clipped to 1..127.  Note-offs have velocity 0.

**Sustain pedal** (:class:`PedalDecoder`, only when the activations carry a
``pedal`` row, from a model with a pedal head): hysteresis on the pedal
probability: up -> down at the first frame with ``pedal >= pedal_on_threshold``,
down -> up at the first frame with ``pedal < pedal_off_threshold``, and never
within ``pedal_min_change_ms`` of the last change (a change due inside it
happens at the first later frame whose value still calls for it).  A change at
frame ``k`` is stamped half a hop before it, as ended notes' offs are (the
pedal moved between frame ``k - 1`` and frame ``k``), and not before the
stream's start.  The pedal does not lengthen notes: note-offs stay key releases
and a sink sends the pedal as MIDI CC64, so a synth sustains what was heard.

Events carry ``time_s = frame * hop_s`` (note-offs of ended notes: half a hop
less); within a frame the ended notes' offs come first, then re-strikes' offs,
then ons, each group sorted by pitch; a pedal change comes after the ended
notes' offs stamped at the same time.  ``close()`` ends every sounding note, so every on
has exactly one off (and a pedal that is down goes up).  Output for a stream cut in any chunk sizes is identical to
the output for the whole stream.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .events import LOWEST_MIDI, N_KEYS, Activations, Event, NoteEvent, PedalEvent
from .note_rules import ENDED, ON, decide_frames

EVENT_CAP = 4096  # events one decide_frames call may write (it stops early rather than overflow)


@dataclass(frozen=True)
class DecoderSpec:
    """The decoder's settings (probabilities, ms): a model JSON's ``"decoder"``.

    Raises ConfigError for a value that cannot work.
    """

    onset_threshold: float = 0.5
    frame_threshold: float = 0.5
    off_threshold: float = 0.3
    min_duration_ms: float = 30.0
    restrike_gap_ms: float = 60.0
    frame_onset_threshold: float | None = None  # a silent key whose frame rises past it starts a note; None: off
    # noise-adaptive onset threshold: it rises linearly from onset_threshold, at a
    # noise floor (rtpitch/noise_floor.py) of noise_floor_range[0], to
    # noisy_onset_threshold at noise_floor_range[1]; None: a fixed threshold
    noise_floor_range: tuple | None = None
    noisy_onset_threshold: float | None = None
    # a latched note also ends when its frame activation falls below this
    # fraction of its peak since the note-on (a decaying note, key released); None: off
    release_ratio: float | None = None
    # onset activation a trigger on a sounding key needs to re-strike it, above or below
    # onset_threshold (module docstring); None: onset_threshold
    restrike_threshold: float | None = None
    # a frame-started note also needs the onset head to have reached this within the
    # last frame_onset_support_ms (an onset too weak to trigger, not a held note's
    # frame rising again); None: no onset needed
    frame_onset_support: float | None = None
    frame_onset_support_ms: float = 50.0
    # a latched note also ends at a frame whose offset-head activation reaches this
    # (activations with an offset head only); None: off
    offset_threshold: float | None = None
    # sustain pedal (models with a pedal head): down at >= pedal_on_threshold, up below
    # pedal_off_threshold, at most one change per pedal_min_change_ms
    pedal_on_threshold: float = 0.5
    pedal_off_threshold: float = 0.3
    pedal_min_change_ms: float = 50.0

    def __post_init__(self):
        for name in ("onset_threshold", "frame_threshold", "off_threshold", "frame_onset_threshold",
                     "noisy_onset_threshold", "release_ratio", "restrike_threshold", "frame_onset_support",
                     "offset_threshold", "pedal_on_threshold", "pedal_off_threshold"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ConfigError(f"decoder: {name} must be in 0..1, got {v}")
        for name in ("min_duration_ms", "restrike_gap_ms", "frame_onset_support_ms", "pedal_min_change_ms"):
            if not getattr(self, name) >= 0.0:
                raise ConfigError(f"decoder: {name} must be >= 0 ms, got {getattr(self, name)}")
        if not self.pedal_off_threshold <= self.pedal_on_threshold:
            raise ConfigError(f"decoder: pedal_off_threshold ({self.pedal_off_threshold}) must be <= "
                              f"pedal_on_threshold ({self.pedal_on_threshold})")
        r = self.noise_floor_range
        if r is not None:
            if len(r) != 2 or not r[1] > r[0]:
                raise ConfigError(f"decoder: noise_floor_range must be (low, high) with high > low, got {r}")
            object.__setattr__(self, "noise_floor_range", (float(r[0]), float(r[1])))

    @classmethod
    def from_dict(cls, d: dict) -> "DecoderSpec":
        """From a model JSON's ``"decoder"``; an unknown key is a ConfigError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"decoder: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**d)


def _ms_to_frames(ms: float, hop_s: float) -> int:
    """Smallest frame count covering ``ms`` milliseconds (tolerant to float noise)."""
    return max(0, math.ceil(ms / 1000.0 / hop_s - 1e-9))


class NoteDecoder:
    """Turn streamed :class:`Activations` into :class:`NoteEvent` lists.

    Parameters
    ----------
    spec : DecoderSpec
        Thresholds (probabilities) and durations (ms).
    hop_s : float
        Seconds between frames; event times are ``frame * hop_s`` (ended notes'
        offs: ``(frame - 0.5) * hop_s``).
    """

    latency_frames = 0

    def __init__(self, spec: DecoderSpec, hop_s: float):
        if not hop_s > 0:
            raise ConfigError(f"decoder: hop_s must be > 0, got {hop_s}")
        self.spec = spec
        self.hop_s = float(hop_s)
        self._on_thr = np.float32(spec.onset_threshold)
        fon = spec.frame_onset_threshold
        self._frame_on_thr = np.float32(np.inf if fon is None else fon)
        self._noisy = spec.noise_floor_range is not None and spec.noisy_onset_threshold is not None
        if self._noisy:
            lo, hi = spec.noise_floor_range
            self._floor_lo, self._floor_span = np.float32(lo), np.float32(hi - lo)
            self._noisy_rise = np.float32(spec.noisy_onset_threshold - spec.onset_threshold)
        rs = spec.onset_threshold if spec.restrike_threshold is None else spec.restrike_threshold
        self._restrike_lower = np.float32(min(0.0, rs - spec.onset_threshold))  # a sounding key's trigger, under on_thr
        support = spec.frame_onset_support
        self._use_offset = spec.offset_threshold is not None
        # the kernel's settings (note_rules.decide_frames: limits, thresholds)
        self._limits = np.array([_ms_to_frames(spec.restrike_gap_ms, hop_s),
                                 max(1, _ms_to_frames(spec.min_duration_ms, hop_s)),
                                 -1 if support is None else _ms_to_frames(spec.frame_onset_support_ms, hop_s)],
                                np.int64)
        self._rule_thresholds = np.array(
            [spec.off_threshold,  # the frame support an onset needs
             spec.frame_threshold, spec.off_threshold, spec.release_ratio or 0.0, rs,
             np.inf if spec.offset_threshold is None else spec.offset_threshold,
             -np.inf if support is None else support], np.float32)
        self._no_offset = np.zeros((0, N_KEYS), np.float32)
        self._started_scratch = np.zeros(N_KEYS, np.int8)
        self._ev_row = np.zeros(EVENT_CAP, np.int64)
        self._ev_kind = np.zeros(EVENT_CAP, np.int64)
        self._ev_pitch = np.zeros(EVENT_CAP, np.int64)
        self.reset()

    def reset(self) -> None:
        """Forget all notes and history (no events are emitted)."""
        self._sounding = np.zeros(N_KEYS, dtype=bool)
        self._latched = np.zeros(N_KEYS, dtype=bool)
        self._armed = np.ones(N_KEYS, dtype=bool)
        self._on_frame = np.zeros(N_KEYS, dtype=np.int64)
        self._prev_onset = np.zeros(N_KEYS, dtype=np.float32)
        self._prev_frame = np.zeros(N_KEYS, dtype=np.float32)
        self._peak = np.zeros(N_KEYS, dtype=np.float32)  # highest frame activation of the sounding note
        self._support_frame = np.full(N_KEYS, -(1 << 40), dtype=np.int64)  # last frame onset >= frame_onset_support
        self._next_frame = 0  # index of the next frame to decide
        self._started = False
        self.start_s = 0.0  # audio time of frame 0 (Activations.start_s)

    @property
    def sounding(self) -> set[int]:
        """MIDI pitches of the notes currently on."""
        return {int(i) + LOWEST_MIDI for i in np.flatnonzero(self._sounding)}

    @property
    def next_frame(self) -> int:
        """Index of the frame after the last one processed."""
        return self._next_frame

    def process(self, acts: Activations) -> list[NoteEvent]:
        """Decide frames ``acts.first_frame ..``; returns their events in time order.

        Frames already processed (index < :attr:`next_frame`) are skipped; a gap
        in frame indices is accepted (the state carries over).
        """
        frame = np.asarray(acts.frame, dtype=np.float32)
        onset = np.asarray(acts.onset, dtype=np.float32)
        vel = None if acts.velocity is None else np.asarray(acts.velocity, dtype=np.float32)
        use_offset = acts.offset is not None and self._use_offset
        offset = np.asarray(acts.offset, np.float32) if use_offset else None
        if frame.ndim != 2 or frame.shape[1] != N_KEYS or onset.shape != frame.shape:
            raise ConfigError(f"decoder: activations must be (n, {N_KEYS}); got frame {frame.shape}, onset {onset.shape}")
        if vel is not None and vel.shape != frame.shape:
            raise ConfigError(f"decoder: velocity must be {frame.shape}, got {vel.shape}")
        if offset is not None and offset.shape != frame.shape:
            raise ConfigError(f"decoder: offset must be {frame.shape}, got {offset.shape}")
        start = 0
        if self._started and acts.first_frame < self._next_frame:
            start = self._next_frame - acts.first_frame
        self.start_s = acts.start_s
        n = frame.shape[0]
        if start >= n:
            return []
        on_thr, trig_sounding, frame_on_thr = self._row_thresholds(acts, n)
        events: list[NoteEvent] = []
        i = start
        while i < n:
            i, n_ev = decide_frames(frame, onset, self._no_offset if offset is None else offset, on_thr, trig_sounding,
                                    frame_on_thr, i, acts.first_frame, self._limits, self._rule_thresholds,
                                    self._sounding, self._latched, self._armed, self._on_frame, self._prev_onset,
                                    self._prev_frame, self._peak, self._support_frame, self._started_scratch,
                                    self._ev_row, self._ev_kind, self._ev_pitch)
            events += self._events(n_ev, acts.first_frame, onset if vel is None else vel)
        self._next_frame = acts.first_frame + n
        self._started = True
        return events

    def _row_thresholds(self, acts: Activations, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float32 (n,) each: the onset threshold, a sounding key's trigger threshold and the
        frame-started threshold of every row (they move with the noise floor: module docstring)."""
        on_thr = np.full(n, self._on_thr, np.float32)
        frame_on = np.full(n, self._frame_on_thr, np.float32)
        if self._noisy and acts.noise_floor is not None:
            floor = np.asarray(acts.noise_floor, np.float32)[:n]
            rise = np.clip((floor - self._floor_lo) / self._floor_span, 0.0, 1.0).astype(np.float32)
            on_thr = (self._on_thr + self._noisy_rise * rise).astype(np.float32)
            if np.isfinite(self._frame_on_thr):
                frame_on = (self._frame_on_thr + (1.0 - self._frame_on_thr) * rise).astype(np.float32)
            frame_on[rise >= 1.0] = np.inf
        return on_thr, (on_thr + self._restrike_lower).astype(np.float32), frame_on

    def _events(self, n_ev: int, first_frame: int, v: np.ndarray) -> list[NoteEvent]:
        """NoteEvents of the first ``n_ev`` rows of the kernel's event buffers."""
        rows, kinds, keys = self._ev_row[:n_ev], self._ev_kind[:n_ev], self._ev_pitch[:n_ev]
        vels = np.clip(np.rint(v[rows, keys] * 127.0), 1, 127).astype(int)
        out = []
        for row, kind, key, vel in zip(rows.tolist(), kinds.tolist(), keys.tolist(), vels.tolist()):
            k = first_frame + row
            t = self.start_s + k * self.hop_s
            if kind == ON:
                out.append(NoteEvent(t, key + LOWEST_MIDI, vel, True, k))
            else:
                out.append(NoteEvent(t - 0.5 * self.hop_s if kind == ENDED else t, key + LOWEST_MIDI, 0, False, k))
        return out

    def close(self, time_s: float | None = None) -> list[NoteEvent]:
        """Note-offs for every sounding note, sorted by pitch.

        ``time_s`` (audio time) defaults to the frame after the last processed
        one; an earlier time is moved to that frame so that no off precedes its
        on.  The decoder's history is kept (call :meth:`reset` to start a new
        stream).
        """
        if not self._sounding.any():
            return []
        t, k = _closing_time(self.start_s, self.hop_s, self._next_frame, time_s)
        events = [NoteEvent(t, int(p) + LOWEST_MIDI, 0, False, k) for p in np.flatnonzero(self._sounding)]
        self._sounding[:] = False
        self._latched[:] = False
        return events


class PedalDecoder:
    """Turn the ``pedal`` row of streamed :class:`Activations` into :class:`PedalEvent` lists
    (module docstring, "Sustain pedal"): hysteresis and a minimum time between changes.

    Parameters
    ----------
    spec : DecoderSpec
        ``pedal_on_threshold``, ``pedal_off_threshold`` (probabilities),
        ``pedal_min_change_ms``.
    hop_s : float
        Seconds between frames; a change at frame ``k`` is stamped ``(k - 0.5) * hop_s``
        (frame 0: ``0``), plus ``Activations.start_s``.
    """

    def __init__(self, spec: DecoderSpec, hop_s: float):
        if not hop_s > 0:
            raise ConfigError(f"decoder: hop_s must be > 0, got {hop_s}")
        self.hop_s = float(hop_s)
        self._on_thr = np.float32(spec.pedal_on_threshold)
        self._off_thr = np.float32(spec.pedal_off_threshold)
        self._min_frames = _ms_to_frames(spec.pedal_min_change_ms, hop_s)
        self.reset()

    def reset(self) -> None:
        """Pedal up, no history (no events are emitted)."""
        self.down = False
        self._changed = -(1 << 40)  # frame of the last change
        self._next_frame = 0
        self.start_s = 0.0

    def _time(self, k: int) -> float:
        return self.start_s + k * self.hop_s - 0.5 * self.hop_s if k > 0 else self.start_s

    def process(self, acts: Activations) -> list[PedalEvent]:
        """Decide frames ``acts.first_frame ..`` (those not yet processed); [] without ``acts.pedal``."""
        if acts.pedal is None:
            return []
        pedal = np.asarray(acts.pedal, dtype=np.float32)
        if pedal.shape != (acts.n_frames,):
            raise ConfigError(f"decoder: pedal must be ({acts.n_frames},), got {pedal.shape}")
        self.start_s = acts.start_s
        events = []
        for i in range(max(0, self._next_frame - acts.first_frame), pedal.shape[0]):
            k = acts.first_frame + i
            flip = pedal[i] < self._off_thr if self.down else pedal[i] >= self._on_thr
            if flip and k - self._changed >= self._min_frames:
                self.down = not self.down
                self._changed = k
                events.append(PedalEvent(self._time(k), self.down, k))
            self._next_frame = k + 1
        return events

    def close(self, time_s: float | None = None) -> list[PedalEvent]:
        """Pedal up if it is down, at the time :meth:`NoteDecoder.close` ends notes."""
        if not self.down:
            return []
        t, k = _closing_time(self.start_s, self.hop_s, self._next_frame, time_s)
        self.down = False
        return [PedalEvent(t, False, k)]


def _closing_time(start_s: float, hop_s: float, next_frame: int, time_s: float | None) -> tuple[float, int]:
    """(audio time s, frame) of a closing event: the frame after the last one
    processed, or ``time_s`` where that is later (never before what it closes)."""
    t = start_s + next_frame * hop_s
    if time_s is not None and time_s > t:
        return float(time_s), max(next_frame, int(round((time_s - start_s) / hop_s)))
    return t, next_frame


def _merge(notes: list[NoteEvent], pedal: list[PedalEvent]) -> list[Event]:
    """Both in time order (module docstring: a pedal change after the notes' offs of its time)."""
    if not pedal:
        return notes
    return sorted(notes + pedal, key=lambda e: (e.frame, e.time_s, isinstance(e, PedalEvent)))


class DecoderStage:
    """The decoder as a pipeline stage (:class:`rtpitch.stage.Stage`):
    :class:`Activations` in, note events (and pedal events, where the
    activations carry a pedal row) out, in time order; ``flush()`` ends every
    sounding note and lifts the pedal."""

    name = "decoder"
    latency_label = "decoder delay"

    def __init__(self, spec: DecoderSpec, hop_s: float):
        self.decoder = NoteDecoder(spec, hop_s)
        self.pedal = PedalDecoder(spec, hop_s)
        self.latency_s = NoteDecoder.latency_frames * hop_s

    def reset(self) -> None:
        self.decoder.reset()
        self.pedal.reset()

    def process(self, acts: Activations) -> list[Event]:
        return _merge(self.decoder.process(acts), self.pedal.process(acts))

    def flush(self, time_s: float | None = None) -> list[Event]:
        """Note-offs for every sounding note, then pedal up if it is down (at
        ``time_s``, audio time, if later than the next frame):
        :meth:`NoteDecoder.close`, :meth:`PedalDecoder.close`."""
        return self.decoder.close(time_s) + self.pedal.close(time_s)
