"""Stage one's training data: cached log-mels of one split, normalised, padded/cropped to the
model's width, in memory, with label indices (also what the evaluation classifier trains on).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MelDataset"]


class MelDataset:
    """Normalised log-mels of one split in memory, padded/cropped to ``frames``, with label indices.

    Args:
        mels: list of (n_mels, T) log-mel arrays.
        labels: the raw label of each (or None when unconditional).
        stats: :class:`vocoder.mel.MelStats` for normalisation.
        frames: output width; shorter mels are padded with the normalised floor.
        floor_log: log-mel value of silence (MelConfig.log(floor)).
        vocab: label → index (built from ``labels`` when None).
    """

    def __init__(self, mels, labels, stats, frames: int, floor_log: float, vocab: list | None = None):
        n_mels = stats.n_mels
        pad = stats.normalize(np.full((n_mels, 1), floor_log, np.float32))
        x = np.empty((len(mels), 1, n_mels, frames), np.float32)
        for i, m in enumerate(mels):
            z = stats.normalize(np.asarray(m, np.float32))[:, :frames]
            x[i, 0, :, : z.shape[1]] = z
            x[i, 0, :, z.shape[1]:] = pad
        self.x = torch.from_numpy(x)
        self.stats = stats
        self.floor = torch.from_numpy(np.ascontiguousarray(pad[:, 0]))  # (n_mels,) normalised silence (augment fills)
        self.vocab = vocab if vocab is not None else (sorted(set(labels)) if labels and labels[0] is not None else [])
        index = {v: i for i, v in enumerate(self.vocab)}
        if self.vocab:
            missing = sorted({str(l) for l in labels if l not in index})
            if missing:
                raise ValueError(f"labels not in the training vocabulary: {', '.join(missing[:5])}")
            self.y = torch.tensor([index[l] for l in labels])
        else:
            self.y = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(len(self), (n,), generator=gen)
        return self.x[idx], (self.y[idx] if self.y is not None else None)
