"""Phase from the STFT magnitude alone, without iterations: Phase Gradient Heap Integration (PGHI;
Průša, Balazs & Søndergaard, IEEE/ACM TASLP 2017).

For a Gaussian window ``exp(-π t² / λ)`` the STFT's log-magnitude ``s`` and phase ``φ`` are tied
(the STFT is analytic up to a known factor). With the phase referred to each window's centre,
time ``x`` in samples and frequency ``ω`` in cycles per sample::

    ∂φ/∂x = 2πω + (1/λ) ∂s/∂ω          ∂φ/∂ω = -λ ∂s/∂x

A Hann window of length L behaves like a Gaussian with λ = 0.25645 L² (the paper's fit). So the
phase's gradient can be read off the magnitude, and the phase is its integral. The integration
starts at the largest coefficient and spreads to neighbours in order of decreasing magnitude
(a max-heap), so that each phase is reached from its strongest neighbour, where the gradient
estimate is most reliable; coefficients below ``tol`` x the largest get a random phase.

The result uses ``torch.stft``'s convention (phase referred to each frame's first sample, window
centred in the frame): :func:`pghi` returns phases that ``torch.istft`` (``center=True``) accepts.
It is a better start for Griffin-Lim than zero phase, and a phase prior a network can refine.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

__all__ = ["HANN_LAMBDA", "fast_griffin_lim", "pghi"]

HANN_LAMBDA = 0.25645  # λ / L² of the Gaussian that best matches a Hann window of length L
MODES = ("offline", "frames")  # pghi(mode=...): one heap over the clip, or frame by frame (RTPGHI)


# A max-heap of (key, value) in two arrays; push and pop move a hole instead of swapping, so each
# level costs one copy per array (1.7x faster than swapping three arrays in frame PGHI).
@numba.njit(cache=True, inline="always")
def _heap_push(keys, vals, size, key, v):
    i = size
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] >= key:
            break
        keys[i], vals[i] = keys[parent], vals[parent]
        i = parent
    keys[i], vals[i] = key, v
    return size + 1


@numba.njit(cache=True, inline="always")
def _heap_pop(keys, vals, size):
    top = vals[0]
    size -= 1
    key, v = keys[size], vals[size]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] > keys[child]:
            child += 1
        if keys[child] <= key:
            break
        keys[i], vals[i] = keys[child], vals[child]
        i = child
    keys[i], vals[i] = key, v
    return top, size


@numba.njit(cache=True)
def _integrate(s, dphi_t, dphi_f, phase, done):
    """Heap integration over a (F, T) grid: ``dphi_t`` the phase step to the next frame, ``dphi_f``
    to the next bin (radians, at each coefficient); ``done`` marks coefficients already set (the
    caller marks those below the floor). Each new seed is the largest coefficient not yet set: the
    first is found by one pass; only if the heap runs dry before every coefficient is set (a
    silence splits the clip) are the ones left sorted, once — not the whole grid up front.
    """
    n_f, n_t = s.shape
    cap = n_f * n_t
    keys = np.empty(cap, np.float64)
    vals = np.empty(cap, np.int64)  # f * n_t + t
    # 2-D indexing throughout: a ravel() of a non-C-contiguous array is a copy in numba, and
    # ``done`` must be the array being updated
    seed, best = -1, -np.inf
    for f in range(n_f):
        for t in range(n_t):
            if not done[f, t] and s[f, t] > best:
                seed, best = f * n_t + t, s[f, t]
    seeds = np.empty(0, np.int64)
    k, sorted_seeds = 0, False
    while seed >= 0:
        f0, t0 = seed // n_t, seed % n_t
        done[f0, t0] = True
        phase[f0, t0] = 0.0
        size = _heap_push(keys, vals, 0, s[f0, t0], seed)
        while size > 0:
            v, size = _heap_pop(keys, vals, size)
            f, t = v // n_t, v % n_t
            if t + 1 < n_t and not done[f, t + 1]:
                phase[f, t + 1] = phase[f, t] + 0.5 * (dphi_t[f, t] + dphi_t[f, t + 1])
                done[f, t + 1] = True
                size = _heap_push(keys, vals, size, s[f, t + 1], v + 1)
            if t > 0 and not done[f, t - 1]:
                phase[f, t - 1] = phase[f, t] - 0.5 * (dphi_t[f, t] + dphi_t[f, t - 1])
                done[f, t - 1] = True
                size = _heap_push(keys, vals, size, s[f, t - 1], v - 1)
            if f + 1 < n_f and not done[f + 1, t]:
                phase[f + 1, t] = phase[f, t] + 0.5 * (dphi_f[f, t] + dphi_f[f + 1, t])
                done[f + 1, t] = True
                size = _heap_push(keys, vals, size, s[f + 1, t], v + n_t)
            if f > 0 and not done[f - 1, t]:
                phase[f - 1, t] = phase[f, t] - 0.5 * (dphi_f[f, t] + dphi_f[f - 1, t])
                done[f - 1, t] = True
                size = _heap_push(keys, vals, size, s[f - 1, t], v - n_t)
        if not sorted_seeds:  # the heap ran dry: the coefficients left, largest first (ties kept in order)
            n_left = 0
            for f in range(n_f):
                for t in range(n_t):
                    n_left += not done[f, t]
            left, level, j = np.empty(n_left, np.int64), np.empty(n_left, np.float64), 0
            for f in range(n_f):
                for t in range(n_t):
                    if not done[f, t]:
                        left[j], level[j] = f * n_t + t, -s[f, t]
                        j += 1
            seeds = left[np.argsort(level, kind="mergesort")]
            sorted_seeds = True
        while k < len(seeds) and done[seeds[k] // n_t, seeds[k] % n_t]:
            k += 1
        seed = seeds[k] if k < len(seeds) else -1


@numba.njit(cache=True)
def _integrate_frames(s, dphi_t, dphi_f, floor, phase):
    """Frame by frame (the real-time variant, RTPGHI: Průša & Holighaus 2017): each frame's phases
    come from the previous frame's (forward in time) and from neighbours in the same frame, in order
    of decreasing magnitude; the heap holds at most two frames, so it stays small and in cache.
    """
    n_f, n_t = s.shape
    keys = np.empty(4 * n_f, np.float64)
    vals = np.empty(4 * n_f, np.int64)  # f: bin f of the previous frame; n_f + f: of this frame
    done = np.zeros(n_f, np.bool_)
    for t in range(n_t):
        left = 0
        for f in range(n_f):
            done[f] = s[f, t] < floor  # below the floor: keeps its random phase
            if not done[f]:
                left += 1
        size = 0
        if t > 0:
            for f in range(n_f):
                if s[f, t - 1] >= floor:
                    size = _heap_push(keys, vals, size, s[f, t - 1], f)
        while left > 0:
            if size == 0:  # nothing to spread from: start at this frame's largest bin not yet set
                best, arg = -np.inf, -1
                for f in range(n_f):
                    if not done[f] and s[f, t] > best:
                        best, arg = s[f, t], f
                if t == 0:  # later frames keep the random phase a new component starts with
                    phase[arg, t] = 0.0
                done[arg] = True
                left -= 1
                size = _heap_push(keys, vals, size, s[arg, t], n_f + arg)
                continue
            v, size = _heap_pop(keys, vals, size)
            if v < n_f:
                f = v
                if not done[f]:
                    phase[f, t] = phase[f, t - 1] + 0.5 * (dphi_t[f, t - 1] + dphi_t[f, t])
                    done[f] = True
                    left -= 1
                    size = _heap_push(keys, vals, size, s[f, t], n_f + f)
            else:
                f = v - n_f
                if f + 1 < n_f and not done[f + 1]:
                    phase[f + 1, t] = phase[f, t] + 0.5 * (dphi_f[f, t] + dphi_f[f + 1, t])
                    done[f + 1] = True
                    left -= 1
                    size = _heap_push(keys, vals, size, s[f + 1, t], n_f + f + 1)
                if f > 0 and not done[f - 1]:
                    phase[f - 1, t] = phase[f, t] - 0.5 * (dphi_f[f, t] + dphi_f[f - 1, t])
                    done[f - 1] = True
                    left -= 1
                    size = _heap_push(keys, vals, size, s[f - 1, t], n_f + f - 1)


def pghi(magnitude: np.ndarray, n_fft: int, hop: int, win_length: int | None = None, tol: float = 1e-5,
         lam: float | None = None, seed: int = 0, mode: str = "offline") -> np.ndarray:
    """The phase PGHI gives a (Hann-windowed, centred) STFT magnitude.

    Args:
        magnitude: (F, T) or (..., F, T) non-negative, F = n_fft // 2 + 1.
        n_fft, hop: the STFT's FFT size and hop in samples.
        win_length: the Hann window's length (default n_fft), centred in the frame as torch pads it.
        tol: coefficients below tol x the clip's largest get a random phase (they carry no gradient).
        lam: the Gaussian's λ in samples² (default HANN_LAMBDA · win_length²).
        seed: for the random phases (frame mode: those below ``tol`` keep them; the same seed for
            each clip of a batch).
        mode: ``"offline"`` (one heap over the whole clip: each phase reached from its strongest
            neighbour in any direction) or ``"frames"`` (frame by frame, forward in time only:
            RTPGHI, a heap of two frames; faster, and usable on a stream).

    Returns:
        np.ndarray: float64 phases in radians, same shape, in ``torch.stft``'s convention.
    """
    mag = np.asarray(magnitude, dtype=np.float64)
    if mag.shape[-2] != n_fft // 2 + 1:
        raise ValueError(f"pghi: expected {n_fft // 2 + 1} frequency bins for n_fft {n_fft}, got {mag.shape[-2]}")
    if mag.ndim > 2:
        flat = mag.reshape(-1, *mag.shape[-2:])
        # every clip with the same seed: a clip's phase must not depend on its place in a batch
        return np.stack([pghi(m, n_fft, hop, win_length, tol, lam, seed, mode) for m in flat]).reshape(mag.shape)
    if mode not in MODES:
        raise ValueError(f"pghi: mode must be {' or '.join(map(repr, MODES))}, got {mode!r}")
    win = int(win_length or n_fft)
    lam = HANN_LAMBDA * win * win if lam is None else float(lam)
    n_f, n_t = mag.shape
    s = np.log(np.maximum(mag, 1e-12))
    # gradients by centred differences (one-sided at the edges), per bin and per frame
    ds_dbin = np.gradient(s, axis=0) if n_f > 1 else np.zeros_like(s)
    ds_dframe = np.gradient(s, axis=1) if n_t > 1 else np.zeros_like(s)
    bins = np.arange(n_f, dtype=np.float64)[:, None]
    # ∂φ/∂x = 2πω + (1/λ) ∂s/∂ω with ω = bin / n_fft: a phase step per frame of hop samples
    dphi_t = hop * (2 * math.pi * bins / n_fft + (n_fft / lam) * ds_dbin)
    # ∂φ/∂ω = -λ ∂s/∂x: a phase step per bin (1 / n_fft cycles per sample), ∂x = hop per frame
    dphi_f = -(lam / (hop * n_fft)) * ds_dframe
    phase = np.random.default_rng(seed).uniform(-math.pi, math.pi, size=s.shape)
    floor = float(s.max()) + math.log(tol)
    if mode == "frames":
        _integrate_frames(s, np.ascontiguousarray(dphi_t), np.ascontiguousarray(dphi_f), floor, phase)
    else:
        # the heap never enters the coefficients below the floor: they keep their random phase, as
        # in frame mode and in the paper (before 2026-12-03 it spread into all of them: the same
        # audio after 16-bit rounding, 1.3x slower on music, docs/vocoder.md)
        done = s < floor
        _integrate(s, np.ascontiguousarray(dphi_t), np.ascontiguousarray(dphi_f), phase, done)
    # centre-referred → frame-start-referred (torch.stft): the window's centre is n_fft / 2 samples in,
    # a shift of -2π·bin·(n_fft/2)/n_fft = -π·bin
    return phase - math.pi * bins


def fast_griffin_lim(magnitude: torch.Tensor, stft, istft, iters: int, init: torch.Tensor | None = None,
                     momentum: float = 0.99) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013) from ``init``'s phase.

    Args:
        magnitude (Tensor): (..., F, T) target magnitude.
        stft, istft: the transform pair (``istft(spec) -> wave``, ``stft(wave) -> spec`` with T frames).
        iters: iterations (0 returns ``init``'s phase unchanged).
        init (Tensor, optional): complex (..., F, T) start (its phase is used); zero phase when None.
        momentum: the fast variant's extrapolation (0 = plain Griffin-Lim).

    Returns:
        Tensor: complex (..., F, T) unit-modulus phase factors (multiply by ``magnitude`` to invert).
    """
    angles = torch.ones_like(magnitude, dtype=torch.complex64) if init is None else init / init.abs().clamp(min=1e-8)
    previous = torch.zeros_like(angles)
    for _ in range(iters):
        rebuilt = stft(istft(magnitude * angles))
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / angles.abs().clamp(min=1e-8)
        previous = rebuilt
    return angles
