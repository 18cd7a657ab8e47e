"""Glue between recipes and the training libraries (the recipe's data → their datasets)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from specgan.audio import load_clip
from specgan.data.prepare import load_split
from specgan.recipe import Recipe, save_resolved

__all__ = ["pick_device", "train_specgan", "train_vocoder"]

log = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def train_vocoder(recipe: Recipe, steps: int | None = None, resume: bool = False, init_from: str | None = None,
                  device: str = "auto", progress: bool = True, out: str | Path | None = None) -> dict:
    """Train the recipe's vocoder on its prepared data into ``<work>/vocoder``.

    The clips go through the same preprocessing as the features stage, and the vocoder's mel is
    the recipe's ``mel`` block, so the vocoder consumes exactly what stage one is trained on.
    ``out`` (default ``<work>/vocoder``) lets several vocoders share one prepared dataset.
    """
    from vocoder.data import SegmentDataset
    from vocoder.train import VocoderTrainer

    out = Path(out) if out else recipe.work / "vocoder"
    done = None if init_from else _check_existing(out, recipe.vocoder.steps if steps is None else steps, resume)
    if done:
        return done
    sr, pre = recipe.mel.sample_rate, recipe.data.preprocess

    def load(path: str, sample_rate: int):
        return load_clip(path, sample_rate, pre, recipe.mel.n_fft)

    vc = recipe.vocoder
    train_items, dev_items = load_split(recipe, "train"), load_split(recipe, "dev")
    train_set = SegmentDataset([it.path for it in train_items], sr, vc.segment_samples, load, seed=recipe.seed)
    dev_set = SegmentDataset([it.path for it in dev_items[: vc.eval_items]], sr, None, load) if dev_items else None
    for name, ds in (("train", train_set), ("dev", dev_set)):
        if ds is not None and ds.skipped:
            log.warning("vocoder data/%s: skipped %d unusable files (e.g. %s)", name, len(ds.skipped), ds.skipped[0][1])
    dev = pick_device(device)
    meta = {"recipe": recipe.name, "data": recipe.data.source}
    stats_path = recipe.work / "features" / "stats.npz"
    if stats_path.is_file():  # the normalisation stage one uses, so a checkpoint carries both
        from vocoder.mel import MelStats

        meta["stats"] = MelStats.load(stats_path).to_dict()
    trainer = VocoderTrainer(vc, recipe.mel, train_set, dev_set, out, dev, seed=recipe.seed, extra_meta=meta)
    if resume:
        trainer.load_state_dict(_resume_state(out, dev))
        log.info("vocoder: resumed at step %d from %s", trainer.step, out / "state.pt")
    elif init_from:
        from vocoder.checkpoint import load_training_state

        trainer.load_state_dict(load_training_state(Path(init_from), dev), weights_only=True)
        log.info("vocoder: initialised generator and critics from %s", init_from)
    save_resolved(recipe, out)
    metrics = trainer.fit(steps, progress=progress)
    return {"step": trainer.step, "out": str(out), **metrics}


def _resume_state(out: Path, device) -> dict:
    """The ``state.pt`` that ``--resume`` continues from (a clear error when there is none)."""
    from vocoder.checkpoint import load_training_state

    path = out / "state.pt"
    if not path.is_file() and not (out / "state.prev.pt").is_file():
        raise FileNotFoundError(f"--resume: {path} not found")
    return load_training_state(path, device)


def checkpoint_step(out: Path) -> int:
    """The step of ``<out>/model.safetensors`` (stage one keeps it in the metadata, vocoders in ``extra``)."""
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        meta = f.metadata() or {}
    return int(meta["step"]) if "step" in meta else int(json.loads(meta.get("extra", "{}")).get("step", 0))


def _check_existing(out: Path, target: int, resume: bool) -> dict | None:
    """Finished → a result to return; unfinished without --resume → an error; else None."""
    if not (out / "state.pt").exists() or resume:
        return None
    done = checkpoint_step(out)
    if done >= target:
        log.info("up to date in %s (step %d >= %d); --resume --steps N trains further", out, done, target)
        return {"step": done, "out": str(out), "up_to_date": True}
    raise FileExistsError(f"{out / 'state.pt'} exists at step {done} of {target}: pass --resume to continue it, "
                          f"or remove {out} to restart")


def train_specgan(recipe: Recipe, steps: int | None = None, resume: bool = False, device: str = "auto",
                  progress: bool = True) -> dict:
    """Train stage one on the recipe's cached train features into ``<work>/specgan``."""
    from specgan.features.cache import features_key, load_features, load_index, load_stats
    from specgan.train_gan import MelDataset, SpecGANTrainer

    cfg = recipe.specgan
    out = recipe.work / "specgan"
    target = cfg.steps if steps is None else steps
    done = _check_existing(out, target, resume)
    if done:
        return done
    index = load_index(recipe.work, "train")
    if index["key"] != features_key(recipe):
        raise ValueError(f"{recipe.work / 'features'} was made with another mel/preprocessing config: "
                         f"run `specgan features --recipe {recipe.path}` first")
    stats = load_stats(recipe.work)
    ids = list(index["items"])
    mels = [load_features(recipe.work, "train", i, index, mmap=False) for i in ids]
    labels = [index["items"][i]["label"] for i in ids] if cfg.conditional else [None] * len(ids)
    data = MelDataset(mels, labels, stats, cfg.frames, float(recipe.mel.log(np.float64(recipe.mel.floor))))
    meta = {"recipe": recipe.name, "mel": recipe.mel.to_dict(), "stats": stats.to_dict(), "label": recipe.data.label}
    trainer = SpecGANTrainer(cfg, data, out, pick_device(device), seed=recipe.seed, meta=meta)
    if resume:
        trainer.load_state_dict(_resume_state(out, trainer.device))
        log.info("specgan: resumed at step %d from %s", trainer.step, out / "state.pt")
    if trainer.rank == 0:
        save_resolved(recipe, out)
    last = trainer.fit(target, progress=progress)
    return {"step": trainer.step, "out": str(out), **last}
