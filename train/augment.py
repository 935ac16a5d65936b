"""Make rendered audio sound like a microphone in a room (scipy only).

``microphone_in_room(audio, sr, rng)`` draws each aspect with some probability, so some
clips stay nearly clean. The output is sample-aligned with the input: the room impulse
response has its direct path at lag 0 and the result is cut to the input's length.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

NOISE_SNR_DB = (25.0, 60.0)  # background noise under the signal's RMS, dB: the range drawn from by default


def _biquad(kind: str, f0: float, sr: int, gain_db: float = 0.0, q: float = 0.707):
    """RBJ cookbook biquad as (b, a)."""
    A = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / sr
    cw, sw = np.cos(w0), np.sin(w0)
    alpha = sw / (2 * q)
    if kind == "peak":
        b = [1 + alpha * A, -2 * cw, 1 - alpha * A]
        a = [1 + alpha / A, -2 * cw, 1 - alpha / A]
    elif kind == "lowshelf":
        s = 2 * np.sqrt(A) * alpha
        b = [A * ((A + 1) - (A - 1) * cw + s), 2 * A * ((A - 1) - (A + 1) * cw), A * ((A + 1) - (A - 1) * cw - s)]
        a = [(A + 1) + (A - 1) * cw + s, -2 * ((A - 1) + (A + 1) * cw), (A + 1) + (A - 1) * cw - s]
    elif kind == "highshelf":
        s = 2 * np.sqrt(A) * alpha
        b = [A * ((A + 1) + (A - 1) * cw + s), -2 * A * ((A - 1) + (A + 1) * cw), A * ((A + 1) + (A - 1) * cw - s)]
        a = [(A + 1) - (A - 1) * cw + s, 2 * ((A - 1) - (A + 1) * cw), (A + 1) - (A - 1) * cw - s]
    else:
        raise ValueError(kind)
    b, a = np.array(b) / a[0], np.array(a) / a[0]
    return b, a


def room_ir(sr: int, rng, rt60: float, drr_db: float, n_early: int) -> np.ndarray:
    """Synthetic room impulse response: unit direct path at lag 0, a few early
    reflections (2-25 ms), then exponentially decaying noise whose high frequencies
    decay faster, scaled to the requested direct-to-reverberant ratio."""
    n = int(sr * min(2.0, rt60 * 1.2 + 0.05))
    t = np.arange(n) / sr
    pre = rng.uniform(0.002, 0.012)  # reverb tail onset after the direct sound
    # two bands with different decay (air + wall absorption darkens the tail)
    noise = rng.standard_normal(n)
    b_lo, a_lo = signal.butter(2, min(0.45 * sr, rng.uniform(1500, 4000)) / (sr / 2))
    lo = signal.lfilter(b_lo, a_lo, noise)
    hi = noise - lo
    dec = np.log(1000.0) / rt60  # 60 dB amplitude decay
    tail = lo * np.exp(-dec * t) + hi * np.exp(-dec * rng.uniform(1.3, 2.5) * t)
    tail[t < pre] = 0.0
    ramp = (t >= pre) & (t < pre + 0.01)
    tail[ramp] *= (t[ramp] - pre) / 0.01
    rev_e = float(np.sum(tail ** 2))
    ir = np.zeros(n)
    # early reflections
    for _ in range(n_early):
        d = int(rng.uniform(0.002, 0.025) * sr)
        if d < n:
            ir[d] += rng.uniform(0.15, 0.6) * rng.choice([-1, 1]) * (0.003 * sr / max(d, 1)) ** 0.5
    er_e = float(np.sum(ir ** 2))
    # direct energy 1; reverberant (early + tail) energy = 10^(-drr/10)
    target = 10 ** (-drr_db / 10)
    tail *= np.sqrt(max(target - min(er_e, 0.5 * target), 1e-9) / max(rev_e, 1e-12))
    if er_e > 0.5 * target:
        ir *= np.sqrt(0.5 * target / er_e)
    ir += tail
    ir[0] = 1.0
    return ir.astype(np.float32)


def colored_noise(n: int, rng, color: str) -> np.ndarray:
    w = rng.standard_normal(n)
    if color == "white":
        return w
    if color == "pink":  # Paul Kellet's economy pink filter
        b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
        a = [1, -2.494956002, 2.017265875, -0.522189400]
        return signal.lfilter(b, a, w)
    # brown: leaky integrator
    return signal.lfilter([1.0], [1.0, -0.995], w)


def mains_hum(n: int, sr: int, rng, harmonics: int = 5) -> tuple[np.ndarray, float]:
    """Mains hum: 50 or 60 Hz (+-0.5 %) and its first ``harmonics`` multiples, amplitude
    falling as 1/h with random weights and phases; (n samples, unscaled) and its Hz."""
    f = float(rng.choice([50.0, 60.0]) * rng.uniform(0.995, 1.005))
    t = np.arange(n) / sr
    hum = sum(rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * f * h * t + rng.uniform(0, 6.3))
              for h in range(1, harmonics + 1))
    return hum, f


def _rms(x):
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def microphone_in_room(audio: np.ndarray, sr: int, rng, return_params: bool = False,
                       noise_snr_db: tuple = NOISE_SNR_DB):
    """Room reverb, mic EQ + high-pass, background noise (its level under the signal's RMS drawn
    in ``noise_snr_db``, dB), mains hum, gain, soft clipping. Returns float32 in [-1, 1] of the
    same length (and a dict of the drawn parameters when ``return_params``)."""
    x = np.asarray(audio, dtype=np.float64)
    n = len(x)
    P: dict = {}
    if n == 0:
        return (x.astype(np.float32), P) if return_params else x.astype(np.float32)
    peak0 = np.abs(x).max()
    if peak0 > 0:
        x = x / peak0 * 0.5
    sig_rms = _rms(x)

    # room
    if rng.random() < 0.85:
        close = rng.random() < 0.5
        rt60 = float(rng.uniform(0.15, 0.5) if close else rng.uniform(0.3, 1.0))
        drr = float(rng.uniform(4, 15) if close else rng.uniform(-4, 6))
        ne = int(rng.integers(2, 9))
        ir = room_ir(sr, rng, rt60, drr, ne)
        x = signal.fftconvolve(x, ir)[:n]
        P["room"] = {"close": bool(close), "rt60": round(rt60, 3), "drr_db": round(drr, 1), "early": ne}

    # microphone EQ
    sos = []
    if rng.random() < 0.8:
        eq = []
        for _ in range(int(rng.integers(1, 4))):
            kind = str(rng.choice(["peak", "lowshelf", "highshelf"], p=[0.6, 0.2, 0.2]))
            f0 = float(np.exp(rng.uniform(np.log(80), np.log(min(7000, 0.45 * sr)))))
            g = float(rng.uniform(-6, 6))
            q = float(rng.uniform(0.5, 2.0)) if kind == "peak" else 0.707
            b, a = _biquad(kind, f0, sr, g, q)
            sos.append(np.concatenate([b, a]))
            eq.append([kind, round(f0), round(g, 1), round(q, 2)])
        P["eq"] = eq
    if rng.random() < 0.9:
        hp = float(rng.uniform(20, 80))
        sos.extend(signal.butter(2, hp / (sr / 2), "highpass", output="sos"))
        P["highpass_hz"] = round(hp, 1)
    if rng.random() < 0.3:  # cheap mic / laptop: low-pass
        lp = float(rng.uniform(4000, 7800))
        sos.extend(signal.butter(2, lp / (sr / 2), output="sos"))
        P["lowpass_hz"] = round(lp)
    if sos:
        x = signal.sosfilt(np.array(sos), x)

    # background noise + hum, relative to the signal RMS
    sig_rms = _rms(x) if _rms(x) > 0 else sig_rms
    if rng.random() < 0.7:
        color = str(rng.choice(["white", "pink", "brown"]))
        snr = float(rng.uniform(*noise_snr_db))
        nz = colored_noise(n, rng, color)
        x = x + nz * (sig_rms / _rms(nz) * 10 ** (-snr / 20))
        P["noise"] = {"color": color, "snr_db": round(snr, 1)}
    if rng.random() < 0.15:
        hum, f = mains_hum(n, sr, rng)
        snr = float(rng.uniform(30, 55))
        x = x + hum * (sig_rms / _rms(hum) * 10 ** (-snr / 20))
        P["hum"] = {"hz": round(f, 2), "snr_db": round(snr, 1)}

    # compression / gentle clipping
    if rng.random() < 0.15:
        drive = float(rng.uniform(1.5, 4.0))
        pk = np.abs(x).max() + 1e-12
        x = np.tanh(drive * x / pk) / np.tanh(drive) * pk
        P["softclip_drive"] = round(drive, 2)

    # overall gain: peak at -24..0 dBFS
    peak_db = float(rng.uniform(-24, 0))
    pk = np.abs(x).max()
    if pk > 0:
        x = x * (10 ** (peak_db / 20) / pk)
    P["peak_dbfs"] = round(peak_db, 1)
    y = np.clip(x, -1.0, 1.0).astype(np.float32)
    return (y, P) if return_params else y
