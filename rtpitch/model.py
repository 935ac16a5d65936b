"""Model files: ``<name>.onnx`` described by ``<name>.json``.

The shipped models are package data in ``rtpitch/models/`` (found with
``importlib.resources``, so an installed wheel has them too); a user's own model
is named by the path to its JSON.  The JSON holds every parameter the engine
needs (frontend, window, tensor names, decoder thresholds) plus provenance and
measured figures.  Nothing about a model is hard-coded elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .decoder import DecoderSpec
from .errors import ConfigError, ModelError
from .events import N_KEYS
from .frontend import FrontendSpec

# The shipped models, as a directory: rtpitch is installed as files (a wheel or a
# source tree), never imported from a zip, so the package data is a real path.
MODELS_DIR = Path(str(resources.files(__package__).joinpath("models")))
DEFAULT_MODEL = "stream"
PEDAL_HEAD = "pedal"  # optional head: (time, 1), probability that the sustain pedal is down


def _read_checked(path: Path, sha256: str, model: str) -> bytes:
    """The bytes of ``path``, checked against ``sha256``; ModelError otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model '{model}': cannot read {path}: {exc.strerror}") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ModelError(
            f"model '{model}': {path.name} does not match the sha256 in its JSON (mismatched or corrupt model file)"
        )
    return data


@dataclass(frozen=True)
class StepGraphSpec:
    """The model's streaming step graph (made by ``train/step_graph.py``).

    It computes what the window graph computes, one hop at a time: input
    (1, m, n_mels), the m newest frames, plus one cache per time-mixing
    convolution; output each head as (1, m, 88) (row i predicts input frame i
    minus the lookahead) plus the updated caches.  ``caches`` holds
    ``(input name, output name, shape)`` per cache.  ``recurrent``: the input
    names of the caches that hold a recurrent state (a GRU's, (1, 1, units))
    rather than a convolution's time context: the predictor zeroes them at the
    first real prediction (:meth:`rtpitch.backends.base.Stepper.zero_recurrent`).
    """

    onnx_path: Path
    onnx_sha256: str
    caches: tuple
    recurrent: tuple = ()


@dataclass(frozen=True)
class ModelSpec:
    """Everything the engine reads about one model.

    ``window_frames`` frames go in, the prediction is for the frame
    ``lookahead_frames`` before the last one.  ``input_name`` is a
    (batch, time, n_mels) float32 tensor; each output in ``outputs`` (head name
    -> tensor name) is (batch, time - window_frames + 1, units): 88 keys, 1 for
    the ``pedal`` head (:func:`head_units`).

    ``recurrent`` (the JSON's ``"recurrent": true``): the model carries a state
    from hop to hop (stream-gru's GRU), so its predictions are not those of
    independent windows: it runs only through its step graph, and one run of
    the window graph is one sequence whose state starts at zero at its first
    output.
    """

    name: str
    onnx_path: Path
    onnx_sha256: str
    frontend: FrontendSpec
    window_frames: int
    lookahead_frames: int
    input_name: str
    outputs: dict
    decoder: DecoderSpec
    step: StepGraphSpec | None = None
    recurrent: bool = False
    info: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def context_frames(self) -> int:
        """Frames before the predicted one."""
        return self.window_frames - 1 - self.lookahead_frames

    def onnx_bytes(self) -> bytes:
        """The window graph's ONNX file, checked against the hash in the JSON."""
        return _read_checked(self.onnx_path, self.onnx_sha256, self.name)

    def step_onnx_bytes(self) -> bytes:
        """The step graph's ONNX file, checked against its hash (``step`` must be set)."""
        return _read_checked(self.step.onnx_path, self.step.onnx_sha256, self.name)


#: Units per head where not one per key (N_KEYS): the sustain pedal's one sigmoid.
HEAD_UNITS = {PEDAL_HEAD: 1}


def head_units(head: str) -> int:
    """Outputs per frame of ``head``: 88 (one per key), 1 for ``pedal``."""
    return HEAD_UNITS.get(head, N_KEYS)


def resolve_model_path(name_or_path: str) -> Path:
    """A shipped model's name or a path to a .json/.onnx file -> the JSON path."""
    p = Path(name_or_path)
    if p.suffix in (".json", ".onnx"):
        return p.with_suffix(".json")
    return MODELS_DIR / f"{name_or_path}.json"


def available_models() -> list[str]:
    """Names of the models shipped with the package (``rtpitch/models/``)."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.json"))


def _step_spec(path: Path, meta: dict | None) -> StepGraphSpec | None:
    if meta is None:
        return None
    caches = tuple((c["input"], c["output"], tuple(int(d) for d in c["shape"])) for c in meta["caches"])
    recurrent = tuple(c["input"] for c in meta["caches"] if c.get("recurrent", False))
    return StepGraphSpec(onnx_path=path.with_name(meta["onnx"]), onnx_sha256=meta["onnx_sha256"], caches=caches,
                         recurrent=recurrent)


def load_model_spec(name_or_path: str = DEFAULT_MODEL) -> ModelSpec:
    """Read and check a model's JSON; raises ModelError with a one-line reason."""
    path = resolve_model_path(name_or_path)
    if not path.is_file():
        known = ", ".join(available_models()) or "none"
        raise ModelError(f"model '{name_or_path}' not found ({path}); shipped models: {known}")
    try:
        meta = json.loads(path.read_text())
        fe = meta["frontend"]
        frontend = FrontendSpec(
            sample_rate=int(fe["sample_rate"]), n_fft=int(fe["n_fft"]), hop_length=int(fe["hop_length"]),
            n_mels=int(fe["n_mels"]), fmin=float(fe["fmin"]), fmax=float(fe["fmax"]),
            log_offset=float(fe["log_offset"]), htk=bool(fe.get("htk", False)),
            window_fall=None if fe.get("window_fall") is None else int(fe["window_fall"]),
        )
        spec = ModelSpec(
            name=meta["name"],
            onnx_path=path.with_name(meta["onnx"]),
            onnx_sha256=meta["onnx_sha256"],
            frontend=frontend,
            window_frames=int(meta["window"]["frames"]),
            lookahead_frames=int(meta["window"]["lookahead_frames"]),
            input_name=meta["input"],
            outputs=dict(meta["outputs"]),
            decoder=DecoderSpec.from_dict(meta.get("decoder", {})),
            step=_step_spec(path, meta.get("streaming")),
            recurrent=bool(meta.get("recurrent", False)),
            info=meta,
        )
    except ConfigError as exc:  # a setting out of range
        raise ModelError(f"model '{name_or_path}': {path.name} is not a valid model description ({exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"model '{name_or_path}': {path.name} is not a valid model description ({exc!r})") from None
    if not 0 <= spec.lookahead_frames < spec.window_frames:
        raise ModelError(f"model '{spec.name}': lookahead_frames must be in [0, window_frames)")
    if "frame" not in spec.outputs or "onset" not in spec.outputs:
        raise ModelError(f"model '{spec.name}': outputs must name at least 'frame' and 'onset' heads")
    if spec.step is not None and spec.step.recurrent and not spec.recurrent:
        raise ModelError(f"model '{spec.name}': its step graph carries a recurrent state but the JSON does not "
                         "say \"recurrent\": true")
    if spec.recurrent and spec.step is not None and not spec.step.recurrent:
        raise ModelError(f"model '{spec.name}': a recurrent model whose step graph carries no recurrent state "
                         "(remake it: python -m train.step_graph)")
    return spec
