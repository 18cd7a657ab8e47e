"""HiFi-GAN generator (Kong et al. 2020): transposed-conv upsampling with multi-receptive-field
residual blocks. Presets are the paper's V1/V2/V3 configurations (for hop 256); ``hifigan_snake``
is the music variant with periodic (snake) activations.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from vocoder.generators.base import Generator, activation
from vocoder.mel import MelConfig
from vocoder.registry import register_generator

__all__ = ["HIFIGAN_PRESETS", "HiFiGAN", "SnakeHiFiGAN"]

HIFIGAN_PRESETS = {
    # Published configurations (hop 256): V1 is the quality model, V2 a small one, V3 the fast one.
    "v1": dict(upsample_rates=[8, 8, 2, 2], upsample_kernel_sizes=[16, 16, 4, 4], upsample_initial_channel=512,
               resblock="1", resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3),
    "v2": dict(upsample_rates=[8, 8, 2, 2], upsample_kernel_sizes=[16, 16, 4, 4], upsample_initial_channel=128,
               resblock="1", resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3),
    "v3": dict(upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8], upsample_initial_channel=256,
               resblock="2", resblock_kernel_sizes=[3, 5, 7], resblock_dilation_sizes=[[1, 2], [2, 6], [3, 12]]),
    # 44.1 kHz with hop 512: one more x2 stage on V2's widths.
    "v2-hop512": dict(upsample_rates=[8, 8, 4, 2], upsample_kernel_sizes=[16, 16, 8, 4], upsample_initial_channel=128,
                      resblock="1", resblock_kernel_sizes=[3, 7, 11], resblock_dilation_sizes=[[1, 3, 5]] * 3),
}
_LRELU = 0.1


def _same(kernel: int, dilation: int) -> int:
    return (kernel * dilation - dilation) // 2


class _ResBlock1(nn.Module):
    """Pairs of (dilated conv, conv) with a residual around each pair."""

    def __init__(self, ch: int, kernel: int, dilations: list[int], act: str):
        super().__init__()
        self.convs1 = nn.ModuleList(weight_norm(nn.Conv1d(ch, ch, kernel, dilation=d, padding=_same(kernel, d)))
                                    for d in dilations)
        self.convs2 = nn.ModuleList(weight_norm(nn.Conv1d(ch, ch, kernel, padding=_same(kernel, 1)))
                                    for _ in dilations)
        self.acts1 = nn.ModuleList(activation(act, ch, _LRELU) for _ in dilations)
        self.acts2 = nn.ModuleList(activation(act, ch, _LRELU) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2, a1, a2 in zip(self.convs1, self.convs2, self.acts1, self.acts2):
            x = x + c2(a2(c1(a1(x))))
        return x


class _ResBlock2(nn.Module):
    """Single dilated convs with a residual around each (the V3 block)."""

    def __init__(self, ch: int, kernel: int, dilations: list[int], act: str):
        super().__init__()
        self.convs = nn.ModuleList(weight_norm(nn.Conv1d(ch, ch, kernel, dilation=d, padding=_same(kernel, d)))
                                   for d in dilations)
        self.acts = nn.ModuleList(activation(act, ch, _LRELU) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c, a in zip(self.convs, self.acts):
            x = x + c(a(x))
        return x


@register_generator("hifigan")
class HiFiGAN(Generator):
    """HiFi-GAN generator.

    Args:
        mel_cfg: The mel this vocoder consumes; the product of ``upsample_rates`` must equal its
            ``hop_length``.
        preset: ``v1``, ``v2``, ``v3`` or ``v2-hop512``; explicit arguments override it.
        upsample_rates, upsample_kernel_sizes: One transposed conv per stage; each kernel minus
            its rate must be even (so the output is exactly rate x the input).
        upsample_initial_channel: Channels after the input conv; halved at each stage.
        resblock: ``"1"`` or ``"2"``.
        resblock_kernel_sizes, resblock_dilation_sizes: The parallel residual blocks per stage.
        activation: ``leaky_relu`` (HiFi-GAN) or ``snake`` (periodic, for music).
    """

    def __init__(self, mel_cfg: MelConfig, preset: str | None = "v1", upsample_rates: list[int] | None = None,
                 upsample_kernel_sizes: list[int] | None = None, upsample_initial_channel: int | None = None,
                 resblock: str | None = None, resblock_kernel_sizes: list[int] | None = None,
                 resblock_dilation_sizes: list[list[int]] | None = None, activation: str = "leaky_relu"):
        super().__init__(mel_cfg)
        if preset is not None and preset not in HIFIGAN_PRESETS:
            raise ValueError(f"hifigan: unknown preset {preset!r}; available: {', '.join(HIFIGAN_PRESETS)}")
        base = dict(HIFIGAN_PRESETS[preset]) if preset else {}
        given = dict(upsample_rates=upsample_rates, upsample_kernel_sizes=upsample_kernel_sizes,
                     upsample_initial_channel=upsample_initial_channel, resblock=resblock,
                     resblock_kernel_sizes=resblock_kernel_sizes, resblock_dilation_sizes=resblock_dilation_sizes)
        cfg = {**base, **{k: v for k, v in given.items() if v is not None}}
        missing = [k for k, v in given.items() if k not in cfg]
        if missing:
            raise ValueError(f"hifigan: no preset given, so these are required: {', '.join(missing)}")
        rates, kernels = list(cfg["upsample_rates"]), list(cfg["upsample_kernel_sizes"])
        if len(rates) != len(kernels):
            raise ValueError(f"hifigan: {len(rates)} upsample_rates but {len(kernels)} upsample_kernel_sizes")
        if math.prod(rates) != mel_cfg.hop_length:
            raise ValueError(f"hifigan: the product of upsample_rates {rates} is {math.prod(rates)}, but the mel's "
                             f"hop_length is {mel_cfg.hop_length}; set upsample_rates to multiply to it")
        for u, k in zip(rates, kernels):
            if (k - u) % 2 or k < u:
                raise ValueError(f"hifigan: upsample kernel {k} with rate {u}: kernel - rate must be even and >= 0")
        if cfg["resblock"] not in ("1", "2"):
            raise ValueError(f"hifigan: resblock must be '1' or '2', got {cfg['resblock']!r}")
        self.config = {**cfg, "activation": activation}
        block = _ResBlock1 if cfg["resblock"] == "1" else _ResBlock2
        ch = cfg["upsample_initial_channel"]
        self.conv_pre = weight_norm(nn.Conv1d(mel_cfg.n_mels, ch, 7, padding=3))
        self.ups = nn.ModuleList()
        self.up_acts = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for i, (u, k) in enumerate(zip(rates, kernels)):
            c_in, c_out = ch // 2**i, ch // 2 ** (i + 1)
            self.up_acts.append(_act(activation, c_in))
            self.ups.append(weight_norm(nn.ConvTranspose1d(c_in, c_out, k, u, padding=(k - u) // 2)))
            for kk, dd in zip(cfg["resblock_kernel_sizes"], cfg["resblock_dilation_sizes"]):
                self.resblocks.append(block(c_out, kk, list(dd), activation))
        self.n_kernels = len(cfg["resblock_kernel_sizes"])
        c_last = ch // 2 ** len(rates)
        self.act_post = _act(activation, c_last, slope=0.01)
        self.conv_post = weight_norm(nn.Conv1d(c_last, 1, 7, padding=3))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel (B, n_mels, T) → waveform (B, 1, T * hop_length) in [-1, 1]."""
        self.check_input(mel)
        x = self.conv_pre(mel)
        for i, (act, up) in enumerate(zip(self.up_acts, self.ups)):
            x = up(act(x))
            blocks = self.resblocks[i * self.n_kernels : (i + 1) * self.n_kernels]
            x = sum(b(x) for b in blocks) / self.n_kernels
        return torch.tanh(self.conv_post(self.act_post(x)))


def _act(kind: str, ch: int, slope: float = _LRELU) -> nn.Module:
    return activation(kind, ch, slope)


@register_generator("hifigan_snake")
class SnakeHiFiGAN(HiFiGAN):
    """The music variant: HiFi-GAN with snake (periodic) activations, which extrapolate periodic
    signals — sustained pitched notes — better than leaky ReLU (BigVGAN's observation). Defaults
    to the V2 widths; ``preset: v2-hop512`` for 44.1 kHz with hop 512.
    """

    def __init__(self, mel_cfg: MelConfig, preset: str | None = "v2", upsample_rates: list[int] | None = None,
                 upsample_kernel_sizes: list[int] | None = None, upsample_initial_channel: int | None = None,
                 resblock: str | None = None, resblock_kernel_sizes: list[int] | None = None,
                 resblock_dilation_sizes: list[list[int]] | None = None, activation: str = "snake"):
        super().__init__(mel_cfg, preset, upsample_rates, upsample_kernel_sizes, upsample_initial_channel, resblock,
                         resblock_kernel_sizes, resblock_dilation_sizes, activation)
