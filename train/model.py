"""The seed CNN, fully convolutional in time (Keras).

Input: log-mel (batch, T, n_mels).  Two blocks of two 3x3 convolutions (time
'valid', frequency 'same') with frequency max-pooling, then a "dense" layer that
sees the remaining (window - 8) frames x all frequencies (a Conv2D whose kernel
covers them), a second dense layer per head.  Outputs (batch, T - window + 1, 88)
per head: frame, onset (sigmoid) and velocity (sigmoid, velocity / 127).
Served on one window (T = window) per hop; trained on long sequences.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow import keras
from tensorflow.keras import layers

N_KEYS = 88


class Standardize(layers.Layer):
    """(x - mean) / std per mel bin, with the statistics as graph constants."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = np.asarray(mean, np.float32)
        self.inv_std = (1.0 / np.asarray(std, np.float32)).astype(np.float32)

    def call(self, x):
        return (x - tf.constant(self.mean)) * tf.constant(self.inv_std)


def _conv_block(x, channels: int, name: str):
    for i in range(2):
        x = layers.ZeroPadding2D(((0, 0), (1, 1)), name=f"{name}_pad{i}")(x)
        x = layers.Conv2D(channels, 3, padding="valid", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.ReLU(name=f"{name}_relu{i}")(x)
    return layers.MaxPooling2D((1, 2), name=f"{name}_pool")(x)


def build_model(n_mels: int, window: int = 20, channels=(16, 32), hidden: int = 256,
                dropout: float = 0.25, mean=None, std=None) -> keras.Model:
    """The fully convolutional seed CNN; receptive field = ``window`` frames.

    mean, std: per-mel-bin input statistics (n_mels,) baked into the graph.
    """
    mel = keras.Input(shape=(None, n_mels), name="mel")
    x = mel
    if mean is not None:
        x = Standardize(mean, std, name="normalize")(x)
    x = layers.Reshape((-1, n_mels, 1), name="to_image")(x)
    for i, c in enumerate(channels):
        x = _conv_block(x, c, f"block{i + 1}")
    remaining = window - 4 * len(channels)
    freq = x.shape[2]
    x = layers.Conv2D(hidden, (remaining, freq), padding="valid", name="dense1")(x)  # (B, T-w+1, 1, hidden)
    x = layers.Reshape((-1, hidden), name="squeeze")(x)
    x = layers.ReLU(name="dense1_relu")(x)
    x = layers.Dropout(dropout, name="dense1_dropout")(x)
    outputs = {
        head: layers.Dense(N_KEYS, activation="sigmoid", name=head)(x)
        for head in ("frame", "onset", "velocity")
    }
    return keras.Model(mel, outputs, name="seed_cnn")
