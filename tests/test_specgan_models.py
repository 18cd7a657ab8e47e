"""Stage-one models and the WGAN-GP terms (tiny sizes)."""

import pytest
import torch
from torch import nn

from specgan.stage_one.losses import critic_step_losses, fused_critic_losses, generator_loss, gradient_penalty
from specgan.stage_one.critic import Critic
from specgan.stage_one.generator import Generator
from specgan.stage_one.layers import stages_for


@pytest.mark.parametrize("n_mels,frames", [(64, 64), (128, 128), (64, 128), (128, 32)])
@pytest.mark.parametrize("upsample", ["transposed", "nearest"])
def test_shapes(n_mels, frames, upsample):
    g = Generator(n_mels, frames, z_dim=8, d=4, upsample=upsample)
    c = Critic(n_mels, frames, d=4)
    x = g(torch.randn(3, 8))
    assert x.shape == (3, 1, n_mels, frames) and x.abs().max() <= 1
    assert c(x).shape == (3,)


def test_specgan_published_size():
    # 128x128, d=64: a 4x4x16d projection and five stride-2 stages.
    g = Generator(128, 128, z_dim=100, d=64)
    assert (g.c0, g.h0, g.w0) == (16 * 64, 4, 4) and stages_for(128, 128) == 5
    convs = [m for m in g.net if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in convs] == [512, 256, 128, 64, 1]
    assert all(m.kernel_size == (5, 5) and m.stride == (2, 2) for m in convs)


def test_critic_has_no_normalisation_layers():
    norm_types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.LayerNorm, nn.GroupNorm)
    for c in (Critic(64, 64, d=4), Critic(64, 64, d=4, n_classes=10)):
        assert not any(isinstance(m, norm_types) for m in c.modules())


def test_bad_sizes_are_errors():
    with pytest.raises(ValueError, match="frames must be an integer >= 8"):
        Generator(64, 7)
    with pytest.raises(ValueError, match="upsample must be"):
        Generator(64, 64, upsample="bicubic")


def test_conditioning_changes_outputs_and_is_required():
    torch.manual_seed(0)
    g = Generator(64, 64, z_dim=8, d=4, n_classes=10)
    c = Critic(64, 64, d=4, n_classes=10)
    z = torch.randn(2, 8)
    a, b = g(z, torch.tensor([1, 1])), g(z, torch.tensor([2, 2]))
    assert not torch.allclose(a, b)
    assert not torch.allclose(c(a, torch.tensor([1, 1])), c(a, torch.tensor([3, 3])))
    with pytest.raises(ValueError, match="conditional"):
        g(z)


class Linear(nn.Module):
    """D(x) = <w, x> + b: its input gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x, labels=None):
        return (x.flatten(1) * self.w).sum(1) + 0.5


def test_gradient_penalty_equals_hand_computed_value():
    w = torch.tensor([3.0, 4.0])  # ‖w‖ = 5 → penalty (5 − 1)² = 16 for every interpolate
    critic = Linear(w)
    real, fake = torch.randn(4, 2), torch.randn(4, 2)
    gp, norms = gradient_penalty(critic, real, fake)
    torch.testing.assert_close(norms, torch.full((4,), 5.0))
    assert float(gp) == pytest.approx(16.0)
    # The penalty is differentiable in the critic's weights: d/dw (‖w‖ − 1)² = 2(‖w‖ − 1) w/‖w‖.
    gp.backward()
    torch.testing.assert_close(critic.w.grad, 2 * 4 * w / 5)


def test_gradient_penalty_uses_per_sample_interpolates():
    class Square(nn.Module):  # D(x) = ½ Σx² → ∇ = x̂, so norms reveal where x̂ was taken
        def forward(self, x, labels=None):
            return 0.5 * (x.flatten(1) ** 2).sum(1)

    real = torch.tensor([[2.0, 0.0], [0.0, 4.0]])
    fake = torch.zeros(2, 2)
    gp, norms = gradient_penalty(Square(), real, fake, eps=torch.tensor([0.5, 0.25]))
    torch.testing.assert_close(norms, torch.tensor([1.0, 1.0]))
    assert float(gp) == pytest.approx(0.0)


def test_critic_losses_and_generator_loss():
    torch.manual_seed(0)
    c = Critic(64, 64, d=4, n_classes=3)
    g = Generator(64, 64, z_dim=8, d=4, n_classes=3)
    labels = torch.tensor([0, 1, 2, 1])
    real = torch.rand(4, 1, 64, 64) * 2 - 1
    fake = g(torch.randn(4, 8), labels)
    out = critic_step_losses(c, real, fake.detach(), labels, gp_weight=10.0)
    wd = c(real, labels).mean() - c(fake.detach(), labels).mean()
    assert float(out["critic/wdist"]) == pytest.approx(float(wd), rel=1e-5)
    assert float(out["critic/loss"]) == pytest.approx(float(-wd + 10 * out["critic/gp"]), rel=1e-5)
    out["critic/loss"].backward()
    assert all(p.grad is not None for p in c.parameters())
    lg = generator_loss(c, fake, labels)
    lg.backward()
    assert all(p.grad is not None for p in g.parameters())


def test_fused_critic_losses_equal_the_three_forward_version():
    torch.manual_seed(0)
    c = Critic(64, 64, d=4, n_classes=3)
    labels = torch.tensor([0, 1, 2, 1])
    real, fake = torch.rand(4, 1, 64, 64) * 2 - 1, torch.rand(4, 1, 64, 64) * 2 - 1
    eps = torch.rand(4)
    fused = fused_critic_losses(c, real, fake, labels, 10.0, eps=eps)
    torch.manual_seed(1)
    gp, norms = gradient_penalty(c, real, fake, labels, eps=eps)
    wd = c(real, labels).mean() - c(fake, labels).mean()
    assert float(fused["critic/gp"]) == pytest.approx(float(gp), rel=1e-4)
    assert float(fused["critic/wdist"]) == pytest.approx(float(wd), rel=1e-4, abs=1e-6)
    assert float(fused["critic/loss"]) == pytest.approx(float(-wd + 10 * gp), rel=1e-4)
    grads_fused = torch.autograd.grad(fused["critic/loss"], list(c.parameters()))
    grads_ref = torch.autograd.grad(-wd + 10 * gp, list(c.parameters()))
    for a, b in zip(grads_fused, grads_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    lazy = fused_critic_losses(c, real, fake, labels, 10.0, with_gp=False)
    assert "critic/gp" not in lazy and float(lazy["critic/loss"]) == pytest.approx(float(-wd), rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("n_mels,frames,grid", [(80, 64, (80, 64)), (100, 64, (112, 64)), (80, 128, (80, 128)),
                                                (64, 50, (64, 56)), (128, 128, (128, 128))])
def test_any_mel_size_is_drawn_on_a_grid_and_cropped(n_mels, frames, grid):
    """Stage one takes the field's 80 mels (and any n_mels, frames >= 8): the generator draws the
    grid and crops it, the critic pads its input to the grid; powers of two are unchanged."""
    from specgan.stage_one.layers import grid_for

    assert grid_for(n_mels, frames)[1:] == grid
    torch.manual_seed(0)
    g = Generator(n_mels, frames, z_dim=8, d=4, n_classes=3, class_prior="mean")
    c = Critic(n_mels, frames, d=4, n_classes=3, detail=1.0)
    y = torch.tensor([0, 2])
    x = g(torch.randn(2, 8), y)
    assert x.shape == (2, 1, n_mels, frames)
    s = c(x, y)
    assert s.shape == (2,) and torch.isfinite(s).all()
    s.sum().backward()  # gradients reach the generator through the crop and the pad
    assert g.fc.weight.grad.abs().sum() > 0
    if grid == (n_mels, frames):
        assert (g.grid_h, g.grid_w) == (n_mels, frames)
