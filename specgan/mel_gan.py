"""What the two mel-domain GANs of the uses share (enhancement: :mod:`specgan.enhancement`; compression:
:mod:`specgan.codec`): the checks of their recipe sections, the per-band standardisation their
networks work in, the loading of their model files, and the generator/critic trainer both run on
the shared skeleton (:mod:`vocoder.trainer`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vocoder.checkpoint import fingerprint, load_model
from vocoder.mel import MelConfig
from vocoder.registry import build
from vocoder.trainer import LoopSettings, Trainer

__all__ = ["BandStandardised", "MelGANTrainer", "check_gan_section", "load_registered"]


def check_gan_section(cfg) -> None:
    """The checks every use's section needs: named model and critic, positive counts, and a context
    under half a chunk.
    """
    for name in ("model", "critic"):
        if "name" not in getattr(cfg, name):
            raise ValueError(f"{name} needs a 'name' key")
    for name in ("batch_size", "log_every", "save_every", "eval_every", "eval_items", "test_items", "chunk_frames"):
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name}: must be positive, got {getattr(cfg, name)}")
    if cfg.segment_seconds <= 0:
        raise ValueError(f"segment_seconds: must be positive, got {cfg.segment_seconds}")
    if cfg.context_frames < 0 or cfg.context_frames * 2 >= cfg.chunk_frames:
        raise ValueError(f"context_frames: must be >= 0 and less than half of chunk_frames ({cfg.chunk_frames})")


class BandStandardised(nn.Module):
    """A network that works on per-band standardised log-mels: the clean training speech's mean and
    deviation per band are buffers saved with its weights.

    Args:
        n_mels: Mel bands.
    """

    def __init__(self, n_mels: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    @torch.no_grad()
    def set_statistics(self, mean, std) -> None:
        """Per-band mean and standard deviation of the clean training log-mels (the standardisation)."""
        self.mean.copy_(torch.as_tensor(mean, dtype=self.mean.dtype).reshape(-1))
        # floored at half a nat: a band that is nearly constant in the clean data (silence above a
        # band limit) must not turn a little noise into huge standardised errors
        self.std.copy_(torch.as_tensor(std, dtype=self.std.dtype).reshape(-1).clamp_min(0.5))

    def standardise(self, logmel: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, n_mels, T) → per-band standardised (B, n_mels, T)."""
        return (logmel - self.mean[:, None]) / self.std[:, None]

    def unstandardise(self, s: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`standardise`."""
        return s * self.std[:, None] + self.mean[:, None]


def load_registered(path: str | Path, table: dict, kind: str, device: str | torch.device = "cpu"
                    ) -> tuple[torch.nn.Module, MelConfig, int]:
    """(model in eval mode, its mel, its training step) from a model file (or its run folder) of ``kind``
    whose class is in ``table``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    g, info = load_model(path, lambda i: build(table, kind, {"name": i.name, **i.kwargs}), kind, device)
    if info.mel is None:
        from vocoder.checkpoint import ModelFileError

        raise ModelFileError(f"{path}: a {kind} without its mel config")
    return g.eval(), info.mel, info.step


class MelGANTrainer(Trainer):
    """A generator G and a critic D with an Adam each, on the skeleton; subclasses build G and D
    (:meth:`build`), and supply ``next_batch``, ``train_step``, ``validate`` and ``export``.

    Args:
        cfg: The use's section (``model``, ``critic``, ``lr_g``, ``lr_d``, ``betas``, ``steps`` and
            the loop settings).
        mel: The vocoder's mel.
        stats: (mean, std) per band of the clean training log-mels, for G.
        out_dir, device, seed: As every trainer.
        meta: Stored with the model.
        shape: What the run's weights depend on: a resume checks it.
        what: The model's name in messages (``enhancer``, ``codec``).
    """

    def __init__(self, cfg, mel: MelConfig, stats, out_dir: str | Path, device="cpu", seed: int = 0,
                 meta: dict[str, Any] | None = None, shape: dict[str, Any] | None = None, what: str = "model"):
        super().__init__(out_dir, device, seed, LoopSettings(  # the recipe section is the trainer's progress name
            log_every=cfg.log_every, save_every=cfg.save_every, eval_every=cfg.eval_every, section=self.progress_name))
        self.cfg, self.mel, self.what = cfg, mel, what
        self.meta = dict(meta or {})
        torch.manual_seed(seed)
        self.G, self.D = self.build()
        self.G.to(self.device).set_statistics(*stats)
        self.D.to(self.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), cfg.lr_g, betas=tuple(cfg.betas))
        self.opt_d = torch.optim.Adam(self.D.parameters(), cfg.lr_d, betas=tuple(cfg.betas))
        self.shape = shape if shape is not None else {"model": dict(cfg.model), "mel": mel.to_dict()}
        self.broadcast_parameters()

    def build(self) -> tuple[nn.Module, nn.Module]:  # subclass
        raise NotImplementedError

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "D": self.D}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def extra_state(self) -> dict[str, Any]:
        return {"config": asdict(self.cfg), "shape": self.shape, "fingerprint": fingerprint(self.shape)}

    def load_extra_state(self, state: dict[str, Any], weights_only: bool = False) -> None:
        self.check_saved_shape(state.get("shape"), self.shape, weights_only, ("model", "mel"), self.what)

    def postfix(self, losses: dict[str, float]) -> dict[str, str]:
        return {"L1": f"{losses.get('gen/l1', float('nan')):.3f}", "D": f"{losses.get('critic/loss', float('nan')):.3f}"}

    def fit(self, steps: int | None = None, progress: bool = True, tensorboard: bool = True,
            cpu_seconds: float | None = None) -> dict[str, float]:
        """Train until ``steps`` (default ``cfg.steps``), or until this call used ``cpu_seconds``."""
        return super().fit(self.cfg.steps if steps is None else steps, progress, tensorboard, cpu_seconds=cpu_seconds)
