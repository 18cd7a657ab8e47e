"""Fast log-mel extraction: numba framing + scipy.fft + a numba sparse mel filterbank + log.

The result equals ``librosa.feature.melspectrogram`` followed by ``MelConfig.log`` (the tests
hold it to 1e-4 on log-mel); the mel definition is :class:`vocoder.mel.MelConfig`.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft

from specgan.features import _kernels
from vocoder.mel import MelConfig, mel_filterbank, stft_window

__all__ = ["LogMelExtractor", "logmel", "sparse_filterbank"]

# Below this many frames the thread start-up of the parallel kernels costs more than it saves
# (measured with tools/bench_features.py: a 1 s clip at 16 kHz is ~125 frames).
_PARALLEL_MIN_FRAMES = 512


def sparse_filterbank(fb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Compress a dense (n_mels, n_freqs) filterbank to per-band [start, stop) ranges.

    Returns:
        starts, stops, offsets (int64, (n_mels,)) and the concatenated weights (float64).
    """
    n_mels = fb.shape[0]
    starts = np.zeros(n_mels, np.int64)
    stops = np.zeros(n_mels, np.int64)
    offsets = np.zeros(n_mels, np.int64)
    chunks = []
    pos = 0
    for m in range(n_mels):
        nz = np.flatnonzero(fb[m])
        if nz.size:
            starts[m], stops[m] = nz[0], nz[-1] + 1
        chunks.append(fb[m, starts[m] : stops[m]].astype(np.float64))
        offsets[m] = pos
        pos += stops[m] - starts[m]
    weights = np.concatenate(chunks) if chunks else np.zeros(0)
    return starts, stops, offsets, np.ascontiguousarray(weights)


class LogMelExtractor:
    """Log-mel spectrograms for one :class:`MelConfig`, reusing its window and filterbank.

    Args:
        cfg: The mel definition.
        threads: Threads for the FFT and the parallel kernels (1 = serial, the default; see
            PERF notes: 2 threads on a shared 2-core machine can be far slower).
        dtype: Working precision of framing and FFT (float32 is what the benchmarks measure;
            float64 for reference-grade output near the floor).
    """

    def __init__(self, cfg: MelConfig, threads: int = 1, dtype=np.float32):
        self.cfg = cfg
        self.threads = max(1, int(threads))
        self.dtype = np.dtype(dtype)
        self.window = stft_window(cfg).astype(self.dtype)
        self.starts, self.stops, self.offsets, self.weights = sparse_filterbank(mel_filterbank(cfg))
        self.inv_log = 1.0 / {"e": 1.0, "10": math.log(10.0), "2": math.log(2.0)}[cfg.log_base]

    def min_samples(self) -> int:
        """Shortest signal this config can analyse (one frame)."""
        cfg = self.cfg
        if not cfg.center:
            return cfg.n_fft
        return cfg.n_fft // 2 + 1 if cfg.pad_mode == "reflect" else 1

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """Log-mel of a waveform.

        Args:
            y: (samples,) or (batch, samples), real.

        Returns:
            float32 (n_mels, frames), or (batch, n_mels, frames).
        """
        y = np.asarray(y)
        if y.ndim == 2:
            return np.stack([self(row) for row in y])
        if y.ndim != 1:
            raise ValueError(f"expected audio of shape (samples,) or (batch, samples), got {y.shape}")
        if not np.issubdtype(y.dtype, np.floating):
            raise TypeError(f"expected floating-point audio, got dtype {y.dtype}")
        cfg = self.cfg
        if y.size < self.min_samples():
            raise ValueError(f"signal of {y.size} samples is shorter than one frame ({self.min_samples()} samples)")
        y = y.astype(self.dtype, copy=False)
        if cfg.center:
            y = np.pad(y, cfg.n_fft // 2, mode=cfg.pad_mode)
        n_frames = 1 + (y.size - cfg.n_fft) // cfg.hop_length
        parallel = self.threads > 1 and n_frames >= _PARALLEL_MIN_FRAMES
        frames = np.empty((n_frames, cfg.n_fft), self.dtype)
        (_kernels._frame_parallel if parallel else _kernels._frame)(y, cfg.n_fft, cfg.hop_length, self.window, frames)
        spec = scipy.fft.rfft(frames, axis=1, workers=self.threads)
        out = np.empty((cfg.n_mels, n_frames), np.float32)
        kernel = _kernels._mel_log_parallel if parallel else _kernels._mel_log
        kernel(spec, self.starts, self.stops, self.offsets, self.weights, float(cfg.power), float(cfg.floor),
               self.inv_log, out)
        return out


def logmel(y: np.ndarray, cfg: MelConfig, threads: int = 1) -> np.ndarray:
    """One-shot log-mel (builds a :class:`LogMelExtractor`; reuse one for many clips)."""
    return LogMelExtractor(cfg, threads=threads)(y)
