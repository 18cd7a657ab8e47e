"""Using the vocoders as a user does, at the CLI: the shipped ones by default, fine-tuning the
shipped speech vocoder on one's own recordings, other sample rates, long files in bounded memory."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import speech_like
from test_cli import specgan, specgan_here

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_shipped_recipes_synthesise_with_the_vocoders_the_rule_picks(tmp_path):
    """A fresh work dir (nothing trained): speech recipes synthesise with the shipped speech vocoder
    and music.yaml with the shipped music vocoder (both pass docs/vocoder.md's rule); Griffin-Lim is
    one flag away."""
    for recipe, vocoder_name, expected in (("speech-multi.yaml", None, ROOT / "pretrained/speech/vocoder.safetensors"),
                                           ("music.yaml", None, ROOT / "pretrained/music/vocoder.safetensors"),
                                           ("speech.yaml", "griffinlim", "griffinlim"),
                                           ("music.yaml", "griffinlim", "griffinlim")):
        out = tmp_path / f"{recipe}-{vocoder_name}"
        run = specgan if vocoder_name is None else specgan_here  # the defaults through a fresh process
        run("synth", "--recipe", recipe, "--set", f"work_dir={tmp_path / 'w'}", "--n", "1", "--out", str(out),
            *(["--vocoder", vocoder_name] if vocoder_name else []))
        got = json.loads((out / "synth.json").read_text())["vocoder"]
        assert (got == expected) if isinstance(expected, str) else Path(got).resolve() == expected.resolve(), got


def test_recipes_name_the_vocoders_the_rule_picks():
    from specgan.recipe import load_recipe

    for name in ("speech", "speech-multi", "voices", "voice"):
        r = load_recipe(f"{name}.yaml")
        assert r.synth.vocoder == "auto"
        assert r.resolve(r.pretrained.vocoder).resolve() == (ROOT / "pretrained/speech/vocoder.safetensors").resolve()
    music = load_recipe("music.yaml")
    assert music.synth.vocoder == "auto"
    assert music.resolve(music.pretrained.vocoder).resolve() == (ROOT / "pretrained/music/vocoder.safetensors").resolve()
    # the recipe's exported files run as the shipped one does
    assert music.vocoder.inference == {"pghi_tol": 1e-3, "refine_iter": 0, "mel_refine_iter": 8, "mel_nnls_iter": 10}
    assert load_recipe("music-voc.yaml").pretrained.vocoder is None  # it trains its own


@pytest.mark.slow
def test_fine_tuning_the_shipped_vocoder_on_a_folder(tmp_path):
    """recipes/voice.yaml: prepare a folder of recordings, then train from the shipped file: the run
    starts from its weights (not a fresh model), trains the asked steps and writes a usable model;
    a vocoder of another mel is refused in one line."""
    data = tmp_path / "my voice"
    data.mkdir()
    for i in range(10):
        sf.write(data / f"take{i}.wav", speech_like(22050, 2.0, seed=i), 22050)  # another rate: resampled
    work = tmp_path / "work"
    sets = ["--set", f"data.source={data}", "--set", f"work_dir={work}", "--set", "vocoder.batch_size=2"]
    specgan("prepare", "--recipe", "voice.yaml", *sets)
    specgan("train", "--recipe", "voice.yaml", *sets, "--stage", "vocoder", "--init-from", "speech", "--steps", "3")
    import vocoder

    tuned = vocoder.load(work / "vocoder" / "model.safetensors")
    shipped = vocoder.load(ROOT / "pretrained/speech/vocoder.safetensors")
    assert tuned.checkpoint_meta["step"] == 3
    a, b = tuned.state_dict(), shipped.state_dict()
    moved = max(float((a[k] - b[k]).abs().max()) for k in a)
    spread = max(float(b[k].abs().max()) for k in b)
    assert 0 < moved < 0.05 * spread  # three small steps away from the shipped weights
    y = tuned(torch.randn(64, 40) - 4)
    assert y.shape == (40 * 256,) and torch.isfinite(y).all()
    bad = specgan("train", "--recipe", "voice.yaml", *sets, "--stage", "vocoder", "--init-from", "music",
                  "--steps", "1", "--force", check=False)
    assert bad.returncode == 2 and "n_mels" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_init_from_a_missing_or_foreign_file_is_one_line(tmp_path):
    proc = specgan_here("train", "--recipe", "tiny.yaml", "--set", f"work_dir={tmp_path}", "--stage", "vocoder",
                        "--init-from", str(tmp_path / "none.safetensors"), check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("sr,hop,frames", [(22050, 256, 128), (24000, 256, 128), (44100, 512, 128)])
def test_a_recipe_at_another_sample_rate_runs_both_stages(tmp_path, sr, hop, frames):
    """The mel and the vocoder at 22.05, 24 and 44.1 kHz: the tiny recipe's prepare, features and
    vocoder training (at 22.05 kHz stage one and synth too), then copy synthesis of a file at the
    recipe's rate. In this process (a fresh interpreter per call would add ~5 s of imports each)."""
    work = tmp_path / "w"
    sets = ["--set", f"work_dir={work}", "--set", f"mel.sample_rate={sr}", "--set", f"mel.fmax={sr // 2}",
            "--set", f"mel.hop_length={hop}", "--set", f"mel.n_fft={4 * hop}", "--set", f"mel.win_length={4 * hop}",
            "--set", f"specgan.frames={frames}", "--set", f"vocoder.segment_samples={8 * hop}"]
    if sr == 22050:  # both stages and synth at one rate; the vocoder's stages at every rate
        specgan_here("run", "--recipe", "tiny.yaml", *sets, "--stop-stage", "synth")
        meta = json.loads((work / "synth" / "synth.json").read_text())
        assert meta["sample_rate"] == sr and meta["vocoder"].endswith("model.safetensors")
        y, got = sf.read(work / "synth" / meta["clips"][0]["wav"])
        assert got == sr and len(y) == round(sr * 1.0)
    else:
        specgan_here("run", "--recipe", "tiny.yaml", *sets, "--stop-stage", "features")
        specgan_here("train", "--recipe", "tiny.yaml", *sets, "--stage", "vocoder")
    wav = tmp_path / "in.wav"
    sf.write(wav, speech_like(sr, 1.0), sr)
    specgan_here("vocode", "--recipe", "tiny.yaml", *sets, "--vocoder", str(work / "vocoder"), str(wav),
            "--out", str(tmp_path / "voc"))
    y, got = sf.read(tmp_path / "voc" / "in.wav")
    assert got == sr and abs(len(y) - sr) <= hop and np.abs(y).max() > 0


@pytest.mark.slow
def test_a_long_file_vocodes_in_pieces_identical_to_one_pass(tmp_path):
    """vocode streams: the mel is computed chunk by chunk and the WAV written as it comes; the result
    equals the in-memory chunked vocode (same cross-fades) to 16-bit rounding."""
    from specgan.recipe import load_recipe
    from specgan.synth import vocode_files
    from vocoder.inference import vocode
    from vocoder.mel import MelSpectrogram
    from vocoder.registry import build_generator

    recipe = load_recipe("tiny.yaml", [f"work_dir={tmp_path / 'w'}"])
    y = np.concatenate([speech_like(16000, 2.0, seed=i) for i in range(5)])  # 10 s: several chunks
    wav = tmp_path / "long.wav"
    sf.write(wav, y, 16000, subtype="FLOAT")
    out = vocode_files([wav], "griffinlim", recipe, out=tmp_path / "out", chunk_frames=128)[0]
    got, _ = sf.read(out)
    g = build_generator({"name": "griffinlim"}, recipe.mel).eval()
    mel = MelSpectrogram(recipe.mel)(torch.from_numpy(y))
    ref = vocode(g, mel, chunk_frames=128).clamp(-1, 1).numpy()
    assert got.shape == ref.shape and np.abs(got - ref).max() < 2 / 32768
    assert not list((tmp_path / "out").glob(".*partial"))


def test_shipped_models_by_name_from_any_folder(tmp_path, monkeypatch):
    """The README's notebook line works outside the repository: specgan.shipped names the file, and
    the CLI's --vocoder / --init-from take the same names."""
    import specgan
    import vocoder

    monkeypatch.chdir(tmp_path)
    g = vocoder.load(specgan.shipped("speech"))
    assert g.sample_rate == 16000 and specgan.shipped("music", "specgan").is_file()
    with pytest.raises(FileNotFoundError, match="shipped: music, speech"):
        specgan.shipped("nope")
    from specgan.checkpoints import find_vocoder

    assert find_vocoder("speech") == specgan.shipped("speech")
    assert find_vocoder("exp/speech") == Path("exp/speech")  # a path stays a path
