"""train/session.sh build: each folder the run names is built by its own recipe, with the frontend
asked for; a folder it has no recipe for is a one-line error. The builders are replaced by a
stand-in that records its arguments (the recipes themselves: tests/test_build_dataset.py)."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _session(tmp_path, data: str):
    (tmp_path / "train").mkdir()
    shutil.copy(ROOT / "train" / "session.sh", tmp_path / "train" / "session.sh")
    (tmp_path / "train" / "fetch_samples.sh").write_text("#!/bin/sh\n")
    fake = tmp_path / "fakepy"
    fake.write_text('#!/bin/sh\necho "$@" >> "$(dirname "$0")/calls"\n')
    for f in (fake, tmp_path / "train" / "fetch_samples.sh"):
        f.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(fake), "SESSION_DATA": data, "FRONTEND": "f224.json"}
    res = subprocess.run(["bash", str(tmp_path / "train" / "session.sh"), "build"], env=env,
                         capture_output=True, text=True, timeout=60)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return res, calls


def test_build_makes_each_named_folder_with_the_frontend(tmp_path):
    res, calls = _session(tmp_path, "work/f/data-lowlat,work/f/data-noise,work/f/data-render-s7-deep")
    assert res.returncode == 0, res.stderr
    assert len(calls) == 3
    assert calls[0].startswith("-m train.build_dataset") and "--out work/f/data-lowlat" in calls[0]
    assert "--hours-val 0.5 --seed 0" in calls[0]
    assert calls[1].startswith("-m train.build_noise --out work/f/data-noise")
    assert "--seed 7" in calls[2] and "--noise-snr 30,70" in calls[2] and "--velocity-curve 1.5,3.0" in calls[2]
    assert all("--frontend f224.json" in c for c in calls)


def test_a_folder_without_a_recipe_is_a_one_line_error(tmp_path):
    res, calls = _session(tmp_path, "work/data-lowlat,work/data-mine")
    assert res.returncode == 1
    assert calls and "data-lowlat" in calls[0]
    assert res.stderr.strip().startswith("build_data: no recipe for work/data-mine")
    assert len(res.stderr.strip().splitlines()) == 1
    recipes = res.stderr.split("(the recipes: ")[1].rstrip(")\n").split(", ")
    assert recipes[0] == "data-lowlat" and "data-render-s7-deep" in recipes and "data-mine" not in recipes
    assert "data-render-sN-dyn" in recipes


def test_a_fresh_seed_of_the_dynamics_render_is_its_recipe_with_that_seed(tmp_path):
    res, calls = _session(tmp_path, "work/f/data-render-s6-dyn,data-render-s12-dyn")
    assert res.returncode == 0, res.stderr
    assert "--seed 6 " in calls[0] and "--seed 12 " in calls[1]
    assert all("--velocity-curve 1.0,2.0" in c and "--hours-train 6 --hours-val 0.5" in c for c in calls)
