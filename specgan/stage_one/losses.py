"""WGAN-GP losses (Gulrajani et al. 2017), written out exactly.

Critic loss: ``D(x̃) − D(x) + λ·(‖∇_x̂ D(x̂)‖₂ − 1)²`` with ``x̂ = ε·x + (1 − ε)·x̃``,
``ε ~ U[0, 1]`` drawn per sample, the gradient taken with ``torch.autograd.grad(...,
create_graph=True)`` so the penalty itself is differentiated. Generator loss: ``−D(G(z))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["critic_step_losses", "fused_critic_losses", "generator_loss", "generator_losses", "gradient_penalty",
           "interpolates", "label_cross_entropies", "label_cross_entropy", "penalty"]


def label_cross_entropies(logits: torch.Tensor, labels: torch.Tensor,
                          sizes: list[int] | None = None) -> list[torch.Tensor]:
    """The auxiliary classifier's cross-entropy per label: ``[ce]`` for one label (labels (B,)), or
    one per column of labels (B, L), the logits split by ``sizes`` (one softmax per label, as AC-GAN
    with one head each).
    """
    if labels.dim() == 1:
        return [F.cross_entropy(logits.float(), labels)]
    if sizes is None or len(sizes) != labels.shape[1] or sum(sizes) != logits.shape[1]:
        raise ValueError(f"label_cross_entropy: logits {tuple(logits.shape)} and labels {tuple(labels.shape)} "
                         f"do not match the label sizes {sizes}")
    parts = logits.float().split(list(sizes), dim=1)
    return [F.cross_entropy(p, labels[:, i]) for i, p in enumerate(parts)]


def label_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, sizes: list[int] | None = None,
                        weights: Sequence[float] | None = None) -> torch.Tensor:
    """The sum of :func:`label_cross_entropies`, each label's term times its entry of ``weights``
    (one per label; None: all 1), so one label can be pulled harder than another.
    """
    return weighted_sum(label_cross_entropies(logits, labels, sizes), weights)


def weighted_sum(parts: list[torch.Tensor], weights: Sequence[float] | None) -> torch.Tensor:
    """Σ wᵢ·partᵢ over the labels' terms (``weights`` None: all 1); one weight per label."""
    if weights is None:
        return sum(parts)
    if len(weights) != len(parts):
        raise ValueError(f"label_cross_entropy: {len(weights)} aux_key_weights for {len(parts)} labels")
    return sum(w * p for w, p in zip(weights, parts, strict=True))


def interpolates(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """x̂ = ε·real + (1 − ε)·fake with one ε ~ U[0, 1] per sample; requires grad."""
    b = real.shape[0]
    if eps is None:
        eps = torch.rand(b, device=real.device, dtype=real.dtype)
    eps = eps.view(b, *([1] * (real.dim() - 1)))
    return (eps * real + (1 - eps) * fake).requires_grad_(True)


def penalty(scores_hat: torch.Tensor, x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean (‖∇D(x̂)‖₂ − 1)², per-sample norms) from the critic's scores on x̂ (create_graph, so the
    penalty is differentiable in the critic's weights).
    """
    (grad,) = torch.autograd.grad(scores_hat.sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(2, dim=1)
    return ((norms - 1) ** 2).mean(), norms


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
    x_hat = interpolates(real, fake, eps)
    scores = critic(x_hat, labels) if labels is not None else critic(x_hat)
    return penalty(scores, x_hat)


def fused_critic_losses(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None,
                        gp_weight: float, with_gp: bool = True, eps: torch.Tensor | None = None,
                        aux_weight: float = 0.0, aux_key_weights: Sequence[float] | None = None
                        ) -> dict[str, torch.Tensor]:
    """The same losses as :func:`critic_step_losses` with real and fake in ONE critic forward
    (exact because the critic treats samples independently: no batch norm). The interpolates get
    their own forward: folded into the same batch, the penalty's gradient and double backward
    would run over all 3B samples instead of B (measured: 1.7x slower). ``with_gp=False`` skips
    the penalty (lazy GP steps); ``gp_weight`` is applied as given (the caller scales lazy GP).

    ``aux_weight > 0`` adds the auxiliary classifier's cross-entropy on the *real* half against
    ``labels`` (``critic/aux_ce``), from the same forward, each label's term times its entry of
    ``aux_key_weights`` (None: all 1). The penalty is on the score alone: the classifier head is
    not part of the Wasserstein critic, so the WGAN-GP term is unchanged.
    """
    b = real.shape[0]
    both = torch.cat([real, fake])
    out: dict[str, torch.Tensor] = {}
    if aux_weight > 0:
        if labels is None:
            raise ValueError("the auxiliary classifier needs labels")
        scores, logits = critic(both, torch.cat([labels, labels]), return_logits=True)
        aux = label_cross_entropy(logits[:b], labels, getattr(critic, "label_sizes", None), aux_key_weights)
        out["critic/aux_ce"] = aux.detach()
    else:
        scores = critic(both, torch.cat([labels, labels])) if labels is not None else critic(both)
    scores = scores.float()
    d_real, d_fake = scores[:b].mean(), scores[b:].mean()
    out["critic/wdist"] = (d_real - d_fake).detach()
    loss = d_fake - d_real
    if aux_weight > 0:
        loss = loss + aux_weight * aux
    if with_gp:
        # The penalty always in float32, also under a caller's autocast: a bf16 gradient norm
        # is too coarse for (‖∇‖ − 1)² near its minimum.
        with torch.autocast(real.device.type, enabled=False):
            gp, norms = gradient_penalty(critic, real.float(), fake.float(), labels, eps)
        loss = loss + gp_weight * gp
        out["critic/gp"], out["critic/grad_norm"] = gp.detach(), norms.mean().detach()
    out["critic/loss"] = loss
    return out


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
    return -(critic(fake, labels) if labels is not None else critic(fake)).float().mean()


def generator_losses(critic: nn.Module, fake: torch.Tensor, labels: torch.Tensor | None,
                     aux_weight: float = 0.0, aux_key_weights: Sequence[float] | None = None
                     ) -> dict[str, torch.Tensor]:
    """Named losses of the generator step; ``gen/loss`` is what to minimise: −mean D(G(z)), plus
    ``aux_weight`` × the auxiliary classifier's cross-entropy of G(z) against the asked labels
    (each label's term times its entry of ``aux_key_weights``; None: all 1). With several labels
    each one's unweighted cross-entropy is also returned, as ``gen/aux_ce/<i>``.
    """
    if aux_weight <= 0:
        return {"gen/loss": generator_loss(critic, fake, labels)}
    if labels is None:
        raise ValueError("the auxiliary classifier needs labels")
    scores, logits = critic(fake, labels, return_logits=True)
    adv = -scores.float().mean()
    parts = label_cross_entropies(logits, labels, getattr(critic, "label_sizes", None))
    aux = weighted_sum(parts, aux_key_weights)
    out = {"gen/loss": adv + aux_weight * aux, "gen/adv": adv.detach(), "gen/aux_ce": aux.detach()}
    if len(parts) > 1:
        out.update({f"gen/aux_ce/{i}": p.detach() for i, p in enumerate(parts)})
    return out


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's regulariser on a batch whose second half pairs the first (same labels, other noise):
    ``1 / (mean|G(z1) − G(z2)| / mean|z1 − z2| + eps)``; small when different noise gives different
    outputs, large (≈ 1/eps) when the generator ignores its noise. An odd last item is unused.
    """
    h = fake.shape[0] // 2
    if h == 0:
        raise ValueError("mode seeking needs at least two generated items")
    ratio = (fake[:h] - fake[h : 2 * h]).abs().float().mean() / (z[:h] - z[h : 2 * h]).abs().float().mean()
    return 1.0 / (ratio + eps)
