"""Long runs: memory stays flat, no note is left hanging, and the live path gives
what ``transcribe`` gives, over hours of audio.

Two modes (issue 5, "long runs"):

``engine`` (default 120 minutes of audio)
    Piano recordings (benchmarks/audio/*.flac, then ../shared/data/real/*/flac
    if present) are concatenated, looped, into one FLAC of ``--minutes``. It runs
    through the live path as fast as possible: a file source giving
    ``--block``-sample blocks (a capture callback's size), the engine, and a sink
    that checks every event as it comes (time order, every note-on closed by one
    note-off, no overlapping notes of one pitch) and writes it to disk (so the
    check itself holds no growing memory). Resident memory is read every minute
    of audio. Then ``transcribe`` (the same file, 8192-sample blocks) runs on it
    and the two event lists are compared: pitch, on/off and velocity equal,
    times within 1 us.

``jack`` (default 10 minutes, real time)
    A private JACK server (dummy backend, ``jackd -n rtpitch-longrun``); a
    player client plays the concatenated audio (at the server's rate) into
    ``rtpitch listen --device system --midi-out --record``; a MIDI monitor
    records the port (``jackutil.MidiMonitor``, a GIL-free JACK MIDI input). The
    rtpitch process's resident memory is read every 10 s. At the end (SIGINT)
    the monitor's stream must close every note and carry exactly the recorded
    notes, the run must report no overruns, and the take must equal
    ``transcribe`` of the audio rtpitch heard (``listen --record-audio``): every
    note, to the MIDI tick and the velocity.

    Also reported, not a criterion: the take against ``transcribe`` of the audio
    as played (the file after as much silence as rtpitch captured before the
    player started, so both cut the same frames), onsets within one hop + one
    JACK period + 2 MIDI ticks. A JACK cycle lost to an xrun never reaches
    rtpitch, so its clock falls behind the file's by a period at each loss and
    the audio of that cycle is not heard: the offset is found per 10 s of audio
    (:func:`match_piecewise`, a whole number of periods) and the distinct
    offsets are reported.

``--load N`` (jack mode) runs N CPU-bound processes beside rtpitch while it
plays (issue 5, "overload"): the callback must still never block; blocks the
ring had to drop are allowed, but must be counted and reported, with the notes
sounding across each drop closed (the stream check) and the take still equal to
``transcribe`` of what was heard.

Pass criteria: memory growth after the warm-up (the first ``--warmup`` minutes)
<= 5 MB; no stuck note; events equal to ``transcribe``'s; 0 overruns.

    .venv/bin/python -m benchmarks.long_run engine                      # 2 h, the default model
    .venv/bin/python -m benchmarks.long_run jack                        # 10 min real time
    .venv/bin/python -m benchmarks.long_run jack --minutes 2 --load 4   # overload: 4 CPU hogs beside it
    .venv/bin/python -m benchmarks.long_run engine --minutes 0.5 --model fake   # wiring check

Writes benchmarks/results/long_run_<mode>.json. Exit status 0 when every
criterion holds. The concatenated FLAC is written to ``--workdir`` (default a
temporary folder, removed afterwards unless ``--keep``); 2 h at 44.1 kHz is
about 300 MB.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import platform
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

from rtpitch.backends import make_backend, resolve_backend
from rtpitch.engine import Engine
from rtpitch.events import NoteEvent
from rtpitch.filesource import FileSource
from rtpitch.model import DEFAULT_MODEL, load_model_spec
from rtpitch.runner import run_stream, transcribe_file

GROWTH_LIMIT_MB = 5.0
RESULTS = REPO / "benchmarks" / "results"
SHARED_REAL = Path(os.environ.get("RTPITCH_SHARED_DATA") or REPO.parent / "shared" / "data") / "real"
GAP_S = 0.5  # silence between pieces


# -- memory ---------------------------------------------------------------------------------
def rss_mb(pid: int | None = None) -> float:
    """Resident set size (MB) of ``pid`` (default: this process): psutil when
    installed, else /proc/<pid>/status (Linux)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        pass
    with open(f"/proc/{pid or 'self'}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("cannot read resident memory (no psutil, no /proc)")


def growth(series: list[tuple[float, float]], warmup: float) -> dict:
    """Memory growth after the warm-up: max RSS after it minus RSS at its end (MB),
    and the least-squares slope over that part (MB per hour)."""
    after = [(t, m) for t, m in series if t >= warmup]
    if len(after) < 2:
        return {"growth_mb": None, "slope_mb_per_h": None, "samples": len(after)}
    t = np.array([a[0] for a in after])
    m = np.array([a[1] for a in after])
    slope = float(np.polyfit(t, m, 1)[0]) * 60 if np.ptp(t) > 0 else 0.0
    return {"growth_mb": round(float(m.max() - m[0]), 3), "slope_mb_per_h": round(slope, 3),
            "rss_at_warmup_mb": round(float(m[0]), 1), "rss_max_mb": round(float(m.max()), 1),
            "samples": len(after)}


# -- the long audio ---------------------------------------------------------------------------
def pieces() -> list[Path]:
    found = sorted((REPO / "benchmarks" / "audio").glob("*.flac"))
    if SHARED_REAL.is_dir():
        found += sorted(SHARED_REAL.glob("*/flac/*.flac"))
    if not found:
        raise SystemExit("no piano recordings found (benchmarks/audio/*.flac)")
    return found


def build_long_audio(path: Path, minutes: float, rate: int) -> list[str]:
    """Write ``minutes`` of looped piano (mono, ``rate`` Hz, FLAC 16-bit) to ``path``,
    piece by piece (never all in memory); returns the pieces used, in order."""
    import soundfile as sf
    import soxr

    total = int(minutes * 60 * rate)
    gap = np.zeros(int(GAP_S * rate), np.float32)
    used, written = [], 0
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16") as out:
        while written < total:
            for p in pieces():
                x, sr = sf.read(str(p), dtype="float32", always_2d=True)
                x = x.mean(axis=1)
                if sr != rate:
                    x = soxr.resample(x, sr, rate).astype(np.float32)
                x = np.clip(np.concatenate([x, gap]), -1, 1)[: total - written]
                out.write(x)
                written += x.shape[0]
                used.append(p.name)
                if written >= total:
                    break
    return used


# -- engine mode --------------------------------------------------------------------------------
class _Sampled:
    """A source proxy that reads this process's RSS every ``every_s`` of audio."""

    def __init__(self, source, every_s: float = 60.0):
        self.source = source
        self.sample_rate = source.sample_rate
        self.every = int(every_s * source.sample_rate)
        self.next = 0
        self.series: list[tuple[float, float]] = []  # (audio minutes, RSS MB)
        self.t0 = time.monotonic()

    def __getattr__(self, name):
        return getattr(self.source, name)

    def read(self, timeout_s):
        block = self.source.read(timeout_s)
        if block is not None and block.position >= self.next:
            self.series.append((block.position / self.sample_rate / 60, rss_mb()))
            m = block.position / self.sample_rate / 60
            if len(self.series) % 10 == 1:
                print(f"  {m:6.1f} min of audio, {time.monotonic() - self.t0:7.1f} s wall, "
                      f"RSS {self.series[-1][1]:.1f} MB", file=sys.stderr, flush=True)
            self.next += self.every
        return block


class _CheckingSink:
    """Checks each event as it arrives and appends it to a binary file
    (float64 time, int16 pitch, int16 velocity, int8 on, 3 pad bytes)."""

    REC = struct.Struct("<dhhb3x")

    def __init__(self, path: Path):
        self.fh = open(path, "wb")
        self.sounding: dict[int, float] = {}
        self.last = -1.0
        self.notes = 0
        self.problems: list[str] = []

    def _problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)

    def send(self, events) -> None:
        for e in events:
            if not isinstance(e, NoteEvent):  # the sustain pedal (a model with a pedal head)
                continue
            if e.time_s < self.last - 1e-12:
                self._problem(f"out of order at {e}")
            self.last = e.time_s
            if e.on:
                if e.pitch in self.sounding:
                    self._problem(f"note-on while sounding: {e}")
                self.sounding[e.pitch] = e.time_s
                self.notes += 1
            elif self.sounding.pop(e.pitch, None) is None:
                self._problem(f"note-off without note-on: {e}")
            self.fh.write(self.REC.pack(e.time_s, e.pitch, e.velocity, e.on))

    def close(self) -> None:
        if self.sounding:
            self._problem(f"notes never ended: {sorted(self.sounding)}")
        self.fh.close()

    @classmethod
    def load(cls, path: Path) -> np.ndarray:
        dt = np.dtype([("t", "<f8"), ("pitch", "<i2"), ("vel", "<i2"), ("on", "i1"), ("pad", "V3")])
        return np.fromfile(path, dtype=dt)


def run_engine(args, work: Path) -> dict:
    spec = load_model_spec(args.model)
    chosen, why = resolve_backend(args.backend)
    backend = make_backend(chosen, spec)
    audio = work / "long.flac"
    print(f"writing {args.minutes:g} min of piano to {audio} ...", file=sys.stderr)
    used = build_long_audio(audio, args.minutes, args.rate)
    print(f"model {spec.name}, {why}; the live path, blocks of {args.block} at {args.rate} Hz", file=sys.stderr)
    source = _Sampled(FileSource(audio, realtime=False, blocksize=args.block), every_s=args.every)
    sink = _CheckingSink(work / "events.bin")
    engine = Engine(spec, backend, source_rate=args.rate)
    t0 = time.perf_counter()
    summary = run_stream(source, engine, [sink], stop=threading.Event(), keep_events=False)
    wall = time.perf_counter() - t0
    source.series.append((summary.audio_s / 60, rss_mb()))
    live = _CheckingSink.load(work / "events.bin")
    print(f"live path: {sink.notes} notes, {wall:.0f} s wall; now transcribe ...", file=sys.stderr)
    t1 = time.perf_counter()
    ref_summary = transcribe_file(audio, spec, backend)
    ref_wall = time.perf_counter() - t1
    ref = ref_summary.events
    same_len = len(ref) == len(live)
    mismatches = []
    for i, e in enumerate(ref[: len(live)]):
        r = live[i]
        if (int(r["pitch"]), int(r["vel"]), bool(r["on"])) != (e.pitch, e.velocity, e.on) or abs(r["t"] - e.time_s) > 1e-6:
            mismatches.append({"index": i, "live": [float(r["t"]), int(r["pitch"]), int(r["vel"]), bool(r["on"])],
                               "transcribe": [e.time_s, e.pitch, e.velocity, e.on]})
            if len(mismatches) >= 20:
                break
    warm = min(args.warmup, args.minutes / 4)
    mem = growth(source.series, warm)
    ok = {
        "memory": mem["growth_mb"] is not None and mem["growth_mb"] <= GROWTH_LIMIT_MB,
        "no_stuck_notes": not sink.problems,
        "same_as_transcribe": same_len and not mismatches,
        "no_errors": summary.ok and ref_summary.ok,
    }
    return {
        "benchmark": "long_run", "mode": "engine", "model": spec.name, "backend": backend.describe(),
        "minutes": args.minutes, "rate": args.rate, "block": args.block, "pieces": len(used),
        "notes": sink.notes, "events": int(len(live)), "transcribe_events": len(ref),
        "wall_s": round(wall, 1), "real_time_factor": round(wall / max(summary.audio_s, 1e-9), 4),
        "transcribe_wall_s": round(ref_wall, 1), "warmup_minutes": warm, "memory": mem,
        "rss_series": [[round(t, 2), round(m, 2)] for t, m in source.series],
        "event_problems": sink.problems, "mismatches": mismatches, "errors": summary.errors + summary.sink_errors,
        "pass": ok, "all_pass": all(ok.values()),
    }


# -- jack mode ------------------------------------------------------------------------------------
def match_piecewise(ref, live, base_offset: float, step_s: float, max_steps: int, tol_s: float,
                    window_s: float = 10.0) -> tuple[int, list[float]]:
    """Match (onset, pitch) lists, ``ref`` in file time and ``live`` in rtpitch
    audio time, where ``live`` may lag by lost JACK cycles that differ along the
    take: for each ``window_s`` of ``ref`` the offset ``base_offset + k * step_s``
    (|k| <= ``max_steps``, ties to the smallest |k|) with the most one-to-one
    matches (``jackutil.match_onsets``) is used. Returns (matches, offset of each window)."""
    from benchmarks.jackutil import match_onsets

    if not ref:
        return 0, []
    ks = sorted(range(-max_steps, max_steps + 1), key=abs)
    reach = max_steps * step_s + tol_s
    free = list(range(len(live)))  # live notes not matched by an earlier window
    end = max(t for t, _ in ref)
    matched, offsets = 0, []
    lo = 0.0
    while lo <= end:
        part = [(t, p) for t, p in ref if lo <= t < lo + window_s]
        if part:
            near = [j for j in free if lo + base_offset - reach <= live[j][0] < lo + window_s + base_offset + reach]
            cand = [live[j] for j in near]

            pairs = {k: match_onsets([(t + base_offset + k * step_s, p) for t, p in part], cand, tol_s) for k in ks}
            k = max(ks, key=lambda k: (len(pairs[k]), -abs(k)))
            used = {near[j] for _, j in pairs[k]}
            free = [j for j in free if j not in used]
            matched += len(used)
            offsets.append(round(base_offset + k * step_s, 6))
        lo += window_s
    return matched, offsets


def run_jack(args, work: Path) -> dict:
    import soundfile as sf

    from benchmarks.jackutil import (JackError, JackServer, MidiMonitor, Player, connections, wait_for_rtpitch,
                                     frame_clock_offset, midi_outputs, portaudio_inputs, snap_capture_frame,
                                     stop_process)

    spec = load_model_spec(args.model)
    hop_s = spec.frontend.hop_s
    with JackServer(name="rtpitch-longrun", realtime=args.realtime) as server:
        audio = work / "long.flac"
        print(f"writing {args.minutes:g} min of piano at {server.rate} Hz to {audio} ...", file=sys.stderr)
        build_long_audio(audio, args.minutes, server.rate)
        samples = sf.read(str(audio), dtype="float32")[0]
        player = Player("longrun-player", samples)
        client = player.client
        mon = MidiMonitor("longrun-monitor")
        player.client.activate()
        record = work / "take.mid"
        err_path, out_path = work / "stderr.txt", work / "stdout.txt"
        pa_before, midi_before = portaudio_inputs(client), midi_outputs(client)
        heard = work / "heard.wav"
        cmd = [sys.executable, "-m", "rtpitch", "listen", "--verbose", "--device", "system", "--midi-out", "--record",
               str(record), "--record-audio", str(heard), "--no-view", "--model", args.model]
        with open(out_path, "w") as fo, open(err_path, "w") as fe:
            proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=fo,
                                    stderr=fe, stdin=subprocess.DEVNULL, start_new_session=True)
        series: list[tuple[float, float]] = []
        clock_offset = None
        hogs: list[subprocess.Popen] = []
        try:
            try:
                ins, outs = wait_for_rtpitch(proc, client, pa_before, midi_before,
                                              time.monotonic() + 120, 120, err_path)
            except JackError as exc:
                raise SystemExit(str(exc)) from None
            for port in ins:
                for src in connections(client, port):
                    client.disconnect(src, port)
                client.connect(player.port, port)
            client.connect(outs[0], mon.name)
            time.sleep(0.3)
            hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
                    for _ in range(args.load)]  # --load: CPU-bound processes beside rtpitch
            player.st.armed = True
            t0 = time.monotonic()
            play_s = samples.shape[0] / server.rate
            next_print = 0.0
            while not player.st.done and time.monotonic() < t0 + play_s + 30:
                el = time.monotonic() - t0
                series.append((el / 60, rss_mb(proc.pid)))
                if el >= next_print:
                    print(f"  {el / 60:5.1f} / {play_s / 60:.1f} min, rtpitch RSS {series[-1][1]:.1f} MB, "
                          f"{mon.count} MIDI messages", file=sys.stderr, flush=True)
                    next_print += 60
                time.sleep(args.every_jack)
            time.sleep(2.0)
            clock_offset = frame_clock_offset(client)  # JACK frames - monotonic * rate
            proc.send_signal(signal.SIGINT)
            try:
                rc = proc.wait(30)
            except subprocess.TimeoutExpired:
                rc = None
            time.sleep(0.2)
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
            stop_process(proc)
            xruns = player.st.xruns
            start_frame = player.st.start_frame
            messages, lost = mon.messages(), mon.lost
            player.close()
            mon.close()
    stderr = err_path.read_text()
    from rtpitch.sinks.midi_file import read_midi_notes

    recorded = read_midi_notes(record) if record.exists() else []
    # the port's stream: every on has its off, and it carries the file's notes
    sounding, port_ons, stream_problems = set(), [], []
    for _, (st, d1, d2) in messages:
        kind = st & 0xF0
        if kind == 0x90 and d2 > 0:
            if d1 in sounding:
                stream_problems.append(f"note-on {d1} while sounding")
            sounding.add(d1)
            port_ons.append((d1, d2))
        elif kind == 0x80 or (kind == 0x90 and d2 == 0):
            if d1 not in sounding:
                stream_problems.append(f"note-off {d1} without on")
            sounding.discard(d1)
    if sounding:
        stream_problems.append(f"never closed: {sorted(sounding)}")
    port_matches_file = port_ons == [(n[2], n[3]) for n in recorded]
    m = re.search(r"overruns: (\d+) samples dropped", stderr)
    overruns = int(m.group(1)) if m else None
    m = re.search(r"input overflows: (\d+)", stderr)
    overflows = int(m.group(1)) if m else 0
    # the criterion: transcribe of the audio rtpitch heard gives the take, note for note
    backend = make_backend("onnxruntime", spec)
    heard_notes = None
    if heard.exists():
        from rtpitch.sinks.midi_file import MidiFileSink

        transcribe_file(heard, spec, backend, sinks=[MidiFileSink(work / "heard.mid")])
        heard_notes = read_midi_notes(work / "heard.mid")
    # reported: against transcribe of the audio as played: the silence before the
    # player's first sample, then the file. Its first sample is rtpitch audio time
    # offset = (P - C) / rate, P the JACK frame of the player's first sample and C
    # that of rtpitch's sample 0 (jackutil.snap_capture_frame); with that lead-in
    # the file is cut into the same frames as the live stream (without it, the
    # frame grid sits a fraction of a hop apart and borderline notes differ)
    live = [(n[0], n[2]) for n in recorded]
    offset, ref = None, []
    matched, identical, offsets = 0, 0, []
    capture_frame, _ = snap_capture_frame(stderr, clock_offset, start_frame, server.rate, server.period)
    if capture_frame is not None:
        offset = (start_frame - capture_frame) / server.rate
        played = work / "played.flac"
        lead = np.zeros(max(0, start_frame - capture_frame), np.float32)
        sf.write(str(played), np.concatenate([lead, samples]), server.rate, subtype="PCM_16")
        ons = [e for e in transcribe_file(played, spec, backend).events if e.on]
        ref = [(e.time_s, e.pitch) for e in ons]
        tol = hop_s + server.period / server.rate + 2 / 960
        matched, offsets = match_piecewise(ref, live, 0.0, server.period / server.rate,
                                           xruns + overflows + 2, tol)
        # identical: same pitch and velocity, onset within 2 MIDI ticks, no clock step
        identical = match_piecewise([(e.time_s, (e.pitch, e.velocity)) for e in ons],
                                    [(n[0], (n[2], n[3])) for n in recorded], 0.0, 1.0, 0, 2 / 960)[0]
    warm = min(args.warmup, args.minutes / 4)
    mem = growth(series, warm)
    ok = {
        "exit_0": rc == 0 and "Traceback" not in stderr,
        "memory": mem["growth_mb"] is not None and mem["growth_mb"] <= GROWTH_LIMIT_MB,
        "no_stuck_notes": not stream_problems and lost == 0,
        "port_matches_file": port_matches_file,
        # under --load a dropped block is allowed if it is counted (the summary line)
        "no_overruns": overruns == 0 if not args.load else overruns is not None,
        "same_as_transcribe": heard_notes is not None and heard_notes == recorded,
    }
    return {
        "benchmark": "long_run", "mode": "jack", "model": spec.name, "minutes": args.minutes,
        "load_processes": args.load,
        "jack": {"rate": server.rate, "period": server.period, "realtime": server.realtime, "player_xruns": xruns, "start_frame": start_frame,
                 "monitor_lost_messages": lost},
        "returncode": rc, "overruns_samples": overruns, "input_overflows": overflows,
        "notes_file": len(recorded), "notes_port": len(port_ons),
        "notes_transcribe_heard": None if heard_notes is None else len(heard_notes),
        "heard_audio_s": round(sf.info(str(heard)).duration, 3) if heard.exists() else None,
        "played": {"notes_transcribe": len(ref), "matched": matched, "identical": identical, "offset_s": offset,
                   "distinct_offsets": sorted(set(offsets))},
        "warmup_minutes": warm, "memory": mem,
        "rss_series": [[round(t, 3), round(m_, 2)] for t, m_ in series[:: max(1, len(series) // 400)]],
        "stream_problems": stream_problems[:20], "stderr_tail": stderr.strip().splitlines()[-6:],
        "pass": ok, "all_pass": all(ok.values()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", nargs="?", default="engine", choices=("engine", "jack"))
    ap.add_argument("--minutes", type=float, default=None, help="audio length (default: engine 120, jack 10)")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--rate", type=int, default=44100, help="engine mode: file rate (default 44100)")
    ap.add_argument("--block", type=int, default=256, help="engine mode: samples per block (default 256)")
    ap.add_argument("--every", type=float, default=60.0, help="engine mode: RSS every this many s of audio")
    ap.add_argument("--every-jack", type=float, default=10.0, help="jack mode: RSS every this many s")
    ap.add_argument("--warmup", type=float, default=5.0, help="minutes before memory must stay flat "
                                                              "(at most a quarter of the run)")
    ap.add_argument("--realtime", action="store_true",
                    help="jack mode: run jackd with realtime scheduling (-R), as musicians do; "
                         "then other load (e.g. training) does not starve the audio cycle")
    ap.add_argument("--load", type=int, default=0,
                    help="jack mode: run this many CPU-bound processes beside rtpitch while it plays (overload); "
                         "ring overruns are then allowed but must be counted")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep the long audio and event files")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.minutes is None:
        args.minutes = 120.0 if args.mode == "engine" else 10.0
    if args.mode == "jack":
        args.every_jack = min(args.every_jack, max(args.minutes * 60 / 30, 0.5))
    else:
        args.every = min(args.every, max(args.minutes * 60 / 30, 1.0))
    # a JACK client that deadlocks must not hang the benchmark for ever: dump the
    # stacks and end (the private jackd is then left running: kill it by name)
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 PID: print where every thread is
    faulthandler.dump_traceback_later(args.minutes * 60 * (1.0 if args.mode == "jack" else 2.0) + 900, exit=True)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="rtpitch-longrun-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        result = run_engine(args, work) if args.mode == "engine" else run_jack(args, work)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    result["machine"] = f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPUs"
    result["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    out = Path(args.out) if args.out else RESULTS / f"long_run_{args.mode}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    mem = result["memory"]
    print(f"{args.mode}: {args.minutes:g} min; memory growth after warm-up {mem['growth_mb']} MB "
          f"(slope {mem['slope_mb_per_h']} MB/h); pass: {result['pass']}; wrote {out}", file=sys.stderr)
    return 0 if result["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
