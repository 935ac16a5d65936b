"""Live terminal view: sounding keys, input level, latency, overruns, notes/s, pedal.

On a TTY two status lines are redrawn in place with ANSI escapes (no curses):

    ·-··-·-··-·-·-··█·-··-·-·-··-·-··-·-·-··-·-·█··-·-··-·-·-··-·-··-·-·-··█·-··-·-··-·-·-··
    in  -12.3 dBFS pk  -24.0 rms [##########--------] | latency 52 ms | overruns 0 | 2.4 notes/s | 0:12.5

``pedal down`` / ``pedal up`` (shown for a model with a pedal head, or once
a pedal event came): the sustain pedal's state.
``overruns``: samples rtpitch's ring buffer dropped (the engine fell behind);
``overflows`` (shown once there are any): callbacks PortAudio flagged as input
overflow, audio lost before rtpitch saw it (the capture callback was late).

Keyboard row: one character per key (A0 .. C8): ``█`` sounding, ``·`` white
key, ``-`` black key.  ``CLIP`` shows (for a second) when a peak reaches
-0.1 dBFS.  Note lines (``  0.52 s  C4   on  v=64``, ``  0.60 s  pedal down``) scroll above the status
when ``print_notes`` is on.  Not on a TTY (piped, tests): no redraw at all,
just note lines (on by default there) and the closing summary.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from collections import deque
from typing import Sequence, TextIO

from ..events import LOWEST_MIDI, N_KEYS, Event, PedalEvent

NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
BLACK = {1, 3, 6, 8, 10}
SOUNDING, WHITE_KEY, BLACK_KEY = "█", "·", "-"
METER_FLOOR_DB = -60.0
METER_WIDTH = 20
CLIP_DB = -0.1
CLIP_HOLD_S = 1.0
RATE_WINDOW_S = 5.0


def note_name(pitch: int) -> str:
    """MIDI pitch -> name with octave, 60 -> 'C4'."""
    return f"{NAMES[pitch % 12]}{pitch // 12 - 1}"


def to_dbfs(amplitude: float) -> float:
    """Linear amplitude (1.0 = full scale) -> dBFS (floor -120)."""
    return 20.0 * math.log10(max(float(amplitude), 1e-6))


def _fmt_clock(seconds: float) -> str:
    m, s = divmod(max(seconds, 0.0), 60.0)
    return f"{int(m)}:{s:04.1f}"


class TerminalView:
    """Status display and note log; also a :class:`~rtpitch.sinks.Sink`.

    Parameters
    ----------
    stream : text stream, default sys.stderr
    refresh_hz : float
        Most redraws per second; :meth:`update` calls in between only record.
    latency_ms : float or None
        The latency budget to show (computed by the caller).
    print_notes : bool or None
        Print a line per note event; default: only when not live-redrawing.
    enabled : bool or None
        Live ANSI redraw; default ``stream.isatty()``.
    pedal : bool
        Show the sustain pedal's state from the start (the model has a pedal
        head); otherwise from the first pedal event on.

    Give note events either to :meth:`send` or to ``update(events=...)``, once.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        refresh_hz: float = 20.0,
        latency_ms: float | None = None,
        print_notes: bool | None = None,
        enabled: bool | None = None,
        pedal: bool = False,
    ):
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.print_notes = (not enabled) if print_notes is None else print_notes
        self.latency_ms = latency_ms
        self._min_interval = 1.0 / refresh_hz if refresh_hz > 0 else 0.0
        self._sounding: set[int] = set()
        self.show_pedal = pedal
        self.pedal_down = False
        self._on_times: deque[float] = deque()
        self.n_notes = 0
        self.overruns = 0
        self.input_overflows = 0
        self.audio_time_s = 0.0
        self._peak = -math.inf  # dBFS, max since last draw
        self._peak_shown = -math.inf
        self._rms = -math.inf
        self._clip_until = -math.inf
        self._last_draw = -math.inf
        self._drawn_lines = 0
        self._closed = False

    # -- sink --------------------------------------------------------------
    def send(self, events: Sequence[Event]) -> None:
        """Track sounding keys, note rate and the pedal; print note lines if ``print_notes``."""
        if not events:
            return
        lines = []
        for ev in events:
            if isinstance(ev, PedalEvent):
                self.pedal_down = ev.down
                self.show_pedal = True
            elif ev.on:
                self._sounding.add(ev.pitch)
                self._on_times.append(ev.time_s)
                self.n_notes += 1
            else:
                self._sounding.discard(ev.pitch)
            if self.print_notes:
                lines.append(self.note_line(ev))
        if lines:
            self._write_above("".join(line + "\n" for line in lines))

    @staticmethod
    def note_line(ev: Event) -> str:
        """'  0.52 s  C4   on  v=64' / '  0.80 s  C4   off' / '  0.60 s  pedal down'."""
        if isinstance(ev, PedalEvent):
            return f"{ev.time_s:7.2f} s  pedal {'down' if ev.down else 'up'}"
        if ev.on:
            return f"{ev.time_s:7.2f} s  {note_name(ev.pitch):<4} on  v={ev.velocity}"
        return f"{ev.time_s:7.2f} s  {note_name(ev.pitch):<4} off"

    def update(
        self,
        *,
        events: Sequence[Event] = (),
        level_peak: float | None = None,
        level_rms: float | None = None,
        overruns: int | None = None,
        input_overflows: int | None = None,
        audio_time_s: float | None = None,
    ) -> None:
        """Record the latest state; redraw at most ``refresh_hz`` times a second.

        ``level_peak`` and ``level_rms`` are the recent input's peak and RMS in
        dBFS (0 = full scale; see :func:`to_dbfs`).  Between redraws the highest
        peak is kept, so short peaks are not missed.
        """
        if events:
            self.send(events)
        if level_peak is not None:
            self._peak = max(self._peak, float(level_peak))
            if level_peak >= CLIP_DB:
                self._clip_until = time.monotonic() + CLIP_HOLD_S
        if level_rms is not None:
            self._rms = float(level_rms)
        if overruns is not None:
            self.overruns = int(overruns)
        if input_overflows is not None:
            self.input_overflows = int(input_overflows)
        if audio_time_s is not None:
            self.audio_time_s = float(audio_time_s)
        if not self.enabled or self._closed:
            return
        now = time.monotonic()
        if now - self._last_draw >= self._min_interval:
            self._redraw(now)

    # -- rendering ----------------------------------------------------------
    def key_row(self) -> str:
        """88 characters, A0 .. C8."""
        chars = []
        for p in range(LOWEST_MIDI, LOWEST_MIDI + N_KEYS):
            if p in self._sounding:
                chars.append(SOUNDING)
            else:
                chars.append(BLACK_KEY if p % 12 in BLACK else WHITE_KEY)
        return "".join(chars)

    def notes_per_s(self) -> float:
        """Note-ons per second over the last 5 s of audio."""
        t = self.audio_time_s
        while self._on_times and self._on_times[0] <= t - RATE_WINDOW_S:
            self._on_times.popleft()
        span = min(RATE_WINDOW_S, t) if t > 0 else 0.0
        return len(self._on_times) / span if span > 0 else 0.0

    def status_line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        if self._peak > -math.inf:
            self._peak_shown = self._peak
        pk, rms = max(self._peak_shown, -120.0), max(self._rms, -120.0)
        fill = int(round(METER_WIDTH * (min(max(pk, METER_FLOOR_DB), 0.0) - METER_FLOOR_DB) / -METER_FLOOR_DB))
        bar = "#" * fill + "-" * (METER_WIDTH - fill)
        clip = " CLIP" if now < self._clip_until else ""
        parts = [f"in {pk:6.1f} dBFS pk {rms:6.1f} rms [{bar}]{clip}"]
        if self.latency_ms is not None:
            parts.append(f"latency {self.latency_ms:.0f} ms")
        parts.append(f"overruns {self.overruns}")
        if self.input_overflows:
            parts.append(f"overflows {self.input_overflows}")
        parts.append(f"{self.notes_per_s():.1f} notes/s")
        if self.show_pedal:
            parts.append("pedal down" if self.pedal_down else "pedal up")
        parts.append(_fmt_clock(self.audio_time_s))
        return " | ".join(parts)

    def _erase(self) -> str:
        if self._drawn_lines == 0:
            return ""
        n, self._drawn_lines = self._drawn_lines, 0
        return f"\x1b[{n}A\r\x1b[J"

    def _status_text(self, now: float) -> str:
        # cut to the terminal width: a wrapped line would break the in-place redraw
        width = max(20, shutil.get_terminal_size((120, 24)).columns - 1)
        lines = [self.key_row()[:width], self.status_line(now)[:width]]
        self._drawn_lines = len(lines)
        return "".join(f"\x1b[2K{line}\n" for line in lines)

    def _redraw(self, now: float) -> None:
        text = self._erase() + self._status_text(now)
        self._last_draw = now
        self._peak = -math.inf
        self._write(text)

    def _write_above(self, text: str) -> None:
        """Print log lines; on a live TTY above the status, which is redrawn below them."""
        if self.enabled and self._drawn_lines and not self._closed:
            now = time.monotonic()
            self._write(self._erase() + text + self._status_text(now))
        else:
            self._write(text)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken terminal must not stop the engine

    def summary(self) -> str:
        return (
            f"rtpitch: {self.n_notes} notes in {_fmt_clock(self.audio_time_s)} of audio, "
            f"{self.overruns} overruns"
            + (f", {self.input_overflows} input overflows" if self.input_overflows else "")
        )

    def close(self) -> None:
        """Final redraw (TTY) and a one-line summary.  Idempotent."""
        if self._closed:
            return
        if self.enabled:
            self._redraw(time.monotonic())
        self._closed = True
        self._write(self.summary() + "\n")
