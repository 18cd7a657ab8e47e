"""Issue 13's stage-one levers: DiffAugment, FiLM conditioning, the auxiliary classifier, lazy GP
across iterations, the full-size overlays and the equal-budget ablation tool."""

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from conftest import load_tool, speech_like

from specgan.stage_one.augment import DiffAugment, gain_per_db
from specgan.stage_one.config import AugmentConfig
from specgan.stage_one.losses import fused_critic_losses, gradient_penalty, mode_seeking_loss
from specgan.metrics import harmonicity
from specgan.stage_one.critic import Critic
from specgan.stage_one.generator import Generator
from specgan.stage_one.harmonics import COMB_FLOOR
from specgan.recipe import RecipeError, load_recipe
from specgan.stage_one.config import SpecGANConfig
from specgan.stage_one.data import MelDataset
from specgan.stage_one.trainer import SpecGANTrainer
from vocoder.mel import MelConfig, MelStats

ROOT = Path(__file__).resolve().parent.parent
ALL = ["gain", "translation", "cutout"]


def aug(policy, floor=-1.0, gain_scale=0.05, **kw):
    return DiffAugment(AugmentConfig(policy=policy, **kw), floor, gain_scale)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# -- DiffAugment -------------------------------------------------------------------------------
def test_augment_keeps_the_shape_and_is_the_identity_when_off():
    x = torch.rand(5, 1, 16, 32) * 2 - 1
    assert aug(ALL)(x, gen()).shape == x.shape
    assert torch.equal(aug(ALL, p=0.0)(x, gen()), x)
    assert torch.equal(aug([])(x, gen()), x)


def test_translation_shifts_time_only_and_pads_with_the_floor():
    x = torch.full((64, 1, 16, 32), -1.0)
    x[:, :, 5, :] = 0.7  # one lit mel row across time
    y = aug(["translation"], translation=0.25)(x, gen())
    assert torch.equal(y[:, :, 5, :] == 0.7, (y != -1.0).any(dim=2))  # anything lit is on row 5
    assert torch.all(y[:, :, torch.arange(16) != 5, :] == -1.0)       # the other rows: floor only
    shifts = (y[:, 0, 5] == -1.0).sum(1)
    assert shifts.max() > 0 and shifts.max() <= 8  # some samples shifted, by at most 1/4 of 32 frames
    # a time pattern moves as a whole: a lit frame lands a whole number of frames away
    z = torch.full((8, 1, 16, 32), -1.0)
    z[..., 10] = 0.5
    w = aug(["translation"], translation=0.25)(z, gen(1))
    lit = w[:, 0] == 0.5
    assert torch.all(lit.all(1).sum(1) == 1) and torch.all(lit.sum((1, 2)) == 16)  # one whole frame each


def test_cutout_fills_with_the_per_bin_floor_not_zero():
    floor = torch.linspace(-1.0, -0.6, 16)
    x = torch.full((16, 1, 16, 32), 0.5)
    y = aug(["cutout"], floor=floor, cutout=0.25)(x, gen())
    hole = y != 0.5
    assert torch.all(hole.sum(-1) == 8)  # 1/4 of the frames, every row (a time cutout)
    assert torch.allclose(y[hole], floor.view(1, 1, 16, 1).expand_as(y)[hole])
    rect = aug(["cutout"], floor=-1.0, cutout=0.25, cutout_mels=0.5)(x, gen())
    assert torch.all((rect != 0.5).sum((1, 2, 3)) == 8 * 8)


def test_gain_is_one_shift_per_clip_scaled_per_bin():
    scale = torch.linspace(0.01, 0.02, 16)
    x = torch.rand(32, 1, 16, 8) * 2 - 1
    y = aug(["gain"], gain_scale=scale, gain_db=6.0)(x, gen())
    db = (y - x) / scale.view(1, 1, 16, 1)
    assert torch.allclose(db, db[:, :, :1, :1].expand_as(db), atol=1e-4)  # one dB value per clip
    assert db.abs().max() <= 6.0 + 1e-4 and db.abs().max() > 1.0
    stats = MelStats(np.zeros(4), np.full(4, 2.0), clip_sigma=3.0)
    # 20 dB = x10 in magnitude = ln(10) in a natural-log mel; / (3 sigma) in normalised units
    assert torch.allclose(gain_per_db(stats) * 20, torch.full((4,), np.log(10) / 6.0, dtype=torch.float32))


def test_augment_is_differentiable_and_deterministic_per_stream():
    x = (torch.rand(6, 1, 16, 32) * 2 - 1).requires_grad_(True)
    a = aug(ALL, cutout_mels=0.5)
    a(x, gen()).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert torch.equal(a(x, gen(3)), a(x, gen(3)))


def test_unknown_or_frequency_ops_are_refused():
    with pytest.raises(ValueError, match="unknown op"):
        AugmentConfig(policy=["frequency_shift"])
    with pytest.raises(RecipeError, match="specgan.augment"):
        load_recipe(ROOT / "recipes" / "tiny.yaml", ["specgan.augment.policy=[flip]"])


# -- conditioning ------------------------------------------------------------------------------
def test_film_generator_differs_per_label_at_every_stage():
    torch.manual_seed(0)
    g = Generator(32, 32, z_dim=8, d=4, n_classes=3, embed_dim=4, conditioning="film").eval()  # 3 stages
    seen: list[list[torch.Tensor]] = []
    hooks = [f.register_forward_hook(lambda m, i, o: seen[-1].append(o)) for f in g.film]
    z = torch.randn(1, 8)
    for label in (0, 1):
        seen.append([])
        g(z, torch.tensor([label]))
    for h in hooks:
        h.remove()
    assert len(seen[0]) == len(g.film) == 3  # the dense stage and both hidden upsampling stages
    for a, b in zip(*seen, strict=True):
        assert not torch.allclose(a, b)
    # "input" (the default) has no FiLM weights: the shipped models' names are unchanged
    assert not any("film" in k for k in Generator(16, 32, z_dim=8, d=4, n_classes=3).state_dict())


def test_refine_blocks_are_residual_full_resolution_and_film_modulated():
    torch.manual_seed(0)
    g = Generator(32, 16, z_dim=8, d=4, n_classes=3, embed_dim=4, conditioning="film", refine_blocks=2).eval()
    assert len(g.refine) == 2 and len(g.film) == 2 + 2  # dense + one hidden stage, then one per block
    z = torch.randn(2, 8)
    seen = []
    hook = g.refine[0].register_forward_hook(lambda m, i, o: seen.append(i[0]))
    out = g(z, torch.tensor([0, 1]))
    hook.remove()
    assert out.shape == (2, 1, 32, 16) and out.abs().max() < 1
    assert seen[0].shape == (2, 4, 32, 16)  # the blocks run at the output resolution with d channels
    assert not torch.allclose(seen[0][0], seen[0][1])
    # a block whose second conv is zero is the identity (the residual path)
    block = g.refine[1]
    torch.nn.init.zeros_(block.conv2.weight)
    torch.nn.init.zeros_(block.conv2.bias)
    x = torch.randn(1, 4, 8, 8)
    assert torch.equal(block(x), x)
    # 0 (the default) adds no weights: the shipped models' names are unchanged
    names = set(Generator(16, 32, z_dim=8, d=4, n_classes=3).state_dict())
    assert not any(k.startswith(("refine", "out.")) for k in names)
    with pytest.raises(ValueError, match="refine_blocks"):
        Generator(16, 16, z_dim=8, d=4, refine_blocks=-1)


def test_class_prior_starts_each_label_at_its_mean_and_is_saved_with_the_weights(tmp_path):
    """With the network's output zeroed, tanh(0 + atanh(mean)) is each label's mean training mel
    ("mean") or its mean over time ("profile"); a label without clips stays at 0; the trainer fills
    the prior from its data, the EMA copy has it, and a saved model loads it back."""
    x = torch.zeros(6, 1, 16, 8)
    x[:3] = torch.linspace(-0.9, 0.9, 8)  # label 0: a ramp in time
    x[3:] = -0.5
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    for mode in ("mean", "profile"):
        g = Generator(16, 8, z_dim=8, d=4, n_classes=3, embed_dim=4, class_prior=mode).eval()
        g.prior.fill(x, y)
        last = [m for m in g.net if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
        torch.nn.init.zeros_(last.weight), torch.nn.init.zeros_(last.bias)
        out = g(torch.randn(3, 8), torch.tensor([0, 1, 2]))
        ramp = torch.linspace(-0.9, 0.9, 8).expand(16, 8)
        torch.testing.assert_close(out[0, 0], ramp if mode == "mean" else torch.zeros(16, 8), atol=1e-5, rtol=0)
        torch.testing.assert_close(out[1, 0], torch.full((16, 8), -0.5), atol=1e-5, rtol=0)
        torch.testing.assert_close(out[2, 0], torch.zeros(16, 8))
    with pytest.raises(ValueError, match="class_prior needs labels"):
        Generator(16, 16, z_dim=8, d=4, class_prior="mean")
    with pytest.raises(ValueError, match="class_prior must be"):
        Generator(16, 16, z_dim=8, d=4, n_classes=2, class_prior="yes")
    with pytest.raises(ValueError, match="expected mels"):
        Generator(16, 8, z_dim=8, d=4, n_classes=2, class_prior="mean").prior.fill(torch.zeros(2, 1, 16, 4), y[:2])
    assert not any(k.startswith("prior") for k in Generator(16, 8, z_dim=8, d=4, n_classes=2).state_dict())  # no new tensor

    from specgan.stage_one import load as load_stage_one

    ds = data()
    t = SpecGANTrainer(cfg(), ds, tmp_path / "t", seed=1, mel=MelConfig(n_mels=16), stats=ds.stats.to_dict())
    want = torch.atanh(torch.stack([ds.x[ds.y == c].mean(0) for c in range(3)]).clamp(-0.999, 0.999))
    torch.testing.assert_close(t.G.prior.mean, want)
    torch.testing.assert_close(t.G_ema.prior.mean, want)
    t.export(tmp_path / "m.safetensors")
    torch.testing.assert_close(load_stage_one(tmp_path / "m.safetensors").generator.prior.mean, want)


def _harmonic_generator(**kw):
    mel = MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)
    stats = MelStats(np.full(64, -5.0), np.full(64, 2.0))
    g = Generator(64, 16, z_dim=8, d=4, n_classes=3, embed_dim=4, harmonic=True, **kw)
    g.harmonic.set_geometry(mel, stats)
    return g, mel, stats


def test_harmonic_comb_has_lines_at_the_harmonics_and_is_flat_when_unvoiced():
    """Known answers: at F0 = 125 Hz, voiced, the bands centred on a harmonic (250, 500, 750 Hz)
    stand above the bands centred between two (312, 437 Hz); wide bands (above 4 kHz) and
    unvoiced frames are flat (log(1 + floor)); doubling F0 moves the lines."""
    import librosa

    g, mel, _ = _harmonic_generator()
    centres = librosa.mel_frequencies(66, fmin=0, fmax=8000)[1:-1]
    comb = g.harmonic.comb(torch.tensor([[125.0, 250.0, 125.0]]), torch.tensor([[1.0, 1.0, 0.0]]))[0]
    on = [int(np.argmin(abs(centres - f))) for f in (250, 500, 750)]
    off = [int(np.argmin(abs(centres - f))) for f in (312.5, 437.5)]
    assert min(comb[on, 0]) > max(comb[off, 0]) + 1.0, comb[:20, 0]
    flat = float(np.log(1 + COMB_FLOOR))
    torch.testing.assert_close(comb[:, 2], torch.full((64,), flat))  # unvoiced
    assert int(g.harmonic.comb_bands) < 64 and torch.allclose(comb[int(g.harmonic.comb_bands):, 0], torch.tensor(flat))
    i375 = int(np.argmin(abs(centres - 375)))  # 3·125 Hz, between 250 Hz's harmonics 1 and 2
    assert comb[i375, 0] > comb[i375, 1] + 1.0
    assert all(np.isfinite(comb.numpy()).ravel())


def test_harmonic_head_moves_its_f0_by_gradient_and_survives_save_load(tmp_path):
    """The comb is differentiable in F0: the gradient of a target comb's error pulls F0 toward
    the target. The geometry buffers round-trip through a state dict; an unset head refuses."""
    g, _, _ = _harmonic_generator()
    target = g.harmonic.comb(torch.full((1, 4), 150.0), torch.ones(1, 4)).detach()
    f0 = torch.full((1, 4), 146.0, requires_grad=True)
    ((g.harmonic.comb(f0, torch.ones(1, 4)) - target) ** 2).sum().backward()
    assert (f0.grad < 0).all()  # raising F0 lowers the error
    z, y = torch.randn(2, 8, generator=gen()), torch.tensor([0, 2])
    out = g.eval()(z, y)
    assert out.shape == (2, 1, 64, 16) and out.abs().max() <= 1
    again = Generator(64, 16, z_dim=8, d=4, n_classes=3, embed_dim=4, harmonic=True)
    again.load_state_dict(g.state_dict())
    torch.testing.assert_close(again.eval()(z, y), out)
    with pytest.raises(RuntimeError, match="geometry is unset"):
        Generator(64, 16, z_dim=8, d=4, n_classes=3, embed_dim=4, harmonic=True)(z, y)
    with pytest.raises(ValueError, match="f0_range"):
        Generator(64, 16, z_dim=8, d=4, harmonic=True, f0_range=[400, 60])
    assert Generator(64, 16, z_dim=8, d=4).harmonic is None  # off: no head, no tensors


def test_binned_f0_draws_each_bins_comb_and_its_gradient_picks_the_right_bin():
    """f0_bins: a one-hot weight on a bin draws exactly the regressed comb at that bin's F0; a
    half/half mixture lies between; a target comb's error pulls the logits toward its bin, even
    from the octave below (where a regressed F0 has a local optimum of its own)."""
    g, mel, stats = _harmonic_generator(f0_bins=48)
    reg, _, _ = _harmonic_generator()
    f0s = g.harmonic.bin_f0()
    assert len(f0s) == 48 and f0s[0] == pytest.approx(60.0) and f0s[-1] == pytest.approx(400.0, rel=1e-5)
    k = int(torch.argmin(abs(f0s - 125.0)))
    onehot = torch.zeros(1, 3, 48)
    onehot[0, :, k] = 1.0
    v = torch.tensor([[1.0, 0.4, 0.0]])
    torch.testing.assert_close(g.harmonic.comb(onehot, v), reg.harmonic.comb(f0s[k].expand(1, 3), v))
    j = int(torch.argmin(abs(f0s - 250.0)))
    mix = torch.zeros(1, 1, 48)
    mix[0, 0, [k, j]] = 0.5
    one = torch.ones(1, 1)
    a, b, m = (g.harmonic.comb(w, one) for w in (onehot[:, :1], onehot[:, :1].roll(j - k, -1), mix))
    assert torch.all(m <= torch.maximum(a, b) + 1e-6) and torch.all(m >= torch.minimum(a, b) - 1e-6)
    # the gradient: target = bin j's comb; start from the bin an octave below it, with a little
    # of every bin; the softmax's logit gradient must favour j over k
    target = g.harmonic.comb(onehot[:, :1].roll(j - k, -1), one).detach()
    logits = torch.full((1, 1, 48), -4.0)
    logits[0, 0, k] = 4.0
    logits.requires_grad_(True)
    ((g.harmonic.comb(torch.softmax(logits, -1), one) - target) ** 2).sum().backward()
    assert logits.grad[0, 0, j] < 0 < logits.grad[0, 0, k]  # raise j, lower k
    z, y = torch.randn(2, 8, generator=gen()), torch.tensor([0, 2])
    out = g.eval()(z, y)
    assert out.shape == (2, 1, 64, 16) and out.abs().max() <= 1
    again = Generator(64, 16, z_dim=8, d=4, n_classes=3, embed_dim=4, harmonic=True, f0_bins=48)
    again.load_state_dict(g.state_dict())
    torch.testing.assert_close(again.eval()(z, y), out)
    for bad in (1, -2, 2.5, True):
        with pytest.raises(ValueError, match="f0_bins"):
            Generator(64, 16, z_dim=8, d=4, harmonic=True, f0_bins=bad)
    with pytest.raises(ValueError, match="harmonic: true"):
        Generator(64, 16, z_dim=8, d=4, f0_bins=32)


def test_hard_f0_draws_one_full_comb_and_passes_the_softmax_gradient():
    """f0_hard: the forward draws exactly the comb of the most likely bin (not a mixture), and
    the gradient reaching the logits is the soft mixture's (straight-through): from a head that
    favours the octave below a target comb, the gradient raises the target's bin. Off without
    bins; a non-bool is refused."""
    g, _, _ = _harmonic_generator(f0_bins=48, f0_hard=True)
    soft, _, _ = _harmonic_generator(f0_bins=48)
    f0s = g.harmonic.bin_f0()
    k, j = (int(torch.argmin(abs(f0s - f))) for f in (125.0, 250.0))
    feat = torch.randn(2, g.harmonic.source.in_channels, 32, 8, generator=gen())
    soft.load_state_dict(g.state_dict())
    w_hard, v = g.harmonic.source_params(feat)
    w_soft, v_soft = soft.harmonic.source_params(feat)
    torch.testing.assert_close(v, v_soft)
    torch.testing.assert_close(w_hard.detach(), F.one_hot(w_soft.argmax(-1), 48).float(), atol=1e-6, rtol=0)
    assert float(w_soft.max(-1).values.max()) < 0.99  # the soft head is a real mixture here
    onehot = F.one_hot(torch.tensor([[k]]), 48).float()
    one = torch.ones(1, 1)
    target = g.harmonic.comb(F.one_hot(torch.tensor([[j]]), 48).float(), one).detach()
    logits = torch.full((1, 1, 48), -4.0)
    logits[0, 0, k] = 4.0
    logits.requires_grad_(True)
    drawn = g.harmonic.comb(g.harmonic.bin_weights(logits), one)
    torch.testing.assert_close(drawn, g.harmonic.comb(onehot, one))  # one full comb, at bin k
    ((drawn - target) ** 2).sum().backward()
    assert logits.grad[0, 0, j] < 0 < logits.grad[0, 0, k]
    z, y = torch.randn(2, 8, generator=gen()), torch.tensor([0, 2])
    z.requires_grad_(True)
    g.train()(z, y).sum().backward()
    assert g.harmonic.source.weight.grad is not None and g.harmonic.source.weight.grad[:-1].abs().sum() > 0
    with pytest.raises(ValueError, match="f0_hard picks one of the F0 bins"):
        Generator(64, 16, z_dim=8, d=4, harmonic=True, f0_hard=True)
    with pytest.raises(ValueError, match="f0_hard must be true or false"):
        Generator(64, 16, z_dim=8, d=4, harmonic=True, f0_bins=8, f0_hard=1)


def _comb_mels(f0s_hz, mel, frames=16, voiced=slice(None)):
    """Natural-log mels (N, n_mels, frames): a sloping envelope plus, in the ``voiced`` frames, the
    full-depth comb of each clip's F0 (0.4 × the template's log contrast) over the low bands."""
    from specgan.stage_one.harmonics import harmonic_templates

    tmpl, nb = harmonic_templates(mel, torch.as_tensor(f0s_hz, dtype=torch.float32))
    x = (-2.0 - 0.05 * torch.arange(float(mel.n_mels)))[None, :, None].repeat(len(f0s_hz), 1, frames)
    x[:, :nb, voiced] += 0.4 * tmpl[:, :, None]
    return x.numpy()


def test_f0_tracks_read_a_combs_f0_and_the_bank_interpolates_and_keeps_labels_apart():
    """comb_f0_tracks finds a comb's F0 in its voiced frames (within the 120-F0 grid's 1.6 %
    step) and NaN in flat ones; set_f0_contours interpolates log-F0 across the gaps, holds the
    ends, skips clips with too few harmonic frames, fills each label's rows with its own clips'
    contours (all clips' where a label has none); the forward draws a contour of the clip's label,
    the same comb as imposing it; bad input is refused."""
    from specgan.stage_one.harmonics import comb_f0_tracks

    mel = MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)
    tracks = comb_f0_tracks(_comb_mels([110.0, 220.0], mel, voiced=slice(2, 10)), mel)
    assert tracks.shape == (2, 16) and np.isnan(tracks[:, :2]).all() and np.isnan(tracks[:, 10:]).all()
    np.testing.assert_allclose(tracks[:, 2:10], np.array([[110.0], [220.0]]).repeat(8, 1), rtol=0.017)
    g, _, _ = _harmonic_generator(f0_source="data", f0_contours=6)  # 3 labels × 2 rows
    nan = float("nan")
    f0 = torch.full((4, 16), nan, dtype=torch.float64)
    f0[0, 4:8] = 100.0                               # label 0: flat 100 Hz, held at the ends
    f0[1, [2, 3, 12, 13]] = torch.tensor([100.0, 100.0, 400.0, 400.0], dtype=torch.float64)  # label 0: a rise, log-interpolated
    f0[2, 5:7] = 300.0                               # label 1: too few frames, skipped
    f0[3, :] = 150.0                                 # label 2
    got = g.harmonic.set_f0_contours(f0, torch.tensor([0, 0, 1, 2]))
    assert got == {"clips": 4, "contours": 3, "despiked": 0}
    bank = g.harmonic.f0_bank
    torch.testing.assert_close(bank[0], torch.full((16,), 100.0))
    assert bank[1, 0] == pytest.approx(100.0) and bank[1, -1] == pytest.approx(400.0)
    assert bank[1, 7] == pytest.approx(100.0 * 4 ** (4 / 9), rel=1e-5)  # geometric between 3 and 12
    assert {round(float(v)) for v in bank[2:4, 0]} <= {100, 150}           # label 1 has none: every clip's
    torch.testing.assert_close(bank[4:], torch.full((2, 16), 150.0))
    z = torch.randn(3, 8, generator=gen())
    y = torch.tensor([2, 2, 2])
    drawn = g.eval()(z, y)
    torch.testing.assert_close(drawn, g(z, y, f0=torch.full((3, 16), 150.0)))
    assert not torch.allclose(drawn, g(z, y, f0=torch.full((3, 16), 75.0)))
    again = Generator(64, 16, z_dim=8, d=4, n_classes=3, embed_dim=4, harmonic=True, f0_source="data", f0_contours=6)
    again.load_state_dict(g.state_dict())  # the bank travels with the weights
    torch.testing.assert_close(again.eval()(z, y), drawn)
    zs = torch.randn(64, 8, generator=gen(1))  # the first latent picks the row: both of label 0's are drawn
    picked = g.harmonic.draw_f0(zs, torch.zeros(64, dtype=torch.long))[:, -1]
    assert set(picked.round().tolist()) == {100.0, 400.0}
    torch.testing.assert_close(g.harmonic.draw_f0(zs[:5], None), g.harmonic.draw_f0(zs, None)[:5])  # whatever the batch
    with pytest.raises(ValueError, match="no clip has 4 harmonic frames"):
        g.harmonic.set_f0_contours(torch.full((2, 16), nan), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"expected F0 tracks \(N, 16\)"):
        g.harmonic.set_f0_contours(torch.full((2, 15), 100.0), torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="F0 bank is empty"):
        _harmonic_generator(f0_source="data")[0](z, y)
    with pytest.raises(ValueError, match="f0_source must be"):
        Generator(64, 16, z_dim=8, d=4, harmonic=True, f0_source="pyin")
    with pytest.raises(ValueError, match="f0_bins: 0"):
        Generator(64, 16, z_dim=8, d=4, harmonic=True, f0_bins=8, f0_source="data")
    with pytest.raises(ValueError, match="forward\\(f0=...\\) needs a harmonic head"):
        Generator(64, 16, z_dim=8, d=4, n_classes=3, embed_dim=4)(z, y, f0=torch.full((3, 16), 150.0))


def test_f0_despike_drops_octave_errors_keeps_glides_and_fills_the_bank_without_them():
    """despike_f0 drops a harmonic frame an octave (or a subharmonic) away from its neighbours'
    median, keeps a steady glide of 8 semitones over 12 frames and clips too short to judge; with
    generator.f0_despike the bank interpolates across the dropped frames."""
    from specgan.stage_one.harmonics import despike_f0

    nan = float("nan")
    f0 = torch.full((3, 16), nan, dtype=torch.float64)
    f0[0, 2:14] = 100.0
    f0[0, 6] = 200.0                                            # an octave error
    f0[0, 9] = 50.0                                             # a subharmonic one
    f0[1, 2:14] = 100.0 * 2 ** (torch.arange(12, dtype=torch.float64) * (8 / 11) / 12)  # a glide
    f0[2, [3, 9]] = torch.tensor([100.0, 300.0], dtype=torch.float64)  # two frames: nothing to trust
    out, dropped = despike_f0(f0, 5.0)
    assert dropped == 2 and torch.isnan(out[0, [6, 9]]).all()
    keep = torch.isfinite(f0)
    keep[0, [6, 9]] = False
    torch.testing.assert_close(out[keep], f0[keep])
    assert torch.isfinite(out).sum() == torch.isfinite(f0).sum() - 2
    with pytest.raises(ValueError, match="window must be odd"):
        despike_f0(f0, 5.0, window=4)
    g, _, _ = _harmonic_generator(f0_source="data", f0_contours=3, f0_despike=5.0)
    got = g.harmonic.set_f0_contours(f0, torch.tensor([0, 1, 2]))
    assert got == {"clips": 3, "contours": 2, "despiked": 2}
    torch.testing.assert_close(g.harmonic.f0_bank[0], torch.full((16,), 100.0))  # the errors interpolated over
    raw, _, _ = _harmonic_generator(f0_source="data", f0_contours=3)
    raw.harmonic.set_f0_contours(f0, torch.tensor([0, 1, 2]))
    assert float(raw.harmonic.f0_bank[0, 6]) == pytest.approx(200.0)  # without it, the error is a contour
    for bad in (-1.0, True, "5"):
        with pytest.raises(ValueError, match="f0_despike must be"):
            Generator(64, 16, z_dim=8, d=4, harmonic=True, f0_source="data", f0_despike=bad)
    with pytest.raises(ValueError, match="set f0_source: data"):
        Generator(64, 16, z_dim=8, d=4, harmonic=True, f0_despike=5.0)


@pytest.mark.parametrize("conditioning", ["film", "input"])
def test_f0_input_starts_as_the_model_without_it_and_then_follows_the_contour(conditioning):
    """f0_input: with its weights at their zero start the output equals the same generator
    without the input (so does the shipped FiLM path's stage order); once they are set, a change
    of contour changes the output away from the harmonic comb too (the network sees it), and
    the contour reaches every stage's weight through the gradient."""
    kw = dict(f0_source="data", f0_contours=6, conditioning=conditioning, refine_blocks=1)
    g, mel, stats = _harmonic_generator(f0_input=True, **kw)
    plain, _, _ = _harmonic_generator(**kw)
    f0 = torch.full((4, 16), 150.0, dtype=torch.float64)
    for m in (g, plain):
        m.harmonic.set_f0_contours(f0, torch.tensor([0, 1, 2, 0]))
    missing, unexpected = plain.load_state_dict(g.state_dict(), strict=False)
    assert not missing and all(k.startswith("f0_in.") for k in unexpected) and len(unexpected) == len(g.f0_in)
    z, y = torch.randn(3, 8, generator=gen()), torch.tensor([0, 1, 2])
    torch.testing.assert_close(g.eval()(z, y), plain.eval()(z, y))
    low, high = torch.full((3, 16), 80.0), torch.full((3, 16), 300.0)
    g(z, y, f0=high).sum().backward()
    assert all(float(m.proj.weight.grad.abs().sum()) > 0 for m in g.f0_in)
    with torch.no_grad():
        for m in g.f0_in:
            m.proj.weight.fill_(0.5)
    g.zero_grad()
    # above the comb's bands (flat there) only the network can tell the two contours apart
    top = int(g.harmonic.comb_bands)
    assert not torch.allclose(g(z, y, f0=low)[:, :, top:], g(z, y, f0=high)[:, :, top:])
    torch.testing.assert_close(g.harmonic.f0_feature(torch.tensor([[60.0, 400.0, 1000.0]])),
                               torch.tensor([[[-1.0, 1.0, 1.0]]]))
    with pytest.raises(ValueError, match=r"f0 must be \(batch, frames\) \(3, 16\), got \(3, 15\)"):
        g(z, y, f0=torch.full((3, 15), 150.0))
    with pytest.raises(ValueError, match="f0_input feeds the network"):
        Generator(64, 16, z_dim=8, d=4, harmonic=True, f0_input=True)


def test_the_salience_channel_peaks_at_the_f0_of_a_comb_and_is_zero_without_ripple():
    """Known answers on 64 mels at 16 kHz: a normalised mel whose low bands are the comb of 130 Hz
    on a sloping envelope gives each frame's salience column its maximum at the row of 130 Hz
    (the rows are 64 F0s over 60-400 Hz), of the size of the frame's ripple (correlation 1);
    a spectrum without ripple gives 0 everywhere; the channel is the critic's third input when
    detail is on too; an unset geometry and bad settings are refused."""
    from specgan.stage_one.harmonics import harmonic_templates

    mel = MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)
    stats = MelStats(np.full(64, -5.0), np.full(64, 2.0), clip_sigma=3.0)
    critic = Critic(64, 16, d=4, salience=1.0)
    assert critic.net[0].in_channels == 2 and Critic(64, 16, d=4, salience=1.0, detail=2.0).net[0].in_channels == 3
    with pytest.raises(RuntimeError, match="salience geometry is unset"):
        critic(torch.zeros(1, 1, 64, 16))
    critic.set_salience_geometry(mel, stats)
    rows = torch.logspace(math.log10(60), math.log10(400), 64)
    k = int(torch.argmin(abs(rows - 130)))
    tmpl, nb = harmonic_templates(mel, rows[k : k + 1])
    logmel = -2.0 - 0.05 * torch.arange(64.0)
    logmel[:nb] += 0.4 * tmpl[0]
    x = torch.as_tensor(stats.normalize(logmel.numpy()[:, None]), dtype=torch.float32).view(1, 1, 64, 1).expand(2, 1, 64, 16)
    sal = critic.pitch_salience(x)
    assert sal.shape == (2, 1, 64, 16) and torch.all(sal[0, 0].argmax(0) == k)
    # the peak is the frame's ripple norm (the same ripple metrics.comb_fit takes)
    from specgan.stage_one.harmonics import low_band_ripple

    d, _ = low_band_ripple(logmel.double().numpy()[None, :, None], 30, 7, 30.0, "test")
    assert float(sal[0, 0, k, 0]) == pytest.approx(float(np.linalg.norm(d)), rel=1e-4)
    ramp = torch.as_tensor(stats.normalize((-2.0 - 0.05 * torch.arange(64.0)).numpy()[:, None]), dtype=torch.float32)
    assert critic.pitch_salience(ramp.view(1, 1, 64, 1)).abs().max() < 1e-4
    assert torch.isfinite(critic(x)).all()
    for bad in ({"salience": -1.0}, {"salience": 1.0, "salience_range": [400, 60]},
                {"salience": 1.0, "detail_width": 4}):
        with pytest.raises(ValueError, match="salience|detail_width"):
            Critic(64, 16, d=4, **bad)
    with pytest.raises(ValueError, match="no salience"):
        Critic(64, 16, d=4).set_salience_geometry(mel, stats)


def test_aux_classifier_learns_a_separable_toy_and_its_loss_is_finite():
    torch.manual_seed(0)
    x = torch.full((32, 1, 16, 16), -1.0)
    y = torch.arange(32) % 2
    x[y == 0, :, :4] = 0.8   # class 0: low bins lit
    x[y == 1, :, -4:] = 0.8  # class 1: high bins lit
    critic = Critic(16, 16, d=4, n_classes=2, aux_classifier=True)
    opt = torch.optim.Adam(critic.parameters(), 1e-2)
    for _ in range(30):
        _, logits = critic(x, y, return_logits=True)
        loss = torch.nn.functional.cross_entropy(logits, y)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (critic(x, y, return_logits=True)[1].argmax(1) == y).float().mean() == 1.0


def test_the_gradient_penalty_is_on_the_score_alone_with_the_aux_head():
    torch.manual_seed(0)
    critic = Critic(16, 16, d=4, n_classes=3, aux_classifier=True)
    real, fake = torch.rand(6, 1, 16, 16) * 2 - 1, torch.rand(6, 1, 16, 16) * 2 - 1
    labels, eps = torch.tensor([0, 1, 2, 0, 1, 2]), torch.rand(6)
    with_aux = fused_critic_losses(critic, real, fake, labels, 10.0, eps=eps, aux_weight=2.0)
    without = fused_critic_losses(critic, real, fake, labels, 10.0, eps=eps)
    gp, _ = gradient_penalty(critic, real, fake, labels, eps)
    torch.testing.assert_close(with_aux["critic/gp"], gp.detach())
    torch.testing.assert_close(with_aux["critic/gp"], without["critic/gp"])
    torch.testing.assert_close(with_aux["critic/loss"], without["critic/loss"] + 2.0 * with_aux["critic/aux_ce"])
    # and the norm is that of d score / d x (by hand)
    x_hat = (eps.view(6, 1, 1, 1) * real + (1 - eps.view(6, 1, 1, 1)) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x_hat, labels).sum(), x_hat)
    torch.testing.assert_close(with_aux["critic/grad_norm"], g.flatten(1).norm(dim=1).mean())


def test_the_detail_channel_is_the_fine_structure_along_frequency():
    critic = Critic(32, 16, d=4, detail=4.0, detail_width=7)
    assert critic.net[0].in_channels == 2 and Critic(32, 16, d=4).net[0].in_channels == 1
    flat = torch.full((2, 1, 32, 16), -0.3)
    torch.testing.assert_close(critic.fine_structure(flat), torch.zeros_like(flat))
    ramp = torch.linspace(-1, 1, 32).view(1, 1, 32, 1).expand(2, 1, 32, 16)
    torch.testing.assert_close(critic.fine_structure(ramp)[:, :, 3:-3], torch.zeros(2, 1, 26, 16))
    # a comb with 3 bands between lines survives at nearly full depth, on top of any envelope
    comb = (torch.arange(32) % 4 == 0).float().view(1, 1, 32, 1).expand(2, 1, 32, 16)
    fs = critic.fine_structure(2.0 * comb + ramp)[0, 0, 4:-4, 0]
    assert (fs[::4] > 1.2).all() and (fs.view(-1, 4)[:, 1:] < -0.2).all()
    # the critic sees it: its score moves with the comb's depth when the mel channel's weights are zero
    with torch.no_grad():
        critic.net[0].weight[:, 0] = 0
    assert not torch.allclose(critic(ramp), critic(ramp + 0.5 * comb))
    with torch.no_grad():
        critic.net[0].weight[:, 1] = 0
    torch.testing.assert_close(critic(ramp), critic(ramp + 0.5 * comb))  # and only through that channel
    for bad in ({"detail": -1.0}, {"detail": 1.0, "detail_width": 4}, {"detail": 1.0, "detail_width": 1}):
        with pytest.raises(ValueError, match="detail"):
            Critic(32, 16, d=4, **bad)


# -- the trainer ---------------------------------------------------------------------------------
def data(n=12, n_mels=16, frames=15, seed=0):
    rng = np.random.default_rng(seed)
    mels = [rng.normal(-5, 2, (n_mels, frames)).astype(np.float32) for _ in range(n)]
    labels = ["a", "b", "c"] * (n // 3)
    stats = MelStats(np.full(n_mels, -5.0), np.full(n_mels, 2.0))
    return MelDataset(mels, labels, stats, frames=16, floor_log=float(np.log(1e-5)))


def cfg(**kw):
    base = dict(frames=16, generator={"name": "specgan", "z_dim": 8, "d": 4, "embed_dim": 4, "conditioning": "film",
                                      "upsample": "nearest", "refine_blocks": 1, "class_prior": "mean"},
                critic={"name": "specgan", "d": 4, "aux_classifier": True, "detail": 4.0, "detail_width": 5},
                aux_weight=1.0,
                augment=AugmentConfig(policy=ALL), batch_size=4, n_critic=2, gp_every=3, lr_d=4e-4, steps=4,
                mode_seeking=1.0,
                log_every=1, save_every=2, sample_every=100)
    return SpecGANConfig(**{**base, **kw})


def test_every_lever_on_resumes_exactly(tmp_path):
    whole = SpecGANTrainer(cfg(), data(), tmp_path / "a", seed=1)
    whole.fit(progress=False, tensorboard=False)
    part = SpecGANTrainer(cfg(), data(), tmp_path / "b", seed=1)
    part.fit(steps=2, progress=False, tensorboard=False)
    resumed = SpecGANTrainer(cfg(), data(), tmp_path / "b", seed=1)
    resumed.resume()
    assert resumed.step == 2
    resumed.fit(progress=False, tensorboard=False)
    for a, b in zip(whole.G_ema.state_dict().values(), resumed.G_ema.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    hist = [json.loads(line) for line in open(tmp_path / "b" / "history.jsonl")]
    assert {"critic/aux_ce", "gen/aux_ce", "gen/adv", "gen/mode_seeking"} <= set(hist[-1])
    assert np.isfinite([h["gen/loss"] for h in hist]).all()


@pytest.mark.parametrize(("f0_bins", "f0_hard"), [(0, False), (24, False), (24, True)])
def test_the_trainer_fills_the_harmonic_geometry_and_resumes_exactly(tmp_path, f0_bins, f0_hard):
    mel = MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=16)
    stats = MelStats(np.full(16, -5.0), np.full(16, 2.0)).to_dict()
    c = cfg(generator={"name": "specgan", "z_dim": 8, "d": 4, "embed_dim": 4, "conditioning": "film",
                       "upsample": "nearest", "harmonic": True, "f0_range": [80, 300], "f0_bins": f0_bins,
                       "f0_hard": f0_hard},
            critic={"name": "specgan", "d": 4, "aux_classifier": True, "salience": 1.0 if f0_bins else 0.0,
                    "detail_width": 5})
    whole = SpecGANTrainer(c, data(), tmp_path / "a", seed=1, mel=mel, stats=stats)
    assert float(whole.G_ema.harmonic.comb_sigma) == pytest.approx(0.85 * 16000 / 1024) and int(whole.G_ema.harmonic.comb_bands) > 0
    if f0_bins:  # the bins' combs are filled: 16 wide bands resolve the high F0s' lines, flat (1) above 4 kHz
        bank, nb = whole.G_ema.harmonic.comb_bank, int(whole.G_ema.harmonic.comb_bands)
        assert bank[-1, :nb].std() > 0.1 and torch.all(bank[:, nb:] == 1)
        assert whole.D.salience_map.abs().sum() > 0  # and the critic's salience map
    whole.fit(progress=False, tensorboard=False)
    part = SpecGANTrainer(c, data(), tmp_path / "b", seed=1, mel=mel, stats=stats)
    part.fit(steps=2, progress=False, tensorboard=False)
    resumed = SpecGANTrainer(c, data(), tmp_path / "b", seed=1, mel=mel, stats=stats)
    resumed.resume()
    resumed.fit(progress=False, tensorboard=False)
    for a, b in zip(whole.G_ema.state_dict().values(), resumed.G_ema.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="harmonic needs the mel config"):
        SpecGANTrainer(c, data(), tmp_path / "c", seed=1)


def test_the_trainer_fills_the_f0_bank_from_the_training_mels_and_resumes_exactly(tmp_path):
    """f0_source: data: the trainer reads each training clip's harmonic frames' F0 (label a:
    combs of 110 Hz, b: 220 Hz) into each label's bank rows; a resumed run equals an
    uninterrupted one (the contour draws come from the saved torch generator state)."""
    mel = MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)
    stats = MelStats(np.full(64, -4.0), np.full(64, 2.0))
    logmels = _comb_mels([110.0, 220.0] * 4, mel)
    ds = lambda: MelDataset(list(logmels.astype(np.float32)), ["a", "b"] * 4, stats, frames=16,  # noqa: E731
                            floor_log=float(np.log(1e-5)))
    c = cfg(generator={"name": "specgan", "z_dim": 8, "d": 4, "embed_dim": 4, "conditioning": "film",
                       "upsample": "nearest", "harmonic": True, "f0_source": "data", "f0_contours": 8,
                       "f0_input": True},
            critic={"name": "specgan", "d": 4, "aux_classifier": True}, frames=16)
    whole = SpecGANTrainer(c, ds(), tmp_path / "a", seed=1, mel=mel, stats=stats.to_dict())
    assert whole.prepared["G"]["f0_bank"] == {"clips": 8, "contours": 8, "despiked": 0}
    np.testing.assert_allclose(whole.G_ema.harmonic.f0_bank[:4].numpy(), 110.0, rtol=0.017)
    np.testing.assert_allclose(whole.G_ema.harmonic.f0_bank[4:].numpy(), 220.0, rtol=0.017)
    whole.fit(progress=False, tensorboard=False)
    part = SpecGANTrainer(c, ds(), tmp_path / "b", seed=1, mel=mel, stats=stats.to_dict())
    part.fit(steps=2, progress=False, tensorboard=False)
    resumed = SpecGANTrainer(c, ds(), tmp_path / "b", seed=1, mel=mel, stats=stats.to_dict())
    resumed.resume()
    resumed.fit(progress=False, tensorboard=False)
    for a, b in zip(whole.G_ema.state_dict().values(), resumed.G_ema.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_the_augment_uses_the_datasets_floor(tmp_path):
    ds = data()
    tr = SpecGANTrainer(cfg(), ds, tmp_path)
    assert torch.equal(tr.augment.floor, ds.floor) and torch.all(ds.floor == -1.0)


def test_lazy_gp_counts_critic_steps_across_iterations(tmp_path):
    tr = SpecGANTrainer(cfg(n_critic=1, gp_every=2, augment=AugmentConfig()), data(), tmp_path)
    with_gp = []
    for step in range(4):
        tr.step = step
        with_gp.append("critic/gp" in tr.train_step(tr.next_batch()))
    assert with_gp == [True, False, True, False]


def test_mode_seeking_known_answers():
    z = torch.randn(6, 8, generator=gen())
    same = torch.zeros(6, 1, 4, 4)
    assert mode_seeking_loss(same, z).item() == pytest.approx(1e5)  # noise ignored: 1 / eps
    w = torch.randn(8, 16, generator=gen(1))
    fake = (z @ w).view(6, 1, 4, 4)  # different noise, different output
    ratio = (fake[:3] - fake[3:]).abs().mean() / (z[:3] - z[3:]).abs().mean()
    assert mode_seeking_loss(fake, z).item() == pytest.approx(1 / (ratio.item() + 1e-5))
    assert mode_seeking_loss(2 * fake, z).item() == pytest.approx(1 / (2 * ratio.item() + 1e-5))
    odd = torch.cat([fake, torch.randn(1, 1, 4, 4)]), torch.cat([z, torch.randn(1, 8)])
    assert mode_seeking_loss(*odd).item() == pytest.approx(mode_seeking_loss(fake, z).item())  # the odd one out unused
    fake.requires_grad_(True)
    mode_seeking_loss(fake, z).backward()  # pushes the paired outputs apart
    assert ((fake.grad[:3] * (fake[:3] - fake[3:]).detach()) <= 0).all()
    with pytest.raises(ValueError, match="two generated"):
        mode_seeking_loss(fake[:1], z[:1])


def test_mode_seeking_pairs_each_generator_item_with_one_of_the_same_label(tmp_path, monkeypatch):
    tr = SpecGANTrainer(cfg(batch_size=5, augment=AugmentConfig()), data(), tmp_path)
    seen = []
    real_fake = tr._fake
    monkeypatch.setattr(tr, "_fake", lambda z, labels: seen.append(labels.clone()) or real_fake(z, labels))
    out = tr.train_step(tr.next_batch())
    gen_labels = seen[-1]  # the generator step's (after n_critic critic steps)
    assert len(gen_labels) == 5 and torch.equal(gen_labels[:2], gen_labels[2:4])
    assert torch.isfinite(out["gen/mode_seeking"]) and out["gen/mode_seeking"] > 0
    with pytest.raises(ValueError, match="mode_seeking: must be >= 0"):
        cfg(mode_seeking=-1.0)
    with pytest.raises(ValueError, match="batch_size >= 2"):
        cfg(batch_size=1)


def test_aux_weight_and_the_head_go_together():
    with pytest.raises(ValueError, match="aux_classifier"):
        cfg(critic={"name": "specgan", "d": 4})
    with pytest.raises(ValueError, match="aux_weight > 0"):
        cfg(aux_weight=0.0)


# -- the full-size overlays ----------------------------------------------------------------------
@pytest.mark.slow  # full-size models: 6-10 s each
@pytest.mark.parametrize("overlay", ["sc09", "nsynth"])
def test_full_size_overlays_build_and_take_one_step(overlay, tmp_path):
    """The published sizes (128 x 128, d 64) built and trained one step on tiny data; only the
    batch (2) and the critic steps (1) are cut, so the step takes seconds on a CPU."""
    from vocoder.registry import build_critic

    recipe = load_recipe(ROOT / "recipes" / f"{overlay}.yaml")
    sc = recipe.specgan
    assert (sc.generator["d"], sc.critic["d"], sc.frames, recipe.mel.n_mels, sc.batch_size) == (64, 64, 128, 128, 64)
    assert all(c["width"] == 1.0 for c in recipe.vocoder.critics)
    # NSynth's notes are cut at 1 s while they sound: faded, so the model never learns the cut
    assert recipe.data.preprocess.fade_out == (0.03 if overlay == "nsynth" else None)
    for spec in recipe.vocoder.critics:
        assert sum(p.numel() for p in build_critic(spec).parameters()) > 0
    n_mels = recipe.mel.n_mels
    rng = np.random.default_rng(0)
    harmonic = sc.generator.get("f0_source") == "data"  # speech: the F0 bank is read off the data
    assert harmonic == (overlay == "sc09")
    if harmonic:  # combs at 4 F0s, so that the bank has contours to hold
        mels = list(_comb_mels([110.0, 150.0, 180.0, 220.0], recipe.mel, frames=126).astype(np.float32))
    else:
        mels = [rng.normal(-5, 2, (n_mels, 126)).astype(np.float32) for _ in range(4)]
    stats = MelStats(np.full(n_mels, -5.0), np.full(n_mels, 2.0))
    keys = recipe.data.label_keys  # nsynth: pitch x instrument family, both embedded
    assert keys == (["word"] if overlay == "sc09" else ["pitch", "instrument_family_str"])
    labels = ["x", "y"] * 2 if len(keys) == 1 else [(60, "string"), (64, "brass"), (60, "brass"), (67, "string")]
    ds = MelDataset(mels, labels, stats, sc.frames, recipe.mel.log_floor, keys=keys)
    tr = SpecGANTrainer(dataclasses.replace(sc, batch_size=2, n_critic=1), ds, tmp_path, mel=recipe.mel,
                        stats=stats.to_dict())
    assert tr.G.c0 == 64 * 16 and tr.G.film is not None and tr.D.aux is not None
    assert tr.G.label_sizes == tr.D.label_sizes == ([2] if len(keys) == 1 else [3, 2])
    if harmonic:
        assert tr.prepared["G"]["f0_bank"] == {"clips": 4, "contours": 4, "despiked": 0}
        assert int(tr.G.harmonic.comb_bands) > 0
    else:  # music: each pitch's mean mel as the prior, and mode seeking
        assert tr.G.class_prior == "mean" and sc.mode_seeking == 1.0
    out = tr.train_step(tr.next_batch())
    assert all(torch.isfinite(v) for v in out.values())


# -- harmonicity ---------------------------------------------------------------------------------
def test_harmonicity_known_answers():
    sr = 16000
    t = np.arange(sr) / sr
    tone = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 11))
    noise = np.random.default_rng(0).standard_normal(sr)
    assert harmonicity([tone], sr)["periodicity"] > 0.95 and harmonicity([tone], sr)["voiced_fraction"] == 1.0
    h = harmonicity([noise], sr)
    assert h["periodicity"] < 0.3 and h["voiced_fraction"] == 0.0 and np.isnan(h["voiced_periodicity"])
    half = np.concatenate([tone[: sr // 2] / np.abs(tone).max(), noise[sr // 2 :] / np.abs(noise).max()])
    assert 0.4 < harmonicity([half], sr)["voiced_fraction"] < 0.6
    silent = np.concatenate([np.zeros(sr // 2), tone[: sr // 2]])  # silence is not counted
    assert harmonicity([silent], sr)["voiced_fraction"] > 0.9


# -- the ablation tool, end to end on a tiny prepared corpus --------------------------------------
@pytest.mark.slow
def test_ablation_tool_end_to_end(tmp_path):
    from specgan.cli import main

    sr = 16000
    for k, label in enumerate(("one", "two", "three")):
        (tmp_path / "audio" / label).mkdir(parents=True)
        for i in range(5):
            sf.write(tmp_path / "audio" / label / f"{i}.wav", speech_like(sr, 1.0, seed=10 * k + i), sr)
    work = tmp_path / "work"
    sets = [f"work_dir={work}", f"data.source={tmp_path / 'audio'}", "data.label_from_subfolder=true",
            "data.label=folder", "data.dev_fraction=0.2", "data.test_fraction=0.2", "evaluate.speech=true"]
    common = ["--recipe", str(ROOT / "recipes" / "tiny.yaml")] + [a for s in sets for a in ("--set", s)]
    for cmd in (["prepare"], ["features"]):
        assert main([*cmd, *common]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    tool = [sys.executable, str(ROOT / "tools" / "ablate_specgan.py"), *common, "--cpu-minutes", "0.03",
            "--only", "baseline,combined", "--jobs", "2"]
    r = subprocess.run(tool, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    table = (work / "ablation-specgan" / "table.md").read_text()
    assert "| baseline |" in table and "| combined |" in table and "periodicity (real)" in table
    for name in ("baseline", "combined"):
        res = json.loads((work / "ablation-specgan" / name / "result.json").read_text())
        assert res["step"] > 0 and 0 <= res["label_accuracy"] <= 1 and res["fid"] >= 0
        assert res["cpu_minutes"] >= 0.02 and np.isfinite(res["periodicity_real"])
        assert res["ripple_contrast"] > 0 and -1 <= res["ripple_time_corr"] <= 1 and res["ripple_contrast_real"] > 0
    assert "ripple frame-to-frame corr. (real)" in table and "voiced fraction (real)" in table
    # the low-band comparison figure reads the same work dir: one real row and one per model
    png = tmp_path / "low.png"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "low_bands.py"), *common, "--out", str(png), "--n", "2",
                        "--bands", "12", *(str(work / "ablation-specgan" / n / "model.safetensors")
                                          for n in ("baseline", "combined"))],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    from PIL import Image

    title = Image.open(png).text["Title"]
    assert title.startswith("lowest 12 mel bands") and "held-out real; baseline (step" in title and "combined" in title
    # resumable: a second call with the budget spent trains nothing more (in-process: no retraining,
    # no rescoring, the stored result comes back)
    steps = json.loads((work / "ablation-specgan" / "baseline" / "result.json").read_text())["step"]
    tool_mod = load_tool("ablate_specgan")
    args = argparse.Namespace(recipe=str(ROOT / "recipes" / "tiny.yaml"), set=sets, work_dir=None, cpu_minutes=0.03,
                              n_generated=None, branch_from=None)
    state = (work / "ablation-specgan" / "baseline" / "state.pt").stat().st_mtime_ns
    assert tool_mod.run_one(args, "baseline")["step"] == steps
    assert (work / "ablation-specgan" / "baseline" / "state.pt").stat().st_mtime_ns == state
    # a larger budget resumes the same run (not set aside, not restarted) and keeps each budget's point
    r = subprocess.run([*tool[:-8], "--cpu-minutes", "0.06", "--only", "baseline", "--jobs", "1"],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((work / "ablation-specgan" / "baseline" / "result.json").read_text())
    assert res["step"] > steps and res["cpu_minutes"] >= 0.06 - 1 / 60
    assert "| combined |" in (work / "ablation-specgan" / "table.md").read_text()  # earlier results stay
    assert not (work / "ablation-specgan" / "baseline.prev").exists()
    assert (work / "ablation-specgan" / "baseline" / "result-0min.json").is_file()
    # --branch-from: a lever starts from another candidate's last checkpoint, its CPU time counted
    base_step = json.loads((work / "ablation-specgan" / "baseline" / "result.json").read_text())["step"]
    branched = tool_mod.run_one(argparse.Namespace(**{**vars(args), "cpu_minutes": 0.09, "branch_from": "baseline"}),
                                "augment")
    start = json.loads((work / "ablation-specgan" / "augment" / "branched_from.json").read_text())
    assert start["from"] == "baseline" and start["step"] == base_step
    assert base_step < branched["step"] and branched["cpu_minutes"] >= 0.09 - 1 / 60
    hist = [json.loads(line) for line in open(work / "ablation-specgan" / "augment" / "history.jsonl")]
    assert hist[0]["step"] < base_step < hist[-1]["step"]  # one history: the source's, then the branch's
    import fcntl

    with open(work / "ablation-specgan" / "baseline" / ".train.lock", "w") as held:  # another process on it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code = subprocess.run([*tool[:-8], "--cpu-minutes", "0.09", "--only", "baseline", "--jobs", "1"],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
        assert code.returncode != 0 and "baseline is being trained or scored by another process" in code.stderr
    with pytest.raises(ValueError, match="was trained with another model"):  # FiLM: another generator
        tool_mod.run_one(argparse.Namespace(**{**vars(args), "cpu_minutes": 0.09, "branch_from": "baseline"}), "film")
    # --curves: each candidate's scored budgets against CPU time, and the critic's estimate
    abl = work / "ablation-specgan"
    assert [len(tool_mod.budget_points(abl / n)) for n in ("baseline", "combined", "film")] == [1, 1, 0]
    png = tool_mod.plot_curves(abl, ["baseline", "combined", "film"], tmp_path / "curves.png", "tiny")
    assert Image.open(png).text["Title"] == "stage one against CPU time (tiny)"
    with pytest.raises(SystemExit, match="no scored budgets"):
        tool_mod.plot_curves(abl, ["film"], tmp_path / "none.png", "tiny")


def test_ema_rampup_known_answers():
    """Fixed decay: weight 1 - decay at every step; with the ramp-up the horizon is at most
    rampup x steps, so after 1,250 steps at 0.999 the first weights count e^-10-ish, not 0.29."""
    from specgan.stage_one.trainer import ema_weight

    assert ema_weight(0.999, 0.0, 1) == pytest.approx(1e-3)
    assert ema_weight(0.999, 0.1, 1) == 1.0            # horizon 1: the EMA starts as G itself
    assert ema_weight(0.999, 0.1, 500) == pytest.approx(1 / 50)
    assert ema_weight(0.999, 0.1, 20_000) == pytest.approx(1e-3)   # the ramp ends at the set decay
    assert ema_weight(0.0, 0.1, 7) == 1.0
    for rampup, expect_below in ((0.0, None), (0.1, 1e-3)):
        keep = 1.0
        for step in range(1, 1251):
            keep *= 1 - ema_weight(0.999, rampup, step)
        if expect_below is None:
            assert keep == pytest.approx(0.999**1250)   # 0.286
        else:
            assert keep < expect_below


def test_the_high_band_critic_sees_only_the_bands_above_its_frequency_with_its_own_projection():
    mel = MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64)
    critic = Critic(64, 32, d=4, n_classes=3, high_band=1.0, high_band_hz=3000.0)
    x = torch.randn(2, 1, 64, 32)
    labels = torch.tensor([0, 1])
    with pytest.raises(RuntimeError, match="high band is unset"):
        critic(x, labels)
    said = critic.prepare(None, mel, None)["critic_high_band"]
    start = int(critic.high_band_start)
    centres = mel.band_centres_hz()
    assert centres[start] >= 3000 > centres[start - 1] and said.startswith(f"bands {start}-63")
    with torch.no_grad():  # the main critic silenced: what is left is the high-band critic
        for p in [*critic.net.parameters(), *critic.fc.parameters(), critic.embed.weight]:
            p.zero_()
    base = critic(x, labels)
    low, high = x.clone(), x.clone()
    low[:, :, :start] += 1.0
    high[:, :, start:] += 1.0
    torch.testing.assert_close(critic(low, labels), base)  # blind below its band
    assert not torch.allclose(critic(high, labels), base)
    assert not torch.allclose(critic(x, torch.tensor([2, 2])), base)  # the label speaks on the high band
    with pytest.raises(ValueError, match="high_band_hz.*lower it"):
        Critic(64, 32, d=4, high_band=1.0, high_band_hz=7900.0).prepare(None, mel, None)
    with pytest.raises(ValueError, match="high_band"):
        Critic(64, 32, d=4, high_band=-1.0)
    assert not hasattr(Critic(64, 32, d=4), "hi_net")  # off: the critic and its file as before


def test_the_high_band_critic_trains_and_resumes_exactly(tmp_path):
    mel = MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=16)
    critic = {"name": "specgan", "d": 4, "aux_classifier": True, "high_band": 1.0, "high_band_hz": 2000.0}
    ds = data()
    whole = SpecGANTrainer(cfg(critic=critic), ds, tmp_path / "a", seed=1, mel=mel, stats=ds.stats.to_dict())
    whole.fit(progress=False, tensorboard=False)
    assert whole.prepared["D"]["critic_high_band"].startswith("bands ")
    part = SpecGANTrainer(cfg(critic=critic), data(), tmp_path / "b", seed=1, mel=mel, stats=ds.stats.to_dict())
    part.fit(steps=2, progress=False, tensorboard=False)
    resumed = SpecGANTrainer(cfg(critic=critic), data(), tmp_path / "b", seed=1, mel=mel, stats=ds.stats.to_dict())
    resumed.resume()
    resumed.fit(progress=False, tensorboard=False)
    for a, b in zip(whole.D.state_dict().values(), resumed.D.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert int(resumed.D.high_band_start) == int(whole.D.high_band_start) > 0
