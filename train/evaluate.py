"""Evaluate a shipped model through rtpitch's own engine (the transcribe path).

    python -m train.evaluate --model seed-cnn --real ../shared/data/real/maps-enstdkcl
    python -m train.evaluate --model seed-cnn --rendered work/data/val_audio --write-json

Each recording is streamed through FileSource -> Engine (resampler, numba mel
frontend, ONNX Runtime, note decoder) exactly as ``rtpitch transcribe`` does,
and scored with mir_eval against key-release labels (no pedal extension):
note onset F1 (50 ms) with the median lag of the matched note-ons (``onset_lag_ms``,
audio time: what the decoder adds to the latency), note with offset F1 (offset
ratio 0.2, min 50 ms), note with offset and velocity F1, and frame F1 (10 ms
grid). Figures are means over recordings. Where the labels say where the
sustain pedal is (rendered validation: the .npz beside the .flac), also note
with offset F1 of the notes as heard (``note_offset_f1_sustained``): every
note held on by the pedal until it is released (or the key is struck again),
the reference by its pedal track, the transcription by its own pedal events (a
model without a pedal head: none); and for a model with a pedal head,
``pedal_f1``: frame-level F1 of "pedal down" between the labels and the pedal
events rtpitch sends (CC64), beside ``pedal_f1_always_down``, that of a pedal
held down throughout (the pedal is down most of the time: the bar to pass),
each a mean over the pieces, and both again over every piece's frames together
(``pedal_pooled``: a piece weighs by its length, so pieces with little pedal,
where any pedal sent scores near 0, weigh less).
``--write-json`` stores them in the model's JSON under "evaluation".
``--fixture WAV`` also scores one annotated recording (a ``.notes`` file beside it: onset s,
key, duration s, velocity per line; the 4-second real piano in ../shared/data/fixtures) and
says how many of its notes were found within 50 ms.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

import mir_eval
import numpy as np

from rtpitch.backends import make_backend
from rtpitch.model import load_model_spec, resolve_model_path
from rtpitch.runner import transcribe_file

FRAME_HOP_S = 0.01


def read_tsv(path: str) -> np.ndarray:
    """Reference notes (n, 4): onset s, offset s, MIDI pitch, velocity."""
    return np.atleast_2d(np.loadtxt(path, delimiter="\t", skiprows=1, ndmin=2))


def events_to_notes(events) -> np.ndarray:
    """Pair note-on/off events into (n, 4) notes: onset, offset, pitch, velocity."""
    open_notes, notes = {}, []
    for e in sorted(events, key=lambda e: (e.time_s, e.on)):
        if e.on:
            open_notes[e.pitch] = (e.time_s, e.velocity)
        elif e.pitch in open_notes:
            t, v = open_notes.pop(e.pitch)
            notes.append((t, max(e.time_s, t + 1e-3), e.pitch, v))
    return np.array(notes, dtype=np.float64).reshape(-1, 4)


def pedal_intervals(down: np.ndarray, hop_s: float) -> np.ndarray:
    """(k, 2) seconds, pedal down .. up, from a per-frame track (T,) (1: down; else up)."""
    d = np.concatenate([[0], (np.asarray(down) == 1).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(d))
    return (edges.reshape(-1, 2) * hop_s).astype(np.float64)


def pedal_event_intervals(events, end_s: float) -> np.ndarray:
    """(k, 2) seconds from PedalEvents (a pedal still down at the end is up at ``end_s``)."""
    out, down = [], None
    for e in sorted(events, key=lambda e: e.time_s):
        if e.down and down is None:
            down = e.time_s
        elif not e.down and down is not None:
            out.append((down, e.time_s))
            down = None
    if down is not None:
        out.append((down, max(end_s, down)))
    return np.array(out, np.float64).reshape(-1, 2)


def pedal_frame_counts(down: np.ndarray, hop_s: float, intervals: np.ndarray) -> np.ndarray:
    """Frames of "pedal down" (true positives, false positives, false negatives), (3,) int:
    the label track (T,) (1 down, 0 up, other values unknown: not scored) against the
    transcription's down ``intervals`` (k, 2) s, at the track's hop."""
    down = np.asarray(down)
    est = np.zeros(len(down), bool)
    for a, b in intervals:
        est[int(round(a / hop_s)) : int(round(b / hop_s))] = True
    known = (down == 0) | (down == 1)
    ref, est = (down == 1) & known, est & known
    return np.array([np.sum(ref & est), np.sum(est & ~ref), np.sum(ref & ~est)], np.int64)


def counts_f1(counts) -> float | None:
    """F1 from (tp, fp, fn); None where all three are 0."""
    tp, fp, fn = (int(c) for c in counts)
    return None if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def pedal_frame_f1(down: np.ndarray, hop_s: float, intervals: np.ndarray) -> float | None:
    """Frame-level F1 of "pedal down" (pedal_frame_counts); None where neither has the
    pedal down in a scored frame."""
    return counts_f1(pedal_frame_counts(down, hop_s, intervals))


def sustain(notes: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Notes (n, 4) as heard with the pedal ``intervals`` (k, 2): a key released while
    the pedal is down sounds until the pedal comes up, or until the key is struck again."""
    out = notes.copy()
    for i, (on, off, pitch, _) in enumerate(notes):
        held = intervals[(intervals[:, 0] <= off) & (off < intervals[:, 1])]
        if not len(held):
            continue
        end = held[0, 1]
        again = notes[(notes[:, 2] == pitch) & (notes[:, 0] > on), 0]
        out[i, 1] = min(end, again.min()) if len(again) else end
        out[i, 1] = max(out[i, 1], off)
    return out


def _roll(notes: np.ndarray, n_frames: int) -> np.ndarray:
    roll = np.zeros((n_frames, 128), bool)
    for on, off, p, _ in notes:
        a, b = int(round(on / FRAME_HOP_S)), int(round(off / FRAME_HOP_S))
        roll[a : max(b, a + 1), int(p)] = True
    return roll


def _hz(midi):
    return 440.0 * 2 ** ((midi - 69) / 12)


def onset_matches(ref: np.ndarray, est: np.ndarray) -> list[tuple[int, int]]:
    """(reference, estimate) index pairs of notes (onset s, offset s, key, velocity rows)
    whose keys agree and onsets lie within 50 ms: mir_eval's matching for note onset F1."""
    if not len(ref) or not len(est):
        return []
    return mir_eval.transcription.match_notes(ref[:, :2], _hz(ref[:, 2]), est[:, :2], _hz(est[:, 2]),
                                              onset_tolerance=0.05, offset_ratio=None)


def score(ref: np.ndarray, est: np.ndarray) -> dict:
    """mir_eval figures for one recording (dict of floats)."""
    ri, rp, rv = ref[:, :2], _hz(ref[:, 2]), ref[:, 3]
    ei, ep, ev = (est[:, :2], _hz(est[:, 2]), est[:, 3]) if len(est) else (np.zeros((0, 2)), np.zeros(0), np.zeros(0))
    out = {}
    # note onset F1 as mir_eval's precision_recall_f1_overlap computes it, from one matching
    # that also gives how late the note-ons come (audio time: what the decoder adds to the latency)
    mir_eval.transcription.validate(ri, rp, ei, ep)
    matched = onset_matches(ref, est)
    p, r = (len(matched) / len(est), len(matched) / len(ref)) if len(est) else (0.0, 0.0)
    out.update(note_precision=p, note_recall=r, note_f1=mir_eval.util.f_measure(p, r))
    if matched:
        i, j = np.array(matched).T
        out.update(onset_lag_ms=1000.0 * np.median(ei[j, 0] - ri[i, 0]))
    p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(ri, rp, ei, ep, onset_tolerance=0.05, offset_ratio=0.2, offset_min_tolerance=0.05)
    out.update(note_offset_f1=f)
    if len(est):
        p, r, f, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(
            ri, rp, rv, ei, ep, ev, onset_tolerance=0.05, offset_ratio=0.2, offset_min_tolerance=0.05)
    else:
        f = 0.0
    out.update(note_offset_velocity_f1=f)
    n = int(max(ref[:, 1].max(), est[:, 1].max() if len(est) else 0) / FRAME_HOP_S) + 2
    R, E = _roll(ref, n), _roll(est, n)
    tp = np.sum(R & E)
    fp, fn = np.sum(E & ~R), np.sum(R & ~E)
    out.update(frame_precision=tp / max(1, tp + fp), frame_recall=tp / max(1, tp + fn),
               frame_f1=2 * tp / max(1, 2 * tp + fp + fn))
    return {k: float(v) for k, v in out.items()}


def evaluate_folder(spec, backend, pairs: list[tuple[str, str]], label: str) -> dict:
    rows = []
    audio_s = wall_s = 0.0
    pedal_frames = np.zeros((2, 3), np.int64)  # (sent, held down throughout) x (tp, fp, fn), all pieces' frames
    for audio, tsv in pairs:
        t0 = time.perf_counter()
        summary = transcribe_file(audio, spec, backend)
        wall_s += time.perf_counter() - t0
        audio_s += summary.audio_s
        ref, est = read_tsv(tsv), events_to_notes(summary.events)
        s = score(ref, est)
        rendered = rendered_labels(audio)
        if "pedal" in rendered:
            said = pedal_event_intervals(summary.pedal_events, summary.audio_s)
            heard = score(sustain(ref, pedal_intervals(*rendered["pedal"])), sustain(est, said))
            s["note_offset_f1_sustained"] = heard["note_offset_f1"]
            if "pedal" in spec.outputs:
                counts = [pedal_frame_counts(*rendered["pedal"], said),  # the CC64 rtpitch sends, frame by frame
                          # the bar to pass: a pedal held down throughout (it is down most of the time)
                          pedal_frame_counts(*rendered["pedal"], np.array([[0.0, summary.audio_s]]))]
                pedal_frames += counts
                if (f := counts_f1(counts[0])) is not None:
                    s["pedal_f1"], s["pedal_f1_always_down"] = f, counts_f1(counts[1])
        rows.append({"file": os.path.basename(audio), **({"timbre": rendered["timbre"]} if rendered else {}), **s})
        print(f"{label} {os.path.basename(audio)[:40]:40s} note F1 {s['note_f1']:.3f}  frame F1 {s['frame_f1']:.3f}  "
              f"offset F1 {s['note_offset_f1']:.3f}", flush=True)
    keys = list(dict.fromkeys(k for r in rows for k in r if k not in ("file", "timbre")))
    mean = {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in keys}
    print(f"{label} MEAN over {len(rows)}: " + "  ".join(f"{k} {v:.3f}" for k, v in mean.items()))
    out = {"files": len(rows), "audio_s": round(audio_s, 1), "real_time_factor": round(wall_s / max(audio_s, 1e-9), 4),
           "mean": mean}
    if pedal_frames.any():  # every piece's frames together: pieces weigh by their length, not one each
        out["pedal_pooled"] = {"pedal_f1": round(counts_f1(pedal_frames[0]) or 0.0, 4),
                               "pedal_f1_always_down": round(counts_f1(pedal_frames[1]) or 0.0, 4)}
        print(f"{label} pedal F1 over all frames: {out['pedal_pooled']['pedal_f1']:.3f} "
              f"(held down throughout: {out['pedal_pooled']['pedal_f1_always_down']:.3f})")
    timbres = sorted({r["timbre"] for r in rows if "timbre" in r})
    if timbres:  # rendered validation: the figures per piano timbre too
        out["per_timbre"] = {t: {"files": sum(r.get("timbre") == t for r in rows),
                                 **{k: round(float(np.mean([r[k] for r in rows if r.get("timbre") == t])), 4)
                                    for k in ("note_f1", "frame_f1", "note_offset_f1")}} for t in timbres}
        for t, v in out["per_timbre"].items():
            print(f"{label} {t:12s} ({v['files']} files): note F1 {v['note_f1']:.3f}  frame F1 {v['frame_f1']:.3f}")
    out["per_file"] = rows
    return out


def rendered_labels(audio: str) -> dict:
    """What the .npz beside a rendered validation file says beyond its .tsv:
    {"timbre": name, "pedal": (per-frame pedal (T,), hop s) if it has one}; {} for
    a recording without one."""
    npz = audio[:-5] + ".npz"
    if not os.path.exists(npz):
        return {}
    with np.load(npz) as z:
        out = {"timbre": str(z["timbre"])}
        if "pedal" in z.files:
            out["pedal"] = z["pedal"], float(json.loads(str(z["meta"]))["hop_s"])
    return out


def read_notes(path: str) -> np.ndarray:
    """A ``.notes`` file (onset s, key, duration s, velocity; ``#`` comments) as note rows
    (onset s, offset s, key, velocity), by onset."""
    rows = [[float(v) for v in line.split()[:4]] for line in open(path)
            if line.strip() and not line.startswith("#")]
    notes = np.array([(on, on + dur, key, vel) for on, key, dur, vel in rows]).reshape(-1, 4)
    return notes[np.argsort(notes[:, 0], kind="stable")]


def evaluate_fixture(spec, backend, audio: str, notes: str) -> dict:
    """One annotated recording (its ``notes``, read_notes): score() and the number of its notes
    found (note-on of the same key within 50 ms)."""
    ref = read_notes(notes)
    est = events_to_notes(transcribe_file(audio, spec, backend).events)
    scores = score(ref, est)
    found = round(scores["note_recall"] * len(ref))  # score's one onset matching (onset_matches)
    print(f"fixture {os.path.basename(audio)}: {found} of its {len(ref)} notes found, {len(est)} sent", flush=True)
    return {"file": os.path.basename(audio), "notes": len(ref), "found": found, "sent": len(est),
            **{k: round(v, 4) for k, v in scores.items()}}


def real_pairs(folder: str) -> list[tuple[str, str]]:
    flacs = sorted(glob.glob(os.path.join(folder, "flac", "*.flac")))
    return [(f, os.path.join(folder, "tsv", os.path.basename(f)[:-5] + ".tsv")) for f in flacs]


def rendered_pairs(folder: str, limit: int) -> list[tuple[str, str]]:
    flacs = sorted(glob.glob(os.path.join(folder, "*.flac")))[:limit]
    return [(f, f[:-5] + ".tsv") for f in flacs if os.path.exists(f[:-5] + ".tsv")]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="seed-cnn")
    ap.add_argument("--real", default=None, help="folder with flac/ and tsv/ (MAPS ENSTDkCl)")
    ap.add_argument("--rendered", default=None, help="folder of rendered validation .flac + .tsv")
    ap.add_argument("--fixture", default=None, metavar="WAV",
                    help="also an annotated recording with a .notes file beside it (notes found within 50 ms)")
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--write-json", action="store_true")
    ap.add_argument("--out", default=None, help="write the full results JSON here")
    args = ap.parse_args(argv)

    spec = load_model_spec(args.model)
    backend = make_backend("onnxruntime", spec, threads=1)
    results = {}
    if args.real:
        pairs = real_pairs(args.real)[: args.limit]
        if not pairs:
            sys.exit(f"no recordings in {args.real}/flac")
        results["real_maps_enstdkcl"] = evaluate_folder(spec, backend, pairs, "real")
    if args.rendered:
        results["rendered_val"] = evaluate_folder(spec, backend, rendered_pairs(args.rendered, args.limit), "rendered")
    if args.fixture:
        notes = os.path.splitext(args.fixture)[0] + ".notes"
        if not os.path.exists(notes):
            sys.exit(f"--fixture {args.fixture}: no {notes} beside it")
        results["fixture"] = evaluate_fixture(spec, backend, args.fixture, notes)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    if args.write_json:
        path = resolve_model_path(args.model)
        meta = json.load(open(path))
        ev = meta.setdefault("evaluation", {})
        for k, v in results.items():
            ev[k] = {kk: vv for kk, vv in v.items() if kk != "per_file"}
            ev[k]["protocol"] = "mir_eval, onset tolerance 50 ms, offsets = key releases (no pedal extension), " \
                                "offset ratio 0.2 / min 50 ms, frame F1 on a 10 ms grid, mean over files; " \
                                "streamed through rtpitch's engine (onnxruntime, 1 thread)"
        with open(path, "w") as f:
            json.dump(meta, f, indent=2)


if __name__ == "__main__":
    main()
