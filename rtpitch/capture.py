"""Live audio capture: a PortAudio input stream into a ring buffer.

The PortAudio callback is a numba ``cfunc`` (:func:`_pa_callback`), handed to
``Pa_OpenStream`` through sounddevice's cffi handles: it downmixes (or picks a
channel) straight into a preallocated :class:`~rtpitch.ringbuffer.RingBuffer`,
counts status flags and records the callback's PortAudio time stamps. It is
machine code that takes no GIL, allocates nothing, never raises, locks, logs
or signals: a Python thread that holds the GIL (the engine, or anything else
in the process, descheduled on a loaded CPU) cannot delay the audio thread.
It finds its arrays through ``userData``: an int64 array of their addresses
and lengths (:func:`_user_data`), which the open stream keeps alive.
The reader polls the ring every 2 ms.

PortAudio enumerates devices only when it is initialised, so a
:class:`DeviceSource` re-initialises it (``sounddevice._terminate()`` /
``_initialize()``) before resolving its device: a JACK server started after
``import sounddevice`` is then visible. Do not construct one while another
PortAudio stream of this process is open.

A device that goes away
-----------------------
When the stream stops by itself (the JACK server died, a USB interface was
unplugged) :attr:`DeviceSource.lost` becomes True, :attr:`~DeviceSource.finished`
once the stored samples are read, and :attr:`~DeviceSource.error` says what
happened. PortAudio cannot then be shut down safely under JACK: ``Pa_StopStream``
waits 10 minutes for a process cycle that never comes, and ``Pa_CloseStream`` /
``Pa_Terminate`` abort the process (``assert`` on ``jack_port_unregister`` /
``jack_client_close`` failing in pa_jack.c). So :meth:`DeviceSource.stop` leaves
a lost stream alone and removes sounddevice's exit handler (which would stop
the stream and terminate PortAudio). The process should save its work and end
with ``os._exit`` (``rtpitch listen`` does), so that no library's exit code
touches the dead server.
"""

from __future__ import annotations

import atexit
import time

import numba
import numpy as np
import sounddevice as sd
from numba.core import cgutils, types
from numba.extending import intrinsic

from .devices import list_input_devices
from .errors import ConfigError, DeviceError
from .resample import MAX_RATE, MIN_RATE
from .ringbuffer import Block, RingBuffer, _write_block

__all__ = ["Block", "DeviceSource"]

_PA_CONTINUE = 0  # paContinue
_PA_INPUT_OVERFLOW = 2  # paInputOverflow
_N_TIMES = 1024  # callback time stamps kept for jitter statistics
_POLL_S = 0.002
_N_ORIGIN = 8  # latest callbacks whose time stamps give origin_monotonic()

# callback counters (int64 slots)
_CB_CALLS = 0
_CB_OVERFLOWS = 1
_CB_FLAGGED = 2
_CB_FRAMES = 3  # frames in the last callback
_N_CB = 4

# userData slots (int64): address and length (first axis) of each array, then the channel choice
_U_RING = 0
_U_MARKERS = 2
_U_STATE = 4
_U_CB = 6
_U_TIMES = 8
_U_CHANNEL = 10  # -1: downmix, else the channel picked
_U_CHANNELS = 11  # interleaved channels in the input buffer
_N_USER = 12


@numba.njit(nogil=True, cache=True)
def _on_callback(indata, channel, ring, markers, state, cb, times, flags, t_now, t_adc):
    """Whole body of the PortAudio callback: store, count, time-stamp."""
    _write_block(indata, channel, ring, markers, state)
    k = cb[_CB_CALLS]
    row = k % times.shape[0]
    times[row, 0] = t_now
    times[row, 1] = t_adc
    if flags & _PA_INPUT_OVERFLOW:
        cb[_CB_OVERFLOWS] += 1
    if flags != 0:
        cb[_CB_FLAGGED] += 1
    cb[_CB_FRAMES] = indata.shape[0]
    cb[_CB_CALLS] = k + 1


@intrinsic
def _pointer(typingctx, address):
    """``(void *) address``: an int64 address as a pointer for ``numba.carray``."""
    sig = types.voidptr(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


# int callback(const void *input, void *output, unsigned long frameCount,
#              const PaStreamCallbackTimeInfo *timeInfo, PaStreamCallbackFlags statusFlags, void *userData)
_ULONG = types.uint64 if sd._ffi.sizeof("unsigned long") == 8 else types.uint32  # 32 bits on Windows
_CALLBACK_SIG = types.int32(types.voidptr, types.voidptr, _ULONG, types.CPointer(types.float64),
                            _ULONG, types.CPointer(types.int64))


@numba.cfunc(_CALLBACK_SIG, cache=True)
def _pa_callback(inp, output, frames, time_info, flags, user):
    """The PortAudio callback: ``inp`` is float32 (frames, channels)
    interleaved, ``time_info`` three doubles (inputBufferAdcTime, currentTime,
    outputBufferDacTime; s), ``user`` the int64 (12,) of :func:`_user_data`.
    Returns paContinue. Nothing in it can fail while the lengths in ``user``
    are > 0 (numba's error path, the one place that would take the GIL, is
    then unreachable)."""
    u = numba.carray(user, _N_USER)
    ring = numba.carray(_pointer(u[_U_RING]), u[_U_RING + 1], dtype=np.float32)
    markers = numba.carray(_pointer(u[_U_MARKERS]), (u[_U_MARKERS + 1], 2), dtype=np.int64)
    state = numba.carray(_pointer(u[_U_STATE]), u[_U_STATE + 1], dtype=np.int64)
    cb = numba.carray(_pointer(u[_U_CB]), u[_U_CB + 1], dtype=np.int64)
    times = numba.carray(_pointer(u[_U_TIMES]), (u[_U_TIMES + 1], 2), dtype=np.float64)
    indata = numba.carray(inp, (np.int64(frames), u[_U_CHANNELS]), dtype=np.float32)
    _on_callback(indata, u[_U_CHANNEL], ring, markers, state, cb, times, flags, time_info[1], time_info[0])
    return _PA_CONTINUE


def _user_data(ring: RingBuffer, cb: np.ndarray, times: np.ndarray, channel: int, channels: int) -> np.ndarray:
    """int64 (12,), the callback's ``userData``: address and length of the
    ring's three arrays, of ``cb`` (4,) and of ``times`` (n, 2), then
    ``channel`` (-1: downmix) and ``channels`` (interleaved in the input).
    The arrays must outlive every callback (:class:`_PaStream` keeps them)."""
    arrays = (ring._ring, ring._markers, ring._state, cb, times)
    slots = [v for a in arrays for v in (a.ctypes.data, a.shape[0])]
    return np.array(slots + [channel, channels], dtype=np.int64)


def _check(err: int, call: str) -> int:
    """``err`` when >= 0, else DeviceError('Pa_...: <PortAudio's text> [PaErrorCode n]')."""
    if err >= 0:
        return err
    text = sd._ffi.string(sd._lib.Pa_GetErrorText(err)).decode(errors="replace")
    if err == sd._lib.paUnanticipatedHostError:
        host = sd._lib.Pa_GetLastHostErrorInfo()
        text += f" (host error {host.errorCode}: {sd._ffi.string(host.errorText).decode(errors='replace')})"
    raise DeviceError(" ".join(f"{call}: {text} [PaErrorCode {err}]".split()))


def _input_latency(device: int, latency) -> float:
    """Suggested input latency (s): ``latency`` itself, or the device's default for "low"/"high"."""
    if latency not in ("low", "high"):
        return float(latency)
    info = sd._lib.Pa_GetDeviceInfo(device)
    if info == sd._ffi.NULL:
        _check(sd._lib.paInvalidDevice, "Pa_GetDeviceInfo")
    return info.defaultLowInputLatency if latency == "low" else info.defaultHighInputLatency


_OPEN: set = set()  # open _PaStreams: what their callbacks write into stays alive until closed


class _PaStream:
    """A PortAudio float32 interleaved input stream whose callback is :func:`_pa_callback`.

    The callback writes into ``ring``, ``cb`` and ``times`` (see
    :func:`_user_data`, built here from them and ``channel``); the stream keeps
    them, and an open stream stays in ``_OPEN`` until closed, so one never closed
    (a lost device, left alone) cannot leave its callback writing to freed
    memory. PortAudio errors raise DeviceError (:func:`_check`).
    """

    def __init__(self, device: int, channels: int, samplerate: int, blocksize: int, latency,
                 ring: RingBuffer, cb: np.ndarray, times: np.ndarray, channel: int):
        user = _user_data(ring, cb, times, channel, channels)
        params = sd._ffi.new("PaStreamParameters *", (device, channels, sd._lib.paFloat32,
                                                       _input_latency(device, latency), sd._ffi.NULL))
        ptr = sd._ffi.new("PaStream **")
        _check(sd._lib.Pa_OpenStream(ptr, params, sd._ffi.NULL, float(samplerate), blocksize, sd._lib.paNoFlag,
                                     _CALLBACK, sd._ffi.cast("void *", user.ctypes.data)), "Pa_OpenStream")
        self._ptr = ptr[0]
        self._keep = (user, ring, cb, times)
        _OPEN.add(self)
        self.latency = float(sd._lib.Pa_GetStreamInfo(self._ptr).inputLatency)  # s

    @property
    def active(self) -> bool:
        """True from :meth:`start` until stopped, closed, or the host ended it."""
        return self._ptr != sd._ffi.NULL and _check(sd._lib.Pa_IsStreamActive(self._ptr), "Pa_IsStreamActive") == 1

    @property
    def time(self) -> float:
        """Stream clock (s) of the callbacks' time stamps; 0.0 when unavailable."""
        return float(sd._lib.Pa_GetStreamTime(self._ptr))

    def start(self) -> None:
        _check(sd._lib.Pa_StartStream(self._ptr), "Pa_StartStream")

    def stop(self) -> None:
        """Stop after the pending buffers (blocks until the last callback returned)."""
        _check(sd._lib.Pa_StopStream(self._ptr), "Pa_StopStream")

    def close(self) -> None:
        _check(sd._lib.Pa_CloseStream(self._ptr), "Pa_CloseStream")
        self._ptr = sd._ffi.NULL
        _OPEN.discard(self)


_CALLBACK = sd._ffi.cast("PaStreamCallback *", _pa_callback.address)


def _describe(inputs: list[dict]) -> str:
    return ", ".join(f"{d['index']} '{d['name']}' ({d['hostapi']})" for d in inputs) or "none"


def resolve_input_device(device, inputs: list[dict]) -> dict:
    """Pick an input device by index, by a digit string, by case-insensitive
    substring of its name, or the default (None). Raises DeviceError."""
    if device is None:
        try:
            default = sd.query_devices(kind="input")["index"]
        except (sd.PortAudioError, ValueError):
            default = -1
        for d in inputs:
            if d["index"] == default:
                return d
        if len(inputs) >= 1:
            return inputs[0]
        raise DeviceError("no audio input device; start JACK or plug in a microphone")
    if isinstance(device, str) and device.strip().isdigit():
        device = int(device)
    if isinstance(device, int):
        for d in inputs:
            if d["index"] == device:
                return d
        raise DeviceError(f"no input device with index {device}; inputs: {_describe(inputs)}")
    key = str(device).lower()
    hits = [d for d in inputs if key in d["name"].lower()]
    exact = [d for d in hits if d["name"].lower() == key]
    if len(hits) == 1:
        return hits[0]
    if len(exact) == 1:
        return exact[0]
    if not hits:
        raise DeviceError(f"no input device matches {device!r}; inputs: {_describe(inputs)}")
    raise DeviceError(f"input device {device!r} is ambiguous; matches: {_describe(hits)}; give an index")


class DeviceSource:
    """Mono blocks from an audio input device (Source interface).

    Parameters
    ----------
    device : int, str or None
        Index, case-insensitive name substring, or None for the default input.
    channel : int or None
        None downmixes all input channels (mean), else that channel (0-based).
    blocksize : int
        Frames per callback; 0 lets PortAudio choose (what it chose is in
        :attr:`blocksize` after :meth:`start`).
    latency : str or float
        PortAudio suggested latency ("low", "high" or seconds).
    ring_seconds : float
        Ring buffer length (s). When the reader falls this far behind, whole
        callback blocks are dropped and counted in :attr:`overrun_samples`.
    stall_timeout_s : float
        A running stream whose callbacks stop for this long (a hung JACK
        server, a device that went silent without an error) counts as
        :attr:`lost`; checked whenever :attr:`lost` or :attr:`finished` is read.

    Attributes
    ----------
    sample_rate : int
        The device's default rate (Hz); capture runs at it.
    device_name, hostapi_name : str
    channels : int
        Channels opened on the device.
    blocksize : int
        Frames per callback: the requested size, or with ``blocksize=0`` the
        size of the last callback PortAudio made (0 before the first).
    input_latency_s : float or None
        PortAudio's input latency (s, from ``Pa_GetStreamInfo``) after :meth:`start`.
    """

    def __init__(self, device: int | str | None = None, channel: int | None = None, *,
                 blocksize: int = 0, latency="low", ring_seconds: float = 2.0, stall_timeout_s: float = 3.0):
        inputs = list_input_devices(rescan=True)
        info = resolve_input_device(device, inputs)
        self.device_index = info["index"]
        self.device_name = info["name"]
        self.hostapi_name = info["hostapi"]
        max_ch = info["max_input_channels"]
        if channel is not None and not 0 <= channel < max_ch:
            raise ConfigError(f"channel {channel} does not exist: '{self.device_name}' has "
                              f"{max_ch} input channel(s) (0..{max_ch - 1})")
        rate = info["default_samplerate"]
        if not MIN_RATE <= rate <= MAX_RATE or rate != int(rate):
            raise ConfigError(f"'{self.device_name}' runs at {rate:g} Hz; need an integer rate in "
                              f"{MIN_RATE}-{MAX_RATE} Hz")
        if blocksize < 0 or ring_seconds <= 0:
            raise ConfigError(f"blocksize must be >= 0 and ring_seconds > 0, got {blocksize}, {ring_seconds}")
        self.sample_rate = int(rate)
        self.channels = max_ch if channel is None else channel + 1
        self._channel = -1 if channel is None else int(channel)
        self._req_blocksize = int(blocksize)
        self._latency = latency
        self.ring = RingBuffer(int(ring_seconds * self.sample_rate))
        self._cb = np.zeros(_N_CB, dtype=np.int64)
        self._times = np.zeros((_N_TIMES, 2), dtype=np.float64)
        self._stream = None
        self._stopped = False
        self._lost = False
        self._stalled = False
        self.stall_timeout_s = float(stall_timeout_s)
        self._seen_calls = 0  # callbacks counted at the last check ...
        self._seen_at = 0.0   # ... and when that count last changed (time.monotonic())
        self.input_latency_s = None

    def start(self) -> None:
        """Open and start the input stream. Raises DeviceError (busy, gone)."""
        try:
            stream = _PaStream(self.device_index, self.channels, self.sample_rate, self._req_blocksize,
                               self._latency, self.ring, self._cb, self._times, self._channel)
            stream.start()
        except DeviceError as err:
            raise DeviceError(f"cannot open input device {self.device_index} '{self.device_name}' "
                              f"({self.hostapi_name}): {err}; is it busy or gone?") from None
        self._stream = stream
        self.input_latency_s = stream.latency
        self._seen_at = time.monotonic()

    def read(self, timeout_s: float) -> Block | None:
        """Every stored sample up to the next gap, or None if none arrived in ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        ring = self.ring
        while True:
            avail = ring.available()
            if avail > 0:
                out = np.empty(avail, dtype=np.float32)
                pos, n = ring.read_into(out)
                return Block(pos, out[:n])
            if self._stream is None or self._stopped or not self._stream.active:
                return None
            if time.monotonic() >= deadline:
                return None
            time.sleep(_POLL_S)

    def stop(self) -> None:
        """Stop and close the stream; stored samples can still be read.

        A :attr:`lost` stream is not touched (see the module docstring: under
        JACK that would hang or abort the process); sounddevice's exit handler,
        which would do the same at interpreter exit, is unregistered.
        """
        if self._stream is None or self._stopped:
            return
        if self.lost:
            self._stopped = True
            atexit.unregister(getattr(sd, "_exit_handler", lambda: None))
            return
        self._stopped = True
        try:
            self._stream.stop()
            self._stream.close()
        except DeviceError as err:
            raise DeviceError(f"closing input device {self.device_index} '{self.device_name}': {err}") from None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def finished(self) -> bool:
        """True when the stream has stopped (by :meth:`stop`, or by itself when
        the device went away) and every stored sample has been read."""
        if self._stream is None:
            return False
        ended = self._stopped or self.lost
        return ended and self.ring.available() == 0

    @property
    def lost(self) -> bool:
        """True once the stream has stopped by itself (not by :meth:`stop`):
        the device went away or its JACK server died, or no callback came for
        ``stall_timeout_s``. It stays True."""
        if self._lost or self._stream is None or self._stopped:
            return self._lost
        if not self._stream.active:
            self._lost = True
            return True
        calls, now = self.callbacks, time.monotonic()
        if calls != self._seen_calls:
            self._seen_calls, self._seen_at = calls, now
        elif now - self._seen_at > self.stall_timeout_s:
            self._lost = self._stalled = True
        return self._lost

    @property
    def error(self) -> str | None:
        """One line when the device was :attr:`lost`, else None."""
        if not self.lost:
            return None
        jack = "JACK" in self.hostapi_name
        if self._stalled:
            why = "JACK server hung?" if jack else "device hung?"
            return (f"audio device '{self.device_name}' stopped delivering audio "
                    f"(no callback for {self.stall_timeout_s:g} s; {why})")
        why = "JACK server gone?" if jack else "unplugged or taken by another program?"
        return f"audio device '{self.device_name}' stopped ({why})"

    @property
    def blocksize(self) -> int:
        """Frames per callback (see class docstring)."""
        return self._req_blocksize or int(self._cb[_CB_FRAMES])

    @property
    def overrun_samples(self) -> int:
        """Samples dropped because the ring buffer was full."""
        return self.ring.overrun_samples

    @property
    def overrun_blocks(self) -> int:
        """Callback blocks dropped because the ring buffer was full."""
        return self.ring.overrun_blocks

    @property
    def nonfinite_samples(self) -> int:
        """NaN/Inf samples replaced by 0."""
        return self.ring.nonfinite_samples

    @property
    def callbacks(self) -> int:
        """Callbacks so far."""
        return int(self._cb[_CB_CALLS])

    @property
    def input_overflows(self) -> int:
        """Callbacks PortAudio flagged input overflow (data lost before us)."""
        return int(self._cb[_CB_OVERFLOWS])

    def callback_times(self) -> np.ndarray:
        """PortAudio time stamps of the last <= 1024 callbacks, oldest first,
        float64 (k, 2): PortAudio's ``currentTime`` and ``inputBufferAdcTime`` (s,
        the stream's clock, ``Pa_GetStreamTime``; what it tracks depends on the
        host API, and some report 0)."""
        k = int(self._cb[_CB_CALLS])
        if k <= _N_TIMES:
            return self._times[:k].copy()
        i = k % _N_TIMES
        return np.concatenate([self._times[i:], self._times[:i]])

    def origin_monotonic(self) -> float | None:
        """The ``time.monotonic()`` (s) of audio time 0 (block position 0),
        measured on the stream's clock at the latest callbacks; None when no
        callback ran yet, the stream is not running, or the host API keeps no
        stream time.

        Callback ``k`` (0-based) delivers the samples from ``k * blocksize`` on,
        so its time stamp ``t_k`` (PortAudio ``currentTime``) puts sample 0 at
        stream time ``t_k - k * blocksize / sample_rate``; this is the median
        over the last 8 callbacks (one late callback does not move it), put on
        the monotonic clock with one back-to-back reading of ``Pa_GetStreamTime`` and
        ``time.monotonic()``. Assumes callbacks of equal size (JACK, or a fixed
        ``blocksize``). If the host dropped cycles of this stream earlier (JACK
        skips a client that is late), the samples counted since then are fewer
        than the time that passed: the value holds for the recent audio, and
        is later than the true start by what was lost. Call it before
        :meth:`stop` (:func:`rtpitch.runner.run_stream` does, at the end of a
        run). Used to put audio-time stamps on another clock, e.g. a JACK
        client's frame counter in end-to-end tests (within about a millisecond).
        """
        k = self.callbacks  # rows of callbacks < k are complete (the count is published last)
        if self._stream is None or self._stopped or self._lost or k == 0:
            return None
        frames = int(self._cb[_CB_FRAMES])
        try:
            if not self._stream.active:
                return None
            now_stream = self._stream.time
            now = time.monotonic()
        except DeviceError:  # the device went away
            return None
        if now_stream == 0.0:  # no clock to read
            return None
        idx = np.arange(max(0, k - _N_ORIGIN), k)
        stamps = self._times[idx % _N_TIMES, 0]
        origin = float(np.median(stamps - idx * (frames / self.sample_rate)))
        return now - (now_stream - origin)

    def jitter_stats(self) -> dict:
        """Callback interval statistics from :meth:`callback_times` (ms):
        mean, std, min, max of the ``currentTime`` differences. On JACK that
        clock is the server's frame-time estimate, which steps back after an
        xrun: ``min_ms`` can then be negative."""
        t = self.callback_times()[:, 0]
        d = np.diff(t) * 1e3
        if d.size == 0:
            return {"callbacks": self.callbacks, "mean_ms": 0.0, "std_ms": 0.0, "min_ms": 0.0, "max_ms": 0.0}
        return {"callbacks": self.callbacks, "mean_ms": float(d.mean()), "std_ms": float(d.std()),
                "min_ms": float(d.min()), "max_ms": float(d.max())}
