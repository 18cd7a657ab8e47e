"""MelGAN generator (Kumar et al. 2019): transposed-conv upsampling, each stage followed by a
stack of residual blocks with dilations 1, 3, 9, ... (receptive field grows exponentially).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from vocoder.generators.base import Generator
from vocoder.mel import MelConfig
from vocoder.registry import register_generator

__all__ = ["MelGAN"]


class _ResidualStack(nn.Module):
    def __init__(self, ch: int, n_layers: int, kernel: int = 3):
        super().__init__()
        self.blocks = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        for j in range(n_layers):
            d = 3**j
            self.blocks.append(nn.Sequential(
                nn.LeakyReLU(0.2), nn.ReflectionPad1d(d * (kernel - 1) // 2),
                weight_norm(nn.Conv1d(ch, ch, kernel, dilation=d)), nn.LeakyReLU(0.2),
                weight_norm(nn.Conv1d(ch, ch, 1))))
            self.shortcuts.append(weight_norm(nn.Conv1d(ch, ch, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block, short in zip(self.blocks, self.shortcuts):
            x = short(x) + block(x)
        return x


@register_generator("melgan")
class MelGAN(Generator):
    """MelGAN generator.

    Args:
        mel_cfg: The mel consumed; the product of ``upsample_rates`` must equal its hop_length.
        upsample_rates: One transposed conv (kernel 2r, stride r) per stage, even r only.
        channels: Channels of the last stage; stage i has channels * 2**(n_stages - i).
        n_residual_layers: Residual blocks per stage (dilations 1, 3, 9, ...).
    """

    def __init__(self, mel_cfg: MelConfig, upsample_rates: list[int] = (8, 8, 2, 2), channels: int = 32,
                 n_residual_layers: int = 3):
        super().__init__(mel_cfg)
        rates = list(upsample_rates)
        if math.prod(rates) != mel_cfg.hop_length:
            raise ValueError(f"melgan: the product of upsample_rates {rates} is {math.prod(rates)}, but the mel's "
                             f"hop_length is {mel_cfg.hop_length}")
        if any(r % 2 for r in rates):
            raise ValueError(f"melgan: upsample_rates must be even, got {rates}")
        self.config = dict(upsample_rates=rates, channels=channels, n_residual_layers=n_residual_layers)
        mult = 2 ** len(rates)
        layers: list[nn.Module] = [nn.ReflectionPad1d(3), weight_norm(nn.Conv1d(mel_cfg.n_mels, mult * channels, 7))]
        for r in rates:
            c_in, c_out = mult * channels, mult * channels // 2
            layers += [nn.LeakyReLU(0.2),
                       weight_norm(nn.ConvTranspose1d(c_in, c_out, 2 * r, r, padding=r // 2)),
                       _ResidualStack(c_out, n_residual_layers)]
            mult //= 2
        layers += [nn.LeakyReLU(0.2), nn.ReflectionPad1d(3), weight_norm(nn.Conv1d(channels, 1, 7)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel (B, n_mels, T) → waveform (B, 1, T * hop_length)."""
        self.check_input(mel)
        return self.net(mel)
