"""The package as a user installs it: a built wheel, in a fresh venv, run from elsewhere.

The wheel is built from a copy of the package's sources (so no stale ``build/``
of the checkout can leak into it), must hold the shipped models as package
data, and is installed into a new venv with ``--no-deps``.  The venv reaches
the dependencies (numpy, numba, ONNX Runtime, ...) of the interpreter running
the tests through a ``.pth`` file, which Python reads after the venv's own
site-packages, so ``rtpitch`` itself comes from the wheel (checked).  Then
``rtpitch transcribe`` of the fixture runs from a directory outside the
repository, with no PYTHONPATH, and its MIDI file must hold notes.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from helpers import FIXTURE, REPO, needs_data
from rtpitch.model import available_models

pytestmark = [pytest.mark.slow, pytest.mark.shared]

BUILD_TIMEOUT_S = 240  # an isolated build fetches setuptools from the index


def _run(cmd, *, cwd, timeout, env=None) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, (f"{' '.join(map(str, cmd))}: exit {res.returncode}\n"
                                 f"stdout:\n{res.stdout[-3000:]}\nstderr:\n{res.stderr[-3000:]}")
    return res


def _setuptools_builds_here() -> bool:
    """The running interpreter's setuptools can build pyproject.toml without
    build isolation (its ``license = "MIT"`` needs setuptools >= 77)."""
    try:
        import setuptools
        import wheel  # noqa: F401
    except ImportError:
        return False
    return int(setuptools.__version__.split(".")[0]) >= 77


def build_wheel(out: Path, work: Path) -> Path:
    src = work / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "rtpitch", src / "rtpitch", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi",
                                                                                      "*.nbc"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, src]
    if _setuptools_builds_here():
        cmd.insert(5, "--no-build-isolation")
    _run(cmd, cwd=work, timeout=BUILD_TIMEOUT_S)
    wheels = list(out.glob("rtpitch-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def make_venv(venv: Path, wheel: Path, work: Path) -> Path:
    """A venv holding only the wheel; the running interpreter's site-packages
    after its own, for the dependencies.  Returns its python."""
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work, timeout=120)
    py = venv / "bin" / "python"
    purelib = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=work, timeout=60).stdout.strip())
    deps = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (purelib / "zz_test_dependencies.pth").write_text("".join(f"{d}\n" for d in deps if Path(d).is_dir()))
    _run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index", wheel],
         cwd=work, timeout=120)
    return py


@needs_data
def test_wheel_installs_with_its_models_and_transcribes_from_anywhere(tmp_path):
    wheel = build_wheel(tmp_path / "dist", tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = available_models()
    assert shipped, "no shipped models in the checkout"
    for model in shipped:
        for ext in ("json", "onnx", "step"):
            assert f"rtpitch/models/{model}.{ext}" in names, f"{wheel.name} lacks rtpitch/models/{model}.{ext}"

    venv = tmp_path / "venv"
    py = make_venv(venv, wheel, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    probe = _run([py, "-c", "import rtpitch, rtpitch.model as m; print(rtpitch.__file__); "
                            "print(','.join(m.available_models()))"], cwd=elsewhere, timeout=60, env=env)
    where, models = probe.stdout.split()
    assert Path(where).resolve().is_relative_to(venv.resolve()), f"rtpitch imported from {where}, not the wheel"
    assert models.split(",") == shipped

    out = elsewhere / "take.mid"
    res = _run([venv / "bin" / "rtpitch", "transcribe", FIXTURE, "-o", out.name], cwd=elsewhere, timeout=180,
               env=env)
    import mido

    notes = [m for m in mido.MidiFile(out) if m.type == "note_on" and m.velocity > 0]
    assert len(notes) >= 4, f"{len(notes)} notes in {out}; stderr:\n{res.stderr}"
