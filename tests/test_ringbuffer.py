import threading

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rtpitch.errors import ConfigError
from rtpitch.ringbuffer import RingBuffer


def _block(start, n, nch=1):
    """Ramp samples start..start+n-1 on every channel, (n, nch) float32."""
    return np.repeat(np.arange(start, start + n, dtype=np.float32)[:, None], nch, axis=1)


def test_downmix_channel_pick_and_nonfinite():
    rb = RingBuffer(64)
    x = np.array([[1, 3], [2, 6], [np.nan, 1], [np.inf, 2]], dtype=np.float32)
    rb.write_block(x, -1)
    rb.write_block(x, 1)
    out = np.zeros(16, np.float32)
    pos, n = rb.read_into(out)
    assert (pos, n) == (0, 8)
    np.testing.assert_array_equal(out[:8], [2, 4, 0, 0, 3, 6, 1, 2])
    assert rb.nonfinite_samples == 2
    assert rb.read_into(out) == (8, 0)


def test_bad_capacity():
    with pytest.raises(ConfigError):
        RingBuffer(0)


def test_threads_no_loss_no_duplicate():
    """Producer (random blocks of a ramp, waits for space) and consumer
    (random read sizes) on two threads: the ramp comes back exactly."""
    total = 300_000
    rb = RingBuffer(1000)
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 300, size=total)
    got = np.zeros(total, np.float32)

    def produce():
        start = 0
        k = 0
        while start < total:
            n = int(min(sizes[k], total - start))
            k += 1
            while rb.capacity - rb.available() < n:
                pass
            rb.write_block(_block(start, n, 2), -1)
            start += n

    def consume():
        out = np.zeros(700, np.float32)
        expect = 0
        r = np.random.default_rng(2)
        while expect < total:
            m = int(r.integers(1, 700))
            pos, n = rb.read_into(out[:m])
            assert pos == expect
            got[pos:pos + n] = out[:n]
            expect += n

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert rb.overrun_samples == 0 and rb.overrun_blocks == 0
    np.testing.assert_array_equal(got, np.arange(total, dtype=np.float32))


def test_forced_overrun_counts_and_gap():
    rb = RingBuffer(100)
    for k in range(5):  # blocks of 30: 3 fit, 2 dropped (consumer paused)
        rb.write_block(_block(30 * k, 30), 0)
    assert rb.overrun_blocks == 2 and rb.overrun_samples == 60
    assert rb.position == 150 and rb.stored_samples == 90
    out = np.zeros(200, np.float32)
    assert rb.read_into(out) == (0, 90)
    np.testing.assert_array_equal(out[:90], np.arange(90))
    rb.write_block(_block(150, 30), 0)  # fits again
    pos, n = rb.read_into(out)
    assert (pos, n) == (150, 30)  # the jump 90 -> 150 is the dropped 60 samples
    np.testing.assert_array_equal(out[:30], np.arange(150, 180))
    big = _block(180, 101)  # larger than the ring: always dropped
    rb.write_block(big, 0)
    assert rb.overrun_samples == 161 and rb.overrun_blocks == 3


@settings(max_examples=60, deadline=None)
@given(cap=st.integers(1, 64),
       ops=st.lists(st.tuples(st.booleans(), st.integers(0, 80)), max_size=60))
def test_matches_sequential_model(cap, ops):
    rb = RingBuffer(cap)
    offered = 0
    stored = []  # positions stored and not yet read, in order
    overrun = 0
    for is_write, n in ops:
        if is_write:
            if n > cap - len(stored):
                overrun += n if n else 0
            else:
                stored.extend(range(offered, offered + n))
            rb.write_block(_block(offered, n), 0)
            offered += n
        else:
            out = np.zeros(n, np.float32)
            pos, k = rb.read_into(out)
            run = 0
            while run < min(n, len(stored)) and stored[run] == stored[0] + run:
                run += 1
            assert k == run
            if k:
                assert pos == stored[0]
                np.testing.assert_array_equal(out[:k], np.arange(pos, pos + k))
            del stored[:k]
        assert rb.available() == len(stored)
        assert rb.overrun_samples == overrun
        assert rb.position == offered
