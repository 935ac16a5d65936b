"""Command line: ``rtpitch devices | listen | transcribe | bench``.

Every error a user can act on is an :class:`RtpitchError`; it is printed as one
line (``rtpitch: error: ...``) with exit status 1, never as a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .errors import ConfigError, RtpitchError
from .model import DEFAULT_MODEL, available_models, load_model_spec


def _device_arg(value: str):
    """--device takes an index or part of a name."""
    return int(value) if value.lstrip("-").isdigit() else value


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"model name in models/ or path to its .json (default {DEFAULT_MODEL}; "
                        f"shipped: {', '.join(available_models()) or 'none'})")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"),
                   help="inference runtime (default auto: TensorRT with a CUDA GPU, else ONNX Runtime)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for ONNX Runtime (default 1)")
    p.add_argument("--channel", type=int, default=None,
                   help="use this input channel (0-based) instead of the mix of all channels")
    p.add_argument("--print-notes", action="store_true", help="print a line per note on/off")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rtpitch", description="Streaming piano transcription: audio in, MIDI out.")
    sub = ap.add_subparsers(dest="command", required=True)

    sub.add_parser("devices", help="list audio inputs and MIDI ports")

    li = sub.add_parser("listen", help="transcribe live input to MIDI until Ctrl-C")
    src = li.add_mutually_exclusive_group()
    src.add_argument("--device", type=_device_arg, default=None,
                     help="audio input: index or part of its name (see 'rtpitch devices'; default: system default)")
    src.add_argument("--input", metavar="FILE", default=None,
                     help="play an audio file in real time as if it were a microphone")
    out = li.add_mutually_exclusive_group()
    out.add_argument("--midi-out", nargs="?", const="rtpitch", default=None, metavar="NAME",
                     help="create a virtual MIDI output port (default name 'rtpitch')")
    out.add_argument("--midi-port", type=_device_arg, default=None, metavar="PORT",
                     help="send to an existing MIDI output port (index or part of its name)")
    li.add_argument("--midi-channel", type=int, default=1, help="MIDI channel 1-16 (default 1)")
    li.add_argument("--record", metavar="FILE.mid", default=None, help="write the take to a MIDI file on exit")
    li.add_argument("--blocksize", type=int, default=0,
                    help="capture block in frames (default: what the device prefers; files: 256)")
    li.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    li.add_argument("--no-view", action="store_true", help="no live terminal view")
    _add_engine_args(li)

    tr = sub.add_parser("transcribe", help="transcribe an audio file to a MIDI file")
    tr.add_argument("input", help="audio file (WAV, FLAC, OGG, MP3; any rate 8-192 kHz, any channels)")
    tr.add_argument("-o", "--output", default=None, help="MIDI file to write (default: input name with .mid)")
    _add_engine_args(tr)

    from . import bench

    bench.add_arguments(sub.add_parser(
        "bench", help="measure the latency budget, per-hop compute, CPU and memory on this machine"))
    return ap


def _make_backend(args, spec):
    from .backends import make_backend, resolve_backend

    chosen, why = resolve_backend(args.backend)
    print(f"backend: {why}", file=sys.stderr)
    backend = make_backend(chosen, spec, threads=args.threads)
    return backend


def cmd_devices(args) -> int:
    from .devices import format_devices, format_midi_ports

    print("Audio inputs:")
    print(format_devices())
    print()
    print("MIDI ports:")
    print(format_midi_ports())
    return 0


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum, frame):
        stop.set()

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, handler)


def cmd_listen(args) -> int:
    from .engine import Engine
    from .latency import format_budget, latency_budget
    from .runner import run_stream, warm_up
    from .sinks.midi_file import MidiFileSink
    from .sinks.terminal import TerminalView

    spec = load_model_spec(args.model)
    if args.input is not None:
        from .filesource import FileSource

        source = FileSource(args.input, realtime=True, blocksize=args.blocksize or 256, channel=args.channel)
        source_desc = f"file {args.input} (played in real time)"
    else:
        from .capture import DeviceSource

        source = DeviceSource(args.device, args.channel, blocksize=args.blocksize)
        source_desc = f"device {source.device_index} '{source.device_name}' ({source.hostapi_name})"
    backend = _make_backend(args, spec)
    sinks = []
    if args.midi_out is not None or args.midi_port is not None:
        from .sinks.midi_port import MidiPortSink

        port = MidiPortSink(virtual_name=args.midi_out, port=args.midi_port, channel=args.midi_channel)
        sinks.append(port)
        print(f"MIDI out: {port.describe()}", file=sys.stderr)
    if args.record:
        _check_writable(args.record)
        sinks.append(MidiFileSink(args.record))
    engine = Engine(spec, backend, source_rate=source.sample_rate)
    block_s = (args.blocksize or getattr(source, "blocksize", 0) or 256) / source.sample_rate
    terms = latency_budget(spec, capture_block_s=block_s, resampler_delay_s=engine.resampler.delay_s,
                           decoder_frames=engine.decoder.latency_frames)
    total_ms = sum(ms for _, ms in terms)
    print(f"input: {source_desc}, {source.sample_rate} Hz", file=sys.stderr)
    print(f"model: {spec.name}; latency budget:\n{format_budget(terms)}", file=sys.stderr)
    view = None
    if not args.no_view:
        view = TerminalView(latency_ms=total_ms, print_notes=args.print_notes or None)
    elif args.print_notes:  # no live view: only the note lines, on stdout (as transcribe prints them)
        view = TerminalView(stream=sys.stdout, print_notes=True, enabled=False)
    if view is not None:
        sinks.append(view)

    stop = threading.Event()
    _install_stop_handlers(stop)
    if args.duration is not None:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    warm_up(engine)  # first-call costs now, not while the capture callback waits for the GIL
    print("listening: Ctrl-C to stop", file=sys.stderr)
    summary = run_stream(source, engine, sinks, stop=stop, view=view)
    if summary.origin_monotonic_s is not None:
        # audio time 0 on the wall clock: lets a test or benchmark align the
        # take's audio-time stamps with another clock (see tests/test_e2e_jack.py)
        print(f"capture clock: audio time 0 = monotonic {summary.origin_monotonic_s:.6f} s", file=sys.stderr)
    _report(summary, args.record)
    return 1 if summary.sink_errors else 0


def cmd_transcribe(args) -> int:
    from .runner import transcribe_file
    from .sinks.midi_file import MidiFileSink
    from .sinks.terminal import TerminalView

    spec = load_model_spec(args.model)
    output = args.output or os.path.splitext(args.input)[0] + ".mid"
    _check_writable(output)
    backend = _make_backend(args, spec)
    sinks = [MidiFileSink(output)]
    if args.print_notes:
        sinks.append(TerminalView(stream=sys.stdout, print_notes=True, enabled=False))
    summary = transcribe_file(args.input, spec, backend, channel=args.channel, sinks=sinks)
    _report(summary, output)
    rtf = summary.wall_s / max(summary.audio_s, 1e-9)
    print(f"{summary.audio_s:.1f} s of audio in {summary.wall_s:.2f} s (real-time factor {rtf:.3f})", file=sys.stderr)
    return 1 if summary.sink_errors else 0


def _check_writable(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"cannot write {path}: folder {folder} is not writable")


def _report(summary, record_path) -> None:
    print(f"{summary.notes} notes in {summary.audio_s:.1f} s of audio; "
          f"overruns: {summary.overrun_samples} samples dropped", file=sys.stderr)
    if summary.nonfinite_samples:
        print(f"warning: {summary.nonfinite_samples} NaN/Inf input samples were replaced by 0", file=sys.stderr)
    for err in summary.sink_errors:
        print(f"rtpitch: error: {err}", file=sys.stderr)
    if record_path and not summary.sink_errors:
        print(f"wrote {record_path}", file=sys.stderr)


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


COMMANDS = {"devices": cmd_devices, "listen": cmd_listen, "transcribe": cmd_transcribe, "bench": cmd_bench}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RtpitchError as err:
        print(f"rtpitch: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rtpitch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
