"""What a training run was trained with, read from the run itself (train/export.py).

``RUN/recipe.jsonl`` holds train.py's arguments, one line per phase; the
frontend is recorded with the data the run trained on (each segment of a
dataset's manifest.jsonl, written by build_dataset.py). Export restates none of
it: a value given on its command line is only a check, and a mismatch is an
error.
"""

from __future__ import annotations

import json
import os

from rtpitch.frontend import FrontendSpec


def run_parameters(recipe: list[dict], *, lookahead: int | None = None) -> dict:
    """The model parameters a run trained with, from its recipe (one dict of
    train.py's arguments per phase): ``arch``, ``window``, ``lookahead`` and
    ``lookaheads`` (list, or None for a single-lookahead run).

    Every phase must agree (a run does not change its model between phases).
    ``lookahead`` picks the heads of a multi-lookahead run (required then, and
    one the run trained); for a single-lookahead run it is only a check.
    Raises ValueError on any mismatch.
    """
    def one(key, default=None):
        values = {json.dumps(p.get(key, default)) for p in recipe}
        if len(values) != 1:
            raise ValueError(f"its phases disagree on {key}: {sorted(values)}")
        return json.loads(values.pop())

    multi = one("lookaheads")
    multi = [int(v) for v in multi.split(",")] if multi else None
    out = {"arch": one("arch", "seed"), "window": int(one("window")), "lookaheads": multi}
    if multi is not None:
        if lookahead is None:
            raise ValueError(f"it trained lookaheads {multi}: name the one to export with --lookahead")
        if lookahead not in multi:
            raise ValueError(f"it trained lookaheads {multi}, not {lookahead}")
        out["lookahead"] = lookahead
    else:
        trained = int(one("lookahead"))
        if lookahead is not None and lookahead != trained:
            raise ValueError(f"it trained lookahead {trained}, not {lookahead}")
        out["lookahead"] = trained
    return out


def run_frontend(recipe: list[dict], *, check: str | None = None) -> dict:
    """The frontend (FrontendSpec fields) the run's features were made with: a
    phase's own ``frontend`` where the recipe records one (train.py for a
    harmonic-input model, train/from_onnx.py),
    else the ``frontend`` of the segments of every dataset the phase trained on
    (their manifest.jsonl, written by build_dataset.py; noise-only data has
    none). The last phase's data must be here; an earlier phase's folder that
    is gone is named on stdout. ``check``: a frontend JSON file (or a model
    JSON) that must give the same frontend. Raises ValueError when they differ
    or none is found."""
    found: dict = {}  # FrontendSpec -> (its dict, where it was read)
    for i, phase in enumerate(recipe):
        if phase.get("frontend") is not None:
            found.setdefault(FrontendSpec(**phase["frontend"]), (phase["frontend"], "recipe.jsonl"))
            continue
        for folder in phase["data"].split(","):
            path = os.path.join(folder, "manifest.jsonl")
            if not os.path.exists(path) and i < len(recipe) - 1:
                print(f"note: {path} (data of phase {i}) is not here: its frontend is not checked")
                continue
            if not os.path.exists(path):
                raise ValueError(f"cannot read the frontend it trained with: {path} is missing")
            for line in open(path):
                fe = json.loads(line).get("frontend")
                if fe is not None:
                    found.setdefault(FrontendSpec(**fe), (fe, path))
    if len(found) != 1:
        where = ", ".join(w for _, w in found.values())
        raise ValueError(f"its data was made with {len(found)} different frontends ({where})" if found
                         else "its data records no frontend")
    spec, (frontend, _) = next(iter(found.items()))
    if check is not None:
        given = json.load(open(check))
        given = given.get("frontend", given)
        if FrontendSpec(**given) != spec:
            raise ValueError(f"--frontend {check} is not the frontend it trained with ({frontend})")
    return frontend


def progress(steps: int, batch: int, seq: int) -> dict:
    """How far a run got, as its state.json records it: steps, batch, sequence length and the
    labelled frames seen (steps x batch x seq)."""
    return {"steps": steps, "batch": batch, "seq": seq, "labelled_frames_seen": steps * batch * seq}
