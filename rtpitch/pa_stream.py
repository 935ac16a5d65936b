"""The PortAudio input stream and its callback: a numba ``cfunc`` that copies.

The callback (:func:`pa_callback`) is handed to ``Pa_OpenStream`` through
sounddevice's cffi handles: it downmixes (or picks a channel) straight into a
preallocated :class:`~rtpitch.ringbuffer.RingBuffer`, counts callbacks and
input-overflow flags, and records each callback's PortAudio ``currentTime``
(the stream clock that :meth:`rtpitch.capture.DeviceSource.origin_monotonic`
reads). It is machine code that takes no GIL, allocates nothing, never blocks,
raises, locks, logs or signals: a Python thread that holds the GIL (the
engine, or anything else in the process, descheduled on a loaded CPU) cannot
delay the audio thread. It finds its arrays through ``userData``: an int64
array of their addresses and lengths (:func:`user_data`), which the open
stream keeps alive.
"""

from __future__ import annotations

import numba
import numpy as np
import sounddevice as sd
from numba.core import types

from .cpointer import pointer
from .errors import DeviceError
from .ringbuffer import RingBuffer, _write_block

_PA_CONTINUE = 0  # paContinue
_PA_INPUT_OVERFLOW = 2  # paInputOverflow
N_TIMES = 1024  # callback time stamps kept (a ring)

# callback counters (int64 slots of the ``counters`` array)
CB_CALLS = 0
CB_OVERFLOWS = 1
CB_FRAMES = 2  # frames in the last callback
N_COUNTERS = 3

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
def _on_callback(indata, channel, ring, markers, state, cb, times, flags, t_now):
    """Whole body of the PortAudio callback: store, count, time-stamp."""
    _write_block(indata, channel, ring, markers, state)
    k = cb[CB_CALLS]
    times[k % times.shape[0]] = t_now
    if flags & _PA_INPUT_OVERFLOW:
        cb[CB_OVERFLOWS] += 1
    cb[CB_FRAMES] = indata.shape[0]
    cb[CB_CALLS] = k + 1


# int callback(const void *input, void *output, unsigned long frameCount,
#              const PaStreamCallbackTimeInfo *timeInfo, PaStreamCallbackFlags statusFlags, void *userData)
_ULONG = types.uint64 if sd._ffi.sizeof("unsigned long") == 8 else types.uint32  # 32 bits on Windows
_CALLBACK_SIG = types.int32(types.voidptr, types.voidptr, _ULONG, types.CPointer(types.float64),
                            _ULONG, types.CPointer(types.int64))


@numba.cfunc(_CALLBACK_SIG, cache=True)
def pa_callback(inp, output, frames, time_info, flags, user):
    """The PortAudio callback: ``inp`` is float32 (frames, channels)
    interleaved, ``time_info`` three doubles (inputBufferAdcTime, currentTime,
    outputBufferDacTime; s), ``user`` the int64 (12,) of :func:`user_data`.
    Returns paContinue. Nothing in it can fail while the lengths in ``user``
    are > 0 (numba's error path, the one place that would take the GIL, is
    then unreachable)."""
    u = numba.carray(user, _N_USER)
    ring = numba.carray(pointer(u[_U_RING]), u[_U_RING + 1], dtype=np.float32)
    markers = numba.carray(pointer(u[_U_MARKERS]), (u[_U_MARKERS + 1], 2), dtype=np.int64)
    state = numba.carray(pointer(u[_U_STATE]), u[_U_STATE + 1], dtype=np.int64)
    cb = numba.carray(pointer(u[_U_CB]), u[_U_CB + 1], dtype=np.int64)
    times = numba.carray(pointer(u[_U_TIMES]), u[_U_TIMES + 1], dtype=np.float64)
    indata = numba.carray(inp, (np.int64(frames), u[_U_CHANNELS]), dtype=np.float32)
    _on_callback(indata, u[_U_CHANNEL], ring, markers, state, cb, times, flags, time_info[1])
    return _PA_CONTINUE


def user_data(ring: RingBuffer, counters: np.ndarray, times: np.ndarray, channel: int, channels: int) -> np.ndarray:
    """int64 (12,), the callback's ``userData``: address and length of the
    ring's three arrays, of ``counters`` int64 (N_COUNTERS,) and of ``times``
    float64 (n,), then ``channel`` (-1: downmix) and ``channels`` (interleaved
    in the input). The arrays must outlive every callback (:class:`PaInputStream`
    keeps them)."""
    arrays = ring.arrays() + (counters, times)
    slots = [v for a in arrays for v in (a.ctypes.data, a.shape[0])]
    return np.array(slots + [channel, channels], dtype=np.int64)


def check(err: int, call: str) -> int:
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
        check(sd._lib.paInvalidDevice, "Pa_GetDeviceInfo")
    return info.defaultLowInputLatency if latency == "low" else info.defaultHighInputLatency


_OPEN: set = set()  # open streams: what their callbacks write into stays alive until closed


class PaInputStream:
    """A PortAudio float32 interleaved input stream whose callback is :func:`pa_callback`.

    The callback writes into ``ring``, ``counters`` and ``times`` (see
    :func:`user_data`, built here from them and ``channel``); the stream keeps
    them, and an open stream stays in ``_OPEN`` until closed, so one never closed
    (a lost device, left alone) cannot leave its callback writing to freed
    memory. PortAudio errors raise DeviceError (:func:`check`).
    """

    def __init__(self, device: int, channels: int, samplerate: int, blocksize: int, latency,
                 ring: RingBuffer, counters: np.ndarray, times: np.ndarray, channel: int):
        user = user_data(ring, counters, times, channel, channels)
        params = sd._ffi.new("PaStreamParameters *", (device, channels, sd._lib.paFloat32,
                                                       _input_latency(device, latency), sd._ffi.NULL))
        ptr = sd._ffi.new("PaStream **")
        check(sd._lib.Pa_OpenStream(ptr, params, sd._ffi.NULL, float(samplerate), blocksize, sd._lib.paNoFlag,
                                    _CALLBACK, sd._ffi.cast("void *", user.ctypes.data)), "Pa_OpenStream")
        self._ptr = ptr[0]
        self._keep = (user, ring, counters, times)
        _OPEN.add(self)
        self.latency = float(sd._lib.Pa_GetStreamInfo(self._ptr).inputLatency)  # s

    @property
    def active(self) -> bool:
        """True from :meth:`start` until stopped, closed, or the host ended it."""
        return self._ptr != sd._ffi.NULL and check(sd._lib.Pa_IsStreamActive(self._ptr), "Pa_IsStreamActive") == 1

    @property
    def time(self) -> float:
        """Stream clock (s) of the callbacks' time stamps; 0.0 when unavailable."""
        return float(sd._lib.Pa_GetStreamTime(self._ptr))

    def start(self) -> None:
        check(sd._lib.Pa_StartStream(self._ptr), "Pa_StartStream")

    def stop(self) -> None:
        """Stop after the pending buffers (blocks until the last callback returned)."""
        check(sd._lib.Pa_StopStream(self._ptr), "Pa_StopStream")

    def close(self) -> None:
        check(sd._lib.Pa_CloseStream(self._ptr), "Pa_CloseStream")
        self._ptr = sd._ffi.NULL
        _OPEN.discard(self)


_CALLBACK = sd._ffi.cast("PaStreamCallback *", pa_callback.address)
