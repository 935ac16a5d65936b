"""The models, fully convolutional in time (Keras).

Input: log-mel (batch, T, n_mels).  Outputs (batch, T - window + 1, 88) per
head, sigmoid: frame, onset, velocity (velocity / 127), and for the streaming
CNN also offset (key release).  Served on one window (T = window) per hop;
trained on long sequences, in float32 or with bfloat16 compute (``train.py
--precision mixed_bfloat16``: the weights stay float32, so checkpoints and
exports are the same either way).

``seed``: two blocks of two 3x3 convolutions (time 'valid', frequency 'same')
with frequency max-pooling, then a "dense" layer that sees the remaining
(window - 8) frames x all frequencies (a Conv2D whose kernel covers them).

``stream``: sized for a 10 ms hop on one CPU core.  Four 3x3 convolutions
(12, 12, 24, 32 channels, frequency pooled after the 2nd, 3rd and 4th) see 9
frames; a per-frame dense layer (256) on what is left of the frequency axis;
two temporal convolutions (kernel 4, then 5 with dilation 2) widen the view to
20 frames.  About 1.3 M multiply-adds per frame; per 20-frame window ~25 M
(the seed: ~40 M, most of it a 5.6 M-weight dense layer).

``stream-wide``: the same with 16, 16, 32, 48 channels and 320 hidden units:
about 1.75x the multiply-adds per frame, within the one-core budget per hop.

``stream-gru``: the stream CNN's trunk, then a causal GRU (256 units) that runs
once per hop over the trunk's features, so what the model knows (keys held,
the pedal) reaches back beyond the 20-frame window; the heads see the trunk's
features and the GRU's state. Adds a ``pedal`` head: one sigmoid per frame,
sustain pedal (CC64 >= 64) down. Its layer names match the stream CNN's, so a
run can start from a stream checkpoint (train.py --init-from). The GRU starts
from a zero state at the first output of every crop; rtpitch serves the model
only through its step graph (train/export.py writes the GRU as an ONNX GRU and
makes the step graph, the GRU's state one more cache), whose state it zeroes
at the first real prediction, so a live stream starts as a crop does.

``stream-hs``: the stream CNN on a harmonic stack instead of the mel image: the
standardised log-mel read at 8 harmonics (0.5, 1 .. 7) of each of the 88 keys'
fundamentals (train/harmonics.py; one fixed MatMul), so its four 3x3
convolutions (16, 16, 24, 32 channels) run over (time, key) with the harmonics
as input channels and no pooling: a key's features stay at its key. Then the
stream CNN's dense, temporal convolutions and heads. About 1.4x stream's
multiply-adds per frame. Needs the frontend (the mel bands' frequencies).

``stream-keys``: the harmonic stack and stream-hs's four convolutions, but no
dense layer: every later layer runs per key with weights shared across keys
(Basic Pitch's shape, made causal). A convolution over keys (13 taps, dilation
2: +-12 keys, 32 channels) gives each key its neighbours' evidence (an octave
above and below: is this energy an overtone?); two temporal convolutions (48
channels, kernel 4, then 5 with dilation 2) over each key's features widen the
view to 20 frames, and each head is one 1x1 convolution: a sigmoid per key.
About 1.7x stream's multiply-adds per frame. ``stream-keys-wide``: the same with
16, 16, 32, 48 channels, key context 64 and temporal 96: about 4x stream's.
``stream-keys-pedal``: stream-keys with a ``pedal`` head: the per-key temporal
features' mean and max over the keys, a 1x1 convolution (32), a sigmoid per
frame. It sees the 20-frame window only (strings still sounding after their
keys' release, sympathetic resonance); its layer names are stream-keys', so it
starts from a stream-keys run (train.py --init-from).
``stream-keys-rec``: stream-keys-pedal with a state per key: a minimal GRU (24
units; train/min_gru.py: its gates see the input only, so it trains as fast as
a convolution) runs over each key's temporal features, and the heads (the
pedal's pooling too) see the features and the state, so a key held, released
or under the pedal is known beyond the 20-frame window. Served only through
its step graph (an ONNX GRU per key, the keys its batch), like stream-gru.
Its layer names are stream-keys-pedal's; started from stream-keys or
stream-keys-pedal, the heads' kernels widen with zeros for the state
(train.py --init-from), so it starts out computing what they do.
``stream-keys-h16``: stream-keys reading 16 harmonics per key (0.5, 1 .. 15,
train/harmonics.py HARMONICS_16): a bass key's low harmonics fall where the mel
bands are wider than a semitone, its higher ones where they are not. The new
harmonics come after the old in the input channels, so grown from a
stream-keys run (train.py --init-from) it starts out computing what it did.
``stream-keys-h18``: stream-keys-h16 reading the 1/3 and 1/4 sub-harmonics of
each key too (HARMONICS_18), where a played key lies when this key is its 3rd
or 4th harmonic (overtones are the largest kind of false note); grown from a
stream-keys-h16 run the same way.
``stream-keys-h16-pedal``: stream-keys-h16 with a pedal head that has its own
per-key temporal convolutions (16 channels, kernel 4, then 5 with dilation 2)
on the 3x3 convolutions' features: how a key's sound decays after its release
(damped, or held by the pedal) is the pedal's clearest trace, and the notes'
temporal features are not made to keep it. Their mean and max over the keys,
with those of the notes' features, go to stream-keys-pedal's pooled head. Its
other layers are stream-keys-h16's, so the head can be trained alone on a
finished stream-keys-h16 run (train.py --init-from, --train-only pedal) and
the notes stay exactly what they were.
``stream-keys-h16-pedal-rec``: stream-keys-h16-pedal whose pedal head carries a
state from hop to hop: a minimal GRU (16 units, train/min_gru.py) over the
pooled pedal features, the head seeing both. Whether the pedal is down while
no key is released (nothing damped or held to hear) is known only from the
last evidence, often older than the 20-frame window. Started from a
stream-keys-h16-pedal run, the head's kernel widens with zeros for the state
(train.py --init-from); served only through its step graph.
``stream-keys-h16-kx``: stream-keys-h16 whose key context also sees the 3x3
convolutions' features of the keys 19 and 24 below and above (a 1x1
convolution of each pair, added before the context's ReLU): the key context
reaches +-12 in even steps, and a note's 3rd and 4th harmonics, a twelfth and
two octaves up, are where most overtone false notes lie. The new kernels start
at zero, so grown from a stream-keys-h16 run (train.py --init-from) it starts
out computing what that run did.
``stream-keys-h16-wide`` and ``-wider``: stream-keys-h16 with a wider key context
and temporal convolutions (48 and 64; 64 and 96 channels), grown the same way.
``stream-keys-h16-ih``: stream-keys-h16 reading each partial where a piano's
stiff strings put it, h f0 sqrt(1 + B h^2) (train/harmonics.py), not at h f0:
the same weights' shapes, so it starts from a stream-keys-h16 run's weights and
relearns what the shifted readings mean.
``stream-keys-h16-ih-rec``: stream-keys-h16-ih with a minimal GRU per key (16
units) whose state the note heads see: whether a key is still held once its
note has decayed past what 20 frames show.
``stream-keys-h16-ih-recg``: stream-keys-h16-ih-rec whose GRU and heads also see the
features of the whole keyboard (mean and max over the keys, 16 channels, the same for
every key): whether the pedal is down, which a key's own 20 frames do not show.
``stream-keys-h16-ih-pedal-rec``: stream-keys-h16-ih with stream-keys-h16-pedal-rec's
pedal head, trained alone on a stream-keys-h16-ih run (--train-only pedal), so
the notes stay that run's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

from rtpitch.events import N_KEYS
from rtpitch.frontend import FrontendSpec
from rtpitch.model import head_units
from train.harmonics import HARMONICS, HARMONICS_16, HARMONICS_18, harmonic_matrix
from train.min_gru import MinGRU


class Standardize(layers.Layer):
    """(x - mean) / std per mel bin, with the statistics as graph constants."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = np.asarray(mean, np.float32)
        self.inv_std = (1.0 / np.asarray(std, np.float32)).astype(np.float32)

    def call(self, x):  # in the layer's compute dtype (bfloat16 under mixed precision)
        return (x - tf.constant(self.mean, x.dtype)) * tf.constant(self.inv_std, x.dtype)


class HarmonicStack(layers.Layer):
    """x @ matrix: (B, T, n_mels) -> (B, T, 88 * H), the matrix a graph constant
    (train/harmonics.py)."""

    def __init__(self, matrix, **kwargs):
        super().__init__(**kwargs)
        self.matrix = np.asarray(matrix, np.float32)

    def call(self, x):
        return tf.linalg.matmul(x, tf.constant(self.matrix, x.dtype))


class TileKeys(layers.Layer):
    """(B, T, 1, C) -> (B, T, 88, C): one value of the whole piano beside every key's own."""

    def call(self, x):
        return tf.tile(x, [1, 1, N_KEYS, 1])


def _conv_block(x, channels: int, name: str):
    for i in range(2):
        x = layers.ZeroPadding2D(((0, 0), (1, 1)), name=f"{name}_pad{i}")(x)
        x = layers.Conv2D(channels, 3, padding="valid", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return layers.MaxPooling2D((1, 2), name=f"{name}_pool")(x)


ARCHITECTURES = {
    "seed": "seed CNN: 2 blocks of 2 3x3 conv (16, 32 ch) + freq max-pool, dense 256 over the "
            "remaining 12 frames, heads frame/onset/velocity (88 sigmoid each)",
    "stream": "streaming CNN: 4 3x3 conv (12, 12, 24, 32 ch; freq max-pool after conv 2, 3, 4), per-frame "
              "dense 256, temporal conv k4 then k5 dilation 2 (256 ch), heads frame/onset/offset/velocity",
    "stream-wide": "streaming CNN, wider: 4 3x3 conv (16, 16, 32, 48 ch; freq max-pool after conv 2, 3, 4), "
                   "per-frame dense 320, temporal conv k4 then k5 dilation 2 (320 ch), heads "
                   "frame/onset/offset/velocity",
}
ARCHITECTURES["stream-gru"] = ARCHITECTURES["stream"] + ", pedal; a causal GRU (256) over the trunk's " \
                                                       "features feeds the heads"
ARCHITECTURES["stream-hs"] = "streaming CNN on a harmonic stack: log-mel at harmonics 0.5, 1..7 of the 88 " \
                              "keys (fixed MatMul), 4 3x3 conv over (time, key) (16, 16, 24, 32 ch, no pooling), " \
                              "per-frame dense 256, temporal conv k4 then k5 dilation 2 (256 ch), heads " \
                              "frame/onset/offset/velocity"
NOTE_HEADS = ("frame", "onset", "offset", "velocity")
HEADS = {"seed": ("frame", "onset", "velocity"), "stream": NOTE_HEADS, "stream-wide": NOTE_HEADS,
         "stream-gru": NOTE_HEADS + ("pedal",), "stream-hs": NOTE_HEADS}
STREAM_WIDTHS = {"stream": ((12, 12, 24, 32), 256), "stream-wide": ((16, 16, 32, 48), 320),
                 "stream-gru": ((12, 12, 24, 32), 256), "stream-hs": ((16, 16, 24, 32), 256)}  # channels, hidden
RECURRENT_UNITS = {"stream-gru": 256}  # GRU after the trunk
PEDAL_POOLED = 32  # per-key archs' pedal head: 1x1 conv on the features pooled over keys


@dataclass(frozen=True)
class KeyArch:
    """A per-key architecture (:func:`build_key_cnn`): the 3x3 convolutions' ``channels``,
    the key context's channels, the per-key temporal convolutions' (``hidden``), the
    ``harmonics`` read per key; ``key_offsets``: keys (+-) whose 3x3 convolution features a
    key also sees (() none); ``recurrent``: a MinGRU per key (units, 0 none); a ``pedal``
    head, with ``pedal_branch`` channels of its own temporal convolutions (0 none) and
    ``pedal_recurrent`` units of a MinGRU over the pooled features (0 none); ``pooled``:
    channels of the features pooled over all keys that each key's GRU and heads see
    beside its own (0 none); ``stretched``:
    partials read where a piano's stiff strings put them (train/harmonics.py)."""

    channels: tuple = (16, 16, 24, 32)
    context: int = 32
    hidden: int = 48
    harmonics: tuple = HARMONICS
    key_offsets: tuple = ()
    recurrent: int = 0
    pooled: int = 0
    pedal: bool = False
    pedal_branch: int = 0
    pedal_recurrent: int = 0
    stretched: bool = False

    @property
    def heads(self) -> tuple:
        return NOTE_HEADS + ("pedal",) * self.pedal

    def describe(self) -> str:
        subs = "".join(f", 1/{round(1 / h)}" for h in self.harmonics if h < 0.5)
        stretched = " (partials stretched as a stiff string's)" if self.stretched else ""
        s = (f"streaming CNN per key on a harmonic stack: log-mel at harmonics 0.5, 1..{max(self.harmonics)}{subs}"
             f"{stretched} "
             f"of the 88 keys (fixed MatMul), 4 3x3 conv over (time, key) ({', '.join(map(str, self.channels))} ch), "
             f"conv over keys (13 taps, dilation 2, {self.context} ch)")
        if self.key_offsets:
            s += f" plus the 3x3 conv features of the keys {', '.join(f'+-{d}' for d in self.key_offsets)} away"
        s += (f", per-key temporal conv k4 then k5 dilation 2 ({self.hidden} ch), 1x1 conv heads "
              f"frame/onset/offset/velocity")
        if self.pooled:
            s += (f", with each key's temporal features its mean and max over the keys, 1x1 conv ({self.pooled} ch), "
                  f"the same for every key")
        if self.recurrent:
            return s + (", pedal as stream-keys-pedal" * self.pedal + f"; a minimal GRU per key ({self.recurrent} "
                        f"units, gates from the input) whose state the heads see too")
        if not self.pedal:
            return s
        if self.pedal_branch:
            s += (f", pedal: its own per-key temporal conv k4 then k5 dilation 2 ({self.pedal_branch} ch) on the "
                  f"3x3 conv features, mean and max over keys of both temporal features, 1x1 conv ({PEDAL_POOLED} ch)")
        else:
            s += f", pedal: mean and max over keys of the temporal features, 1x1 conv ({PEDAL_POOLED} ch)"
        if self.pedal_recurrent:
            return s + (f", a minimal GRU ({self.pedal_recurrent} units, gates from the input) over it, "
                        f"sigmoid over both")
        return s + ", sigmoid"


KEY_ARCHS = {"stream-keys": KeyArch(),
             "stream-keys-wide": KeyArch((16, 16, 32, 48), 64, 96),
             "stream-keys-pedal": KeyArch(pedal=True),
             "stream-keys-rec": KeyArch(recurrent=24, pedal=True),
             "stream-keys-h16": KeyArch(harmonics=HARMONICS_16),
             "stream-keys-h18": KeyArch(harmonics=HARMONICS_18),
             "stream-keys-h16-pedal": KeyArch(harmonics=HARMONICS_16, pedal=True, pedal_branch=16),
             "stream-keys-h16-pedal-rec": KeyArch(harmonics=HARMONICS_16, pedal=True, pedal_branch=16,
                                                  pedal_recurrent=16),
             "stream-keys-h16-kx": KeyArch(harmonics=HARMONICS_16, key_offsets=(19, 24)),
             "stream-keys-h16-wide": KeyArch(harmonics=HARMONICS_16, context=48, hidden=64),
             "stream-keys-h16-wider": KeyArch(harmonics=HARMONICS_16, context=64, hidden=96),
             "stream-keys-h16-ih": KeyArch(harmonics=HARMONICS_16, stretched=True),
             "stream-keys-h16-ih-pedal-rec": KeyArch(harmonics=HARMONICS_16, stretched=True, pedal=True,
                                                     pedal_branch=16, pedal_recurrent=16),
             "stream-keys-h16-ih-rec": KeyArch(harmonics=HARMONICS_16, stretched=True, recurrent=16),
             "stream-keys-h16-ih-recg": KeyArch(harmonics=HARMONICS_16, stretched=True, recurrent=16, pooled=16)}
HEADS.update({arch: spec.heads for arch, spec in KEY_ARCHS.items()})
ARCHITECTURES.update({arch: spec.describe() for arch, spec in KEY_ARCHS.items()})
HARMONIC_INPUT = {"stream-hs"} | set(KEY_ARCHS)  # harmonic stack instead of the mel image


def is_recurrent(arch: str) -> bool:
    """Whether ``arch`` carries a state from hop to hop (served only through its step graph)."""
    spec = KEY_ARCHS.get(arch)
    return arch in RECURRENT_UNITS or spec is not None and bool(spec.recurrent or spec.pedal_recurrent)


def output_name(head: str, lookahead: int | None) -> str:
    """Keras output of ``head`` for ``lookahead`` in a model trained for several
    lookaheads at once (``None``: a single-lookahead model, plain head names)."""
    return head if lookahead is None else f"{head}_la{lookahead}"


_HEAD_LAYER = re.compile(r"^(?P<head>\w+?)_la(?P<la>\d+)_(?P<kind>per_key|pooled)$")


def head_layer(name: str) -> tuple[str, int, str] | None:
    """(head, lookahead, kind) of a multi-lookahead head's layer as build_key_cnn names it
    (output_name + "_per_key" or "_pooled"), else None."""
    m = _HEAD_LAYER.match(name)
    return (m["head"], int(m["la"]), m["kind"]) if m else None


def build_model(n_mels: int, window: int = 20, mean=None, std=None, arch: str = "seed",
                lookaheads=None, frontend: dict | None = None) -> keras.Model:
    """The model ``arch`` (see ARCHITECTURES); receptive field = ``window`` frames.

    mean, std: per-mel-bin input statistics (n_mels,) baked into the graph.
    lookaheads: (stream only) one set of heads per lookahead on a shared trunk,
    named by :func:`output_name`; one training run then gives the whole
    latency/accuracy curve, and export keeps the heads of one lookahead.
    frontend: FrontendSpec fields of the input; needed by HARMONIC_INPUT models.
    """
    harmonic = None
    if arch in HARMONIC_INPUT:
        if frontend is None:
            raise ValueError(f"{arch} needs the frontend its input was made with")
        spec = FrontendSpec(**frontend)
        if spec.n_mels != n_mels:
            raise ValueError(f"the frontend has {spec.n_mels} mel bands, the input {n_mels}")
        key_arch = KEY_ARCHS.get(arch, KeyArch())
        harmonic = harmonic_matrix(spec, key_arch.harmonics, key_arch.stretched)
    if arch in KEY_ARCHS:
        return build_key_cnn(n_mels, window, harmonic, KEY_ARCHS[arch], mean=mean, std=std, lookaheads=lookaheads)
    if arch in STREAM_WIDTHS:
        channels, hidden = STREAM_WIDTHS[arch]
        return build_stream_cnn(n_mels, window, channels=channels, hidden=hidden, mean=mean, std=std,
                                lookaheads=lookaheads, gru_units=RECURRENT_UNITS.get(arch, 0), heads=HEADS[arch],
                                harmonic=harmonic)
    if lookaheads is not None:
        raise ValueError("only the stream architectures train several lookaheads at once")
    if arch != "seed":
        raise ValueError(f"unknown architecture {arch!r}")
    return build_seed_cnn(n_mels, window, mean=mean, std=std)


def _input(n_mels: int, mean, std, harmonic=None):
    """The mel input and what the first convolution sees: (B, T, n_mels, 1), or with
    ``harmonic`` (n_mels, 88 * H) the harmonic stack (B, T, 88, H)."""
    mel = keras.Input(shape=(None, n_mels), name="mel")
    x = mel
    if mean is not None:
        x = Standardize(mean, std, name="normalize")(x)
    if harmonic is None:
        return mel, layers.Reshape((-1, n_mels, 1), name="to_image")(x)
    x = HarmonicStack(harmonic, name="harmonics")(x)
    return mel, layers.Reshape((-1, N_KEYS, harmonic.shape[1] // N_KEYS), name="to_keys")(x)


def _head(x, name: str, units: int = N_KEYS):
    """``units`` sigmoids (88 keys; 1 for the pedal), computed in float32 under mixed
    precision too (the losses take log(1 - p) near p = 1, which bfloat16 cannot resolve)."""
    return layers.Dense(units, activation="sigmoid", dtype="float32", name=name)(x)


def _conv(x, channels: int, name: str):
    """3x3 conv, time 'valid' (one frame less on each side), frequency 'same'; BN; ReLU."""
    x = layers.ZeroPadding2D(((0, 0), (1, 1)), name=f"{name}_pad")(x)
    x = layers.Conv2D(channels, 3, padding="valid", use_bias=False, name=f"{name}")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _stream_convs(n_mels: int, window: int, channels, mean, std, harmonic):
    """The streaming models' input and four 3x3 convolutions (9 frames): on the mel
    image with frequency max-pooling after the 2nd, 3rd and 4th, or on the harmonic
    stack (``harmonic`` not None) unpooled, a key's features staying at its key.
    Returns (mel input, (B, T - 8, bands or 88, channels[-1]))."""
    if window != 20:
        raise ValueError("the streaming CNN's receptive field is 20 frames")
    mel, x = _input(n_mels, mean, std, harmonic)
    for i, c in enumerate(channels):
        x = _conv(x, c, f"conv{i + 1}")
        if i >= 1 and harmonic is None:
            x = layers.MaxPooling2D((1, 2), name=f"pool{i + 1}")(x)
    return mel, x


def build_stream_cnn(n_mels: int, window: int = 20, channels=(12, 12, 24, 32), hidden: int = 256,
                     dropout: float = 0.2, mean=None, std=None, lookaheads=None, gru_units: int = 0,
                     heads=HEADS["stream"], harmonic=None) -> keras.Model:
    """The streaming CNN (module docstring); ``window`` must be 20. ``gru_units``: a
    causal GRU over the trunk's per-hop features (0: none); the heads then see both.
    ``harmonic``: (n_mels, 88 * H) harmonic-stack matrix: the convolutions run over
    keys, unpooled, instead of over the mel bands."""
    mel, x = _stream_convs(n_mels, window, channels, mean, std, harmonic)
    x = layers.Conv2D(hidden, (1, x.shape[2]), padding="valid", name="dense1")(x)  # (B, T-8, 1, hidden)
    x = layers.Reshape((-1, hidden), name="squeeze")(x)
    x = layers.ReLU(name="dense1_relu")(x)
    x = layers.Conv1D(hidden, 4, padding="valid", name="tconv1")(x)               # T-11
    x = layers.ReLU(name="tconv1_relu")(x)
    x = layers.Conv1D(hidden, 5, dilation_rate=2, padding="valid", name="tconv2")(x)  # T-19
    x = layers.ReLU(name="tconv2_relu")(x)
    if gru_units:
        state = layers.GRU(gru_units, return_sequences=True, name="gru")(x)  # causal: hop k sees hops <= k
        x = layers.Concatenate(name="trunk_and_state")([x, state])
    x = layers.Dropout(dropout, name="dropout")(x)
    names = [output_name(h, la) for la in (lookaheads or [None]) for h in heads]
    outputs = {n: _head(x, n, head_units(n.split("_la")[0])) for n in names}
    name = "stream_gru" if gru_units else "stream_hs" if harmonic is not None else "stream_cnn"
    return keras.Model(mel, outputs, name=name)


def build_key_cnn(n_mels: int, window: int, harmonic, spec: KeyArch, dropout: float = 0.2, mean=None, std=None,
                  lookaheads=None) -> keras.Model:
    """A per-key architecture (module docstring, :class:`KeyArch`): every layer after
    the 3x3 convolutions runs per key, its weights shared across keys; ``window``
    must be 20. ``harmonic``: (n_mels, 88 * H)."""
    heads = spec.heads
    mel, x = _stream_convs(n_mels, window, spec.channels, mean, std, harmonic)     # (B, T-8, 88, C)
    conv_features = x
    x = layers.ZeroPadding2D(((0, 0), (12, 12)), name="keyctx_pad")(x)
    x = layers.Conv2D(spec.context, (1, 13), dilation_rate=(1, 2), padding="valid", name="keyctx")(x)
    if spec.key_offsets:
        x = layers.Add(name="keyctx_and_offsets")([x] + [_key_offsets(conv_features, d, spec.context)
                                                          for d in spec.key_offsets])
    x = layers.ReLU(name="keyctx_relu")(x)
    x = layers.Conv2D(spec.hidden, (4, 1), padding="valid", name="tconv1")(x)       # T-11
    x = layers.ReLU(name="tconv1_relu")(x)
    x = layers.Conv2D(spec.hidden, (5, 1), dilation_rate=(2, 1), padding="valid", name="tconv2")(x)  # T-19
    x = layers.ReLU(name="tconv2_relu")(x)                                           # (B, T-19, 88, hidden)
    if spec.pooled:  # the whole piano's features beside each key's (a pedal let up damps many keys at once)
        whole = _pool_keys([x], spec.pooled, prefix="all_keys", conv="all_keys")        # (B, T-19, 1, pooled)
        x = layers.Concatenate(name="key_and_all_keys")([x, TileKeys(name="all_keys_tiled")(whole)])
    parts = [x]
    if spec.recurrent:  # causal: frame k's state has seen frames <= k; zero at the first output
        parts.append(MinGRU(spec.recurrent, name="key_gru")(x))                          # (B, T-19, 88, recurrent)
    pooled = None
    if spec.pedal:
        branch = [_pedal_branch(conv_features, spec.pedal_branch)] if spec.pedal_branch else []
        pooled = _pool_keys(parts + branch)                                         # (B, T-19, 1, 32)
        if spec.pedal_recurrent:  # causal, zero at the first output, as the per-key state
            state = MinGRU(spec.pedal_recurrent, name="pedal_gru")(pooled)                 # (B, T-19, 1, units)
            pooled = layers.Concatenate(name="pedal_and_state")([pooled, state])
    x = layers.Concatenate(name="trunk_and_state")(parts) if spec.recurrent else x
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = {}
    for la in lookaheads or [None]:
        for h in heads:
            n = output_name(h, la)
            if h == "pedal":
                y = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name=f"{n}_pooled")(pooled)
                outputs[n] = layers.Reshape((-1, 1), dtype="float32", name=n)(y)    # (B, T-19, 1)
            else:
                y = layers.Conv2D(1, 1, activation="sigmoid", dtype="float32", name=f"{n}_per_key")(x)
                outputs[n] = layers.Reshape((-1, N_KEYS), dtype="float32", name=n)(y)  # (B, T-19, 88)
    return keras.Model(mel, outputs, name="key_cnn")


def _key_offsets(x, d: int, channels: int):
    """(B, T, 88, C) -> (B, T, 88, channels): a 1x1 convolution of the features of the
    keys ``d`` below and ``d`` above each key (zeros past the keyboard's ends): a kernel
    of 2 taps dilated 2d over the keys padded by d. No bias, kernel zero at the start,
    so a run grown from one without it starts out computing what that one did."""
    y = layers.ZeroPadding2D(((0, 0), (d, d)), name=f"keyoff{d}_pad")(x)
    return layers.Conv2D(channels, (1, 2), dilation_rate=(1, 2 * d), padding="valid", use_bias=False,
                         kernel_initializer="zeros", name=f"keyoff{d}")(y)


def _pedal_branch(x, channels: int):
    """(B, T, 88, C) -> (B, T-11, 88, channels): the pedal's own per-key temporal
    convolutions, the notes' temporal shape (kernel 4, then 5 with dilation 2)."""
    y = layers.Conv2D(channels, (4, 1), padding="valid", name="pedal_tconv1")(x)
    y = layers.ReLU(name="pedal_tconv1_relu")(y)
    y = layers.Conv2D(channels, (5, 1), dilation_rate=(2, 1), padding="valid", name="pedal_tconv2")(y)
    return layers.ReLU(name="pedal_tconv2_relu")(y)


def _pool_keys(parts, channels: int = PEDAL_POOLED, prefix: str = "keys", conv: str = "pedal_hidden"):
    """[(B, T, 88, C_i)] per-key features -> (B, T, 1, channels): each one's mean
    and max over the keys (pooling over keys alone, so the step graph keeps it per
    frame), concatenated in that order, then a 1x1 convolution and ReLU (layers
    ``{prefix}_mean``, ``{prefix}_max``, ``{prefix}_pooled``, ``conv``, ``{conv}_relu``).
    The pedal is one state of the whole piano (the defaults: the pedal head's)."""
    pooled = []
    for i, x in enumerate(parts):
        suffix = f"_{i}" if i else ""
        pooled += [layers.AveragePooling2D((1, N_KEYS), name=f"{prefix}_mean{suffix}")(x),
                   layers.MaxPooling2D((1, N_KEYS), name=f"{prefix}_max{suffix}")(x)]
    y = layers.Concatenate(name=f"{prefix}_pooled")(pooled)
    y = layers.Conv2D(channels, 1, name=conv)(y)
    return layers.ReLU(name=f"{conv}_relu")(y)


def build_seed_cnn(n_mels: int, window: int = 20, channels=(16, 32), hidden: int = 256,
                   dropout: float = 0.25, mean=None, std=None) -> keras.Model:
    """The fully convolutional seed CNN; receptive field = ``window`` frames."""
    mel, x = _input(n_mels, mean, std)
    for i, c in enumerate(channels):
        x = _conv_block(x, c, f"block{i + 1}")
    remaining = window - 4 * len(channels)
    freq = x.shape[2]
    x = layers.Conv2D(hidden, (remaining, freq), padding="valid", name="dense1")(x)  # (B, T-w+1, 1, hidden)
    x = layers.Reshape((-1, hidden), name="squeeze")(x)
    x = layers.ReLU(name="dense1_relu")(x)
    x = layers.Dropout(dropout, name="dense1_dropout")(x)
    outputs = {head: _head(x, head) for head in HEADS["seed"]}
    return keras.Model(mel, outputs, name="seed_cnn")
