"""Vocoder losses: adversarial (LSGAN or hinge), feature matching, mel L1 (through the one
MelConfig), multi-resolution STFT. Weighted by name from the recipe (HiFi-GAN's 45 / 2 / 1)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vocoder.mel import MelConfig, MelSpectrogram

__all__ = ["LossWeights", "MelL1", "MultiResolutionSTFTLoss", "critic_loss", "feature_matching",
           "generator_adversarial"]


@dataclass
class LossWeights:
    """Generator loss weights. ``adv`` multiplies the adversarial term, ``fm`` feature matching,
    ``mel`` the mel L1, ``stft`` the multi-resolution STFT loss (0 = not computed)."""

    mel: float = 45.0
    fm: float = 2.0
    adv: float = 1.0
    stft: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> "LossWeights":
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown loss weight(s) {unknown}; known: {names}")
        return cls(**{k: float(v) for k, v in d.items()})


def critic_loss(real: list[torch.Tensor], fake: list[torch.Tensor], kind: str = "lsgan") -> torch.Tensor:
    """Critic loss summed over sub-critics. LSGAN: (D(x) - 1)² + D(G(z))²; hinge: relu(1 - D(x)) +
    relu(1 + D(G(z)))."""
    total = 0.0
    for r, f in zip(real, fake, strict=True):
        if kind == "lsgan":
            total = total + torch.mean((r - 1) ** 2) + torch.mean(f**2)
        elif kind == "hinge":
            total = total + torch.mean(F.relu(1 - r)) + torch.mean(F.relu(1 + f))
        else:
            raise ValueError(f"adversarial loss must be 'lsgan' or 'hinge', got {kind!r}")
    return total


def generator_adversarial(fake: list[torch.Tensor], kind: str = "lsgan") -> torch.Tensor:
    """Generator's adversarial loss: LSGAN (D(G(z)) - 1)², hinge -D(G(z))."""
    total = 0.0
    for f in fake:
        if kind == "lsgan":
            total = total + torch.mean((f - 1) ** 2)
        elif kind == "hinge":
            total = total - torch.mean(f)
        else:
            raise ValueError(f"adversarial loss must be 'lsgan' or 'hinge', got {kind!r}")
    return total


def feature_matching(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between critic feature maps of real and generated audio, averaged per layer and
    summed over sub-critics (real features are constants here)."""
    total = 0.0
    for rs, fs in zip(real, fake, strict=True):
        total = total + sum(torch.mean(torch.abs(r.detach() - f)) for r, f in zip(rs, fs, strict=True)) / len(rs)
    return total


class MelL1(nn.Module):
    """L1 between log-mels of two waveforms, using exactly the vocoder's MelConfig.

    y_hat, y: (B, 1, T) → scalar.
    """

    def __init__(self, mel_cfg: MelConfig):
        super().__init__()
        self.mel = MelSpectrogram(mel_cfg)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self.mel(y_hat), self.mel(y))


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions (Parallel WaveGAN).

    Args:
        resolutions: (n_fft, hop, win) triples.
    """

    def __init__(self, resolutions=((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))):
        super().__init__()
        self.resolutions = [tuple(int(v) for v in r) for r in resolutions]
        for i, (_, _, win) in enumerate(self.resolutions):
            self.register_buffer(f"window{i}", torch.hann_window(win), persistent=False)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """y_hat, y: (B, 1, T) → scalar."""
        total = 0.0
        for i, (n_fft, hop, win) in enumerate(self.resolutions):
            w = getattr(self, f"window{i}")
            s_hat = torch.stft(y_hat.squeeze(1), n_fft, hop, win, w, return_complex=True).abs().clamp(min=1e-7)
            s = torch.stft(y.squeeze(1), n_fft, hop, win, w, return_complex=True).abs().clamp(min=1e-7)
            sc = torch.linalg.norm(s - s_hat) / torch.linalg.norm(s).clamp(min=1e-7)
            total = total + sc + F.l1_loss(torch.log(s_hat), torch.log(s))
        return total / len(self.resolutions)
