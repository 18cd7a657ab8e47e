"""Checkpoints: ``model.safetensors`` (generator weights + the spec to rebuild it + its MelConfig
and optional stats; for inference) and ``state.pt`` (everything to resume training)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vocoder.generators.base import Generator
from vocoder.mel import MelConfig
from vocoder.registry import build_generator

__all__ = ["FORMAT", "CheckpointError", "atomic_write", "load", "load_metadata", "load_training_state", "save_model",
           "save_training_state", "trim_history"]

FORMAT = "specgan-vocoder/1"

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A training checkpoint that cannot be read (and no usable previous one)."""


def atomic_write(path: str | Path, write: Callable[[Path], object], keep_previous: bool = False) -> Path:
    """Write ``path`` so that it is never seen half-written: ``write(tmp)`` into a temporary file in
    the same folder, fsync it, rename it over ``path``, fsync the folder. With ``keep_previous``
    the file it replaces stays as ``<stem>.prev<suffix>`` (a hard link, so ``path`` itself exists
    at every moment). A crash at any point leaves the old file or the new one, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            prev = path.with_name(f"{path.stem}.prev{path.suffix}")
            link = path.with_name(f".{prev.name}.tmp-{os.getpid()}")
            link.unlink(missing_ok=True)
            os.link(path, link)
            os.replace(link, prev)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def save_training_state(state: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` a training state atomically, keeping the previous one as ``state.prev.pt``."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp), keep_previous=True)


def load_training_state(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load ``state.pt`` with ``weights_only=True`` (tensors and plain containers only: nothing in
    the file can run code). If it is truncated or corrupt, say so and use ``state.prev.pt``."""
    path = Path(path)
    prev = path.with_name(f"{path.stem}.prev{path.suffix}")
    errors = []
    for candidate in (path, prev):
        if not candidate.is_file():
            errors.append(f"{candidate}: not found")
            continue
        try:
            state = torch.load(candidate, map_location=device, weights_only=True)
        except Exception as e:  # noqa: BLE001 (zip, pickle and EOF errors all mean: unreadable)
            errors.append(f"{candidate}: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
            log.error("checkpoint %s is unreadable (truncated or corrupt: %s); trying the previous one",
                      candidate, type(e).__name__)
            continue
        if candidate is prev:
            log.warning("resuming from the previous checkpoint %s (step %s)", prev, state.get("step"))
        return state
    raise CheckpointError("no usable training checkpoint: " + "; ".join(errors))


def save_model(path: str | Path, generator: Generator, spec: dict[str, Any], extra: dict[str, Any] | None = None,
               half: bool = False) -> Path:
    """Write inference weights (weight norm folded in) with the metadata to rebuild them.

    Args:
        path: Output ``.safetensors`` file.
        generator: The trained generator (not modified).
        spec: ``{name: ..., **params}`` it was built from.
        extra: JSON-serialisable metadata (step, metrics, stats...).
        half: Store float16 weights (loaded back as float32).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Rebuilt from the spec rather than deep-copied (deepcopy breaks weight-norm parametrisations),
    # which also proves the spec reproduces the architecture.
    g = build_generator(spec, generator.mel_cfg)
    g.load_state_dict({k: v.detach().cpu() for k, v in generator.state_dict().items()})
    g.remove_weight_norm()
    tensors = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in g.state_dict().items()}
    meta = {"format": FORMAT, "generator": json.dumps(spec), "mel": json.dumps(generator.mel_cfg.to_dict()),
            "extra": json.dumps(extra or {})}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def load_metadata(path: str | Path) -> dict[str, Any]:
    """``{"generator": spec, "mel": MelConfig, "extra": {...}}`` of a saved model."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"vocoder checkpoint {path} not found")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a specgan vocoder checkpoint (format {meta.get('format')!r}, expected {FORMAT})")
    return {"generator": json.loads(meta["generator"]), "mel": MelConfig.from_dict(json.loads(meta["mel"])),
            "extra": json.loads(meta.get("extra", "{}"))}


def load(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Rebuild a generator from ``model.safetensors`` (strict: every weight must match), in eval
    mode, weight norm folded. ``generator.checkpoint_meta`` holds the metadata."""
    from safetensors.torch import load_file

    meta = load_metadata(path)
    g = build_generator(meta["generator"], meta["mel"]).remove_weight_norm()
    state = load_file(str(path))
    own = g.state_dict()
    state = {k: v.to(own[k].dtype) if k in own else v for k, v in state.items()}
    g.load_state_dict(state, strict=True)
    g.checkpoint_meta = meta
    return g.to(device).eval()


def trim_history(path: str | Path, step: int) -> None:
    """Drop ``history.jsonl`` lines logged after ``step`` (a resumed or rolled-back run logs them
    again), so the history stays one line per logged step."""
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    keep = [ln for ln in lines if ln.strip() and json.loads(ln).get("step", 0) <= step]
    if len(keep) != len(lines):
        atomic_write(path, lambda tmp: tmp.write_text("".join(ln + "\n" for ln in keep)))
