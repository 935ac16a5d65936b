"""A GRU whose gates see only the input (a "minimal GRU"), run over long
sequences in parallel: a state per key that the step graph carries from hop to hop.

For input ``x_t`` (B, T, K, C) -- K independent sequences (the keys) per batch row:

    z_t = sigmoid(x_t W_z + b_z)          update gate, (B, T, K, H)
    g_t = tanh(x_t W_h + b_h)             candidate
    h_t = z_t * h_{t-1} + (1 - z_t) * g_t,   h_{-1} = 0

This is ONNX's ``GRU`` with zero recurrent weights (R = 0, recurrent biases 0;
then the reset gate has nothing to act on), so train/export.py writes it as one
``GRU`` node with the keys as its batch, and train/step_graph.py carries its
state (1, K, H) like stream-gru's. A Keras GRU runs a crop's frames one after
the other, which on a CPU costs more than the whole per-key CNN. Here the
recurrence is linear in ``h`` given the gates, so it is solved in
parallel within chunks of ``CHUNK`` frames (cumulative sums), and only the
chunks' end states run one after another (:func:`linear_scan`). The gate is
clipped at z >= 4.5e-5 there (an ONNX GRU does not clip; where a gate is below
that, the state differs by at most 4.5e-5 of the state before it).
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.keras import layers

CHUNK = 8  # frames per chunk: the chunks' states run one after another, the frames within one at once
LOG_Z_MIN = -10.0  # log z is clipped here (z >= 4.5e-5): CHUNK x 10 stays inside float32's exp range


def linear_scan(log_z, u):
    """h_t = z_t h_{t-1} + u_t from h_{-1} = 0 along axis 1. log_z, u: (B, T, K, H),
    log_z <= 0 (clipped at LOG_Z_MIN). Returns h (B, T, K, H).

    Within a chunk, with w_i = log z_1 + .. + log z_i, h_i = exp(w_i) (h_0 +
    sum_{k<=i} exp(-w_k) u_k): two cumulative sums, no loop; exp(-w_k) <=
    exp(CHUNK x 10). Then one short loop over the chunks carries the state
    from each chunk's end into the next."""
    b, t, k, units = (tf.shape(u)[i] for i in range(4))
    pad = (-t) % CHUNK  # padding frames: z = 1, u = 0 (they change nothing before them)
    log_z = tf.pad(tf.maximum(log_z, LOG_Z_MIN), [[0, 0], [0, pad], [0, 0], [0, 0]])
    u = tf.pad(u, [[0, 0], [0, pad], [0, 0], [0, 0]])
    n = (t + pad) // CHUNK
    # (n, CHUNK, B, K, H): each key's sequence cut into chunks, the chunks first
    log_z = tf.transpose(tf.reshape(log_z, (b, n, CHUNK, k, units)), (1, 2, 0, 3, 4))
    u = tf.transpose(tf.reshape(u, (b, n, CHUNK, k, units)), (1, 2, 0, 3, 4))
    within = tf.cumsum(log_z, axis=1)                                  # decay since the chunk's start
    decay = tf.exp(within)                                             # >= exp(CHUNK x LOG_Z_MIN)
    local = decay * tf.cumsum(tf.exp(-within) * u, axis=1)             # the state from 0 at the chunk's start
    ends = tf.scan(lambda h, e: e[0] * h + e[1], (decay[:, -1], local[:, -1]),
                   initializer=tf.zeros_like(u[0, 0]))                 # (n, B, K, H): the state at each chunk's end
    before = tf.concat([tf.zeros_like(ends[:1]), ends[:-1]], axis=0)  # the state entering each chunk
    h = local + decay * before[:, None]
    h = tf.reshape(tf.transpose(h, (2, 0, 1, 3, 4)), (b, n * CHUNK, k, units))
    return h[:, :t]


class MinGRU(layers.Layer):
    """(B, T, K, C) -> (B, T, K, units): the module docstring's recurrence over T,
    one per (batch row, k), weights shared over k. Computed in float32 (the
    cumulative sums) under mixed precision too."""

    def __init__(self, units: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        c = int(input_shape[-1])
        self.gate_kernel = self.add_weight(name="gate_kernel", shape=(c, self.units), initializer="glorot_uniform")
        # bias 1: gates start near 0.73, a state that lasts a few frames
        self.gate_bias = self.add_weight(name="gate_bias", shape=(self.units,), initializer="ones")
        self.kernel = self.add_weight(name="kernel", shape=(c, self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, x):
        x = tf.cast(x, tf.float32)
        logits = tf.einsum("btkc,ch->btkh", x, self.gate_kernel) + self.gate_bias
        g = tf.tanh(tf.einsum("btkc,ch->btkh", x, self.kernel) + self.bias)
        log_z = -tf.nn.softplus(-logits)  # log sigmoid
        return linear_scan(log_z, (1.0 - tf.sigmoid(logits)) * g)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
