"""train/tune_decoder.py: the offset head's threshold and the pedal's hysteresis, chosen on labels;
how late a setting places note-ons."""

import dataclasses

import numpy as np

from rtpitch.decoder import DecoderSpec
from rtpitch.events import N_KEYS, Activations
from train.tune_decoder import _joined, mean_scores, pedal_f1, tune_offset, tune_pedal

HOP_S = 0.01


def _acts(pedal):
    n = len(pedal)
    z = np.zeros((n, N_KEYS), np.float32)
    return Activations(0, z, z, pedal=np.asarray(pedal, np.float32))


def _track(n, spans):
    down = np.zeros(n, np.uint8)
    for a, b in spans:
        down[a:b] = 1
    return down


def test_pedal_f1_is_one_for_the_labels_own_track_and_none_without_any_pedal():
    down = _track(300, [(20, 120), (200, 260)])
    assert pedal_f1(DecoderSpec(), HOP_S, _acts(down.astype(np.float32)), (down, HOP_S)) == 1.0
    assert pedal_f1(DecoderSpec(), HOP_S, _acts(np.zeros(300)), (np.zeros(300, np.uint8), HOP_S)) is None


def test_tune_pedal_finds_thresholds_that_follow_a_head_which_sits_at_0_45_when_down():
    rng = np.random.default_rng(0)
    down = _track(2000, [(100, 600), (800, 1500), (1700, 1900)])
    prob = np.where(down == 1, 0.45, 0.1) + rng.uniform(-0.04, 0.04, 2000)  # under the default on-threshold
    data = [(_acts(prob), (down, HOP_S))]
    default = pedal_f1(DecoderSpec(), HOP_S, *data[0])
    spec, f1 = tune_pedal(DecoderSpec(), HOP_S, data)
    assert default is None or default < 0.5
    assert f1 > 0.98 and spec.pedal_on_threshold <= 0.4 and spec.pedal_off_threshold <= spec.pedal_on_threshold
    assert tune_pedal(DecoderSpec(), HOP_S, [(_acts(np.zeros(50)), (np.zeros(50, np.uint8), HOP_S))]) is None


def test_joined_activations_keep_the_pedal_row():
    a, b = _acts([0.1, 0.9]), _acts([0.8])
    assert np.array_equal(_joined([a, b]).pedal, np.array([0.1, 0.9, 0.8], np.float32))
    assert _joined([Activations(0, a.frame, a.onset)]).pedal is None


def test_tune_offset_takes_the_offset_head_where_the_frame_head_rings_past_the_release():
    """Ten notes, keys down 0.5 s each; the frame head stays up 0.3 s after each
    release (the sound rings on), the offset head marks the release frame."""
    n = 1200
    frame, onset, offset = (np.zeros((n, N_KEYS), np.float32) for _ in range(3))
    ref = []
    for i in range(10):
        key, a = 30 + i, 100 * i + 20
        onset[a, key] = 0.95
        frame[a : a + 80, key] = 0.9
        offset[a + 50, key] = 0.9
        ref.append((a * HOP_S, (a + 50) * HOP_S, 21 + key, 64))
    acts = Activations(0, frame, onset, offset=offset)
    base = DecoderSpec(onset_threshold=0.5, frame_threshold=0.5, off_threshold=0.3)
    spec, note, frame_f1, offset_f1, lag_ms = tune_offset(base, HOP_S, [(acts, np.array(ref, float))])
    assert spec.offset_threshold is not None and spec.offset_threshold <= 0.9
    assert note == 1.0 and offset_f1 == 1.0 and frame_f1 > 0.99 and abs(lag_ms) < 1.0


def test_a_high_onset_threshold_that_the_head_reaches_two_frames_late_shows_as_onset_lag():
    """The onset head rises 0.6 -> 0.8 -> 0.95 over three frames from each key's strike
    (a lookahead-0 model hearing an attack it has only begun to see)."""
    n = 1100
    frame, onset = np.zeros((n, N_KEYS), np.float32), np.zeros((n, N_KEYS), np.float32)
    ref = []
    for i in range(10):
        key, a = 40 + i, 100 * i + 20
        onset[a : a + 3, key] = (0.6, 0.8, 0.95)
        frame[a : a + 60, key] = 0.9
        ref.append((a * HOP_S, (a + 60) * HOP_S, 21 + key, 64))
    data = [(Activations(0, frame, onset), np.array(ref, float))]
    early = DecoderSpec(onset_threshold=0.5, frame_threshold=0.5, off_threshold=0.3)
    note, _, _, lag_ms = mean_scores(early, HOP_S, data)
    assert note == 1.0 and abs(lag_ms) < 1.0
    note, _, _, lag_ms = mean_scores(dataclasses.replace(early, onset_threshold=0.9), HOP_S, data)
    assert note == 1.0 and abs(lag_ms - 20.0) < 1.0  # as right by F1 (50 ms tolerance), two hops later


def test_pedal_only_tunes_the_pedal_and_keeps_the_note_settings(tmp_path, monkeypatch):
    """--pedal-only on a model JSON whose note settings differ from the defaults: the
    pedal's thresholds follow a head that sits at 0.45 when down, the note settings
    and their tuning record stay."""
    import json
    import types

    import train.tune_decoder as td

    rng = np.random.default_rng(1)
    down = _track(2000, [(100, 600), (800, 1500), (1700, 1900)])
    prob = np.where(down == 1, 0.45, 0.1) + rng.uniform(-0.04, 0.04, 2000)
    audio = tmp_path / "val_00000.flac"
    audio.write_bytes(b"")
    (tmp_path / "val_00000.tsv").write_text("")
    np.savez(tmp_path / "val_00000.npz", timbre="salamander", pedal=down, meta=json.dumps({"hop_s": HOP_S}))
    notes = DecoderSpec(onset_threshold=0.85, release_ratio=0.3)
    model = tmp_path / "m.json"
    model.write_text(json.dumps({"decoder": dataclasses.asdict(notes),
                                 "evaluation": {"decoder_tuning": {"note_f1": 0.8}}}))
    spec = types.SimpleNamespace(outputs=["frame", "onset", "pedal"], decoder=notes,
                                 frontend=types.SimpleNamespace(hop_s=HOP_S))
    monkeypatch.setattr(td, "load_model_spec", lambda name: spec)
    monkeypatch.setattr(td, "make_backend", lambda *a, **k: None)
    monkeypatch.setattr(td, "resolve_model_path", lambda name: str(model))
    monkeypatch.setattr(td, "activations", lambda spec, backend, a: _acts(prob))
    td.main(["--model", "m", "--rendered", str(tmp_path), "--pedal-only"])
    meta = json.loads(model.read_text())
    got = DecoderSpec.from_dict(meta["decoder"])
    assert got.pedal_on_threshold <= 0.4 and meta["evaluation"]["decoder_tuning"]["pedal"]["pedal_f1"] > 0.98
    assert dataclasses.replace(got, pedal_on_threshold=notes.pedal_on_threshold,
                               pedal_off_threshold=notes.pedal_off_threshold,
                               pedal_min_change_ms=notes.pedal_min_change_ms) == notes
    assert meta["evaluation"]["decoder_tuning"]["note_f1"] == 0.8
