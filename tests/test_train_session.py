"""The per-session trainer's parts: MAPS synth pieces as training segments, and a
training run stopped by SIGTERM that keeps its checkpoint and writes its session line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RTPITCH_SHARED_DATA", ROOT.parent / "shared" / "data"))

pytestmark = [pytest.mark.slow, pytest.mark.shared]


def _need(sub: str):
    if not (SHARED / sub).is_dir():
        pytest.skip(f"../shared/data/{sub} absent ({SHARED})")


def test_maps_synth_segments_carry_the_tsv_notes(tmp_path):
    _need("maps-synth")
    out = tmp_path / "ms"
    res = subprocess.run([sys.executable, "-m", "train.build_maps_synth", "--data", str(SHARED), "--out", str(out),
                          "--pieces", "1", "--frontend", "train/frontend-lowlat.json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    files = sorted((out / "train").glob("*.npz"))
    assert files
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(manifest) == len(files) and {m["collection"] for m in manifest} == {"maps-synth"}
    assert all(m["split"] == "train" and m["frontend"]["hop_length"] == 160 for m in manifest)
    from train.build_maps_synth import SEG_S, read_tsv
    from train.labels import PEDAL_UNKNOWN

    flac = sorted((SHARED / "maps-synth" / "flac").glob("*.flac"))[0]
    perf = read_tsv(SHARED / "maps-synth" / "tsv" / (flac.stem + ".tsv"))
    onsets = 0
    for f in files:
        with np.load(f) as z:
            meta = json.loads(str(z["meta"]))
            assert z["mel"].shape[0] == z["frame"].shape[0] and z["frame"].shape[1] == 88
            assert z["mel"].shape[1] == 229 and (z["pedal"] == PEDAL_UNKNOWN).all()  # played, not labelled
            onsets += int(z["onset"].sum())
            assert meta["start_s"] % SEG_S == 0
    in_range = (perf.pitch >= 21) & (perf.pitch <= 108)
    # notes of one key whose onsets round to the same frame count once
    assert 0.97 * in_range.sum() <= onsets <= in_range.sum()


def test_sigterm_checkpoints_and_writes_the_session_line(tmp_path):
    _need("midi")
    pytest.importorskip("tensorflow")
    if not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").exists():
        pytest.skip("FluidR3 soundfont not installed (apt fluid-soundfont-gm)")
    data, run = tmp_path / "data", tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "train.build_dataset", "--data", str(SHARED), "--out", str(data),
                          "--hours-train", "0.01", "--hours-val", "0.005", "--timbres", "fluid-r3",
                          "--frontend", "train/frontend-lowlat.json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    log = open(tmp_path / "train.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "train.train", "--data", str(data), "--run", str(run),
                             "--arch", "stream", "--lookaheads", "0,2", "--lookahead", "2", "--batch", "2",
                             "--seq", "40", "--ckpt-every", "5", "--eval-every", "100000", "--minutes", "30"],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env=dict(os.environ, RTPITCH_SESSION="test-session"))
    try:
        deadline = time.monotonic() + 600
        while not (run / "state.json").exists():  # the first checkpoint: training runs
            assert proc.poll() is None, (tmp_path / "train.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(300) == 0, (tmp_path / "train.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    state = json.loads((run / "state.json").read_text())
    lines = (run / "sessions.jsonl").read_text().splitlines()
    assert len(lines) == 1
    session = json.loads(lines[0])
    assert session["session"] == "test-session" and session["stopped_by"] == "signal"
    assert session["from_step"] == 0 and session["to_step"] == state["steps"] >= 5
    assert session["cpu_hours"] > 0 and set(session["val"]) == {"la0", "la2"}
    ckpt = (run / "ckpt" / "checkpoint").read_text()
    assert f"ckpt-{state['steps']}" in ckpt

    # kept as weights alone (what session.sh keeps when the full checkpoint is over 20 MB),
    # the run resumes from them: the same step, the same weights, a fresh optimiser
    res = subprocess.run([sys.executable, "-m", "train.slim_checkpoint", str(run)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    full = sum(f.stat().st_size for f in (run / "ckpt").glob(f"ckpt-{state['steps']}.*"))
    slim = sum(f.stat().st_size for f in (run / "weights").iterdir())
    assert slim < 0.5 * full  # weights without Adam's two moments
    (run / "ckpt").rename(tmp_path / "full-ckpt")
    res = subprocess.run([sys.executable, "-m", "train.train", "--data", str(data), "--run", str(run),
                          "--arch", "stream", "--lookaheads", "0,2", "--lookahead", "2", "--batch", "2",
                          "--seq", "40", "--eval-every", "100000", "--max-steps", str(state["steps"] + 2)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resumed the weights of {run / 'weights'}/ckpt-{state['steps']} at step {state['steps']}" in res.stdout
    assert json.loads((run / "state.json").read_text())["steps"] == state["steps"] + 2
