"""``rtpitch bench``: latency budget, per-hop compute and resource use on this machine.

What it measures (in about 10-20 s with the defaults):

* **Per-hop compute** of each stage, for every backend that is available here
  (ONNX Runtime always; TensorRT where it imports and a CUDA GPU is present):
  audio at the capture rate is fed to a real :class:`~rtpitch.engine.Engine`
  one hop at a time (the live case: each ``feed`` completes one frame, so one
  inference on one window), and the wall time of every ``feed`` is the
  *total* per hop. The stages are timed on their own over the same audio:
  *resampler* (capture rate -> model rate) and *frontend* (log-mel, numba)
  as standalone stage objects, *inference* and *decoder* from the engine's own
  per-call timings. Median, p99 and max in ms, after a warm-up.
* Where the backend runs the model's **step graph** (ONNX Runtime, when the
  model has one), the same run once more with the **window graph**, to show
  what the step graph's caches save.
* **Real-time factor** (compute wall time / audio time), **CPU use** (process
  CPU time / wall time over the same run: 1.0 = one core busy) and **peak
  memory** (``ru_maxrss`` of this process, which includes the interpreter and
  every runtime loaded).
* **The latency budget**, term by term (:func:`rtpitch.latency.latency_budget`),
  with the measured median compute per hop of the backend ``auto`` picks.
* With ``device``: the capture device opened for a few seconds with
  :class:`~rtpitch.capture.DeviceSource`: its rate, block size, PortAudio's
  input latency, callback interval statistics (jitter) and overruns. Its block
  size and rate then enter the budget; without a device the budget assumes a
  256-frame block at 48 kHz and says so.

The measured end-to-end latency through a real audio server is
``benchmarks/latency.py``; this command is what a user runs on their machine.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import resource
import sys
import time

import numpy as np

from .errors import ConfigError

DEFAULT_RATE = 48000
DEFAULT_BLOCK = 256
WARMUP_S = 1.0
STATS = ("median", "p99", "max")


# -- test signal -----------------------------------------------------------------
def synthetic_piano(seconds: float, sr: int, *, seed: int = 0) -> np.ndarray:
    """A deterministic piano-like test signal (mono float32, ``sr`` Hz).

    Two or three new notes every 125 ms, MIDI 36-96, each a sum of six
    decaying harmonics lasting 0.3-1.5 s: keeps every stage, the decoder
    included, as busy as dense playing does.
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = np.zeros(n, dtype=np.float64)
    for start in np.arange(0.05, seconds, 0.125):
        for _ in range(rng.integers(2, 4)):
            pitch = rng.integers(36, 97)
            f0 = 440.0 * 2 ** ((pitch - 69) / 12)
            dur = rng.uniform(0.3, 1.5)
            a = int(start * sr)
            b = min(n, a + int(dur * sr))
            t = np.arange(b - a) / sr
            env = np.exp(-t * rng.uniform(2.0, 6.0)) * np.minimum(1.0, t / 0.003)
            tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 7) if f0 * h < sr / 2)
            x[a:b] += rng.uniform(0.05, 0.2) * env * tone
    return (x / max(1.0, np.abs(x).max() / 0.9)).astype(np.float32)


def load_audio(path: str, sr: int, seconds: float) -> np.ndarray:
    """The first ``seconds`` of an audio file, mono (mean of channels), at ``sr`` Hz."""
    import soundfile as sf
    import soxr

    from .errors import AudioFileError
    from .resample import MAX_RATE

    try:
        x, file_sr = sf.read(path, dtype="float32", always_2d=True, frames=int(seconds * MAX_RATE))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioFileError(f"{path}: cannot read audio ({err})") from None
    x = x.mean(axis=1)
    if file_sr != sr:
        x = soxr.resample(x, file_sr, sr)
    return np.ascontiguousarray(x[: int(seconds * sr)], dtype=np.float32)


# -- statistics --------------------------------------------------------------------
def stats_ms(values_s) -> dict:
    """median / p99 / max (ms) and count of a list of durations in seconds."""
    a = 1e3 * np.asarray(values_s, dtype=np.float64)
    if a.size == 0:
        return {"median": None, "p99": None, "max": None, "n": 0}
    return {"median": round(float(np.median(a)), 4), "p99": round(float(np.percentile(a, 99)), 4),
            "max": round(float(a.max()), 4), "n": int(a.size)}


def peak_memory_mib() -> float:
    """Peak resident set size of this process (MiB)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


# -- backends ------------------------------------------------------------------------
def available_backends() -> dict[str, str | None]:
    """Backend name -> None when it can run here, else the reason it cannot."""
    out: dict[str, str | None] = {"onnxruntime": None}
    if importlib.util.find_spec("tensorrt") is None:
        out["tensorrt"] = "TensorRT not installed (pip install 'rtpitch[tensorrt]')"
    else:
        from .backends.tensorrt import cuda_device_count

        count, why = cuda_device_count()
        out["tensorrt"] = None if count else f"TensorRT installed, {why}"
    return out


# -- compute per hop ---------------------------------------------------------------
def measure_compute(spec, backend, x: np.ndarray, *, source_rate: int, warmup_s: float = WARMUP_S,
                    step: bool = True) -> dict:
    """Per-hop compute of each stage for ``x`` (mono float32 at ``source_rate``);
    the hops of its first ``warmup_s`` seconds are run but not counted.
    ``step``: the engine runs the step graph where the backend has one (as
    ``listen`` does); False: the window graph.

    Returns ``{"per_hop_ms": {stage: stats}, "real_time_factor", "cpu_use",
    "hops", "audio_s", "wall_s"}``; ``stage`` is resampler, frontend,
    inference, decoder and total (the whole ``Engine.feed`` of one hop).
    """
    from .engine import Engine
    from .frontend import MelFrontend
    from .resample import StreamResampler
    from .runner import warm_up

    fe = spec.frontend
    hop_src = int(round(fe.hop_length * source_rate / fe.sample_rate))  # samples per hop at the capture rate
    n_hops = x.shape[0] // hop_src
    if n_hops < 10:
        raise ConfigError(f"need at least {10 * fe.hop_s:.1f} s of audio to measure, "
                          f"got {x.shape[0] / source_rate:.2f} s")
    warm = min(int(round(warmup_s / fe.hop_s)), n_hops // 2)  # not counted: caches, first allocations

    # the whole engine, one hop per feed
    engine = Engine(spec, backend, source_rate=source_rate, keep_timings=True, step=step)
    warm_up(engine)
    total = []
    for k in range(n_hops):
        if k == warm:
            c0, w0 = time.process_time(), time.perf_counter()
        t0 = time.perf_counter()
        engine.feed(x[k * hop_src:(k + 1) * hop_src])
        total.append(time.perf_counter() - t0)
    wall = time.perf_counter() - w0
    cpu = time.process_time() - c0
    engine.finish()
    t = engine.timings
    n_inf = len(t.inference)
    skip_inf = max(0, n_inf - (n_hops - warm))  # inference calls that belong to the warm-up hops

    # resampler and mel frontend alone, on the same hops
    resampler = StreamResampler(source_rate, fe.sample_rate)
    frontend = MelFrontend(fe)
    t_res, t_fe = [], []
    for k in range(n_hops):
        t0 = time.perf_counter()
        y = resampler.process(x[k * hop_src:(k + 1) * hop_src])
        t1 = time.perf_counter()
        frames = frontend.process(y)
        t2 = time.perf_counter()
        t_res.append(t1 - t0)
        if frames.shape[0]:
            t_fe.append(t2 - t1)

    audio_s = (n_hops - warm) * hop_src / source_rate
    per_hop = {
        "resampler": stats_ms(t_res[warm:]) if not resampler.identity else stats_ms([0.0]),
        "frontend": stats_ms(t_fe[warm:]),
        "inference": stats_ms(t.inference[skip_inf:]),
        "decoder": stats_ms(t.decoder[skip_inf:]),
        "total": stats_ms(total[warm:]),
    }
    return {
        "per_hop_ms": per_hop,
        "real_time_factor": round(wall / audio_s, 4),
        "cpu_use": round(cpu / wall, 3),
        "hops": n_hops - warm,
        "audio_s": round(audio_s, 2),
        "wall_s": round(wall, 3),
    }


# -- capture device ------------------------------------------------------------------
def callback_jitter(times_s: np.ndarray) -> dict:
    """Callback interval statistics (ms) from a device's callback time stamps
    (:meth:`~rtpitch.capture.DeviceSource.callback_times`): mean, std, min, max of
    their differences. On JACK that clock is the server's frame-time estimate,
    which steps back after an xrun: ``min_ms`` can then be negative."""
    d = np.diff(np.asarray(times_s, dtype=np.float64)) * 1e3
    if d.size == 0:
        return {"mean_ms": 0.0, "std_ms": 0.0, "min_ms": 0.0, "max_ms": 0.0}
    return {"mean_ms": float(d.mean()), "std_ms": float(d.std()), "min_ms": float(d.min()), "max_ms": float(d.max())}


def measure_device(device, *, seconds: float, blocksize: int = 0, channel: int | None = None) -> dict:
    """Open ``device`` for ``seconds`` and report its block size and callback jitter."""
    from .capture import DeviceSource

    src = DeviceSource(device, channel, blocksize=blocksize)
    src.start()
    got = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            block = src.read(0.05)
            if block is not None:
                got += block.samples.shape[0]
        jitter = {"callbacks": src.callbacks, **callback_jitter(src.callback_times())}
        block = src.blocksize
        latency = src.input_latency_s
    finally:
        src.stop()
    return {
        "device": f"{src.device_index} '{src.device_name}' ({src.hostapi_name})",
        "sample_rate": src.sample_rate,
        "blocksize": int(block),
        "block_ms": round(1e3 * block / src.sample_rate, 3) if block else None,
        "portaudio_input_latency_ms": round(1e3 * latency, 3) if latency is not None else None,
        "seconds": seconds,
        "samples_read": int(got),
        "callbacks": jitter["callbacks"],
        "callback_interval_ms": {k: round(jitter[f"{k}_ms"], 3) for k in ("mean", "std", "min", "max")},
        "overrun_samples": int(src.overrun_samples),
        "input_overflows": int(src.input_overflows),
    }


# -- machine ---------------------------------------------------------------------------
def machine_info() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import onnxruntime

    info = {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__}
    if hasattr(os, "sched_getaffinity"):
        info["affinity"] = sorted(os.sched_getaffinity(0))
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


# -- the command ---------------------------------------------------------------------
def run_bench(*, model: str, seconds: float = 10.0, audio: str | None = None, device=None,
              device_seconds: float = 3.0, blocksize: int = 0, channel: int | None = None,
              threads: int = 1, backends: list[str] | None = None) -> dict:
    """Everything ``rtpitch bench`` reports, as a JSON-ready dict."""
    from .backends import make_backend, resolve_backend
    from .latency import latency_budget
    from .model import load_model_spec

    t_start = time.perf_counter()
    spec = load_model_spec(model)
    fe = spec.frontend
    if not seconds >= 10 * fe.hop_s:
        raise ConfigError(f"need at least 10 hops of audio to measure: --seconds {10 * fe.hop_s:g} or more, "
                          f"got {seconds:g}")
    out: dict = {"model": {"name": spec.name, "sample_rate": fe.sample_rate, "hop_ms": round(1e3 * fe.hop_s, 3),
                           "n_fft": fe.n_fft, "window_frames": spec.window_frames,
                           "lookahead_frames": spec.lookahead_frames},
                 "machine": machine_info()}

    if device is not None:
        dev = measure_device(device, seconds=device_seconds, blocksize=blocksize, channel=channel)
        out["device"] = dev
        rate, block = dev["sample_rate"], dev["blocksize"] or blocksize or DEFAULT_BLOCK
        out["input"] = {"sample_rate": rate, "blocksize": block, "source": f"measured on device {dev['device']}"}
    else:
        rate, block = DEFAULT_RATE, blocksize or DEFAULT_BLOCK
        out["input"] = {"sample_rate": rate, "blocksize": block,
                        "source": "assumed (no --device): a typical audio interface"}

    x = load_audio(audio, rate, seconds + WARMUP_S) if audio else synthetic_piano(seconds + WARMUP_S, rate)
    out["input"]["signal"] = audio or "synthetic piano-like notes (2-3 onsets every 125 ms)"

    found = available_backends()
    wanted = backends or list(found)
    out["backends"] = {}
    for name in wanted:
        if name not in found:
            raise ConfigError(f"unknown backend '{name}'; choose from {', '.join(found)}")
        if found[name] is not None:
            out["backends"][name] = {"available": False, "reason": found[name]}
            continue
        backend = make_backend(name, spec, threads=threads)
        try:
            res = measure_compute(spec, backend, x, source_rate=rate)
            res = {"available": True, "describe": backend.describe(), **res}
            # what the step graph saves (a recurrent model has no window form to compare)
            if backend.make_stepper() is not None and not spec.recurrent:
                res["window_graph"] = measure_compute(spec, backend, x, source_rate=rate, step=False)
        finally:
            backend.close()
        out["backends"][name] = res

    chosen, why = resolve_backend("auto")
    measured = out["backends"].get(chosen, {})
    if not measured.get("available"):
        chosen = next((k for k, v in out["backends"].items() if v.get("available")), None)
        measured = out["backends"].get(chosen, {}) if chosen else {}
    compute_s = measured["per_hop_ms"]["total"]["median"] / 1e3 if measured else None
    from .engine import build_stages

    terms = latency_budget(build_stages(spec, None, source_rate=rate, block=block), capture_block_s=block / rate,
                           compute_s=compute_s)
    out["latency_budget_ms"] = {name: round(ms, 2) for name, ms in terms}
    out["latency_budget_ms"]["total"] = round(sum(ms for _, ms in terms), 2)
    out["latency_budget_backend"] = chosen
    out["peak_memory_mib"] = peak_memory_mib()
    out["bench_wall_s"] = round(time.perf_counter() - t_start, 1)
    return out


def format_report(res: dict) -> str:
    """The plain-text report."""
    m, inp = res["model"], res["input"]
    lines = [f"rtpitch bench: model {m['name']} ({m['sample_rate']} Hz, hop {m['hop_ms']:g} ms, "
             f"window {m['window_frames']} frames, lookahead {m['lookahead_frames']})",
             f"machine: {res['machine']['cpu']}, {res['machine']['cores']} cores, "
             f"load {res['machine'].get('load_average_1min', '?')}",
             ""]
    dev = res.get("device")
    if dev:
        ci = dev["callback_interval_ms"]
        lines += [f"capture device {dev['device']}: {dev['sample_rate']} Hz, block {dev['blocksize']} frames "
                  f"({dev['block_ms']} ms), PortAudio input latency {dev['portaudio_input_latency_ms']} ms",
                  f"  callbacks {dev['callbacks']} in {dev['seconds']:g} s; interval mean {ci['mean']:.3f} ms, "
                  f"std {ci['std']:.3f}, min {ci['min']:.3f}, max {ci['max']:.3f}",
                  f"  overruns: {dev['overrun_samples']} samples dropped, {dev['input_overflows']} input overflows",
                  ""]
    lines.append(f"latency budget (ms; capture {inp['blocksize']} frames at {inp['sample_rate']} Hz, "
                 f"{inp['source']}):")
    budget = res["latency_budget_ms"]
    width = max(len(k) for k in budget)
    for name, ms in budget.items():
        if name == "total":
            lines.append(f"  {'-' * width}  {'-' * 8}")
        lines.append(f"  {name:<{width}}  {ms:8.2f}")
    lines.append("")
    for name, b in res["backends"].items():
        if not b["available"]:
            lines.append(f"{name}: not measured: {b['reason']}")
            continue
        lines.append(f"{name} ({b['describe']}): per-hop compute, ms ({b['hops']} hops of {m['hop_ms']:g} ms):")
        lines.append(f"  {'stage':<10} {'median':>8} {'p99':>8} {'max':>8}")
        for stage, s in b["per_hop_ms"].items():
            vals = " ".join(f"{s[k]:8.3f}" if s[k] is not None else f"{'-':>8}" for k in STATS)
            lines.append(f"  {stage:<10} {vals}")
        lines.append(f"  real-time factor {b['real_time_factor']:.4f}; CPU use {b['cpu_use']:.2f} "
                     f"(process CPU time / wall; 1.0 = one core)")
        win = b.get("window_graph")
        if win:
            inf, tot = win["per_hop_ms"]["inference"], win["per_hop_ms"]["total"]
            lines.append(f"  the window graph instead (no caches): inference {inf['median']:.3f} / {inf['p99']:.3f} ms, "
                         f"total {tot['median']:.3f} / {tot['p99']:.3f} ms (median / p99), "
                         f"real-time factor {win['real_time_factor']:.4f}")
    lines.append(f"peak memory (ru_maxrss): {res['peak_memory_mib']:.1f} MiB; bench took {res['bench_wall_s']:.1f} s")
    return "\n".join(lines)


def add_arguments(p) -> None:
    """The ``rtpitch bench`` options (on an argparse parser)."""
    from .model import DEFAULT_MODEL

    p.add_argument("--model", default=DEFAULT_MODEL, help=f"a shipped model's name or the path to a model's .json "
                                                          f"(default {DEFAULT_MODEL})")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="audio measured per backend, s (default 10; plus 1 s warm-up)")
    p.add_argument("--audio", metavar="FILE", default=None,
                   help="measure on this audio file (default: a synthetic piano-like signal)")
    p.add_argument("--device", default=None,
                   help="also open this audio input (index or part of its name) and measure its block "
                        "size and callback jitter")
    p.add_argument("--device-seconds", type=float, default=3.0, help="how long to listen to --device (default 3)")
    p.add_argument("--blocksize", type=int, default=0,
                   help="capture block in frames for --device (default: what it prefers) or for the budget")
    p.add_argument("--channel", type=int, default=None, help="input channel of --device, counted from 0 (default: the mix)")
    p.add_argument("--backend", action="append", choices=("onnxruntime", "tensorrt"), default=None,
                   help="measure only this backend (repeatable; default: every one available)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for ONNX Runtime (default 1)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of text")


def main(args) -> int:
    """Run ``rtpitch bench`` with parsed arguments; prints the report."""
    device = args.device
    if isinstance(device, str) and device.lstrip("-").isdigit():
        device = int(device)
    res = run_bench(model=args.model, seconds=args.seconds, audio=args.audio, device=device,
                    device_seconds=args.device_seconds, blocksize=args.blocksize, channel=args.channel,
                    threads=args.threads, backends=args.backend)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(format_report(res))
    return 0
