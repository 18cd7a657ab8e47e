"""Stage one's step function on the shared training skeleton (:mod:`vocoder.trainer`): the WGAN-GP.

One step (a generator iteration) = ``n_critic`` critic steps, each on a fresh real batch and
fresh fakes, + one generator step. The gradient penalty can be lazy: computed every
``gp_every``-th critic step (counted across generator iterations) and weighted by ``gp_every``
so its average pull is unchanged. With ``augment`` on, real and generated mels pass through the
same random DiffAugment (:mod:`specgan.stage_one.augment`) before the critic in both steps, so the penalty
is on interpolates of augmented mels — the critic's actual inputs. With ``aux_weight`` the
critic's auxiliary classifier adds a cross-entropy on real labels (critic step) and on the
asked labels (generator step); the penalty stays on the score. An EMA copy of G is what is
saved for sampling. Rollback on NaN, logging, checkpoints, every
rank's RNG, data parallelism (gradients averaged by hand: the penalty differentiates through
the critic twice, which DistributedDataParallel's reducer does not support) and bf16 autocast
come from the skeleton.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specgan.stage_one.augment import DiffAugment, gain_per_db
from specgan.stage_one.config import SpecGANConfig
from specgan.stage_one.data import MelDataset
from specgan.stage_one.labels import LabelSpace, label_text
from specgan.stage_one.losses import fused_critic_losses, generator_losses, mode_seeking_loss
from specgan.stage_one.registry import build_critic, build_generator
from vocoder.checkpoint import fingerprint, save_model
from vocoder.mel import MelConfig, MelStats
from vocoder.trainer import LoopSettings, Trainer

__all__ = ["SpecGANTrainer", "ema_weight", "label_shape", "stage_one_kwargs"]

log = logging.getLogger(__name__)


def stage_one_kwargs(spec: dict[str, Any], n_mels: int, frames: int, n_classes: int | list[int]) -> dict[str, Any]:
    """The full constructor kwargs stored in model.safetensors (spec + what the data sets)."""
    return {**{k: v for k, v in spec.items() if k != "name"}, "n_mels": n_mels, "frames": frames,
            "n_classes": n_classes}


def label_shape(space: LabelSpace) -> list | dict:
    """What the fingerprint keeps of the labels: one label's values as strings (as before several
    labels existed), or each key's.
    """
    if not space.multi:
        return [str(v) for v in space.vocabs[0]] if space.conditional else []
    return {space.name(i): [str(v) for v in vocab] for i, vocab in enumerate(space.vocabs)}


def ema_weight(decay: float, rampup: float, step: int) -> float:
    """Weight of the new parameters in the EMA update at ``step`` (1-based): ``1 - decay``, or more
    while ``rampup`` x step is shorter than the average's horizon ``1 / (1 - decay)``.
    """
    if decay <= 0:
        return 1.0
    horizon = 1.0 / (1.0 - decay)
    if rampup > 0:
        horizon = min(horizon, max(1.0, rampup * step))
    return 1.0 / horizon


class SpecGANTrainer(Trainer):
    """Trains G and D; saves ``state.pt`` (resume) and ``model.safetensors`` (EMA G for sampling).

    Args:
        cfg: The ``specgan:`` section.
        data: Normalised training mels (+ labels).
        out_dir: Checkpoints, samples, logs.
        device: torch device.
        seed: Initialisation and the batch/noise streams.
        mel: The mel the features were made with (stored with the model).
        stats: ``MelStats.to_dict()`` of the normalisation (stored with the model).
        data_key: What identifies the training data (part of the fingerprint).
        meta: Anything else stored with the model (recipe name, label key).
    """

    progress_name = "specgan"

    def __init__(self, cfg: SpecGANConfig, data: MelDataset, out_dir: str | Path, device="cpu", seed: int = 0,
                 mel: MelConfig | None = None, stats: dict[str, Any] | None = None, data_key: Any = None,
                 meta: dict[str, Any] | None = None):
        super().__init__(out_dir, device, seed, LoopSettings(
            log_every=cfg.log_every, save_every=cfg.save_every, eval_every=cfg.sample_every,
            nan_lr_factor=cfg.nan_lr_factor, max_rollbacks=cfg.max_rollbacks, amp=cfg.amp, section="specgan"))
        self.cfg, self.data = cfg, data
        self.mel, self.stats = mel, stats
        self.meta = dict(meta or {})
        n_mels = data.x.shape[2]
        n_classes = data.space.n_classes if cfg.conditional and data.y is not None else 0
        if cfg.conditional and not n_classes:
            raise ValueError("specgan.conditional is true but the data has no labels (set data.label)")
        torch.manual_seed(seed)
        self.g_kwargs = stage_one_kwargs(cfg.generator, n_mels, cfg.frames, n_classes)
        self.G = build_generator(cfg.generator, n_mels, cfg.frames, n_classes).to(self.device)
        self.D = build_critic(cfg.critic, n_mels, cfg.frames, n_classes).to(self.device)
        self.G_ema = build_generator(cfg.generator, n_mels, cfg.frames, n_classes).to(self.device)
        self.G_ema.eval().requires_grad_(False)
        # what the models read from the data (class prior, comb geometry, F0 bank, salience map)
        # before step 0; a resume then loads the saved buffers over it
        mel_stats = MelStats.from_dict(stats) if stats is not None else None
        self.prepared = {"G": self.G.prepare(data, mel, mel_stats), "D": self.D.prepare(data, mel, mel_stats)}
        self.G_ema.load_state_dict(self.G.state_dict())
        self.shape = {"model": {"generator": dict(cfg.generator), "critic": dict(cfg.critic), "frames": cfg.frames,
                                "conditional": cfg.conditional},
                      "mel": mel.to_dict() if mel is not None else None, "data": data_key,
                      "labels": label_shape(data.space) if cfg.conditional else None}
        cuda = self.device.type == "cuda"
        self.channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and cuda)
        if self.channels_last:
            for module in (self.G, self.D, self.G_ema):
                module.to(memory_format=torch.channels_last)
        # The compiled module shares its parameters with self.G; state_dict() stays on self.G.
        self.G_fwd = torch.compile(self.G) if cfg.compile else self.G
        betas = tuple(cfg.betas)
        self.opt_g = torch.optim.Adam(self.G.parameters(), cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.lr_d, betas=betas)
        self.augment = DiffAugment(cfg.augment, data.floor, gain_per_db(data.stats, mel))
        self.aux_keys = [str(k) for k in data.space.keys] if cfg.conditional else []
        self.aux_key_weights = cfg.aux_key_weights_for(self.aux_keys)
        self.broadcast_parameters()

    # -- the skeleton's hooks -------------------------------------------------------------
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def extra_state(self) -> dict[str, Any]:
        return {"config": asdict(self.cfg), "g_kwargs": self.g_kwargs, "vocab": list(self.data.vocab),
                "shape": self.shape, "fingerprint": fingerprint(self.shape)}

    def load_extra_state(self, state: dict[str, Any], weights_only: bool = False) -> None:
        # fine-tuning (--init-from): the architecture and mel must match, the data may not
        self.check_saved_shape(state.get("shape"), self.shape, weights_only, ("model", "mel"), "stage-one model")

    def postfix(self, losses: dict[str, float]) -> dict[str, str]:
        return {"W": f"{losses.get('critic/wdist', float('nan')):.2f}",
                "GP": f"{losses.get('critic/gp', float('nan')):.3f}", "G": f"{losses.get('gen/loss', float('nan')):.2f}"}

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n_critic`` real batches (n_critic, B, 1, n_mels, frames) and their labels."""
        k, b = self.cfg.n_critic, self.cfg.batch_size
        x, y = self.data.batch(k * b, self.sampler)
        x = x.view(k, b, *x.shape[1:])
        return x, (y.view(k, b, *y.shape[1:]) if y is not None and self.cfg.conditional else None)

    def _labels(self, n: int) -> torch.Tensor | None:
        if self.data.y is None or not self.cfg.conditional:
            return None
        # Labels for fakes are drawn from the data's label distribution.
        return self.data.y[torch.randint(len(self.data), (n,), generator=self.sampler)].to(self.device)

    def _real(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _fake(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.G_fwd(z, labels) if labels is not None else self.G_fwd(z)

    def train_step(self, batch) -> dict[str, torch.Tensor]:
        """n_critic critic steps + one generator step; named losses as detached tensors."""
        cfg = self.cfg
        reals, labels_all = batch
        z_dim = self.G.z_dim
        out: dict[str, torch.Tensor] = {}
        b = cfg.batch_size
        aug = self.augment
        for k in range(cfg.n_critic):
            real = self._real(reals[k])
            labels = labels_all[k].to(self.device) if labels_all is not None else None
            z = torch.randn(b, z_dim, generator=self.sampler).to(self.device)
            with torch.no_grad(), self.autocast():  # the critic step needs no graph through G
                fake = self._fake(z, labels).float()
                # DiffAugment: independent draws for the real and the fake batch, the critic (and
                # the penalty's interpolates, made inside from these) sees only augmented mels.
                real, fake = aug(real, self.sampler), aug(fake, self.sampler)
            # Lazy GP counted over all critic steps (not restarted per iteration), so exactly one
            # step in gp_every carries it whatever n_critic is; self.step is restored on resume.
            with_gp = (self.step * cfg.n_critic + k) % cfg.gp_every == 0
            with self.autocast():
                losses = fused_critic_losses(self.D, real, fake, labels, cfg.gp_weight * cfg.gp_every,
                                             with_gp=with_gp, aux_weight=cfg.aux_weight,
                                             aux_key_weights=self.aux_key_weights)
            loss = losses.pop("critic/loss")
            out["critic/param_grad_norm"] = self.optimize(loss, self.opt_d, self.D)
            out.update(losses)
            out["critic/loss"] = loss.detach()
        labels = self._labels(b)
        if cfg.mode_seeking > 0 and labels is not None:  # the second half asks for the first half's labels
            labels = torch.cat([labels[: b // 2], labels[: b - b // 2]])
        z = torch.randn(b, z_dim, generator=self.sampler).to(self.device)
        with self.autocast():
            fake = self._fake(z, labels)
            gen = generator_losses(self.D, aug(fake, self.sampler), labels, cfg.aux_weight, self.aux_key_weights)
            for i, key in enumerate(self.aux_keys):  # the per-label terms under their keys' names
                if f"gen/aux_ce/{i}" in gen:
                    gen[f"gen/aux_ce/{key}"] = gen.pop(f"gen/aux_ce/{i}")
            if cfg.mode_seeking > 0:
                ms = mode_seeking_loss(fake, z)
                gen["gen/loss"] = gen["gen/loss"] + cfg.mode_seeking * ms
                gen["gen/mode_seeking"] = ms.detach()
        loss_g = gen.pop("gen/loss")
        out["gen/grad_norm"] = self.optimize(loss_g, self.opt_g, self.G)
        with torch.no_grad():
            weight = ema_weight(cfg.ema, cfg.ema_rampup, self.step + 1)
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                pe.lerp_(p, weight)
        out.update(gen)
        out["gen/loss"] = loss_g.detach()
        return out

    def export(self, path: Path) -> None:
        save_model(path, self.G_ema, kind="stage-one", name=self.cfg.generator["name"], kwargs=self.g_kwargs,
                   step=self.step, mel=self.mel, stats=self.stats, shape=self.shape,
                   extra={**self.meta, **self.data.space.to_meta()})

    def validate(self) -> dict[str, float]:
        self.write_samples(self.out_dir / "samples" / f"step{self.step:07d}.png")
        return {}

    @torch.no_grad()
    def write_samples(self, path: str | Path, per_label: int = 4, seed: int = 1234) -> Path:
        """A PNG grid of EMA-G samples from fixed noise (rows: labels, if conditional); also
        logged to TensorBoard as ``samples/grid`` while :meth:`fit` runs.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from specgan.stage_one.model import StageOne

        gen = torch.Generator().manual_seed(seed)
        space = self.data.space if self.cfg.conditional else LabelSpace([], [])
        values = space.values()  # every label (one label) or every training combination (several)
        labels = [values[int(i)] for i in np.linspace(0, len(values) - 1, min(10, len(values))).round()] \
            if values else [None]
        ema = StageOne(self.G_ema, self.mel, None, space, self.step)
        rows = []
        for lab in labels:  # the one sampling path (StageOne.draw), one forward pass per row
            z = torch.randn(per_label, self.G.z_dim, generator=gen)
            rows.append(ema.draw(z, lab, batch_size=None).cpu())
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        from specgan.plotting import mel_axes, save_figure

        fig, axes = plt.subplots(len(rows), per_label, figsize=(1.9 * per_label, 1.5 * len(rows) + 0.4),
                                 squeeze=False)
        for r, (lab, mels) in enumerate(zip(labels, rows, strict=True)):
            for c in range(per_label):
                ax = axes[r][c]
                ax.imshow(mels[c].numpy(), origin="lower", aspect="auto", vmin=-1, vmax=1, cmap="magma")
                mel_axes(ax, self.mel, mels[c].shape[-1], labels=False)
                if c == 0:  # the row's label, then the unit
                    unit = "Hz" if self.mel is not None else "mel bin"
                    ax.set_ylabel(f"{label_text(lab)}  ({unit})" if lab is not None else unit, fontsize=6)
                if r == len(rows) - 1:
                    ax.set_xlabel("time (s)" if self.mel is not None else "frame", fontsize=5, labelpad=1)
        title = f"{self.out_dir}: EMA generator, step {self.step}"
        fig.suptitle(title, fontsize=8, wrap=True)
        fig.tight_layout()
        save_figure(fig, path, title)
        if self.writer is not None:
            self.writer.add_figure("samples/grid", fig, self.step)  # closes the figure
        plt.close(fig)
        return path

    def fit(self, steps: int | None = None, progress: bool = True, tensorboard: bool = True,
            cpu_seconds: float | None = None) -> dict[str, float]:
        """Train until ``steps`` (default ``cfg.steps``) generator iterations, or until this call has
        used ``cpu_seconds`` of CPU time (equal-budget ablations); returns the last logged losses.

        Every ``log_every`` iterations the losses go to ``history.jsonl``, TensorBoard (``logs/``)
        and the progress bar (or a plain line); every ``sample_every`` a sample grid is drawn and
        every ``save_every`` a checkpoint written.
        """
        return super().fit(self.cfg.steps if steps is None else steps, progress, tensorboard, cpu_seconds=cpu_seconds)
