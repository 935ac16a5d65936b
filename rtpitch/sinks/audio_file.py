"""Record the audio the engine hears to a WAV file (float32, mono), as it arrives.

What is written is what :meth:`Engine.feed` gets: one channel (the mix of the
input's channels, or ``--channel N``) at the capture rate, NaN/Inf already
zeroed, and samples the ring buffer dropped written as silence, so file time
is audio time.  ``rtpitch transcribe`` of the recording therefore yields the
take's notes (the engine's output does not depend on how its input is cut
into blocks), apart from notes sounding across a drop, which the live engine
closed at the gap.

The file is written block by block from the engine's thread, never from the
audio callback.  Its header is brought up to date every ``HEADER_EVERY_S``
seconds of audio and at :meth:`close`, so a killed process (SIGKILL, out of
memory) leaves a readable file up to then.  A failing write (disk full, the
4 GiB WAV limit after 6 h at 48 kHz) stops the recording and is kept in
``error``; the take goes on and its MIDI is unaffected.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import ConfigError

HEADER_BYTES = 44
HEADER_EVERY_S = 5.0
MAX_DATA_BYTES = 2 ** 32 - 1 - (HEADER_BYTES - 8)  # RIFF sizes are 32-bit
_ZEROS = np.zeros(4096, dtype="<f4")


def wav_header(sample_rate: int, n_samples: int) -> bytes:
    """The 44-byte header of a mono IEEE-float32 WAV file of ``n_samples``."""
    data = 4 * n_samples
    return (b"RIFF" + struct.pack("<I", HEADER_BYTES - 8 + data) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, sample_rate, 4 * sample_rate, 4, 32)
            + b"data" + struct.pack("<I", data))


def check_name(path) -> None:
    """Refuse a file name the recorder cannot write (before anything starts).

    Raises
    ------
    ConfigError
        ``path`` does not end in ``.wav``.
    """
    if Path(path).suffix.lower() != ".wav":
        raise ConfigError(f"cannot record audio to {path}: use a .wav file name")


class AudioFileRecorder:
    """Write mono blocks stamped with their sample position to ``path``.

    Parameters
    ----------
    path : str or Path
        A ``.wav`` file name; replaced if it exists.
    sample_rate : int
        Hz of the blocks (the capture rate).
    """

    def __init__(self, path, sample_rate: int):
        check_name(path)
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        try:
            self._file = open(self.path, "wb")
            self._file.write(wav_header(self.sample_rate, 0))
        except OSError as exc:
            raise ConfigError(f"cannot record audio to {self.path}: {exc.strerror or exc}") from None
        self.samples_written = 0
        self.error: str | None = None
        self._header_every = max(1, int(HEADER_EVERY_S * self.sample_rate))
        self._next_header = self._header_every
        self._open = True

    def write(self, position: int, samples: np.ndarray) -> None:
        """Append ``samples`` (float32, (n,)) that start at sample ``position``;
        a gap since the last block is written as silence.  Never raises."""
        if not self._open:
            return
        try:
            gap = position - self.samples_written
            while gap > 0:
                n = min(gap, _ZEROS.shape[0])
                self._append(_ZEROS[:n])
                gap -= n
            self._append(np.ascontiguousarray(samples, dtype="<f4"))
            if self.samples_written >= self._next_header:
                self._next_header += self._header_every
                self._update_header()
        except Exception as exc:  # noqa: BLE001 - the take goes on without its audio
            self._fail(exc)

    def _append(self, x: np.ndarray) -> None:
        if 4 * (self.samples_written + x.shape[0]) > MAX_DATA_BYTES:
            raise OSError("a WAV file holds at most 4 GiB")
        self._file.write(memoryview(x))
        self.samples_written += x.shape[0]

    def _update_header(self) -> None:
        self._file.flush()
        end = self._file.tell()
        self._file.seek(0)
        self._file.write(wav_header(self.sample_rate, self.samples_written))
        self._file.seek(end)
        self._file.flush()

    def close(self) -> None:
        """Finish the file (its header).  Idempotent; never raises."""
        if not self._open:
            return
        try:
            self._update_header()
            self._open = False
            self._file.close()
        except Exception as exc:  # noqa: BLE001 - reported in ``error``
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else " ".join(str(exc).split())
        self.error = (f"audio recording {self.path} stopped at {self.samples_written / self.sample_rate:.1f} s: "
                      f"{reason}")
        self._open = False
        try:
            self._file.close()
        except Exception:  # noqa: BLE001 - already failed; the first reason is the one reported
            pass
