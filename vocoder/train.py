"""The vocoder's step function on the shared training skeleton (:mod:`vocoder.trainer`).

Per step: a batch of random segments → log-mel with the vocoder's own MelConfig → G → (after
``critic_warmup_steps``) one critic step on real vs detached fake, then one generator step on the
weighted sum of named losses (``weights`` in the recipe: ``mel``, ``fm``, ``adv``, ``stft`` and
any other name :class:`vocoder.losses.LossWeights` knows). Batches and crops are drawn from
seeded generators saved per rank, so a resumed run continues exactly where it stopped.

Outputs in ``out_dir``: ``model.safetensors`` (last, inference), ``best/model.safetensors``
(lowest dev mel-L1), ``state.pt`` (resume), ``logs/`` (TensorBoard), ``history.jsonl``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocoder.buzz import buzz_db
from vocoder.checkpoint import fingerprint, save_generator
from vocoder.config import VocoderConfig
from vocoder.critics import CriticSet
from vocoder.data import SegmentDataset
from vocoder.losses import (LossWeights, MelL1, MultiResolutionSTFTLoss, PhaseAwareLoss, critic_loss,
                            feature_matching, generator_adversarial)
from vocoder.mel import MelConfig, MelSpectrogram
from vocoder.registry import build_generator, check_inference
from vocoder.trainer import LoopSettings, Trainer

__all__ = ["VocoderTrainer"]

log = logging.getLogger(__name__)


def _lr_schedule(opt: torch.optim.Optimizer, cfg: VocoderConfig):
    """The lrs stepped every iteration: ``lr_decay`` per ``lr_decay_every`` steps, times a linear ramp
    over the first ``lr_warmup_steps`` (none: the plain exponential schedule, whose saved state older
    runs resume with).
    """
    gamma = cfg.lr_decay ** (1.0 / cfg.lr_decay_every)
    if not cfg.lr_warmup_steps:
        return torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
    n = cfg.lr_warmup_steps
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: gamma ** s * min(1.0, (s + 1) / n))


class VocoderTrainer(Trainer):
    """Trains one generator against a :class:`CriticSet`.

    Args:
        cfg: Training configuration.
        mel_cfg: The mel the vocoder consumes (inputs and mel loss use exactly this).
        train_set: Segments for training (``segment_samples`` long).
        dev_set: Whole clips for validation (may be None).
        out_dir: Checkpoints and logs.
        device: torch device.
        seed: Seeds initialisation and batch sampling.
        stats: Normalisation statistics stored with the model (``MelStats.to_dict()``), if any.
        data: What identifies the training data (part of the fingerprint; e.g. source, preprocess).
        extra_meta: JSON-serialisable metadata stored in every model.safetensors.
    """

    progress_name = "vocoder"

    def __init__(self, cfg: VocoderConfig, mel_cfg: MelConfig, train_set: SegmentDataset,
                 dev_set: SegmentDataset | None, out_dir: str | Path, device: str | torch.device = "cpu",
                 seed: int = 0, stats: dict[str, Any] | None = None, data: Any = None,
                 extra_meta: dict[str, Any] | None = None):
        if cfg.segment_samples % mel_cfg.hop_length:
            raise ValueError(f"vocoder.segment_samples ({cfg.segment_samples}) must be a multiple of "
                             f"mel.hop_length ({mel_cfg.hop_length})")
        super().__init__(out_dir, device, seed, LoopSettings(
            log_every=cfg.log_every, save_every=cfg.save_every, eval_every=cfg.eval_every,
            nan_lr_factor=cfg.nan_lr_factor, max_rollbacks=cfg.max_rollbacks, amp=cfg.amp, section="vocoder"))
        self.cfg, self.mel_cfg = cfg, mel_cfg
        self.stats = stats
        self.extra_meta = dict(extra_meta or {})
        self.shape = {"model": dict(cfg.generator), "critics": [dict(c) for c in cfg.critics],
                      "mel": mel_cfg.to_dict(), "data": data}
        self.weights = LossWeights.from_dict(cfg.weights)
        torch.manual_seed(seed)
        self.G = build_generator(cfg.generator, mel_cfg).to(self.device)
        if not self.G.trainable:
            raise ValueError(f"generator {cfg.generator['name']!r} has nothing to train")
        self.export_spec = dict(cfg.generator)
        if cfg.inference:  # refused now, not at the first export an hour in
            try:
                self.export_spec = check_inference(cfg.generator, cfg.inference, mel_cfg)
            except (ValueError, TypeError) as e:
                raise ValueError(f"vocoder.inference: {e}") from None
        self.D = CriticSet(cfg.critics).to(self.device)
        self.G_ema = None
        if cfg.ema:
            self.G_ema = build_generator(cfg.generator, mel_cfg).to(self.device).eval().requires_grad_(False)
            self.G_ema.load_state_dict(self.G.state_dict())
        self.broadcast_parameters()
        betas = tuple(cfg.betas)
        self.opt_g = torch.optim.AdamW(self.G.parameters(), cfg.lr_g, betas=betas, weight_decay=cfg.weight_decay)
        self.opt_d = torch.optim.AdamW(self.D.parameters(), cfg.lr_d, betas=betas, weight_decay=cfg.weight_decay)
        self.sched_g, self.sched_d = (_lr_schedule(o, cfg) for o in (self.opt_g, self.opt_d))
        self.mel_fn = MelSpectrogram(mel_cfg).to(self.device)
        self.mel_l1 = MelL1(mel_cfg).to(self.device)
        self.mrstft = MultiResolutionSTFTLoss(cfg.stft_resolutions).to(self.device)
        # The phase-aware terms, at the generator's own STFT resolution when it has one (the
        # ``phase`` generator), else at the mel's.
        self.phase_terms = [k for k in PhaseAwareLoss.names if getattr(self.weights, k)]
        self.phase_loss = None
        if self.phase_terms:
            geom = self.G.stft  # None: a waveform generator, analysed at the mel's resolution
            n_fft, hop = (geom.n_fft, geom.hop_length) if geom is not None else (mel_cfg.n_fft, mel_cfg.hop_length)
            self.phase_loss = PhaseAwareLoss(n_fft, hop, floor=mel_cfg.floor,
                                             weighting=cfg.phase_weighting).to(self.device)
        self.train_set, self.dev_set = train_set, dev_set
        # Crops: a stream per rank (the dataset's own seed is rank-blind).
        self.train_set.rng = np.random.default_rng(seed + 1_000_003 * self.rank)
        self.best = float("inf")

    # -- the skeleton's hooks -------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        mods = {"G": self.G, "D": self.D}
        if self.G_ema is not None:
            mods["G_ema"] = self.G_ema
        return mods

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def schedulers(self) -> dict[str, Any]:
        return {"g": self.sched_g, "d": self.sched_d}

    def rngs(self) -> dict[str, np.random.Generator]:
        return {"crops": self.train_set.rng}

    def extra_state(self) -> dict[str, Any]:
        return {"best": self.best, "config": asdict(self.cfg), "mel": self.mel_cfg.to_dict(), "shape": self.shape,
                "fingerprint": fingerprint(self.shape)}

    def load_extra_state(self, state: dict[str, Any], weights_only: bool = False) -> None:
        if "mel" in state:
            self.mel_cfg.check_compatible(MelConfig.from_dict(state["mel"]), "this recipe", "the checkpoint")
        # fine-tuning: another dataset is the point; the architecture must match
        self.check_saved_shape(state.get("shape"), self.shape, weights_only, ("model",), "generator")
        if weights_only:
            return
        self.best = float(state.get("best", self.best))

    def postfix(self, losses: dict[str, float]) -> dict[str, str]:
        return {"mel": f"{losses.get('gen/mel', float('nan')):.3f}", "d": f"{losses.get('critic/loss', 0.0):.3f}"}

    def next_batch(self) -> torch.Tensor:
        idx = torch.randint(len(self.train_set), (self.cfg.batch_size,), generator=self.sampler)
        return torch.stack([self.train_set[int(i)] for i in idx]).to(self.device)

    def input_mel(self, y: torch.Tensor) -> torch.Tensor:
        """(B, 1, S) waveform → (B, n_mels, S // hop) log-mel (the frame contract of vocoder.mel)."""
        return self.mel_cfg.crop_frames(self.mel_fn(y), y.shape[-1])

    def train_step(self, y: torch.Tensor) -> dict[str, torch.Tensor]:
        """One critic step (once the critics are on) and one generator step; named losses."""
        cfg, w = self.cfg, self.weights
        with torch.no_grad():
            mel = self.input_mel(y)
        own = None  # the generator's own (log-amplitude, phase, spectrum), for the phase-aware terms
        with self.autocast():
            if self.phase_loss is not None:  # the generator's own spectrum, where it has one
                y_hat, *own = self.G.forward_with_spectrum(mel)
                y_hat = y_hat.float()
            else:
                y_hat = self.G(mel).float()
        adversarial = self.step >= cfg.critic_warmup_steps
        out: dict[str, torch.Tensor] = {}
        if adversarial:
            with self.autocast():
                real, _ = self.D(y)
                fake, _ = self.D(y_hat.detach())
                loss_d = critic_loss([r.float() for r in real], [f.float() for f in fake], cfg.adversarial)
            out["critic/grad_norm"] = self.optimize(loss_d, self.opt_d, self.D, cfg.grad_clip)
            out["critic/loss"] = loss_d.detach()
        losses = {"mel": self.mel_l1(y_hat, y)}
        if w.stft:
            losses["stft"] = self.mrstft(y_hat, y)
        if self.phase_loss is not None:
            log_amp, phase, spec = own if own is not None else (None, None, None)  # each None: analyse y_hat
            terms = self.phase_loss(y_hat, y, spectrum=spec if w.consistency else None,
                                    log_amplitude=log_amp, phase=phase)
            losses.update({k: terms[k] for k in self.phase_terms if k in terms})
        if adversarial:
            with self.autocast():
                fake, fake_feats = self.D(y_hat)
                with torch.no_grad():
                    _, real_feats = self.D(y)
            losses["adv"] = generator_adversarial([f.float() for f in fake], cfg.adversarial)
            losses["fm"] = feature_matching([[r.float() for r in rs] for rs in real_feats],
                                            [[f.float() for f in fs] for fs in fake_feats])
        total = sum(getattr(w, k) * v for k, v in losses.items())
        out["gen/grad_norm"] = self.optimize(total, self.opt_g, self.G, cfg.grad_clip)
        self.sched_g.step()
        if adversarial:
            self.sched_d.step()
        if self.G_ema is not None:
            with torch.no_grad():
                for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                    pe.lerp_(p, 1.0 - cfg.ema)
        out.update({f"gen/{k}": v.detach() for k, v in losses.items()})
        out["gen/total"] = total.detach()
        return out

    # -- validation -----------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean mel-L1 and MR-STFT loss over the first ``eval_items`` dev clips (whole clips), and
        the hop-rate buzz of all of them together (dB over the reference's; :mod:`vocoder.buzz`).
        """
        if self.dev_set is None or len(self.dev_set) == 0:
            return {}
        g = self.G_ema or self.G
        was_training = g.training
        g.eval()
        mel_l1, mrstft, refs, outs = [], [], [], []
        for i in range(min(self.cfg.eval_items, len(self.dev_set))):
            y = self.mel_cfg.crop_samples(self.dev_set[i][None].to(self.device))
            y_hat = g(self.input_mel(y))
            mel_l1.append(float(self.mel_l1(y_hat, y)))
            mrstft.append(float(self.mrstft(y_hat, y)))
            refs.append(y.flatten().cpu().numpy())
            outs.append(y_hat.flatten().float().cpu().numpy())
        g.train(was_training)
        # The comb needs a long average spectrum: the dev clips end to end (seconds in all).
        buzz = buzz_db(np.concatenate(outs), np.concatenate(refs), self.mel_cfg.sample_rate, self.mel_cfg.hop_length)
        return {"dev/mel_l1": float(np.mean(mel_l1)), "dev/mrstft": float(np.mean(mrstft)), "dev/buzz_db": buzz}

    def validate(self) -> dict[str, float]:
        metrics = self.evaluate()
        if metrics:
            self._log_media()
            if metrics["dev/mel_l1"] < self.best:
                self.best = metrics["dev/mel_l1"]
                self._export(self.out_dir / "best" / "model.safetensors", metrics)
        return metrics

    def _export(self, path: Path, metrics: dict[str, float] | None = None) -> None:
        save_generator(path, self.G_ema or self.G, self.export_spec, self.step, stats=self.stats,
                       shape=self.shape, extra={**self.extra_meta, **(metrics or {})})

    def export(self, path: Path) -> None:
        self._export(path)

    def _log_media(self) -> None:
        if self.writer is None or self.dev_set is None:
            return
        g = self.G_ema or self.G
        with torch.no_grad():
            y = self.dev_set[0][None].to(self.device)
            y = y[..., : self.mel_cfg.frames_in(y.shape[-1]) * self.mel_cfg.hop_length]
            y_hat = g.eval()(self.input_mel(y))
            g.train()
            m = self.mel_fn(y_hat)[0]
        img = ((m - m.min()) / (m.max() - m.min() + 1e-8)).flip(0)[None]
        self.writer.add_image("dev/mel_generated", img, self.step)
        self.writer.add_audio("dev/audio", y_hat[0].clamp(-1, 1).cpu(), self.step, self.mel_cfg.sample_rate)

    def fit(self, steps: int | None = None, progress: bool = True, tensorboard: bool = True,
            cpu_seconds: float | None = None) -> dict[str, float]:
        """Train until ``steps`` (default ``cfg.steps``) generator steps (or a CPU budget; see
        :meth:`Trainer.fit`); returns the last metrics.
        """
        return super().fit(self.cfg.steps if steps is None else steps, progress, tensorboard, cpu_seconds)
