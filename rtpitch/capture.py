"""Live audio capture: :class:`DeviceSource`, mono blocks from an input device.

The stream and its compiled callback are :mod:`rtpitch.pa_stream` (the
callback only copies into a preallocated ring buffer and counts); device
lookup is :mod:`rtpitch.devices`. The reader polls the ring every 2 ms.

PortAudio enumerates devices only when it is initialised, so a
:class:`DeviceSource` re-initialises it (:func:`rtpitch.devices.rescan_audio`)
before resolving its device: a JACK server started after ``import
sounddevice`` is then visible. Do not construct one while another PortAudio
stream of this process is open.

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

import numpy as np
import sounddevice as sd

from .devices import list_input_devices, resolve_input_device
from .errors import ConfigError, DeviceError
from .pa_stream import CB_CALLS, CB_FRAMES, CB_OVERFLOWS, N_COUNTERS, N_TIMES, PaInputStream
from .resample import MAX_RATE, MIN_RATE
from .ringbuffer import RingBuffer
from .stage import Block, Source

__all__ = ["Block", "DeviceSource", "resolve_input_device"]

_POLL_S = 0.002
_N_ORIGIN = 8  # latest callbacks whose time stamps give origin_monotonic()


class DeviceSource(Source):
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
        self._cb = np.zeros(N_COUNTERS, dtype=np.int64)
        self._times = np.zeros(N_TIMES, dtype=np.float64)  # PortAudio currentTime per callback
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
            stream = PaInputStream(self.device_index, self.channels, self.sample_rate, self._req_blocksize,
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
        return self._req_blocksize or int(self._cb[CB_FRAMES])

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
        return int(self._cb[CB_CALLS])

    @property
    def input_overflows(self) -> int:
        """Callbacks PortAudio flagged input overflow (data lost before us)."""
        return int(self._cb[CB_OVERFLOWS])

    def callback_times(self) -> np.ndarray:
        """PortAudio ``currentTime`` (s, the stream's clock, ``Pa_GetStreamTime``;
        what it tracks depends on the host API, and some report 0) of the last
        <= 1024 callbacks, oldest first, float64 (k,)."""
        k = int(self._cb[CB_CALLS])
        if k <= N_TIMES:
            return self._times[:k].copy()
        i = k % N_TIMES
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
        frames = int(self._cb[CB_FRAMES])
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
        stamps = self._times[idx % N_TIMES]
        origin = float(np.median(stamps - idx * (frames / self.sample_rate)))
        return now - (now_stream - origin)
