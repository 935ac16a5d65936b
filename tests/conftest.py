"""Shared fixtures: a JACK dummy server for tests marked ``jack``."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def jack_server(tmp_path_factory):
    """A running JACK server (dummy backend, 48 kHz, 256-frame periods).

    Uses a server that already runs (yields None); otherwise starts
    ``jackd --no-realtime -d dummy -r 48000 -p 256`` (benchmarks.jackutil.JackServer,
    its output in a log file, never a pipe) and stops it after the session.
    Skips when jackd or JACK-Client is missing. A failing test that used it gets
    the end of jackd's log in its report.
    """
    if shutil.which("jackd") is None:
        pytest.skip("jackd not installed (Debian: apt install jackd2)")
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as err:
        pytest.skip(f"JACK-Client not importable: {err}")
    from benchmarks.jackutil import JackError, JackServer
    from rtpitch.devices import jack_server_running

    if jack_server_running():
        yield None
        return
    server = JackServer(log_path=tmp_path_factory.mktemp("jack") / "jackd.log")
    try:
        server.__enter__()
    except JackError as err:
        pytest.skip(str(err))
    try:
        yield server
    finally:
        server.stop()  # PortAudio first: it aborts if its JACK client outlives the server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the end of jackd's log to the report of a failed test that used the server."""
    report = yield
    if report.failed and "jack_server" in getattr(item, "fixturenames", ()):
        server = item.funcargs.get("jack_server") if hasattr(item, "funcargs") else None
        if server is not None:
            report.sections.append(("jackd log (last 40 lines)", server.log_tail(40)))
    return report
