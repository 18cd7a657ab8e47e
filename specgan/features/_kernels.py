"""Private numba kernels for log-mel extraction. The public wrapper is ``extract.LogMelExtractor``;
these assume validated, contiguous, correctly typed inputs.

How a tile of B frames is processed (all inside one compiled function):

1. FFT: pocketfft, compiled into the kernel by rocket-fft, along axis 0 of a (n_fft, B) strided
   view of the padded signal — no framing copy. The output is frame-major (each frame's
   spectrum contiguous).
2. Window: cosine-sum windows (hann, hamming, blackman: the window's DFT has taps only at bins
   0, ±1, ±2) are applied *after* the FFT as a short real convolution over frequency, which is
   exactly equivalent to multiplying each frame by the window. Other windows are applied to
   the frames before the FFT.
3. Magnitude ** power per frame, vectorised over frequency, stored transposed (bins × frames).
4. Sparse mel: band m sums bins [starts[m], stops[m]); the inner loop runs over the tile's
   frames, contiguous, so it vectorises — a per-frame dot over 2..30 bins would not.
"""

from __future__ import annotations

import numpy as np
import rocket_fft  # noqa: F401  (registers np.fft for numba)
from numba import njit, prange


@njit(cache=True, nogil=True, inline="always")
def _bin(x, k, n_fft, n_freqs):
    """Bin k of a real signal's one-sided spectrum ``x`` (interleaved re, im) for any integer
    k, using X[-k] = conj X[k] and X[n_fft - k] = conj X[k]. Returns (re, im).
    """
    if k < 0:
        return x[-2 * k], -x[-2 * k + 1]
    if k >= n_freqs:
        k = n_fft - k
        return x[2 * k], -x[2 * k + 1]
    return x[2 * k], x[2 * k + 1]


@njit(cache=True, nogil=True, fastmath=True, inline="always")
def _magnitudes(x, taps, power, n_fft, p):
    """p[f] = |sum_j taps[|j|] X[f - j]| ** power for one frame. x: (2 * n_freqs,) interleaved."""
    n_freqs = p.shape[0]
    n_taps = taps.shape[0]
    reach = n_taps - 1
    c0 = taps[0]
    c1 = taps[1] if n_taps > 1 else 0.0
    c2 = taps[2] if n_taps > 2 else 0.0
    lo, hi = reach, n_freqs - reach
    # Interior bins: one straight loop, vectorised by LLVM.
    if n_taps == 1:
        for f in range(n_freqs):
            p[f] = x[2 * f] * x[2 * f] + x[2 * f + 1] * x[2 * f + 1]
    elif n_taps == 2:
        for f in range(lo, hi):
            r = c0 * x[2 * f] + c1 * (x[2 * f - 2] + x[2 * f + 2])
            i = c0 * x[2 * f + 1] + c1 * (x[2 * f - 1] + x[2 * f + 3])
            p[f] = r * r + i * i
    else:
        for f in range(lo, hi):
            r = c0 * x[2 * f] + c1 * (x[2 * f - 2] + x[2 * f + 2]) + c2 * (x[2 * f - 4] + x[2 * f + 4])
            i = c0 * x[2 * f + 1] + c1 * (x[2 * f - 1] + x[2 * f + 3]) + c2 * (x[2 * f - 3] + x[2 * f + 5])
            p[f] = r * r + i * i
    # Edge bins, whose neighbours mirror around DC or Nyquist.
    if n_taps > 1:
        for e in range(2 * reach):
            f = e if e < reach else hi + e - reach
            r, i = _bin(x, f, n_fft, n_freqs)
            r *= c0
            i *= c0
            for j in range(1, n_taps):
                a_r, a_i = _bin(x, f - j, n_fft, n_freqs)
                b_r, b_i = _bin(x, f + j, n_fft, n_freqs)
                r += taps[j] * (a_r + b_r)
                i += taps[j] * (a_i + b_i)
            p[f] = r * r + i * i
    if power == 1.0:
        for f in range(n_freqs):
            p[f] = np.sqrt(p[f])
    elif power != 2.0:
        half = 0.5 * power
        for f in range(n_freqs):
            p[f] = p[f] ** half


@njit(cache=True, nogil=True, fastmath=True)
def _tile(frames, window, taps, starts, stops, offsets, weights, power, out, t0, nb):
    """Frames t0 .. t0 + nb of ``frames`` (n_fft, n_frames) → linear mel out[:, t0:t0 + nb]."""
    n_fft = frames.shape[0]
    n_freqs = n_fft // 2 + 1
    if window.shape[0] > 0:
        # Windowed copy, frame-major, so that each frame's spectrum comes out contiguous.
        windowed = np.empty((nb, n_fft), frames.dtype)
        for b in range(nb):
            for k in range(n_fft):
                windowed[b, k] = frames[k, t0 + b] * window[k]
        spec = np.fft.rfft(windowed, axis=1).T
    else:
        spec = np.fft.rfft(frames[:, t0 : t0 + nb], axis=0)  # (n_freqs, nb), frames contiguous
    p = np.empty(n_freqs, out.dtype)
    mag = np.empty((n_freqs, nb), out.dtype)
    for b in range(nb):
        _magnitudes(spec[:, b].view(out.dtype), taps, power, n_fft, p)
        for f in range(n_freqs):
            mag[f, b] = p[f]
    for m in range(starts.shape[0]):
        row = out[m, t0 : t0 + nb]
        for b in range(nb):
            row[b] = 0.0
        o = offsets[m] - starts[m]
        for f in range(starts[m], stops[m]):
            w = weights[o + f]
            src = mag[f]
            for b in range(nb):
                row[b] += w * src[b]


@njit(cache=True, nogil=True)
def _mel_tiles(frames, window, taps, starts, stops, offsets, weights, power, out, tile):
    """Linear mel of every frame: ``frames`` (n_fft, n_frames) → ``out`` (n_mels, n_frames).

    Args:
        frames: strided view whose column t is frame t (unwindowed).
        window: (n_fft,) applied before the FFT, or empty when ``taps`` carry the window.
        taps: (1..3,) real DFT coefficients of a cosine-sum window ([1.0] = none).
        starts, stops, offsets, weights: the sparse filterbank (band m covers bins
            [starts[m], stops[m]) with its weights at weights[offsets[m]:]).
        power: exponent of the magnitude.
        tile: frames per tile.
    """
    n_frames = frames.shape[1]
    for t0 in range(0, n_frames, tile):
        _tile(frames, window, taps, starts, stops, offsets, weights, power, out, t0, min(tile, n_frames - t0))


@njit(cache=True, nogil=True, parallel=True)
def _mel_tiles_parallel(frames, window, taps, starts, stops, offsets, weights, power, out, tile):
    """As :func:`_mel_tiles`, with the tiles spread over numba's threads."""
    n_frames = frames.shape[1]
    for i in prange((n_frames + tile - 1) // tile):
        t0 = i * tile
        _tile(frames, window, taps, starts, stops, offsets, weights, power, out, t0, min(tile, n_frames - t0))
