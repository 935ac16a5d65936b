"""Shared by the peer drivers (runs in the peers' venv: numpy and soundfile only).

Every driver is called as::

    PYTHON -m benchmarks.peers.<driver> --out DIR [--threads N] FILE...   (from the repository root)

and writes, for each audio FILE, ``DIR/<stem>.tsv`` (header line, then
onset s, offset s, MIDI pitch, velocity per note: the format of the
reference .tsv files) and ``DIR/timing.json``: the system, its version, the
threads it was allowed, the model load time and per file the audio length
and the wall time of the transcription (reading the file included, the
model load excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import time


def parse_args(description: str):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", required=True, help="folder for <stem>.tsv and timing.json")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for the peer's runtime (default 1)")
    ap.add_argument("files", nargs="+")
    return ap.parse_args()


def write_tsv(path: str, notes) -> None:
    """notes: iterable of (onset s, offset s, pitch, velocity 0-127)."""
    with open(path, "w") as f:
        f.write("onset\toffset\tpitch\tvelocity\n")
        for on, off, p, v in sorted(notes):
            f.write(f"{on:.6f}\t{off:.6f}\t{int(p)}\t{int(v)}\n")


def audio_seconds(path: str) -> float:
    import soundfile as sf

    info = sf.info(path)
    return info.frames / info.samplerate


def _warmup_file(out_dir: str) -> str:
    """2 s of quiet noise with one tone (44.1 kHz WAV) to pay first-call costs (JIT, caches) before timing."""
    import numpy as np
    import soundfile as sf

    sr = 44100
    t = np.arange(2 * sr) / sr
    x = 0.01 * np.random.default_rng(0).standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 440 * t) * (t > 0.5)
    path = os.path.join(out_dir, "_warmup.wav")
    sf.write(path, x.astype(np.float32), sr)
    return path


def run(system: str, version: str, threads: int, load, transcribe, files, out_dir: str) -> None:
    """load() -> model; transcribe(model, path) -> notes. Writes the .tsv files and timing.json.

    ``load_s`` covers loading the model and one warm-up transcription of 2 s
    (first-call costs: numba JIT in librosa/resampy, allocator warm-up), so the
    per-file times are steady-state.
    """
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.perf_counter()
    model = load()
    warm = _warmup_file(out_dir)
    transcribe(model, warm)
    os.remove(warm)
    load_s = time.perf_counter() - t0
    rows = []

    def save():  # atomically, after the load and after every file: a run cut short leaves what it finished
        tmp = os.path.join(out_dir, "timing.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"system": system, "version": version, "threads": threads, "load_s": round(load_s, 3),
                       "files": rows}, f, indent=2)
        os.replace(tmp, os.path.join(out_dir, "timing.json"))

    save()
    for path in files:
        t0 = time.perf_counter()
        c0 = time.process_time()
        notes = transcribe(model, path)
        wall = time.perf_counter() - t0
        cpu = time.process_time() - c0
        stem = os.path.splitext(os.path.basename(path))[0]
        write_tsv(os.path.join(out_dir, stem + ".tsv"), notes)
        audio_s = audio_seconds(path)
        rows.append({"file": os.path.basename(path), "audio_s": round(audio_s, 3), "wall_s": round(wall, 3),
                     "cpu_s": round(cpu, 3), "notes": len(notes)})
        print(f"{system}: {os.path.basename(path)}: {len(notes)} notes, {audio_s:.1f} s audio in {wall:.1f} s "
              f"(RTF {wall / max(audio_s, 1e-9):.3f})", flush=True)
        save()
