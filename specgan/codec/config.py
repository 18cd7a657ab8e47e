"""The ``codec:`` recipe section: the model and critic specs, the optimisation, the bitrates scored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from specgan.mel_gan import check_gan_section

__all__ = ["CodecConfig", "parse_bitrate"]


def parse_bitrate(text: str | float | int) -> float:
    """``"3k"``, ``"1.5k"``, ``"2400"``, ``2400`` → bits per second; one line naming the value if bad."""
    s = str(text).strip().lower().removesuffix("bps").removesuffix("b")
    scale = 1000.0 if s.endswith("k") else 1.0
    try:
        value = float(s.removesuffix("k")) * scale
    except ValueError:
        raise ValueError(f"bitrate {text!r}: expected bits per second such as 3k, 1.5k or 2400") from None
    if not value > 0:
        raise ValueError(f"bitrate {text!r}: must be positive")
    return value


@dataclass
class CodecConfig:
    """A mel codec trained on the recipe's clean speech (:mod:`specgan.codec`)."""

    model: dict[str, Any] = field(default_factory=lambda: {
        "name": "rvq", "channels": 128, "latent": 64, "stride": 2, "n_q": 12, "codebook_size": 1024, "code_dim": 8})
    critic: dict[str, Any] = field(default_factory=lambda: {"name": "patch", "d": 32, "layers": 3})
    segment_seconds: float = 1.0       # training crops
    batch_size: int = 8
    lr_g: float = 3e-4
    lr_d: float = 3e-4
    betas: list[float] = field(default_factory=lambda: [0.8, 0.99])
    l1_weight: float = 45.0            # per-band standardised log-mel L1 of the decoded mel
    adv_weight: float = 1.0            # LSGAN on decoded mels (0: no critic)
    fm_weight: float = 2.0             # feature matching on the critic's hidden maps
    commit_weight: float = 0.25
    codebook_weight: float = 1.0
    quantizer_dropout: float = 0.5     # share of clips trained with their first k quantisers only
    critic_warmup_steps: int = 1000    # reconstruction-only steps before the critic joins
    restart_every: int = 200           # steps between dead-code restarts (0: never)
    steps: int = 60_000
    log_every: int = 10
    save_every: int = 250
    eval_every: int = 500
    eval_items: int = 16               # dev clips scored (decoded mel L1 at full bitrate) at each eval
    test_items: int = 6                # test files in the evaluation: the test clips joined into files of
    eval_seconds: float = 20.0         # at least this long (a codec codes files; its header and Ogg's pages amortise)
    bitrates: list[str] = field(default_factory=lambda: ["1.5k", "3k"])   # scored by `specgan evaluate`
    chunk_frames: int = 512            # encode/decode: mel frames per chunk (bounded memory), context either side
    context_frames: int = 64           # at least the codec's receptive field (raised to it if less)

    def __post_init__(self) -> None:
        check_gan_section(self)
        if self.eval_seconds <= 0:
            raise ValueError(f"eval_seconds: must be positive, got {self.eval_seconds}")
        if not 0 <= self.quantizer_dropout <= 1:
            raise ValueError(f"quantizer_dropout: 0 .. 1, got {self.quantizer_dropout}")
        for b in self.bitrates:
            parse_bitrate(b)
