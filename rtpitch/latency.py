"""The latency budget: every term between a note's onset and its note-on (ms).

Algorithmic terms follow from the model and the audio setup; the compute term
is measured (median per hop) when available.  The end-to-end figure is
measured separately (benchmarks/latency.py); this is what it should add up to.
"""

from __future__ import annotations

from .model import ModelSpec

# the capture block a model card's ``algorithmic_latency_ms`` counts: 256 samples at 48 kHz
CARD_BLOCK_S = 256 / 48000


def latency_budget(spec: ModelSpec, *, capture_block_s: float, resampler_delay_s: float = 0.0,
                   decoder_frames: int = 0, compute_s: float | None = None) -> list[tuple[str, float]]:
    """Terms of the latency budget as (name, milliseconds), in pipeline order.

    capture_block_s: audio block the capture delivers at once (s).
    resampler_delay_s: group delay of the streaming resampler (s).
    decoder_frames: frames the decoder waits before deciding.
    compute_s: measured compute per hop (s), added when given.
    """
    fe = spec.frontend
    terms = [
        ("capture block", 1e3 * capture_block_s),
        ("resampler delay", 1e3 * resampler_delay_s),
        ("FFT window alignment (peak to end)", 1e3 * fe.alignment_s),
        (f"lookahead ({spec.lookahead_frames} x {1e3 * fe.hop_s:g} ms hop)", 1e3 * spec.lookahead_frames * fe.hop_s),
        ("decoder delay", 1e3 * decoder_frames * fe.hop_s),
    ]
    if compute_s is not None:
        terms.append(("compute per hop (median)", 1e3 * compute_s))
    return terms


def algorithmic_latency_ms(spec: ModelSpec, *, capture_block_s: float = 0.0, decoder_frames: int = 0) -> float:
    """Sum of the algorithmic terms (no compute, no resampler), ms."""
    return sum(ms for _, ms in latency_budget(spec, capture_block_s=capture_block_s, decoder_frames=decoder_frames))


def format_budget(terms: list[tuple[str, float]]) -> str:
    """A small text table with a total line."""
    width = max(len(name) for name, _ in terms)
    lines = [f"  {name:<{width}}  {ms:7.1f} ms" for name, ms in terms]
    lines.append(f"  {'total':<{width}}  {sum(ms for _, ms in terms):7.1f} ms")
    return "\n".join(lines)
