"""Known answers for phase-gradient heap integration (vocoder/pghi.py) and the ``phase`` generator's
``phase_head: pghi``."""

import math

import numpy as np
import pytest
import torch

from vocoder.generators.phase import PhaseGenerator
from vocoder.mel import MelConfig
from vocoder.pghi import pghi

SR, N_FFT, HOP = 16000, 512, 64
WINDOW = torch.hann_window(N_FFT)
# a tiny pghi vocoder on a 40-band mel: random weights, for what does not need training
TINY_MEL = MelConfig(sample_rate=SR, n_fft=1024, hop_length=256, n_mels=40)
TINY_PGHI = dict(dim=32, intermediate_dim=64, num_layers=1, branch_dim=16, branch_intermediate_dim=32,
                 phase_head="pghi", n_fft=N_FFT, upsample=4, upsampler="linear")


def _stft(y):
    return torch.stft(y, N_FFT, HOP, window=WINDOW, center=True, return_complex=True)


def _spectral_convergence(mag, phase, n):
    """How far the magnitude of the signal rebuilt from (mag, phase) is from mag (0: consistent)."""
    y = torch.istft(torch.polar(mag, phase), N_FFT, HOP, window=WINDOW, center=True, length=n)
    return float(torch.linalg.norm(_stft(y).abs() - mag) / torch.linalg.norm(mag))


def _signals():
    t = np.arange(SR) / SR
    f0 = 120 + 30 * np.sin(2 * np.pi * 3 * t)  # a vibrato voice-like tone with 12 harmonics
    harmonic = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SR) / k for k in range(1, 13))
    pulses = np.zeros(SR)
    pulses[::160] = 1.0  # a 100 Hz pulse train (glottal pulses): resolved in time by the 512-point window
    return {"sine": np.sin(2 * np.pi * 440 * t), "chirp": np.sin(2 * np.pi * (200 * t + 0.5 * 1500 * t**2)),
            "harmonic": harmonic, "pulses": pulses}


@pytest.mark.parametrize("mode", ["offline", "frames"])
@pytest.mark.parametrize("name", ["sine", "chirp", "harmonic", "pulses"])
def test_pghi_rebuilds_a_consistent_phase_from_the_magnitude_alone(name, mode):
    y = torch.from_numpy(_signals()[name].astype(np.float32))
    mag = _stft(y).abs()
    phase = torch.from_numpy(pghi(mag.numpy(), N_FFT, HOP, mode=mode)).float()
    ours = _spectral_convergence(mag, phase, len(y))
    zero = _spectral_convergence(mag, torch.zeros_like(mag), len(y))
    # the convention is torch.stft's: the same phase in the centre-referred convention (+π per bin) is bad
    bins = torch.arange(mag.shape[0])[:, None]
    centred = _spectral_convergence(mag, phase + math.pi * bins, len(y))
    assert ours < 0.15, (ours, zero)  # 0.08-0.11 here
    assert zero > 0.5 and centred > 0.5, (zero, centred)


def test_pghi_batches_the_leading_axes_and_refuses_a_wrong_bin_count():
    y = torch.from_numpy(_signals()["chirp"].astype(np.float32))
    mag = _stft(y).abs().numpy()
    batch = np.stack([mag, 0.5 * mag])
    out = pghi(batch, N_FFT, HOP)
    assert out.shape == batch.shape
    # a gain does not change the phase gradient: the same phase, except at the random (below-tol) bins
    same = np.isclose(np.angle(np.exp(1j * out[0])), np.angle(np.exp(1j * out[1])), atol=1e-6)
    assert same[mag > 1e-3 * mag.max()].all()
    with pytest.raises(ValueError, match="257 frequency bins"):
        pghi(mag[:-1], N_FFT, HOP)
    with pytest.raises(ValueError, match="mode"):
        pghi(mag, N_FFT, HOP, mode="causal")


@pytest.mark.parametrize("mode", ["offline", "frames"])
def test_pghi_integrates_only_above_its_floor(mode):
    """Coefficients under tol x the largest keep their random phase (the seed's); the heap never
    enters them, so the phases above the floor do not depend on the seed."""
    y = torch.from_numpy(_signals()["chirp"].astype(np.float32))
    mag = _stft(y).abs().numpy()
    a, b = (pghi(mag, N_FFT, HOP, tol=1e-3, mode=mode, seed=s) for s in (0, 1))
    above = mag >= 1e-3 * mag.max()
    assert 0.05 < above.mean() < 0.95
    assert np.allclose(a[above], b[above])
    assert (np.abs(np.angle(np.exp(1j * (a - b))))[~above] > 1e-3).mean() > 0.9


def _heap_reference(s, dphi_t, dphi_f, floor):
    """Offline PGHI's integration, written plainly (heapq, a full sort up front)."""
    import heapq

    n_f, n_t = s.shape
    phase, done = np.zeros_like(s), s < floor
    for seed in np.argsort(-s, axis=None, kind="stable"):
        f0, t0 = divmod(int(seed), n_t)
        if done[f0, t0]:
            continue
        done[f0, t0], heap = True, [(-s[f0, t0], f0, t0)]
        while heap:
            _, f, t = heapq.heappop(heap)
            for g, u, step in ((f, t + 1, 0.5 * (dphi_t[f, t] + dphi_t[f, min(t + 1, n_t - 1)])),
                               (f, t - 1, -0.5 * (dphi_t[f, t] + dphi_t[f, max(t - 1, 0)])),
                               (f + 1, t, 0.5 * (dphi_f[f, t] + dphi_f[min(f + 1, n_f - 1), t])),
                               (f - 1, t, -0.5 * (dphi_f[f, t] + dphi_f[max(f - 1, 0), t]))):
                if 0 <= g < n_f and 0 <= u < n_t and not done[g, u]:
                    phase[g, u], done[g, u] = phase[f, t] + step, True
                    heapq.heappush(heap, (-s[g, u], g, u))
    return phase, s >= floor


def test_offline_pghi_follows_the_heap_order_across_silences():
    """The heap starts at the largest coefficient and, each time it runs dry (a silence splits the
    clip), at the largest one left: the same phases as a plain heapq version. Non-contiguous input
    too (a transposed array)."""
    from vocoder import pghi as P

    rng = np.random.default_rng(1)
    s = rng.normal(size=(20, 33))
    s[:, 10:13] = -40.0  # two silences: three islands above the floor
    s[:, 25] = -40.0
    s = np.asfortranarray(s)
    dphi_t, dphi_f = rng.normal(size=s.shape), rng.normal(size=s.shape)
    floor = -10.0
    phase = np.zeros_like(s)
    P._integrate(s, np.ascontiguousarray(dphi_t), np.ascontiguousarray(dphi_f), phase, s < floor)
    want, above = _heap_reference(s, dphi_t, dphi_f, floor)
    assert np.allclose(phase[above], want[above])


def test_pghi_head_learns_only_the_magnitude():
    mel_cfg = MelConfig(sample_rate=SR, n_fft=1024, hop_length=256, n_mels=40)
    g = PhaseGenerator(mel_cfg, dim=32, intermediate_dim=64, num_layers=1, branch_dim=16, branch_intermediate_dim=32,
                       phase_head="pghi", n_fft=N_FFT, upsample=4, upsampler="linear")
    assert not hasattr(g, "phase")
    mel = torch.randn(2, 40, 6) - 4
    y, log_amp, phase, _ = g.forward_with_spectrum(mel)
    assert y.shape == (2, 1, 6 * 256) and phase.shape == log_amp.shape == (2, N_FFT // 2 + 1, 24)
    assert not phase.requires_grad and log_amp.requires_grad
    expect = pghi(torch.exp(log_amp.detach()).numpy(), N_FFT, HOP)
    np.testing.assert_allclose(phase.numpy(), expect, atol=1e-4)
    y.square().mean().backward()
    assert g.amp.proj.weight.grad is not None and float(g.amp.proj.weight.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="pghi needs amp_residual"):
        PhaseGenerator(mel_cfg, phase_head="pghi", amp_residual=False)


def test_pghi_head_refuses_onnx_export_in_one_line(tmp_path):
    from vocoder.export import export_onnx

    mel_cfg = MelConfig(sample_rate=SR, n_fft=1024, hop_length=256, n_mels=40)
    g = PhaseGenerator(mel_cfg, dim=32, intermediate_dim=64, num_layers=1, branch_dim=16, branch_intermediate_dim=32,
                       phase_head="pghi", n_fft=N_FFT, upsample=4)
    with pytest.raises(ValueError, match="no ONNX form"):
        export_onnx(g, tmp_path / "g.onnx")
    assert not (tmp_path / "g.onnx").exists()


def test_griffin_lim_refinement_makes_the_pghi_spectrum_more_consistent():
    # the same weights, 0 vs 8 fast Griffin-Lim iterations from PGHI's phase: the output's own
    # STFT magnitude moves closer to the magnitude the network predicted
    mel_cfg, kw = TINY_MEL, TINY_PGHI
    torch.manual_seed(0)
    plain = PhaseGenerator(mel_cfg, **kw)
    refined = PhaseGenerator(mel_cfg, refine_iter=8, **kw)
    refined.load_state_dict(plain.state_dict())
    y = torch.from_numpy(_signals()["harmonic"].astype(np.float32))
    from vocoder.mel import MelSpectrogram

    mel = mel_cfg.crop_frames(MelSpectrogram(mel_cfg)(y[None]), len(y))
    errors = []
    for g in (plain, refined):
        with torch.no_grad():
            wave, log_amp, _, _ = g.forward_with_spectrum(mel)
        mag = torch.exp(log_amp[0])
        again = _stft(wave[0, 0]).abs()[..., : mag.shape[-1]]
        errors.append(float(torch.linalg.norm(again - mag) / torch.linalg.norm(mag)))
    assert errors[1] < 0.8 * errors[0], errors
    with pytest.raises(ValueError, match="refine_iter"):
        PhaseGenerator(mel_cfg, refine_iter=4)
    with pytest.raises(ValueError, match="pghi_mode"):
        PhaseGenerator(mel_cfg, phase_head="pghi", pghi_mode="causal")
    frames = PhaseGenerator(mel_cfg, pghi_mode="frames", **kw)
    frames.load_state_dict(plain.state_dict())
    with torch.no_grad():
        _, log_amp, phase, _ = frames.forward_with_spectrum(mel)
    expect = pghi(torch.exp(log_amp).numpy(), N_FFT, HOP, mode="frames")
    np.testing.assert_allclose(phase.numpy(), expect, atol=1e-4)


def test_the_voices_recipes_vocoder_trains_by_regression_only(tmp_path):
    """recipes/voices.yaml's design (pghi head + Griffin-Lim refinement, amplitude/mel/MR-STFT, no
    critic steps) builds at its full size and trains: two steps, finite losses, no critic loss."""
    import dataclasses
    from pathlib import Path

    import soundfile as sf
    from conftest import speech_like

    from specgan.recipe import load_recipe
    from vocoder.data import SegmentDataset
    from vocoder.train import VocoderTrainer

    recipe = load_recipe(Path(__file__).resolve().parent.parent / "recipes" / "voices.yaml")
    vc = recipe.vocoder
    assert vc.generator["phase_head"] == "pghi" and vc.generator["refine_iter"] > 0
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"c{i}.wav"))
        sf.write(paths[-1], speech_like(recipe.mel.sample_rate, 0.6, seed=i), recipe.mel.sample_rate)
    data = SegmentDataset(paths, recipe.mel.sample_rate, vc.segment_samples, seed=0)
    tr = VocoderTrainer(dataclasses.replace(vc, batch_size=2), recipe.mel, data, None, tmp_path / "run", seed=0)
    for _ in range(2):
        out = tr.train_step(tr.next_batch())
    assert {"gen/mel", "gen/amp", "gen/stft"} <= set(out) and "critic/loss" not in out and "gen/adv" not in out
    assert all(torch.isfinite(v) for v in out.values())


def test_vocoder_inference_settings_are_what_the_exported_files_run_with(tmp_path):
    """``vocoder.inference``: train with one set of switches (offline heap, 2 iterations), export the
    model files with another (frame PGHI, none); the run's fingerprint and the trained generator keep
    the training ones, and a key that would change a tensor is refused before any step."""
    import soundfile as sf
    from conftest import speech_like

    import vocoder
    from vocoder.config import VocoderConfig
    from vocoder.data import SegmentDataset
    from vocoder.train import VocoderTrainer

    mel = MelConfig(sample_rate=8000, n_fft=256, hop_length=64, n_mels=20)
    paths = []
    for i in range(2):
        paths.append(str(tmp_path / f"c{i}.wav"))
        sf.write(paths[-1], speech_like(8000, 0.6, seed=i), 8000)
    gen = {"name": "phase", "phase_head": "pghi", "n_fft": 64, "upsample": 4, "dim": 16, "intermediate_dim": 32,
           "num_layers": 1, "branch_dim": 16, "branch_intermediate_dim": 32, "amp_layers": 1, "refine_iter": 2}

    def trainer(inference, out):
        cfg = VocoderConfig(generator=gen, inference=inference, critics=[{"name": "mpd", "periods": [2], "width": 0.0625}],
                            weights={"mel": 45.0, "amp": 45.0},
                            segment_samples=1024, batch_size=2, steps=2, log_every=1, eval_every=100, save_every=2,
                            eval_items=1, critic_warmup_steps=10**9, stft_resolutions=[[256, 64, 256]])
        return VocoderTrainer(cfg, mel, SegmentDataset(paths, 8000, 1024, seed=0), None, tmp_path / out, seed=0)

    tr = trainer({"pghi_mode": "frames", "refine_iter": 0}, "run")
    tr.fit(progress=False, tensorboard=False)
    assert (tr.G.pghi_mode, tr.G.refine_iter) == ("offline", 2)  # trained as the generator spec says
    g = vocoder.load(tmp_path / "run" / "model.safetensors")
    assert (g.pghi_mode, g.refine_iter) == ("frames", 0)
    assert g.checkpoint_meta["generator"] == {**gen, "pghi_mode": "frames", "refine_iter": 0}
    assert tr.shape == trainer({}, "plain").shape  # inference switches are not part of what a resume checks
    with pytest.raises(ValueError, match="vocoder.inference.*changes the generator's tensors"):
        trainer({"amp_layers": 2}, "bad")
    with pytest.raises(ValueError, match="'name' is not allowed"):
        VocoderConfig(generator=gen, inference={"name": "istft"})


def test_mel_refinement_brings_the_output_to_the_input_mel():
    # a magnitude network far from the mel (random residual): re-synthesised at the mel's STFT with a
    # magnitude pulled to the input mel, the output's own mel comes much closer to the input
    from vocoder.mel import MelSpectrogram

    mel_cfg, kw = TINY_MEL, TINY_PGHI
    torch.manual_seed(0)
    plain = PhaseGenerator(mel_cfg, **kw)
    with torch.no_grad():
        plain.amp.proj.weight.normal_(0.0, 0.05)
    refined = PhaseGenerator(mel_cfg, mel_refine_iter=8, **kw)
    refined.load_state_dict(plain.state_dict())
    assert "mel_refine_iter" not in plain.config and refined.config["mel_refine_iter"] == 8  # old files' configs stay as written
    y = torch.from_numpy(0.5 * _signals()["harmonic"].astype(np.float32) / 3)
    analyse = MelSpectrogram(mel_cfg)
    mel = mel_cfg.crop_frames(analyse(y[None]), len(y))
    errors = []
    for g in (plain, refined):
        with torch.no_grad():
            out = g(mel)
        assert out.shape == (1, 1, mel.shape[-1] * 256) and float(out.abs().max()) <= 1.0
        errors.append(float((analyse(out[0, 0])[:, : mel.shape[-1]] - mel[0]).abs().mean()))
    assert errors[1] < 0.5 * errors[0], errors
    with torch.no_grad():  # too short to frame at the mel's STFT: the internal output as it is
        short = mel[..., :2]
        torch.testing.assert_close(refined(short), plain(short))
    with pytest.raises(ValueError, match="mel_refine_iter"):
        PhaseGenerator(mel_cfg, mel_refine_iter=-1, **kw)


def test_the_mel_correction_never_raises_a_band_clamped_at_the_floor():
    from vocoder.generators.phase import floor_aware_target

    floor = 1e-5
    target = torch.tensor([1e-5, 1e-5, 0.3, 0.3])
    present = torch.tensor([1e-7, 0.2, 1e-7, 0.9])
    # at the floor: what is there, but no more than the floor; above it: the input mel
    torch.testing.assert_close(floor_aware_target(target, present, floor * 1.001),
                               torch.tensor([1e-7, 1e-5, 0.3, 0.3]))
