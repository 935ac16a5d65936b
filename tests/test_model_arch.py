"""The training architectures (train/model.py): shapes, heads and widths.

Built in a subprocess: TensorFlow stays out of the pytest process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json
import numpy as np
from train.model import ARCHITECTURES, HEADS, KEY_ARCHS, STREAM_WIDTHS, build_model
from rtpitch.frontend import FrontendSpec
from train.harmonics import harmonic_matrix
from tests.tiny_run import random_key_offsets
frontend = json.load(open("train/frontend-lowlat.json"))
out = {}
for arch in STREAM_WIDTHS:
    m = build_model(229, arch=arch, lookaheads=[0, 2], frontend=frontend)
    y = m(np.zeros((1, 45, 229), np.float32))
    convs = [l.filters for l in m.layers if l.name in ("conv1", "conv2", "conv3", "conv4")]
    out[arch] = {"outputs": sorted((k, list(v.shape)) for k, v in y.items()), "convs": convs,
                 "hidden": m.get_layer("tconv2").filters, "params": m.count_params(),
                 "described": arch in ARCHITECTURES, "heads": list(HEADS[arch])}
# per key: a key's outputs depend on keys within reach of its convolutions only (+-4 for the
# four 3x3, +-12 for the key context, +-24 for its key offsets), so a change in the lowest band
# reaches no high key
for arch in KEY_ARCHS:
    m = build_model(229, arch=arch, lookaheads=[2], frontend=frontend)
    random_key_offsets(m, np.random.default_rng(2))
    x = np.random.default_rng(1).normal(size=(1, 30, 229)).astype(np.float32)
    x2 = x.copy(); x2[:, :, :3] += 5.0
    a, b = m(x)["frame_la2"].numpy(), m(x2)["frame_la2"].numpy()
    moved = np.flatnonzero(np.abs(a - b).max(axis=(0, 1)) > 0)
    stretched = harmonic_matrix(FrontendSpec(**frontend), KEY_ARCHS[arch].harmonics, stretched=True)
    out[arch] = {"outputs": sorted([k, list(v.shape)] for k, v in m(x).items()), "params": m.count_params(),
                 "described": arch in ARCHITECTURES, "moved_keys": [int(moved.min()), int(moved.max())],
                 "stretched": bool(np.array_equal(m.get_layer("harmonics").matrix, stretched))}
# causal: changing the last 10 input frames changes no output before them
m = build_model(229, arch="stream-gru", lookaheads=[2])
x = np.random.default_rng(0).normal(size=(1, 60, 229)).astype(np.float32)
x2 = x.copy(); x2[:, 50:] += 3.0
a, b = m(x)["frame_la2"].numpy(), m(x2)["frame_la2"].numpy()
out["gru_causal"] = {"before": float(np.abs(a[:, :31] - b[:, :31]).max()), "after": float(np.abs(a[:, 31:] - b[:, 31:]).max())}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_stream_architectures_have_the_declared_widths_and_a_20_frame_view():
    pytest.importorskip("tensorflow")
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    causal = got.pop("gru_causal")
    keys, wide, pedal = got.pop("stream-keys"), got.pop("stream-keys-wide"), got.pop("stream-keys-pedal")
    rec, h16, h18 = got.pop("stream-keys-rec"), got.pop("stream-keys-h16"), got.pop("stream-keys-h18")
    h16_pedal, h16_pedal_rec = got.pop("stream-keys-h16-pedal"), got.pop("stream-keys-h16-pedal-rec")
    kx, h16_wide, h16_wider = got.pop("stream-keys-h16-kx"), got.pop("stream-keys-h16-wide"), got.pop("stream-keys-h16-wider")
    h16_ih, h16_ih_pedal_rec = got.pop("stream-keys-h16-ih"), got.pop("stream-keys-h16-ih-pedal-rec")
    h16_ih_rec, h16_ih_recg = got.pop("stream-keys-h16-ih-rec"), got.pop("stream-keys-h16-ih-recg")
    assert keys["params"] < 0.1 * got["stream"]["params"] and wide["params"] > 2.5 * keys["params"]
    # the pedal head: 1x1 conv (2 x 48 -> 32) on the pooled features, one 1x1 conv (32 -> 1) per lookahead
    assert pedal["params"] == keys["params"] + (2 * 48 + 1) * 32 + 33
    notes = [[f"{h}_la2", [1, 11, 88]] for h in ("frame", "offset", "onset", "velocity")]
    # 16 harmonics per key instead of 8: the first 3x3 convolution's 16 filters read 8 more input channels
    assert h16["params"] == keys["params"] + 3 * 3 * 8 * 16 and h16["outputs"] == notes
    # and the 1/3 and 1/4 sub-harmonics: 2 input channels more
    assert h18["params"] == h16["params"] + 3 * 3 * 2 * 16 and h18["outputs"] == notes
    # the pedal's own temporal convolutions (32 -> 16, k4; 16 -> 16, k5), pooled with the notes' features
    branch = 4 * 32 * 16 + 16 + 5 * 16 * 16 + 16
    assert h16_pedal["params"] == h16["params"] + branch + (2 * 48 + 2 * 16 + 1) * 32 + 33
    # and a MinGRU over the pooled features (32 -> 16: two kernels and biases), which the head sees too
    assert h16_pedal_rec["params"] == h16_pedal["params"] + 2 * (32 * 16 + 16) + 16
    # the key offsets: for each of 19 and 24, a 2-tap kernel over keys (32 -> 32 ch, no bias),
    # so a change reaches 12 keys further than the key context's +-12
    assert kx["params"] == h16["params"] + 2 * (2 * 32 * 32) and kx["outputs"] == notes
    assert kx["moved_keys"][1] == h16["moved_keys"][1] + 12, (kx, h16)
    # the capacity ablation: the key context and the temporal convolutions 32 / 48 channels (h16),
    # 48 / 64 (wide), 64 / 96 (wider)
    def trunk(ctx, hidden):
        return (13 * 32 * ctx + ctx) + (4 * ctx * hidden + hidden) + (5 * hidden * hidden + hidden) + 4 * (hidden + 1)
    for arch, ctx, hidden in ((h16_wide, 48, 64), (h16_wider, 64, 96)):
        assert arch["params"] == h16["params"] + trunk(ctx, hidden) - trunk(32, 48) and arch["outputs"] == notes
        assert arch["moved_keys"] == h16["moved_keys"]
    # stretched partials: h16's weights, its stack read where a piano's partials lie
    assert h16_ih["params"] == h16["params"] and h16_ih["outputs"] == notes and h16_ih["stretched"]
    assert h16_ih["moved_keys"] == h16["moved_keys"]
    # and the pedal head with its state on that stack
    assert h16_ih_pedal_rec["params"] == h16_pedal_rec["params"] and h16_ih_pedal_rec["stretched"]
    assert h16_ih_pedal_rec["outputs"] == h16_pedal_rec["outputs"]
    # a MinGRU per key (48 -> 16) on that stack, no pedal: each per-key head sees its state too
    assert h16_ih_rec["params"] == h16_ih["params"] + 2 * (48 * 16 + 16) + 4 * 16
    assert h16_ih_rec["outputs"] == notes and h16_ih_rec["stretched"]
    # and the whole keyboard's features beside each key's: mean and max of the 48 over the keys,
    # 1x1 conv to 16, which the MinGRU (64 -> 16) and every head see: a change reaches every key
    assert h16_ih_recg["params"] == h16_ih["params"] + (2 * 48 * 16 + 16) + 2 * (64 * 16 + 16) + 4 * 32
    assert h16_ih_recg["outputs"] == notes and h16_ih_recg["stretched"] and h16_ih_recg["described"]
    assert h16_ih_recg["moved_keys"] == [0, 87]
    for k in (keys, wide, pedal, rec, h16, h18, h16_pedal, h16_pedal_rec, kx, h16_wide, h16_wider):
        assert not k["stretched"], k
    for k in (keys, wide, pedal, rec, h16, h18, h16_pedal, h16_pedal_rec, kx, h16_wide, h16_wider, h16_ih,
              h16_ih_pedal_rec, h16_ih_rec):
        assert k["described"] and k["moved_keys"][0] == 0 and k["moved_keys"][1] < 88 - 1 - 20, k
    assert keys["outputs"] == wide["outputs"] == notes
    assert pedal["outputs"] == rec["outputs"] == h16_pedal["outputs"] == h16_pedal_rec["outputs"] == \
        sorted(notes + [["pedal_la2", [1, 11, 1]]])
    # the MinGRU (48 -> 24: two kernels and biases); each per-key head and the pedal's pooling see its state too
    assert rec["params"] == pedal["params"] + 2 * (48 * 24 + 24) + 4 * 24 + 2 * 24 * 32
    assert set(got) == {"stream", "stream-wide", "stream-gru", "stream-hs"}
    for arch, widths, hidden in (("stream", [12, 12, 24, 32], 256), ("stream-wide", [16, 16, 32, 48], 320),
                                 ("stream-gru", [12, 12, 24, 32], 256), ("stream-hs", [16, 16, 24, 32], 256)):
        g = got[arch]
        assert g["convs"] == widths and g["hidden"] == hidden and g["described"]
        pedal = ["pedal"] if arch == "stream-gru" else []
        assert g["heads"] == ["frame", "onset", "offset", "velocity"] + pedal
        # 45 input frames, a 20-frame receptive field: 26 outputs per head and lookahead
        assert g["outputs"] == sorted([f"{h}_la{la}", [1, 26, 1 if h == "pedal" else 88]]
                                      for la in (0, 2) for h in g["heads"])
    assert got["stream-wide"]["params"] > 1.3 * got["stream"]["params"]
    assert got["stream-gru"]["params"] > got["stream"]["params"] + 3 * 256 * 256  # the GRU's weights
    # input frames 50.. are first seen by output 31 (outputs start at input frame 19)
    assert causal["before"] == 0.0 and causal["after"] > 0.0, causal
