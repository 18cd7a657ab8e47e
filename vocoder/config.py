"""Vocoder training configuration (the ``vocoder:`` section of a specgan recipe)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["VocoderConfig"]


@dataclass
class VocoderConfig:
    """What to train and how.

    ``generator`` and each entry of ``critics`` are ``{name: ..., **constructor params}`` looked up
    in :mod:`vocoder.registry`; unknown names or parameters are errors listing the valid ones.
    """

    generator: dict[str, Any] = field(default_factory=lambda: {"name": "istft"})
    # constructor arguments the exported model files run with instead of the training ones, for
    # switches that change no tensor (the ``phase`` design's pghi_mode, pghi_tol, refine_iter):
    # train one way, ship another; checked against the generator's tensors when training starts
    inference: dict[str, Any] = field(default_factory=dict)
    critics: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "msd"}, {"name": "mpd"}])
    adversarial: Literal["lsgan", "hinge"] = "lsgan"
    weights: dict[str, float] = field(default_factory=lambda: {"mel": 45.0, "fm": 2.0, "adv": 1.0})
    # (n_fft, hop, win) of the multi-resolution STFT loss and of the dev MR-STFT metric.
    stft_resolutions: list[list[int]] = field(default_factory=lambda: [[1024, 120, 600], [2048, 240, 1200],
                                                                      [512, 50, 240]])
    segment_samples: int = 8192          # random training crops (a multiple of hop_length)
    batch_size: int = 16
    steps: int = 100_000                 # total generator steps
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    weight_decay: float = 0.01           # AdamW
    lr_decay: float = 0.999              # multiplies the lrs every lr_decay_every steps (HiFi-GAN: per epoch)
    lr_decay_every: int = 1000
    # linear ramp of the lrs from 1/N to 1 over the first N steps: a run started from a model file
    # (--init-from) begins with fresh Adam moments, whose first steps are lr-sized in every weight
    lr_warmup_steps: int = 0
    critic_warmup_steps: int = 0         # reconstruction-only steps before the critics join
    grad_clip: float | None = None       # max grad norm (None = off, as HiFi-GAN; mel-L1 x 45 gives norms of 1e3)
    ema: float | None = None             # EMA decay for an averaged generator (e.g. 0.999)
    nan_lr_factor: float = 0.5           # non-finite loss: roll back to the last checkpoint, lrs x this
    max_rollbacks: int = 5               # ... at most this many times without a checkpoint in between
    log_every: int = 20
    eval_every: int = 500
    save_every: int = 500
    eval_items: int = 16                 # dev clips for validation mel-L1 / MR-STFT
    phase_weighting: Literal["none", "magnitude"] = "none"   # phase-aware losses: plain means or |S|-weighted
    amp: Literal["auto", "bf16", "off"] = "auto"   # bf16 autocast of G and the critics (auto: CUDA only)

    def __post_init__(self) -> None:
        for name in ("segment_samples", "batch_size", "log_every", "eval_every", "save_every", "lr_decay_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        for name in ("steps", "critic_warmup_steps", "eval_items", "lr_warmup_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be 0 or more, got {getattr(self, name)}")
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers, got {self.betas}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"ema must be in (0, 1) or null, got {self.ema}")
        if "name" not in self.generator:
            raise ValueError("generator needs a 'name' key")
        if not isinstance(self.inference, dict):
            raise ValueError(f"inference: expected a mapping of constructor arguments, got {self.inference!r}")
        if "name" in self.inference:
            raise ValueError("inference: changes how the generator runs, not which one it is; 'name' is not allowed")
        for i, c in enumerate(self.critics):
            if "name" not in c:
                raise ValueError(f"critics[{i}] needs a 'name' key")
