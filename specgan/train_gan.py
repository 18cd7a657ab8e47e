"""Stage-one training: the WGAN-GP loop over cached, normalised log-mels.

One generator iteration = ``n_critic`` critic steps (each on a fresh real batch and fresh fakes)
+ one generator step. The gradient penalty can be lazy: computed every ``gp_every``-th critic
step and weighted by ``gp_every`` so its average pull is unchanged. An EMA copy of G is what is
saved for sampling. A non-finite loss rolls back to the last checkpoint, multiplies both learning
rates by ``nan_lr_factor``, logs it, and continues.

Data parallel: under ``torchrun`` (a ``torch.distributed`` process group initialised, gloo on CPU,
nccl on CUDA) every rank draws its own batches and noise, and gradients are averaged across ranks
with one all-reduce per backward — done by hand rather than with DistributedDataParallel, because
the gradient penalty differentiates through the critic twice, which DDP's reducer does not
support. Rank 0 alone writes files.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist

from tqdm import tqdm

from specgan.gan import fused_critic_losses, generator_loss
from specgan.models import Critic, Generator
from vocoder.checkpoint import atomic_write, load_training_state, save_training_state, trim_history

__all__ = ["MelDataset", "SpecGANConfig", "SpecGANTrainer"]

log = logging.getLogger(__name__)


@dataclass
class SpecGANConfig:
    """The ``specgan:`` recipe section (SpecGAN's defaults for the optimisation)."""

    frames: int = 64                  # model width in frames (features are padded/cropped to it)
    upsample: Literal["transposed", "nearest"] = "transposed"   # nearest: no checkerboard artefacts
    z_dim: int = 100
    d: int = 32
    kernel_size: int = 5
    conditional: bool = True          # condition on data.label
    embed_dim: int = 32
    batch_size: int = 64
    n_critic: int = 5
    gp_weight: float = 10.0
    gp_every: int = 1                 # lazy GP: every k-th critic step, weighted by k
    lr_g: float = 1e-4
    lr_d: float = 1e-4                # TTUR: set lr_d > lr_g
    betas: list[float] = field(default_factory=lambda: [0.5, 0.9])
    ema: float = 0.999
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


    def __post_init__(self) -> None:
        for name in ("frames", "z_dim", "d", "kernel_size", "embed_dim", "batch_size", "n_critic", "gp_every",
                     "log_every", "sample_every", "save_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be positive, got {getattr(self, name)}")
        if self.steps < 0:
            raise ValueError(f"steps: must be 0 or more, got {self.steps}")
        if self.frames & (self.frames - 1):
            raise ValueError(f"frames: must be a power of two (the generator doubles its size per layer), "
                             f"got {self.frames}")
        if self.gp_weight < 0 or self.lr_g <= 0 or self.lr_d <= 0:
            raise ValueError(f"gp_weight must be >= 0 and lr_g, lr_d > 0 (got {self.gp_weight}, {self.lr_g}, "
                             f"{self.lr_d})")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas: must be two numbers in [0, 1), got {self.betas}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema: must be in [0, 1), got {self.ema}")
        if not 0 < self.nan_lr_factor < 1:
            raise ValueError(f"nan_lr_factor: must be in (0, 1), got {self.nan_lr_factor}")


class MelDataset:
    """Normalised log-mels of one split in memory, padded/cropped to ``frames``, with label indices.

    Args:
        mels: list of (n_mels, T) log-mel arrays.
        labels: the raw label of each (or None when unconditional).
        stats: :class:`vocoder.mel.MelStats` for normalisation.
        frames: output width; shorter mels are padded with the normalised floor.
        floor_log: log-mel value of silence (MelConfig.log(floor)).
        vocab: label → index (built from ``labels`` when None).
    """

    def __init__(self, mels, labels, stats, frames: int, floor_log: float, vocab: list | None = None):
        n_mels = stats.n_mels
        pad = stats.normalize(np.full((n_mels, 1), floor_log, np.float32))
        x = np.empty((len(mels), 1, n_mels, frames), np.float32)
        for i, m in enumerate(mels):
            z = stats.normalize(np.asarray(m, np.float32))[:, :frames]
            x[i, 0, :, : z.shape[1]] = z
            x[i, 0, :, z.shape[1]:] = pad
        self.x = torch.from_numpy(x)
        self.vocab = vocab if vocab is not None else (sorted(set(labels)) if labels and labels[0] is not None else [])
        index = {v: i for i, v in enumerate(self.vocab)}
        if self.vocab:
            missing = sorted({str(l) for l in labels if l not in index})
            if missing:
                raise ValueError(f"labels not in the training vocabulary: {', '.join(missing[:5])}")
            self.y = torch.tensor([index[l] for l in labels])
        else:
            self.y = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        idx = torch.randint(len(self), (n,), generator=gen)
        return self.x[idx], (self.y[idx] if self.y is not None else None)


def _grad_norm(module: torch.nn.Module) -> torch.Tensor:
    """Global L2 norm of a module's parameter gradients (logged; a spike precedes most divergences)."""
    grads = [p.grad.detach().flatten() for p in module.parameters() if p.grad is not None]
    return torch.cat(grads).norm() if grads else torch.zeros(())


class SpecGANTrainer:
    """Trains G and D; saves ``state.pt`` (resume) and ``model.safetensors`` (EMA G for sampling)."""

    def __init__(self, cfg: SpecGANConfig, data: MelDataset, out_dir: str | Path, device="cpu", seed: int = 0,
                 meta: dict[str, Any] | None = None):
        self.cfg, self.data = cfg, data
        self.out_dir = Path(out_dir)
        self.device = torch.device(device)
        self.meta = dict(meta or {})
        n_mels = data.x.shape[2]
        n_classes = len(data.vocab) if cfg.conditional else 0
        if cfg.conditional and not n_classes:
            raise ValueError("specgan.conditional is true but the data has no labels (set data.label)")
        torch.manual_seed(seed)
        self.g_kwargs = dict(n_mels=n_mels, frames=cfg.frames, z_dim=cfg.z_dim, d=cfg.d, kernel_size=cfg.kernel_size,
                             upsample=cfg.upsample, n_classes=n_classes, embed_dim=cfg.embed_dim)
        self.G = Generator(**self.g_kwargs).to(self.device)
        self.D = Critic(n_mels, cfg.frames, cfg.d, cfg.kernel_size, n_classes).to(self.device)
        self.G_ema = Generator(**self.g_kwargs).to(self.device).eval().requires_grad_(False)
        self.G_ema.load_state_dict(self.G.state_dict())
        cuda = self.device.type == "cuda"
        self.channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and cuda)
        if self.channels_last:
            for module in (self.G, self.D, self.G_ema):
                module.to(memory_format=torch.channels_last)
        bf16_ok = not cuda or torch.cuda.is_bf16_supported()
        self.amp_dtype = torch.bfloat16 if cfg.amp == "bf16" or (cfg.amp == "auto" and cuda and bf16_ok) else None
        # The compiled module shares its parameters with self.G; state_dict() stays on self.G.
        self.G_fwd = torch.compile(self.G) if cfg.compile else self.G
        betas = tuple(cfg.betas)
        self.opt_g = torch.optim.Adam(self.G.parameters(), cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.lr_d, betas=betas)
        distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if distributed else 0
        self.world = dist.get_world_size() if distributed else 1
        if self.world > 1:
            for module in (self.G, self.D, self.G_ema):  # identical start on every rank
                for t in list(module.parameters()) + list(module.buffers()):
                    dist.broadcast(t.data, src=0)
        # Each rank its own stream of batches and noise.
        self.sampler = torch.Generator().manual_seed(seed + 1_000_003 * self.rank)
        self.step = 0
        self.rollbacks = 0
        self._since_save = 0    # rollbacks since the last checkpoint written
        self._writer = None

    def _labels(self, n: int) -> torch.Tensor | None:
        if self.data.y is None or not self.cfg.conditional:
            return None
        # Labels for fakes are drawn from the data's label distribution.
        return self.data.y[torch.randint(len(self.data), (n,), generator=self.sampler)].to(self.device)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def _real(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def iteration(self) -> dict[str, torch.Tensor]:
        """n_critic critic steps + one generator step; named losses as detached tensors."""
        cfg = self.cfg
        out: dict[str, torch.Tensor] = {}
        b = cfg.batch_size
        for k in range(cfg.n_critic):
            real, labels = self.data.batch(b, self.sampler)
            real = self._real(real)
            labels = labels.to(self.device) if labels is not None and cfg.conditional else None
            z = torch.randn(b, cfg.z_dim, generator=self.sampler).to(self.device)
            with torch.no_grad(), self._autocast():  # the critic step needs no graph through G
                fake = (self.G_fwd(z, labels) if labels is not None else self.G_fwd(z)).float()
            with self._autocast():
                losses = fused_critic_losses(self.D, real, fake, labels, cfg.gp_weight * cfg.gp_every,
                                             with_gp=k % cfg.gp_every == 0)
            loss = losses.pop("critic/loss")
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self._average_grads(self.D)
            out["critic/param_grad_norm"] = _grad_norm(self.D)
            self.opt_d.step()
            out.update(losses)
            out["critic/loss"] = loss.detach()
        labels = self._labels(cfg.batch_size)
        z = torch.randn(cfg.batch_size, cfg.z_dim, generator=self.sampler).to(self.device)
        with self._autocast():
            fake = self.G_fwd(z, labels) if labels is not None else self.G_fwd(z)
            loss_g = generator_loss(self.D, fake, labels)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self._average_grads(self.G)
        out["gen/grad_norm"] = _grad_norm(self.G)
        self.opt_g.step()
        with torch.no_grad():
            for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                pe.lerp_(p, 1.0 - cfg.ema)
        out["gen/loss"] = loss_g.detach()
        self.step += 1
        return out

    def _average_grads(self, module: torch.nn.Module) -> None:
        if self.world == 1:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def _any_rank(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "rollbacks": self.rollbacks, "G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": self.G_ema.state_dict(), "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "sampler": self.sampler.get_state(), "torch_rng": torch.get_rng_state(), "config": asdict(self.cfg),
                "g_kwargs": self.g_kwargs, "vocab": self.data.vocab, "meta": self.meta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("G", "D", "G_ema", "opt_g", "opt_d"):
            getattr(self, name).load_state_dict(state[name])
        self.sampler.set_state(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.rollbacks = int(state["step"]), int(state.get("rollbacks", 0))

    def save(self) -> None:
        self._since_save = 0  # on every rank: the lr factor after a rollback must agree across ranks
        if self.rank != 0:
            if self.world > 1:
                dist.barrier()  # wait until rank 0 has written (a rollback may read it)
            return
        self._save_files()
        if self.world > 1:
            dist.barrier()

    def _save_files(self) -> None:
        from safetensors.torch import save_file

        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_training_state(self.state_dict(), self.out_dir / "state.pt")
        meta = {"format": "specgan-generator/1", "g_kwargs": json.dumps(self.g_kwargs),
                "vocab": json.dumps(self.data.vocab), "step": str(self.step), "meta": json.dumps(self.meta)}
        weights = {k: v.contiguous().cpu() for k, v in self.G_ema.state_dict().items()}
        atomic_write(self.out_dir / "model.safetensors", lambda tmp: save_file(weights, str(tmp), metadata=meta))
        self.write_samples(self.out_dir / "samples" / f"step{self.step:07d}.png")

    @torch.no_grad()
    def write_samples(self, path: str | Path, per_label: int = 4, seed: int = 1234) -> Path:
        """A PNG grid of EMA-G samples from fixed noise (rows: labels, if conditional); also
        logged to TensorBoard as ``samples/grid`` while :meth:`fit` runs."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        gen = torch.Generator().manual_seed(seed)
        labels = list(range(len(self.data.vocab)))[:10] if self.cfg.conditional else [None]
        rows = []
        for lab in labels:
            z = torch.randn(per_label, self.cfg.z_dim, generator=gen).to(self.device)
            y = torch.full((per_label,), lab, device=self.device) if lab is not None else None
            rows.append((self.G_ema(z, y) if y is not None else self.G_ema(z)).cpu()[:, 0])
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig, axes = plt.subplots(len(rows), per_label, figsize=(1.6 * per_label, 1.4 * len(rows)), squeeze=False)
        for r, (lab, mels) in enumerate(zip(labels, rows, strict=True)):
            for c in range(per_label):
                ax = axes[r][c]
                ax.imshow(mels[c].numpy(), origin="lower", aspect="auto", vmin=-1, vmax=1, cmap="magma")
                ax.set_xticks([])
                ax.set_yticks([])
                if c == 0 and lab is not None:
                    ax.set_ylabel(str(self.data.vocab[lab]), fontsize=8)
        fig.suptitle(f"EMA generator, step {self.step}", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        if self._writer is not None:
            self._writer.add_figure("samples/grid", fig, self.step)  # closes the figure
        plt.close(fig)
        return path

    def _rollback(self, where: str) -> None:
        path = self.out_dir / "state.pt"
        if not path.is_file():
            raise FloatingPointError(f"non-finite {where} loss at step {self.step} before any checkpoint; "
                                     f"lower specgan.lr_g / lr_d")
        step = self.step
        self._since_save += 1
        if self._since_save > self.cfg.max_rollbacks:
            raise FloatingPointError(f"{self._since_save - 1} rollbacks in a row without progress (non-finite "
                                     f"{where} loss at step {step}); lower specgan.lr_g / lr_d and resume from {path}")
        since = self._since_save
        self.load_state_dict(load_training_state(path, self.device))
        self._since_save = since
        self.rollbacks += 1
        self._trim_history()
        for opt in (self.opt_g, self.opt_d):  # k rollbacks since the checkpoint: its lrs x factor^k
            for group in opt.param_groups:
                group["lr"] *= self.cfg.nan_lr_factor ** since
        log.warning("non-finite %s loss at step %d: rolled back to step %d, learning rates x%s (now g %.2e, d %.2e)",
                    where, step, self.step, self.cfg.nan_lr_factor, self.opt_g.param_groups[0]["lr"],
                    self.opt_d.param_groups[0]["lr"])

    def _trim_history(self) -> None:
        """On resume, drop history lines logged after the checkpoint (they will be logged again)."""
        if self.rank == 0:
            trim_history(self.out_dir / "history.jsonl", self.step)

    def _open_writer(self, tensorboard: bool) -> None:
        if not tensorboard or self.rank != 0:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional: history.jsonl always has the numbers
            log.info("tensorboard not installed: scalars go to history.jsonl only")
            return
        self._writer = SummaryWriter(str(self.out_dir / "logs"), purge_step=self.step + 1 if self.step else None)

    def fit(self, steps: int | None = None, progress: bool = True, tensorboard: bool = True) -> dict[str, float]:
        """Train until ``steps`` (default ``cfg.steps``) generator iterations; returns the last logged losses.

        Every ``log_every`` iterations the losses go to ``history.jsonl``, TensorBoard (``logs/``)
        and the progress bar; every ``save_every`` a checkpoint and a sample grid are written.
        """
        target = self.cfg.steps if steps is None else steps
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._trim_history()
        self._open_writer(tensorboard)
        bar = tqdm(total=target, initial=self.step, desc="specgan", unit="it", disable=not progress or self.rank != 0)
        last: dict[str, float] = {}
        t0, t_step = time.perf_counter(), self.step
        try:
            while self.step < target:
                out = self.iteration()
                bad = [k for k, v in out.items() if not torch.isfinite(v)]
                if self._any_rank(bool(bad)):
                    before = self.step
                    self._rollback(bad[0].split("/")[0] if bad else "another rank's")
                    bar.update(self.step - before)
                    continue
                bar.update(1)
                if self.rank == 0 and (self.step % self.cfg.log_every == 0 or self.step == target):
                    last = {k: float(v) for k, v in out.items()}
                    last["time/sec_per_it"] = (time.perf_counter() - t0) / max(self.step - t_step, 1)
                    t0, t_step = time.perf_counter(), self.step
                    with open(self.out_dir / "history.jsonl", "a") as f:
                        f.write(json.dumps({"step": self.step, **last}) + "\n")
                    if self._writer is not None:
                        for k, v in last.items():
                            self._writer.add_scalar(k, v, self.step)
                    bar.set_postfix(W=f"{last['critic/wdist']:.2f}", D=f"{last['critic/loss']:.2f}",
                                    GP=f"{last.get('critic/gp', float('nan')):.3f}", G=f"{last['gen/loss']:.2f}")
                if self.step % self.cfg.save_every == 0 or self.step == target:
                    self.save()
        finally:
            bar.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        return last
