"""Audio file source: the same blocks a microphone would give, from a file.

The file is read in blocks (a long file is never loaded whole), downmixed or
channel-picked by the ring buffer's numba kernel (NaN/Inf -> 0, counted), and
either paced at real time against a monotonic clock (a stand-in microphone) or
delivered as fast as the reader asks.
"""

from __future__ import annotations

import os
import time

import numpy as np
import soundfile as sf

from .errors import AudioFileError, ConfigError
from .ringbuffer import _NONFINITE, _N_STATE, Block, _to_mono

MIN_RATE = 8000
MAX_RATE = 192000


class FileSource:
    """Blocks of mono float32 samples from an audio file (WAV/FLAC/OGG/MP3...).

    Parameters
    ----------
    path : str or os.PathLike
        Audio file readable by libsndfile.
    realtime : bool
        True: block k (samples ``[k*blocksize, (k+1)*blocksize)``) becomes
        readable ``(k+1)*blocksize/sample_rate`` s after :meth:`start`, as from
        a microphone. False: as fast as :meth:`read` is called.
    blocksize : int
        Samples per block (native rate); the last block may be shorter.
    channel : int or None
        None downmixes (mean of channels), else that channel (0-based).
    """

    # a recording is followed by silence: the engine hears its end out (Engine.finish)
    ends_in_silence = True

    def __init__(self, path, *, realtime: bool, blocksize: int = 512, channel: int | None = None):
        self.path = os.fspath(path)
        name = os.path.basename(self.path)
        if blocksize <= 0:
            raise ConfigError(f"{name}: blocksize must be > 0 samples, got {blocksize}")
        if not os.path.exists(self.path):
            raise AudioFileError(f"{self.path}: file not found")
        if os.path.isdir(self.path):
            raise AudioFileError(f"{self.path}: is a folder, not an audio file")
        if os.path.getsize(self.path) == 0:
            raise AudioFileError(f"{name}: the file is empty (0 bytes)")
        try:
            self._file = sf.SoundFile(self.path)
        except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as err:
            raise AudioFileError(f"{name}: cannot read audio ({_one_line(err)})") from None
        rate = self._file.samplerate
        if self._file.frames == 0:
            self._file.close()
            raise AudioFileError(f"{name}: contains no audio samples")
        if not MIN_RATE <= rate <= MAX_RATE:
            self._file.close()
            raise ConfigError(f"{name}: sample rate {rate} Hz outside {MIN_RATE}-{MAX_RATE} Hz")
        nch = self._file.channels
        if channel is not None and not 0 <= channel < nch:
            self._file.close()
            raise ConfigError(f"{name}: channel {channel} does not exist (file has {nch} channel(s): 0..{nch - 1})")
        self.sample_rate = int(rate)
        self.channels = nch
        self.frames = int(self._file.frames)
        self.blocksize = int(blocksize)
        self.realtime = bool(realtime)
        self._channel = -1 if channel is None else int(channel)
        self._buf = np.zeros((self.blocksize, nch), dtype=np.float32)
        self._state = np.zeros(_N_STATE, dtype=np.int64)
        self._position = 0
        self._t0 = None
        self._eof = False
        self._damaged: str | None = None  # decoding stopped early: raised on the next read

    @property
    def overrun_samples(self) -> int:
        """Always 0: nothing is dropped from a file."""
        return 0

    @property
    def nonfinite_samples(self) -> int:
        """NaN/Inf samples replaced by 0 so far."""
        return int(self._state[_NONFINITE])

    @property
    def finished(self) -> bool:
        """True once every block has been read."""
        return self._eof

    @property
    def duration_s(self) -> float:
        """Length of the file (s)."""
        return self.frames / self.sample_rate

    def start(self) -> None:
        """Start the clock (realtime) and rewind to the first sample."""
        self._file.seek(0)
        self._position = 0
        self._eof = False
        self._t0 = time.monotonic()

    def read(self, timeout_s: float) -> Block | None:
        """Next block, or None if it is not due within ``timeout_s`` or the file has ended."""
        if self._t0 is None:
            raise ConfigError(f"{os.path.basename(self.path)}: read() before start()")
        if self._damaged is not None:
            self._eof = True
            raise AudioFileError(self._damaged)
        if self._eof:
            return None
        if self.realtime:
            end = min(self._position + self.blocksize, self.frames)
            due = self._t0 + end / self.sample_rate
            wait = due - time.monotonic()
            if wait > timeout_s:
                time.sleep(max(timeout_s, 0.0))
                return None
            if wait > 0:
                time.sleep(wait)
        try:
            got = self._file.read(self.blocksize, dtype="float32", always_2d=True, out=self._buf)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioFileError(f"{os.path.basename(self.path)}: read failed at sample {self._position} ({_one_line(err)})") from None
        n = got.shape[0]
        end = self._position + n
        if n < self.blocksize or end >= self.frames:
            self._eof = True
            if self.frames - end > max(self.frames // 100, self.sample_rate // 20):
                # the decoder gave up well before the length in the header (a corrupt
                # or cut compressed stream): deliver what came, then fail the next read
                self._eof = False
                self._damaged = (f"{os.path.basename(self.path)}: decoding stopped at {end / self.sample_rate:.2f} s "
                                 f"of {self.duration_s:.2f} s (damaged or truncated file)")
        if n == 0:
            if self._damaged is not None:
                self._eof = True
                raise AudioFileError(self._damaged)
            return None
        out = np.empty(n, dtype=np.float32)
        _to_mono(self._buf[:n], self._channel, out, self._state)
        block = Block(self._position, out)
        self._position += n
        return block

    def stop(self) -> None:
        """Close the file; no more blocks."""
        self._eof = True
        self._file.close()


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
