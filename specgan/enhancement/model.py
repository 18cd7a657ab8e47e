"""The enhancement GAN: a U-Net from a degraded log-mel to a clean one, and a critic of
(degraded, candidate) pairs.

Analysis by the GAN, synthesis by the vocoder (VoiceFixer's split): the generator works on the
vocoder's own log-mel, so its output goes straight into the trained speech vocoder.

- :class:`MelUNet` (``enhance.model: {name: unet}``): the log-mel is standardised per band with
  the clean training speech's statistics (buffers saved with the weights), passed through an
  encoder of stride-2 convolutions (both axes) and a decoder of nearest ×2 resize + conv with
  skip connections (Ronneberger et al. 2015; pix2pix's generator). Fully convolutional: any
  number of frames (padded to a multiple of 2^depth and cropped), so a long file is enhanced in
  chunks. Two outputs, weighed in the docs at an equal budget:

  - ``mask``: a gain in (0, 1] per mel bin and frame, applied in the log domain
    (``L + log(sigmoid(u))``, floored at the mel's floor): it can only remove energy, so what it
    cannot explain it leaves, as classical suppression does (MetricGAN+, CMGAN's magnitude mask);
  - ``direct``: the clean standardised mel itself (SEGAN's direct mapping, here on mels): free to
    add energy the noise masked, free to invent it too.

- :class:`PairCritic` (``enhance.critic: {name: patch}``): pix2pix's conditional PatchGAN on
  the two standardised mels stacked as channels: stride-2 convolutions, LeakyReLU, no
  normalisation, a map of scores (one per patch), averaged by the losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from specgan.mel_gan import BandStandardised
from specgan.stage_one.registry import ENHANCE_CRITICS, ENHANCERS, register

__all__ = ["MelUNet", "PairCritic"]


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(c_out, c_out, 3, 1, 1), nn.LeakyReLU(0.2))


@register(ENHANCERS, "unet")
class MelUNet(BandStandardised):
    """Degraded log-mel (B, n_mels, T) → clean log-mel (B, n_mels, T), natural log.

    Args:
        n_mels: Mel bands.
        base: Channels of the first level; each deeper level doubles them.
        depth: Stride-2 levels (the time and frequency receptive field grow with it).
        output: ``"mask"`` or ``"direct"`` (module docstring).
        floor_log: The mel's log floor (MelConfig.log(floor)): no output goes below it.
    """

    def __init__(self, n_mels: int = 64, base: int = 32, depth: int = 3, output: str = "mask",
                 floor_log: float = -11.512925):
        super().__init__(n_mels)
        if output not in ("mask", "direct"):
            raise ValueError(f"output must be 'mask' or 'direct', got {output!r}")
        if int(depth) != depth or depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
        if int(base) != base or base < 1:
            raise ValueError(f"base must be a positive integer, got {base!r}")
        self.n_mels, self.depth, self.output, self.floor_log = n_mels, int(depth), output, float(floor_log)
        widths = [base * 2**i for i in range(self.depth + 1)]
        self.down = nn.ModuleList([_block(1, widths[0])] + [_block(widths[i], widths[i + 1], 2)
                                                            for i in range(self.depth)])
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(self.depth)))
        self.out = nn.Conv2d(widths[0], 1, 1)
        # direct starts as the identity. The mask starts at a gain of sigmoid(1) = 0.73 everywhere
        # (-0.31 nats): nearer 1 the log-sigmoid saturates (at a gain of 0.98 its slope is 0.018, and a
        # first run learnt nothing in 860 steps), here its slope is 0.27
        nn.init.zeros_(self.out.weight)
        nn.init.constant_(self.out.bias, 1.0 if output == "mask" else 0.0)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        if logmel.dim() != 3 or logmel.shape[1] != self.n_mels:
            raise ValueError(f"expected log-mels (B, {self.n_mels}, T), got {tuple(logmel.shape)}")
        b, m, t = logmel.shape
        step = 1 << self.depth
        pad_m, pad_t = -m % step, -t % step
        x = self.standardise(logmel)[:, None]
        x = F.pad(x, (0, pad_t, 0, pad_m), mode="replicate") if pad_m or pad_t else x
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth:
                skips.append(x)
        for block in self.up:
            skip = skips.pop()
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], dim=1))
        u = self.out(x)[:, 0, :m, :t]
        if self.output == "mask":
            out = logmel + F.logsigmoid(u)
        else:
            out = self.standardise(logmel) + u
            out = self.unstandardise(out)
        return out.clamp_min(self.floor_log)


@register(ENHANCE_CRITICS, "patch")
class PairCritic(nn.Module):
    """(degraded, candidate) standardised log-mels (B, n_mels, T) each → a map of patch scores.

    Args:
        n_mels: Mel bands (unused but for the file's record: the critic is fully convolutional).
        d: Channels of the first layer; doubled per layer.
        layers: Stride-2 layers (receptive field ~ 2^layers · 3 bins and frames).
        conditional: Whether the critic sees the degraded input beside the candidate (pix2pix;
            false: an unconditional critic of clean-looking mels).
    """

    def __init__(self, n_mels: int = 64, d: int = 32, layers: int = 3, conditional: bool = True):
        super().__init__()
        self.conditional = bool(conditional)
        mods: list[nn.Module] = []
        c = 2 if self.conditional else 1
        for i in range(int(layers)):
            mods += [nn.Conv2d(c, d * 2**i, 4, 2, 1), nn.LeakyReLU(0.2)]
            c = d * 2**i
        mods.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, degraded: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        x = torch.stack([degraded, candidate], dim=1) if self.conditional else candidate[:, None]
        return self.net(x)[:, 0]
