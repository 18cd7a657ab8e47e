"""The fast default: a ConvNeXt backbone at frame rate predicting STFT magnitude and phase, and an
inverse-STFT head (the Vocos design, Siuzdenko 2023). All layers run at the frame rate (hop_length
times fewer steps than a sample-rate upsampler), so the cost per second of audio is small.
"""

from __future__ import annotations

import torch
from torch import nn

from vocoder.generators.base import Generator, StftGeometry
from vocoder.mel import MelConfig
from vocoder.registry import register_generator

__all__ = ["ISTFTGenerator"]


class _ConvNeXtBlock(nn.Module):
    """Depthwise conv (k=7) → LayerNorm → pointwise MLP (GELU) → layer scale, with a residual.

    x: (B, C, T) → (B, C, T).
    """

    def __init__(self, dim: int, intermediate: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, intermediate)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)
        h = self.pw2(self.act(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2)


@register_generator("istft")
class ISTFTGenerator(Generator):
    """ConvNeXt backbone + iSTFT head.

    Args:
        mel_cfg: The mel consumed; the iSTFT uses its hop_length.
        dim: Backbone channels.
        intermediate_dim: Hidden size of each block's MLP.
        num_layers: ConvNeXt blocks.
        n_fft: iSTFT size (default: the mel's n_fft); window is hann of that length.
        max_log_magnitude: Clamp on the predicted log-magnitude (keeps exp() finite early on).
    """

    def __init__(self, mel_cfg: MelConfig, dim: int = 256, intermediate_dim: int = 768, num_layers: int = 8,
                 n_fft: int | None = None, max_log_magnitude: float = 4.6):
        super().__init__(mel_cfg)
        self.n_fft = n_fft or mel_cfg.n_fft
        if self.n_fft < mel_cfg.hop_length or self.n_fft % 2:
            raise ValueError(f"istft: n_fft must be even and >= hop_length {mel_cfg.hop_length}, got {self.n_fft}")
        self.config = dict(dim=dim, intermediate_dim=intermediate_dim, num_layers=num_layers, n_fft=self.n_fft,
                           max_log_magnitude=max_log_magnitude)
        self.max_log_magnitude = max_log_magnitude
        self.embed = nn.Conv1d(mel_cfg.n_mels, dim, 7, padding=3)
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(_ConvNeXtBlock(dim, intermediate_dim, 1.0 / num_layers) for _ in range(num_layers))
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, self.n_fft + 2)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.stft = StftGeometry(self.n_fft, self.hop_length)

    def spectrum(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network proper (what ONNX export covers).

        Args:
            mel (Tensor): (B, n_mels, T).

        Returns:
            (magnitude, phase): each (B, n_fft // 2 + 1, T).
        """
        self.check_input(mel)
        x = self.norm_in(self.embed(mel).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        x = self.head(self.norm_out(x.transpose(1, 2))).transpose(1, 2)
        log_mag, phase = x.chunk(2, dim=1)
        return torch.exp(log_mag.clamp(max=self.max_log_magnitude)), phase

    def istft(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """(B, F, T) magnitude and phase → waveform (B, 1, T * hop_length)."""
        spec = torch.polar(magnitude.float(), phase.float())
        frames = magnitude.shape[-1]
        y = torch.istft(spec, self.n_fft, self.hop_length, self.n_fft, self.window.to(magnitude.device),
                        center=True, length=frames * self.hop_length)
        return self.limit(y).unsqueeze(1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel (B, n_mels, T) → waveform (B, 1, T * hop_length)."""
        return self.istft(*self.spectrum(mel))
