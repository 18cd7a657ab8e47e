"""WGAN-GP losses (Gulrajani et al. 2017), written out exactly.

Critic loss: ``D(x̃) − D(x) + λ·(‖∇_x̂ D(x̂)‖₂ − 1)²`` with ``x̂ = ε·x + (1 − ε)·x̃``,
``ε ~ U[0, 1]`` drawn per sample, the gradient taken with ``torch.autograd.grad(...,
create_graph=True)`` so the penalty itself is differentiated. Generator loss: ``−D(G(z))``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["critic_step_losses", "generator_loss", "gradient_penalty"]


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None = None,
                     eps: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of (‖∇D(x̂)‖₂ − 1)² over the batch, and the per-sample gradient norms.

    Args:
        critic: D(x, labels) → (B,) scores.
        real, fake: (B, ...) batches; ``fake`` should be detached from the generator.
        labels: Passed to the critic unchanged (the interpolate keeps the real sample's label).
        eps: (B,) interpolation weights; drawn from U[0, 1] when None.

    Returns:
        (penalty scalar, norms (B,)).
    """
    b = real.shape[0]
    if eps is None:
        eps = torch.rand(b, device=real.device, dtype=real.dtype)
    eps = eps.view(b, *([1] * (real.dim() - 1)))
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = critic(x_hat, labels) if labels is not None else critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return ((norms - 1) ** 2).mean(), norms


def critic_step_losses(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None,
                       gp_weight: float) -> dict[str, torch.Tensor]:
    """Named losses of one critic step; ``critic/loss`` is what to minimise.

    ``critic/wdist`` = mean D(x) − mean D(x̃), the Wasserstein estimate (should rise, then settle).
    """
    args = (labels,) if labels is not None else ()
    d_real = critic(real, *args).mean()
    d_fake = critic(fake, *args).mean()
    gp, norms = gradient_penalty(critic, real, fake, labels)
    return {"critic/loss": d_fake - d_real + gp_weight * gp, "critic/wdist": (d_real - d_fake).detach(),
            "critic/gp": gp.detach(), "critic/grad_norm": norms.mean().detach()}


def generator_loss(critic: nn.Module, fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """−mean D(G(z))."""
    return -(critic(fake, labels) if labels is not None else critic(fake)).mean()
