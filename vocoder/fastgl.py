"""Fast Griffin-Lim on the CPU without torch's per-call overheads: a reusable STFT pair (scipy's
pocketfft on float32, numba framing and overlap-add) and the fast Griffin-Lim update fused into
one pass over the spectrum.

Why a second STFT: the `pghi` vocoder spends most of its time in the Griffin-Lim iterations that
follow PGHI (16 at n_fft 512 / hop 64: 2,500 frames per 10 s at 16 kHz). With ``torch.stft`` /
``torch.istft`` each iteration pays for the window envelope, padding, a complex ``abs`` and
several temporaries; here the envelope is computed once per length, the frames live in one
preallocated (T, n_fft) buffer, and the momentum step, the normalisation and the product with
the target magnitude are a single numba loop. The transforms follow ``torch.stft(center=True,
pad_mode="reflect")`` and ``torch.istft(center=True, length=T·hop)`` exactly (a test compares
them), so the result is the same algorithm as :func:`vocoder.pghi.fast_griffin_lim`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import scipy.fft

__all__ = ["STFTPlan", "fast_griffin_lim_np"]


@numba.njit(cache=True, fastmath=True)
def _frames(ypad, window, hop, out):
    """out[t, :] = ypad[t·hop : t·hop + n_fft] · window (out: (T, n_fft) float32)."""
    n_t, n_fft = out.shape
    for t in range(n_t):
        base = t * hop
        for i in range(n_fft):
            out[t, i] = ypad[base + i] * window[i]


@numba.njit(cache=True, fastmath=True)
def _overlap_add(frames, window, hop, inv_envelope, out):
    """Out = trimmed, envelope-normalised overlap-add of window · frames (torch.istft, center=True)."""
    n_t, n_fft = frames.shape
    full = np.zeros(n_fft + (n_t - 1) * hop, np.float32)
    for t in range(n_t):
        base = t * hop
        for i in range(n_fft):
            full[base + i] += frames[t, i] * window[i]
    start = n_fft // 2
    for j in range(out.shape[0]):
        out[j] = full[start + j] * inv_envelope[j]


@numba.njit(cache=True)
def _reflect_pad(y, pad, out):
    n = y.shape[0]
    for j in range(n):
        out[pad + j] = y[j]
    for j in range(pad):
        out[pad - 1 - j] = y[j + 1]
        out[pad + n + j] = y[n - 2 - j]


@numba.njit(cache=True, fastmath=True)
def _fgla_step(rebuilt, previous, magnitude, alpha, spec):
    """One fast Griffin-Lim update, fused: a = rebuilt - alpha·previous; spec = magnitude · a/|a|;
    previous = rebuilt. All (T, F); complex64 except ``magnitude`` (float32).
    """
    n_t, n_f = rebuilt.shape
    for t in range(n_t):
        for f in range(n_f):
            r = rebuilt[t, f]
            a = r - alpha * previous[t, f]
            norm = math.sqrt(a.real * a.real + a.imag * a.imag)
            scale = magnitude[t, f] / (norm if norm > 1e-8 else 1e-8)
            spec[t, f] = a * scale
            previous[t, f] = r


@numba.njit(cache=True, fastmath=True)
def _polar(mag, phase, out):
    n_t, n_f = mag.shape
    for t in range(n_t):
        for f in range(n_f):
            out[t, f] = mag[t, f] * complex(math.cos(phase[t, f]), math.sin(phase[t, f]))


class STFTPlan:
    """A Hann-windowed STFT pair at (n_fft, hop) for signals of ``frames`` frames (``frames·hop``
    samples), with every buffer allocated once.

    Args:
        n_fft: FFT size (= window length).
        hop: hop in samples.
        frames: T; the signal has T·hop samples and the spectrum T frames (torch.stft's first T).
        window (ndarray, optional): (n_fft,) analysis/synthesis window; periodic Hann by default
            (``torch.hann_window``).
        workers: threads of the FFTs (scipy splits the frames among them; the result is the same
            to the bit for any count).
    """

    def __init__(self, n_fft: int, hop: int, frames: int, window: np.ndarray | None = None, workers: int = 1):
        if frames < 1:
            raise ValueError(f"STFTPlan: frames must be >= 1, got {frames}")
        self.n_fft, self.hop, self.frames = int(n_fft), int(hop), int(frames)
        if workers < 1:
            raise ValueError(f"STFTPlan: workers must be >= 1, got {workers}")
        self.workers = int(workers)
        self.length = self.frames * self.hop
        if self.length <= self.n_fft // 2:
            raise ValueError(f"STFTPlan: {self.length} samples are too few for reflect padding by {self.n_fft // 2} "
                             f"(n_fft {self.n_fft})")
        if window is None:
            window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.n_fft) / self.n_fft)
        self.window = np.ascontiguousarray(window, dtype=np.float32)
        # the synthesis envelope Σ_t w²(n - t·hop) over the T frames istft sees, trimmed as torch trims it
        env = np.zeros(self.n_fft + (self.frames - 1) * self.hop, np.float64)
        w2 = self.window.astype(np.float64) ** 2
        for t in range(self.frames):
            env[t * self.hop: t * self.hop + self.n_fft] += w2
        env = env[self.n_fft // 2: self.n_fft // 2 + self.length]
        if env.min() < 1e-11:
            raise ValueError(f"STFTPlan: the window does not overlap-add to a non-zero envelope at hop {self.hop}")
        self.inv_envelope = (1.0 / env).astype(np.float32)
        self._pad = np.empty(self.length + 2 * (self.n_fft // 2), np.float32)
        self._frames = np.empty((self.frames, self.n_fft), np.float32)
        self._wave = np.empty(self.length, np.float32)

    def stft(self, y: np.ndarray) -> np.ndarray:
        """(T·hop,) float32 → (T, F) complex64, frames first (torch.stft(...)[..., :T] transposed)."""
        _reflect_pad(y, self.n_fft // 2, self._pad)
        _frames(self._pad, self.window, self.hop, self._frames)
        return scipy.fft.rfft(self._frames, axis=-1, workers=self.workers)

    def istft(self, spec: np.ndarray) -> np.ndarray:
        """(T, F) complex64 → (T·hop,) float32 (a view of an internal buffer: copy to keep it)."""
        frames = scipy.fft.irfft(spec, n=self.n_fft, axis=-1, workers=self.workers)
        _overlap_add(frames, self.window, self.hop, self.inv_envelope, self._wave)
        return self._wave


def fast_griffin_lim_np(magnitude: np.ndarray, phase: np.ndarray, plan: STFTPlan, iters: int,
                        momentum: float = 0.99) -> np.ndarray:
    """Fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013) from ``phase``, numpy in and out.

    Args:
        magnitude (ndarray): (F, T) target magnitude (T = ``plan.frames``).
        phase (ndarray): (F, T) starting phase in radians.
        plan: the STFT pair.
        iters: iterations (0 returns ``phase``).
        momentum: the extrapolation weight (torchaudio's convention: α = momentum / (1 + momentum)).

    Returns:
        ndarray: (F, T) float32 phase after ``iters`` iterations.
    """
    if iters <= 0:
        return np.asarray(phase, np.float32)
    mag = np.ascontiguousarray(magnitude.T, dtype=np.float32)
    spec = np.empty(mag.shape, np.complex64)
    _polar(mag, np.ascontiguousarray(phase.T, dtype=np.float32), spec)
    previous = np.zeros_like(spec)
    alpha = np.float32(momentum / (1 + momentum))
    for _ in range(iters):
        rebuilt = plan.stft(plan.istft(spec))
        _fgla_step(rebuilt, previous, mag, alpha, spec)
    return np.angle(spec).T.astype(np.float32)
