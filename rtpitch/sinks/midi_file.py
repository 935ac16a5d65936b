"""Record note events to a Standard MIDI File (mido).

Type 0, one track named ``rtpitch``, 480 ticks per beat at 120 bpm
(tempo 500000 us/beat), so one tick is 1/960 s and event times map exactly
to ``round(time_s * 960)`` ticks.  Pedal events (a model with a pedal head)
are control changes 64 (sustain): 127 down, 0 up, on the notes' channel; at
one tick note-offs come first, then the pedal, then note-ons.

With ``autosave_s`` (``rtpitch listen --record`` uses 30 s) the file is also
rewritten, atomically, in a background thread every ``autosave_s`` seconds
while events keep coming, with the notes still sounding ended (and the pedal
lifted) at the latest event: if the process is killed (SIGKILL, out of
memory, power loss, a crash in a native library) the take survives up to the
last autosave.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

from ..atomic_file import write_atomic
from ..errors import MidiError
from ..events import SUSTAIN_CC, Event, NoteEvent, PedalEvent

TICKS_PER_BEAT = 480
TEMPO_US = 500_000
TICKS_PER_S = TICKS_PER_BEAT * 1_000_000 / TEMPO_US  # 960
TRACK_NAME = "rtpitch"


def _rank(ev: Event) -> int:
    """Order at one tick: note-offs, the pedal, note-ons (as the decoder emits them)."""
    if isinstance(ev, PedalEvent):
        return 1
    return 2 if ev.on else 0


def _build_file(events: Sequence[Event], channel: int):
    import mido

    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("track_name", name=TRACK_NAME, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=TEMPO_US, time=0))
    # stable sort: time order, offs before the pedal before ons at one tick
    order = sorted(events, key=lambda e: (round(e.time_s * TICKS_PER_S), _rank(e)))
    now = 0
    for ev in order:
        tick = max(0, round(ev.time_s * TICKS_PER_S))
        delta, now = tick - now, tick
        if isinstance(ev, PedalEvent):
            track.append(mido.Message("control_change", channel=channel, control=SUSTAIN_CC,
                                      value=127 if ev.down else 0, time=delta))
        elif ev.on:
            track.append(mido.Message("note_on", channel=channel, note=ev.pitch, velocity=ev.velocity, time=delta))
        else:
            track.append(mido.Message("note_off", channel=channel, note=ev.pitch, velocity=0, time=delta))
    track.append(mido.MetaMessage("end_of_track", time=0))
    return mid


def midi_file_bytes(events: Sequence[Event], channel: int = 1) -> bytes:
    """The Standard MIDI File :class:`MidiFileSink` would write for ``events``, as bytes.

    ``channel``: MIDI channel 1..16.  Used where the notes are made in one
    process and written in another (``rtpitch transcribe`` of many files).
    """
    return _file_bytes(_build_file(events, channel - 1))


def _file_bytes(mid) -> bytes:
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


class MidiFileSink:
    """Collect note (and pedal) events; ``close()`` writes them to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        The .mid file to write (replaced if it exists).
    channel : int
        MIDI channel, 1..16.
    autosave_s : float or None
        Also write the file every this many seconds (wall time) while events
        arrive (module docstring); ``autosave_error`` keeps the last failure
        of an autosave (the final write at :meth:`close` still tries).
    """

    def __init__(self, path, channel: int = 1, *, autosave_s: float | None = None):
        self.path = Path(path)
        self.channel = channel
        self.events: list[Event] = []
        self.saved_path: Path | None = None
        self.autosave_s = autosave_s
        self.autosaves = 0
        self.autosave_error: str | None = None
        self._sounding: dict[int, NoteEvent] = {}
        self._pedal: PedalEvent | None = None  # the last pedal-down while the pedal is down
        self._next_save = time.monotonic() + autosave_s if autosave_s is not None else None
        self._saver: threading.Thread | None = None
        self._closed = False

    def send(self, events: Sequence[Event]) -> None:
        if self._closed or not events:
            return
        self.events.extend(events)
        if self.autosave_s is None:
            return
        for ev in events:
            if isinstance(ev, PedalEvent):
                self._pedal = ev if ev.down else None
            elif ev.on:
                self._sounding[ev.pitch] = ev
            else:
                self._sounding.pop(ev.pitch, None)
        if time.monotonic() >= self._next_save and (self._saver is None or not self._saver.is_alive()):
            self._next_save = time.monotonic() + self.autosave_s
            end = self.events[-1].time_s + 1.0 / TICKS_PER_S  # one tick after the latest event
            closing = [NoteEvent(end, p, 0, False, ev.frame) for p, ev in sorted(self._sounding.items())]
            if self._pedal is not None:
                closing.append(PedalEvent(end, False, self._pedal.frame))
            snapshot = self.events + closing
            self._saver = threading.Thread(target=self._autosave, args=(snapshot,), name="rtpitch-autosave",
                                           daemon=True)
            self._saver.start()

    def _autosave(self, events: list[Event]) -> None:
        try:
            self._write_atomic(_build_file(events, self.channel - 1), self.path)
            self.autosaves += 1
            self.autosave_error = None
        except OSError as exc:
            self.autosave_error = f"autosave of {self.path} failed: {exc.strerror or exc}"

    def close(self) -> None:
        """Write the file (tmp file + rename).  Idempotent.

        Raises
        ------
        MidiError
            The file cannot be written; the message names the path, the reason,
            and where a rescue copy was saved (the system temp dir) if that worked.
        """
        if self._closed:
            return
        self._closed = True
        if self._saver is not None:
            self._saver.join()  # an older snapshot must not replace the final file
        mid = _build_file(self.events, self.channel - 1)
        try:
            self._write_atomic(mid, self.path)
            self.saved_path = self.path
        except OSError as exc:
            reason = exc.strerror or str(exc)
            rescue = self._rescue(mid)
            kept = f"; the notes were saved to {rescue} instead" if rescue else ""
            raise MidiError(f"cannot write MIDI file {self.path}: {reason}{kept}") from None

    @staticmethod
    def _write_atomic(mid, path: Path) -> None:
        write_atomic(path, _file_bytes(mid))  # a take is an ordinary file (mode from the umask)

    def _rescue(self, mid) -> Path | None:
        """Keep what was recorded: write it to the temp dir when the target fails."""
        if not self.events:
            return None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f"rtpitch-{self.path.stem}-", suffix=".mid")
            with os.fdopen(fd, "wb") as fh:
                mid.save(file=fh)
        except OSError:
            return None
        self.saved_path = Path(tmp)
        return self.saved_path


def read_midi_notes(path) -> list[tuple[float, float, int, int]]:
    """(onset_s, offset_s, pitch, velocity) for each note of a MIDI file, sorted by onset.

    A note_on with velocity 0 counts as a note-off.  Notes left open at the end
    are closed at the file's end time.
    """
    import mido

    mid = mido.MidiFile(str(path))
    open_notes: dict[tuple[int, int], list[tuple[float, int]]] = {}
    notes = []
    t = 0.0
    for msg in mid:  # merged tracks, time in seconds (tempo aware)
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            open_notes.setdefault((msg.channel, msg.note), []).append((t, msg.velocity))
        elif msg.type in ("note_off", "note_on"):
            stack = open_notes.get((msg.channel, msg.note))
            if stack:
                on_t, vel = stack.pop(0)
                notes.append((on_t, t, msg.note, vel))
    for (_, pitch), stack in open_notes.items():
        for on_t, vel in stack:
            notes.append((on_t, t, pitch, vel))
    notes.sort(key=lambda n: (n[0], n[2]))
    return notes
