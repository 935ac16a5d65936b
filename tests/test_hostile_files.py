"""Hostile files and settings through ``rtpitch transcribe``: a clear one-line
error (exit 1) or a correct result, never a traceback or a hang.

The full matrix runs the CLI in-process (``rtpitch.cli.main``, stderr
captured; an exception escaping ``main`` fails the test); a representative
set also runs as a real subprocess, where an exit-time crash or a hang would
show. Files are short and generated in tmp_path with soundfile.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from fakes import make_wired_model, tone
from rtpitch.cli import main
from rtpitch.model import MODELS_DIR
from rtpitch.sinks.midi_file import read_midi_notes

REPO = Path(__file__).resolve().parent.parent
SECONDS = 2.0


@pytest.fixture(scope="module")
def wired(tmp_path_factory) -> str:
    return str(make_wired_model(tmp_path_factory.mktemp("wired")))


def piano(rate: int, seconds: float = SECONDS) -> np.ndarray:
    """Piano from the bundled demo recording at ``rate`` (mono float32)."""
    import soxr

    x, sr = sf.read(REPO / "benchmarks" / "audio" / "demo.flac", dtype="float32",
                    frames=int(seconds * 44100), always_2d=True)
    return soxr.resample(x[:, 0], sr, rate).astype(np.float32)


def run_cli(args, capsys) -> tuple[int, list[str]]:
    """``rtpitch transcribe ...`` in-process: (exit status, stderr lines)."""
    code = main(["transcribe", *map(str, args)])
    err = capsys.readouterr().err
    return code, err.strip().splitlines()


def run_subprocess(args) -> tuple[int, list[str]]:
    res = subprocess.run([sys.executable, "-m", "rtpitch", "transcribe", *map(str, args)], cwd=REPO,
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in res.stderr, res.stderr
    return res.returncode, res.stderr.strip().splitlines()


def audio_seconds(lines: list[str]) -> float:
    """The seconds of audio that transcribe's one summary line reports."""
    found = [re.match(r"\d+ notes in ([0-9.]+) s of audio \(in [0-9.]+ s, real-time factor", line) for line in lines]
    found = [m for m in found if m]
    assert len(found) == 1, lines
    assert not any("overrun" in line for line in lines), lines  # a file cannot overrun
    return float(found[0].group(1))


def one_error(code: int, lines: list[str]) -> str:
    """The single ``rtpitch: error:`` line of a failed run."""
    errors = [line for line in lines if line.startswith("rtpitch: error:")]
    assert code == 1, lines
    assert len(errors) == 1, lines
    return errors[0]


# -- broken files -------------------------------------------------------------------------------
def _write(path: Path, fmt: str | None = None, subtype: str | None = None, rate: int = 16000, x=None):
    x = piano(rate) if x is None else x
    sf.write(path, x, rate, format=fmt, subtype=subtype)
    return path


def _put(path: Path, data) -> Path:
    """Write bytes or text to ``path``; return the path."""
    if isinstance(data, str):
        path.write_text(data)
    else:
        path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def _truncate(path: Path, keep: float) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


BROKEN = {
    # name: (make(tmp) -> path, expected: "error text" or None for a result)
    "empty-file.wav": (lambda t: _put(t / "empty.wav", b""), "the file is empty (0 bytes)"),
    "no-samples.wav": (lambda t: _write(t / "ns.wav", x=np.zeros(0, np.float32)), "contains no audio samples"),
    "random-bytes.wav": (lambda t: _put(t / "r.wav", np.random.default_rng(0).bytes(20000)), "cannot read audio"),
    "random-bytes.flac": (lambda t: _put(t / "r.flac", np.random.default_rng(1).bytes(20000)), "cannot read audio"),
    "random-bytes.mp3": (lambda t: _put(t / "r.mp3", np.random.default_rng(2).bytes(20000)), "cannot read audio"),
    "text.ogg": (lambda t: _put(t / "t.ogg", "not audio\n" * 100), "cannot read audio"),
    "riff-header-only.wav": (lambda t: _truncate(_write(t / "h.wav"), 0.0005), "cannot read audio"),
    "folder.wav": (lambda t: _mkdir(t / "dir.wav"), "is a folder"),
    "missing.wav": (lambda t: t / "nope.wav", "file not found"),
    "4kHz.wav": (lambda t: _write(t / "slow.wav", rate=4000, x=np.zeros(8000, np.float32)),
                 "sample rate 4000 Hz outside 8000-192000 Hz"),
    "384kHz.wav": (lambda t: _write(t / "fast.wav", rate=384000, x=np.zeros(38400, np.float32)),
                   "sample rate 384000 Hz outside 8000-192000 Hz"),
}
# files that still hold audio: a result (whatever could be decoded) or a one-line error
DAMAGED = {
    "truncated.wav": lambda t: _truncate(_write(t / "tr.wav"), 0.5),
    "truncated.flac": lambda t: _truncate(_write(t / "tr.flac"), 0.5),
    "truncated.ogg": lambda t: _truncate(_write(t / "tr.ogg", subtype="VORBIS"), 0.5),
    "truncated.mp3": lambda t: _truncate(_write(t / "tr.mp3", fmt="MP3", subtype="MPEG_LAYER_III"), 0.5),
    "garbage-inside.flac": lambda t: _corrupt_middle(_write(t / "gm.flac")),
    "garbage-inside.mp3": lambda t: _corrupt_middle(_write(t / "gm.mp3", fmt="MP3", subtype="MPEG_LAYER_III")),
    "garbage-inside.ogg": lambda t: _corrupt_middle(_write(t / "gm.ogg", subtype="VORBIS")),
}


def _corrupt_middle(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 2000] = np.random.default_rng(3).bytes(2000)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_file_one_line(case, tmp_path, capsys):
    make, expect = BROKEN[case]
    path = make(tmp_path)
    code, lines = run_cli([path, "-o", tmp_path / "out.mid", "--model", "seed-cnn"], capsys)
    assert expect in one_error(code, lines)
    assert not any(line.startswith("backend:") for line in lines), lines  # no backend before an input error
    assert not (tmp_path / "out.mid").exists()


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_damaged_file_result_or_one_line(case, tmp_path, capsys, wired):
    """A damaged file gives the notes of what could be decoded (exit 0), or one
    error line naming the file and, if notes were written, 'partial' (exit 1).

    Exit 0 with less audio happens where the file itself claims no more: a WAV
    cut short (libsndfile takes the length from the file size) or an Ogg stream
    whose page chain breaks (its length is read from the last page it can
    reach). Where the file announces more than decodes (FLAC, MP3), rtpitch says
    'decoding stopped at X s of Y s'."""
    path = DAMAGED[case](tmp_path)
    out = tmp_path / "out.mid"
    code, lines = run_cli([path, "-o", out, "--model", wired], capsys)
    if code == 0:
        assert f"wrote {out}" in lines, lines
        read_midi_notes(out)
        seconds = audio_seconds(lines)
        assert 0 < seconds <= SECONDS + 0.05, lines
        print(f"{case}: exit 0, {seconds:.2f} s of {SECONDS:.2f} s decoded")
    else:
        err = one_error(code, lines)
        assert path.name in err, err
        print(f"{case}: exit 1, {err}")
        if out.exists():
            assert any(line.startswith(f"wrote {out} (partial: up to") for line in lines), lines


@pytest.mark.parametrize("fmt, suffix, kw", [
    ("FLAC", ".wav", {}), ("WAV", ".mp3", {"subtype": "PCM_16"}), ("OGG", ".flac", {"subtype": "VORBIS"}),
    ("MP3", ".ogg", {"subtype": "MPEG_LAYER_III"})], ids=["flac-as-wav", "wav-as-mp3", "ogg-as-flac", "mp3-as-ogg"])
def test_mislabelled_file_is_read_by_content(fmt, suffix, kw, tmp_path, capsys, wired):
    """The name's extension lies: libsndfile goes by the content, and the notes
    are those of the same file correctly named."""
    real = tmp_path / f"real.{fmt.lower()}"
    _write(real, fmt=fmt, **kw)
    liar = tmp_path / f"liar{suffix}"
    shutil.copy(real, liar)
    notes = {}
    for path in (real, liar):
        out = tmp_path / f"{path.stem}.mid"
        code, lines = run_cli([path, "-o", out, "--model", wired], capsys)
        assert code == 0, lines
        notes[path.name] = read_midi_notes(out)
    assert notes[real.name] == notes[liar.name]


# -- rates and channels -------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 96000, 192000])
def test_any_rate_8k_to_192k(rate, tmp_path, capsys, wired):
    path = _write(tmp_path / f"r{rate}.flac" if rate <= 96000 else tmp_path / f"r{rate}.wav", rate=rate)
    out = tmp_path / "out.mid"
    code, lines = run_cli([path, "-o", out, "--model", wired], capsys)
    assert code == 0, lines
    assert audio_seconds(lines) == pytest.approx(SECONDS, abs=0.05), lines
    read_midi_notes(out)


@pytest.mark.parametrize("channels", [2, 3, 6, 8])
def test_channels_downmix_and_pick(channels, tmp_path, capsys, wired):
    """1 to 8 channels: the downmix of N copies of a signal gives exactly the notes
    of the mono file; --channel picks one; a channel that does not exist is one line."""
    rate = 22050
    x = piano(rate)
    mono = _write(tmp_path / "mono.wav", rate=rate, subtype="FLOAT", x=x)
    multi = tmp_path / "multi.wav"
    other = tone(rate, SECONDS, [(0.1, 1.9)], freq=1000.0)
    sf.write(multi, np.stack([x] * (channels - 1) + [x], axis=1), rate, subtype="FLOAT")
    picked = tmp_path / "picked.wav"
    sf.write(picked, np.stack([other] * (channels - 1) + [x], axis=1), rate, subtype="FLOAT")
    got = {}
    for name, path, extra in (("mono", mono, []), ("multi", multi, []),
                              ("picked", picked, ["--channel", str(channels - 1)])):
        out = tmp_path / f"{name}.mid"
        code, lines = run_cli([path, "-o", out, "--model", wired, *extra], capsys)
        assert code == 0, lines
        got[name] = read_midi_notes(out)
    assert got["multi"] == got["mono"] == got["picked"]
    assert got["mono"], "the wired model plays notes on piano"
    code, lines = run_cli([multi, "-o", tmp_path / "x.mid", "--model", "seed-cnn", "--channel", str(channels)], capsys)
    assert f"channel {channels} does not exist" in one_error(code, lines)


# -- model files ----------------------------------------------------------------------------------
def _model_copy(tmp: Path, edit=None, *, onnx_bytes: bytes | None = None, name: str = "m") -> Path:
    meta = json.loads((MODELS_DIR / "seed-cnn.json").read_text())
    meta["onnx"] = f"{name}.onnx"
    (tmp / f"{name}.onnx").write_bytes(onnx_bytes if onnx_bytes is not None else (MODELS_DIR / "seed-cnn.onnx").read_bytes())
    if "streaming" in meta:  # the step graph, unchanged, beside it
        shutil.copy(MODELS_DIR / meta["streaming"]["onnx"], tmp / meta["streaming"]["onnx"])
    if edit is not None:
        edit(meta)
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(meta) if isinstance(meta, dict) else meta)
    return path


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _garbage_onnx_matching_hash(meta):
    meta["onnx_sha256"] = _sha(b"\x08\x07garbage")


MODEL_CASES = {
    "missing": (lambda t: "no-such-model", "model 'no-such-model' not found"),
    "json-not-json": (lambda t: _put(t / "bad.json", "{not json"), "is not a valid model description"),
    "json-missing-key": (lambda t: _model_copy(t, lambda m: m.pop("frontend")), "is not a valid model description"),
    "json-bad-decoder": (lambda t: _model_copy(t, lambda m: m.update(decoder={"bogus": 1})),
                         "is not a valid model description"),
    "json-bad-frontend": (lambda t: _model_copy(t, lambda m: m["frontend"].update(n_fft=2047)),
                          "is not a valid model description"),
    "onnx-missing": (lambda t: (_model_copy(t), (t / "m.onnx").unlink())[0], "cannot read"),
    "onnx-corrupt": (lambda t: _model_copy(t, onnx_bytes=(MODELS_DIR / "seed-cnn.onnx").read_bytes()[:5000]),
                     "does not match the sha256 in its JSON"),
    "onnx-garbage-hash-ok": (lambda t: _model_copy(t, _garbage_onnx_matching_hash, onnx_bytes=b"\x08\x07garbage"),
                             "onnxruntime cannot load"),
    "json-n-mels-disagree": (lambda t: _model_copy(t, lambda m: m["frontend"].update(n_mels=128)),
                             "mel bins, JSON says 128"),
    "json-output-disagrees": (lambda t: _model_copy(t, lambda m: m["outputs"].update(onset="onsets")),
                              "has no output 'onsets'"),
    "json-input-disagrees": (lambda t: _model_copy(t, lambda m: m.update(input="audio")), "has no input 'audio'"),
    "json-window-disagrees": (lambda t: _model_copy(t, lambda m: m["window"].update(frames=10, lookahead_frames=4)),
                              "window"),
    "json-lookahead-too-big": (lambda t: _model_copy(t, lambda m: m["window"].update(lookahead_frames=20)),
                               "lookahead_frames must be in [0, window_frames)"),
}


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_bad_model_one_line(case, tmp_path, capsys):
    make, expect = MODEL_CASES[case]
    model = make(tmp_path)
    audio = _write(tmp_path / "a.wav", x=np.zeros(16000, np.float32))
    code, lines = run_cli([audio, "-o", tmp_path / "out.mid", "--model", model], capsys)
    assert expect in one_error(code, lines)


# -- the same through a real process --------------------------------------------------------------
@pytest.mark.slow
def test_subprocess_representatives(tmp_path, wired):
    """A few of the above as a user runs them: exit status, one line, no traceback."""
    cases = [
        ([BROKEN["empty-file.wav"][0](tmp_path)], "the file is empty (0 bytes)"),
        ([DAMAGED["truncated.flac"](tmp_path)], None),
        ([_model_copy(tmp_path, onnx_bytes=b"junk")], "does not match the sha256"),
    ]
    x8 = np.stack([piano(192000)] * 8, axis=1)
    big = tmp_path / "big.wav"
    sf.write(big, x8, 192000, subtype="PCM_24")
    for args, expect in cases:
        path = args[0]
        if path.suffix == ".json":
            args = [_write(tmp_path / "z.wav", x=np.zeros(16000, np.float32)), "--model", path]
        else:
            args = [path, "--model", wired]
        code, lines = run_subprocess([*args, "-o", tmp_path / "out.mid"])
        if expect is not None:
            assert expect in one_error(code, lines)
        else:
            assert code in (0, 1), lines
    code, lines = run_subprocess([big, "-o", tmp_path / "big.mid", "--model", wired])
    assert code == 0, lines
    assert audio_seconds(lines) == pytest.approx(SECONDS, abs=0.05), lines


# -- settings ---------------------------------------------------------------------------------------
@pytest.fixture
def keep_signal_handlers():
    """``listen`` installs SIGINT/SIGTERM/SIGHUP handlers: give pytest its own back."""
    import signal

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


@pytest.mark.parametrize("args, message", [
    (["transcribe", "{audio}", "--threads", "0"], "threads must be >= 1"),
    (["transcribe", "{audio}", "--channel", "-1"], "channel -1 does not exist"),
    (["transcribe", "{audio}", "--backend", "tensorrt"], "rtpitch[tensorrt]"),
    (["listen", "--input", "{audio}", "--midi-channel", "0"], "--midi-channel must be 1..16"),
    (["listen", "--input", "{audio}", "--duration", "-1"], "--duration must be > 0 s"),
    (["listen", "--input", "{audio}", "--blocksize", "-5"], "blocksize must be > 0"),
    (["listen", "--input", "{audio}", "--record", "{tmp}/no/take.mid"], "does not exist"),
], ids=["threads-0", "channel-neg", "tensorrt-missing", "midi-channel-0", "duration-neg", "blocksize-neg",
        "record-folder-missing"])
def test_bad_setting_one_line(args, message, tmp_path, capsys, keep_signal_handlers):
    audio = _write(tmp_path / "a.wav", x=np.zeros(16000, np.float32))
    argv = [a.format(audio=audio, tmp=tmp_path) for a in args] + ["--model", "seed-cnn"]
    argv += ["-o", str(tmp_path / "o.mid")] if args[0] == "transcribe" else ["--no-view"]
    if "tensorrt" in args:
        import importlib.util

        if importlib.util.find_spec("tensorrt") is not None:
            pytest.skip("TensorRT is installed here")
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert message in one_error(code, err), err


def test_nan_inf_samples_zeroed_and_reported(tmp_path, capsys):
    x = piano(16000)
    x[::1000] = np.nan
    x[7::1000] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    code, lines = run_cli([path, "-o", tmp_path / "out.mid", "--model", "seed-cnn"], capsys)
    assert code == 0, lines
    n = int(np.ceil(x.shape[0] / 1000)) + int(np.ceil((x.shape[0] - 7) / 1000))
    assert f"warning: {n} NaN/Inf input samples were replaced by 0" in lines
