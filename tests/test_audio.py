"""Audio I/O: formats, mono, resampling, normalisation, trimming, pad/crop, and every bad-input kind."""

import numpy as np
import pytest
import soundfile as sf

from specgan.audio import (AudioError, Preprocess, fit_length, load_clip, loudness_normalize, peak_normalize, read,
                           resample, scan_report, trim_silence)


def tone(sr, f=440.0, seconds=1.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * f * t)).astype(np.float32)


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("flac", "PCM_24"), ("ogg", "VORBIS"), ("wav", "FLOAT")])
def test_reads_formats_to_mono_float32(write_wav, ext, subtype):
    st = np.stack([tone(16000, 440), tone(16000, 440)], axis=1)
    p = write_wav(f"a.{ext}", st, 16000, subtype=subtype)
    y, sr = read(p)
    assert sr == 16000 and y.dtype == np.float32 and y.ndim == 1 and y.size == 16000
    assert abs(np.abs(y).max() - 0.5) < 0.02
    y2, _ = read(p, mono=False)
    assert y2.shape == (2, 16000)


def test_resample_keeps_frequency_and_length(write_wav):
    p = write_wav("a.wav", tone(22050, 1000.0), 22050)
    y, sr = read(p, sr=16000)
    assert sr == 16000 and y.size == 16000
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * 16000 / y.size - 1000.0) < 2.0
    assert np.array_equal(resample(y, 16000, 16000), y)


def test_normalisation():
    y = tone(16000, amp=0.1)
    assert np.abs(peak_normalize(y, 0.9)).max() == pytest.approx(0.9, rel=1e-6)
    z = loudness_normalize(y, -20.0)
    assert 20 * np.log10(np.sqrt(np.mean(z.astype(np.float64) ** 2))) == pytest.approx(-20.0, abs=0.01)
    loud = loudness_normalize(y, 0.0)  # would clip: limited to the peak ceiling instead
    assert np.abs(loud).max() <= 0.99 + 1e-6
    zeros = np.zeros(100, np.float32)
    assert not np.any(peak_normalize(zeros)) and not np.any(loudness_normalize(zeros))


def test_trim_and_fit_length():
    sr = 16000
    y = np.concatenate([np.zeros(sr // 2), tone(sr, seconds=0.25), np.zeros(sr // 2)]).astype(np.float32)
    t = trim_silence(y, top_db=40)
    assert abs(t.size - sr // 4) < 1100  # within a few hops of the tone's length
    c = fit_length(t, sr, "center")
    assert c.size == sr and np.abs(c[: sr // 4]).max() == 0 and np.abs(c[-sr // 4 :]).max() == 0
    s = fit_length(t, sr, "start")
    assert np.array_equal(s[: t.size], t) and not np.any(s[t.size :])
    cropped = fit_length(np.arange(10, dtype=np.float32), 4, "center")
    assert cropped.tolist() == [3, 4, 5, 6]
    shifted = fit_length(np.ones(4, np.float32), 10, "center", offset=-5)  # pushed half out of the left edge
    assert shifted.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]


def test_load_clip_applies_preprocess(write_wav):
    sr = 16000
    y = np.concatenate([np.zeros(sr), tone(22050, seconds=0.3, amp=0.2)[: int(0.3 * sr)], np.zeros(sr)])
    p = write_wav("a.wav", y, sr)
    out = load_clip(p, 16000, Preprocess(trim_db=40, normalize="peak", peak=0.9, clip_seconds=1.0))
    assert out.size == 16000 and np.abs(out).max() == pytest.approx(0.9, rel=1e-4)
    full = load_clip(p, 16000, Preprocess(trim_db=None, normalize="none"))
    assert full.size == y.size


def _bad_files(tmp_path, write_wav):
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x00\x00not really a wave file at all")
    empty = write_wav("empty.wav", np.zeros((0,), np.float32), 16000)
    silent = write_wav("silent.wav", np.zeros(16000, np.float32), 16000)
    nan = np.full(16000, 0.1, np.float32)
    nan[100] = np.nan
    nanf = write_wav("nan.wav", nan, 16000, subtype="FLOAT")
    inf = np.full(16000, 0.1, np.float32)
    inf[5] = np.inf
    inff = write_wav("inf.wav", inf, 16000, subtype="FLOAT")
    short = write_wav("short.wav", tone(16000, seconds=0.01), 16000)
    return {
        tmp_path / "garbage.wav": "unreadable",
        tmp_path / "missing.wav": "unreadable",
        empty: "empty",
        silent: "silent",
        nanf: "non-finite samples",
        inff: "non-finite samples",
        short: "too short",
    }


def test_each_bad_input_gives_a_clear_error_naming_the_file(tmp_path, write_wav):
    for path, reason in _bad_files(tmp_path, write_wav).items():
        with pytest.raises(AudioError) as e:
            read(path, min_samples=512)
        assert e.value.reason == reason, path
        assert str(e.value).startswith(str(path)), str(e.value)
        assert reason in str(e.value)


def test_scan_report_counts_reasons(tmp_path, write_wav):
    errors = []
    for path in _bad_files(tmp_path, write_wav):
        try:
            read(path, min_samples=512)
        except AudioError as e:
            errors.append(e)
    msg = scan_report(errors)
    assert msg.startswith("skipped 7 files:")
    assert "2 unreadable" in msg and "2 non-finite samples" in msg and "1 silent" in msg
    assert scan_report([]) == "skipped 0 files"


def test_silence_after_trimming_is_rejected(write_wav):
    p = write_wav("a.wav", np.full(16000, 1e-3, np.float32), 16000)
    with pytest.raises(AudioError, match="too short"):
        load_clip(p, 16000, Preprocess(trim_db=40), min_samples=20000)


def test_preprocess_validation():
    with pytest.raises(ValueError, match="normalize"):
        Preprocess(normalize="rms")
    with pytest.raises(ValueError, match="clip_seconds"):
        Preprocess(clip_seconds=0)
    with pytest.raises(ValueError, match="fade_out must be > 0"):
        Preprocess(fade_out=0)
    with pytest.raises(ValueError, match=r"fade_out \(2 s\) is longer than clip_seconds \(1 s\)"):
        Preprocess(clip_seconds=1.0, fade_out=2.0)


def test_fade_out_removes_the_stripe_a_cut_puts_in_the_last_frames(write_wav):
    import torch

    from vocoder.mel import MelConfig, MelSpectrogram

    sr = 16000
    p = write_wav("held.wav", tone(sr, 440.0, seconds=3.0), sr)  # a held tone, cut to its first second
    mel = MelSpectrogram(MelConfig(sample_rate=sr, n_fft=1024, hop_length=256, n_mels=128))
    cut = load_clip(p, sr, Preprocess(trim_db=None, clip_seconds=1.0, align="start"))
    faded = load_clip(p, sr, Preprocess(trim_db=None, clip_seconds=1.0, align="start", fade_out=0.03))
    assert faded.size == cut.size == sr
    np.testing.assert_array_equal(faded[: sr - 480], cut[: sr - 480])  # only the last 30 ms change
    assert faded[-1] == 0 and 0 < abs(faded[-240]) < abs(cut[-240])

    def last_excess(y):  # the last frame's mean level over the bands above 2 kHz, against the middle
        m = mel(torch.from_numpy(y)[None])[0].numpy()
        hi = m[m.shape[0] // 2:]
        return hi[:, -1].mean() - hi[:, 20:40].mean()

    assert last_excess(cut) > 3.0      # the cut is a broadband stripe (nats)
    assert last_excess(faded) < 0.5    # faded: the high bands stay where the steady tone puts them


def test_preprocess_key_leaves_out_an_unset_fade():
    assert "fade_out" not in Preprocess().key() and Preprocess(fade_out=0.02).key()["fade_out"] == 0.02
    assert set(Preprocess().key()) | {"fade_out"} == set(Preprocess.__dataclass_fields__)


def test_written_wav_roundtrip(tmp_path):
    from specgan.audio import write

    y = tone(16000)
    write(tmp_path / "sub" / "x.wav", y, 16000)
    back, sr = sf.read(tmp_path / "sub" / "x.wav", dtype="float32")
    assert sr == 16000 and np.abs(back - y).max() < 1e-4
