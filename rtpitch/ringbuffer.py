"""Single-producer / single-consumer ring buffer of mono float32 samples.

The producer is the audio callback (or a file reader); it calls
:meth:`RingBuffer.write_block` with a ``(frames, channels)`` float32 block and
the block is downmixed or channel-picked straight into the ring by a numba
kernel. The consumer (the engine thread) calls :meth:`RingBuffer.read_into`.

Full policy: **drop the whole incoming block**. A block that does not fit in
the free space is not stored; ``overrun_samples`` grows by its length and
``overrun_blocks`` by one. The *source position* (samples offered so far) still
advances, so the reader sees the gap as a jump in the position it is given.

Memory ordering: both kernels run with the GIL released and may run at the
same time on two cores. The producer copies the samples, then issues a
sequentially consistent fence, then publishes its write count; the consumer
loads the write count, fences, then reads samples (and symmetrically for the
read count the producer uses to compute free space). The fences are real
LLVM ``fence seq_cst`` instructions, so this holds on weakly ordered CPUs (ARM)
as well as x86. Counters are aligned int64 loads/stores (single-copy atomic on
64-bit CPUs).
"""

from __future__ import annotations

import numba
import numpy as np
from numba.core import types
from numba.extending import intrinsic

from .errors import ConfigError


# state array slots (int64)
_POS = 0        # samples offered by the producer so far (source position), producer-owned
_W = 1          # samples stored so far (write count), producer-owned, published last
_R = 2          # samples consumed so far (read count), consumer-owned
_OVR_SAMPLES = 3
_OVR_BLOCKS = 4
_NONFINITE = 5
_W_OFFSET = 6   # position - stored index of the last stored block (producer)
_MW = 7         # gap markers written (producer)
_MR = 8         # gap markers consumed (consumer)
_R_OFFSET = 9   # position - read index for the next sample read (consumer)
_N_STATE = 10

_N_MARKERS = 256  # unread gaps the ring can describe; a further gap drops its block


@intrinsic
def _fence(typingctx):
    """``fence seq_cst``: no load/store moves across it (compiler or CPU)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


@numba.njit(nogil=True, cache=True)
def _store_mono(indata, channel, dst, dst_start, src_start, n):
    """Write rows ``src_start .. src_start+n`` of ``indata`` (frames, channels),
    downmixed (channel -1: mean of channels) or channel-picked, into
    ``dst[dst_start : dst_start+n]``. NaN/Inf become 0; returns how many did.
    """
    nch = indata.shape[1]
    bad = 0
    for i in range(n):
        row = src_start + i
        if channel >= 0:
            v = np.float64(indata[row, channel])
        else:
            acc = 0.0
            for c in range(nch):
                acc += indata[row, c]
            v = acc / nch
        if not np.isfinite(v):
            v = 0.0
            bad += 1
        dst[dst_start + i] = v
    return bad


@numba.njit(nogil=True, cache=True)
def _to_mono(indata, channel, out, state):
    """Mono copy of a whole block into ``out[:frames]`` (no ring); counts NaN/Inf
    in ``state[_NONFINITE]``. Used by file sources."""
    state[_NONFINITE] += _store_mono(indata, channel, out, 0, 0, indata.shape[0])


@numba.njit(nogil=True, cache=True)
def _write_block(indata, channel, ring, markers, state):
    """Producer: store one block (drop it whole when it does not fit)."""
    n = indata.shape[0]
    if n == 0:
        return
    cap = ring.shape[0]
    w = state[_W]
    r = state[_R]
    _fence()  # read count before overwriting the slots it frees
    pos = state[_POS]
    state[_POS] = pos + n
    offset = pos - w
    gap = offset != state[_W_OFFSET]
    mw = state[_MW]
    if n > cap - (w - r) or (gap and mw - state[_MR] >= markers.shape[0]):
        state[_OVR_SAMPLES] += n
        state[_OVR_BLOCKS] += 1
        return
    if gap:
        m = mw % markers.shape[0]
        markers[m, 0] = w
        markers[m, 1] = offset
        state[_W_OFFSET] = offset
    start = w % cap
    first = min(n, cap - start)
    bad = _store_mono(indata, channel, ring, start, 0, first)
    if first < n:
        bad += _store_mono(indata, channel, ring, 0, first, n - first)
    state[_NONFINITE] += bad
    _fence()  # samples and marker visible before the counts that publish them
    if gap:
        state[_MW] = mw + 1
    state[_W] = w + n


@numba.njit(nogil=True, cache=True)
def _read_into(ring, markers, state, out):
    """Consumer: copy up to len(out) contiguous samples; never spans a gap.

    Returns (position of out[0], n copied); with n == 0 the position is that of
    the next sample to come.
    """
    w = state[_W]
    _fence()  # write count before the samples and markers it publishes
    mw = state[_MW]
    r = state[_R]
    mr = state[_MR]
    nm = markers.shape[0]
    limit = w - r
    while mr < mw:
        m = mr % nm
        if markers[m, 0] == r:
            state[_R_OFFSET] = markers[m, 1]
            mr += 1
        else:
            if markers[m, 0] - r < limit:
                limit = markers[m, 0] - r
            break
    state[_MR] = mr
    n = min(limit, out.shape[0])
    cap = ring.shape[0]
    start = r % cap
    for i in range(n):
        j = start + i
        if j >= cap:
            j -= cap
        out[i] = ring[j]
    pos = r + state[_R_OFFSET]
    _fence()  # samples copied out before their slots are freed
    state[_R] = r + n
    return pos, n


class RingBuffer:
    """SPSC ring of mono float32 samples; see the module docstring for the
    full policy (drop the whole block) and memory ordering.

    Parameters
    ----------
    capacity_samples : int
        Samples the ring holds (mono, source rate).
    """

    def __init__(self, capacity_samples: int):
        if capacity_samples <= 0:
            raise ConfigError(f"ring buffer capacity must be > 0 samples, got {capacity_samples}")
        self.capacity = int(capacity_samples)
        self._ring = np.zeros(self.capacity, dtype=np.float32)
        self._markers = np.zeros((_N_MARKERS, 2), dtype=np.int64)
        self._state = np.zeros(_N_STATE, dtype=np.int64)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ring, markers, state): what a compiled producer (the PortAudio
        callback, :mod:`rtpitch.pa_stream`) hands to the write kernel."""
        return self._ring, self._markers, self._state

    def write_block(self, indata: np.ndarray, channel: int) -> None:
        """Producer: store ``indata`` (frames, channels) float32 as mono.

        channel: -1 downmixes (mean of channels), else picks that channel.
        Never allocates, locks or raises (beyond numba's call dispatch); the
        caller validates dtype, layout and ``channel`` once, up front.
        """
        _write_block(indata, channel, self._ring, self._markers, self._state)

    def read_into(self, out: np.ndarray) -> tuple[int, int]:
        """Consumer: copy up to ``len(out)`` samples into ``out`` (float32 (m,)).

        Returns (position, n): ``out[:n]`` are source samples
        ``position .. position+n-1``. A read stops at a gap left by a dropped
        block, so the next read's position jumps by the dropped length.
        """
        pos, n = _read_into(self._ring, self._markers, self._state, out)
        return int(pos), int(n)

    def available(self) -> int:
        """Stored samples not yet read (they may span gaps)."""
        return int(self._state[_W] - self._state[_R])

    @property
    def position(self) -> int:
        """Samples offered by the producer so far, stored or dropped."""
        return int(self._state[_POS])

    @property
    def stored_samples(self) -> int:
        """Samples stored so far (offered minus dropped)."""
        return int(self._state[_W])

    @property
    def overrun_samples(self) -> int:
        """Samples dropped because the ring was full."""
        return int(self._state[_OVR_SAMPLES])

    @property
    def overrun_blocks(self) -> int:
        """Blocks dropped because the ring was full."""
        return int(self._state[_OVR_BLOCKS])

    @property
    def nonfinite_samples(self) -> int:
        """NaN/Inf output samples replaced by 0."""
        return int(self._state[_NONFINITE])
