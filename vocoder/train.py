"""The vocoder training loop: one honest GAN loop for every registered generator and critic set.

Per step: a batch of random segments → log-mel with the vocoder's own MelConfig → G → (after
``critic_warmup_steps``) one critic step on real vs detached fake, then one generator step on
``weights.mel * mel-L1 + weights.fm * feature matching + weights.adv * adversarial
(+ weights.stft * MR-STFT)``. Batches are drawn with a seeded generator whose state is saved,
so a resumed run continues exactly where an uninterrupted one would be.

Outputs in ``out_dir``: ``model.safetensors`` (last, inference), ``best/model.safetensors``
(lowest dev mel-L1), ``state.pt`` (resume), ``logs/`` (TensorBoard), ``history.jsonl``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from vocoder.checkpoint import load_training_state, save_model, save_training_state, trim_history
from vocoder.config import VocoderConfig
from vocoder.critics import CriticSet
from vocoder.data import SegmentDataset
from vocoder.losses import (LossWeights, MelL1, MultiResolutionSTFTLoss, critic_loss, feature_matching,
                            generator_adversarial)
from vocoder.mel import MelConfig, MelSpectrogram
from vocoder.registry import build_generator

__all__ = ["VocoderTrainer"]

log = logging.getLogger(__name__)


class VocoderTrainer:
    """Trains one generator against a :class:`CriticSet`.

    Args:
        cfg: Training configuration.
        mel_cfg: The mel the vocoder consumes (inputs and mel loss use exactly this).
        train_set: Segments for training (``segment_samples`` long).
        dev_set: Whole clips for validation (may be None).
        out_dir: Checkpoints and logs.
        device: torch device.
        seed: Seeds initialisation and batch sampling.
        extra_meta: JSON-serialisable metadata stored in every model.safetensors (e.g. stats).
    """

    def __init__(self, cfg: VocoderConfig, mel_cfg: MelConfig, train_set: SegmentDataset,
                 dev_set: SegmentDataset | None, out_dir: str | Path, device: str | torch.device = "cpu",
                 seed: int = 0, extra_meta: dict[str, Any] | None = None):
        if cfg.segment_samples % mel_cfg.hop_length:
            raise ValueError(f"vocoder.segment_samples ({cfg.segment_samples}) must be a multiple of "
                             f"mel.hop_length ({mel_cfg.hop_length})")
        self.cfg, self.mel_cfg = cfg, mel_cfg
        self.device = torch.device(device)
        self.out_dir = Path(out_dir)
        self.extra_meta = dict(extra_meta or {})
        self.weights = LossWeights.from_dict(cfg.weights)
        torch.manual_seed(seed)
        self.G = build_generator(cfg.generator, mel_cfg).to(self.device)
        if not self.G.trainable:
            raise ValueError(f"generator {cfg.generator['name']!r} has nothing to train")
        self.D = CriticSet(cfg.critics).to(self.device)
        self.G_ema = None
        if cfg.ema:
            self.G_ema = build_generator(cfg.generator, mel_cfg).to(self.device).eval().requires_grad_(False)
            self.G_ema.load_state_dict(self.G.state_dict())
        betas = tuple(cfg.betas)
        self.opt_g = torch.optim.AdamW(self.G.parameters(), cfg.lr_g, betas=betas, weight_decay=cfg.weight_decay)
        self.opt_d = torch.optim.AdamW(self.D.parameters(), cfg.lr_d, betas=betas, weight_decay=cfg.weight_decay)
        gamma = cfg.lr_decay ** (1.0 / cfg.lr_decay_every)  # stepped every iteration
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.opt_g, gamma)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.opt_d, gamma)
        self.mel_fn = MelSpectrogram(mel_cfg).to(self.device)
        self.mel_l1 = MelL1(mel_cfg).to(self.device)
        self.mrstft = MultiResolutionSTFTLoss(cfg.stft_resolutions).to(self.device)
        self.train_set, self.dev_set = train_set, dev_set
        self.sampler = torch.Generator().manual_seed(seed)
        self.step = 0
        self.best = math.inf
        self.bad_steps = 0      # rollbacks since the last checkpoint written
        self.bad_batches = 0    # batches with NaN/Inf samples, dropped
        self.rollbacks = 0
        self._writer = None

    # -- one step -------------------------------------------------------------------------
    def input_mel(self, y: torch.Tensor) -> torch.Tensor:
        """(B, 1, S) waveform → (B, n_mels, S // hop) log-mel (the centred extra frame dropped)."""
        return self.mel_fn(y)[..., : y.shape[-1] // self.mel_cfg.hop_length]

    def next_batch(self) -> torch.Tensor:
        idx = torch.randint(len(self.train_set), (self.cfg.batch_size,), generator=self.sampler)
        return torch.stack([self.train_set[int(i)] for i in idx]).to(self.device)

    def train_step(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One critic step (once the critics are on) and one generator step; returns named losses
        as detached tensors (converting them to floats here would sync the device every step)."""
        cfg, w = self.cfg, self.weights
        if not torch.isfinite(y).all():  # a data problem, not a divergence: drop the batch
            self.bad_batches += 1
            log.warning("step %d: batch with NaN/Inf samples skipped (%d so far)", self.step, self.bad_batches)
            return {"skipped": torch.ones(())}
        mel = self.input_mel(y)
        y_hat = self.G(mel)
        adversarial = self.step >= cfg.critic_warmup_steps
        out: dict[str, torch.Tensor] = {}
        if adversarial:
            real, _ = self.D(y)
            fake, _ = self.D(y_hat.detach())
            loss_d = critic_loss(real, fake, cfg.adversarial)
            if not torch.isfinite(loss_d):
                return self._skip("critic", loss_d)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            out["critic/grad_norm"] = torch.nn.utils.clip_grad_norm_(self.D.parameters(), cfg.grad_clip or float("inf"))
            self.opt_d.step()
            out["critic/loss"] = loss_d.detach()
        losses = {"mel": self.mel_l1(y_hat, y)}
        if w.stft:
            losses["stft"] = self.mrstft(y_hat, y)
        if adversarial:
            fake, fake_feats = self.D(y_hat)
            with torch.no_grad():
                _, real_feats = self.D(y)
            losses["adv"] = generator_adversarial(fake, cfg.adversarial)
            losses["fm"] = feature_matching(real_feats, fake_feats)
        total = sum(getattr(w, k) * v for k, v in losses.items())
        if not torch.isfinite(total):
            return self._skip("generator", total)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        out["gen/grad_norm"] = torch.nn.utils.clip_grad_norm_(self.G.parameters(), cfg.grad_clip or float("inf"))
        if not torch.isfinite(out["gen/grad_norm"]):
            return self._skip("generator gradient", out["gen/grad_norm"])
        self.opt_g.step()
        self.sched_g.step()
        if adversarial:
            self.sched_d.step()
        if self.G_ema is not None:
            with torch.no_grad():
                for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
                    pe.lerp_(p, 1.0 - cfg.ema)
        self.step += 1
        out.update({f"gen/{k}": v.detach() for k, v in losses.items()})
        out["gen/total"] = total.detach()
        return out

    def _skip(self, which: str, value: torch.Tensor) -> dict[str, torch.Tensor]:
        """A non-finite loss: roll back to the last checkpoint, multiply the learning rates by
        ``nan_lr_factor``, log it and go on; before any checkpoint, or after ``max_rollbacks``
        rollbacks with no checkpoint written in between, stop with a clear error instead of
        continuing a dead run."""
        path = self.out_dir / "state.pt"
        if not path.is_file():
            raise FloatingPointError(f"non-finite {which} loss ({float(value)}) at step {self.step} before any "
                                     f"checkpoint; lower vocoder.lr_g / lr_d")
        self.bad_steps += 1
        if self.bad_steps > self.cfg.max_rollbacks:
            raise FloatingPointError(f"{self.bad_steps - 1} rollbacks in a row without progress (non-finite {which} "
                                     f"loss at step {self.step}); lower the learning rate and resume from {path}")
        step = self.step
        bad_steps = self.bad_steps
        self.load_state_dict(load_training_state(path, self.device))
        self.bad_steps, self.rollbacks = bad_steps, self.rollbacks + 1
        trim_history(self.out_dir / "history.jsonl", self.step)
        for opt in (self.opt_g, self.opt_d):  # k rollbacks since the checkpoint: its lrs x factor^k
            for group in opt.param_groups:
                group["lr"] *= self.cfg.nan_lr_factor ** bad_steps
        log.warning("non-finite %s loss (%s) at step %d: rolled back to step %d, learning rates x%s (now g %.2e)",
                    which, float(value), step, self.step, self.cfg.nan_lr_factor, self.opt_g.param_groups[0]["lr"])
        return {"skipped": torch.ones(()), "rolled_back": torch.ones(())}

    # -- validation -----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean mel-L1 and MR-STFT loss over the first ``eval_items`` dev clips (whole clips)."""
        if self.dev_set is None or len(self.dev_set) == 0:
            return {}
        g = self.G_ema or self.G
        was_training = g.training
        g.eval()
        hop = self.mel_cfg.hop_length
        mel_l1, mrstft = [], []
        for i in range(min(self.cfg.eval_items, len(self.dev_set))):
            y = self.dev_set[i][None].to(self.device)
            y = y[..., : (y.shape[-1] // hop) * hop]
            y_hat = g(self.input_mel(y))
            mel_l1.append(float(self.mel_l1(y_hat, y)))
            mrstft.append(float(self.mrstft(y_hat, y)))
        g.train(was_training)
        return {"dev/mel_l1": float(np.mean(mel_l1)), "dev/mrstft": float(np.mean(mrstft))}

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step, "best": self.best,
            "G": self.G.state_dict(), "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
            "sampler": self.sampler.get_state(), "torch_rng": torch.get_rng_state(),
            "crop_rng": self.train_set.rng.bit_generator.state, "py_rng": random.getstate(),
            "config": asdict(self.cfg), "mel": self.mel_cfg.to_dict(),
        }

    def load_state_dict(self, state: dict[str, Any], weights_only: bool = False) -> None:
        """Resume (everything) or, with ``weights_only``, initialise G and the critics for fine-tuning."""
        saved_mel = MelConfig.from_dict(state["mel"])
        self.mel_cfg.check_compatible(saved_mel, "this recipe", "the checkpoint")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["G_ema"] if state.get("G_ema") is not None else state["G"])
        if weights_only:
            return
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.sched_g.load_state_dict(state["sched_g"])
        self.sched_d.load_state_dict(state["sched_d"])
        self.sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        self.train_set.rng.bit_generator.state = state["crop_rng"]
        random.setstate(state["py_rng"])
        self.step, self.best = int(state["step"]), float(state["best"])

    def save(self, metrics: dict[str, float] | None = None) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_training_state(self.state_dict(), self.out_dir / "state.pt")
        self.bad_steps = 0  # progress was saved: rollbacks count afresh
        meta = {**self.extra_meta, "step": self.step, **(metrics or {})}
        save_model(self.out_dir / "model.safetensors", self.G_ema or self.G, self.cfg.generator, meta)

    # -- the loop -------------------------------------------------------------------------
    def _log_scalars(self, values: dict[str, float]) -> None:
        with open(self.out_dir / "history.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, **values}) + "\n")
        if self._writer is not None:
            for k, v in values.items():
                self._writer.add_scalar(k, v, self.step)

    def _log_media(self) -> None:
        if self._writer is None or self.dev_set is None:
            return
        g = self.G_ema or self.G
        with torch.no_grad():
            y = self.dev_set[0][None].to(self.device)
            y = y[..., : (y.shape[-1] // self.mel_cfg.hop_length) * self.mel_cfg.hop_length]
            y_hat = g.eval()(self.input_mel(y))
            g.train()
            m = self.mel_fn(y_hat)[0]
        img = ((m - m.min()) / (m.max() - m.min() + 1e-8)).flip(0)[None]
        self._writer.add_image("dev/mel_generated", img, self.step)
        self._writer.add_audio("dev/audio", y_hat[0].clamp(-1, 1).cpu(), self.step, self.mel_cfg.sample_rate)

    def fit(self, steps: int | None = None, progress: bool = True, tensorboard: bool = True) -> dict[str, float]:
        """Train until ``steps`` (default ``cfg.steps``) generator steps; returns the last metrics."""
        target = self.cfg.steps if steps is None else steps
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.out_dir / "logs"))
            except ImportError:  # tensorboard is optional; history.jsonl always has the numbers
                log.info("tensorboard not installed: scalars go to history.jsonl only")
        metrics: dict[str, float] = {}
        bar = tqdm(total=target, initial=self.step, desc="vocoder", unit="step", disable=not progress)
        t0 = time.perf_counter()
        try:
            while self.step < target:
                out = self.train_step(self.next_batch())
                if "rolled_back" in out:
                    bar.n = self.step
                    bar.refresh()
                if "skipped" in out:  # nothing was applied: no logging, evaluation or checkpoint for it
                    continue
                bar.update(1)
                if self.step % self.cfg.log_every == 0:
                    out = {k: float(v) for k, v in out.items()}
                    out["time/sec_per_step"] = (time.perf_counter() - t0) / self.cfg.log_every
                    t0 = time.perf_counter()
                    self._log_scalars(out)
                    bar.set_postfix(mel=f"{out['gen/mel']:.3f}", d=f"{out.get('critic/loss', 0.0):.3f}")
                if self.step % self.cfg.eval_every == 0 or self.step == target:
                    metrics = self.evaluate()
                    if metrics:
                        self._log_scalars(metrics)
                        self._log_media()
                        if metrics["dev/mel_l1"] < self.best:
                            self.best = metrics["dev/mel_l1"]
                            save_model(self.out_dir / "best" / "model.safetensors", self.G_ema or self.G,
                                       self.cfg.generator, {**self.extra_meta, "step": self.step, **metrics})
                if self.step % self.cfg.save_every == 0 or self.step == target:
                    self.save(metrics)
        finally:
            bar.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        return metrics
