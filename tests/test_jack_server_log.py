"""The JACK server that tests and benchmarks start never blocks on its own output.

Under load jackd writes a "Process error" / "client was not finished" pair of
lines every cycle that a client overruns. A server whose stderr is a pipe that
nobody reads stops once the pipe holds 64 KiB; every client that then closes
waits for it, and a test session's teardown (PortAudio closing its JACK client)
waited for ever. Here a client that overruns every cycle makes the server write
more than a pipe holds; it must still close, and the server must still serve.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = [pytest.mark.jack, pytest.mark.slow]

PIPE_BYTES = 64 * 1024  # Linux's default pipe capacity

SLOW_CLIENT = """
import jack, sys, time
c = jack.Client("overrunner", no_start_server=True)

@c.set_process_callback
def process(frames):  # 8 ms late in a 5.3 ms cycle: jackd reports every cycle
    time.sleep(0.008)

c.activate()
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    time.sleep(0.2)
c.deactivate()
c.close()
"""

NEXT_CLIENT = "import jack; c = jack.Client('next', no_start_server=True); c.activate(); c.close()"


def _log_size(server) -> int:
    return server.log_path.stat().st_size if server.log_path.exists() else 0


def test_server_output_does_not_block_a_loaded_server(tmp_path):
    if shutil.which("jackd") is None:
        pytest.skip("jackd not installed (Debian: apt install jackd2)")
    pytest.importorskip("jack", reason="JACK-Client not installed")
    from benchmarks.jackutil import JackServer

    server = JackServer(name=f"rtpitch-stall-{os.getpid()}", log_path=tmp_path / "jackd.log")
    with server:
        env = dict(os.environ, JACK_DEFAULT_SERVER=server.name)
        # the overrunning client runs in a child: if the server blocked, its close would hang
        seconds = 10.0
        while True:
            res = subprocess.run([sys.executable, "-c", SLOW_CLIENT, str(seconds)], env=env, timeout=60 + seconds,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            assert res.returncode == 0
            if _log_size(server) > 2 * PIPE_BYTES or seconds > 40:
                break
            seconds *= 2  # a slow machine runs fewer cycles a second: overrun longer
        assert _log_size(server) > 2 * PIPE_BYTES, \
            f"jackd wrote {_log_size(server)} bytes: the test did not fill a pipe's worth"
        res = subprocess.run([sys.executable, "-c", NEXT_CLIENT], env=env, timeout=30,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert res.returncode == 0, server.log_tail()
        assert server.proc.poll() is None, server.log_tail()
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 15.0  # stop() did not wait on a blocked server
    assert server.proc.poll() is not None
