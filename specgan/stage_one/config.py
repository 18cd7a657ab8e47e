"""The ``specgan:`` recipe section (stage one): model specs verbatim, then the optimisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["OPS", "AugmentConfig", "SpecGANConfig"]

# DiffAugment ops (specgan.stage_one.augment), applied in this order. No frequency shifts or flips: on a mel
# axis they are pitch changes.
OPS = ("gain", "translation", "cutout")


@dataclass
class AugmentConfig:
    """The ``specgan.augment`` recipe section; an empty ``policy`` (the default) turns it off."""

    policy: list[str] = field(default_factory=list)   # any of gain, translation, cutout (always applied in that order)
    p: float = 1.0                # probability that each op is applied to a sample
    translation: float = 0.125    # largest time shift, as a fraction of the frames
    cutout: float = 0.25          # cutout width, as a fraction of the frames
    cutout_mels: float = 0.0      # cutout height as a fraction of the mel bins; 0 = full height (time cutout)
    gain_db: float = 6.0          # largest level change, dB either way

    def __post_init__(self) -> None:
        unknown = [op for op in self.policy if op not in OPS]
        if unknown:
            raise ValueError(f"policy: unknown op(s) {unknown}; known: {', '.join(OPS)} "
                             f"(no frequency shifts or flips: they change the pitch)")
        if len(set(self.policy)) != len(self.policy):
            raise ValueError(f"policy: an op is listed twice: {self.policy}")
        if not 0 <= self.p <= 1:
            raise ValueError(f"p: must be in [0, 1], got {self.p}")
        for name in ("translation", "cutout", "cutout_mels"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name}: must be in [0, 1), got {getattr(self, name)}")
        if self.gain_db < 0:
            raise ValueError(f"gain_db: must be >= 0, got {self.gain_db}")

    @property
    def enabled(self) -> bool:
        return bool(self.policy) and self.p > 0


@dataclass
class SpecGANConfig:
    """The ``specgan:`` recipe section (SpecGAN's defaults for the optimisation).

    ``generator`` and ``critic`` are ``{name: ..., **constructor params}`` looked up in
    :mod:`specgan.stage_one.registry` (n_mels, frames and the number of labels come from the data).
    """

    generator: dict[str, Any] = field(default_factory=lambda: {
        "name": "specgan", "z_dim": 100, "d": 32, "kernel_size": 5, "upsample": "transposed", "embed_dim": 32})
    critic: dict[str, Any] = field(default_factory=lambda: {"name": "specgan", "d": 32, "kernel_size": 5})
    frames: int = 64                  # model width in frames (features are padded/cropped to it)
    conditional: bool = True          # condition on data.label
    batch_size: int = 64
    n_critic: int = 5
    gp_weight: float = 10.0
    gp_every: int = 1                 # lazy GP: every k-th critic step, weighted by k
    lr_g: float = 1e-4
    lr_d: float = 1e-4                # TTUR: set lr_d > lr_g
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    ema: float = 0.999
    # EMA warm-up: the average's horizon 1 / (1 - decay) is at most ema_rampup x the steps taken
    # (StyleGAN2's ramp-up), so a short run's EMA is not mostly its first, untrained steps
    # (0.999 after 1,250 steps still weighs the initial weights 0.29). 0 = the fixed decay.
    ema_rampup: float = 0.1
    # Data-efficient training: DiffAugment of real and generated mels before the critic (both
    # steps, and so inside the gradient penalty's interpolates). Off by default.
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # Auxiliary classifier (critic kwarg aux_classifier: true): cross-entropy on the real labels in
    # the critic step and on the asked labels in the generator step, weighted by this. 0 = off.
    aux_weight: float = 0.0
    # Several labels: a factor per label key on its cross-entropy (e.g. {instrument: 4.0}; keys not
    # named weigh 1), so a label the generator neglects can be pulled harder than the others.
    aux_key_weight: dict[str, float] = field(default_factory=dict)
    # Mode seeking (MSGAN, Mao et al. 2019): the generator step pairs each noise vector with a
    # second one under the same label and adds mode_seeking / (mean|G(z1)-G(z2)| / mean|z1-z2| + 1e-5),
    # against a conditional generator ignoring its noise (one note per pitch). 0 = off.
    mode_seeking: float = 0.0
    steps: int = 10_000               # generator iterations
    log_every: int = 10
    sample_every: int = 250
    save_every: int = 250
    nan_lr_factor: float = 0.5
    max_rollbacks: int = 5            # ... without a checkpoint in between, then stop with an error
    # Speed options; "auto" turns each on where it helps (CUDA) and off on CPU.
    channels_last: Literal["auto", "on", "off"] = "auto"   # NHWC memory format for the convolutions
    amp: Literal["auto", "bf16", "off"] = "auto"           # bf16 autocast for G and the critic's D(x), D(G(z))
    compile: bool = False             # torch.compile the generator (the critic is differentiated twice
                                      # by the gradient penalty, which torch.compile does not support)


    def aux_key_weights_for(self, keys: list[str]) -> list[float] | None:
        """``aux_key_weight`` in the order of the label ``keys`` (a key not named weighs 1), or None
        when it is empty (every term weighs 1). A key that is not among ``keys`` is one line naming
        them.
        """
        if not self.aux_key_weight:
            return None
        unknown = sorted(set(self.aux_key_weight) - set(keys))
        if unknown:
            raise ValueError(f"specgan.aux_key_weight: {', '.join(map(repr, unknown))} is not a label of this recipe "
                             f"(data.label: {list(keys)})")
        return [float(self.aux_key_weight.get(k, 1.0)) for k in keys]

    def __post_init__(self) -> None:
        for which in ("generator", "critic"):
            if "name" not in getattr(self, which):
                raise ValueError(f"{which} needs a 'name' key")
        for name in ("frames", "batch_size", "n_critic", "gp_every",
                     "log_every", "sample_every", "save_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.steps < 0:
            raise ValueError(f"steps: must be 0 or more, got {self.steps}")
        if self.frames < 8:
            raise ValueError(f"frames: must be at least 8 (the generator's smaller side starts at 4), got {self.frames}")
        if self.gp_weight < 0 or self.lr_g <= 0 or self.lr_d <= 0:
            raise ValueError(f"gp_weight must be >= 0 and lr_g, lr_d > 0 (got {self.gp_weight}, {self.lr_g}, "
                             f"{self.lr_d})")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas: must be two numbers in [0, 1), got {self.betas}")
        if self.aux_weight < 0:
            raise ValueError(f"aux_weight: must be >= 0, got {self.aux_weight}")
        if not isinstance(self.aux_key_weight, dict):
            raise ValueError(f"aux_key_weight: must be a mapping of label key to weight, got {self.aux_key_weight!r}")
        for key, w in self.aux_key_weight.items():
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w < float("inf"):
                raise ValueError(f"aux_key_weight.{key}: must be a number >= 0, got {w!r}")
        if self.aux_key_weight and not self.aux_weight:
            raise ValueError("aux_key_weight needs aux_weight > 0 (it scales the auxiliary classifier's terms)")
        if self.mode_seeking < 0:
            raise ValueError(f"mode_seeking: must be >= 0, got {self.mode_seeking}")
        if self.mode_seeking > 0 and self.batch_size < 2:
            raise ValueError(f"mode_seeking > 0 needs batch_size >= 2 (pairs of noise), got {self.batch_size}")
        if self.aux_weight > 0 and not self.critic.get("aux_classifier", False):
            raise ValueError("aux_weight > 0 needs the critic's auxiliary classifier (critic.aux_classifier: true)")
        if self.critic.get("aux_classifier", False) and not self.aux_weight:
            raise ValueError("critic.aux_classifier: true needs aux_weight > 0 (the head would never be trained)")
        if self.aux_weight > 0 and not self.conditional:
            raise ValueError("aux_weight > 0 needs conditional: true (the classifier predicts the label)")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema: must be in [0, 1), got {self.ema}")
        if not 0 <= self.ema_rampup < float("inf"):
            raise ValueError(f"ema_rampup: must be >= 0 and finite, got {self.ema_rampup}")
        if not 0 < self.nan_lr_factor < 1:
            raise ValueError(f"nan_lr_factor: must be in (0, 1), got {self.nan_lr_factor}")
