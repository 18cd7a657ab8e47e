"""Critics (discriminators) for waveform GANs. Each returns, for a batch of waveforms, a list of
score maps (one per sub-critic) and a list of feature-map lists (for feature matching).

- ``msd``: multi-scale (MelGAN): the raw waveform and 2x / 4x average-pooled copies, each through
  grouped strided 1-D convs; spectral norm on the first (raw) scale.
- ``mpd``: multi-period (HiFi-GAN): the waveform folded into (T/p, p) for periods p, 2-D convs
  over the folded time axis.
- ``mrd``: multi-resolution STFT (UnivNet): log-magnitude spectrograms at several resolutions,
  2-D convs over (frequency, time).

``width`` scales every channel count (1.0 = published sizes); on CPU the critics dominate the
cost of a training step (~98% of FLOPs for HiFi-GAN V3 + MPD + MSD), so recipes size them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from vocoder.registry import build_critic, register_critic

__all__ = ["CriticSet", "MultiPeriodCritic", "MultiResolutionSTFTCritic", "MultiScaleCritic"]

Scores = list[torch.Tensor]
Features = list[list[torch.Tensor]]
_SLOPE = 0.1


def _ch(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _run_stack(x: torch.Tensor, convs: nn.ModuleList, post: nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Conv → leaky ReLU for each layer, then the score conv; every output is a feature map."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), _SLOPE)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x, feats


def _run_all(critics: nn.ModuleList, y: torch.Tensor) -> tuple[Scores, Features]:
    out = [c(y) for c in critics]
    return [s for s, _ in out], [f for _, f in out]


class _ScaleCritic(nn.Module):
    """One MSD scale: grouped strided 1-D convs. x: (B, 1, T) → score (B, 1, T'), features."""

    def __init__(self, width: float, use_spectral_norm: bool):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        # (in, out, kernel, stride, groups) — MelGAN's layout.
        spec = [(1, 16, 15, 1, 1), (16, 64, 41, 4, 4), (64, 256, 41, 4, 16), (256, 1024, 41, 4, 64),
                (1024, 1024, 41, 4, 256), (1024, 1024, 5, 1, 1)]
        layers = []
        for c_in, c_out, k, s, g in spec:
            ci = 1 if c_in == 1 else _ch(c_in, width)
            co = _ch(c_out, width)
            g = max(1, min(g, ci, co))
            while ci % g or co % g:
                g -= 1
            layers.append(norm(nn.Conv1d(ci, co, k, s, padding=k // 2, groups=g)))
        self.convs = nn.ModuleList(layers)
        self.post = norm(nn.Conv1d(_ch(1024, width), 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _run_stack(x, self.convs, self.post)


@register_critic("msd")
class MultiScaleCritic(nn.Module):
    """Multi-scale critic.

    Args:
        scales: Number of scales (each after the first sees the waveform average-pooled 2x more).
        width: Channel multiplier (1.0 = MelGAN/HiFi-GAN sizes).
    """

    def __init__(self, scales: int = 3, width: float = 1.0):
        super().__init__()
        if scales < 1:
            raise ValueError(f"msd: scales must be >= 1, got {scales}")
        self.critics = nn.ModuleList(_ScaleCritic(width, use_spectral_norm=(i == 0)) for i in range(scales))
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, y: torch.Tensor) -> tuple[Scores, Features]:
        """y: (B, 1, T) → (scores, features), one entry per scale."""
        scores, feats = [], []
        for i, critic in enumerate(self.critics):
            if i:
                y = self.pool(y)
            s, f = critic(y)
            scores.append(s)
            feats.append(f)
        return scores, feats


class _PeriodCritic(nn.Module):
    def __init__(self, period: int, width: float):
        super().__init__()
        self.period = period
        chans = [1] + [_ch(c, width) for c in (32, 128, 512, 1024)]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3, 1), padding=(2, 0))) for i in range(4))
        self.convs.append(weight_norm(nn.Conv2d(chans[-1], chans[-1], (5, 1), 1, padding=(2, 0))))
        self.post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, t = y.shape
        if t % self.period:
            y = F.pad(y, (0, self.period - t % self.period), mode="reflect")
        x = y.view(b, c, -1, self.period)
        x, feats = _run_stack(x, self.convs, self.post)
        return x.flatten(1, -1), feats


@register_critic("mpd")
class MultiPeriodCritic(nn.Module):
    """Multi-period critic.

    Args:
        periods: Fold periods (HiFi-GAN: primes 2, 3, 5, 7, 11 so the views overlap little).
        width: Channel multiplier.
    """

    def __init__(self, periods: list[int] = (2, 3, 5, 7, 11), width: float = 1.0):
        super().__init__()
        if not periods or any(p < 1 for p in periods):
            raise ValueError(f"mpd: periods must be positive integers, got {periods}")
        self.critics = nn.ModuleList(_PeriodCritic(int(p), width) for p in periods)

    def forward(self, y: torch.Tensor) -> tuple[Scores, Features]:
        """y: (B, 1, T) → (scores, features), one entry per period."""
        return _run_all(self.critics, y)


class _ResolutionCritic(nn.Module):
    def __init__(self, n_fft: int, hop: int, win: int, width: float):
        super().__init__()
        self.n_fft, self.hop, self.win = n_fft, hop, win
        self.register_buffer("window", torch.hann_window(win), persistent=False)
        ch = _ch(32, width)
        self.convs = nn.ModuleList([
            weight_norm(nn.Conv2d(1, ch, (3, 9), padding=(1, 4))),
            weight_norm(nn.Conv2d(ch, ch, (3, 9), (1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(ch, ch, (3, 9), (1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(ch, ch, (3, 9), (1, 2), padding=(1, 4))),
            weight_norm(nn.Conv2d(ch, ch, (3, 3), padding=(1, 1))),
        ])
        self.post = weight_norm(nn.Conv2d(ch, 1, (3, 3), padding=(1, 1)))

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = torch.stft(y.squeeze(1), self.n_fft, self.hop, self.win, self.window, center=True, return_complex=True)
        x = torch.log(spec.abs().clamp(min=1e-5)).unsqueeze(1).transpose(2, 3)  # (B, 1, T, F)
        x, feats = _run_stack(x, self.convs, self.post)
        return x.flatten(1, -1), feats


@register_critic("mrd")
class MultiResolutionSTFTCritic(nn.Module):
    """Multi-resolution STFT critic.

    Args:
        resolutions: (n_fft, hop, win) triples.
        width: Channel multiplier.
    """

    def __init__(self, resolutions: list[list[int]] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)),
                 width: float = 1.0):
        super().__init__()
        self.critics = nn.ModuleList(_ResolutionCritic(int(n), int(h), int(w), width) for n, h, w in resolutions)

    def forward(self, y: torch.Tensor) -> tuple[Scores, Features]:
        return _run_all(self.critics, y)


class CriticSet(nn.Module):
    """Any combination of registered critics, built from a list of ``{name: ..., **params}``;
    their scores and features are concatenated in order.
    """

    def __init__(self, specs: list[dict]):
        super().__init__()
        if not specs:
            raise ValueError("at least one critic is needed, e.g. [{name: msd}]")
        self.specs = [dict(s) for s in specs]
        self.critics = nn.ModuleList(build_critic(s) for s in self.specs)

    def forward(self, y: torch.Tensor) -> tuple[Scores, Features]:
        """y: (B, 1, T) → (scores, features) over every sub-critic of every critic."""
        scores, feats = [], []
        for critic in self.critics:
            s, f = critic(y)
            scores += s
            feats += f
        return scores, feats
