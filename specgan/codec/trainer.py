"""The codec GAN's step function on the shared training skeleton (:mod:`vocoder.trainer`).

One step: a batch of clean crops → their log-mels (the vocoder's mel) → the codec with quantiser
dropout (each clip keeps its first k quantisers, k uniform in 1..n_q, with probability
``quantizer_dropout``) → once ``critic_warmup_steps`` have passed, one critic step (least squares:
real mels → 1, decoded → 0) → one codec step on ``l1_weight · |std(decoded) − std(clean)|`` +
``commit_weight · commitment + codebook_weight · codebook`` (+ ``adv_weight · (D(decoded) − 1)²`` +
``fm_weight · feature matching`` with the critic). Every ``restart_every`` steps, codes unused
for a while are restarted on recent encoder outputs. Validation: the dev clips' standardised mel L1
at every bitrate of the ``bitrates`` list's extremes (the fewest and the most quantisers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from specgan.codec import model as _model  # noqa: F401  (fills the codec tables)
from specgan.codec.config import CodecConfig
from specgan.stage_one.registry import CODEC_CRITICS, CODECS
from specgan.mel_gan import MelGANTrainer
from vocoder.checkpoint import save_model
from vocoder.mel import MelConfig, MelSpectrogram
from vocoder.registry import build

__all__ = ["CodecTrainer", "build_codec", "codec_kwargs"]


def codec_kwargs(spec: dict[str, Any], mel: MelConfig) -> dict[str, Any]:
    """The constructor's keywords: the recipe's spec (less ``name``) and what the mel fixes."""
    return {**{k: v for k, v in spec.items() if k != "name"}, "n_mels": mel.n_mels, "floor_log": float(mel.log_floor)}


def build_codec(spec: dict[str, Any], mel: MelConfig) -> torch.nn.Module:
    return build(CODECS, "codec", {"name": spec["name"], **codec_kwargs(spec, mel)})


class CodecTrainer(MelGANTrainer):
    """Trains the codec G and the critic D; saves ``state.pt`` and ``model.safetensors`` (G).

    Args:
        cfg: The ``codec:`` section.
        mel: The vocoder's mel.
        clips: Clean training clips (float32 at the mel's rate).
        dev: Clean dev clips.
        stats: (mean, std) per band of the clean training log-mels.
        out_dir, device, seed, meta, shape: As the other trainers.
    """

    progress_name = "codec"

    def __init__(self, cfg: CodecConfig, mel: MelConfig, clips: list[np.ndarray], dev: list[np.ndarray],
                 stats: tuple[np.ndarray, np.ndarray], out_dir: str | Path, device="cpu", seed: int = 0,
                 meta: dict[str, Any] | None = None, shape: dict[str, Any] | None = None):
        if not clips:
            raise ValueError("no clean training clips for the codec")
        super().__init__(cfg, mel, stats, out_dir, device, seed, meta, shape, what="codec")
        self.clips, self.dev = clips, dev
        self.segment = int(round(cfg.segment_seconds * mel.sample_rate))
        self.mel_fn = MelSpectrogram(mel).to(self.device)
        self.np_rng = np.random.default_rng(seed)

    def build(self):
        return (build_codec(self.cfg.model, self.mel),
                build(CODEC_CRITICS, "codec critic", dict(self.cfg.critic), n_mels=self.mel.n_mels))

    def rngs(self) -> dict[str, Any]:
        return {**super().rngs(), "crops": self.np_rng}

    def next_batch(self) -> torch.Tensor:
        n, out = self.segment, np.zeros((self.cfg.batch_size, self.segment), np.float32)
        for i in range(self.cfg.batch_size):
            c = self.clips[int(self.np_rng.integers(len(self.clips)))]
            if len(c) > n:
                s = int(self.np_rng.integers(0, len(c) - n + 1))
                out[i] = c[s: s + n]
            else:
                out[i, : len(c)] = c
        return torch.from_numpy(out)

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        cfg, G, D = self.cfg, self.G, self.D
        with torch.no_grad():
            clean = self.mel_fn(batch.to(self.device))
        b = clean.shape[0]
        keep = torch.full((b,), G.n_q, device=self.device)
        drop = torch.rand(b, device=self.device) < cfg.quantizer_dropout
        keep = torch.where(drop, torch.randint(1, G.n_q + 1, (b,), device=self.device), keep)
        out, _, commit, book = G(clean, keep)
        s_out, s_clean = G.standardise(out), G.standardise(clean)
        losses: dict[str, torch.Tensor] = {}
        adversarial = cfg.adv_weight > 0 and self.step >= cfg.critic_warmup_steps
        if adversarial:
            real, _ = D(s_clean)
            fake, _ = D(s_out.detach())
            loss_d = ((real - 1) ** 2).mean() + (fake**2).mean()
            self.optimize(loss_d, self.opt_d, D)
            losses["critic/loss"] = loss_d.detach()
        l1 = (s_out - s_clean).abs().mean()
        loss_g = cfg.l1_weight * l1 + cfg.commit_weight * commit + cfg.codebook_weight * book
        if adversarial:
            fake, f_fake = D(s_out)
            with torch.no_grad():
                _, f_real = D(s_clean)
            adv = ((fake - 1) ** 2).mean()
            fm = sum((a - r).abs().mean() for a, r in zip(f_fake, f_real)) / len(f_real)
            loss_g = loss_g + cfg.adv_weight * adv + cfg.fm_weight * fm
            losses["gen/adv"], losses["gen/fm"] = adv.detach(), fm.detach()
        losses["gen/grad_norm"] = self.optimize(loss_g, self.opt_g, G)
        losses["gen/l1"], losses["gen/commit"], losses["gen/codebook"] = l1.detach(), commit.detach(), book.detach()
        losses["gen/loss"] = loss_g.detach()
        if cfg.restart_every and (self.step + 1) % cfg.restart_every == 0:
            losses["codes/restarted"] = torch.tensor(float(G.restart_dead_codes()))
        return losses

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if not self.dev:
            return {}
        self.G.eval()
        out: dict[str, list[float]] = {}
        for y in self.dev[: self.cfg.eval_items]:
            lc = self.mel_fn(torch.from_numpy(y)[None].to(self.device))
            for k in sorted({1, self.G.n_q // 2, self.G.n_q} - {0}):
                dec = self.G.decode(self.G.encode(lc, k))[..., : lc.shape[-1]]
                out.setdefault(f"dev/l1_q{k}", []).append(
                    float((self.G.standardise(dec) - self.G.standardise(lc)).abs().mean()))
        used = [float((q.usage > 0.1 / q.size).float().mean()) for q in self.G.rvq.layers]
        self.G.train()
        return {**{k: float(np.mean(v)) for k, v in out.items()}, "codes/used": float(np.mean(used))}

    def export(self, path: Path) -> None:
        save_model(path, self.G, kind="codec", name=self.cfg.model["name"], kwargs=codec_kwargs(self.cfg.model, self.mel),
                   step=self.step, mel=self.mel, shape=self.shape, extra=self.meta)
