"""Smoothing along time (synth.smoothing, --smoothing): each drawn frame a·previous + (1 − 2a)·itself
+ a·next, applied wherever a clip is drawn (synth, specgan.generate, augment, evaluate's generated
set), recorded where the clips are, refused in one line when out of [0, 1/3].
"""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_cli import specgan_here

import specgan
from specgan.recipe import load_recipe
from specgan.stage_one.model import check_smoothing, smooth_frames

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "pretrained" / "speech-multi" / "specgan.safetensors"


def test_smooth_frames_is_the_three_tap_filter_with_repeated_ends():
    x = torch.tensor([[0.0, 4.0, 0.0, 8.0]])
    torch.testing.assert_close(smooth_frames(x, 0.25), torch.tensor([[1.0, 2.0, 3.0, 6.0]]))
    assert smooth_frames(x, 0.0) is x
    y = torch.rand(2, 5, 9) * 2 - 1
    out = smooth_frames(y, 1 / 3)
    assert out.shape == y.shape and out.min() >= y.min() and out.max() <= y.max()  # a convex combination
    torch.testing.assert_close(out[..., 3], y[..., 2:5].mean(-1))
    flat = torch.full((1, 3, 7), -0.4)
    torch.testing.assert_close(smooth_frames(flat, 0.25), flat)  # a constant track is unchanged
    # what it is for: an alternating (frame-rate) wobble is removed at a = 0.25, a slow ramp kept
    wobble = torch.tensor([(-1.0) ** t for t in range(16)])
    assert smooth_frames(wobble, 0.25)[1:-1].abs().max() < 1e-6
    ramp = torch.linspace(-1, 1, 16)
    torch.testing.assert_close(smooth_frames(ramp, 0.25)[1:-1], ramp[1:-1])


def test_check_smoothing_names_the_range():
    assert check_smoothing(0) == 0.0 and check_smoothing(1 / 3) == pytest.approx(1 / 3)
    for bad in (-0.1, 0.4, True, "0.25", None):
        with pytest.raises(ValueError, match=r"smoothing: must be a number in \[0, 1/3\]"):
            check_smoothing(bad)
    with pytest.raises(ValueError, match=r"synth\.smoothing.*\[0, 1/3\]"):
        load_recipe(ROOT / "recipes" / "speech-multi.yaml", ["synth.smoothing=0.5"])


def test_the_models_draws_are_smoothed_by_its_setting_or_the_argument():
    m = specgan.load_stage_one(SPEECH)
    assert m.smoothing == 0.0
    plain = m.sample_normalised("seven", seeds=[3, 4], truncation=1.0)
    smooth = m.sample_normalised("seven", seeds=[3, 4], truncation=1.0, smoothing=0.25)
    torch.testing.assert_close(smooth, smooth_frames(plain, 0.25))
    m.smoothing = 0.25  # the model's own setting is the default of every draw
    assert torch.equal(m.sample_normalised("seven", seeds=[3, 4], truncation=1.0), smooth)
    assert torch.equal(m.sample_normalised("seven", seeds=[3, 4], truncation=1.0, smoothing=0), plain)
    torch.testing.assert_close(m.sample("seven", seeds=[3], truncation=1.0), m.stats.denormalize(smooth[:1]))
    alone = m.sample_normalised("seven", seeds=[4], truncation=1.0)
    assert torch.equal(alone[0], smooth[1])  # a clip drawn alone is the clip of a set


def test_synth_generate_and_augment_draw_with_the_recipes_smoothing_and_record_it(tmp_path):
    common = ["--recipe", "speech-multi.yaml", "--set", f"work_dir={tmp_path / 'w'}", "--label", "seven",
              "--seed", "5", "--vocoder", "griffinlim"]
    bad = specgan_here("synth", *common, "--n", "1", "--smoothing", "0.5", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode != 0 and "smoothing: must be a number in [0, 1/3]" in bad.stderr
    assert not (tmp_path / "x").exists()
    recipe = load_recipe(ROOT / "recipes" / "speech-multi.yaml")
    specgan_here("synth", *common, "--n", "1", "--out", str(tmp_path / "rec"))
    specgan_here("synth", *common, "--n", "1", "--smoothing", "0", "--out", str(tmp_path / "raw"))
    assert json.loads((tmp_path / "rec" / "synth.json").read_text())["smoothing"] == recipe.synth.smoothing
    assert json.loads((tmp_path / "raw" / "synth.json").read_text())["smoothing"] == 0.0
    rec, _ = sf.read(tmp_path / "rec" / "seven_seed00005.wav", dtype="float32")
    raw, _ = sf.read(tmp_path / "raw" / "seven_seed00005.wav", dtype="float32")
    assert recipe.synth.smoothing > 0 and not np.array_equal(rec, raw)
    path = str(ROOT / "recipes" / "speech-multi.yaml")
    wav, _ = specgan.generate("seven", seed=5, recipe=path, vocoder="griffinlim")  # the recipe's smoothing
    np.testing.assert_allclose(wav, rec, atol=1.5 / 32768)
    wav, _ = specgan.generate("seven", seed=5, recipe=path, vocoder="griffinlim", smoothing=0)
    np.testing.assert_allclose(wav, raw, atol=1.5 / 32768)
    specgan_here("augment", *common, "--per-class", "1", "--out", str(tmp_path / "aug"))
    row = json.loads((tmp_path / "aug" / "manifest.jsonl").read_text().splitlines()[0])
    assert row["smoothing"] == recipe.synth.smoothing
    a, _ = sf.read(tmp_path / "aug" / row["path"], dtype="int16")
    b, _ = sf.read(tmp_path / "rec" / "seven_seed00005.wav", dtype="int16")
    assert np.array_equal(a, b)  # the augment clip is the synth clip, smoothing included


def test_modulation_ratio_finds_a_flicker_and_smoothing_removes_it():
    from specgan.metrics import modulation_ratio, modulation_spectrum

    rng = np.random.default_rng(0)
    t = np.arange(64)
    slow = np.sin(2 * np.pi * t / 32)[None, None] * rng.uniform(0.5, 1, (8, 4, 1))  # ~2 Hz at 62.5 frames/s
    f, p = modulation_spectrum(slow, 62.5)
    assert f[np.argmax(p)] == pytest.approx(62.5 / 32)
    same = modulation_ratio(slow, slow, 62.5)
    assert set(same) == {"0-4 Hz", "4-8 Hz", "8-16 Hz", "16-32 Hz"} and all(v == pytest.approx(1) for v in same.values())
    flicker = slow + 0.2 * rng.standard_normal(slow.shape)
    noisy = modulation_ratio(slow + 0.2 * rng.standard_normal(slow.shape), flicker, 62.5)
    assert noisy["16-32 Hz"] == pytest.approx(1, rel=0.3) and noisy["0-4 Hz"] == pytest.approx(1, rel=0.3)
    rough = modulation_ratio(slow + 0.05 * rng.standard_normal(slow.shape), flicker, 62.5)
    assert rough["16-32 Hz"] > 4 and rough["0-4 Hz"] < 1.5
    smoothed = smooth_frames(torch.from_numpy(flicker), 0.25).numpy()
    assert modulation_ratio(flicker, smoothed, 62.5)["16-32 Hz"] < 0.5 * modulation_ratio(flicker, flicker, 62.5)["16-32 Hz"]
