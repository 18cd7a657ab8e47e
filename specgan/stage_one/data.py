"""Stage one's training data: cached log-mels of one split, normalised, padded/cropped to the
model's width, in memory, with label indices (also what the evaluation classifier trains on).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from specgan.stage_one.labels import LabelSpace

__all__ = ["MelDataset"]


class MelDataset:
    """Normalised log-mels of one split in memory, padded/cropped to ``frames``, with label indices.

    Args:
        mels: list of (n_mels, T) log-mel arrays.
        labels: the raw label of each: a value, or a sequence of values with several labels (None
            when unconditional).
        stats: :class:`vocoder.mel.MelStats` for normalisation.
        frames: output width; shorter mels are padded with the normalised floor.
        floor_log: log-mel value of silence (MelConfig.log(floor)).
        vocab: one label's values → indices (built from ``labels`` when None).
        keys: the label keys (``data.label``), for messages and the model file.
        space: a :class:`~specgan.stage_one.labels.LabelSpace` to index the labels in (a model's:
            the evaluation reads held-out clips in its training indices); overrides ``vocab``.

    Attributes:
        y: (N,) indices with one label, (N, L) with several, None without.
        vocab: one label's vocabulary, or the list of each label's with several.
        space: the :class:`~specgan.stage_one.labels.LabelSpace`.
    """

    def __init__(self, mels, labels, stats, frames: int, floor_log: float, vocab: list | None = None,
                 keys: list | None = None, space: LabelSpace | None = None):
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
        labelled = bool(labels) and labels[0] is not None
        if space is None:
            multi = labelled and isinstance(labels[0], (list, tuple))
            keys = list(keys) if keys is not None else ([None] * len(labels[0]) if multi else [None])
            if not labelled:
                space = LabelSpace([], [])
            elif vocab is not None and not multi:
                space = LabelSpace(keys, [vocab])
            else:
                space = LabelSpace.from_labels(keys, labels)
        self.space = space
        self.vocab = (space.vocabs if space.multi else space.vocabs[0]) if space.conditional else []
        self.y = None
        if space.conditional and labelled:
            rows = [tuple(v) if space.multi else (v,) for v in labels]
            try:
                y = torch.from_numpy(space.encode_rows(rows))
            except ValueError as e:
                raise ValueError(f"labels not in the training vocabulary: {e}") from None
            self.y = y if space.multi else y[:, 0]

    def column(self, i: int) -> MelDataset:
        """The same clips with label ``i`` alone (a one-label view: the evaluation classifier per label)."""
        view = copy.copy(self)
        view.space = self.space.column(i)
        view.vocab = view.space.vocabs[0]
        view.y = self.y if self.y is None or self.y.dim() == 1 else self.y[:, i]
        return view

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(len(self), (n,), generator=gen)
        return self.x[idx], (self.y[idx] if self.y is not None else None)
