"""Private numba kernels for log-mel extraction. Public wrappers live in ``extract.py``;
these assume validated, contiguous, correctly typed inputs and allocate nothing large."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _frame(y, n_fft, hop, window, out):
    """out[t, k] = y[t * hop + k] * window[k] for t < out.shape[0]."""
    for t in range(out.shape[0]):
        s = t * hop
        for k in range(n_fft):
            out[t, k] = y[s + k] * window[k]


@njit(cache=True, nogil=True, parallel=True)
def _frame_parallel(y, n_fft, hop, window, out):
    for t in prange(out.shape[0]):
        s = t * hop
        for k in range(n_fft):
            out[t, k] = y[s + k] * window[k]


@njit(cache=True, nogil=True, inline="always")
def _one_frame(spec, t, starts, stops, offsets, weights, power, floor, inv_log, mag, out):
    n_freqs = spec.shape[1]
    for f in range(n_freqs):
        c = spec[t, f]
        p = c.real * c.real + c.imag * c.imag
        if power == 2.0:
            mag[f] = p
        elif power == 1.0:
            mag[f] = math.sqrt(p)
        else:
            mag[f] = p ** (0.5 * power)
    for m in range(starts.shape[0]):
        acc = 0.0  # float64 accumulator: the sum over a band stays exact to float32 output
        o = offsets[m] - starts[m]
        for f in range(starts[m], stops[m]):
            acc += weights[o + f] * mag[f]
        if acc < floor:
            acc = floor
        out[m, t] = math.log(acc) * inv_log


@njit(cache=True, nogil=True)
def _mel_log(spec, starts, stops, offsets, weights, power, floor, inv_log, out):
    """Magnitude ** power → sparse mel filterbank → floor → log, frame by frame.

    spec: complex (frames, n_freqs); out: float32 (n_mels, frames). Band m has non-zero
    weights on bins [starts[m], stops[m]) stored at weights[offsets[m]:].
    """
    mag = np.empty(spec.shape[1], np.float64)
    for t in range(spec.shape[0]):
        _one_frame(spec, t, starts, stops, offsets, weights, power, floor, inv_log, mag, out)


@njit(cache=True, nogil=True, parallel=True)
def _mel_log_parallel(spec, starts, stops, offsets, weights, power, floor, inv_log, out):
    n = spec.shape[0]
    block = 64
    for b in prange((n + block - 1) // block):
        mag = np.empty(spec.shape[1], np.float64)
        for t in range(b * block, min(n, (b + 1) * block)):
            _one_frame(spec, t, starts, stops, offsets, weights, power, floor, inv_log, mag, out)
