"""The truncation trick (synth.truncation, --truncation): every latent scaled by psi, the same
everywhere a clip is drawn (synth, specgan.generate, augment, evaluate's generated set)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_cli import specgan_here

import specgan
from specgan.stage_one.model import noise

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "pretrained" / "speech-multi" / "specgan.safetensors"


def test_truncation_scales_the_latent_and_one_is_as_trained():
    m = specgan.load_stage_one(SPEECH)
    assert m.truncation == 1.0
    plain = m.sample_normalised("seven", seeds=[3, 4])
    assert torch.equal(plain, m.sample_normalised("seven", seeds=[3, 4], truncation=1.0))
    z = torch.cat([noise(m.generator.z_dim, s) for s in (3, 4)])
    half = m.sample_normalised("seven", seeds=[3, 4], truncation=0.5)
    assert torch.equal(half, m.draw(z * 0.5, "seven", seeds=[3, 4]))
    assert not torch.allclose(half, plain)
    m.truncation = 0.5  # the model's own setting is the default of every draw
    assert torch.equal(m.sample_normalised("seven", seeds=[3, 4]), half)
    torch.testing.assert_close(m.sample("seven", seeds=[3]), m.stats.denormalize(half[:1]))
    for bad in (0, 1.5, -0.2, True, "0.5"):
        with pytest.raises(ValueError, match=r"truncation: must be a number in \(0, 1\]"):
            m.sample_normalised("seven", seeds=[3], truncation=bad)


def test_truncation_draws_clips_nearer_the_generators_typical_output():
    """What psi < 1 buys: the clips of one word lie closer together (less variety)."""
    m = specgan.load_stage_one(SPEECH)
    spread = {psi: m.sample_normalised("four", seeds=range(16), batch_size=None, truncation=psi).std(0).mean().item()
              for psi in (1.0, 0.5)}
    assert spread[0.5] < 0.9 * spread[1.0]


def test_synth_and_generate_draw_with_the_recipes_truncation_and_refuse_a_bad_one(tmp_path):
    common = ["--recipe", "speech-multi.yaml", "--set", f"work_dir={tmp_path / 'w'}", "--label", "seven",
              "--n", "1", "--seed", "5", "--vocoder", "griffinlim"]
    bad = specgan_here("synth", *common, "--truncation", "1.5", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode != 0 and "truncation: must be a number in (0, 1]" in bad.stderr
    assert not (tmp_path / "x").exists()
    bad = specgan_here("synth", *common, "--set", "synth.truncation=0", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode != 0 and "synth.truncation" in bad.stderr and "(0, 1]" in bad.stderr
    specgan_here("synth", *common, "--out", str(tmp_path / "half"))  # speech-multi.yaml: synth.truncation 0.5
    specgan_here("synth", *common, "--truncation", "1", "--out", str(tmp_path / "full"))
    assert json.loads((tmp_path / "half" / "synth.json").read_text())["truncation"] == 0.5
    assert json.loads((tmp_path / "full" / "synth.json").read_text())["truncation"] == 1.0
    half, sr = sf.read(tmp_path / "half" / "seven_seed00005.wav", dtype="float32")
    full, _ = sf.read(tmp_path / "full" / "seven_seed00005.wav", dtype="float32")
    assert not np.array_equal(half, full)
    recipe = str(ROOT / "recipes" / "speech-multi.yaml")
    wav, _ = specgan.generate("seven", seed=5, recipe=recipe, vocoder="griffinlim")  # the recipe's psi
    np.testing.assert_allclose(wav, half, atol=1.5 / 32768)  # the synth file, up to its 16-bit rounding
    wav, _ = specgan.generate("seven", seed=5, recipe=recipe, vocoder="griffinlim", truncation=1.0)
    np.testing.assert_allclose(wav, full, atol=1.5 / 32768)


def test_augment_draws_with_the_recipes_truncation_and_records_it(tmp_path):
    common = ["--recipe", "speech-multi.yaml", "--set", f"work_dir={tmp_path / 'w'}", "--label", "seven",
              "--per-class", "1", "--seed", "5", "--vocoder", "griffinlim"]
    bad = specgan_here("augment", *common, "--truncation", "2", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode != 0 and "truncation: must be a number in (0, 1]" in bad.stderr
    specgan_here("augment", *common, "--out", str(tmp_path / "aug"))
    row = json.loads((tmp_path / "aug" / "manifest.jsonl").read_text().splitlines()[0])
    assert row["truncation"] == 0.5 and row["seed"] == 5
    specgan_here("synth", "--recipe", "speech-multi.yaml", "--set", f"work_dir={tmp_path / 'w'}", "--label", "seven",
                 "--n", "1", "--seed", "5", "--vocoder", "griffinlim", "--out", str(tmp_path / "s"))
    a, _ = sf.read(tmp_path / "aug" / row["path"], dtype="int16")
    b, _ = sf.read(tmp_path / "s" / "seven_seed00005.wav", dtype="int16")
    assert np.array_equal(a, b)  # the augment clip is the synth clip, truncation included
