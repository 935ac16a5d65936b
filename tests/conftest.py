"""Shared fixtures: a JACK dummy server for tests marked ``jack``."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest


@pytest.fixture(scope="session")
def jack_server():
    """A running JACK server (dummy backend, 48 kHz, 256-frame periods).

    Uses a server that already runs; otherwise starts
    ``jackd --no-realtime -d dummy -r 48000 -p 256`` with
    ``JACK_NO_AUDIO_RESERVATION=1`` and terminates it after the session.
    Skips when jackd or JACK-Client is missing.
    """
    jackd = shutil.which("jackd")
    if jackd is None:
        pytest.skip("jackd not installed (Debian: apt install jackd2)")
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as err:
        pytest.skip(f"JACK-Client not importable: {err}")
    from rtpitch.devices import jack_server_running

    if jack_server_running():
        yield None
        return
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    proc = subprocess.Popen([jackd, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "256"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10.0
    while not jack_server_running():
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip().splitlines()[-1:]
            pytest.skip(f"jackd exited with {proc.returncode}: {' '.join(err)}")
        if time.monotonic() > deadline:
            proc.terminate()
            pytest.skip("jackd did not accept clients within 10 s")
        time.sleep(0.1)
    yield proc
    # PortAudio asserts (aborting the interpreter at exit) if its JACK client
    # outlives the server: shut PortAudio down before the server.
    import sys

    sd = sys.modules.get("sounddevice")
    if sd is not None:
        while sd._initialized:
            sd._terminate()
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
