"""The ``enhance:`` recipe section: degradations, the model specs, the optimisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from specgan.enhancement.noise import KINDS
from specgan.mel_gan import check_gan_section

__all__ = ["EnhanceConfig", "LOSSES", "SYNTHESES"]

LOSSES = ("log", "compressed")
SYNTHESES = ("vocoder", "gain")


@dataclass
class EnhanceConfig:
    """Noisy/clean pairs made on the fly from the recipe's clean speech, and the GAN that cleans them.

    The VoiceBank-DEMAND protocol: training SNRs 0/5/10/15 dB, test SNRs 2.5/7.5/12.5/17.5 dB,
    test noise types and the test speaker never seen in training.
    """

    train_noises: list[str] = field(default_factory=lambda: ["white", "pink", "hum", "babble", "bands", "bursts"])
    test_noises: list[str] = field(default_factory=lambda: ["brown", "clicks", "tones"])
    train_snrs: list[float] = field(default_factory=lambda: [0.0, 5.0, 10.0, 15.0])
    test_snrs: list[float] = field(default_factory=lambda: [2.5, 7.5, 12.5, 17.5])
    model: dict[str, Any] = field(default_factory=lambda: {"name": "unet", "base": 16, "depth": 4, "output": "mask"})
    critic: dict[str, Any] = field(default_factory=lambda: {"name": "patch", "d": 32, "layers": 3})
    segment_seconds: float = 1.0      # training crops (half the voices prompts are shorter than 2 s)
    batch_size: int = 8
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    l1_weight: float = 45.0           # reconstruction (``loss``), beside the adversarial term
    loss: str = "log"                 # reconstruction domain: "log" (per-band standardised log-mel L1) or
    #                                   "compressed" (L1 of the mel magnitude ** 0.3, relative to the clean batch's mean)
    speech_weight: float = 1.0        # the reconstruction's weight where the output falls below the clean (speech
    #                                   removed); where it lies above (noise left) the weight is 1: > 1 is an
    #                                   asymmetric loss that protects speech (over-suppression costs more)
    synthesis: str = "vocoder"        # the waveform: "vocoder" (the trained vocoder renders the enhanced mel) or
    #                                   "gain" (the mel-band gains enhanced/noisy applied to the noisy STFT, noisy phase)
    max_gain: float = 1.0             # "gain" synthesis: the largest gain per mel band (1: suppression only)
    min_gain: float = 0.0             # "gain" synthesis: the smallest (an attenuation limit: 0.1 = -20 dB)
    adv_weight: float = 1.0           # 0: regression only (the GAN ablation's control)
    critic_warmup_steps: int = 0      # reconstruction-only steps before the critic joins
    steps: int = 20_000
    log_every: int = 10
    save_every: int = 250
    eval_every: int = 500
    eval_items: int = 24              # dev pairs scored (mel L1) at each eval
    test_items: int = 24              # test clean clips, each mixed with every test noise type at every test SNR
    chunk_frames: int = 512           # inference: frames per chunk (bounded memory), with context either side
    context_frames: int = 32

    def __post_init__(self) -> None:
        for name in ("train_noises", "test_noises"):
            kinds = getattr(self, name)
            if not kinds:
                raise ValueError(f"{name}: at least one noise type")
            bad = [k for k in kinds if k not in KINDS]
            if bad:
                raise ValueError(f"{name}: unknown noise type(s) {bad}; known: {', '.join(KINDS)}")
        shared = sorted(set(self.train_noises) & set(self.test_noises))
        if shared:
            raise ValueError(f"test_noises: {shared} also in train_noises (test noise types must be unseen in training)")
        if not self.train_snrs or not self.test_snrs:
            raise ValueError("train_snrs and test_snrs: at least one SNR each")
        check_gan_section(self)
        if self.loss not in LOSSES:
            raise ValueError(f"loss: one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.synthesis not in SYNTHESES:
            raise ValueError(f"synthesis: one of {', '.join(SYNTHESES)}, got {self.synthesis!r}")
        if not self.max_gain > 0 or not 0 <= self.min_gain < self.max_gain:
            raise ValueError(f"min_gain, max_gain: 0 <= min_gain < max_gain, got {self.min_gain}, {self.max_gain}")
        if not self.speech_weight > 0:
            raise ValueError(f"speech_weight: must be positive, got {self.speech_weight}")
        if self.l1_weight < 0 or self.adv_weight < 0 or self.l1_weight + self.adv_weight == 0:
            raise ValueError("l1_weight and adv_weight: >= 0, not both 0")
