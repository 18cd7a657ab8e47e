"""Checkpoints: ``model.safetensors`` (generator weights + the spec to rebuild it + its MelConfig
and optional stats; for inference) and ``state.pt`` (everything to resume training)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from vocoder.generators.base import Generator
from vocoder.mel import MelConfig
from vocoder.registry import build_generator

__all__ = ["FORMAT", "load", "load_metadata", "save_model"]

FORMAT = "specgan-vocoder/1"


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
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


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
