"""Differentiable augmentation of normalised log-mels for stage one (DiffAugment, Zhao et al. 2020).

With a few thousand clips the critic memorises the real set and the generator stops learning.
DiffAugment applies the *same random family* of transforms T to real and generated mels before
the critic, in the critic steps and in the generator step, so the critic only ever sees T(x) and
the generator matches T(G(z)) to T(x) — which, for transforms that do not leak (that are
invertible in distribution), still means matching G(z) to x. Every op is differentiable in its
input, so the generator's gradient flows through T.

Ops (``specgan.augment.policy``), applied in this order, each to a sample with probability ``p``:

- ``gain``: a level change: one additive shift per clip in the log domain, drawn uniformly in
  ``±gain_db`` decibels and converted to normalised units per mel bin (the normalisation divides
  each bin by its own ``clip_sigma·std``). **Not clamped** to [-1, 1]: a pure shift is invertible
  and keeps a gradient at every pixel (DiffAugment's brightness is not clamped either); the
  critic simply sees values up to ``gain`` outside the range.
- ``translation``: a shift in **time only**, by up to ``translation × frames`` frames either way;
  the frames shifted in are the data floor (silence). Never in frequency: on a mel axis a shift
  is a pitch change (a "seven" a third higher is still a seven, a C shifted is a D — a wrong
  label), and never a flip.
- ``cutout``: one block of ``cutout × frames`` frames at a random position set to the data
  floor (silence, not zero: zero is the mean level in normalised units, i.e. a loud band).
  With ``cutout_mels > 0`` the block is a time-frequency rectangle ``cutout_mels × n_mels``
  high instead of the full height.

The data floor is the normalised value of silence per mel bin, the value
:class:`specgan.stage_one.data.MelDataset` pads with (−1 where silence is clipped at 3σ).
All randomness comes from the caller's ``torch.Generator`` (the trainer's batch/noise sampler,
saved in ``state.pt``), so a resumed run draws the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import math
import torch

from specgan.stage_one.config import OPS, AugmentConfig

__all__ = ["OPS", "AugmentConfig", "DiffAugment", "gain_per_db"]

def gain_per_db(stats, mel_cfg=None) -> torch.Tensor:
    """(n_mels,) normalised units per dB of level change, per mel bin.

    A gain of g dB multiplies the magnitude by 10^(g/20): the log-mel moves by g/20·log_b(10)
    (b = ``mel.log_base``; 2 for a power mel), then the normalisation divides by
    ``clip_sigma · std`` of the bin.
    """
    base = {"e": math.e, "10": 10.0, "2": 2.0}[str(getattr(mel_cfg, "log_base", "e"))]
    power = float(getattr(mel_cfg, "power", 1.0))
    per_db = power / 20 * math.log(10.0) / math.log(base)
    scale = torch.as_tensor(stats.std, dtype=torch.float32) * (stats.clip_sigma or 1.0)
    return per_db / scale


class DiffAugment:
    """Random, differentiable ``x (B, 1, n_mels, frames) → x'`` of the same shape.

    Args:
        cfg: The policy and its strengths.
        floor: (n_mels,) normalised silence per bin, or a scalar (−1: SpecGAN's clip floor).
        gain_scale: (n_mels,) normalised units per dB (:func:`gain_per_db`), or a scalar.
    """

    def __init__(self, cfg: AugmentConfig, floor: torch.Tensor | float = -1.0,
                 gain_scale: torch.Tensor | float = 1.0 / 20):
        self.cfg = cfg
        self.floor = torch.as_tensor(floor, dtype=torch.float32)
        self.gain_scale = torch.as_tensor(gain_scale, dtype=torch.float32)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Augment a batch; draws from ``gen`` (a CPU generator) in a fixed order."""
        if not self.cfg.enabled:
            return x
        for op in OPS:  # a fixed order, whatever order the recipe lists them in
            if op in self.cfg.policy:
                x = getattr(self, f"_{op}")(x, gen)
        return x

    # -- helpers ---------------------------------------------------------------------------
    def _apply(self, b: int, gen: torch.Generator) -> torch.Tensor:
        """(B,) bool: which samples this op touches (always drawn, so the stream is policy-stable)."""
        return torch.rand(b, generator=gen) < self.cfg.p

    def _bins(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A scalar or (n_mels,) value as (1, 1, n_mels, 1) on x's device and dtype."""
        v = v.to(x.device, x.dtype)
        return v.view(1, 1, -1, 1) if v.dim() else v

    # -- ops ------------------------------------------------------------------------------
    def _gain(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b = x.shape[0]
        on = self._apply(b, gen)
        db = (torch.rand(b, generator=gen) * 2 - 1) * self.cfg.gain_db * on
        return x + db.to(x.device, x.dtype).view(b, 1, 1, 1) * self._bins(self.gain_scale, x)

    def _translation(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, t = x.shape[0], x.shape[-1]
        on = self._apply(b, gen)
        m = int(round(self.cfg.translation * t))
        shift = torch.randint(-m, m + 1, (b,), generator=gen) * on
        src = torch.arange(t).view(1, t) - shift.view(b, 1)           # out[..., j] = x[..., j - shift]
        valid = ((src >= 0) & (src < t)).to(x.device).view(b, 1, 1, t)
        idx = src.clamp(0, t - 1).to(x.device).view(b, 1, 1, t).expand_as(x)
        return torch.where(valid, x.gather(-1, idx), self._bins(self.floor, x))

    def _cutout(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, _, f, t = x.shape
        on = self._apply(b, gen)
        w = max(1, int(round(self.cfg.cutout * t)))
        h = int(round(self.cfg.cutout_mels * f)) or f
        t0 = torch.randint(0, t - w + 1, (b,), generator=gen)
        f0 = torch.randint(0, f - h + 1, (b,), generator=gen)
        tt, ff = torch.arange(t).view(1, t), torch.arange(f).view(1, f)
        in_t = (tt >= t0.view(b, 1)) & (tt < (t0 + w).view(b, 1))
        in_f = (ff >= f0.view(b, 1)) & (ff < (f0 + h).view(b, 1))
        hole = (in_f.view(b, 1, f, 1) & in_t.view(b, 1, 1, t) & on.view(b, 1, 1, 1)).to(x.device)
        return torch.where(hole, self._bins(self.floor, x), x)
