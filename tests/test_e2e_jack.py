"""End to end through a real JACK server: the ``rtpitch`` command as a user runs it.

``rtpitch listen --device system --midi-out --record take.mid`` runs as a
subprocess. A JACK client of this test plays a real piano recording (madmom's
``stereo_sample.wav``, 8 annotated notes) into rtpitch's PortAudio input ports,
and an rtmidi JACK input connected to ``rtpitch:rtpitch`` records what arrives.
After SIGINT the command must exit 0 and its MIDI file must hold the notes that
went out of the port; the notes must match the annotations in audio time.

Audio-time alignment (how an annotated onset is placed in rtpitch's clock)
--------------------------------------------------------------------------
rtpitch stamps events in *audio time*: seconds since sample 0 of its capture
stream. JACK runs every client of a cycle on the same frames, so a sample the
player writes at JACK frame ``F`` reaches rtpitch's input at frame ``F`` too.

* The player's process callback stores ``last_frame_time`` of every cycle in
  which it plays a block: recording sample ``i`` went out at JACK frame
  ``F(i)`` (normally ``P + i``, ``P`` being the first block's frame; the table
  also covers a cycle JACK skipped for a late player).
* ``rtpitch listen`` prints ``capture clock: audio time 0 = monotonic T s``
  at exit: the ``time.monotonic()`` of its audio time 0, from the PortAudio
  time stamps of its last callbacks (``DeviceSource.origin_monotonic``; it is
  measured at the end so that a JACK cycle lost while this test rewires the
  ports before playback does not count). The test maps ``T`` to JACK frames
  with back-to-back readings of ``time.monotonic()`` and ``Client.frame_time``
  (JACK's clock is CLOCK_MONOTONIC) and snaps the result ``C_est`` to the
  nearest cycle start ``C = P + k * period`` (observed ``|C_est - C|``: a few
  to 60 frames; near ``period / 2`` the snap could pick a neighbouring cycle,
  an error of one period, 5 ms).
* Recording time ``t`` is rtpitch audio time ``(F(t * sr) - C) / sr``. The
  annotations are put into rtpitch's audio time that way and compared with the
  ``--record`` file's stamps. If rtpitch's callback missed JACK cycles during
  the take (JACK drops a late client's cycles), the stamps before the loss are
  early by that much: a real error of the live path, which this measures.

:func:`test_capture_origin_is_sample_zero` checks the mapping without a model:
a click played at a known frame into a :class:`~rtpitch.capture.DeviceSource`
must appear at exactly the predicted sample position.

Environment: ``RTPITCH_TEST_MODEL`` (default ``seed-cnn``; a name in models/ or
a .json path) and ``RTPITCH_SHARED_DATA`` (default ``<repo>/../shared/data``).
"""

from __future__ import annotations

import bisect
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rtpitch.model import resolve_model_path

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RTPITCH_SHARED_DATA") or REPO.parent / "shared" / "data")
FIXTURE = SHARED_DATA / "fixtures" / "madmom" / "stereo_sample.wav"
ANNOTATIONS = FIXTURE.with_suffix(".notes")
MODEL = os.environ.get("RTPITCH_TEST_MODEL", "seed-cnn")

ONSET_TOL_S = 0.050       # annotated onset vs detected onset
MIN_MATCHED = 6           # of the 8 annotated notes
TRAILING_SILENCE_S = 1.5  # played after the recording, before SIGINT
STARTUP_TIMEOUT_S = 60.0  # interpreter + model load on a loaded 2-core machine
EXIT_TIMEOUT_S = 10.0
TICK_S = 1 / 960          # MIDI file resolution (rtpitch.sinks.midi_file)

needs_data = pytest.mark.skipif(not FIXTURE.is_file() or not ANNOTATIONS.is_file(),
                                reason=f"shared test data absent ({FIXTURE}); set RTPITCH_SHARED_DATA")
needs_model = pytest.mark.skipif(not resolve_model_path(MODEL).is_file(),
                                 reason=f"model {MODEL!r} absent ({resolve_model_path(MODEL)}); "
                                        "set RTPITCH_TEST_MODEL to a model in models/")


# -- helpers -------------------------------------------------------------------
def read_annotations(path: Path = ANNOTATIONS) -> list[tuple[float, int]]:
    """(onset s, MIDI pitch) for each annotated note, by onset."""
    notes = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            onset, pitch = line.split()[:2]
            notes.append((float(onset), int(pitch)))
    return sorted(notes)


def match_onsets(ref, est, tol_s: float) -> list[tuple[int, int]]:
    """One-to-one matches (i_ref, j_est) of (onset, pitch) lists: same pitch,
    ``|onset difference| <= tol_s``; each reference takes the closest free estimate."""
    used, pairs = set(), []
    for i, (t, p) in enumerate(ref):
        best = None
        for j, (u, q) in enumerate(est):
            if j in used or q != p or abs(u - t) > tol_s:
                continue
            if best is None or abs(u - t) < abs(est[best][0] - t):
                best = j
        if best is not None:
            used.add(best)
            pairs.append((i, best))
    return pairs


def frame_clock_offset(client, n: int = 25) -> float:
    """JACK frames minus ``time.monotonic() * sr`` (median of back-to-back readings)."""
    sr = client.samplerate
    offsets = []
    for _ in range(n):
        a = time.monotonic()
        f = client.frame_time
        b = time.monotonic()
        offsets.append(f - 0.5 * (a + b) * sr)
        time.sleep(0.001)
    return float(np.median(offsets))


def load_signal(sr: int) -> np.ndarray:
    """The fixture as JACK plays it: mean of both channels (what rtpitch's default
    downmix and ``transcribe`` use too), 44.1 kHz -> ``sr`` with soxr (HQ)."""
    import soundfile as sf
    import soxr

    x, rate = sf.read(str(FIXTURE), dtype="float32", always_2d=True)
    mono = x.mean(axis=1)
    return np.ascontiguousarray(soxr.resample(mono, rate, sr, quality="HQ"), dtype=np.float32)


class Player:
    """A JACK client with one output port that plays ``samples`` once when armed
    (``st.armed = True``), silence before and after. ``st.start_frame``: the JACK
    frame of the first sample; ``st.blocks``: (sample position, JACK frame) of
    every block played; ``st.done`` when all was played."""

    def __init__(self, name: str, samples: np.ndarray):
        import jack

        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.outports.register("out")
        self.signal = samples
        self.st = SimpleNamespace(armed=False, pos=0, start_frame=None, done=False, xruns=0, blocks=[])
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)

    def _process(self, frames):
        buf = self.port.get_array()
        st = self.st
        if not st.armed or st.done:
            buf.fill(0.0)
            return
        if st.start_frame is None:
            st.start_frame = self.client.last_frame_time
        st.blocks.append((st.pos, self.client.last_frame_time))
        k = min(frames, self.signal.shape[0] - st.pos)
        buf[:k] = self.signal[st.pos:st.pos + k]
        buf[k:] = 0.0
        st.pos += k
        st.done = st.pos >= self.signal.shape[0]

    def _xrun(self, delay_usecs):
        self.st.xruns += 1

    def close(self):
        try:
            self.client.deactivate()
        finally:
            self.client.close()


def _connections(client, port: str) -> list[str]:
    return [p.name for p in client.get_all_connections(port)]


def _portaudio_inputs(client) -> set[str]:
    return {p.name for p in client.get_ports("PortAudio.*", is_audio=True, is_input=True)}


def _midi_outputs(client) -> set[str]:
    return {p.name for p in client.get_ports(is_midi=True, is_output=True)}


def _stop(proc: subprocess.Popen) -> None:
    """Make sure the subprocess is gone (SIGKILL its process group if it lingers)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


# -- the live run (once per module) ----------------------------------------------
@dataclass
class LiveTake:
    returncode: int | None
    stdout: str
    stderr: str
    record_path: Path
    sr: int
    period: int
    start_frame: int                # JACK frame of the recording's first sample (P)
    capture_frame: int | None       # JACK frame of rtpitch's sample 0 (C)
    snap_residual: float | None     # C_est - C (frames)
    port_messages: list = field(default_factory=list, repr=False)  # (JACK frame at arrival, [status, d1, d2])
    blocks: list = field(default_factory=list, repr=False)  # (recording sample, JACK frame) of each played block
    xruns: int = 0
    ready_s: float = 0.0            # from the fixture's start until rtpitch captures
    wall_s: float = 0.0

    def frame_of(self, t_rec: float) -> float:
        """JACK frame at which recording time ``t_rec`` (s) was played (through the
        player's block table, so a cycle JACK skipped for the player is accounted)."""
        i = t_rec * self.sr
        k = max(0, bisect.bisect_right([b[0] for b in self.blocks], i) - 1)
        pos, frame = self.blocks[k]
        return frame + (i - pos)

    def rt_time(self, t_rec: float) -> float:
        """rtpitch audio time (s since its sample 0) of recording time ``t_rec``."""
        return (self.frame_of(t_rec) - self.capture_frame) / self.sr

    def skipped_frames(self) -> int:
        """Frames JACK skipped between the player's playback cycles (0 normally)."""
        return sum(b[1] - a[1] - (b[0] - a[0]) for a, b in zip(self.blocks, self.blocks[1:]))

    def recorded_notes(self):
        """(onset, offset, pitch, velocity) from the --record file, rtpitch audio time."""
        from rtpitch.sinks.midi_file import read_midi_notes

        return read_midi_notes(self.record_path)

    def port_note_ons(self) -> list[tuple[int, int, int]]:
        """(arrival frame, pitch, velocity) of note-ons received on the port."""
        return [(f, m[1], m[2]) for f, m in self.port_messages if m[0] & 0xF0 == 0x90 and m[2] > 0]


def _wait_for_rtpitch(proc, client, pa_before, midi_before, deadline):
    """Return (rtpitch's PortAudio input ports, its MIDI output port) once its
    capture stream runs (its inputs connected by PortAudio) and its port exists."""
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"rtpitch exited early with {proc.returncode}")
        ins = sorted(_portaudio_inputs(client) - pa_before)
        outs = sorted(p for p in _midi_outputs(client) - midi_before if p.endswith(":rtpitch"))
        if ins and outs and all(_connections(client, p) for p in ins):
            return ins, outs
        if time.monotonic() > deadline:
            raise AssertionError(f"rtpitch not ready in {STARTUP_TIMEOUT_S:.0f} s: "
                                 f"PortAudio inputs {ins}, MIDI ports {outs}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def live_take(jack_server, tmp_path_factory) -> LiveTake:
    import rtmidi

    if rtmidi.API_UNIX_JACK not in rtmidi.get_compiled_api():
        pytest.skip("python-rtmidi built without JACK")
    tmp = tmp_path_factory.mktemp("e2e")
    record = tmp / "take.mid"
    out_path, err_path = tmp / "stdout.txt", tmp / "stderr.txt"
    t_begin = time.monotonic()

    import jack

    probe = jack.Client("e2e-probe", no_start_server=True)
    sr, period = probe.samplerate, probe.blocksize
    probe.close()
    player = Player("e2e-player", load_signal(sr))
    player.client.activate()
    port_messages: list = []
    monitor = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="e2e-monitor")
    monitor.ignore_types(sysex=True, timing=True, active_sense=True)
    monitor.open_virtual_port("in")
    client = player.client
    monitor.set_callback(lambda event, _: port_messages.append((client.frame_time, list(event[0]))))
    monitor_port = "e2e-monitor:in"

    pa_before, midi_before = _portaudio_inputs(client), _midi_outputs(client)
    cmd = [sys.executable, "-m", "rtpitch", "listen", "--device", "system", "--midi-out",
           "--record", str(record), "--no-view", "--print-notes", "--model", MODEL]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(out_path, "w") as out_f, open(err_path, "w") as err_f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out_f, stderr=err_f,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    offset = None
    try:
        try:
            ins, outs = _wait_for_rtpitch(proc, client, pa_before, midi_before,
                                          time.monotonic() + STARTUP_TIMEOUT_S)
        except AssertionError as err:
            _stop(proc)
            pytest.fail(f"{err}; stderr:\n{err_path.read_text()}")
        ready_s = time.monotonic() - t_begin
        assert len(outs) == 1, f"expected one new rtpitch MIDI port, got {outs}"
        # only the player feeds rtpitch: replace PortAudio's system:capture_* connections
        for port in ins:
            for src in _connections(client, port):
                client.disconnect(src, port)
            client.connect(player.port, port)
        client.connect(outs[0], monitor_port)
        time.sleep(0.3)  # connections take effect; rtpitch hears silence meanwhile
        player.st.armed = True
        play_s = player.signal.shape[0] / sr
        deadline = time.monotonic() + play_s + 5.0
        while not player.st.done and time.monotonic() < deadline:
            time.sleep(0.02)
        assert player.st.done, "the player did not finish in time (JACK stalled?)"
        time.sleep(TRAILING_SILENCE_S)
        offset = frame_clock_offset(client)  # while the server runs, for the clock mapping
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass  # returncode stays None: the test reports it
        time.sleep(0.1)  # the last MIDI messages (close: all notes off) reach the monitor
    finally:
        _stop(proc)
        monitor.cancel_callback()
        monitor.close_port()
        monitor.delete()
        player.close()

    stderr = err_path.read_text()
    capture_frame = residual = None
    m = re.search(r"capture clock: audio time 0 = monotonic ([0-9.]+) s", stderr)
    if m is not None and offset is not None and player.st.start_frame is not None:
        c_est = float(m.group(1)) * sr + offset
        P = player.st.start_frame
        capture_frame = P + int(round((c_est - P) / period)) * period
        residual = c_est - capture_frame
    return LiveTake(
        returncode=proc.returncode, stdout=out_path.read_text(), stderr=stderr, record_path=record,
        sr=sr, period=period, start_frame=player.st.start_frame, capture_frame=capture_frame,
        snap_residual=residual, port_messages=list(port_messages), xruns=player.st.xruns,
        blocks=list(player.st.blocks), ready_s=ready_s, wall_s=time.monotonic() - t_begin,
    )


def _in_rt_time(take: LiveTake, notes) -> list[tuple[float, int]]:
    """(onset, pitch) in recording time -> (onset in rtpitch audio time, pitch)."""
    return [(take.rt_time(t), p) for t, p in notes]


def _describe(notes) -> str:
    return ", ".join(f"{p}@{t:.3f}" for t, p in notes) or "none"


# -- tests ---------------------------------------------------------------------------
@pytest.mark.jack
@pytest.mark.shared
@pytest.mark.slow
@needs_data
@needs_model
def test_listen_through_jack(live_take):
    take = live_take
    print(f"\nlive take: {take.wall_s:.1f} s wall ({take.ready_s:.1f} s until rtpitch captured); "
          f"JACK xruns seen by the player: {take.xruns}")
    # the command ends cleanly on SIGINT
    assert take.returncode == 0, f"exit status {take.returncode}; stderr:\n{take.stderr}"
    assert "Traceback" not in take.stderr, take.stderr
    assert f"wrote {take.record_path}" in take.stderr, take.stderr
    m = re.search(r"overruns: (\d+) samples dropped", take.stderr)
    assert m is not None and int(m.group(1)) == 0, take.stderr

    # audio-time alignment (module docstring)
    skipped = take.skipped_frames()
    assert skipped <= 2 * take.period, (
        f"JACK skipped {skipped} frames of the player's cycles during playback (machine overloaded?): "
        "rtpitch may have missed them as well, so audio time is uncertain by that much")
    assert take.capture_frame is not None, f"no 'capture clock' line or no playback; stderr:\n{take.stderr}"
    # |residual| near period / 2 would make the snap ambiguous by one period (5 ms):
    # harmless against the 50 ms tolerance, so it is printed, not asserted
    assert take.start_frame > take.capture_frame  # the recording started after capture
    print(f"recording's sample 0 at rtpitch audio time {take.rt_time(0.0):.4f} s (capture origin "
          f"{take.snap_residual:+.1f} frames off the cycle grid; player cycles skipped: {skipped} frames)")

    # the port carried exactly what the file holds, every note-on has its note-off
    recorded = take.recorded_notes()
    port_ons = take.port_note_ons()
    assert [(p, v) for _, p, v in port_ons] == [(n[2], n[3]) for n in recorded], (
        f"port note-ons {[(p, v) for _, p, v in port_ons]} != recorded {[(n[2], n[3]) for n in recorded]}")
    sounding: dict[int, int] = {}
    n_offs = 0
    for _, (status, d1, d2) in take.port_messages:
        kind = status & 0xF0
        if kind == 0x90 and d2 > 0:
            assert d1 not in sounding, f"note-on {d1} while it sounds (no note-off first)"
            sounding[d1] = 1
        elif kind == 0x80 or (kind == 0x90 and d2 == 0):
            assert d1 in sounding, f"note-off {d1} without a note-on"
            del sounding[d1]
            n_offs += 1
    assert not sounding, f"note-ons without note-off: {sorted(sounding)}"
    assert n_offs == len(recorded)
    assert take.port_messages and take.port_messages[-1][1][:2] == [0xB0, 123], "no all-notes-off at exit"
    # --print-notes with --no-view: one stdout line per event
    assert sum(" on  v=" in line for line in take.stdout.splitlines()) == len(recorded), take.stdout
    assert sum(line.endswith(" off") for line in take.stdout.splitlines()) == len(recorded), take.stdout

    # the notes against the annotations, both in rtpitch's audio time
    ref = _in_rt_time(take, read_annotations())
    est = [(on, p) for on, _, p, _ in recorded]
    pairs = match_onsets(ref, est, ONSET_TOL_S)
    print(f"annotated: {_describe(ref)}\nlive:      {_describe(est)}   (rtpitch audio time)")
    print(f"matched {len(pairs)}/{len(ref)}; onset errors (ms): "
          f"{[round(1000 * (est[j][0] - ref[i][0]), 1) for i, j in pairs]}")
    # wall-clock latency: annotated onset played (JACK frame) -> note-on at the monitor (JACK frame)
    lat_ms = [round(1000 * (port_ons[j][0] - take.capture_frame - ref[i][0] * take.sr) / take.sr, 1)
              for i, j in pairs]
    print(f"onset -> note-on at the monitor port (ms, JACK clock): {lat_ms}")
    assert len(pairs) >= MIN_MATCHED, (
        f"only {len(pairs)} of {len(ref)} annotated notes found within {ONSET_TOL_S * 1000:.0f} ms "
        f"(model {MODEL}); annotated {_describe(ref)}; got {_describe(est)}")
    assert max(lat_ms, default=0.0) < 1000.0  # loose: a shared CI machine; the figures are printed above


@pytest.mark.jack
@pytest.mark.shared
@pytest.mark.slow
@needs_data
@needs_model
def test_transcribe_matches_live(live_take, tmp_path):
    """``rtpitch transcribe`` (file path, 44.1 -> 16 kHz) gives the notes the live
    path (player 44.1 -> 48 kHz, rtpitch 48 -> 16 kHz) gave.

    Onsets may differ by up to one hop: the live frame grid starts at rtpitch's
    sample 0, which falls at an arbitrary point of the recording, so the two
    runs sample the same signal at frame grids shifted by a fraction of a hop.
    Added to that: the MIDI files' 1/960 s tick on each side, and one JACK
    period (5.3 ms), the uncertainty of placing the live take in the
    recording's time (the snap to the cycle grid, or a cycle rtpitch's callback
    missed; see the module docstring).
    """
    from rtpitch.model import load_model_spec
    from rtpitch.sinks.midi_file import read_midi_notes

    out = tmp_path / "file.mid"
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "rtpitch", "transcribe", str(FIXTURE), "-o", str(out),
                          "--model", MODEL], cwd=REPO, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    print(f"\ntranscribe: {time.monotonic() - t0:.1f} s wall")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    file_notes = [(on, p) for on, _, p, _ in read_midi_notes(out)]

    ref = read_annotations()
    pairs = match_onsets(ref, file_notes, ONSET_TOL_S)
    print(f"annotated:  {_describe(ref)}\ntranscribe: {_describe(file_notes)}")
    assert len(pairs) >= MIN_MATCHED, (
        f"transcribe found only {len(pairs)} of {len(ref)} annotated notes within {ONSET_TOL_S * 1000:.0f} ms")

    take = live_take
    if take.returncode != 0 or take.capture_frame is None:
        pytest.fail("the live run failed (see test_listen_through_jack)")
    live = [(on, p) for on, _, p, _ in take.recorded_notes()]
    file_rt = _in_rt_time(take, file_notes)
    print(f"live:       {_describe(live)}\nfile:       {_describe(file_rt)}   (rtpitch audio time)")
    hop_s = load_model_spec(MODEL).frontend.hop_s
    tol = hop_s + take.period / take.sr + 2 * TICK_S
    assert sorted(p for _, p in live) == sorted(p for _, p in file_notes), (
        f"live and file pitches differ: live {_describe(live)}; file {_describe(file_rt)}")
    pairs = match_onsets(file_rt, live, tol)
    assert len(pairs) == len(file_notes) == len(live), (
        f"live and file onsets differ by more than one hop ({tol * 1000:.1f} ms): "
        f"live {_describe(live)}; file {_describe(file_rt)}")


@pytest.mark.jack
def test_capture_origin_is_sample_zero(jack_server):
    """The alignment used above: ``DeviceSource.origin_monotonic`` mapped to JACK
    frames and snapped to the cycle grid is the frame of the source's audio time 0.
    A click played at a known JACK frame must appear at exactly that position."""
    from rtpitch.capture import DeviceSource

    click_at = 1000  # samples after the player's first frame
    sig = np.zeros(click_at + 1, dtype=np.float32)
    sig[click_at] = 1.0
    player = Player("e2e-click", sig)
    sr, period = player.client.samplerate, player.client.blocksize
    player.client.activate()
    try:
        before = _portaudio_inputs(player.client)
        src = DeviceSource("system", None, ring_seconds=2.0)
        src.start()
        try:
            blocks = []
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                b = src.read(0.05)
                if b is not None:
                    blocks.append(b)
            assert blocks and blocks[0].position == 0
            for port in sorted(_portaudio_inputs(player.client) - before):
                for s in _connections(player.client, port):
                    player.client.disconnect(s, port)
                player.client.connect(player.port, port)
            time.sleep(0.2)
            player.st.armed = True
            deadline = time.monotonic() + 0.6  # the click comes 21 ms after arming
            while time.monotonic() < deadline:
                b = src.read(0.05)
                if b is not None:
                    blocks.append(b)
            origin = src.origin_monotonic()  # as the runner does: at the end, before stop()
            offset = frame_clock_offset(player.client)
        finally:
            src.stop()
        assert origin is not None and origin <= time.monotonic()
        assert src.origin_monotonic() is None  # closed
    finally:
        player.close()
    x = np.concatenate([b.samples for b in blocks])
    assert [b.position for b in blocks] == list(np.cumsum([0] + [len(b.samples) for b in blocks[:-1]]))
    found = int(np.argmax(np.abs(x)))
    assert x[found] > 0.4  # the click (downmix of two identical channels)
    P = player.st.start_frame
    c_est = origin * sr + offset
    C = P + int(round((c_est - P) / period)) * period
    print(f"\nclick at sample {found}; predicted {P + click_at - C}; C_est - C = {c_est - C:+.1f} frames")
    # exact when the estimate is unambiguous; else the snap may pick a neighbouring cycle
    if abs(c_est - C) < period / 4:
        assert found == P + click_at - C
    else:
        assert abs(found - (P + click_at - C)) <= period
