"""The numba extractor and the torch MelSpectrogram both equal librosa's log-mel."""

import librosa
import numpy as np
import pytest
import torch
from conftest import music_like, speech_like

from specgan.features import LogMelExtractor
from vocoder.mel import MelConfig, MelConfigMismatch, MelSpectrogram, MelStats

CONFIGS = [
    MelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=64),
    MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, n_mels=80, fmax=8000.0),
    MelConfig(sample_rate=44100, n_fft=2048, hop_length=512, n_mels=128, fmin=30.0),
]
VARIANTS = [  # the non-default options, each once
    MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, win_length=800, n_mels=80, power=2.0, log_base="10",
              pad_mode="constant", htk=True, norm="none"),
    MelConfig(sample_rate=16000, n_fft=512, hop_length=160, win_length=400, window="hamming", n_mels=40,
              center=False, log_base="2"),
]
SIGNALS = {"speech": speech_like, "music": music_like}


def librosa_logmel(y: np.ndarray, cfg: MelConfig) -> np.ndarray:
    S = librosa.feature.melspectrogram(
        y=y.astype(np.float64), sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        win_length=cfg.win_length, window=cfg.window, center=cfg.center, pad_mode=cfg.pad_mode,
        power=cfg.power, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax_hz, htk=cfg.htk,
        norm="slaney" if cfg.norm == "slaney" else None)
    return {"e": np.log, "10": np.log10, "2": np.log2}[cfg.log_base](np.maximum(S, cfg.floor))


def within_db_of_frame_peak(ref: np.ndarray, cfg: MelConfig, db: float) -> np.ndarray:
    """Bins no more than ``db`` below their frame's loudest band (in the mel's own units)."""
    # Mel values scale as amplitude ** power; db is an amplitude ratio (20 log10).
    span = cfg.log(np.float64(10.0 ** (db / 20.0 * cfg.power)))
    return ref >= ref.max(axis=0, keepdims=True) - span


@pytest.mark.parametrize("cfg", CONFIGS + VARIANTS, ids=lambda c: f"{c.sample_rate}-{c.n_mels}-{c.n_fft}")
@pytest.mark.parametrize("kind", SIGNALS)
def test_numba_and_torch_match_librosa(cfg, kind):
    y = SIGNALS[kind](cfg.sample_rate)
    ref = librosa_logmel(y, cfg)
    shape = (cfg.n_mels, cfg.n_frames(y.size))
    # The signals must reach the floor somewhere (silence) and rise far above it, or the
    # comparison would not cover the clamp.
    assert ref.min() == pytest.approx(cfg.log(np.float64(cfg.floor)))
    assert ref.max() > ref.min() + 5

    # float64 paths: the spec's 1e-4 holds everywhere (in practice ~1e-6).
    ours64 = LogMelExtractor(cfg, precision="float64")(y)
    torch64 = MelSpectrogram(cfg).double()(torch.from_numpy(y).double()).numpy()
    assert ours64.shape == torch64.shape == shape and ours64.dtype == np.float32
    assert np.abs(ours64 - ref).max() <= 1e-5
    assert np.abs(torch64 - ref).max() <= 1e-5

    # float32 paths (the fast defaults): float32 FFT rounding is ~1e-7 of a frame's energy, so
    # bins far below their frame's peak carry relative errors of ~1e-4; both implementations
    # hold 1e-4 within 60 dB of the frame peak and 1e-3 everywhere.
    ours = LogMelExtractor(cfg)(y)
    theirs = MelSpectrogram(cfg)(torch.from_numpy(y)).numpy()
    assert ours.shape == theirs.shape == shape and ours.dtype == np.float32
    near = within_db_of_frame_peak(ref, cfg, 60.0)
    assert near.mean() > 0.3
    for out in (ours, theirs):
        err = np.abs(out - ref)
        assert err[near].max() <= 1e-4
        assert err.max() <= 1e-3


def test_parallel_kernels_match_serial():
    cfg = CONFIGS[1]
    y = music_like(cfg.sample_rate, seconds=8.0)
    serial = LogMelExtractor(cfg, threads=1)(y)
    parallel = LogMelExtractor(cfg, threads=2)(y)
    assert serial.shape[1] >= 512  # long enough to take the parallel path
    np.testing.assert_allclose(parallel, serial, atol=1e-5)


def test_batch_input_and_torch_batch():
    cfg = CONFIGS[0]
    y = np.stack([speech_like(cfg.sample_rate, 1.0, s) for s in range(3)])
    ours = LogMelExtractor(cfg, precision="float64")(y)
    theirs = MelSpectrogram(cfg).double()(torch.from_numpy(y).double()[:, None])
    assert ours.shape == tuple(theirs.shape) == (3, cfg.n_mels, cfg.n_frames(y.shape[1]))
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-5)


def test_torch_mel_is_differentiable_and_follows_device_dtype():
    cfg = CONFIGS[0]
    mel = MelSpectrogram(cfg).double()
    y = torch.from_numpy(speech_like(cfg.sample_rate, 0.5)).double().requires_grad_()
    out = mel(y)
    assert out.dtype == torch.float64
    out.sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_too_short_signal_is_an_error():
    cfg = CONFIGS[0]
    with pytest.raises(ValueError, match="shorter than one frame"):
        LogMelExtractor(cfg)(np.zeros(100, np.float32) + 0.1)
    with pytest.raises(ValueError, match="too short"):
        MelSpectrogram(cfg)(torch.zeros(100) + 0.1)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="fmax=9000.0 is above the Nyquist"):
        MelConfig(sample_rate=16000, fmax=9000.0)
    with pytest.raises(ValueError, match="log_base"):
        MelConfig(log_base="ln")
    with pytest.raises(ValueError, match="win_length"):
        MelConfig(n_fft=512, win_length=1024)


def test_mismatch_names_differing_fields():
    a = MelConfig(sample_rate=22050, n_mels=80, hop_length=256)
    b = MelConfig(sample_rate=22050, n_mels=100, hop_length=300)
    assert set(a.diff(b)) == {"n_mels", "hop_length"}
    with pytest.raises(MelConfigMismatch, match=r"n_mels: 80 \(gan\) != 100 \(vocoder\)") as e:
        a.check_compatible(b, "gan", "vocoder")
    assert "hop_length: 256" in str(e.value) and "sample_rate" not in str(e.value)
    a.check_compatible(MelConfig.from_dict(a.to_dict()))  # round trip is identical
    assert a.fingerprint() == MelConfig.from_dict(a.to_dict()).fingerprint() != b.fingerprint()


def test_stats_normalize_roundtrip_numpy_and_torch(tmp_path):
    rng = np.random.default_rng(0)
    mean, std = rng.normal(-4, 1, 8), rng.uniform(0.5, 2, 8)
    stats = MelStats(mean, std, count=100, clip_sigma=3.0)
    x = (mean[:, None] + std[:, None] * rng.normal(0, 1, (8, 50))).astype(np.float32)
    z = stats.normalize(x)
    assert z.min() >= -1 and z.max() <= 1
    inside = np.abs((x - mean[:, None]) / std[:, None]) < 3
    np.testing.assert_allclose(stats.denormalize(z)[inside], x[inside], rtol=1e-5, atol=1e-5)
    zt = stats.normalize(torch.from_numpy(x))
    np.testing.assert_allclose(zt.numpy(), z, atol=1e-6)
    stats.save(tmp_path / "s.npz", key="abc")
    back = MelStats.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.mean, stats.mean)
    assert back.clip_sigma == 3.0 and back.count == 100
    plain = MelStats(mean, std, clip_sigma=None)
    np.testing.assert_allclose(plain.denormalize(plain.normalize(x)), x, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="std > 0"):
        MelStats(mean, np.zeros(8))
    with pytest.raises(ValueError, match="expected 8 mel bins"):
        stats.normalize(np.zeros((5, 3)))
