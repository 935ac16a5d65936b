"""Transkun 2.0 (Yan & Duan; PyPI transkun 2.0.1, shipped weights) on CPU PyTorch.

An OFFLINE transcriber: it decodes 16 s segments (8 s hop) with a semi-CRF over
whole intervals, so it needs the future of every note; it is listed beside
rtpitch for accuracy, not as a live alternative.

Runs in the peers' venv (benchmarks/peers/setup.sh) with CPU torch 2.13 and
without torchaudio: torchaudio's compiled extension does not load beside that
torch, and transkun calls one function of it, the pure-Python
``torchaudio.functional.melscale_fbanks``. This driver installs a stand-in
``torchaudio`` module holding only that function (same formula as torchaudio's:
HTK mel scale, triangular filters, no norm) before importing transkun.
Audio is read with soundfile (transkun's CLI uses pydub/ffmpeg) and resampled
with soxr as its CLI does; notes with pitch <= 0 (pedal events) are dropped.
"""

from __future__ import annotations

import math
import os
import sys
import types

from benchmarks.peers.common import parse_args, run


def melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm=None, mel_scale="htk"):
    """(n_freqs, n_mels) triangular mel filterbank, as torchaudio.functional.melscale_fbanks."""
    import torch

    if mel_scale != "htk" or norm is not None:
        raise NotImplementedError("stand-in torchaudio: only mel_scale='htk', norm=None (what transkun uses)")
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    m_min = 2595.0 * math.log10(1.0 + f_min / 700.0)
    m_max = 2595.0 * math.log10(1.0 + f_max / 700.0)
    m_pts = torch.linspace(m_min, m_max, n_mels + 2)
    f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)
    down = -1.0 * slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.max(torch.zeros(1), torch.min(down, up))


def install_torchaudio_standin() -> None:
    ta = types.ModuleType("torchaudio")
    ta.__doc__ = "stand-in: only functional.melscale_fbanks (benchmarks/peers/transkun_run.py)"
    fn = types.ModuleType("torchaudio.functional")
    fn.melscale_fbanks = melscale_fbanks
    ta.functional = fn
    sys.modules["torchaudio"] = ta
    sys.modules["torchaudio.functional"] = fn


def main():
    args = parse_args(__doc__.splitlines()[0])
    import importlib.metadata

    import numpy as np
    import soundfile as sf
    import soxr
    import torch

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    install_torchaudio_standin()
    import moduleconf
    import transkun

    pre = os.path.join(os.path.dirname(transkun.__file__), "pretrained")

    def load():
        conf_manager = moduleconf.parseFromFile(os.path.join(pre, "2.0.conf"))
        TransKun = conf_manager["Model"].module.TransKun
        model = TransKun(conf=conf_manager["Model"].config)
        ckpt = torch.load(os.path.join(pre, "2.0.pt"), map_location="cpu")
        model.load_state_dict(ckpt["best_state_dict"] if "best_state_dict" in ckpt else ckpt["state_dict"],
                              strict=False)
        return model.eval()

    def transcribe(model, path):
        x, sr = sf.read(path, dtype="float32", always_2d=True)  # (n, channels), as transkun's readAudio
        if sr != model.fs:
            x = soxr.resample(x, sr, model.fs)
        notes = model.transcribe(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
                                 discardSecondHalf=False)
        return [(float(n.start), float(n.end), int(n.pitch), int(n.velocity)) for n in notes if n.pitch > 0]

    version = importlib.metadata.version("transkun")
    run("transkun", f"{version} (torch {torch.__version__}, weights 2.0.pt; offline)", args.threads,
        load, transcribe, args.files, args.out)


if __name__ == "__main__":
    main()
