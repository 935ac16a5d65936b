"""Where note (and pedal) events go: a MIDI port, a MIDI file, the terminal.

Every sink has ``send(events)`` and ``close()``; modules that need optional
runtimes (python-rtmidi) are imported lazily by the ``__getattr__`` below.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from ..events import Event


@runtime_checkable
class Sink(Protocol):
    """Receives note and pedal events in time order; ``close()`` ends every
    sounding note (and a pedal that is down)."""

    def send(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


__all__ = ["Sink", "MidiPortSink", "MidiFileSink", "read_midi_notes", "TerminalView"]


def __getattr__(name: str):
    if name == "MidiPortSink":
        from .midi_port import MidiPortSink

        return MidiPortSink
    if name in ("MidiFileSink", "read_midi_notes"):
        from . import midi_file

        return getattr(midi_file, name)
    if name == "TerminalView":
        from .terminal import TerminalView

        return TerminalView
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
