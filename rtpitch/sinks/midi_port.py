"""Send note events to a MIDI port (python-rtmidi).

Notes go out as note on/off; the sustain pedal (a model with a pedal head) as
control change 64, 127 down and 0 up, on the same channel.  At the end every
note still on gets its note-off and a pedal still down its CC64 0.

By default the sink creates a *virtual* output port that a DAW can record
from: ALSA sequencer on Linux when ``/dev/snd/seq`` exists, else JACK when a
JACK server runs; CoreMIDI on macOS.  Windows has no virtual ports: name an
existing port (e.g. loopMIDI's) with ``port=``.

Under JACK the virtual port is ``<virtual_name>:<virtual_name>`` (client name
and port name are both ``virtual_name``, e.g. ``rtpitch:rtpitch``); under ALSA
it is client ``virtual_name``, port ``virtual_name``.

When the JACK server dies
-------------------------
RtMidi's JACK output writes each message into a 16 KB ring that only JACK's
process cycle empties, and when the ring is full ``send_message`` spins until
there is room, holding the GIL: with the server gone, one message too many
freezes the whole process, signal handlers included (measured with
python-rtmidi 1.5.8). So under JACK the sink checks that the server still
accepts connections on its socket (:class:`_JackServerWatch`, at most every
50 ms, about 40 us a check) before it sends; once the server is gone it
records one error, sends nothing more and leaves the dead client alone at
:meth:`MidiPortSink.close` (RtMidi's ``close_port`` would wait 1 s for a cycle).
A server that hangs without dying (SIGSTOP) is not detected.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from typing import Iterator, Sequence

from ..errors import ConfigError, MidiError
from ..events import SUSTAIN_CC, Event, PedalEvent

NO_VIRTUAL_MSG = (
    "cannot create a virtual MIDI port here (no ALSA sequencer /dev/snd/seq and no JACK server): "
    "start JACK (jackd -d dummy) or name an existing port with --midi-port"
)
ALSA_SEQ = "/dev/snd/seq"

_API_NAMES = {"alsa": "API_LINUX_ALSA", "jack": "API_UNIX_JACK", "coremidi": "API_MACOSX_CORE", "winmm": "API_WINDOWS_MM"}
_API_LABELS = {"alsa": "ALSA", "jack": "JACK", "coremidi": "CoreMIDI", "winmm": "Windows MM"}

NOTE_ON = 0x90
NOTE_OFF = 0x80
CONTROL_CHANGE = 0xB0
CC_ALL_NOTES_OFF = 123
JACK_DRAIN_S = 0.1  # s left to JACK to deliver the last messages before the port closes


@contextlib.contextmanager
def _quiet_stderr_fd() -> Iterator[None]:
    """Silence C-level writes to fd 2 (libjack prints 'Cannot connect to server ...')."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _jack_server_socket() -> str | None:
    """Path of the running jack2 server's client socket, or None if not found.

    jack2 listens on ``<dir>/jack_<server>_<uid>_0`` (dir ``/dev/shm`` on
    Linux, ``/tmp`` elsewhere; server name from ``JACK_DEFAULT_SERVER``,
    default ``default``).
    """
    server = os.environ.get("JACK_DEFAULT_SERVER") or "default"
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return None
    for folder in ("/dev/shm", "/tmp"):
        path = os.path.join(folder, f"jack_{server}_{getuid()}_0")
        if os.path.exists(path):
            return path
    return None


class _JackServerWatch:
    """Tells whether the JACK server still runs: a connect() to its socket
    succeeds while it does and is refused (SIGKILL) or finds no socket
    (clean exit) once it is gone. Checks at most every ``interval_s``;
    ``alive`` is True when the socket is unknown (no check possible)."""

    def __init__(self, interval_s: float = 0.05):
        self.path = _jack_server_socket()
        self.interval_s = interval_s
        self._next = 0.0
        self._alive = True

    def alive(self, *, force: bool = False) -> bool:
        """``force``: check now even if the last check was less than ``interval_s`` ago."""
        if self.path is None or not self._alive:
            return self._alive
        now = time.monotonic()
        if now < self._next and not force:
            return True
        self._next = now + self.interval_s
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(0.5)
            sock.connect(self.path)
        except (ConnectionRefusedError, FileNotFoundError):
            self._alive = False
        except OSError:
            pass  # e.g. a timeout under load: not proof of death
        finally:
            sock.close()
        return self._alive


def _import_rtmidi():
    try:
        import rtmidi
    except ImportError:
        raise MidiError("MIDI output needs python-rtmidi: pip install python-rtmidi") from None
    return rtmidi


class MidiPortSink:
    """Note events -> MIDI note on/off messages, pedal events -> CC64, on one channel.

    Parameters
    ----------
    virtual_name : str or None
        Name of the virtual output port to create (also the client name).
        Ignored when ``port`` is given.
    port : str, int or None
        Connect to an existing output port instead: its index, or a
        case-insensitive substring of its name.
    channel : int
        MIDI channel, 1..16.
    api : {"auto", "alsa", "jack", "coremidi", "winmm"}
        MIDI system; ``auto`` picks ALSA (if /dev/snd/seq exists), else JACK (if
        a server runs) on Linux, CoreMIDI on macOS, the default elsewhere.

    Raises
    ------
    MidiError
        The port cannot be created or found (one line, with what to do).
    ConfigError
        ``channel`` or ``api`` out of range.
    """

    def __init__(
        self,
        virtual_name: str | None = "rtpitch",
        port: str | int | None = None,
        channel: int = 1,
        api: str = "auto",
    ):
        if not (isinstance(channel, int) and 1 <= channel <= 16):
            raise ConfigError(f"MIDI channel must be 1..16, got {channel!r}")
        api = api.lower()
        if api != "auto" and api not in _API_NAMES:
            raise ConfigError(f"unknown MIDI api {api!r}; use one of: auto, {', '.join(_API_NAMES)}")
        if port is None and not virtual_name:
            raise ConfigError("give a virtual port name or an existing port (--midi-port)")
        self.channel = channel
        self._status_ch = channel - 1
        self.sent_count = 0
        self.error: str | None = None
        self._sounding: set[int] = set()
        self.pedal_down = False  # a CC64 127 was sent and no CC64 0 yet
        self._closed = False
        self._dead = False  # the JACK server went away: send nothing more
        self._keep_client = False  # see source_lost()
        self._rtmidi = _import_rtmidi()
        self.virtual = port is None
        client = virtual_name or "rtpitch"
        self.api = self._resolve_api(api)
        self._out = self._open_client(self.api, client)
        if self.virtual:
            self.port_name = virtual_name
            try:
                self._out.open_virtual_port(virtual_name)
            except (self._rtmidi.RtMidiError, NotImplementedError) as exc:
                self._out.delete()
                if self.api in ("winmm",) or isinstance(exc, NotImplementedError):
                    raise MidiError(
                        f"{_API_LABELS.get(self.api, self.api)} has no virtual MIDI ports: "
                        "name an existing port (e.g. loopMIDI's) with --midi-port"
                    ) from None
                raise MidiError(f"cannot create virtual MIDI port '{virtual_name}': {exc}") from None
        else:
            self.port_name = self._open_existing(port)
        self._watch = _JackServerWatch() if self.api == "jack" else None

    # -- opening -----------------------------------------------------------
    def _resolve_api(self, api: str) -> str:
        if api != "auto":
            return api
        if sys.platform.startswith("linux"):
            if os.path.exists(ALSA_SEQ):
                return "alsa"
            return "jack"  # whether a server runs is found out when the client opens
        if sys.platform == "darwin":
            return "coremidi"
        if sys.platform.startswith("win"):
            if self.virtual:
                raise MidiError(
                    "Windows has no virtual MIDI ports: install loopMIDI, create a port, "
                    "and name it with --midi-port"
                )
            return "winmm"
        return "auto"

    def _open_client(self, api: str, client: str):
        rtmidi = self._rtmidi
        api_id = rtmidi.API_UNSPECIFIED if api == "auto" else getattr(rtmidi, _API_NAMES[api])
        if api != "auto" and api_id not in rtmidi.get_compiled_api():
            raise MidiError(f"this python-rtmidi was built without {_API_LABELS[api]} support")
        try:
            # RtMidi opens JACK with JackNoStartServer: no server -> SystemError at once.
            with _quiet_stderr_fd():
                return rtmidi.MidiOut(api_id, name=client)
        except rtmidi.RtMidiError as exc:
            if api in ("alsa", "jack"):
                if self.virtual:
                    raise MidiError(NO_VIRTUAL_MSG) from None
                raise MidiError(
                    f"cannot open MIDI ({_API_LABELS[api]}): no ALSA sequencer {ALSA_SEQ} and no JACK server; "
                    "start JACK (jackd -d dummy)"
                ) from None
            raise MidiError(f"cannot open MIDI output ({_API_LABELS.get(api, api)}): {exc}") from None

    def _open_existing(self, port: str | int) -> str:
        ports = self._out.get_ports()
        index = None
        if isinstance(port, int) or (isinstance(port, str) and port.strip().isdigit()):
            i = int(port)
            if 0 <= i < len(ports):
                index = i
        else:
            want = str(port).lower()
            exact = [i for i, name in enumerate(ports) if name.lower() == want]
            subs = [i for i, name in enumerate(ports) if want in name.lower()]
            if exact:
                index = exact[0]
            elif len(subs) == 1:
                index = subs[0]
            elif len(subs) > 1:
                self._out.delete()
                names = "; ".join(f"{i}: {ports[i]}" for i in subs)
                raise MidiError(f"MIDI output port '{port}' is ambiguous ({names}): give more of its name or its number")
        if index is None:
            self._out.delete()
            listing = "; ".join(f"{i}: {name}" for i, name in enumerate(ports)) or "none"
            raise MidiError(f"MIDI output port '{port}' not found; output ports: {listing}")
        try:
            self._out.open_port(index)
        except self._rtmidi.RtMidiError as exc:
            self._out.delete()
            raise MidiError(f"cannot open MIDI output port '{ports[index]}': {exc}") from None
        return ports[index]

    # -- sending -----------------------------------------------------------
    def describe(self) -> str:
        """One line: which port, which MIDI system."""
        label = _API_LABELS.get(self.api, "default API")
        kind = "virtual port" if self.virtual else "port"
        return f"{kind} '{self.port_name}' ({label})"

    @property
    def sounding(self) -> set[int]:
        """Pitches this sink has sent a note-on for and no note-off yet."""
        return set(self._sounding)

    def _check_server(self, *, force: bool = False) -> None:
        """Raise MidiError (once; later calls return quietly via ``_dead``) when the JACK server is gone."""
        if self._watch is not None and not self._dead and not self._watch.alive(force=force):
            self._dead = True
            self.error = f"MIDI {self.describe()} went away: the JACK server is gone; nothing more was sent"
            raise MidiError(self.error)

    def _send(self, msg: list[int]) -> None:
        try:
            self._out.send_message(msg)
        except (self._rtmidi.RtMidiError, OSError) as exc:
            self.error = f"send failed on {self.describe()}: {exc}"
            raise MidiError(self.error) from None
        self.sent_count += 1

    def send(self, events: Sequence[Event]) -> None:
        """Send each event as note-on (0x9n, pitch, vel) or note-off (0x8n, pitch, 0),
        a pedal event as control change (0xBn, 64, 127 down / 0 up).

        Raises MidiError when a message cannot be sent or the JACK server is
        gone (see the module docstring); after the server is gone, sends nothing.
        """
        if self._closed or self._dead or not events:
            return
        self._check_server()
        for ev in events:
            if isinstance(ev, PedalEvent):
                self._send([CONTROL_CHANGE | self._status_ch, SUSTAIN_CC, 127 if ev.down else 0])
                self.pedal_down = ev.down
            elif ev.on:
                self._send([NOTE_ON | self._status_ch, ev.pitch, ev.velocity])
                self._sounding.add(ev.pitch)
            else:
                self._send([NOTE_OFF | self._status_ch, ev.pitch, 0])
                self._sounding.discard(ev.pitch)

    def source_lost(self) -> None:
        """The run's audio device went away (rtpitch.runner calls this before
        :meth:`close`). Under JACK its server may be gone or hung, and RtMidi's
        ``close_port``/``delete`` would then block (holding the GIL) on a server
        request: :meth:`close` still sends the note-offs but leaves the client
        open; the process is about to end."""
        if self.api == "jack":
            self._keep_client = True

    def all_notes_off(self) -> None:
        """Note-off for every note this sink has on, CC64 0 if the pedal is down,
        then CC 123 (all notes off)."""
        if self._closed or self._dead:
            return
        self._check_server(force=True)  # at the end of a take: the server may have just died
        for p in sorted(self._sounding):
            self._send([NOTE_OFF | self._status_ch, p, 0])
        self._sounding.clear()
        if self.pedal_down:
            self._send([CONTROL_CHANGE | self._status_ch, SUSTAIN_CC, 0])
            self.pedal_down = False
        self._send([CONTROL_CHANGE | self._status_ch, CC_ALL_NOTES_OFF, 0])

    def close(self) -> None:
        """All notes off (and pedal up), then close the port.  Idempotent; never raises (see ``.error``)."""
        if self._closed:
            return
        try:
            self.all_notes_off()
        except MidiError:
            pass  # recorded in self.error
        self._closed = True
        if self._dead or self._keep_client:
            return  # RtMidi would wait for a JACK server that is gone or hung
        if self.api == "jack":
            # RtMidi queues JACK messages for the server's next cycles; closing the
            # port at once can drop the last ones (the all-notes-off) on a loaded machine
            time.sleep(JACK_DRAIN_S)
        try:
            self._out.close_port()
            self._out.delete()
        except (self._rtmidi.RtMidiError, OSError, RuntimeError) as exc:
            self.error = self.error or f"closing {self.describe()}: {exc}"

    def __enter__(self) -> "MidiPortSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
