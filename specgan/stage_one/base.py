"""What every stage-one generator is: the contract the trainer, the loader and sampling rely on.

A stage-one generator maps latents (and label indices) to normalised log-mels
(B, 1, n_mels, frames) in [-1, 1]. It declares its output size and latent size as attributes,
fills anything it reads from the training data in one :meth:`~SpectrogramGenerator.prepare`
hook (the trainer calls it once, before step 0), and maps tensor names of older files onto its
own (:meth:`~SpectrogramGenerator.upgrade_key`), so a renamed buffer never orphans a shipped
model or a checkpoint to resume.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from specgan.stage_one.layers import label_sizes

__all__ = ["SpectrogramGenerator"]


class SpectrogramGenerator(nn.Module):
    """Base class of stage-one generators.

    Args:
        n_mels: Mel bands of the output.
        frames: Frames of the output.
        z_dim: Latent size.
        n_classes: Label values it is conditioned on (0: unconditional), or one count per label
            (several labels at once: label indices are then (B, L)).
    """

    # old tensor name → new, for files written before a module was reorganised
    LEGACY_KEYS: ClassVar[dict[str, str]] = {}

    def __init__(self, n_mels: int, frames: int, z_dim: int, n_classes: int | list[int] = 0):
        super().__init__()
        self.label_sizes = label_sizes(n_classes)
        self.n_mels, self.frames, self.z_dim = n_mels, frames, z_dim
        self.n_classes = n_classes if not isinstance(n_classes, (list, tuple)) else list(self.label_sizes)
        self._register_load_state_dict_pre_hook(self._upgrade_state_dict)

    @classmethod
    def upgrade_key(cls, key: str) -> str:
        """A tensor name as an older file spells it → this class's name for it."""
        return cls.LEGACY_KEYS.get(key, key)

    def _upgrade_state_dict(self, state_dict, prefix, *_args) -> None:
        for key in [k for k in state_dict if k.startswith(prefix)]:
            new = self.upgrade_key(key[len(prefix):])
            if new != key[len(prefix):]:
                state_dict[prefix + new] = state_dict.pop(key)

    def prepare(self, data, mel, stats) -> dict[str, Any]:
        """Fill what the model reads from its training data (nothing by default).

        Args:
            data: A :class:`~specgan.stage_one.data.MelDataset`.
            mel: The :class:`vocoder.mel.MelConfig` of the features, or None.
            stats: Their :class:`vocoder.mel.MelStats`, or None.

        Returns:
            What was filled, for the log.
        """
        return {}

    @property
    def conditional(self) -> bool:
        """Whether it takes labels."""
        return bool(self.label_sizes)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Latents (B, z_dim) and label indices (B,) or (B, L) → normalised mels (B, 1, n_mels, frames)."""
        raise NotImplementedError(f"{type(self).__name__} must define forward")
