"""Render the bundled demo / benchmark recordings (benchmarks/audio/).

    python -m train.render_demo --data ../shared/data

Pieces come from POP909 (MIT) songs in the validation split (never trained on),
rendered with the Salamander Grand samples in a small room with a microphone,
as 16-bit FLAC plus a .tsv of the notes (onset s, key release s, MIDI note,
velocity).  demo.flac: 30 s; bench-200.flac: at least 200 notes for the
latency benchmark.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import soundfile as sf

from train.augment import microphone_in_room
from train.render import read_performance, render_salamander

PIECES = {  # name: (POP909 song, start s, duration s, seed)
    "demo": ("007", 19.6665, 30.0, 7),
    "bench-200": ("899", 130.499, 40.0, 11),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "benchmarks", "audio"))
    ap.add_argument("--sr", type=int, default=44100)
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for name, (song, start, dur, seed) in PIECES.items():
        rng = np.random.default_rng(seed)
        perf = read_performance(os.path.join(args.data, "midi", "pop909", "POP909", song, f"{song}.mid"))
        seg = perf.segment(start, dur)
        audio = render_salamander(seg, sr=args.sr, rng=rng)
        audio = audio[: int((dur + 1.5) * args.sr)]
        audio, _ = microphone_in_room(audio / max(1e-9, np.abs(audio).max()), args.sr, rng, return_params=True)
        sf.write(os.path.join(args.out, f"{name}.flac"), audio, args.sr, subtype="PCM_16")
        with open(os.path.join(args.out, f"{name}.tsv"), "w") as f:
            f.write("onset\toffset\tnote\tvelocity\n")
            for a, b, p, v in zip(seg.onset, seg.offset, seg.pitch, seg.velocity):
                f.write(f"{a:.4f}\t{min(b, dur):.4f}\t{p}\t{v}\n")
        print(f"{name}: POP909 song {song} from {start:.1f} s, {dur:.0f} s, {len(seg.onset)} notes")


if __name__ == "__main__":
    main()
