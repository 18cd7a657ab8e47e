"""Building blocks of the stage-one networks: the convolutional grid and the small modules
the generator composes (residual blocks, FiLM, the F0 contour input).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["F0Input", "FiLM", "LabelEmbedding", "LabelMap", "Residual", "grid_for", "label_sizes", "stages_for"]


def stages_for(n_mels: int, frames: int) -> int:
    """Number of stride-2 stages so that the smaller side starts at 4 to 7 (SpecGAN: 128 → 5 stages)."""
    for name, v in (("n_mels", n_mels), ("frames", frames)):
        if int(v) != v or v < 8:
            raise ValueError(f"{name} must be an integer >= 8 (the smaller side starts at 4 after the stages), got {v}")
    return int(math.log2(min(n_mels, frames))) - 2


def grid_for(n_mels: int, frames: int) -> tuple[int, int, int]:
    """(stages, H, W): the convolutional grid for (n_mels x frames) — each side rounded up to a
    multiple of 2**stages. Any size works: the generator draws the grid and crops it to
    (n_mels, frames), the critic pads its input to the grid (80 mels x 64 frames needs neither:
    80 = 5 x 16; 100 mels draw 112 and keep 100).
    """
    n = stages_for(n_mels, frames)
    step = 1 << n
    return n, -(-n_mels // step) * step, -(-frames // step) * step


class Residual(nn.Module):
    """x + conv(ReLU(conv(ReLU(x)))), 3×3, same width (the generator's full-resolution blocks)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FiLM(nn.Module):
    """Feature-wise linear modulation: h (B, C, H, W), e (B, E) → h·(1 + γ(e)) + β(e), γ, β (B, C).

    Default (non-zero) initialisation, as BigGAN's class-conditional gains: the label already
    steers every stage at step 0.
    """

    def __init__(self, embed_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(embed_dim, 2 * channels)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(e).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + gamma) + beta


class LabelMap(nn.Module):
    """e (B, E) → e + MLP(e): ``layers`` hidden layers of width E with LeakyReLU(0.2), then a
    linear layer initialised at zero, so the map starts as the identity. On a sum of several
    labels' embeddings it lets one label's effect depend on another's value.
    """

    def __init__(self, dim: int, layers: int):
        super().__init__()
        if layers < 1:
            raise ValueError(f"LabelMap needs at least one hidden layer, got {layers}")
        mods: list[nn.Module] = []
        for _ in range(layers):
            mods += [nn.Linear(dim, dim), nn.LeakyReLU(0.2)]
        last = nn.Linear(dim, dim)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*mods, last)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return e + self.mlp(e)


class F0Input(nn.Module):
    """h (B, C, H, W) + a per-frame contour c (B, 1, T): c averaged to W frames, times a
    per-channel weight (zero at the start: the model begins as the one without it), added at every
    frequency row.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv1d(1, channels, 1, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return h + self.proj(F.adaptive_avg_pool1d(c, h.shape[-1])).to(h.dtype)[:, :, None, :]


def label_sizes(n_classes) -> list[int]:
    """A constructor's ``n_classes`` (one count, or one per label) → the list of counts ([] for none)."""
    if isinstance(n_classes, (list, tuple)):
        sizes = [int(n) for n in n_classes]
        if not sizes or any(n < 1 for n in sizes):
            raise ValueError(f"n_classes: one positive count per label, got {list(n_classes)}")
        return sizes
    if int(n_classes) != n_classes or n_classes < 0:
        raise ValueError(f"n_classes must be an integer >= 0 or a list of them, got {n_classes!r}")
    return [int(n_classes)] if n_classes else []


class LabelEmbedding(nn.Module):
    """One embedding per label, summed: indices (B,) for one label or (B, L) → (B, dim).

    The labels' tables are stacked in one ``weight`` (sum of the counts, dim), each label's rows
    after the previous one's, so one label is exactly ``nn.Embedding`` (same tensor name, shape and
    initialisation: a one-label model's file is unchanged). With L labels each table starts at
    N(0, 1/L), so the sum has the variance of one.
    """

    def __init__(self, sizes: list[int], dim: int):
        super().__init__()
        self.sizes = list(sizes)
        self.weight = nn.Parameter(torch.empty(sum(self.sizes), dim))
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(len(self.sizes)))
        offsets = torch.tensor([0, *self.sizes[:-1]]).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        if labels.dim() == 1:
            labels = labels[:, None]
        if labels.shape[1] != len(self.sizes):
            raise ValueError(f"expected label indices (B, {len(self.sizes)}), got {tuple(labels.shape)}")
        return F.embedding(labels + self.offsets.to(labels.device), self.weight).sum(1)
