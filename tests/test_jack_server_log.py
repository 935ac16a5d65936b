"""The JACK server that tests and benchmarks start never blocks on its own output.

Under load jackd writes a "Process error" / "client was not finished" pair of
lines every cycle that a client overruns. A server whose stderr is a pipe that
nobody reads stops once the pipe holds 64 KiB; every client that then closes
waits for it, and a test session's teardown (PortAudio closing its JACK client)
waited for ever. Here a client that overruns every cycle makes the server write
more than a pipe holds; it must still close, and the server must still serve.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

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


# The server and its clients live in a child process: libjack serves one server per
# process, and this (pytest's) process may hold a PortAudio client of the session's
# server; a probe of a second server from here crashes in libjack.
DRIVER = """
import json, os, subprocess, sys, time
from pathlib import Path
from benchmarks.jackutil import JackServer

slow, nxt, log = sys.argv[1], sys.argv[2], Path(sys.argv[3])
size = lambda: log.stat().st_size if log.exists() else 0
out = {}
server = JackServer(name=f"rtpitch-stall-{os.getpid()}", log_path=log)
with server:
    env = dict(os.environ, JACK_DEFAULT_SERVER=server.name)
    seconds = 10.0  # the overrunning client runs in a child: if the server blocked, its close would hang
    while True:
        res = subprocess.run([sys.executable, "-c", slow, str(seconds)], env=env, timeout=60 + seconds,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.setdefault("slow_rc", []).append(res.returncode)
        if size() > %d or seconds > 40:
            break
        seconds *= 2  # a slow machine runs fewer cycles a second: overrun longer
    out["log_bytes"] = size()
    out["next_rc"] = subprocess.run([sys.executable, "-c", nxt], env=env, timeout=30,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    out["server_alive"] = server.proc.poll() is None
    out["log_tail"] = server.log_tail()
    t0 = time.monotonic()
out["stop_s"] = time.monotonic() - t0
out["server_stopped"] = server.proc.poll() is not None
print(json.dumps(out))
""" % (2 * PIPE_BYTES)


def test_server_output_does_not_block_a_loaded_server(tmp_path):
    if shutil.which("jackd") is None:
        pytest.skip("jackd not installed (Debian: apt install jackd2)")
    pytest.importorskip("jack", reason="JACK-Client not installed")
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run([sys.executable, "-c", DRIVER, SLOW_CLIENT, NEXT_CLIENT, str(tmp_path / "jackd.log")],
                         cwd=root, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert all(rc == 0 for rc in out["slow_rc"]), out
    assert out["log_bytes"] > 2 * PIPE_BYTES, f"jackd wrote {out['log_bytes']} bytes: the test did not fill a pipe's worth"
    assert out["next_rc"] == 0, out["log_tail"]
    assert out["server_alive"], out["log_tail"]
    assert out["stop_s"] < 15.0  # stop() did not wait on a blocked server
    assert out["server_stopped"]


def test_jack_clients_of_the_benchmarks_do_not_start_portaudio():
    """The benchmarks' JACK player and monitor (numba callbacks) do not import
    sounddevice: that would start PortAudio, whose JACK client of a server that a
    test then kills aborts the process when PortAudio terminates."""
    pytest.importorskip("jack", reason="JACK-Client not installed")
    code = ("import sys, benchmarks.jackutil as j\n"
            "j._player_callback(); j._monitor_callback()\n"
            "print('sounddevice' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "False"
