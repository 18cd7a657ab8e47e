"""Sampling from a trained stage-one model: noise (+ label) → normalised mel → log-mel for any vocoder."""

from __future__ import annotations

import torch

from specgan.checkpoints import StageOne, load_stage_one

__all__ = ["StageOne", "interpolate", "load_stage_one", "noise", "sample", "walk_latents"]


@torch.no_grad()
def sample(model: StageOne, n: int, labels=None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` spectrograms.

    Args:
        model: from :func:`load_stage_one`.
        n: how many.
        labels: one label for all, a list of n labels, or None (required for conditional models).
        seed: sample i draws its noise from seed + i, so any one sample can be redrawn alone
            (``sample(model, 1, label, seed=seed + i)``) and batch size does not matter.

    Returns:
        (normalised (n, n_mels, frames) in [-1, 1], log-mel (n, n_mels, frames) for a vocoder).
    """
    g = model.generator
    device = next(g.parameters()).device
    z = torch.cat([noise(g.z_dim, seed + i) for i in range(n)]).to(device)
    y = _labels(model, labels, n, device)
    norm = (g(z, y) if y is not None else g(z))[:, 0]
    return norm, model.stats.denormalize(norm)


@torch.no_grad()
def interpolate(model: StageOne, seed_a: int, seed_b: int, steps: int = 8, label=None) -> tuple[torch.Tensor, torch.Tensor]:
    """A latent walk: spherical interpolation from seed_a's z to seed_b's z in ``steps`` points."""
    g = model.generator
    device = next(g.parameters()).device
    z = walk_latents(g.z_dim, seed_a, seed_b, steps)
    y = _labels(model, label, steps, device)
    norm = (g(z.to(device), y) if y is not None else g(z.to(device)))[:, 0]
    return norm, model.stats.denormalize(norm)


def walk_latents(z_dim: int, seed_a: int, seed_b: int, points: int) -> torch.Tensor:
    """(points, z_dim): spherical interpolation from seed_a's latent to seed_b's (CPU)."""
    za, zb = noise(z_dim, seed_a), noise(z_dim, seed_b)
    t = torch.linspace(0, 1, points)[:, None]
    omega = torch.arccos((za / za.norm() * zb / zb.norm()).sum().clamp(-1, 1))
    if omega.abs() < 1e-6:
        return (1 - t) * za + t * zb
    return (torch.sin((1 - t) * omega) * za + torch.sin(t * omega) * zb) / torch.sin(omega)


def noise(z_dim: int, seed: int) -> torch.Tensor:
    """The (1, z_dim) latent of one seed (what :func:`sample` and :func:`interpolate` use)."""
    return torch.randn(1, z_dim, generator=torch.Generator().manual_seed(seed))


def _labels(model: StageOne, labels, n: int, device) -> torch.Tensor | None:
    if model.generator.n_classes == 0:
        if labels is not None:
            raise ValueError("this model is unconditional: labels are not accepted")
        return None
    if labels is None:
        raise ValueError(f"this model is conditional: pass labels (one of {', '.join(map(str, model.vocab))})")
    if not isinstance(labels, (list, tuple)):
        labels = [labels] * n
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} samples")
    return torch.tensor([model.label_index(v) for v in labels], device=device)
