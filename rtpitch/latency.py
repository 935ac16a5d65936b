"""The latency budget: every term between a note's onset and its note-on (ms).

The algorithmic terms are the capture block plus each stage's own
``latency_s`` (:class:`rtpitch.stage.Stage`), in pipeline order; the compute
term is measured (median per hop) when available.  The end-to-end figure is
measured separately (benchmarks/latency.py); this is what it should add up to.
"""

from __future__ import annotations

from .model import ModelSpec

# capture block assumed where none is known (a model JSON's algorithmic_latency_ms):
# 256 samples at 48 kHz, a common interface setting; `rtpitch bench --device` measures the user's own
DEFAULT_CAPTURE_BLOCK_S = 256 / 48000


def latency_budget(stages: list, *, capture_block_s: float, compute_s: float | None = None) -> list[tuple[str, float]]:
    """Terms of the latency budget as (name, milliseconds), in pipeline order.

    stages: the engine's stages (``Engine.stages`` or :func:`rtpitch.engine.build_stages`).
    capture_block_s: audio block the capture delivers at once (s).
    compute_s: measured compute per hop (s), added when given.
    """
    terms = [("capture block", 1e3 * capture_block_s)]
    terms += [(stage.latency_label, 1e3 * stage.latency_s) for stage in stages]
    if compute_s is not None:
        terms.append(("compute per hop (median)", 1e3 * compute_s))
    return terms


def model_budget(spec: ModelSpec, *, capture_block_s: float = DEFAULT_CAPTURE_BLOCK_S) -> list[tuple[str, float]]:
    """The budget of ``spec``'s stages for input at the model's own rate (no resampling)."""
    from .engine import build_stages

    stages = build_stages(spec, None, source_rate=spec.frontend.sample_rate)
    return latency_budget(stages, capture_block_s=capture_block_s)


def algorithmic_latency_ms(spec: ModelSpec, *, capture_block_s: float = DEFAULT_CAPTURE_BLOCK_S) -> float:
    """Sum of :func:`model_budget`'s terms (no compute, no resampler), ms."""
    return sum(ms for _, ms in model_budget(spec, capture_block_s=capture_block_s))


def format_budget(terms: list[tuple[str, float]]) -> str:
    """A small text table with a total line."""
    width = max(len(name) for name, _ in terms)
    lines = [f"  {name:<{width}}  {ms:7.1f} ms" for name, ms in terms]
    lines.append(f"  {'total':<{width}}  {sum(ms for _, ms in terms):7.1f} ms")
    return "\n".join(lines)
