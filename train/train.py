"""Train a model (train/model.py) on rendered segments (resumable).

    python -m train.train --data work/data --run work/runs/seed-cnn --minutes 60
    python -m train.train --arch stream --lookahead 2 --seq 400 --data work/data-lowlat --run work/runs/stream-la2

Reads ``<data>/train/*.npz`` and ``<data>/val/*.npz`` written by
build_dataset.py (mel float16 (T, n_mels); frame/onset/offset/velocity uint8 (T, 88));
``--data A,B`` trains on the segments of every folder, validates on the first's.
Each step takes random crops of ``--seq`` output frames (+ window - 1 context
frames) and trains the fully convolutional model on all of them at once.
Checkpoints (model + optimizer + step + data stats) go to ``<run>/ckpt`` every
``--ckpt-every`` steps and at the end; rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import resource
import shutil
import signal
import sys
import time

import numpy as np
import tensorflow as tf

from rtpitch.model import head_units
from train.grow import between, grow_weights
from train.labels import PEDAL_UNKNOWN
from train.model import HARMONIC_INPUT, HEADS, build_model, head_layer, output_name
from train.run_info import progress, run_frontend
from train.weight_average import WeightAverage, restore_weights




def load_split(folder: str, max_files: int | None = None) -> list[dict]:
    """All segments of one split, arrays kept in memory (mel float16)."""
    files = sorted(glob.glob(os.path.join(folder, "*.npz")))[:max_files]
    out = []
    for f in files:
        with np.load(f) as z:
            seg = {k: z[k] for k in ("mel", "frame", "onset", "offset", "velocity")}
            # pedal: uint8 (T,), 1 down, 0 up, PEDAL_UNKNOWN where the labels do not say
            seg["pedal"] = z["pedal"] if "pedal" in z.files else np.full(len(seg["mel"]), PEDAL_UNKNOWN, np.uint8)
            out.append(seg)
    return out


def mel_stats(segments: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin mean and std of the log-mel over (a sample of) the segments."""
    sample = np.concatenate([s["mel"][::7].astype(np.float32) for s in segments])
    return sample.mean(0), sample.std(0) + 1e-3


class Crops:
    """Random training crops: mel (B, seq + window - 1, n_mels) and, per output
    (head, lookahead), labels (B, seq, 88): output ``j`` sees crop frames
    ``[j, j + window)`` and predicts the frame ``lookahead`` before its last."""

    def __init__(self, segments, *, seq: int, window: int, targets, batch: int, rng: np.random.Generator):
        """targets: (output name, head, lookahead) for every model output."""
        self.segments = [s for s in segments if s["mel"].shape[0] >= window]
        lengths = np.array([s["mel"].shape[0] for s in self.segments], dtype=np.float64)
        self.p = lengths / lengths.sum()
        self.seq, self.window, self.batch, self.rng = seq, window, batch, rng
        self.targets = list(targets)
        self.lead = window - 1 - self.targets[0][2]  # crop frames before the first labelled frame
        self.n_mels = self.segments[0]["mel"].shape[1]
        self.pad_value = float(min(s["mel"].min() for s in self.segments[:50]))

    def batch_arrays(self):
        B, L = self.batch, self.seq + self.window - 1
        mel = np.full((B, L, self.n_mels), self.pad_value, np.float32)
        lab = {name: np.zeros((B, self.seq, head_units(head)), np.float32)
               for name, head, _ in self.targets}
        for name, head, _ in self.targets:
            if head == "pedal":  # 1 where the pedal label is known (0 in padding)
                lab[name + KNOWN] = np.zeros((B, self.seq, 1), np.float32)
        for b, i in enumerate(self.rng.choice(len(self.segments), size=B, p=self.p)):
            s = self.segments[i]
            T = s["mel"].shape[0]
            # the crop covers segment frames [lo, lo + L)
            lo = int(self.rng.integers(0, max(1, T - self.seq))) - self.lead
            src_lo, src_hi = max(lo, 0), min(lo + L, T)
            mel[b, src_lo - lo : src_hi - lo] = s["mel"][src_lo:src_hi]
            for name, head, la in self.targets:
                first = lo + self.window - 1 - la  # segment frame of label 0
                a, z = max(first, 0), min(first + self.seq, T)
                if z > a and head == "pedal":
                    ped = s["pedal"][a:z]
                    lab[name][b, a - first : z - first, 0] = ped == 1
                    lab[name + KNOWN][b, a - first : z - first, 0] = ped != PEDAL_UNKNOWN
                elif z > a:
                    lab[name][b, a - first : z - first] = s[head][a:z]
        for name, head, _ in self.targets:
            if head == "velocity":
                lab[name] /= 127.0
        return mel, lab


WEIGHTS_DIR = "weights"  # a run's weights-only checkpoint (train/slim_checkpoint.py)
KNOWN = "/known"  # label key suffix: the mask of a head whose labels may be missing (pedal)


def weighted_bce(y, p, pos_weight):
    """Binary cross-entropy with positives weighted ``pos_weight`` times (mean); ``pos_weight``
    a number or a tensor broadcast against ``y`` (a weight per positive)."""
    p = tf.clip_by_value(p, 1e-7, 1.0 - 1e-7)
    return -tf.reduce_mean(pos_weight * y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p))


def soft_onsets(onset, width: int):
    """Onset targets (batch, T, 88) widened to a triangle: a frame ``k`` frames from an
    onset (``k <= width``) gets ``1 - k / (width + 1)``; ``width`` 0 returns ``onset``."""
    out = onset
    for k in range(1, width + 1):
        w = 1.0 - k / (width + 1)
        later = tf.pad(onset[:, :-k], [[0, 0], [k, 0], [0, 0]])  # the onset k frames before
        earlier = tf.pad(onset[:, k:], [[0, 0], [0, k], [0, 0]])  # the onset k frames after
        out = tf.maximum(out, w * tf.maximum(later, earlier))
    return out


def quiet_weight(velocity, quiet_onset_weight: float, quiet_velocity: float):
    """Per-onset weight (batch, T, 88) from the velocity labels (MIDI velocity / 127):
    ``1 + quiet_onset_weight`` at velocity 0, falling linearly to 1 at ``quiet_velocity``
    and above (MIDI units)."""
    quiet = tf.clip_by_value(1.0 - velocity * (127.0 / quiet_velocity), 0.0, 1.0)
    return 1.0 + quiet_onset_weight * quiet


def held_weight(onset, held_frame_weight: float, held_after: int):
    """Per-frame weight (batch, T, 88): ``1 + held_frame_weight`` where the same key had no
    onset in the last ``held_after`` frames (the frame itself included), 1 elsewhere; it
    multiplies the frame positives, so it weighs a note held past its attack (or begun
    before the crop)."""
    recent = tf.nn.max_pool1d(tf.pad(onset, [[0, 0], [held_after - 1, 0], [0, 0]]), ksize=held_after,
                              strides=1, padding="VALID")
    return 1.0 + held_frame_weight * (1.0 - recent)


def losses(outputs: dict, labels: dict, *, frame_pos_weight: float, onset_pos_weight: float,
           onset_width: int = 0, quiet_onset_weight: float = 0.0, quiet_velocity: float = 64.0,
           held_frame_weight: float = 0.0, held_after: int = 30) -> dict:
    """Frame, onset and (when the model has it) offset BCE (positives up-weighted:
    onsets are ~0.15 % of key-frames; offsets weighted like onsets), velocity MSE
    on onset frames only. ``onset_width``: the onset target as soft_onsets.
    ``quiet_onset_weight``: quiet onsets' positives weigh more (quiet_weight; needs
    the velocity labels and one-frame onsets). ``held_frame_weight``: frame positives
    ``held_after`` frames or more after their onset weigh more (held_weight)."""
    onset_target = soft_onsets(labels["onset"], onset_width)
    onset_weight = onset_pos_weight
    if quiet_onset_weight:
        if onset_width:
            raise ValueError("quiet_onset_weight weighs one-frame onsets: onset_width must be 0")
        onset_weight = onset_pos_weight * quiet_weight(labels["velocity"], quiet_onset_weight, quiet_velocity)
    frame_weight = frame_pos_weight
    if held_frame_weight:
        frame_weight = frame_pos_weight * held_weight(labels["onset"], held_frame_weight, held_after)
    out = {"frame": weighted_bce(labels["frame"], outputs["frame"], frame_weight),
           "onset": weighted_bce(onset_target, outputs["onset"], onset_weight)}
    if "offset" in outputs:
        out["offset"] = weighted_bce(labels["offset"], outputs["offset"], onset_pos_weight)
    if "pedal" in outputs:  # plain BCE over the frames whose pedal label is known
        y, known = labels["pedal"], labels["pedal" + KNOWN]
        p = tf.clip_by_value(outputs["pedal"], 1e-7, 1.0 - 1e-7)
        bce = -(y * tf.math.log(p) + (1.0 - y) * tf.math.log(1.0 - p))
        out["pedal"] = tf.reduce_sum(known * bce) / (tf.reduce_sum(known) + 1.0)
    mask = labels["onset"]
    out["velocity"] = tf.reduce_sum(mask * tf.square(outputs["velocity"] - labels["velocity"])) / (tf.reduce_sum(mask) + 1.0)
    out["total"] = tf.add_n(list(out.values()))
    return out


def frame_f1(model, segments, window: int, lookaheads, max_frames: int = 60000) -> dict:
    """Frame and onset-frame F1 at threshold 0.5 on validation segments, per
    lookahead (``lookaheads``: list of (lookahead, output-name suffix lookahead or None)).
    A model with a pedal head: its pedal F1 too, and ``pedal_f1_always_down``, the F1 of
    a pedal held down throughout (the pedal is down most of the time: the bar to pass)."""
    counts = {la: np.zeros(6) for la, _ in lookaheads}
    pedal = {la: np.zeros(3) for la, _ in lookaheads}
    pedal_known = np.zeros(2)  # frames with the pedal down, up
    has_pedal = any(k.startswith("pedal") for k in model.output_names)
    used = 0
    for s in segments:
        mel = s["mel"].astype(np.float32)
        T = mel.shape[0]
        pad = np.full((window - 1, mel.shape[1]), mel.min(), np.float32)
        out = model(np.concatenate([pad, mel, pad])[None], training=False)  # output k + la predicts frame k
        g, go = s["frame"] > 0, s["onset"] > 0
        pedal_known += [np.sum(s["pedal"] == 1), np.sum(s["pedal"] == 0)]
        for la, key in lookaheads:
            f = out[output_name("frame", key)].numpy()[0, la : la + T] >= 0.5
            o = out[output_name("onset", key)].numpy()[0, la : la + T] >= 0.5
            counts[la] += [np.sum(f & g), np.sum(f & ~g), np.sum(~f & g), np.sum(o & go), np.sum(o & ~go), np.sum(~o & go)]
            if has_pedal:
                known = s["pedal"] != PEDAL_UNKNOWN
                pd = out[output_name("pedal", key)].numpy()[0, la : la + T, 0] >= 0.5
                pg = s["pedal"] == 1
                pedal[la] += [np.sum(pd & pg & known), np.sum(pd & ~pg & known), np.sum(~pd & pg & known)]
        used += T
        if used > max_frames:
            break
    f1 = lambda a, b, c: 2 * a / max(1, 2 * a + b + c)  # noqa: E731

    def figures(la):
        c = counts[la]
        out = {"frame_f1": round(float(f1(*c[:3])), 4), "onset_frame_f1": round(float(f1(*c[3:])), 4)}
        if has_pedal:
            out["pedal_f1"] = round(float(f1(*pedal[la])), 4)
        return out

    result = figures(next(iter(counts))) if len(counts) == 1 else {f"la{la}": figures(la) for la in counts}
    if has_pedal:
        result["pedal_f1_always_down"] = round(float(f1(pedal_known[0], pedal_known[1], 0)), 4)
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="work/data", help="dataset folder(s), comma-separated: validation from the first")
    ap.add_argument("--run", default="work/runs/seed-cnn")
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of this invocation")
    ap.add_argument("--max-steps", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=200, help="output frames per crop")
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--lookahead", type=int, default=9)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--frame-pos-weight", type=float, default=2.0)
    ap.add_argument("--onset-pos-weight", type=float, default=20.0)
    ap.add_argument("--onset-width", type=int, default=0,
                    help="soft onset targets: frames either side of an onset with a triangle target (0: one frame)")
    ap.add_argument("--quiet-onset-weight", type=float, default=0.0, metavar="Q",
                    help="onsets softer than --quiet-velocity weigh up to 1 + Q times more (Q at velocity 0, "
                         "falling linearly to none at --quiet-velocity; 0: off; needs --onset-width 0)")
    ap.add_argument("--quiet-velocity", type=float, default=64.0, help="MIDI velocity --quiet-onset-weight ends at")
    ap.add_argument("--held-frame-weight", type=float, default=0.0, metavar="H",
                    help="frame positives --held-after frames or more after their key's onset weigh 1 + H "
                         "times more (notes held past their attack; 0: off)")
    ap.add_argument("--held-after", type=int, default=30, metavar="FRAMES",
                    help="frames after an onset where --held-frame-weight begins")
    ap.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                    help="keep an exponential moving average of the weights (e.g. 0.999) in the checkpoint; "
                         "validation, exports and --init-from use it (0: none)")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--keep-every", type=int, default=0, metavar="STEPS",
                    help="also copy the checkpoints at multiples of STEPS to RUN/kept/ (the newest 3 alone stay "
                         "in RUN/ckpt/), to export and score later: train.export --checkpoint; 0: none")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--max-files", type=int, default=None, help="smoke runs: use only this many files")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init-from", default=None, metavar="RUN[,RUN...]",
                    help="a new run starts from another run's checkpoint: every layer of the same name, grown "
                         "where this model's is wider (stream-gru from a stream run, stream-keys-wide from "
                         "stream-keys: it starts out computing the same), and its input statistics; several "
                         "runs (comma-separated, the same input statistics): each in turn, a later one's layers "
                         "over an earlier one's (a pedal head from one run on another's notes)")
    ap.add_argument("--freeze-bn", action="store_true",
                    help="BatchNormalization in inference mode, not trained (a run restored by train/from_onnx.py)")
    ap.add_argument("--train-only", default=None, metavar="PREFIXES",
                    help="train only the layers whose names start with one of these (comma-separated); the "
                         "others are frozen, BatchNormalization in inference mode (a head added to a finished "
                         "run: --train-only pedal)")
    ap.add_argument("--arch", default="seed", choices=sorted(HEADS), help="model (train/model.py)")
    ap.add_argument("--lookaheads", default=None,
                    help="stream: comma-separated lookaheads trained at once on one trunk (replaces --lookahead)")
    ap.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16"),
                    help="mixed_bfloat16: bfloat16 compute, float32 weights (seed CNN 2.5x, stream CNN 1.4x "
                         "faster a step on an AVX512-BF16 CPU)")
    args = ap.parse_args(argv)
    if args.quiet_onset_weight and (args.onset_width or "velocity" not in HEADS[args.arch]):
        ap.error("--quiet-onset-weight needs one-frame onsets (--onset-width 0) and a velocity head")

    tf.keras.mixed_precision.set_global_policy(args.precision)
    tf.random.set_seed(args.seed)
    os.makedirs(args.run, exist_ok=True)
    state_path = os.path.join(args.run, "state.json")  # written with every checkpoint: its step
    state = json.load(open(state_path)) if os.path.exists(state_path) else {"train_seconds": 0.0}
    if state.get("steps", 0) >= args.max_steps:  # a finished phase of a rerun recipe: load nothing, write nothing
        print(f"step {state['steps']} >= --max-steps {args.max_steps}: nothing to train", flush=True)
        return
    folders = args.data.split(",")
    train = [s for d in folders for s in load_split(os.path.join(d, "train"), args.max_files)]
    val = load_split(os.path.join(folders[0], "val"), args.max_files)
    if not train:
        sys.exit(f"no training segments in {args.data} (<folder>/train): run python -m train.build_dataset first")
    n_mels = train[0]["mel"].shape[1]
    stats_path = os.path.join(args.run, "mel_stats.npz")
    init_runs = args.init_from.split(",") if args.init_from else []
    if init_runs and not os.path.exists(stats_path):  # the weights expect the inputs they were trained on
        same_stats(init_runs)
        shutil.copy(os.path.join(init_runs[-1], "mel_stats.npz"), stats_path)
    if os.path.exists(stats_path):
        with np.load(stats_path) as z:
            mean, std = z["mean"], z["std"]
    else:
        mean, std = mel_stats(train)
        np.savez(stats_path, mean=mean, std=std)

    multi = [int(v) for v in args.lookaheads.split(",")] if args.lookaheads else None
    frontend = _model_frontend(args.arch, [{"data": args.data}])
    model = build_model(n_mels, window=args.window, mean=mean, std=std, arch=args.arch, lookaheads=multi,
                        frontend=frontend)
    if args.freeze_bn:
        for layer in model.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.trainable = False
    if args.train_only:
        freeze_except(model, args.train_only.split(","))
    heads = HEADS[args.arch]
    groups = [(la, la) for la in multi] if multi else [(args.lookahead, None)]  # (lookahead, name key)
    targets = [(output_name(h, key), h, la) for la, key in groups for h in heads]
    opt = tf.keras.optimizers.Adam(args.lr)
    step = tf.Variable(0, dtype=tf.int64)
    ema = WeightAverage(model, args.ema) if args.ema else None
    kept_parts = {"model": model, "step": step, **({"ema": ema} if ema else {})}  # what a weights-only checkpoint holds
    ckpt = tf.train.Checkpoint(optimizer=opt, **kept_parts)
    manager = tf.train.CheckpointManager(ckpt, os.path.join(args.run, "ckpt"), max_to_keep=3)
    if not manager.latest_checkpoint:
        for run in init_runs:
            copied = init_from_run(model, run, n_mels, args.window)
            print(f"initialised {len(copied)} layers from {run}: {', '.join(copied)}", flush=True)
    if manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint)
        opt.learning_rate.assign(args.lr)  # the checkpoint holds the previous phase's rate
        print(f"resumed from {manager.latest_checkpoint} at step {int(step)}, lr {args.lr:g}", flush=True)
    elif (kept := latest_weights(args.run)) is not None:  # kept as weights only (train/slim_checkpoint.py)
        tf.train.Checkpoint(**kept_parts).restore(kept).expect_partial()
        print(f"resumed the weights of {kept} at step {int(step)}, lr {args.lr:g}; "
              "the optimiser's moments start afresh", flush=True)
    if ema is not None and not bool(ema.started.numpy()):  # a new run, or one checkpointed without it
        ema.start()
        print(f"weight average (decay {args.ema:g}) starts at step {int(step)}", flush=True)

    with open(os.path.join(args.run, "recipe.jsonl"), "a") as f:  # one line per invocation (phase)
        # the frontend a harmonic input reads with: a later --init-from or export then does without the data
        f.write(json.dumps({"from_step": int(step), **vars(args), **({"frontend": frontend} if frontend else {})})
                + "\n")
    rng = np.random.default_rng(args.seed + int(step))
    crops = Crops(train, seq=args.seq, window=args.window, targets=targets, batch=args.batch, rng=rng)
    gen = tf.data.Dataset.from_generator(
        lambda: iter(crops.batch_arrays, None),
        output_signature=(
            tf.TensorSpec((args.batch, args.seq + args.window - 1, n_mels), tf.float32),
            {**{name: tf.TensorSpec((args.batch, args.seq, head_units(head)), tf.float32)
                for name, head, _ in targets},
             **{name + KNOWN: tf.TensorSpec((args.batch, args.seq, 1), tf.float32)
                for name, head, _ in targets if head == "pedal"}},
        ),
    ).prefetch(2)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            ls = {}
            for _, key in groups:  # losses summed over the lookaheads, logged per head
                lab = {h: y[output_name(h, key)] for h in heads}
                if "pedal" in heads:
                    lab["pedal" + KNOWN] = y[output_name("pedal", key) + KNOWN]
                part = losses({h: out[output_name(h, key)] for h in heads}, lab,
                              frame_pos_weight=args.frame_pos_weight, onset_pos_weight=args.onset_pos_weight,
                              onset_width=args.onset_width, quiet_onset_weight=args.quiet_onset_weight,
                              quiet_velocity=args.quiet_velocity, held_frame_weight=args.held_frame_weight,
                              held_after=args.held_after)
                ls = {k: ls.get(k, 0.0) + v for k, v in part.items()}
        grads = tape.gradient(ls["total"], model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        if ema is not None:
            ema.update()
        return ls

    log_path = os.path.join(args.run, "log.jsonl")
    stop = _stop_on_signals()
    t0, cpu0, step0 = time.time(), _cpu_seconds(), int(step)
    acc = {}
    for x, y in gen:
        if int(step) >= args.max_steps or time.time() - t0 > args.minutes * 60 or stop:
            break
        ls = train_step(x, y)
        step.assign_add(1)
        for k, v in ls.items():
            acc[k] = acc.get(k, 0.0) + float(v)
        s = int(step)
        if s % 50 == 0:
            rec = {k: round(v / 50, 5) for k, v in acc.items()}
            rec.update(step=s, elapsed_s=round(time.time() - t0, 1))
            print(json.dumps(rec), flush=True)
            acc = {}
        if s % args.ckpt_every == 0 or (args.keep_every and s % args.keep_every == 0):
            _save(manager, state, state_path, t0, s, args)
        if val and s % args.eval_every == 0:
            rec = {"step": s, **validate(model, ema, val, args.window, groups)}
            print("val", json.dumps(rec), flush=True)
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
    _save(manager, state, state_path, t0, int(step), args)
    rec = {"step": int(step), **validate(model, ema, val, args.window, groups)} if val else {}
    if val:
        print("val", json.dumps(rec), flush=True)
    session = {"session": os.environ.get("RTPITCH_SESSION", time.strftime("%Y-%m-%d", time.gmtime(t0))),
               "from_step": step0, "to_step": int(step), "lr": args.lr, "data": args.data,
               "cpu_hours": round((_cpu_seconds() - cpu0) / 3600, 3),
               "wall_hours": round((time.time() - t0) / 3600, 3), "stopped_by": "signal" if stop else "budget",
               "val": {k: v for k, v in rec.items() if k != "step"}}
    with open(os.path.join(args.run, "sessions.jsonl"), "a") as f:  # one line per invocation
        f.write(json.dumps(session) + "\n")


def validate(model, ema, segments, window: int, lookaheads) -> dict:
    """frame_f1 of the weights exports take: the average where there is one (and
    then the raw weights' figures too, under ``raw``)."""
    if ema is None:
        return frame_f1(model, segments, window, lookaheads)
    raw = frame_f1(model, segments, window, lookaheads)
    with ema.swapped_in():
        return {**frame_f1(model, segments, window, lookaheads), "raw": raw}


def freeze_except(model, prefixes: list[str]) -> None:
    """Freeze every layer of ``model`` whose name starts with none of ``prefixes``."""
    kept = [layer.name for layer in model.layers if layer.name.startswith(tuple(prefixes)) and layer.weights]
    if not kept:
        raise SystemExit(f"--train-only {','.join(prefixes)}: no layer with weights has such a name")
    for layer in model.layers:
        layer.trainable = layer.name in kept or not layer.weights
    print(f"training only {', '.join(kept)}", flush=True)


def same_stats(runs: list[str]) -> None:
    """Exit unless every run in ``runs`` has the same input statistics (mel_stats.npz)."""
    stats = []
    for run in runs:
        with np.load(os.path.join(run, "mel_stats.npz")) as z:
            stats.append((z["mean"], z["std"]))
    for run, (mean, std) in zip(runs[1:], stats[1:]):
        if not (np.array_equal(mean, stats[0][0]) and np.array_equal(std, stats[0][1])):
            raise SystemExit(f"--init-from: {run}'s input statistics differ from {runs[0]}'s")


def init_from_run(model, run: str, n_mels: int, window: int) -> list[str]:
    """Copy into ``model`` the weights of every layer of ``run``'s newest checkpoint
    that has the same name; returns the names copied.

    A layer whose weights here are larger (a head that also sees a GRU's state, a
    wider convolution) is grown, so the new model starts out computing exactly what
    the old one did: the old weights go in the first entries of every axis, a
    kernel's rows for new input channels are zero, and new output channels keep
    their fresh initial values (their consumers' rows for them being zero). This
    assumes the new channels are the last of every widened input. A head for a lookahead
    the run lacks starts between the heads of its nearest lookaheads below and above."""
    src = model_of_run(run, n_mels, window)
    latest = latest_weights(run)
    if latest is None:
        raise SystemExit(f"--init-from {run}: no checkpoint in {run}/ckpt or {run}/weights")
    restore_weights(src, latest)
    by_name = {layer.name: layer for layer in src.layers}
    copied = []
    for layer in model.layers:
        other = by_name.get(layer.name)
        if not layer.weights:
            continue
        if other is not None:
            theirs, ours = other.get_weights(), layer.get_weights()
            if [w.shape for w in theirs] == [w.shape for w in ours]:
                layer.set_weights(theirs)
                copied.append(layer.name)
            elif (grown := grow_weights(theirs, ours)) is not None:
                layer.set_weights(grown)
                copied.append(layer.name + " (widened)")
        elif (near := _neighbour_heads(layer.name, by_name)) is not None:
            (la_lo, lo), (la_hi, hi), t = near
            layer.set_weights(between(lo.get_weights(), hi.get_weights(), t))
            copied.append(f"{layer.name} (between lookaheads {la_lo} and {la_hi})")
    return copied


def _neighbour_heads(name: str, layers: dict):
    """For a head of a lookahead the source run lacks (``frame_la3_per_key``): its nearest
    lower and higher lookaheads' heads there and how far it lies between them,
    ((lookahead, layer), (lookahead, layer), fraction), or None."""
    this = head_layer(name)
    if this is None:
        return None
    head, la, kind = this
    found = {}
    for other in layers:
        o = head_layer(other)
        if o and (o[0], o[2]) == (head, kind):
            found[o[1]] = layers[other]
    lo, hi = [k for k in found if k < la], [k for k in found if k > la]
    if not (lo and hi):
        return None
    a, b = max(lo), min(hi)
    return (a, found[a]), (b, found[b]), (la - a) / (b - a)


def _model_frontend(arch: str, phases: list[dict]) -> dict | None:
    """The frontend build_model needs for ``arch`` (HARMONIC_INPUT: the one the
    phases' data was made with, run_frontend), else None."""
    return run_frontend(phases) if arch in HARMONIC_INPUT else None


def model_of_run(run: str, n_mels: int, window: int = 20):
    """The model ``run`` trains (its last recipe line's architecture and lookaheads,
    its input statistics, and for HARMONIC_INPUT its data's frontend), freshly initialised."""
    with open(os.path.join(run, "recipe.jsonl")) as f:
        phases = [json.loads(line) for line in f.read().splitlines()]
    recipe = phases[-1]
    multi = [int(v) for v in recipe["lookaheads"].split(",")] if recipe.get("lookaheads") else None
    frontend = _model_frontend(recipe["arch"], phases)
    with np.load(os.path.join(run, "mel_stats.npz")) as z:
        return build_model(n_mels, window=window, mean=z["mean"], std=z["std"], arch=recipe["arch"],
                           lookaheads=multi, frontend=frontend)


def latest_weights(run: str) -> str | None:
    """The newest checkpoint prefix holding ``run``'s model weights: the full
    checkpoint (ckpt/) or, where only that was kept, the weights-only one (weights/)."""
    return tf.train.latest_checkpoint(os.path.join(run, "ckpt")) or \
        tf.train.latest_checkpoint(os.path.join(run, WEIGHTS_DIR))


def _cpu_seconds() -> float:
    """CPU time of this process, all threads (user + system), s."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _stop_on_signals() -> list:
    """A list that becomes non-empty on SIGTERM or SIGINT: the loop then checkpoints
    and ends (train/session.sh stop)."""
    flag: list = []

    def handler(signum, _frame):
        print(f"signal {signum}: checkpointing and stopping", flush=True)
        flag.append(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return flag


def _save(manager, state, state_path, t0, s, args):
    prefix = manager.save(checkpoint_number=s)
    if args.keep_every and s % args.keep_every == 0:
        kept = os.path.join(args.run, "kept")
        os.makedirs(kept, exist_ok=True)
        for path in glob.glob(prefix + ".*"):
            shutil.copy2(path, kept)
    done = {"train_seconds": state["train_seconds"] + (time.time() - t0), **progress(s, args.batch, args.seq)}
    with open(state_path + ".tmp", "w") as f:
        json.dump(done, f)
    os.replace(state_path + ".tmp", state_path)


if __name__ == "__main__":
    main()
