"""Known answers for the phase-aware vocoder (issue 12): phase losses, the pseudo-inverse amplitude
prior, STFT consistency, the hop-rate buzz metric, the ``phase`` generator and its iSTFT head."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from vocoder.buzz import buzz_db, comb_contrast_db
from vocoder.generators.phase import PhaseGenerator, mel_pseudo_inverse
from vocoder.losses import (LossWeights, PhaseAwareLoss, anti_wrap, consistency_loss, phase_losses, safe_angle,
                            stft)
from vocoder.mel import MelConfig, MelSpectrogram, mel_filterbank
from vocoder.registry import build_generator

SR = 8000
MEL = MelConfig(sample_rate=SR, n_fft=256, hop_length=64, n_mels=20)
TINY = dict(dim=32, intermediate_dim=64, num_layers=1, branch_dim=16, branch_intermediate_dim=32)


def chirp_noise(n=SR, seed=0, sr=SR):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    y = 0.4 * np.sin(2 * np.pi * (150 * t + 0.5 * 900 * t**2)) + 0.05 * rng.standard_normal(n)
    return torch.from_numpy(y.astype(np.float32))


# -- phase losses ------------------------------------------------------------------------------
def test_anti_wrap_known_values():
    x = torch.tensor([0.0, 2 * math.pi, -4 * math.pi, 0.5, 2 * math.pi + 0.5, -0.5, math.pi - 0.1])
    expected = torch.tensor([0.0, 0.0, 0.0, 0.5, 0.5, 0.5, math.pi - 0.1])
    assert torch.allclose(anti_wrap(x), expected, atol=1e-5)


def test_phase_losses_zero_for_identical_and_invariant_to_wraps():
    g = torch.Generator().manual_seed(0)
    phase = (torch.rand(2, 33, 40, generator=g) * 2 - 1) * math.pi
    same = phase_losses(phase, phase.clone())
    assert set(same) == {"phase_ip", "phase_gd", "phase_iaf"}
    assert all(float(v) == 0.0 for v in same.values())
    wraps = torch.randint(-3, 4, phase.shape, generator=g).float() * 2 * math.pi
    wrapped = phase_losses(phase + wraps, phase)
    assert all(float(v) < 1e-4 for v in wrapped.values()), wrapped
    # a real error is seen, and is the same with or without the wraps
    other = phase + 0.3 * torch.randn(phase.shape, generator=g)
    a, b = phase_losses(other, phase), phase_losses(other + wraps, phase)
    assert all(float(a[k]) > 0.05 and abs(float(a[k]) - float(b[k])) < 1e-4 for k in a)


def test_group_delay_and_iaf_blind_to_a_constant_offset_ip_is_not():
    # a constant phase offset changes the instantaneous phase but neither difference
    phase = (torch.rand(1, 17, 30) * 2 - 1) * math.pi
    out = phase_losses(phase + 1.0, phase)
    assert abs(float(out["phase_ip"]) - 1.0) < 1e-5
    assert float(out["phase_gd"]) < 1e-5 and float(out["phase_iaf"]) < 1e-5


def test_phase_aware_loss_zero_for_identical_spectra_and_names_are_weights():
    y = chirp_noise()[None, None]
    loss = PhaseAwareLoss(64, 16)
    out = loss(y, y.clone(), spectrum=stft(y, 64, 16, torch.hann_window(64))[..., :-1])
    assert set(out) == set(PhaseAwareLoss.names)
    assert all(float(v) < 1e-5 for v in out.values()), out
    fields = {f.name for f in dataclasses.fields(LossWeights)}
    assert set(PhaseAwareLoss.names) <= fields
    assert all(getattr(LossWeights(), n) == 0.0 for n in PhaseAwareLoss.names)
    with pytest.raises(ValueError, match="phase_ipp"):
        LossWeights.from_dict({"phase_ipp": 1.0})
    assert LossWeights.from_dict({"phase_gd": 2}).phase_gd == 2.0
    # magnitude weighting: still zero for identical signals, positive for different ones
    weighted = PhaseAwareLoss(64, 16, weighting="magnitude")
    assert all(float(v) < 1e-5 for v in weighted(y, y.clone()).values())
    noisy = y + 0.05 * torch.randn_like(y)
    assert all(float(v) > 0 for v in weighted(noisy, y).values())


def test_safe_angle_has_finite_gradient_at_zero():
    spec = torch.zeros(1, 3, 4, dtype=torch.complex64, requires_grad=True)
    safe_angle(spec).sum().backward()
    assert torch.isfinite(torch.view_as_real(spec.grad)).all()


# -- consistency -------------------------------------------------------------------------------
def test_consistency_zero_for_a_real_stft_positive_for_random_phase():
    y = chirp_noise()[None]
    n_fft, hop = 64, 16
    w = torch.hann_window(n_fft)
    spec = stft(y, n_fft, hop, w)[..., :-1]  # T·u frames for T·hop samples, the generator's layout
    power = spec.abs().pow(2).mean()
    consistent = consistency_loss(spec, n_fft, hop, w, length=y.shape[-1])
    random_phase = torch.polar(spec.abs(), torch.rand(spec.shape) * 2 * math.pi)
    inconsistent = consistency_loss(random_phase, n_fft, hop, w, length=y.shape[-1])
    assert float(consistent / power) < 1e-6
    assert float(inconsistent / power) > 0.2


# -- amplitude prior ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_fft, worst", [(256, 0.1), (128, 0.1)])  # the mel's grid; a coarser (upsample 2) one
def test_pseudo_inverse_recovers_a_smooth_magnitude(n_fft, worst):
    cfg = MelConfig(sample_rate=SR, n_fft=256, hop_length=64, n_mels=40)
    f = np.linspace(0, SR / 2, cfg.n_freqs)
    smooth = 1.0 + 0.8 * np.sin(2 * np.pi * f / 3000) + np.exp(-(((f - 1000) / 400) ** 2))  # (F,)
    mel = mel_filterbank(cfg) @ smooth
    pinv, _ = mel_pseudo_inverse(cfg, n_fft)
    est = pinv @ mel
    truth = np.interp(np.linspace(0, SR / 2, n_fft // 2 + 1), f, smooth)
    grid = np.linspace(0, SR / 2, n_fft // 2 + 1)
    band = (grid > 300) & (grid < 3500)  # the edge bands (DC, Nyquist) are half filters
    rel = np.abs(est[band] - truth[band]) / truth[band]
    assert rel.mean() < 0.05 and rel.max() < worst, (rel.mean(), rel.max())


def test_generator_prior_starts_at_the_true_magnitude_scale():
    # the residual starts at zero: the untrained generator's log-magnitude is the prior, and per bin
    # it sits near the log-magnitude of the real signal's STFT at the generator's own resolution
    y = chirp_noise(2 * SR)[None]
    mel = MelSpectrogram(MEL)(y)[..., : y.shape[-1] // MEL.hop_length]
    for upsample in (1, 2, 4):
        g = PhaseGenerator(MEL, upsample=upsample, **TINY)
        with torch.no_grad():
            _, log_amp, _, _ = g.forward_with_spectrum(mel)
        ref = torch.log(stft(y, g.stft_n_fft, g.stft_hop, g.stft_window).abs().clamp(min=1e-5))[..., :-1]
        per_bin = (log_amp - ref)[0, 1:].median(dim=-1).values  # DC is not in any mel band
        assert abs(float(per_bin.median())) < 0.15, (upsample, per_bin)
        assert float(per_bin.abs().quantile(0.9)) < 0.5, (upsample, per_bin)


def test_nnls_prior_fits_the_mel_where_the_clamped_pseudo_inverse_does_not():
    # on a real signal the pseudo-inverse swings negative between harmonics and the clamp adds
    # energy: the clamped prior's own mel is off; the NNLS-refined prior reproduces the mel it came
    # from, and its magnitude is closer to the true one (spectral convergence), at the mel's grid
    # and carried to a coarser one
    y = chirp_noise(2 * SR)[None]
    mel = MelSpectrogram(MEL)(y)[..., : y.shape[-1] // MEL.hop_length]
    fb = torch.from_numpy(mel_filterbank(MEL)).float()
    for upsample in (1, 2):
        clamped = PhaseGenerator(MEL, upsample=upsample, **TINY)
        refined = PhaseGenerator(MEL, upsample=upsample, nnls_iter=30, **TINY)
        ref = stft(y, refined.stft_n_fft, refined.stft_hop, refined.stft_window).abs()[..., :-1:upsample][0, 1:]
        errs = {}
        for name, g in (("clamped", clamped), ("refined", refined)):
            log_mag = g.log_magnitude_prior(mel)[0]
            errs[name] = float(torch.linalg.norm(torch.exp(log_mag[1:]) - ref) / torch.linalg.norm(ref))
            if upsample == 1:
                mel_again = MEL.log(fb @ torch.exp(log_mag * MEL.power))
                errs[name + " mel"] = float((mel_again - mel[0]).abs().mean())
        assert errs["refined"] < 0.9 * errs["clamped"], errs
        if upsample == 1:
            assert errs["refined mel"] < 0.5 * errs["clamped mel"], errs
    with pytest.raises(ValueError, match="nnls_iter"):
        PhaseGenerator(MEL, amp_prior=False, nnls_iter=30, **TINY)


def test_nnls_updates_with_the_sparse_filterbank_equal_the_dense_products():
    """The CPU path applies the filterbank as a sparse matrix, the batch's frames side by side: the
    same Lee-Seung updates as the dense products, to float rounding, for a batch of several clips."""
    from vocoder.generators.phase import nnls_refine

    g = torch.Generator().manual_seed(0)
    fb = torch.from_numpy(mel_filterbank(MEL)).float()
    target = torch.rand(3, fb.shape[0], 17, generator=g) + 0.01
    x = torch.rand(3, fb.shape[1], 17, generator=g) + 0.01
    dense = x.clone()
    numer = fb.T @ target
    for _ in range(30):
        dense = dense * numer / (fb.T @ (fb @ dense)).clamp(min=1e-10)
    torch.testing.assert_close(nnls_refine(fb, target, x, 30), dense, rtol=1e-4, atol=1e-7)


# -- buzz --------------------------------------------------------------------------------------
def _pink(n, rng):
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    y = np.fft.irfft(spec, n)
    return y / y.std()


def test_buzz_passes_clean_audio_and_flags_a_comb():
    sr, hop, n = 16000, 256, 16000 * 3
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    white, pink = rng.standard_normal(n), _pink(n, rng)
    off_comb = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip((100.3, 410.0, 1234.5, 3031.1), (0, 1, 2, 3)))
    for clean in (white, pink, off_comb + 0.01 * white):
        assert abs(comb_contrast_db(clean, sr, hop)) < 1.0
    pulses = np.zeros(n)
    pulses[::hop] = 1.0
    buzzy = 0.1 * pink + 0.4 * pulses  # a click every frame under speech-like noise
    assert buzz_db(buzzy, 0.1 * pink, sr, hop) > 3.0
    # a tone whose phase restarts every frame (a wrong phase advance): lines at k·sr/hop
    reset = np.sin(2 * np.pi * 220 * (np.arange(n) % hop) / sr) + 0.01 * white
    assert buzz_db(reset, np.sin(2 * np.pi * 220 * t) + 0.01 * white, sr, hop) > 10.0
    assert abs(buzz_db(pink, white, sr, hop)) < 1.0


# -- the generator -----------------------------------------------------------------------------
@pytest.mark.parametrize("upsample", [1, 2, 4])
def test_phase_generator_shapes_and_backward(upsample):
    torch.manual_seed(0)
    g = build_generator({"name": "phase", "upsample": upsample, **TINY}, MEL)
    mel = MelSpectrogram(MEL)(chirp_noise(1280)[None].repeat(2, 1))[..., :20]
    wave, log_amp, phase, spec = g.forward_with_spectrum(mel)
    F_ = MEL.n_fft // upsample // 2 + 1
    assert wave.shape == (2, 1, 20 * MEL.hop_length)
    assert log_amp.shape == phase.shape == spec.shape == (2, F_, 20 * upsample)
    assert g.stft_hop * upsample == MEL.hop_length and g.stft_window.shape == (g.stft_n_fft,)
    assert torch.equal(g(mel), wave)
    y = chirp_noise(20 * MEL.hop_length)[None, None].repeat(2, 1, 1)
    losses = PhaseAwareLoss(g.stft_n_fft, g.stft_hop, g.stft_window)(wave, y, spectrum=spec, log_amplitude=log_amp,
                                                                        phase=phase)
    total = sum(losses.values()) + (wave - y).abs().mean()
    total.backward()
    grads = [p.grad for p in g.parameters() if p.requires_grad]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert any(float(gr.abs().sum()) > 0 for gr in grads)


@pytest.mark.parametrize("levers", [dict(amp_prior=False), dict(phase_head="direct"), dict(n_fft=64, upsample=2),
                                    dict(amp_residual=False), dict(nnls_iter=30, upsample=2)])
def test_phase_generator_levers(levers):
    g = build_generator({"name": "phase", **TINY, **levers}, MEL)
    assert g.config.items() >= levers.items()
    out = g(torch.randn(1, MEL.n_mels, 8))
    assert out.shape == (1, 1, 8 * MEL.hop_length) and torch.isfinite(out).all()
    g.remove_weight_norm()


def test_phase_generator_refuses_typos_and_bad_values():
    with pytest.raises(ValueError, match="upsampel"):
        build_generator({"name": "phase", "upsampel": 2}, MEL)
    with pytest.raises(ValueError, match="upsample"):
        build_generator({"name": "phase", "upsample": 3}, MEL)
    with pytest.raises(ValueError, match="phase_head"):
        build_generator({"name": "phase", "phase_head": "sincos"}, MEL)


def test_istft_head_rebuilds_real_audio_from_its_true_spectrum():
    # the generator's own iSTFT (window, hop, centring, length) inverts the STFT of a real signal:
    # whatever buzz a trained model shows is not the head's
    for upsample in (1, 4):
        g = PhaseGenerator(MEL, upsample=upsample, **TINY)
        y = 0.5 * chirp_noise(40 * MEL.hop_length)[None]
        spec = stft(y, g.stft_n_fft, g.stft_hop, g.stft_window)[..., :-1]
        rebuilt = g.istft(torch.polar(spec.abs(), safe_angle(spec)))
        assert rebuilt.shape == (1, 1, y.shape[-1])
        err = (rebuilt[0, 0] - y[0]).pow(2).mean() / y.pow(2).mean()
        assert float(err) < 1e-8, float(err)


def test_buzz_is_nan_for_a_clip_too_short_to_resolve_the_comb():
    y = np.random.default_rng(0).standard_normal(700)
    assert math.isnan(comb_contrast_db(y, 16000, 256))
    with pytest.raises(ValueError, match="nothing between"):
        comb_contrast_db(np.zeros(16000), 16000, 256, tol_hz=20.0)


def test_integrated_phase_follows_a_steady_sinusoid_between_bins():
    """A sinusoid between bins: its STFT phase advances by 2π f hop / sr per frame; the integrated
    phase with the right deviation (f n_fft / sr − k) advances the same, where a per-frame estimate
    of a steady input would repeat (the hop-rate comb)."""
    import math

    from vocoder.generators.phase import integrate_phase
    from vocoder.losses import anti_wrap, stft

    sr, n_fft, hop, f = 16000, 256, 64, 1234.5
    t = torch.arange(sr // 2) / sr
    y = torch.sin(2 * math.pi * f * t)[None, None]
    spec = stft(y, n_fft, hop, torch.hann_window(n_fft))
    k = round(f * n_fft / sr)
    true = torch.angle(spec[0, k])
    d = torch.full((1, n_fft // 2 + 1, true.shape[-1]), f * n_fft / sr) - torch.arange(n_fft // 2 + 1)[:, None]
    phase = integrate_phase(torch.zeros_like(d), d, n_fft, hop)[0, k]
    diff = (phase - true)[5:-5]  # away from the reflect-padded edges; the offset is free
    assert anti_wrap(diff - diff[0]).max() < 1e-3
    flat = (integrate_phase(torch.zeros_like(d), torch.zeros_like(d), n_fft, hop)[0, k] - true)[5:-5]
    assert anti_wrap(flat - flat[0]).max() > 1.0  # the bin-centre advance alone drifts away


@pytest.mark.parametrize("kw", [{"phase_head": "integrate"}, {"upsampler": "linear"},
                                {"phase_head": "integrate", "upsampler": "linear", "upsample": 2}])
def test_phase_generator_variants_shapes_and_backward(kw):
    from vocoder.registry import build_generator

    mel_cfg = MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=64, fmax=8000.0)
    g = build_generator({"name": "phase", "dim": 32, "intermediate_dim": 64, "num_layers": 1, "branch_dim": 16,
                         "branch_intermediate_dim": 32, **kw}, mel_cfg)
    mel = torch.randn(2, 64, 12) - 4
    y, log_amp, phase, spec = g.forward_with_spectrum(mel)
    assert y.shape == (2, 1, 12 * 256) and phase.shape == log_amp.shape
    y.square().mean().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in g.parameters())


def test_phase_only_uses_the_prior_as_the_magnitude_and_learns_no_amplitude():
    g = PhaseGenerator(MEL, upsample=1, amp_residual=False, **TINY)
    assert not hasattr(g, "amp") and not hasattr(g, "amp_in")
    mel = torch.randn(1, MEL.n_mels, 10) - 4
    log_amp, _ = g.log_spectrum(mel)
    torch.testing.assert_close(log_amp, g.log_magnitude_prior(mel).clamp(max=g.max_log_magnitude))
    with pytest.raises(ValueError, match="amp_residual: false needs amp_prior"):
        PhaseGenerator(MEL, amp_prior=False, amp_residual=False, **TINY)
