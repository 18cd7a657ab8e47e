"""Waveform datasets for vocoder training: random fixed-length segments (train) and whole clips
(validation). Audio is loaded once into memory through ``load_fn`` (so a caller can apply its own
preprocessing); the default reads with soundfile, downmixes and resamples.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

__all__ = ["SegmentDataset", "read_mono"]


def read_mono(path: str, sample_rate: int) -> np.ndarray:
    """float32 mono at ``sample_rate`` (soxr resampling when the file's rate differs)."""
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr != sample_rate:
        import soxr

        y = soxr.resample(y, sr, sample_rate, quality="HQ").astype(np.float32)
    return y


class SegmentDataset(Dataset):
    """Clips as (1, segment_samples) float tensors.

    Args:
        paths: Audio files.
        sample_rate: Target rate.
        segment_samples: Crop length; shorter clips are zero-padded. ``None`` returns whole clips.
        load_fn: ``(path, sample_rate) -> float32 array``; defaults to :func:`read_mono`. A
            ValueError/RuntimeError from it skips that file (listed in ``skipped``).
        seed: For the random crops (a generator per worker is derived from it).
    """

    def __init__(self, paths: Sequence[str], sample_rate: int, segment_samples: int | None,
                 load_fn: Callable[[str, int], np.ndarray] | None = None, seed: int = 0):
        if not paths:
            raise ValueError("SegmentDataset needs at least one audio file")
        load = load_fn or read_mono
        self.clips, self.paths, self.skipped = [], [], []
        for p in paths:
            try:
                self.clips.append(np.asarray(load(p, sample_rate), dtype=np.float32))
                self.paths.append(p)
            except (ValueError, RuntimeError) as e:  # unusable audio: skipped and listed, not fatal
                self.skipped.append((p, str(e)))
        if not self.clips:
            raise ValueError(f"none of the {len(paths)} audio files could be used; first error: {self.skipped[0][1]}")
        self.segment = segment_samples
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> torch.Tensor:
        y = self.clips[i]
        if self.segment is None:
            return torch.from_numpy(y)[None]
        if y.size <= self.segment:
            out = np.zeros(self.segment, np.float32)
            out[: y.size] = y
        else:
            start = int(self.rng.integers(0, y.size - self.segment + 1))
            out = y[start : start + self.segment]
        return torch.from_numpy(np.ascontiguousarray(out))[None]
