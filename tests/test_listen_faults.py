"""``rtpitch listen`` under faults, as a user runs it (subprocess).

Signals (SIGINT, SIGTERM, SIGHUP), a recording that cannot be written, and,
through a private JACK server (``jackd -n rtpitch-faults``) that the tests
kill: the JACK server dying mid-take, the MIDI port going away while the
input carries on, the MIDI receiver disconnecting. In every case: the exit
status documented in :func:`rtpitch.cli.cmd_listen`, one ``rtpitch: error:``
line per fault and no traceback, the take written (every note-on with its
note-off), the MIDI port's last message an all-notes-off where the port
still worked, and no process of rtpitch's process group left behind.

The input is the bundled piano recording ``benchmarks/audio/demo.flac`` and
the model a copy of ``seed-cnn`` with low thresholds (that play
notes on piano audio): these tests are about the plumbing, not accuracy.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# These tests kill JACK servers.  After in-process PortAudio/JACK tests, libjack
# segfaults the test process when a server dies, so they run in a pytest
# process of their own: .ci/run does, with RTPITCH_JACK_FAULT_TESTS=1.
ISOLATED = pytest.mark.skipif(os.environ.get("RTPITCH_JACK_FAULT_TESTS") != "1",
                                reason="run in a pytest process of its own: RTPITCH_JACK_FAULT_TESTS=1 "
                                       "pytest tests/test_listen_faults.py (.ci/run does)")

from fakes import make_wired_model

REPO = Path(__file__).resolve().parent.parent
PIANO = REPO / "benchmarks" / "audio" / "demo.flac"
STARTUP_TIMEOUT_S = 90.0  # interpreter + numba cache + model on a loaded 2-core machine
EXIT_TIMEOUT_S = 15.0
FAULT_SERVER = os.environ.get("RTPITCH_FAULT_SERVER", "rtpitch-faults")  # jackd -n NAME, private to these tests

pytestmark = [pytest.mark.slow, ISOLATED]


@pytest.fixture(scope="module")
def wired(tmp_path_factory) -> str:
    return str(make_wired_model(tmp_path_factory.mktemp("wired")))


def _spawn(args, workdir: Path, env=None) -> tuple[subprocess.Popen, Path, Path]:
    out, err = workdir / "stdout.txt", workdir / "stderr.txt"
    cmd = [sys.executable, "-m", "rtpitch", "listen", "--no-view", *args]
    env = dict(env or os.environ, PYTHONUNBUFFERED="1")
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return proc, out, err


def _wait_listening(proc, err: Path, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while "listening: Ctrl-C to stop" not in err.read_text():
        if proc.poll() is not None:
            pytest.fail(f"rtpitch exited early ({proc.returncode}):\n{err.read_text()}")
        if time.monotonic() > deadline:
            _kill_group(proc)
            pytest.fail(f"rtpitch not listening after {timeout_s:.0f} s:\n{err.read_text()}")
        time.sleep(0.1)


def _finish(proc, err: Path, timeout_s: float = EXIT_TIMEOUT_S) -> tuple[int | None, str]:
    """Wait for the exit; returns (status or None if it hung, stderr). Kills leftovers."""
    try:
        rc = proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        rc = None
    orphans = _group_alive(proc.pid)
    _kill_group(proc)
    text = err.read_text()
    assert rc is not None, f"rtpitch did not exit within {timeout_s:.0f} s:\n{text}"
    assert not orphans, "processes of rtpitch's group outlived it"
    assert "Traceback" not in text, text
    return rc, text


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _midi_file_notes(path: Path) -> int:
    """Notes in a MIDI file, checking on the raw messages that every note-on has its note-off."""
    import mido

    sounding, notes = set(), 0
    for msg in mido.MidiFile(str(path)):
        if msg.type == "note_on" and msg.velocity > 0:
            assert msg.note not in sounding, f"{path.name}: note-on {msg.note} while it sounds"
            sounding.add(msg.note)
            notes += 1
        elif msg.type in ("note_off", "note_on"):
            assert msg.note in sounding, f"{path.name}: note-off {msg.note} without note-on"
            sounding.discard(msg.note)
    assert not sounding, f"{path.name}: notes never ended: {sorted(sounding)}"
    return notes


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("rtpitch: error:")]


# -- signals (no JACK needed: the input is a file played in real time) -----------------------
@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 0), (signal.SIGTERM, 128 + signal.SIGTERM),
                                         (signal.SIGHUP, 128 + signal.SIGHUP)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_signal_ends_take_cleanly(sig, status, wired, tmp_path):
    import soundfile as sf

    take, heard = tmp_path / "take.mid", tmp_path / "take.wav"
    proc, out, err = _spawn(["--input", str(PIANO), "--record", str(take), "--record-audio", str(heard),
                             "--model", wired, "--print-notes"], tmp_path)
    _wait_listening(proc, err)
    time.sleep(4.0)
    proc.send_signal(sig)
    rc, text = _finish(proc, err)
    assert rc == status, text
    assert not _errors(text), text
    assert f"wrote {take}" in text
    audio_s = float(re.search(r"notes in ([\d.]+) s of audio", text).group(1))
    assert f"wrote {heard} ({audio_s:.1f} s of audio)" in text
    assert sf.info(str(heard)).duration == pytest.approx(audio_s, abs=0.05) and audio_s > 3.5
    n = _midi_file_notes(take)
    assert n > 0, "the wired model should have played notes in 4 s of piano"
    assert sum(" on  v=" in line for line in out.read_text().splitlines()) == n
    if sig != signal.SIGINT:
        assert text.rstrip().splitlines()[-1] == f"rtpitch: stopped by {signal.Signals(sig).name}"


def test_sigkill_leaves_the_audio_recording_readable(wired, tmp_path):
    """Killed without a chance to clean up: the WAV header was last brought up
    to date at most HEADER_EVERY_S (5 s) of audio before, so the file reads
    back with at least that much audio."""
    import soundfile as sf

    heard = tmp_path / "take.wav"
    proc, _, err = _spawn(["--input", str(PIANO), "--record-audio", str(heard), "--model", wired], tmp_path)
    _wait_listening(proc, err)
    time.sleep(7.0)
    proc.kill()
    proc.wait(EXIT_TIMEOUT_S)
    x, sr = sf.read(str(heard), dtype="float32")
    assert x.shape[0] >= 5 * sr and np.abs(x).max() > 0.01


def test_record_cannot_be_written_at_the_end(wired, tmp_path):
    """Disk full when the take is written: exit 1, one line that says why and
    where the notes went instead (the system temp folder)."""
    take = tmp_path / "take.mid"
    script = (
        "import errno, sys\n"
        "from rtpitch.sinks.midi_file import MidiFileSink\n"
        "def full(mid, path):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "MidiFileSink._write_atomic = staticmethod(full)\n"
        "from rtpitch.cli import main\n"
        f"sys.exit(main(['listen', '--no-view', '--input', {str(PIANO)!r}, '--duration', '4',"
        f" '--record', {str(take)!r}, '--model', {wired!r}]))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                         timeout=STARTUP_TIMEOUT_S + 30, stdin=subprocess.DEVNULL)
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr
    errors = _errors(res.stderr)
    assert len(errors) == 1, res.stderr
    m = re.fullmatch(rf"rtpitch: error: cannot write MIDI file {re.escape(str(take))}: No space left on device; "
                     r"the notes were saved to (\S+\.mid) instead", errors[0])
    assert m is not None, errors[0]
    rescue = Path(m.group(1))
    try:
        assert _midi_file_notes(rescue) > 0
    finally:
        rescue.unlink()
    assert not take.exists()


@pytest.mark.parametrize("where, message", [
    ("missing/take.mid", "folder {tmp}/missing does not exist"),
    (".", "it is a folder"),
])
def test_record_path_refused_up_front(where, message, tmp_path):
    res = subprocess.run([sys.executable, "-m", "rtpitch", "listen", "--input", str(PIANO), "--record",
                          str(tmp_path / where), "--model", "seed-cnn"], cwd=REPO, capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [res.stderr.strip()]  # one line
    assert message.format(tmp=tmp_path) in res.stderr


# -- through a JACK server that dies -------------------------------------------------------------
@pytest.fixture
def fault_server():
    """A private JACK server (``jackd -n rtpitch-faults``) for one test; the test may
    kill it. Afterwards a server of the same name is started and stopped, which
    gives back the registry slot a SIGKILLed server keeps (JACK allows 8)."""
    pytest.importorskip("jack")
    from benchmarks.jackutil import JackError, JackServer

    server = JackServer(name=FAULT_SERVER)
    try:
        server.__enter__()
    except JackError as err:
        pytest.skip(f"{err} (left by an interrupted test run? stop that jackd, or set "
                    "RTPITCH_FAULT_SERVER to another name)")
    env = dict(os.environ)  # JACK_DEFAULT_SERVER=rtpitch-faults while the server object lives
    try:
        yield server, env
    finally:
        killed = server.proc is not None and server.proc.poll() is not None and server.proc.returncode == -9
        server.stop()
        if killed:
            try:
                with JackServer(name=FAULT_SERVER):
                    pass
            except JackError:
                pass


def _connect_player(server_client, player, before: set[str], proc, err: Path) -> None:
    """Feed rtpitch's PortAudio inputs from ``player`` only (as the e2e test does)."""
    from benchmarks.jackutil import connections, portaudio_inputs

    deadline = time.monotonic() + 10
    while True:
        ins = sorted(portaudio_inputs(server_client) - before)
        if ins and all(connections(server_client, p) for p in ins):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"rtpitch's capture ports did not appear:\n{err.read_text()}")
        time.sleep(0.05)
    for port in ins:
        for src in connections(server_client, port):
            server_client.disconnect(src, port)
        server_client.connect(player.port, port)


LOST_AUDIO = "rtpitch: error: audio device 'system' stopped (JACK server gone?)"
LOST_MIDI = ("rtpitch: error: MIDI virtual port 'rtpitch' (JACK) went away: the JACK server is gone; "
             "nothing more was sent")
HUNG_AUDIO = ("rtpitch: error: audio device 'system' stopped delivering audio (no callback for 3 s; "
              "JACK server hung?)")


@pytest.mark.jack
@pytest.mark.parametrize("how, errors", [(signal.SIGKILL, [LOST_AUDIO, LOST_MIDI]),
                                         (signal.SIGTERM, [LOST_AUDIO, LOST_MIDI]),
                                         (signal.SIGSTOP, [HUNG_AUDIO])],
                         ids=["server-crash", "server-quits", "server-hangs"])
def test_jack_server_dies_mid_take(how, errors, fault_server, wired, tmp_path):
    """Piano is playing into ``rtpitch listen --device system --midi-out --record``
    when the JACK server dies (or hangs: SIGSTOP): rtpitch exits 1 within seconds
    with one line per lost part (the audio device, the MIDI port; a hung server
    still accepts connections, so only the silent device is noticed), and the
    take is written with every note closed. (libjack itself prints a few lines
    when its server vanishes; they are not rtpitch's.)"""
    from benchmarks.jackutil import Player, load_signal, portaudio_inputs

    server, env = fault_server
    take = tmp_path / "take.mid"
    player = Player("faults-player", load_signal(PIANO, server.rate, seconds=20.0))
    player.client.activate()
    before = portaudio_inputs(player.client)
    proc, out, err = _spawn(["--device", "system", "--midi-out", "--record", str(take), "--model", wired],
                            tmp_path, env=env)
    try:
        _wait_listening(proc, err)
        _connect_player(player.client, player, before, proc, err)
        player.st.armed = True
        time.sleep(5.0)
    finally:
        player.close()
    t_kill = time.monotonic()
    server.proc.send_signal(how)
    if how != signal.SIGSTOP:
        server.proc.wait(10)
    try:
        rc, text = _finish(proc, err)
    finally:
        if how == signal.SIGSTOP:
            server.proc.send_signal(signal.SIGCONT)
    exit_s = time.monotonic() - t_kill
    assert rc == 1, text
    assert exit_s < 10.0
    got = _errors(text)
    if how == signal.SIGTERM and got == errors[:1]:
        # a server shutting down tells its clients before it removes its socket: the
        # MIDI port may still see it alive at close (note-offs go to its ring; no hang)
        pass
    else:
        assert got == errors, text
    assert f"wrote {take}" in text
    assert _midi_file_notes(take) > 0, text


@pytest.mark.jack
def test_midi_port_goes_away_recording_goes_on(fault_server, wired, tmp_path):
    """The input is a file; the JACK server carrying the virtual MIDI port dies
    3 s into the take: sending stops (no freeze: RtMidi would spin forever on its
    full ring), the take goes on to --duration and is written whole; exit 1."""
    from rtpitch.sinks.midi_file import read_midi_notes

    server, env = fault_server
    take = tmp_path / "take.mid"
    proc, out, err = _spawn(["--input", str(PIANO), "--duration", "8", "--midi-out", "--record", str(take),
                             "--model", wired, "--print-notes"], tmp_path, env=env)
    _wait_listening(proc, err)
    time.sleep(3.0)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    rc, text = _finish(proc, err, timeout_s=EXIT_TIMEOUT_S + 8)
    assert rc == 1, text
    assert _errors(text) == [
        "rtpitch: error: MIDI virtual port 'rtpitch' (JACK) went away: the JACK server is gone; nothing more was sent",
    ], text
    notes = read_midi_notes(take)
    assert _midi_file_notes(take) == len(notes) > 0
    assert max(n[0] for n in notes) > 5.0, "notes after the port died were recorded"
    m = re.search(r"\d+ notes in ([0-9.]+) s of audio", text)
    assert m is not None and float(m.group(1)) > 7.0, text  # the take went on to --duration


@pytest.mark.jack
def test_midi_receiver_disconnects_and_comes_back(fault_server, wired, tmp_path):
    """The DAW's input disconnects mid-take and another connects later: rtpitch
    neither notices nor stalls; the new receiver gets the later notes and the
    closing all-notes-off; exit 0 after SIGINT; the take is whole."""
    from benchmarks.jackutil import midi_outputs, quiet, wait_for_all_notes_off
    import jack
    import rtmidi

    server, env = fault_server
    take = tmp_path / "take.mid"
    probe = jack.Client("faults-probe", no_start_server=True)
    before = midi_outputs(probe)
    proc, out, err = _spawn(["--input", str(PIANO), "--midi-out", "--record", str(take), "--model", wired],
                            tmp_path, env=env)
    monitors = []
    try:
        _wait_listening(proc, err)
        port = sorted(midi_outputs(probe) - before)
        assert port == ["rtpitch:rtpitch"], port

        def monitor(name):
            got = []
            m = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name=name)
            m.open_virtual_port("in")
            m.set_callback(lambda event, _: got.append(list(event[0])))
            probe.connect("rtpitch:rtpitch", f"{name}:in")
            monitors.append(m)
            return m, got

        first, got1 = monitor("faults-daw1")
        time.sleep(3.0)
        quiet(first)
        first.close_port()  # the DAW goes away
        time.sleep(1.5)
        second, got2 = monitor("faults-daw2")
        time.sleep(3.0)
        proc.send_signal(signal.SIGINT)
        rc, text = _finish(proc, err)
        wait_for_all_notes_off(lambda: got2[-1] if got2 else None, 3.0)
    finally:
        for m in monitors:
            quiet(m)
            m.delete()
        probe.close()
    assert rc == 0, text
    assert not _errors(text), text
    assert any(m[0] & 0xF0 == 0x90 for m in got1), "the first receiver got notes"
    assert any(m[0] & 0xF0 == 0x90 for m in got2), "the second receiver got notes"
    assert got2[-1] == [0xB0, 123, 0], "all-notes-off last"
    assert _midi_file_notes(take) > 0
