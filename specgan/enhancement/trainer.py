"""The enhancement GAN's step function on the shared training skeleton (:mod:`vocoder.trainer`).

One step: a batch of fresh noisy/clean crops (:class:`~specgan.enhancement.data.PairSource`) →
their log-mels (the vocoder's mel) → G(noisy) → once ``critic_warmup_steps`` have passed, one
critic step (least squares, pix2pix/LSGAN: real pairs (noisy, clean) → 1, fake pairs (noisy,
G(noisy)) → 0) → one generator step on ``l1_weight · |std(G(noisy)) − std(clean)| + adv_weight ·
(D(noisy, G(noisy)) − 1)²``, with std the per-band standardisation of the clean training speech.
Validation: the dev pairs' standardised mel L1, of the output and of the noisy input itself.
Checkpoints, resume, NaN rollback, logging and data parallelism are the skeleton's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from specgan.enhancement import model as _model  # noqa: F401  (fills the enhancer tables)
from specgan.enhancement.config import EnhanceConfig
from specgan.enhancement.data import Pair, PairSource
from specgan.stage_one.registry import ENHANCE_CRITICS, ENHANCERS
from specgan.mel_gan import MelGANTrainer
from vocoder.checkpoint import save_model
from vocoder.mel import MelConfig, MelSpectrogram
from vocoder.registry import build

__all__ = ["COMPRESSION", "EnhanceTrainer", "build_enhancer"]

COMPRESSION = 0.3  # the ``compressed`` loss's exponent on the mel magnitude


def build_enhancer(spec: dict[str, Any], mel: MelConfig) -> torch.nn.Module:
    """``{name: unet, ...}`` → the enhancer for ``mel`` (n_mels and the log floor from the mel)."""
    return build(ENHANCERS, "enhancer", {k: v for k, v in spec.items()}, n_mels=mel.n_mels,
                 floor_log=float(mel.log_floor))


def _asymmetric_l1(err: torch.Tensor, below: float) -> torch.Tensor:
    """|err|, times ``below`` where err < 0 (the output under the target)."""
    return torch.where(err < 0, -below * err, err) if below != 1.0 else err.abs()


class EnhanceTrainer(MelGANTrainer):
    """Trains the enhancer G and the pair critic D; saves ``state.pt`` and ``model.safetensors`` (G).

    Args:
        cfg: The ``enhance:`` section.
        mel: The vocoder's mel (the enhancer's input and output).
        source: Training pairs.
        dev: Fixed dev pairs (validation).
        stats: (mean, std) per band of the clean training log-mels.
        out_dir: Checkpoints, logs.
        device: torch device.
        seed: Initialisation and the pair stream.
        meta: Stored with the model (recipe, data).
        shape: What the run's weights depend on (``specgan.training.enhance_shape``): a resume checks it.
    """

    progress_name = "enhance"

    def __init__(self, cfg: EnhanceConfig, mel: MelConfig, source: PairSource, dev: list[Pair],
                 stats: tuple[np.ndarray, np.ndarray], out_dir: str | Path, device="cpu", seed: int = 0,
                 meta: dict[str, Any] | None = None, shape: dict[str, Any] | None = None):
        super().__init__(cfg, mel, stats, out_dir, device, seed, meta,
                         shape if shape is not None else {"model": dict(cfg.model), "critic": dict(cfg.critic),
                                                          "mel": mel.to_dict()}, what="enhancer")
        self.source, self.dev = source, dev
        self.mel_fn = MelSpectrogram(mel).to(self.device)
        self.np_rng = np.random.default_rng(seed)

    def build(self):
        return (build_enhancer(self.cfg.model, self.mel),
                build(ENHANCE_CRITICS, "enhancement critic", dict(self.cfg.critic), n_mels=self.mel.n_mels))

    def rngs(self) -> dict[str, Any]:
        return {**super().rngs(), "pairs": self.np_rng}

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        noisy, clean = self.source.batch(self.cfg.batch_size, self.np_rng)
        return torch.from_numpy(noisy), torch.from_numpy(clean)

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        noisy, clean = (x.to(self.device) for x in batch)
        with torch.no_grad():
            l_noisy, l_clean = self.mel_fn(noisy), self.mel_fn(clean)
        G, D = self.G, self.D
        s_noisy, s_clean = G.standardise(l_noisy), G.standardise(l_clean)
        out = G(l_noisy)
        s_out = G.standardise(out)
        losses: dict[str, torch.Tensor] = {}
        adversarial = cfg.adv_weight > 0 and self.step >= cfg.critic_warmup_steps
        if adversarial:
            d_real, d_fake = D(s_noisy, s_clean), D(s_noisy, s_out.detach())
            loss_d = ((d_real - 1) ** 2).mean() + (d_fake**2).mean()
            self.optimize(loss_d, self.opt_d, D)
            losses["critic/loss"] = loss_d.detach()
        l1 = self.reconstruction(out, l_clean, s_out, s_clean)
        loss_g = cfg.l1_weight * l1
        if adversarial:
            adv = ((D(s_noisy, s_out) - 1) ** 2).mean()
            loss_g = loss_g + cfg.adv_weight * adv
            losses["gen/adv"] = adv.detach()
        losses["gen/grad_norm"] = self.optimize(loss_g, self.opt_g, G)
        losses["gen/l1"] = l1.detach()
        losses["gen/loss"] = loss_g.detach()
        losses["noisy/l1"] = (s_noisy - s_clean).abs().mean().detach()
        return losses

    def reconstruction(self, out, l_clean, s_out, s_clean) -> torch.Tensor:
        """The reconstruction term. ``log``: per-band standardised log-mel L1, every bin alike (the
        near-silent floor between harmonics weighs as much as the harmonics). ``compressed``: L1 of
        the mel magnitude raised to 0.3 (the power-law compression of CMGAN and DeepFilterNet),
        relative to the clean batch's mean: loud speech bins weigh more, the floor less. Either way a
        bin where the output falls below the clean one (speech removed) weighs ``speech_weight``, one
        above it (noise left) 1.
        """
        if self.cfg.loss == "log":
            return _asymmetric_l1(s_out - s_clean, self.cfg.speech_weight).mean()
        k = COMPRESSION / self.mel.power  # the mel is |X| ** power: its magnitude ** 0.3
        a, b = self.mel.exp(out).pow(k), self.mel.exp(l_clean).pow(k)
        return _asymmetric_l1(a - b, self.cfg.speech_weight).mean() / b.mean().clamp_min(1e-8)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if not self.dev:
            return {}
        self.G.eval()
        errs, base = [], []
        for p in self.dev[: self.cfg.eval_items]:
            ln = self.mel_fn(torch.from_numpy(p.noisy)[None].to(self.device))
            lc = self.mel_fn(torch.from_numpy(p.clean)[None].to(self.device))
            sc = self.G.standardise(lc)
            errs.append(float((self.G.standardise(self.G(ln)) - sc).abs().mean()))
            base.append(float((self.G.standardise(ln) - sc).abs().mean()))
        self.G.train()
        return {"dev/l1": float(np.mean(errs)), "dev/noisy_l1": float(np.mean(base))}

    def export(self, path: Path) -> None:
        kwargs = {**{k: v for k, v in self.cfg.model.items() if k != "name"}, "n_mels": self.mel.n_mels,
                  "floor_log": float(self.mel.log_floor)}
        save_model(path, self.G, kind="enhancer", name=self.cfg.model["name"], kwargs=kwargs, step=self.step,
                   mel=self.mel, shape=self.shape, extra=self.meta)
