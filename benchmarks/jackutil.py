"""Real audio and MIDI through a JACK server: a player, a MIDI monitor, clock alignment.

Used by the end-to-end test (tests/test_e2e_jack.py) and the latency benchmark
(benchmarks/latency.py). Needs JACK-Client, python-rtmidi built with JACK, and
``jackd`` (Debian ``jackd2``) for :class:`JackServer`.

A live take (:func:`run_live_take`)
-----------------------------------
``rtpitch listen --device system --midi-out --record take.mid`` runs as a
subprocess. A JACK client (:class:`Player`) plays a signal into rtpitch's
PortAudio input ports, and a JACK MIDI input (:class:`MidiMonitor`) connected
to ``rtpitch:rtpitch`` records every MIDI message that arrives, stamped with
the JACK frame of its arrival. After SIGINT rtpitch writes its MIDI file and exits.

Audio-time alignment (how a time in the played signal is placed in rtpitch's clock)
-----------------------------------------------------------------------------------
rtpitch stamps events in *audio time*: seconds since sample 0 of its capture
stream. JACK runs every client of a cycle on the same frames, so a sample the
player writes at JACK frame ``F`` reaches rtpitch's input at frame ``F`` too.

* The player's process callback stores ``last_frame_time`` of every cycle in
  which it plays a block: signal sample ``i`` went out at JACK frame ``F(i)``
  (normally ``P + i``, ``P`` being the first block's frame; the table also
  covers a cycle JACK skipped for a late player).
* ``rtpitch listen`` prints ``capture clock: audio time 0 = monotonic T s``
  at exit: the ``time.monotonic()`` of its audio time 0, from the PortAudio
  time stamps of its last callbacks (``DeviceSource.origin_monotonic``; it is
  measured at the end so that a JACK cycle lost while the ports are rewired
  before playback does not count). ``T`` is mapped to JACK frames with
  back-to-back readings of ``time.monotonic()`` and ``Client.frame_time``
  (JACK's clock is CLOCK_MONOTONIC) and snapped to the nearest cycle start
  ``C = P + k * period`` (observed ``|C_est - C|``: a few to 60 frames; near
  ``period / 2`` the snap could pick a neighbouring cycle, an error of one
  period).
* Signal time ``t`` is rtpitch audio time ``(F(t * sr) - C) / sr``
  (:meth:`LiveTake.rt_time`), and it was played at JACK frame ``F(t * sr)``
  (:meth:`LiveTake.frame_of`), the clock on which the monitor stamps arrivals.
  If rtpitch's callback missed JACK cycles during the take (JACK drops a late
  client's cycles), the stamps before the loss are early by that much: a real
  error of the live path, which this measures.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import shutil
import socket
import signal as _signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TICK_S = 1 / 960  # MIDI file resolution (rtpitch.sinks.midi_file)


@functools.cache
def _address_pointer():
    """A numba intrinsic: ``(void *) address`` for an int64 address, for ``numba.carray``
    in the cfuncs below (numba is imported only when a cfunc is built)."""
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def pointer(typingctx, address):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)

        return types.voidptr(types.int64), codegen

    return pointer


class JackError(RuntimeError):
    """The JACK setup or the live take failed (message says what)."""


# -- the server ------------------------------------------------------------------------
class JackServer:
    """``jackd --no-realtime -d dummy -r RATE -p PERIOD`` for the duration of a ``with``
    (``realtime=True``: ``jackd -R``, SCHED_FIFO for the server and its clients'
    process threads, as on a musician's machine; needs CAP_SYS_NICE or an rtprio limit).

    ``name``: a server name of its own (``jackd -n NAME``), so it does not meet
    another JACK server on this machine; it is exported as
    ``JACK_DEFAULT_SERVER`` to this process (every JACK client opened here, the
    rtmidi ones included) and to subprocesses, and the previous value is
    restored on exit. ``JACK_NO_AUDIO_RESERVATION=1`` keeps jackd off D-Bus.
    libjack serves one server per process: entering a named server terminates
    this process's PortAudio (its JACK client of another server), and readiness
    is probed without a JACK client here (:func:`server_running`).

    jackd's stdout and stderr go to a file (``log_path``; default a new file
    ``jackd-*.log`` in the temporary folder), never to a pipe: under load jackd
    writes "Process error" / "Broken pipe" lines by the hundred, and a pipe that
    nobody reads fills, blocks the server, and with it every client that closes
    (PortAudio's shutdown then waits for ever). :meth:`log_tail` shows the end.
    ``verbose``: ``jackd -v`` (a line per client event: tests use it to write a lot).
    """

    def __init__(self, *, period: int = 256, rate: int = 48000, name: str | None = None,
                 start_timeout_s: float = 10.0, realtime: bool = False,
                 log_path: str | os.PathLike | None = None, verbose: bool = False):
        self.period, self.rate, self.name, self.realtime = int(period), int(rate), name, realtime
        self.start_timeout_s = start_timeout_s
        self.verbose = verbose
        self.log_path = Path(log_path) if log_path is not None else None
        self.proc: subprocess.Popen | None = None
        self._saved_env = None

    def __enter__(self) -> "JackServer":
        jackd = shutil.which("jackd")
        if jackd is None:
            raise JackError("jackd not installed (Debian: apt install jackd2)")
        if self.name:
            _release_portaudio()  # its client of another server and one of this server would crash libjack
            self._saved_env = os.environ.get("JACK_DEFAULT_SERVER")
            os.environ["JACK_DEFAULT_SERVER"] = self.name
        if server_running():
            self._restore_env()
            raise JackError(f"a JACK server named {self.name or 'default'!r} already runs")
        env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
        cmd = [jackd] + (["-v"] if self.verbose else []) + (["-n", self.name] if self.name else []) + \
              [("-R" if self.realtime else "--no-realtime"), "-d", "dummy", "-r", str(self.rate), "-p", str(self.period)]
        if self.log_path is None:
            fd, path = tempfile.mkstemp(prefix=f"jackd-{self.name or 'default'}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(path)
        for attempt in range(3):  # right after a server of the same name stopped, jackd may fail to open
            with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
                self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT)
            deadline = time.monotonic() + self.start_timeout_s
            while not (server_running() and _client_connects(env)):
                if self.proc.poll() is not None:
                    break
                if time.monotonic() > deadline:
                    self.stop()
                    raise JackError(f"jackd did not accept clients within {self.start_timeout_s:.0f} s")
                time.sleep(0.1)
            else:
                return self
            err = self.log_tail(1)
            time.sleep(1.0)
        self._restore_env()
        raise JackError(f"jackd exited with {self.proc.returncode}: {err} (log: {self.log_path})")

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines jackd wrote ('' before it started)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(max(0, self.log_path.stat().st_size - 200 * lines))
            text = f.read().decode(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def __exit__(self, *exc):
        self.stop()

    def stop(self) -> None:
        """Terminate the server (PortAudio in this process first: it aborts if
        its JACK client outlives the server)."""
        _release_portaudio()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._restore_env()

    def _restore_env(self) -> None:
        if self.name:
            if self._saved_env is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = self._saved_env
            self._saved_env = None


def _release_portaudio() -> None:
    """Terminate PortAudio in this process (and with it its JACK client), if loaded."""
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        while sd._initialized:
            sd._terminate()


def server_running() -> bool:
    """A JACK server (``JACK_DEFAULT_SERVER`` or the default) accepts connections on
    its socket. Probed with a plain socket, not a JACK client: libjack serves one
    server per process, and this process may hold a client of another server
    (PortAudio's), which a client of a second server crashes."""
    name = os.environ.get("JACK_DEFAULT_SERVER") or "default"
    for folder in ("/dev/shm", "/tmp"):  # jack2 on Linux; other builds
        path = os.path.join(folder, f"jack_{name}_{os.getuid()}_0")
        if not os.path.exists(path):
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(path)
            except OSError:  # left by a server that was killed
                continue
            return True
    return False


def _client_connects(env: dict) -> bool:
    """A JACK client opens on the server that ``env`` names, tried in a child process
    (see :func:`server_running` for why not here); True where JACK-Client is missing."""
    code = ("try:\n    import jack\nexcept (ImportError, OSError):\n    raise SystemExit(0)  # the socket must do\n"
            "jack.Client('rtpitch-probe', no_start_server=True).close()")
    try:
        return subprocess.run([sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


# -- clients ----------------------------------------------------------------------------
class PlayerState:
    """What a :class:`Player` has done, read from the arrays its callback writes.

    ``armed`` (settable): play from the next cycle; ``pos``: samples played;
    ``start_frame``: JACK frame of the first sample (None before); ``done``:
    all played; ``blocks``: (sample position, JACK frame) of every block played;
    ``xruns``: the server's xrun notifications."""

    def __init__(self, state: np.ndarray, blocks: np.ndarray):
        self._s, self._blocks = state, blocks
        self.xruns = 0

    @property
    def armed(self) -> bool:
        return bool(self._s[_P_ARMED])

    @armed.setter
    def armed(self, value: bool) -> None:
        self._s[_P_ARMED] = int(bool(value))

    @property
    def pos(self) -> int:
        return int(self._s[_P_POS])

    @property
    def start_frame(self) -> int | None:
        return None if self._s[_P_START] < 0 else int(self._s[_P_START])

    @property
    def done(self) -> bool:
        return bool(self._s[_P_DONE])

    @property
    def blocks(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in self._blocks[: self._s[_P_NBLOCKS]]]


_P_ARMED, _P_POS, _P_START, _P_DONE, _P_NBLOCKS = range(5)


def _libjack():
    import ctypes
    import ctypes.util

    lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
    lib.jack_port_get_buffer.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_port_get_buffer.restype = ctypes.c_void_p
    lib.jack_last_frame_time.argtypes = [ctypes.c_void_p]
    lib.jack_last_frame_time.restype = ctypes.c_uint32
    lib.jack_midi_get_event_count.argtypes = [ctypes.c_void_p]
    lib.jack_midi_get_event_count.restype = ctypes.c_uint32
    # int jack_midi_event_get(jack_midi_event_t *event, void *port_buffer, uint32_t event_index)
    lib.jack_midi_event_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_midi_event_get.restype = ctypes.c_int
    return lib


def _player_callback():
    """The player's JACK process callback, a numba cfunc (no GIL, so Python
    threads of the benchmark cannot make it miss a cycle).  ``arg`` is an int64
    (7,): client and port pointers, signal address and length, state address,
    blocks address and rows."""
    import numba
    from numba import types

    from rtpitch.cpointer import pointer as _pointer  # (void *) from an int64 address

    lib = _libjack()
    get_buffer, last_frame_time = lib.jack_port_get_buffer, lib.jack_last_frame_time

    @numba.cfunc(types.int32(types.uint32, types.CPointer(types.int64)))
    def process(nframes, arg):
        u = numba.carray(arg, 7)
        n = np.int64(nframes)
        out = numba.carray(_pointer(np.int64(get_buffer(_pointer(u[1]), nframes))), n, dtype=np.float32)
        sig = numba.carray(_pointer(u[2]), u[3], dtype=np.float32)
        st = numba.carray(_pointer(u[4]), 5, dtype=np.int64)
        blocks = numba.carray(_pointer(u[5]), (u[6], 2), dtype=np.int64)
        if st[_P_ARMED] == 0 or st[_P_DONE] != 0:
            out[:] = 0.0
            return 0
        frame = np.int64(last_frame_time(_pointer(u[0])))
        if st[_P_START] < 0:
            st[_P_START] = frame
        pos = st[_P_POS]
        if st[_P_NBLOCKS] < u[6]:
            blocks[st[_P_NBLOCKS], 0] = pos
            blocks[st[_P_NBLOCKS], 1] = frame
            st[_P_NBLOCKS] += 1
        k = min(n, u[3] - pos)
        out[:k] = sig[pos:pos + k]
        out[k:] = 0.0
        st[_P_POS] = pos + k
        if pos + k >= u[3]:
            st[_P_DONE] = 1
        return 0

    return process


_PLAYER_CALLBACK = None


class Player:
    """A JACK client with one output port that plays ``samples`` once when armed
    (``st.armed = True``), silence before and after; ``st`` is a
    :class:`PlayerState`.  Its process callback is a numba cfunc that takes no
    GIL (a Python one missed cycles whenever another thread of the benchmark
    held the GIL: audio rtpitch never got)."""

    def __init__(self, name: str, samples: np.ndarray):
        global _PLAYER_CALLBACK
        import jack

        if _PLAYER_CALLBACK is None:
            _PLAYER_CALLBACK = _player_callback()
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.outports.register("out")
        self.signal = np.ascontiguousarray(samples, dtype=np.float32)
        if self.signal.size == 0:
            raise ValueError("nothing to play")
        self._state = np.array([0, 0, -1, 0, 0], dtype=np.int64)
        self._blocks = np.zeros((self.signal.size // 16 + 2, 2), dtype=np.int64)  # periods are >= 16 frames
        self._arg = np.array([int(jack._ffi.cast("intptr_t", self.client._ptr)),
                              int(jack._ffi.cast("intptr_t", self.port._ptr)),
                              self.signal.ctypes.data, self.signal.size,
                              self._state.ctypes.data, self._blocks.ctypes.data, self._blocks.shape[0]],
                             dtype=np.int64)
        self.st = PlayerState(self._state, self._blocks)
        self._cb = jack._ffi.cast("JackProcessCallback", _PLAYER_CALLBACK.address)
        if jack._lib.jack_set_process_callback(self.client._ptr, self._cb,
                                               jack._ffi.cast("void *", self._arg.ctypes.data)) != 0:
            raise JackError("could not set the player's process callback")
        self.client.set_xrun_callback(self._xrun)

    def _xrun(self, delay_usecs):
        self.st.xruns += 1

    def close(self):
        try:
            self.client.deactivate()
        finally:
            self.client.close()


def _monitor_callback():
    """The MIDI monitor's JACK process callback, a numba cfunc (no GIL).
    ``arg`` is an int64 (6,): client and port pointers, address of a
    ``jack_midi_event_t`` scratch (3 int64: time, size, data pointer), address
    and rows of the message table (n, 4), address of the count (2,: stored, lost)."""
    import numba
    from numba import types

    from rtpitch.cpointer import pointer as _pointer

    lib = _libjack()
    get_buffer, last_frame_time = lib.jack_port_get_buffer, lib.jack_last_frame_time
    event_count, event_get = lib.jack_midi_get_event_count, lib.jack_midi_event_get

    @numba.cfunc(types.int32(types.uint32, types.CPointer(types.int64)))
    def process(nframes, arg):
        u = numba.carray(arg, 6)
        buf = _pointer(np.int64(get_buffer(_pointer(u[1]), nframes)))
        ev = numba.carray(_pointer(u[2]), 3, dtype=np.int64)
        table = numba.carray(_pointer(u[3]), (u[4], 4), dtype=np.int64)
        count = numba.carray(_pointer(u[5]), 2, dtype=np.int64)
        frame = np.int64(last_frame_time(_pointer(u[0])))
        for i in range(event_count(buf)):
            if event_get(_pointer(u[2]), buf, np.uint32(i)) != 0:
                continue
            n = count[0]
            if n >= u[4]:
                count[1] += 1
                continue
            size = ev[1]
            data = numba.carray(_pointer(ev[2]), max(size, 1), dtype=np.uint8)
            table[n, 0] = frame + (ev[0] & 0xFFFFFFFF)
            for j in range(3):
                table[n, 1 + j] = data[j] if j < size else 0
            count[0] = n + 1
        return 0

    return process


_MONITOR_CALLBACK = None


class MidiMonitor:
    """A JACK client with one MIDI input port (``NAME:in``) that stores every
    message that arrives with the JACK frame of its arrival (the cycle's first
    frame + the event's offset in it). Its process callback is a numba cfunc
    that takes no GIL: an rtmidi input calls a Python callback from JACK's
    process thread, which waits for the GIL and made the server miss cycles
    (9 xruns in 40 s of a live take on a 2-core VM; none with this monitor).
    Messages beyond ``capacity`` are counted in ``lost``."""

    def __init__(self, name: str, capacity: int = 1 << 18):
        global _MONITOR_CALLBACK
        import jack

        if _MONITOR_CALLBACK is None:
            _MONITOR_CALLBACK = _monitor_callback()
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.midi_inports.register("in")
        self.name = self.port.name
        self._event = np.zeros(3, dtype=np.int64)  # jack_midi_event_t (x86-64 / arm64 layout: 24 bytes)
        self._table = np.zeros((capacity, 4), dtype=np.int64)
        self._count = np.zeros(2, dtype=np.int64)
        self._arg = np.array([int(jack._ffi.cast("intptr_t", self.client._ptr)),
                              int(jack._ffi.cast("intptr_t", self.port._ptr)),
                              self._event.ctypes.data, self._table.ctypes.data, capacity,
                              self._count.ctypes.data], dtype=np.int64)
        self._cb = jack._ffi.cast("JackProcessCallback", _MONITOR_CALLBACK.address)
        if jack._lib.jack_set_process_callback(self.client._ptr, self._cb,
                                               jack._ffi.cast("void *", self._arg.ctypes.data)) != 0:
            raise JackError("could not set the MIDI monitor's process callback")
        self.client.activate()

    @property
    def count(self) -> int:
        """Messages stored so far."""
        return int(self._count[0])

    @property
    def lost(self) -> int:
        """Messages that arrived after the table was full."""
        return int(self._count[1])

    def messages(self) -> list[tuple[int, list[int]]]:
        """(JACK frame at arrival, [status, data1, data2]) of the messages so far."""
        return [(int(r[0]), [int(v) for v in r[1:]]) for r in self._table[: self.count]]

    def last_message(self) -> list[int] | None:
        n = self.count
        return None if n == 0 else [int(v) for v in self._table[n - 1, 1:]]

    def close(self) -> None:
        try:
            self.client.deactivate()
        finally:
            self.client.close()


def snap_capture_frame(stderr: str, clock_offset: float | None, start_frame: int | None, sr: int,
                       period: int) -> tuple[int | None, float | None]:
    """(C, C_est - C): the JACK frame of rtpitch's sample 0, from the ``capture
    clock`` line of its stderr mapped to JACK frames with ``clock_offset``
    (:func:`frame_clock_offset`) and snapped to the cycle grid of the player's
    first frame ``start_frame`` (module docstring); (None, None) when a part is missing."""
    m = re.search(r"capture clock: audio time 0 = monotonic ([0-9.]+) s", stderr)
    if m is None or clock_offset is None or start_frame is None:
        return None, None
    c_est = float(m.group(1)) * sr + clock_offset
    capture_frame = start_frame + int(round((c_est - start_frame) / period)) * period
    return capture_frame, c_est - capture_frame


def frame_clock_offset(client, n: int = 25) -> float:
    """JACK frames minus ``time.monotonic() * sr`` (median of back-to-back readings)."""
    sr = client.samplerate
    offsets = []
    for _ in range(n):
        a = time.monotonic()
        f = client.frame_time
        b = time.monotonic()
        offsets.append(f - 0.5 * (a + b) * sr)
        time.sleep(0.001)
    return float(np.median(offsets))


def connections(client, port: str) -> list[str]:
    return [p.name for p in client.get_all_connections(port)]


def portaudio_inputs(client) -> set[str]:
    return {p.name for p in client.get_ports("PortAudio.*", is_audio=True, is_input=True)}


def midi_outputs(client) -> set[str]:
    return {p.name for p in client.get_ports(is_midi=True, is_output=True)}


def stop_process(proc: subprocess.Popen) -> None:
    """Make sure the subprocess is gone (SIGKILL its process group if it lingers)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, _signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def rtmidi_has_jack() -> bool:
    import rtmidi

    return rtmidi.API_UNIX_JACK in rtmidi.get_compiled_api()


def load_signal(path, sr: int, *, seconds: float | None = None) -> np.ndarray:
    """An audio file as a JACK player plays it: mean of its channels (what
    rtpitch's default downmix and ``transcribe`` use too), resampled to ``sr``
    with soxr (HQ); the first ``seconds`` only when given."""
    import soundfile as sf
    import soxr

    x, rate = sf.read(str(path), dtype="float32", always_2d=True)
    if seconds is not None:
        x = x[: int(seconds * rate)]
    mono = x.mean(axis=1)
    if rate != sr:
        mono = soxr.resample(mono, rate, sr, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


# -- matching --------------------------------------------------------------------------
def match_onsets(ref, est, tol_s: float) -> list[tuple[int, int]]:
    """One-to-one matches (i_ref, j_est) of (onset, pitch) lists: same pitch,
    ``|onset difference| <= tol_s``; each reference takes the closest free estimate."""
    by_pitch: dict[int, list[int]] = {}
    for j, (_, q) in enumerate(est):
        by_pitch.setdefault(q, []).append(j)
    used, pairs = set(), []
    for i, (t, p) in enumerate(ref):
        best = None
        for j in by_pitch.get(p, ()):
            u = est[j][0]
            if j in used or abs(u - t) > tol_s:
                continue
            if best is None or abs(u - t) < abs(est[best][0] - t):
                best = j
        if best is not None:
            used.add(best)
            pairs.append((i, best))
    return pairs


# -- the live take ------------------------------------------------------------------------
@dataclass
class LiveTake:
    returncode: int | None
    stdout: str
    stderr: str
    record_path: Path
    sr: int
    period: int
    start_frame: int                # JACK frame of the signal's first sample (P)
    capture_frame: int | None       # JACK frame of rtpitch's sample 0 (C)
    snap_residual: float | None     # C_est - C (frames)
    port_messages: list = field(default_factory=list, repr=False)  # (JACK frame at arrival, [status, d1, d2])
    blocks: list = field(default_factory=list, repr=False)  # (signal sample, JACK frame) of each played block
    xruns: int = 0
    ready_s: float = 0.0            # from the start until rtpitch captures
    wall_s: float = 0.0

    def frame_of(self, t_rec: float) -> float:
        """JACK frame at which signal time ``t_rec`` (s) was played (through the
        player's block table, so a cycle JACK skipped for the player is accounted)."""
        i = t_rec * self.sr
        k = max(0, bisect.bisect_right([b[0] for b in self.blocks], i) - 1)
        pos, frame = self.blocks[k]
        return frame + (i - pos)

    def rt_time(self, t_rec: float) -> float:
        """rtpitch audio time (s since its sample 0) of signal time ``t_rec``."""
        return (self.frame_of(t_rec) - self.capture_frame) / self.sr

    def heard_time(self, t_rec: float, heard: np.ndarray, played: np.ndarray, *, width: int = 2048,
                   search_s: float = 1.0) -> float | None:
        """rtpitch audio time of signal time ``t_rec`` found in the audio rtpitch
        recorded (``--record-audio``: ``heard``, sample ``i`` at audio time ``i / sr``)
        instead of through JACK's clock, for takes in which JACK lost cycles: where
        the ``width`` samples of ``played`` from ``t_rec`` (or, if JACK lost some of
        those, the ``width`` before it) appear in ``heard`` sample for sample, the
        match closest to :meth:`rt_time` within ``search_s``. None when neither
        stretch was heard whole."""
        i = int(round(t_rec * self.sr))
        near = int(round(self.rt_time(t_rec) * self.sr))
        reach = int(round(search_s * self.sr))
        for start in (i, i - width):
            if start < 0 or start + width > played.shape[0]:
                continue
            seg = played[start:start + width]
            nonzero = np.flatnonzero(seg)
            if nonzero.size == 0:
                continue
            k = int(nonzero[0])  # candidates: where heard has seg's first non-zero sample
            expect = near + start - i
            lo, hi = max(0, expect - reach), min(heard.shape[0] - width, expect + reach)
            if hi < lo:
                continue
            found = [c for c in np.flatnonzero(heard[lo + k:hi + k + 1] == seg[k]) + lo
                     if np.array_equal(heard[c:c + width], seg)]
            if found:
                c = min(found, key=lambda c: abs(c - expect))
                return (c + i - start) / self.sr
        return None

    def skipped_frames(self) -> int:
        """Frames JACK skipped between the player's playback cycles (0 normally)."""
        return sum(b[1] - a[1] - (b[0] - a[0]) for a, b in zip(self.blocks, self.blocks[1:]))

    def recorded_notes(self):
        """(onset, offset, pitch, velocity) from the --record file, rtpitch audio time."""
        from rtpitch.sinks.midi_file import read_midi_notes

        return read_midi_notes(self.record_path)

    def port_note_ons(self) -> list[tuple[int, int, int]]:
        """(arrival frame, pitch, velocity) of note-ons received on the port."""
        return [(f, m[1], m[2]) for f, m in self.port_messages if m[0] & 0xF0 == 0x90 and m[2] > 0]

    def port_note_offs(self) -> list[tuple[int, int]]:
        """(arrival frame, pitch) of note-offs (0x80, or 0x90 with velocity 0) received on the port."""
        return [(f, m[1]) for f, m in self.port_messages
                if m[0] & 0xF0 == 0x80 or (m[0] & 0xF0 == 0x90 and m[2] == 0)]


def quiet(midi_in) -> None:
    """Cancel an rtmidi input's Python callback and let one already running finish.

    python-rtmidi's JACK calls (``close_port``, ``delete``) hold the GIL while
    libjack waits for the client's process cycle; if that cycle is inside the
    Python callback waiting for the GIL, both wait forever. Call this first."""
    midi_in.cancel_callback()
    time.sleep(0.05)


def wait_for_all_notes_off(last_message, timeout_s: float) -> bool:
    """Poll ``last_message()`` (the newest MIDI message a monitor got, or None)
    until it is CC 123 (all notes off) or ``timeout_s`` passes: a monitor's
    callbacks may lag on a loaded machine. True when it arrived."""
    deadline = time.monotonic() + timeout_s
    while True:
        msg = last_message()
        if msg is not None and msg[0] & 0xF0 == 0xB0 and msg[1] == 123:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def wait_for_rtpitch(proc, client, pa_before, midi_before, deadline, timeout_s, err_path):
    """(rtpitch's PortAudio input ports, its MIDI output port) once its capture
    stream runs (its inputs connected by PortAudio) and its port exists."""
    while True:
        if proc.poll() is not None:
            raise JackError(f"rtpitch exited early with {proc.returncode}; stderr:\n{err_path.read_text()}")
        ins = sorted(portaudio_inputs(client) - pa_before)
        outs = sorted(p for p in midi_outputs(client) - midi_before if p.endswith(":rtpitch"))
        if ins and outs and all(connections(client, p) for p in ins):
            return ins, outs
        if time.monotonic() > deadline:
            raise JackError(f"rtpitch not ready in {timeout_s:.0f} s: PortAudio inputs {ins}, MIDI ports {outs}; "
                            f"stderr:\n{err_path.read_text()}")
        time.sleep(0.05)


def run_live_take(samples: np.ndarray, *, workdir: Path, rtpitch_args: list[str] = (), tag: str = "e2e",
                  startup_timeout_s: float = 60.0, trailing_silence_s: float = 1.5,
                  exit_timeout_s: float = 10.0, settle_s: float = 0.3) -> LiveTake:
    """Play ``samples`` (mono float32 at the server's rate) into a live
    ``rtpitch listen --device system --midi-out --record`` and record what
    leaves its MIDI port. ``rtpitch_args`` are added to the command (e.g.
    ``["--model", "seed-cnn"]``). Raises :class:`JackError` when rtpitch does
    not come up or the player does not finish; otherwise returns the take
    (check ``returncode`` and ``capture_frame``)."""
    import jack

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    record = workdir / "take.mid"
    out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
    t_begin = time.monotonic()

    probe = jack.Client(f"{tag}-probe", no_start_server=True)
    sr, period = probe.samplerate, probe.blocksize
    probe.close()
    player = Player(f"{tag}-player", samples)
    monitor = MidiMonitor(f"{tag}-monitor")
    client = player.client
    player.client.activate()

    pa_before, midi_before = portaudio_inputs(client), midi_outputs(client)
    cmd = [sys.executable, "-m", "rtpitch", "listen", "--verbose", "--device", "system", "--midi-out",
           "--record", str(record), "--no-view", "--print-notes", *rtpitch_args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(out_path, "w") as out_f, open(err_path, "w") as err_f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out_f, stderr=err_f,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    offset = None
    try:
        ins, outs = wait_for_rtpitch(proc, client, pa_before, midi_before,
                                      time.monotonic() + startup_timeout_s, startup_timeout_s, err_path)
        ready_s = time.monotonic() - t_begin
        if len(outs) != 1:
            raise JackError(f"expected one new rtpitch MIDI port, got {outs}")
        # only the player feeds rtpitch: replace PortAudio's system:capture_* connections
        for port in ins:
            for src in connections(client, port):
                client.disconnect(src, port)
            client.connect(player.port, port)
        client.connect(outs[0], monitor.name)
        time.sleep(settle_s)  # connections take effect; rtpitch hears silence meanwhile
        player.st.armed = True
        play_s = player.signal.shape[0] / sr
        deadline = time.monotonic() + play_s + 5.0
        while not player.st.done and time.monotonic() < deadline:
            time.sleep(0.02)
        if not player.st.done:
            raise JackError("the player did not finish in time (JACK stalled?)")
        time.sleep(trailing_silence_s)
        offset = frame_clock_offset(client)  # while the server runs, for the clock mapping
        proc.send_signal(_signal.SIGINT)
        try:
            proc.wait(exit_timeout_s)
        except subprocess.TimeoutExpired:
            pass  # returncode stays None: the caller reports it
        # the last MIDI messages (close: all notes off) reach the monitor
        wait_for_all_notes_off(monitor.last_message, 2.0)
    finally:
        stop_process(proc)
        port_messages = monitor.messages()
        player.close()
        monitor.close()

    stderr = err_path.read_text()
    capture_frame, residual = snap_capture_frame(stderr, offset, player.st.start_frame, sr, period)
    return LiveTake(
        returncode=proc.returncode, stdout=out_path.read_text(), stderr=stderr, record_path=record,
        sr=sr, period=period, start_frame=player.st.start_frame, capture_frame=capture_frame,
        snap_residual=residual, port_messages=port_messages, xruns=player.st.xruns,
        blocks=list(player.st.blocks), ready_s=ready_s, wall_s=time.monotonic() - t_begin,
    )
