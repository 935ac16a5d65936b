"""Build the rendered training/validation set.

    python -m train.build_dataset --data ../shared/data --out work/data \
        --hours-train 10 --hours-val 1 --seed 0 [--jobs 2] [--frontend spec.json]

Performances (ASAP, batik, vienna4x22, POP909) are split by piece (hash of the piece id,
~10 % val; vienna4x22 is train only), cut into segments of <= 60 s, rendered with a
random timbre (``TIMBRE_WEIGHTS``; ``--timbres`` naming any of the sampled grands
headroom-c3 / splendid-grand draws from ``EXTENDED_TIMBRE_WEIGHTS`` instead, e.g.
``--timbres salamander,fluid-r3,musescore,timgm6mb,headroom-c3,splendid-grand``; their
samples come from ``--samples-data``, default ``<--data>/samples``) (velocities optionally bent per
segment, ``--velocity-curve``: soft notes softer, loud ones as loud; scaled per segment,
``--velocity-scale``; and spread per note, ``--velocity-spread``), optionally given the
strings' sympathetic resonance (``--resonance``, train/resonance.py: the sound of the
dampers, pedal and held keys, that the samples lack), passed
through ``microphone_in_room`` (its noise's level under the signal, ``--noise-snr``), and stored as
``OUT/<split>/<id>.npz`` (mel float16 (T, n_mels); frame/onset/offset/velocity uint8
(T, 88); pedal uint8 (T,); metadata). Val segments also get ``<id>.flac`` (the audio the
features came from) and ``<id>.tsv`` (onset, key release, pitch, velocity; segment time).
Resumable: existing npz files are skipped; ``OUT/manifest.jsonl`` has a line per segment.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from rtpitch.frontend import FrontendSpec, logmel
from train.augment import NOISE_SNR_DB, microphone_in_room
from train.labels import frame_labels, pedal_frames
from train.render import REGION_PIANOS, TIMBRES, read_performance
from train.resonance import string_resonance

DEFAULT_FRONTEND = dict(sample_rate=16000, n_fft=2048, hop_length=320, n_mels=229,
                        fmin=30.0, fmax=8000.0, log_offset=1e-4)
COLLECTION_WEIGHTS = {"asap": 0.5, "batik": 0.1, "vienna4x22": 0.1, "pop909": 0.3}
TIMBRE_WEIGHTS = {"salamander": 0.5, "fluid-r3": 0.5 / 3, "musescore": 0.5 / 3, "timgm6mb": 0.5 / 3}
# Used only when --timbres names a timbre outside TIMBRE_WEIGHTS (the default draws, and so
# every existing seeded build, stay as they were): the three sampled grands 0.7 in all, the
# soundfonts 0.3.
EXTENDED_TIMBRE_WEIGHTS = {"salamander": 0.3, "fluid-r3": 0.1, "musescore": 0.1, "timgm6mb": 0.1,
                           "headroom-c3": 0.2, "splendid-grand": 0.2}
MAX_SEG_S = 60.0
VAL_PERCENT = 10


def _h(s: str) -> int:
    return int.from_bytes(hashlib.sha1(s.encode()).digest()[:8], "big")


def piece_split(collection: str, piece: str) -> str:
    if collection == "vienna4x22":
        return "train"
    return "val" if _h(f"{collection}/{piece}") % 100 < VAL_PERCENT else "train"


def list_performances(data: Path) -> list[dict]:
    midi = data / "midi"
    out = []
    meta = midi / "asap" / "metadata.csv"
    if meta.exists():
        with open(meta, newline="") as f:
            for row in csv.DictReader(f):
                p = midi / "asap" / row["midi_performance"]
                if p.exists():
                    out.append(dict(collection="asap", piece=row["folder"], path=str(p.resolve())))
    for p in sorted((midi / "batik").glob("**/*.mid")):
        out.append(dict(collection="batik", piece=p.stem, path=str(p.resolve())))
    for p in sorted((midi / "vienna4x22").glob("**/*.mid")):
        if "average" in p.stem:
            continue
        piece = p.stem.rsplit("_p", 1)[0]
        out.append(dict(collection="vienna4x22", piece=piece, path=str(p.resolve())))
    for p in sorted((midi / "pop909").glob("**/*.mid")):
        if p.parent.name.isdigit():  # POP909/<song>/<song>.mid (skip versions/ subfolders)
            out.append(dict(collection="pop909", piece=p.parent.name, path=str(p.resolve())))
    for r in out:
        r["split"] = piece_split(r["collection"], r["piece"])
    return out


class Durations:
    """Performance lengths (s), cached in OUT/durations.json."""

    def __init__(self, path: Path):
        self.path = path
        self.d = json.loads(path.read_text()) if path.exists() else {}
        self.dirty = 0

    def get(self, midi_path: str) -> float:
        if midi_path not in self.d:
            perf = read_performance(midi_path)
            self.d[midi_path] = [float(perf.end_s), float(perf.onset.min()) if len(perf.onset) else 0.0, len(perf.onset)]
            self.dirty += 1
            if self.dirty >= 50:
                self.save()
        return self.d[midi_path]

    def save(self):
        if self.dirty:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.d))
            os.replace(tmp, self.path)
            self.dirty = 0


def timbre_weights(timbres: list[str] | None) -> dict:
    """The weight table for a timbre list: ``TIMBRE_WEIGHTS`` when every name is in it (the
    default and every build made before the sampled grands), else ``EXTENDED_TIMBRE_WEIGHTS``."""
    if not timbres or set(timbres) <= set(TIMBRE_WEIGHTS):
        return TIMBRE_WEIGHTS
    return EXTENDED_TIMBRE_WEIGHTS


def plan_split(perfs: list[dict], split: str, hours: float, seed: int, durs: Durations,
               timbres: list[str] | None = None) -> list[dict]:
    """Deterministic list of segments for a split until ``hours`` is reached
    (timbres: restrict to these, default all of TIMBRE_WEIGHTS; weighted by
    ``timbre_weights(timbres)``)."""
    by_col = defaultdict(list)
    for p in perfs:
        if p["split"] == split:
            by_col[p["collection"]].append(p)
    cols = [c for c in COLLECTION_WEIGHTS if by_col[c]]
    if not cols:
        return []
    w = np.array([COLLECTION_WEIGHTS[c] for c in cols])
    w /= w.sum()
    tnames = list(timbres or TIMBRE_WEIGHTS)
    table = timbre_weights(tnames)
    tw = np.array([table[t] for t in tnames])
    tw /= tw.sum()
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    segs, total, i, tries = [], 0.0, 0, 0
    while total < hours * 3600 and tries < 100000:
        tries += 1
        col = cols[rng.choice(len(cols), p=w)]
        perf = by_col[col][rng.integers(len(by_col[col]))]
        end_s, first_s, n_notes = durs.get(perf["path"])
        if n_notes < 5:
            continue
        avail = end_s - first_s
        dur = min(MAX_SEG_S, avail)
        start = first_s + (rng.uniform(0, avail - dur) if avail > dur else 0.0)
        start = max(0.0, start - rng.uniform(0, 0.5))
        timbre = tnames[rng.choice(len(tnames), p=tw)]
        sid = f"{split}_{i:05d}"
        segs.append(dict(id=sid, split=split, collection=col, piece=perf["piece"], source=perf["path"],
                         start_s=round(float(start), 4), dur_s=round(float(dur), 4), timbre=timbre,
                         seed=int(_h(f"{seed}/{sid}") % (2 ** 63))))
        total += dur
        i += 1
    return segs


_PERF_CACHE: dict = {}


def _perf(path):
    if path not in _PERF_CACHE:
        if len(_PERF_CACHE) > 8:
            _PERF_CACHE.clear()
        _PERF_CACHE[path] = read_performance(path)
    return _PERF_CACHE[path]


def make_segment(seg: dict, out: str, spec_d: dict, samples_dir, region_samples=None) -> dict:
    """Render, augment, featurise and save one segment; returns its manifest record.
    ``samples_dir``: Salamander's samples; ``region_samples``: the folder holding the
    region-mapped sample sets (headroom-c3/, splendid-grand/; default ../shared/data/samples)."""
    import soundfile as sf

    out = Path(out)
    npz = out / seg["split"] / f"{seg['id']}.npz"
    if npz.exists():
        try:
            with np.load(npz) as z:
                return json.loads(str(z["meta"]))
        except Exception:
            npz.unlink()
    t0 = time.process_time()
    spec = FrontendSpec(**spec_d)
    sr = spec.sample_rate
    rng = np.random.default_rng(seg["seed"])
    perf = _perf(seg["source"]).segment(seg["start_s"], seg["dur_s"])
    if {"velocity_curve", "velocity_scale", "velocity_spread"} & set(seg):  # softer, uneven playing; labels follow
        v = perf.velocity * seg.get("velocity_scale", 1.0)
        if "velocity_curve" in seg:  # wider dynamics: soft notes sink, loud ones stay
            v = 127.0 * (v / 127.0) ** seg["velocity_curve"]
        if seg.get("velocity_spread"):  # per note: soft notes under loud ones in a chord
            v = v * np.exp(np.random.default_rng([seg["seed"], 3]).normal(0.0, seg["velocity_spread"], len(v)))
        perf.velocity = np.clip(np.round(v), 1, 127).astype(np.int64)
    n = int(round(seg["dur_s"] * sr))
    timbre = seg["timbre"]
    try:
        if timbre == "salamander":
            audio = TIMBRES[timbre](perf, sr, rng, samples_dir=samples_dir)
        elif timbre in REGION_PIANOS:
            audio = TIMBRES[timbre](perf, sr, rng, samples_root=region_samples)
        else:
            audio = TIMBRES[timbre](perf, sr, rng)
    except Exception as e:  # a broken soundfont/CLI must not stop the build
        print(f"{seg['id']}: {timbre} failed ({e}); using salamander", file=sys.stderr, flush=True)
        timbre = "salamander"
        audio = TIMBRES[timbre](perf, sr, rng, samples_dir=samples_dir)
    audio = np.pad(audio, (0, max(0, n - len(audio))))[:n]
    if "resonance_db" in seg:  # the free strings ring along (the pedal's sound); labels unchanged
        audio = audio + string_resonance(audio, perf, sr, seg["resonance_db"])
    audio, aug = microphone_in_room(audio, sr, rng, return_params=True,
                                    noise_snr_db=tuple(seg.get("noise_snr_db", NOISE_SNR_DB)))
    mel = logmel(audio, spec)
    T = len(mel)
    lab = frame_labels(perf, T, spec.hop_s)
    ped = pedal_frames(perf, T, spec.hop_s)
    meta = dict(seg, timbre=timbre, frames=T, hop_s=spec.hop_s, n_notes=int(len(perf.onset)),
                augment=aug, frontend=spec_d, cpu_s=round(time.process_time() - t0, 2))
    npz.parent.mkdir(parents=True, exist_ok=True)
    tmp = npz.with_name(npz.stem + ".tmp.npz")
    np.savez_compressed(tmp, mel=mel.astype(np.float16), frame=lab["frame"], onset=lab["onset"],
                        offset=lab["offset"], velocity=lab["velocity"], pedal=ped,
                        source=np.array(seg["source"]), piece=np.array(seg["piece"]),
                        timbre=np.array(timbre), start_s=np.array(seg["start_s"]),
                        augment=np.array(json.dumps(aug)), meta=np.array(json.dumps(meta)))
    if seg["split"] == "val":
        sf.write(str(npz.with_suffix(".flac")), audio, sr, subtype="PCM_16")
        with open(npz.with_suffix(".tsv"), "w") as f:
            f.write("onset\toffset\tnote\tvelocity\n")
            for a, b, p, v in zip(perf.onset, perf.offset, perf.pitch, perf.velocity):
                f.write(f"{a:.4f}\t{min(b, seg['dur_s']):.4f}\t{p}\t{v}\n")
    os.replace(tmp, npz)
    return meta


def draw_per_segment(plan: list[dict], lo: float, hi: float, key: str = "velocity_scale") -> None:
    """Give each segment a velocity factor (``key``: velocity_scale) or exponent (velocity_curve),
    or its strings' coupling in dB (resonance_db), uniform in [lo, hi], drawn from its own seed (so
    adding the option leaves every other draw of the build unchanged)."""
    stream = {"velocity_scale": 2, "velocity_curve": 4, "resonance_db": 5}[key]
    for seg in plan:
        seg[key] = round(float(np.random.default_rng([seg["seed"], stream]).uniform(lo, hi)), 3)


def _work(args):
    seg, out, spec_d, samples_dir, region_samples = args
    try:
        return make_segment(seg, out, spec_d, samples_dir, region_samples)
    except Exception as e:
        import traceback
        traceback.print_exc()
        return dict(seg, error=f"{type(e).__name__}: {e}")


def load_frontend(arg: str | None) -> dict:
    d = dict(DEFAULT_FRONTEND)
    if arg:
        src = json.loads(Path(arg).read_text()) if Path(arg).exists() else json.loads(arg)
        src = src.get("frontend", src)
        d.update({k: v for k, v in src.items() if k in FrontendSpec.__dataclass_fields__})
    FrontendSpec(**d)
    return d


def _lo_hi(ap, option: str, text: str | None, ok, expected: str) -> tuple[float, float] | None:
    """An option's "LO,HI" as two floats that ``ok(lo, hi)`` accepts; None when not given; otherwise
    a one-line usage error (``option``: ``expected``)."""
    if not text:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        ap.error(f"{option}: {expected}")
    if not ok(lo, hi):
        ap.error(f"{option}: {expected}")
    return lo, hi


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--out", default="work/data")
    ap.add_argument("--hours-train", type=float, default=1.0)
    ap.add_argument("--hours-val", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--frontend", default=None, help="JSON file or string (FrontendSpec fields, or a model JSON with 'frontend')")
    ap.add_argument("--samples-dir", default=None, help="Salamander samples (default <repo>/cache/salamander)")
    ap.add_argument("--samples-data", default=None,
                    help="folder of the region-mapped sample sets headroom-c3/ and splendid-grand/ (default <--data>/samples)")
    ap.add_argument("--timbres", default=None,
                    help=f"comma-separated subset of {','.join(EXTENDED_TIMBRE_WEIGHTS)} (default "
                         f"{','.join(TIMBRE_WEIGHTS)} at TIMBRE_WEIGHTS; naming headroom-c3 or splendid-grand "
                         "switches to EXTENDED_TIMBRE_WEIGHTS)")
    ap.add_argument("--velocity-scale", default=None, metavar="LO,HI",
                    help="multiply each segment's MIDI velocities by a factor drawn in [LO, HI] "
                         "(the MIDI collections play louder than the real validation: median 70 vs 47)")
    ap.add_argument("--velocity-curve", default=None, metavar="LO,HI",
                    help="bend each segment's MIDI velocities v to 127 (v / 127) ** G, G drawn in [LO, HI] (>= 1: "
                         "soft notes sink further under loud ones, as in the real recordings' wider dynamics)")
    ap.add_argument("--velocity-spread", type=float, default=0.0, metavar="SIGMA",
                    help="also multiply each note's velocity by exp(N(0, SIGMA)), drawn from the segment's seed "
                         "(chords whose notes differ in loudness; 0 = off)")
    ap.add_argument("--noise-snr", default=None, metavar="LO,HI",
                    help="background noise's level under the signal's RMS, dB, drawn per segment in [LO, HI] "
                         "(default 25,60; the real recordings' floor lies lower: e.g. 35,75)")
    ap.add_argument("--resonance", default=None, metavar="LO,HI",
                    help="add the strings' sympathetic resonance (train/resonance.py), a free string's coupling "
                         "LO to HI dB under its input, drawn per segment, e.g. 22,34 (default: none)")
    a = ap.parse_args(argv)
    if not 0 <= a.velocity_spread <= 1:
        ap.error("--velocity-spread: SIGMA in [0, 1], e.g. 0.35")
    vscale = _lo_hi(ap, "--velocity-scale", a.velocity_scale, lambda lo, hi: 0 < lo <= hi <= 2,
                    "LO,HI with 0 < LO <= HI <= 2, e.g. 0.45,1.0")
    vcurve = _lo_hi(ap, "--velocity-curve", a.velocity_curve, lambda lo, hi: 0.25 <= lo <= hi <= 4,
                    "LO,HI with 0.25 <= LO <= HI <= 4, e.g. 1.0,2.0")
    noise_snr = _lo_hi(ap, "--noise-snr", a.noise_snr, lambda lo, hi: 0 <= lo <= hi <= 100,
                       "LO,HI in dB with 0 <= LO <= HI <= 100, e.g. 35,75")
    resonance = _lo_hi(ap, "--resonance", a.resonance, lambda lo, hi: 0 <= lo <= hi <= 80,
                       "LO,HI dB under the input with 0 <= LO <= HI <= 80, e.g. 22,34")
    timbres = a.timbres.split(",") if a.timbres else None
    if timbres and not set(timbres) <= set(EXTENDED_TIMBRE_WEIGHTS):
        ap.error(f"--timbres: choose from {', '.join(EXTENDED_TIMBRE_WEIGHTS)}")
    region_samples = Path(a.samples_data) if a.samples_data else Path(a.data) / "samples"
    for t in set(timbres or ()) & set(REGION_PIANOS):
        if not (region_samples / t / "regions.json").exists():
            ap.error(f"--timbres {t}: no {region_samples / t / 'regions.json'} (set --samples-data or --data)")

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    spec_d = load_frontend(a.frontend)
    perfs = list_performances(Path(a.data))
    cnt = defaultdict(int)
    for p in perfs:
        cnt[(p["collection"], p["split"])] += 1
    print("performances:", dict(sorted(cnt.items())), flush=True)
    durs = Durations(out / "durations.json")
    t = time.time()
    plan = (plan_split(perfs, "train", a.hours_train, a.seed, durs, timbres)
            + plan_split(perfs, "val", a.hours_val, a.seed, durs, timbres))
    durs.save()
    if vscale:
        draw_per_segment(plan, *vscale)
    if vcurve:
        draw_per_segment(plan, *vcurve, key="velocity_curve")
    if resonance:
        draw_per_segment(plan, -resonance[1], -resonance[0], key="resonance_db")
    for seg in plan:
        if a.velocity_spread:
            seg["velocity_spread"] = a.velocity_spread
        if noise_snr:
            seg["noise_snr_db"] = noise_snr
    print(f"planned {len(plan)} segments ({sum(s['dur_s'] for s in plan) / 3600:.2f} h) in {time.time() - t:.1f}s", flush=True)

    man_path = out / "manifest.jsonl"
    done = {}
    if man_path.exists():
        for line in man_path.read_text().splitlines():
            try:
                r = json.loads(line)
                if "error" not in r:
                    done[r["id"]] = r
            except json.JSONDecodeError:
                pass
    todo = [s for s in plan if not (s["id"] in done and (out / s["split"] / f"{s['id']}.npz").exists())]
    target_s = sum(s["dur_s"] for s in todo)
    print(f"{len(plan) - len(todo)} segments already done, {len(todo)} to render ({target_s / 3600:.2f} h)", flush=True)
    t0, acc, n_err = time.time(), 0.0, 0
    jobs = [(s, str(out), spec_d, a.samples_dir, str(region_samples)) for s in todo]
    with open(man_path, "a") as man:
        if a.jobs > 1:
            import multiprocessing as mp
            pool = mp.get_context("fork").Pool(a.jobs, maxtasksperchild=200)
            it = pool.imap_unordered(_work, jobs, chunksize=1)
        else:
            pool, it = None, map(_work, jobs)
        for i, r in enumerate(it, 1):
            if "error" in r:
                n_err += 1
                continue
            if r["id"] not in done:
                man.write(json.dumps(r) + "\n")
                man.flush()
                done[r["id"]] = r
            acc += r["dur_s"]
            el = time.time() - t0
            if i % 5 == 0 or i == len(jobs):
                print(f"[{i}/{len(jobs)}] {acc / 3600:.3f}/{target_s / 3600:.3f} h, "
                      f"{acc / max(el, 1e-9):.1f} s audio per s wall, eta {(target_s - acc) / max(acc / max(el, 1e-9), 1e-9) / 60:.1f} min",
                      flush=True)
        if pool is not None:
            pool.close()
            pool.join()
    # summary over the plan
    hours = defaultdict(float)
    for s in plan:
        r = done.get(s["id"])
        if r:
            hours[(r["split"], "all")] += r["dur_s"] / 3600
            hours[(r["split"], r["timbre"])] += r["dur_s"] / 3600
            hours[(r["split"], r["collection"])] += r["dur_s"] / 3600
    for k in sorted(hours):
        print(f"  {k[0]:5s} {k[1]:12s} {hours[k]:.3f} h")
    if n_err:
        print(f"{n_err} segments failed (see stderr); rerun to retry", flush=True)
    return 1 if n_err else 0


if __name__ == "__main__":
    sys.exit(main())
