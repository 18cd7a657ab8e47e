"""What every generator shares: the mel contract, input checks, weight-norm removal, and the
capabilities it declares (its synthesis STFT, whether it exports to ONNX) so that export, the CLI
and the trainer ask the generator instead of testing its type.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from vocoder.mel import MelConfig

__all__ = ["Generator", "Snake", "StftGeometry", "activation"]


@dataclass(frozen=True)
class StftGeometry:
    """The STFT a spectral generator synthesises through (its network outputs a magnitude and a
    phase on this grid; an inverse STFT with a periodic Hann window of ``n_fft`` makes the wave).

    Attributes:
        n_fft: FFT size (and window length).
        hop_length: Samples between its frames.
        frames_per_mel_frame: Its frames per mel frame (the mel hop over ``hop_length``).
    """

    n_fft: int
    hop_length: int
    frames_per_mel_frame: int = 1


class Generator(nn.Module):
    """A vocoder generator: log-mel (B, n_mels, T) → waveform (B, 1, T * hop_length).

    Subclasses take the :class:`MelConfig` they consume as their first argument (it is part of
    the checkpoint) and their own hyper-parameters as keyword arguments.
    """

    #: False for generators with nothing to learn (Griffin-Lim): training refuses them.
    trainable = True
    registry_name = "?"
    #: The synthesis STFT of a spectral generator (its ``spectrum(mel) → (magnitude, phase)`` is
    #: the network, the iSTFT is outside it); None for one that writes samples directly.
    stft: StftGeometry | None = None
    #: Clamp the waveform to [-1, 1] (the default contract). A caller that protects the peak itself
    #: (``specgan synth`` scales a clip that would clip) sets it False on its instance; generators
    #: whose output is bounded by construction (a tanh) ignore it.
    clip_output = True

    def __init__(self, mel_cfg: MelConfig):
        super().__init__()
        if not isinstance(mel_cfg, MelConfig):
            raise TypeError(f"expected a MelConfig, got {type(mel_cfg).__name__}")
        self.mel_cfg = mel_cfg
        self.hop_length = mel_cfg.hop_length

    def limit(self, y: torch.Tensor) -> torch.Tensor:
        """``y`` clamped to [-1, 1], or as it is where :attr:`clip_output` is False."""
        return y.clamp(-1.0, 1.0) if self.clip_output else y

    def check_input(self, mel: torch.Tensor) -> None:
        if mel.dim() != 3 or mel.shape[1] != self.mel_cfg.n_mels:
            raise ValueError(f"{self.registry_name}: expected a mel of shape (batch, {self.mel_cfg.n_mels}, frames), "
                             f"got {tuple(mel.shape)}")

    def onnx_unsupported(self) -> str | None:
        """Why this generator has no ONNX form (one line), or None when it exports."""
        return None if self.trainable else "nothing to export (no network); run it in Python"

    def forward_with_spectrum(self, mel: torch.Tensor):
        """The waveform and, for a generator that synthesises through its own spectrum, that
        spectrum: ``(wave, log_amplitude, phase, spectrum)``; the last three are None here (the
        phase-aware losses then analyse the wave).
        """
        return self(mel), None, None, None

    def remove_weight_norm(self) -> "Generator":
        """Fold weight-norm parametrisations into plain weights (for inference and export)."""
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        return self


class Snake(nn.Module):
    """Periodic activation x + sin²(αx)/α with a learned α per channel (Ziyin et al. 2020; used by
    BigVGAN for music). α is stored as log α so it stays positive.

    Args:
        channels: number of channels C of a (B, C, T) input.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.log_alpha.exp()
        return x + torch.sin(alpha * x).pow(2) / (alpha + 1e-9)


def activation(kind: str, channels: int, slope: float) -> nn.Module:
    """``"leaky_relu"`` (with ``slope``) or ``"snake"``."""
    if kind == "leaky_relu":
        return nn.LeakyReLU(slope)
    if kind == "snake":
        return Snake(channels)
    raise ValueError(f"activation must be 'leaky_relu' or 'snake', got {kind!r}")
