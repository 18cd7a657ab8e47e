"""vocoder.fastgl: the CPU STFT pair and fast Griffin-Lim agree with the torch ones they replace."""

import numpy as np
import pytest
import torch

from vocoder.fastgl import STFTPlan, fast_griffin_lim_np
from vocoder.mel import MelConfig
from vocoder.pghi import fast_griffin_lim
from vocoder.registry import build_generator


def _torch_pair(n_fft, hop, frames):
    window = torch.hann_window(n_fft)

    def forward(y):
        return torch.stft(y, n_fft, hop, window=window, center=True, return_complex=True)[..., :frames]

    def inverse(spec):
        return torch.istft(spec, n_fft, hop, window=window, center=True, length=frames * hop)

    return forward, inverse


@pytest.mark.parametrize("n_fft,hop,frames", [(512, 64, 40), (256, 64, 7), (64, 16, 3)])
def test_stft_pair_matches_torch(n_fft, hop, frames):
    rng = np.random.default_rng(0)
    forward, inverse = _torch_pair(n_fft, hop, frames)
    plan = STFTPlan(n_fft, hop, frames)
    y = rng.normal(size=frames * hop).astype(np.float32)
    ref = forward(torch.from_numpy(y)).numpy()
    np.testing.assert_allclose(plan.stft(y).T, ref, atol=2e-5 * np.abs(ref).max())
    spec = (rng.normal(size=ref.shape) + 1j * rng.normal(size=ref.shape)).astype(np.complex64)
    ref_y = inverse(torch.from_numpy(spec)).numpy()
    np.testing.assert_allclose(plan.istft(np.ascontiguousarray(spec.T)), ref_y, atol=2e-6 * np.abs(ref_y).max())


def test_fast_griffin_lim_matches_the_torch_iterations():
    """Same algorithm as vocoder.pghi.fast_griffin_lim (torchaudio's momentum convention): after a
    few iterations the phases agree to float32 rounding."""
    rng = np.random.default_rng(1)
    n_fft, hop, frames = 256, 32, 60
    mag = np.exp(rng.normal(size=(n_fft // 2 + 1, frames))).astype(np.float32)
    phase = rng.uniform(-np.pi, np.pi, size=mag.shape).astype(np.float32)
    forward, inverse = _torch_pair(n_fft, hop, frames)
    m = torch.from_numpy(mag)
    for iters in (0, 1, 4):
        ref = torch.angle(fast_griffin_lim(m, forward, inverse, iters, torch.polar(m, torch.from_numpy(phase))))
        got = fast_griffin_lim_np(mag, phase, STFTPlan(n_fft, hop, frames), iters)
        diff = np.angle(np.exp(1j * (ref.numpy() - got)))
        assert np.abs(diff).max() < 1e-3, iters


def test_fast_griffin_lim_reduces_the_inconsistency():
    """From a random phase the rebuilt spectrum's magnitude gets closer to the target each way it is
    measured; a regression that broke the update (e.g. a wrong sign on the momentum) would not."""
    rng = np.random.default_rng(2)
    n_fft, hop, frames = 256, 32, 80
    t = np.arange(frames * hop) / 16000
    y = (np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 1250 * t)).astype(np.float32)
    plan = STFTPlan(n_fft, hop, frames)
    mag = np.abs(plan.stft(y)).T.astype(np.float32)
    start = rng.uniform(-np.pi, np.pi, size=mag.shape).astype(np.float32)

    def error(phase):
        rebuilt = np.abs(plan.stft(plan.istft(np.ascontiguousarray((mag * np.exp(1j * phase)).T.astype(np.complex64)))))
        return np.linalg.norm(rebuilt.T - mag) / np.linalg.norm(mag)

    e0, e8, e32 = error(start), error(fast_griffin_lim_np(mag, start, plan, 8)), \
        error(fast_griffin_lim_np(mag, start, plan, 32))
    assert e32 < e8 < 0.5 * e0


def test_plan_refuses_what_it_cannot_transform():
    with pytest.raises(ValueError, match="too few"):
        STFTPlan(512, 64, 2)  # 128 samples cannot be reflect-padded by 256
    with pytest.raises(ValueError, match="frames must be >= 1"):
        STFTPlan(512, 64, 0)


def test_the_pghi_vocoder_gives_the_same_wave_through_either_iteration_path(monkeypatch):
    """The `pghi` generator runs its Griffin-Lim iterations through fastgl on a CPU and through
    torch elsewhere: the two give the same waveform (tiny model, random weights)."""
    import vocoder.generators.phase as phase_mod

    mel = MelConfig(n_mels=16, n_fft=256, hop_length=64)
    spec = {"name": "phase", "phase_head": "pghi", "n_fft": 64, "upsample": 4, "dim": 16, "intermediate_dim": 32,
            "num_layers": 1, "branch_dim": 16, "branch_intermediate_dim": 32, "amp_layers": 1, "refine_iter": 4,
            "pghi_mode": "frames"}
    torch.manual_seed(0)
    g = build_generator(spec, mel).eval()
    x = torch.randn(2, 16, 12) - 4
    with torch.no_grad():
        fast = g(x)
        monkeypatch.setattr(phase_mod, "_use_fastgl", lambda t: False)  # torch's STFT, as on a GPU
        slow = g(x)
    assert fast.shape == slow.shape == (2, 1, 12 * 64)
    assert (fast - slow).abs().max() < 1e-3 * slow.abs().max()
    with pytest.raises(ValueError, match="workers must be >= 1"):
        STFTPlan(512, 64, 100, workers=0)


def test_threaded_ffts_give_the_same_phase_to_the_bit():
    """The iterations split their FFTs among threads (``workers``) without changing a bit of the result."""
    rng = np.random.default_rng(3)
    n_fft, hop, frames = 512, 64, 300
    mag = rng.gamma(1.0, size=(n_fft // 2 + 1, frames)).astype(np.float32)
    start = rng.uniform(-np.pi, np.pi, size=mag.shape).astype(np.float32)
    one = fast_griffin_lim_np(mag, start, STFTPlan(n_fft, hop, frames, workers=1), 4)
    two = fast_griffin_lim_np(mag, start, STFTPlan(n_fft, hop, frames, workers=2), 4)
    np.testing.assert_array_equal(one, two)
