"""``rtpitch transcribe`` of many files (:mod:`rtpitch.archive`, :mod:`rtpitch.archive_ray`).

Short real piano audio (the 4-second madmom fixture in ``RTPITCH_SHARED_DATA``,
default ``<repo>/../shared/data``) is copied into trees under tmp_path. The
outputs of an archive run must be the bytes the one-file command writes,
whatever the number of processes or Ray workers; a bad file fails alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from rtpitch import archive
from rtpitch.archive import MANIFEST_NAME, find_inputs, plan, transcribe_many
from rtpitch.cli import main
from rtpitch.errors import ClusterError, ConfigError
from rtpitch.sinks.midi_file import read_midi_notes

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("RTPITCH_SHARED_DATA") or REPO.parent / "shared" / "data")
FIXTURE = SHARED_DATA / "fixtures" / "madmom" / "stereo_sample"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not FIXTURE.with_suffix(".wav").is_file(),
                       reason=f"shared test data absent ({FIXTURE}.wav); set RTPITCH_SHARED_DATA"),
]


def make_tree(root: Path) -> list[str]:
    """An archive: three audio files in nested folders, plus things that are not audio."""
    (root / "a").mkdir(parents=True)
    (root / "b" / "c").mkdir(parents=True)
    shutil.copy(FIXTURE.with_suffix(".wav"), root / "a" / "one.wav")
    shutil.copy(FIXTURE.with_suffix(".flac"), root / "b" / "c" / "two.flac")
    shutil.copy(FIXTURE.with_suffix(".wav"), root / "b" / "three.WAV")
    (root / "notes.txt").write_text("not audio\n")
    (root / "b" / "._one.wav").write_bytes(b"\0" * 100)  # macOS resource fork: hidden, left out
    return ["a/one", "b/c/two", "b/three"]


def mids(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out).with_suffix("")): p.read_bytes() for p in sorted(out.rglob("*.mid"))}


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def cli(argv, capsys) -> tuple[int, list[str]]:
    code = main(["transcribe", *map(str, argv)])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> bytes:
    """The one-file command's output for the fixture (the reference bytes)."""
    out = tmp_path_factory.mktemp("single") / "take.mid"
    assert main(["transcribe", str(FIXTURE.with_suffix(".wav")), "-o", str(out)]) == 0
    return out.read_bytes()


def test_folder_mirrored_with_manifest(tmp_path, single, capsys, monkeypatch):
    expected = make_tree(tmp_path / "in")
    monkeypatch.setattr(archive._Progress, "LOG_EVERY_S", 0.0)  # not a terminal: a progress line per file
    code, lines = cli([tmp_path / "in", "--out-dir", tmp_path / "out", "--jobs", "1"], capsys)
    assert code == 0, lines
    got = mids(tmp_path / "out")
    assert sorted(got) == sorted(expected)
    assert all(data == single for data in got.values())  # the same bytes as `transcribe FILE -o OUT`
    manifest = rows(tmp_path / "out" / MANIFEST_NAME)
    assert [Path(r["input"]).relative_to(tmp_path / "in").as_posix() for r in manifest] == \
        ["a/one.wav", "b/three.WAV", "b/c/two.flac"]
    for r in manifest:
        assert r["status"] == "done" and r["error"] is None
        assert r["duration_s"] == pytest.approx(4.1478, abs=1e-3)
        assert r["notes"] == len(read_midi_notes(r["output"])) > 0
        assert r["rtf"] == pytest.approx(r["wall_s"] / r["duration_s"], rel=1e-3)
    assert lines[0].startswith("backend: ")
    assert lines[1].startswith("progress: 1/3 files, 0.1 min of audio, ") and "x real time" in lines[1], lines
    assert lines[3].startswith("progress: 3/3 files, 0.2 min of audio, "), lines
    assert lines[-2].startswith("transcribed 3 of 3 files (0.2 min of audio)"), lines
    assert lines[-1] == f"manifest: {tmp_path / 'out' / MANIFEST_NAME}"


def test_one_file_command_unchanged(tmp_path, capsys):
    """A single file without archive options keeps the one-file path and its lines."""
    shutil.copy(FIXTURE.with_suffix(".wav"), tmp_path / "take.wav")
    code, lines = cli([tmp_path / "take.wav"], capsys)
    assert code == 0
    assert lines[-1] == f"wrote {tmp_path / 'take.mid'}"
    assert " notes in 4.1 s of audio (in " in lines[-2] and "real-time factor" in lines[-2], lines
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_skip_overwrite_resume(tmp_path):
    make_tree(tmp_path / "in")
    out = tmp_path / "out"
    first = transcribe_many(tmp_path / "in", out_dir=out, jobs=1, manifest=out / "m.jsonl")  # one path
    assert [r.status for r in first] == ["done"] * 3
    # a killed run: one output never written, a temporary file left behind; another output changed by hand
    (out / "b" / "three.mid").unlink()
    (out / "b" / ".three.mid.x.tmp").write_bytes(b"partial")
    (out / "a" / "one.mid").write_bytes(b"kept")
    second = transcribe_many([tmp_path / "in"], out_dir=out, jobs=1, manifest=out / "m.jsonl")
    assert [r.status for r in second] == ["skipped", "done", "skipped"]
    assert (out / "a" / "one.mid").read_bytes() == b"kept"
    assert (out / "b" / "three.mid").read_bytes() == (out / "b" / "c" / "two.mid").read_bytes()
    # a skipped file keeps the figures of the run that made it
    assert second[0].duration_s == pytest.approx(first[0].duration_s, abs=1e-3) and second[0].notes == first[0].notes
    assert [r["status"] for r in rows(out / "m.jsonl")] == ["skipped", "done", "skipped"]
    third = transcribe_many([tmp_path / "in"], out_dir=out, jobs=1, manifest=out / "m.jsonl", overwrite=True)
    assert [r.status for r in third] == ["done"] * 3
    assert (out / "a" / "one.mid").read_bytes() == (out / "b" / "three.mid").read_bytes()


def test_bad_files_fail_alone(tmp_path, single, capsys):
    make_tree(tmp_path / "in")
    (tmp_path / "in" / "a" / "empty.wav").write_bytes(b"")
    (tmp_path / "in" / "b" / "text.flac").write_text("not audio\n" * 50)
    out = tmp_path / "out"
    code, lines = cli([tmp_path / "in", "--out-dir", out, "-j", "1"], capsys)
    assert code == 1
    errors = [line for line in lines if line.startswith("rtpitch: error:")]
    assert len(errors) == 2, lines
    assert any(f"{tmp_path / 'in' / 'a' / 'empty.wav'}: the file is empty (0 bytes)" in e for e in errors), errors
    assert "2 failed" in lines[-2] and "transcribed 3 of 5 files" in lines[-2], lines
    assert sorted(mids(out)) == ["a/one", "b/c/two", "b/three"]  # no output for a failed file
    failed = {Path(r["input"]).name: r for r in rows(out / MANIFEST_NAME) if r["status"] == "failed"}
    assert sorted(failed) == ["empty.wav", "text.flac"]
    assert all(r["error"] and r["notes"] is None and not Path(r["output"]).exists() for r in failed.values())
    # the next run retries only the failed files (and they fail again)
    code, lines = cli([tmp_path / "in", "--out-dir", out, "-j", "1"], capsys)
    assert code == 1 and "transcribed 0 of 5 files" in lines[-2] and "skipped 3" in lines[-2], lines


def test_jobs_2_same_outputs_as_jobs_1(tmp_path, single, capsys):
    make_tree(tmp_path / "in")
    (tmp_path / "in" / "a" / "empty.wav").write_bytes(b"")
    code, lines = cli([tmp_path / "in", "--out-dir", tmp_path / "out2", "--jobs", "2"], capsys)
    assert code == 1, lines
    got = mids(tmp_path / "out2")
    assert sorted(got) == ["a/one", "b/c/two", "b/three"] and all(v == single for v in got.values())
    manifest = rows(tmp_path / "out2" / MANIFEST_NAME)
    assert [r["status"] for r in manifest] == ["failed", "done", "done", "done"]
    assert manifest[0]["error"] == "the file is empty (0 bytes)"


def test_inputs_files_globs_and_outputs_beside(tmp_path, capsys):
    make_tree(tmp_path / "in")
    shutil.copy(FIXTURE.with_suffix(".flac"), tmp_path / "in" / "a" / "one.flac")  # same output as one.wav
    files, root = find_inputs([tmp_path / "in" / "a" / "one.wav", str(tmp_path / "in" / "**" / "*.flac"),
                               tmp_path / "in" / "a"])
    assert [Path(f).relative_to(tmp_path / "in").as_posix() for f in files] == \
        ["a/one.wav", "a/one.flac", "b/c/two.flac"]
    assert root == str(tmp_path / "in")
    # no --out-dir: each .mid beside its input; the second input with one output fails alone
    code, lines = cli([tmp_path / "in" / "a", "--manifest", tmp_path / "m.jsonl"], capsys)
    assert code == 1
    assert (tmp_path / "in" / "a" / "one.mid").exists()
    assert any("one.wav: same output as" in line for line in lines), lines
    # a glob's folder before the wildcard is its root
    tasks = plan([str(tmp_path / "in" / "b" / "*")], out_dir=tmp_path / "o")
    assert [Path(t.output).relative_to(tmp_path / "o").as_posix() for t in tasks] == ["c/two.mid", "three.mid"]


def test_worker_death_takes_no_other_file(monkeypatch):
    """A worker that dies (faked pool): the files beside it run again alone; the one that kills alone fails."""
    import concurrent.futures as cf
    from concurrent.futures.process import BrokenProcessPool

    from rtpitch.archive import Settings, Transcript, _run_local

    class FakePool:
        current = None
        made = 0

        def __init__(self, max_workers, **_):
            self.pending = []
            FakePool.current = self
            FakePool.made += 1

        def submit(self, fn, path, settings):
            fut = cf.Future()
            self.pending.append((fut, path))
            return fut

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    def fake_wait(futures, return_when):
        pool = FakePool.current
        crash = any(path == "killer" for _, path in pool.pending)
        for fut, path in pool.pending:
            if crash:
                fut.set_exception(BrokenProcessPool("a child process terminated abruptly"))
            else:
                fut.set_result(Transcript(duration_s=1.0, notes=1, midi=path.encode()))
        pool.pending = []
        return set(futures), set()

    monkeypatch.setattr(cf, "ProcessPoolExecutor", FakePool)
    monkeypatch.setattr(cf, "wait", fake_wait)
    work = list(enumerate(["a", "killer", "c", "d", "e"]))
    got = {}
    _run_local(work, Settings(), lambda i, tr: got.__setitem__(work[i][1], tr), jobs=2)
    assert sorted(got) == ["a", "c", "d", "e", "killer"]
    assert got["killer"].midi is None and "died while transcribing this file alone" in got["killer"].error
    assert all(got[k].error is None and got[k].midi == k.encode() for k in "acde")
    assert FakePool.made == 3  # a new pool after each death


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads child processes from /proc (Linux)")
def test_sigterm_ends_workers_at_once(tmp_path):
    """SIGTERM in the middle of files: exit 143 within seconds, no worker left running."""
    import subprocess
    import time

    import soundfile as sf

    x, rate = sf.read(FIXTURE.with_suffix(".wav"), dtype="float32")
    for name in ("long1.wav", "long2.wav"):
        sf.write(tmp_path / name, np.concatenate([x] * 30), rate)  # 2 min each: seconds of work
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-m", "rtpitch", "transcribe", str(tmp_path / "long1.wav"),
                             str(tmp_path / "long2.wav"), "--out-dir", str(tmp_path / "out"), "--jobs", "2"],
                            cwd=REPO, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(_children(proc.pid)) < 3 and time.monotonic() < deadline:  # 2 workers + resource tracker
        time.sleep(0.1)
    workers = _children(proc.pid)
    time.sleep(1.0)  # the workers have files now
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=20)[1]
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.strip().splitlines()[-1] == "rtpitch: stopped by SIGTERM", err
    time.sleep(0.5)
    alive = [w for w in workers if os.path.exists(f"/proc/{w}") and "Z" not in
             Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0]]
    assert not alive, f"workers still running after SIGTERM: {alive}"


@pytest.mark.parametrize("argv, message", [
    (["{tmp}/nope"], "nope: no such file or folder"),
    (["{tmp}/*.ogg", "--out-dir", "{tmp}/o"], "no audio files match this pattern"),
    (["{tmp}/empty"], "no audio files in this folder"),
    (["{tmp}/x.wav", "{tmp}/x.wav", "-o", "{tmp}/x.mid"], "for several use --out-dir DIR"),
    (["{tmp}/x.wav", "--jobs", "0"], "--jobs must be >= 1"),
], ids=["missing", "glob-none", "empty-folder", "output-with-many", "jobs-0"])
def test_bad_arguments_one_line(argv, message, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    shutil.copy(FIXTURE.with_suffix(".wav"), tmp_path / "x.wav")
    argv = [a.format(tmp=tmp_path) for a in argv]
    if argv[0].endswith("nope"):
        argv += ["--out-dir", str(tmp_path / "o")]  # an archive run (one missing file alone is the one-file path)
    code, lines = cli(argv, capsys)
    errors = [line for line in lines if line.startswith("rtpitch: error:")]
    assert code == 1 and len(errors) == 1 and message in errors[0], lines


def test_ray_missing_names_the_extra(tmp_path, monkeypatch, capsys):
    shutil.copy(FIXTURE.with_suffix(".wav"), tmp_path / "x.wav")
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(ClusterError, match=r"pip install 'rtpitch\[cluster\]'"):
        transcribe_many([tmp_path / "x.wav"], out_dir=tmp_path / "o", ray=True)
    code, lines = cli([tmp_path / "x.wav", "--out-dir", tmp_path / "o", "--ray"], capsys)
    assert code == 1 and lines[-1] == ("rtpitch: error: --ray needs Ray, which is not installed: "
                                       "pip install 'rtpitch[cluster]'"), lines


def test_ray_address_taken_for_an_input_is_given_back(tmp_path, monkeypatch):
    """``--ray archive/``: argparse gives the folder to --ray; it is an input."""
    seen = {}
    monkeypatch.setattr(archive, "transcribe_many", lambda inputs, **kw: seen.update(inputs=inputs, **kw) or [])
    main(["transcribe", "--ray", str(tmp_path), "--out-dir", str(tmp_path / "o")])
    assert seen["inputs"] == [str(tmp_path)] and seen["ray"] is True


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                    reason="Ray not installed (pip install '.[cluster]')")
def test_ray_local_cluster_same_outputs(tmp_path, single):
    """A local Ray instance with 2 CPUs: the bytes of the one-file command, a bad file failing alone."""
    root = tmp_path / "in"
    make_tree(root)
    shutil.copy(FIXTURE.with_suffix(".flac"), root / "b" / "four.flac")
    (root / "a" / "empty.wav").write_bytes(b"")
    results = transcribe_many([root], out_dir=tmp_path / "out", ray=True, jobs=2, manifest=tmp_path / "m.jsonl")
    assert [r.status for r in results] == ["failed", "done", "done", "done", "done"]
    got = mids(tmp_path / "out")
    assert sorted(got) == ["a/one", "b/c/two", "b/four", "b/three"] and all(v == single for v in got.values())
    assert [r["status"] for r in rows(tmp_path / "m.jsonl")] == [r.status for r in results]
    import ray

    assert not ray.is_initialized()  # the instance it started is shut down


def test_config_errors_are_value_errors():
    with pytest.raises(ConfigError):
        find_inputs(["/definitely/not/here"])


def test_throughput_benchmark_tiny(tmp_path):
    """python -m benchmarks.archive_throughput keeps working (CI: three 4-second files, no Ray)."""
    import subprocess

    out = tmp_path / "archive_throughput.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-m", "benchmarks.archive_throughput", "--tiny", "--out", str(out)], cwd=REPO,
                         capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["modes"]) == {"jobs1", "jobs2"}
    assert all(m["outputs_identical_to_jobs1"] and m["failed"] == 0 for m in report["modes"].values())
