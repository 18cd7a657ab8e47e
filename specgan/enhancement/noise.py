"""Noise for the enhancement data, made offline and seeded: synthesised kinds and babble.

Every maker returns float32 noise of ``n`` samples at unit RMS (:func:`make_noise`); :func:`mix`
scales it under a clean clip to an SNR. The kinds split as VoiceBank-DEMAND splits its noise
types: the model trains on some and is tested on others it never heard.

- ``white``, ``pink`` (1/f power), ``brown`` (1/f²): coloured Gaussian noise;
- ``hum``: mains hum at 50 or 60 Hz (± 1 %) with 20 harmonics of random 1/k^a amplitudes, a
  slow amplitude wobble and a little white noise (an electrical buzz, not a pure tone);
- ``clicks``: impulses at random times (5–40 a second) with random amplitudes and short
  exponential decays over a faint white floor (crackle, keyboard, vinyl);
- ``tones``: synthetic music — random chords of harmonic tones (3–8 harmonics, MIDI 40–90) with
  attack and decay, a new chord every 0.15–0.6 s;
- ``babble``: three to six clips of other speakers summed (``pool``: the training speakers'
  clips, never the test speaker);
- ``bands``: Gaussian noise under a random spectral envelope (one to four bumps, 0.2–1.5 octaves
  wide, centred anywhere from 100 Hz to 7 kHz, over a floor 30 dB down) whose level drifts slowly
  (fans, engines, rooms, rain: broadband but coloured anywhere);
- ``bursts``: noise of a random slope (white to pink) switched on and off in segments of 50–500
  ms with 5–20 ms ramps (doors, traffic passing, keyboards in bulk: loud for a while, then not);
- ``vehicles``, ``machinery``, ``nature``, ``impacts``, ``signals``: *recorded* noise, the
  sounds of Debian's ``openttd-opensfx`` grouped by what they are
  (:mod:`specgan.enhancement.recorded`);
- ``keyboard``: typing, played from the key recordings of Debian's ``bucklespring-data``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["KINDS", "RECORDED", "SYNTHESISED", "check_available", "make_noise", "mix", "snr_db"]

SYNTHESISED = ("white", "pink", "brown", "hum", "clicks", "tones", "babble", "bands", "bursts")
RECORDED = ("vehicles", "machinery", "nature", "impacts", "signals", "keyboard")
KINDS = SYNTHESISED + RECORDED


def _unit(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return (x / rms if rms > 0 else x).astype(np.float32)


def _coloured(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f^exponent (0 white, 1 pink, 2 brown)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = f[1] if len(f) > 1 else 1.0
    return np.fft.irfft(spec / f ** (exponent / 2), n)


def _hum(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = rng.choice([50.0, 60.0]) * (1 + rng.uniform(-0.01, 0.01))
    decay = rng.uniform(0.5, 2.0)
    y = np.zeros(n)
    for k in range(1, 21):
        if k * f0 >= sr / 2:
            break
        y += k ** -decay * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
    wobble = 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t + rng.uniform(0, 2 * np.pi))
    return _unit(y * wobble) + 0.05 * rng.standard_normal(n)


def _clicks(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    y = 0.02 * rng.standard_normal(n)
    count = rng.poisson(rng.uniform(5, 40) * n / sr)
    tau = int(sr * 0.002)
    shape = np.exp(-np.arange(8 * tau) / tau) * rng.choice([-1.0, 1.0], 8 * tau)
    for at in rng.integers(0, n, count):
        piece = shape[: n - at] * rng.uniform(0.2, 1.0)
        y[at : at + len(piece)] += piece
    return y


def _tones(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    y = np.zeros(n)
    at = 0
    while at < n:
        length = int(sr * rng.uniform(0.15, 0.6))
        t = np.arange(min(length, n - at)) / sr
        env = np.minimum(1.0, t / 0.01) * np.exp(-t / rng.uniform(0.1, 0.8))
        for midi in rng.integers(40, 91, rng.integers(1, 4)):
            f0 = 440.0 * 2 ** ((midi - 69) / 12)
            for k in range(1, int(rng.integers(3, 9)) + 1):
                if k * f0 < sr / 2:
                    y[at : at + len(t)] += env * k ** -1.2 * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
        at += len(t)
    return y


def _slow(n: int, sr: int, rng: np.random.Generator, rate: float) -> np.ndarray:
    """A smooth random curve with about ``rate`` changes a second, mean 0, unit deviation."""
    knots = max(2, int(np.ceil(n / sr * rate)) + 2)
    return np.interp(np.arange(n) / sr * rate, np.arange(knots), rng.standard_normal(knots))


def _bands(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    octave = np.log2(np.maximum(f, 20.0) / 1000.0)
    shape = np.full(len(f), 10 ** (-30 / 20))
    for _ in range(int(rng.integers(1, 5))):
        centre = np.log2(np.exp(rng.uniform(np.log(100.0), np.log(7000.0))) / 1000.0)
        width = rng.uniform(0.2, 1.5)
        shape += rng.uniform(0.3, 1.0) * np.exp(-0.5 * ((octave - centre) / (width / 2)) ** 2)
    y = np.fft.irfft(spec * shape, n)
    return _unit(y) * 10 ** (rng.uniform(2, 6) * _slow(n, sr, rng, rng.uniform(0.3, 2.0)) / 20)


def _bursts(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    y = _coloured(n, rng, rng.uniform(0.0, 1.0))
    gate, at, on = np.zeros(n), 0, bool(rng.integers(2))
    while at < n:
        length = int(sr * rng.uniform(0.05, 0.5))
        if on:
            ramp = max(1, int(sr * rng.uniform(0.005, 0.02)))
            seg = np.ones(min(length, n - at))
            r = min(ramp, len(seg) // 2)
            if r:
                seg[:r], seg[len(seg) - r:] = np.linspace(0, 1, r), np.linspace(1, 0, r)
            gate[at: at + len(seg)] = seg * rng.uniform(0.3, 1.0)
        at += length
        on = not on
    if not gate.any():  # one segment, off: let the middle through
        gate[n // 4: 3 * n // 4] = 1.0
    return y * gate


def _babble(n: int, rng: np.random.Generator, pool: Sequence[np.ndarray] | None) -> np.ndarray:
    if not pool:
        raise ValueError("babble noise needs a pool of speech clips (the training speakers')")
    y = np.zeros(n)
    for i in rng.choice(len(pool), size=min(len(pool), int(rng.integers(3, 7))), replace=False):
        clip = np.asarray(pool[i], dtype=np.float64)
        if not len(clip):
            continue
        reps = -(-n // len(clip)) + 1
        tiled = np.tile(clip, reps)
        start = int(rng.integers(0, len(clip)))
        y += _unit(tiled[start : start + n])
    return y


def make_noise(kind: str, n: int, sr: int, rng: np.random.Generator,
               pool: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """``n`` samples of noise of ``kind`` (one of :data:`KINDS`) at unit RMS, float32.

    Args:
        kind: The noise type.
        n: Samples.
        sr: Sample rate (hum, clicks, tones, bands and bursts are defined in Hz and seconds; the
            recordings are resampled to it).
        rng: The generator (the same seed gives the same noise).
        pool: Speech clips for ``babble``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown noise type {kind!r}; known: {', '.join(KINDS)}")
    if kind == "white":
        y = rng.standard_normal(n)
    elif kind == "pink":
        y = _coloured(n, rng, 1.0)
    elif kind == "brown":
        y = _coloured(n, rng, 2.0)
    elif kind == "hum":
        y = _hum(n, sr, rng)
    elif kind == "clicks":
        y = _clicks(n, sr, rng)
    elif kind == "tones":
        y = _tones(n, sr, rng)
    elif kind == "bands":
        y = _bands(n, sr, rng)
    elif kind == "bursts":
        y = _bursts(n, sr, rng)
    elif kind in RECORDED:
        from specgan.enhancement.recorded import recorded_noise

        y = recorded_noise(kind, n, sr, rng)
    else:
        y = _babble(n, rng, pool)
    return _unit(np.asarray(y))


def check_available(kinds: Sequence[str], sr: int) -> None:
    """Fail before any work, in one line, when a recorded noise type cannot be read (its package is
    missing or another release): reads and caches each recorded group at ``sr``.
    """
    from specgan.enhancement.recorded import check_recorded

    for kind in dict.fromkeys(kinds):
        if kind in RECORDED:
            check_recorded(kind, sr)


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """10·log10 of the clean clip's power over the noise's."""
    p = float(np.mean(np.square(clean, dtype=np.float64)))
    q = float(np.mean(np.square(noise, dtype=np.float64)))
    return 10 * np.log10(p / q) if q > 0 and p > 0 else float("inf")


def mix(clean: np.ndarray, noise: np.ndarray, snr: float, peak: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """``clean`` plus ``noise`` scaled to ``snr`` dB (power over the whole clip); both scaled down
    together if the mixture would clip at ``peak``. Returns (noisy, the clean reference at the
    same scale), float32.
    """
    if len(noise) != len(clean):
        raise ValueError(f"mix: {len(clean)} clean samples but {len(noise)} of noise")
    p = float(np.mean(np.square(clean, dtype=np.float64)))
    q = float(np.mean(np.square(noise, dtype=np.float64)))
    gain = np.sqrt(p / (q * 10 ** (snr / 10))) if q > 0 else 0.0
    noisy = clean + gain * noise
    top = float(np.max(np.abs(noisy))) if len(noisy) else 0.0
    scale = peak / top if top > peak else 1.0
    return (noisy * scale).astype(np.float32), (clean * scale).astype(np.float32)
