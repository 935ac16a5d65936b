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
import time

from .archive import MANIFEST_NAME
from .errors import ConfigError, RtpitchError
from .model import DEFAULT_MODEL, PEDAL_HEAD, available_models, load_model_spec


def _device_arg(value: str):
    """--device takes an index or part of a name."""
    return int(value) if value.lstrip("-").isdigit() else value


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"a shipped model's name or the path to a model's .json (default {DEFAULT_MODEL}; "
                        f"shipped: {', '.join(available_models()) or 'none'})")
    p.add_argument("--backend", default="auto", choices=("auto", "onnxruntime", "tensorrt"),
                   help="inference runtime (default auto: TensorRT with a CUDA GPU, else ONNX Runtime)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for ONNX Runtime (default 1)")
    p.add_argument("--channel", type=int, default=None, metavar="N",
                   help="audio input channel to use, counted from 0 (0 = first/left), instead of the mix "
                        "of all channels (audio channels count from 0; --midi-channel counts from 1)")
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
    li.add_argument("--midi-channel", type=int, default=1, metavar="1-16",
                    help="MIDI channel to send on, counted from 1 as DAWs show it (default 1)")
    li.add_argument("--record", metavar="FILE.mid", default=None, help="write the take to a MIDI file on exit")
    li.add_argument("--record-audio", metavar="FILE.wav", default=None,
                    help="also record the audio rtpitch hears, as it arrives (mono float32 WAV at the input's "
                         "rate; 'rtpitch transcribe' of it gives the take's notes)")
    li.add_argument("--blocksize", type=int, default=0,
                    help="capture block in frames (default: what the device prefers; files: 256)")
    li.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    li.add_argument("-v", "--verbose", action="store_true",
                    help="also print debug lines (the capture clock: audio time 0 on the monotonic clock)")
    li.add_argument("--no-view", action="store_true", help="no live terminal view")
    _add_engine_args(li)

    tr = sub.add_parser("transcribe", help="transcribe audio files (or folders of them) to MIDI files")
    tr.add_argument("inputs", nargs="*", metavar="INPUT",  # '*': `--ray FOLDER` may take the only one
                    help="audio file (WAV, FLAC, OGG, MP3; any rate 8-192 kHz, any channels); several files, "
                         "folders (searched recursively for audio files) or quoted glob patterns transcribe "
                         "an archive, one .mid per file")
    tr.add_argument("-o", "--output", default=None,
                    help="MIDI file to write, for one input (default: input name with .mid)")
    tr.add_argument("--out-dir", metavar="DIR", default=None,
                    help="write the .mid files below DIR, mirroring the inputs' folders (default: beside each input)")
    tr.add_argument("-j", "--jobs", type=int, default=None,
                    help="worker processes (default: the number of cores; with --ray: CPUs of the local instance)")
    tr.add_argument("--overwrite", action="store_true",
                    help="transcribe again files whose .mid exists (default: skip them, so a run resumes)")
    tr.add_argument("--manifest", metavar="FILE", default=None,
                    help=f"JSON-lines record per file (default: {MANIFEST_NAME} in --out-dir, else here)")
    tr.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                    help="run on a Ray cluster (RAY_ADDRESS, ADDRESS, or a new local instance); "
                         "needs pip install 'rtpitch[cluster]'; put it after the inputs or write --ray=ADDRESS")
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


class _StopFlag(threading.Event):
    """The stop event; ``signum`` is the first signal that set it (None: --duration or end of input)."""

    signum: int | None = None


def _install_stop_handlers(stop: _StopFlag) -> None:
    """SIGINT, SIGTERM and SIGHUP end the take cleanly (the run loop sees ``stop``)."""
    def handler(signum, frame):
        if stop.signum is None:
            stop.signum = signum
        stop.set()

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            signal.signal(sig, handler)


def _say(line: str) -> None:
    """Print one line to stderr; a closed terminal (SIGHUP) or pipe must not raise."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def cmd_listen(args) -> int:
    """Live transcription until a signal, --duration, the end of --input, or a fault.

    Exit status: 0 after Ctrl-C (SIGINT), --duration or the end of --input;
    128 + signal number after SIGTERM or SIGHUP; 1 after a fault (the audio
    device or its JACK server went away, a MIDI port failed, the recording
    could not be written where asked, an engine error). In every case the
    MIDI port gets its note-offs and CC 123 where it can, and the take is
    written before anything that could abort the process (see
    :mod:`rtpitch.runner` and :mod:`rtpitch.capture`).
    """
    from .engine import Engine
    from .latency import algorithmic_latency_ms, format_budget, latency_budget
    from .runner import run_stream, warm_up
    from .sinks.midi_file import MidiFileSink
    from .sinks.terminal import TerminalView

    stop = _StopFlag()
    _install_stop_handlers(stop)  # before anything slow: a signal during start-up ends it cleanly
    if not 1 <= args.midi_channel <= 16:
        raise ConfigError(f"--midi-channel must be 1..16, got {args.midi_channel}")
    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration must be > 0 s, got {args.duration:g}")
    for path in (args.record, args.record_audio):
        if path:
            _check_writable(path)
    if args.record_audio:
        from .sinks.audio_file import check_name

        check_name(args.record_audio)
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
    # the file first: sinks are closed in this order, and the take must be on disk
    # before anything that could hang or abort (a dead JACK server)
    sinks = []
    record = None
    if args.record:
        record = MidiFileSink(args.record, channel=args.midi_channel, autosave_s=RECORD_AUTOSAVE_S)
        sinks.append(record)
    if args.midi_out is not None or args.midi_port is not None:
        from .sinks.midi_port import MidiPortSink

        port = MidiPortSink(virtual_name=args.midi_out, port=args.midi_port, channel=args.midi_channel)
        sinks.append(port)
        print(f"MIDI out: {port.describe()}", file=sys.stderr)
    audio = None
    if args.record_audio:
        from .sinks.audio_file import AudioFileRecorder

        audio = AudioFileRecorder(args.record_audio, source.sample_rate)
    engine = Engine(spec, backend, source_rate=source.sample_rate)
    block_s = (args.blocksize or getattr(source, "blocksize", 0) or 256) / source.sample_rate
    terms = latency_budget(engine.stages, capture_block_s=block_s)
    total_ms = sum(ms for _, ms in terms)
    print(f"input: {source_desc}, {source.sample_rate} Hz", file=sys.stderr)
    print(f"model: {spec.name}; latency budget:\n{format_budget(terms)}", file=sys.stderr)
    card_ms = algorithmic_latency_ms(spec)  # what the model's JSON says
    if abs(card_ms - total_ms) >= 0.05:
        print(f"  (the model's card says {card_ms:.1f} ms: 256-sample blocks at 48 kHz, no resampling; "
              f"this input's block and rate make it {total_ms:.1f} ms)", file=sys.stderr)
    view = None
    if not args.no_view:
        view = TerminalView(latency_ms=total_ms, print_notes=args.print_notes or None,
                            pedal=PEDAL_HEAD in spec.outputs)
    elif args.print_notes:  # no live view: only the note lines, on stdout (as transcribe prints them)
        view = TerminalView(stream=sys.stdout, print_notes=True, enabled=False)
    if view is not None:
        sinks.append(view)

    if args.duration is not None:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    warm_up(engine)  # first-call costs now, not while the capture callback waits for the GIL
    print("listening: Ctrl-C to stop", file=sys.stderr)
    summary = run_stream(source, engine, sinks, stop=stop, view=view, keep_events=False, audio_recorder=audio)
    if args.verbose and summary.origin_monotonic_s is not None:
        # audio time 0 on the wall clock: lets a test or benchmark align the
        # take's audio-time stamps with another clock (see tests/test_e2e_jack.py)
        _say(f"capture clock: audio time 0 = monotonic {summary.origin_monotonic_s:.6f} s")
    code = report(summary, record, stop_signal=stop.signum, audio=audio)
    if summary.source_lost:
        # PortAudio cannot be shut down once its JACK server is gone (pa_jack.c
        # asserts in Pa_Terminate; Pa_StopStream waits 10 minutes): the take is
        # written and reported, so end here without the interpreter's exit handlers
        _hard_exit(code)
    return code


def cmd_transcribe(args) -> int:
    """One file (``-o``, the original path) or an archive (:func:`cmd_transcribe_many`)."""
    from .archive import is_pattern

    if isinstance(args.ray, str) and (os.path.exists(args.ray) or is_pattern(args.ray)):
        args.inputs.insert(0, args.ray)  # `--ray archive/`: argparse took the input for the address
        args.ray = True
    if args.ray == "":  # --ray=
        args.ray = True
    if not args.inputs:
        raise ConfigError("transcribe needs an input: an audio file, a folder or a glob pattern")
    one = args.inputs[0]
    archive_options = (args.out_dir, args.jobs, args.ray, args.manifest) != (None, None, None, None)
    if len(args.inputs) == 1 and not archive_options and (args.output is not None or not
                                                           (os.path.isdir(one) or is_pattern(one))):
        args.input = one  # one file: the original path and its lines (a folder with -o: its error)
        return _transcribe_one_file(args)
    return cmd_transcribe_many(args)


def cmd_transcribe_many(args) -> int:
    """Many files: a progress bar, an error line per failed file, a summary; exit 1 if any failed."""
    from .archive import format_hours, transcribe_many
    from .backends import resolve_backend

    if args.output is not None:
        raise ConfigError("-o/--output names the MIDI file of one input; for several use --out-dir DIR")
    if args.print_notes:
        raise ConfigError("--print-notes works with one input only")
    manifest = args.manifest or os.path.join(args.out_dir or ".", MANIFEST_NAME)
    if args.ray is None:
        print(f"backend: {resolve_backend(args.backend)[1]}", file=sys.stderr)
    else:
        where = "RAY_ADDRESS or a new local instance" if args.ray is True else args.ray
        print(f"backend: {resolve_backend(args.backend)[1]} on each Ray worker ({where})", file=sys.stderr)
    t0 = time.monotonic()
    # SIGTERM (a batch scheduler, `kill`) stops the run as Ctrl-C does: the workers are ended with it
    terminated = _StopFlag()
    previous = _raise_on_sigterm(terminated)
    try:
        results = transcribe_many(args.inputs, out_dir=args.out_dir, jobs=args.jobs, model=args.model,
                                  backend=args.backend, threads=args.threads, channel=args.channel,
                                  overwrite=args.overwrite, manifest=manifest, ray=args.ray or False,
                                  progress=True, log=_say)
    except KeyboardInterrupt:
        if terminated.signum is None:
            raise
        _say("rtpitch: stopped by SIGTERM")
        return 128 + int(signal.SIGTERM)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    wall = time.monotonic() - t0
    done = [r for r in results if r.status == "done"]
    skipped = sum(r.status == "skipped" for r in results)
    failed = sum(r.status == "failed" for r in results)
    audio = sum(r.duration_s or 0.0 for r in done)
    speed = audio / max(wall, 1e-9)
    line = (f"transcribed {len(done)} of {len(results)} files ({format_hours(audio)} of audio) in {wall:.1f} s: "
            f"{speed:.1f} h of audio per hour")
    if skipped:
        line += f"; skipped {skipped} (output exists; --overwrite to redo)"
    if failed:
        line += f"; {failed} failed"
    _say(line)
    _say(f"manifest: {manifest}")
    return 1 if failed else 0


def _raise_on_sigterm(flag: _StopFlag):
    """SIGTERM raises KeyboardInterrupt (``flag.signum`` set); returns the handler it replaced (None: not
    installed, outside the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        flag.signum = signum
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _transcribe_one_file(args) -> int:
    from .runner import transcribe_file
    from .sinks.midi_file import MidiFileSink
    from .sinks.terminal import TerminalView

    from .filesource import FileSource

    spec = load_model_spec(args.model)
    output = args.output or os.path.splitext(args.input)[0] + ".mid"
    _check_writable(output)
    FileSource(args.input, realtime=False, channel=args.channel).stop()  # input errors before the backend line
    backend = _make_backend(args, spec)
    out = MidiFileSink(output)
    sinks = [out]
    if args.print_notes:
        sinks.append(TerminalView(stream=sys.stdout, print_notes=True, enabled=False))
    summary = transcribe_file(args.input, spec, backend, channel=args.channel, sinks=sinks, raise_errors=False)
    rtf = summary.wall_s / max(summary.audio_s, 1e-9)
    return report(summary, out, partial_note="partial: ",
                   speed=f"in {summary.wall_s:.2f} s, real-time factor {rtf:.3f}")


RECORD_AUTOSAVE_S = 30.0  # listen --record: rewrite the take this often (s) while notes come


def _check_writable(path: str) -> None:
    if os.path.isdir(path):
        raise ConfigError(f"cannot write {path}: it is a folder; give a file name (e.g. {os.path.join(path, 'take.mid')})")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"cannot write {path}: folder {folder} is not writable")


def report(summary, record=None, *, stop_signal: int | None = None, partial_note: str = "", audio=None,
            speed: str | None = None) -> int:
    """Print the closing lines and return the exit status (see :func:`cmd_listen`).

    One summary line: notes and audio, then ``speed`` (a file: how fast it was
    transcribed) or, live, what the capture lost (overruns, input overflows).
    ``record``: the MidiFileSink of the take (or None); ``audio``: the
    AudioFileRecorder (or None). Faults come next, one ``rtpitch: error:``
    line each; the last line says where the notes went.
    """
    if speed is not None:
        _say(f"{summary.notes} notes in {summary.audio_s:.1f} s of audio ({speed})")
    else:
        overflows = f"; input overflows: {summary.input_overflows} callbacks" if summary.input_overflows else ""
        _say(f"{summary.notes} notes in {summary.audio_s:.1f} s of audio; "
             f"overruns: {summary.overrun_samples} samples dropped ({summary.overrun_blocks} blocks){overflows}")
    if summary.nonfinite_samples:
        _say(f"warning: {summary.nonfinite_samples} NaN/Inf input samples were replaced by 0")
    for err in summary.errors + summary.sink_errors:
        _say(f"rtpitch: error: {err}")
    if os.environ.get("RTPITCH_DEBUG") and summary.failure is not None:
        from .runner import format_failure

        _say(format_failure(summary).rstrip())
    if audio is not None and audio.error is None:
        _say(f"wrote {audio.path} ({audio.samples_written / audio.sample_rate:.1f} s of audio)")
    if record is not None and record.saved_path is not None:
        partial = partial_note if summary.errors else ""
        if record.saved_path == record.path:
            _say(f"wrote {record.path}" + (f" ({partial}up to {summary.audio_s:.1f} s)" if partial else ""))
        # else: the MidiError line above says where the rescue copy went
    if not summary.ok:
        return 1
    if stop_signal is not None and stop_signal != signal.SIGINT:
        _say(f"rtpitch: stopped by {signal.Signals(stop_signal).name}")
        return 128 + int(stop_signal)
    return 0


def _hard_exit(code: int) -> None:
    """Flush what was printed and end the process now (no exit handlers)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def cmd_bench(args) -> int:
    from .bench import main as bench_main

    return bench_main(args)


COMMANDS = {"devices": cmd_devices, "listen": cmd_listen, "transcribe": cmd_transcribe, "bench": cmd_bench}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
    except RtpitchError as err:
        _say(f"rtpitch: error: {err}")
        code = 1
    except KeyboardInterrupt:
        _say("rtpitch: interrupted")
        code = 130
    _flush_stdout()
    return code


def _flush_stdout() -> None:
    """A reader that went away (``rtpitch ... | head``) must not turn into a
    traceback at interpreter exit: flush now, and on a broken pipe point
    stdout at /dev/null."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    sys.exit(main())
