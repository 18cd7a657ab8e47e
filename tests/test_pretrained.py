"""Shipping: float16 copies load into the same float32 models and give (nearly) the same output."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_specgan_train import cfg, data  # noqa: E402

import specgan  # noqa: E402
import vocoder  # noqa: E402
from specgan.checkpoints import half_copy  # noqa: E402
from specgan.stage_one.trainer import SpecGANTrainer  # noqa: E402
from vocoder.checkpoint import save_generator  # noqa: E402
from vocoder.mel import MelConfig, MelStats  # noqa: E402
from vocoder.registry import build_generator  # noqa: E402


def test_half_copy_of_stage_one_and_vocoder(tmp_path):
    mel = MelConfig(n_mels=16, n_fft=256, hop_length=64)
    tr = SpecGANTrainer(cfg(steps=2), data(), tmp_path / "g", mel=mel,
                        stats=MelStats(np.full(16, -5.0), np.full(16, 2.0)).to_dict())
    tr.fit(progress=False, tensorboard=False)
    src = tmp_path / "g" / "model.safetensors"
    dst = half_copy(src, tmp_path / "ship" / "specgan.safetensors")
    assert dst.stat().st_size < 0.6 * src.stat().st_size
    a, b = specgan.load_stage_one(src), specgan.load_stage_one(dst)
    assert b.vocab == a.vocab and b.step == a.step and next(b.generator.parameters()).dtype == torch.float32
    torch.testing.assert_close(b.sample_normalised("a", seeds=[3, 4]), a.sample_normalised("a", seeds=[3, 4]),
                               atol=2e-2, rtol=0)

    g = build_generator({"name": "istft", "dim": 32, "intermediate_dim": 64, "num_layers": 2}, mel)
    vsrc = save_generator(tmp_path / "v" / "model.safetensors", g, {"name": "istft", "dim": 32, "intermediate_dim": 64,
                                                                    "num_layers": 2}, step=7, extra={"recipe": "x"})
    vdst = half_copy(vsrc, tmp_path / "ship" / "vocoder.safetensors")
    va, vb = vocoder.load(vsrc), vocoder.load(vdst)
    assert vb.checkpoint_meta["extra"] == {"recipe": "x"} and vb.checkpoint_meta["step"] == 7
    m = torch.randn(1, 16, 20) - 4
    ya, yb = va(m), vb(m)
    assert ya.shape == yb.shape and (ya - yb).abs().max() < 0.05 * ya.abs().max() + 1e-4


def test_half_copy_sets_an_inference_switch_and_refuses_one_that_changes_the_tensors(tmp_path):
    from vocoder.checkpoint import ModelFileError

    mel = MelConfig(n_mels=16, n_fft=256, hop_length=64)
    spec = {"name": "phase", "phase_head": "pghi", "n_fft": 64, "upsample": 4, "dim": 16, "intermediate_dim": 32,
            "num_layers": 1, "branch_dim": 16, "branch_intermediate_dim": 32, "amp_layers": 1, "refine_iter": 2}
    src = save_generator(tmp_path / "v" / "model.safetensors", build_generator(spec, mel), spec, step=3)
    dst = half_copy(src, tmp_path / "ship" / "vocoder.safetensors", kwargs={"pghi_mode": "frames"})
    g = vocoder.load(dst)
    assert g.pghi_mode == "frames" and g.checkpoint_meta["generator"]["pghi_mode"] == "frames"
    assert vocoder.load(src).pghi_mode == "offline"  # the source is untouched
    assert g(torch.randn(1, 16, 10) - 4).shape == (1, 1, 640)
    with pytest.raises(ModelFileError, match="amp_layers.*would change the model"):  # a switch that changes a tensor: nothing written
        half_copy(src, tmp_path / "ship" / "bad.safetensors", kwargs={"amp_layers": 2})
    assert sorted(p.name for p in (tmp_path / "ship").iterdir()) == ["vocoder.safetensors"]


def test_load_overrides_inference_settings_for_one_load_and_refuses_a_shape_change(tmp_path):
    from specgan.checkpoints import parse_kwargs
    from vocoder.checkpoint import ModelFileError

    mel = MelConfig(n_mels=16, n_fft=256, hop_length=64)
    spec = {"name": "phase", "phase_head": "pghi", "n_fft": 64, "upsample": 4, "dim": 16, "intermediate_dim": 32,
            "num_layers": 1, "branch_dim": 16, "branch_intermediate_dim": 32, "amp_layers": 1, "refine_iter": 2}
    src = save_generator(tmp_path / "v" / "model.safetensors", build_generator(spec, mel), spec, step=3)
    kw = parse_kwargs(["pghi_mode=frames", "refine_iter=0", "pghi_tol=1e-3"])
    assert kw == {"pghi_mode": "frames", "refine_iter": 0, "pghi_tol": 1e-3}
    g = vocoder.load(src, kwargs=kw)
    assert (g.pghi_mode, g.refine_iter) == ("frames", 0)
    assert g.checkpoint_meta["generator"]["refine_iter"] == 0 and g.checkpoint_meta["step"] == 3
    plain = vocoder.load(src)  # the file is unchanged and the next load reads it as written
    assert (plain.pghi_mode, plain.refine_iter) == ("offline", 2)
    m = torch.randn(1, 16, 10) - 4
    assert not torch.equal(g(m), plain(m))  # the override really runs (no iterations, frame PGHI)
    with pytest.raises(ModelFileError, match=str(src.name)):
        vocoder.load(src, kwargs={"amp_layers": 2})
    for bad in (["refine_iter"], ["=3"]):
        with pytest.raises(ValueError, match="--vocoder-kwarg.*expected KEY=VALUE"):
            parse_kwargs(bad)


def test_half_copy_refuses_what_float16_cannot_hold(tmp_path):
    from vocoder.checkpoint import save_model

    big = torch.nn.Linear(1, 1)
    with torch.no_grad():
        big.weight.fill_(1e6)
    save_model(tmp_path / "big.safetensors", big, kind="classifier", name="x", kwargs={}, step=0)
    with pytest.raises(ValueError, match="tensor weight exceeds the float16 range"):
        half_copy(tmp_path / "big.safetensors", tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_synth_falls_back_to_the_recipes_pretrained_models(tmp_path):
    from specgan.recipe import load_recipe
    from specgan.synth import synth

    mel = MelConfig(n_mels=16, n_fft=256, hop_length=64)
    tr = SpecGANTrainer(cfg(steps=2), data(), tmp_path / "g",
                        mel=mel, stats=MelStats(np.full(16, -5.0), np.full(16, 2.0)).to_dict())
    tr.fit(progress=False, tensorboard=False)
    shipped = half_copy(tmp_path / "g" / "model.safetensors", tmp_path / "ship" / "specgan.safetensors")
    work = tmp_path / "fresh"  # nothing trained here
    recipe = load_recipe("recipes/tiny.yaml", [f"work_dir={work}", f"pretrained.specgan={shipped}",
                                               "data.preprocess.clip_seconds=null"])
    # No vocoder trained here and the recipe ships none (speech.yaml: pretrained.vocoder null):
    # auto is Griffin-Lim.
    assert synth(recipe, n=2, progress=False).vocoder == "griffinlim"
    res = synth(recipe, n=3, vocoder_name="griffinlim", progress=False)
    assert res.stage_one == str(shipped) and res.labels == ["a", "b", "c"]
    import soundfile as sf

    y, sr = sf.read(res.wavs[0])
    assert sr == mel.sample_rate and y.shape == (16 * 64,)  # the model's mel and span: 16 frames x hop 64
    missing = load_recipe("recipes/tiny.yaml", [f"work_dir={work}", "pretrained.specgan=nowhere.safetensors"])
    with pytest.raises(FileNotFoundError, match="pretrained.specgan: .*nowhere.safetensors not found"):
        synth(missing, n=1, vocoder_name="griffinlim", progress=False)


def test_a_recipe_that_trains_a_vocoder_synthesises_with_it(tmp_path):
    """A recipe extending speech.yaml (tiny does) inherits synth.vocoder auto: once stage 3 has
    trained <work>/vocoder, stage 4 uses it, not Griffin-Lim."""
    from specgan.recipe import load_recipe
    from specgan.synth import synth
    from vocoder.checkpoint import save_generator

    mel = MelConfig(n_mels=16, n_fft=256, hop_length=64)
    tr = SpecGANTrainer(cfg(steps=1), data(), tmp_path / "g", mel=mel,
                        stats=MelStats(np.full(16, -5.0), np.full(16, 2.0)).to_dict())
    tr.fit(progress=False, tensorboard=False)
    work = tmp_path / "w"
    recipe = load_recipe("recipes/tiny.yaml", [f"work_dir={work}", f"pretrained.specgan={tmp_path / 'g' / 'model.safetensors'}",
                                               "data.preprocess.clip_seconds=null"])
    assert recipe.synth.vocoder == "auto"
    spec = {"name": "istft", "dim": 16, "intermediate_dim": 32, "num_layers": 1}
    own = save_generator(work / "vocoder" / "model.safetensors", build_generator(spec, mel), spec, step=4)
    assert synth(recipe, n=2, out=tmp_path / "out", progress=False).vocoder == str(own)


def test_synth_refuses_absurd_requests_before_doing_any_work(tmp_path):
    from specgan.recipe import load_recipe
    from specgan.synth import synth

    mel = MelConfig(n_mels=16, n_fft=256, hop_length=64)
    tr = SpecGANTrainer(cfg(steps=1), data(), tmp_path / "g",
                        mel=mel, stats=MelStats(np.full(16, -5.0), np.full(16, 2.0)).to_dict())
    tr.fit(progress=False, tensorboard=False)
    recipe = load_recipe("recipes/tiny.yaml", [f"work_dir={tmp_path / 'w'}",
                                               f"pretrained.specgan={tmp_path / 'g' / 'model.safetensors'}",
                                               "data.preprocess.clip_seconds=null"])
    out = tmp_path / "out"
    for kw, msg in (({"n": 10**9}, "more than 100000 clips"), ({"n": 0}, "at least 1"),
                    ({"n": 2, "labels": ["z"]}, "unknown label 'z'; this model knows: a, b, c"),
                    ({"interpolate": (1, 2), "points": 1}, "--points must be 2 to 100000")):
        with pytest.raises(ValueError, match=msg):
            synth(recipe, vocoder_name="griffinlim", out=out, progress=False, **kw)
        assert not out.exists() or not any(out.iterdir())


def test_shipped_models_synthesise_what_they_did_before_the_stage_one_package():
    """The shipped stage-one files, written before the class prior and the harmonic head became
    modules (tensors ``prior``, ``comb_*``, ``source.*``), load through the legacy-name map and
    draw the very log-mels they drew before (tests/data/pretrained_reference.npz: seeds 5 and 6,
    one batch, made with the code of c613c4e; equal to float rounding, which differs between
    CPUs), and the shipped vocoders turn the first into the same 16-bit samples (to 50 dB; the
    speech vocoder's samples were redrawn from the stored mels when its file was replaced on
    2026-12-05)."""
    torch.set_num_threads(1)
    ref = np.load(Path(__file__).parent / "data" / "pretrained_reference.npz")
    for name, voc_name in (("speech", "speech"), ("speech-multi", "speech"), ("music", "music")):
        model = specgan.load_stage_one(specgan.shipped(name, "specgan"))
        label = str(ref[f"{name}/label"])
        logmel = model.sample(label, seeds=[5, 6], batch_size=None)
        # float rounding differs between CPUs (AVX2 / AVX-512 kernels: up to ~1e-5 nats here); a
        # wrong tensor name or layout moves the mels by whole nats
        np.testing.assert_allclose(logmel.numpy(), ref[f"{name}/logmel"], rtol=0, atol=1e-4, err_msg=name)
        voc = vocoder.load(specgan.shipped(voc_name))
        if name == "music":  # the reference was drawn with the music file's settings of then (its weights are the same)
            voc.pghi_tol, voc.refine_iter, voc.mel_refine_iter = 1e-5, 16, 0
        with torch.inference_mode():
            wav = voc(logmel[:1].float()).reshape(-1).clamp(-1, 1).numpy()
        # the pghi vocoder's phase retrieval carries that rounding into the samples (on an AVX-512 CPU
        # 65-83 dB from the reference, up to 33 LSB on music); a wrong weight or layout is near 0 dB
        ref16 = ref[f"{name}/wav16"].astype(np.float64)
        err = np.round(wav * 32767) - ref16
        snr = 10 * np.log10(np.sum(ref16**2) / max(np.sum(err**2), 1e-9))
        assert snr >= 50, f"{name}: {snr:.1f} dB from the reference"


def test_a_checkpoint_with_the_old_tensor_names_resumes():
    """A state dict written before the class prior and the harmonic head became modules (``prior``,
    ``comb_*``, ``f0_bank``, ``source.*`` at the top level) loads into today's generator, strictly:
    a ``state.pt`` from before the move still resumes."""
    from specgan.stage_one.generator import Generator

    g = Generator(64, 16, z_dim=8, d=4, n_classes=3, embed_dim=4, class_prior="mean", harmonic=True,
                  f0_source="data", f0_contours=6)
    with torch.no_grad():
        for v in g.state_dict().values():
            if v.is_floating_point():
                v.copy_(torch.randn_like(v))
    new_to_old = {new: old for old, new in Generator.LEGACY_KEYS.items()}
    legacy = {new_to_old.get(k, k): v.clone() for k, v in g.state_dict().items()}
    assert "prior" in legacy and "comb_fb" in legacy and "source.weight" in legacy  # the old layout
    again = Generator(64, 16, z_dim=8, d=4, n_classes=3, embed_dim=4, class_prior="mean", harmonic=True,
                      f0_source="data", f0_contours=6)
    again.load_state_dict(legacy)  # strict
    for k, v in g.state_dict().items():
        torch.testing.assert_close(again.state_dict()[k], v)


def test_the_shipped_codec_and_enhancer_run_from_a_fresh_work_dir(tmp_path):
    """A fresh clone has no exp/: `specgan encode/decode` and `specgan enhance` fall back to the
    recipes' pretrained.codec and pretrained.enhance, and what comes out is the input's speech
    (closer to it than the degraded input or a silent output)."""
    import soundfile as sf
    from conftest import speechy

    from specgan import metrics as M
    from specgan.cli import main

    sr, work = 16000, f"work_dir={tmp_path / 'fresh'}"
    clean = np.concatenate([speechy(1.5, f0=120, seed=1), speechy(1.5, f0=180, seed=2)])
    sf.write(tmp_path / "speech.wav", clean, sr)
    assert main(["encode", "--recipe", "codec.yaml", "--set", work, "--bitrate", "3k", str(tmp_path / "speech.wav"),
                 "-o", str(tmp_path / "speech.sgc")]) == 0
    assert main(["decode", "--recipe", "codec.yaml", "--set", work, str(tmp_path / "speech.sgc"),
                 "-o", str(tmp_path / "decoded.wav")]) == 0
    size = (tmp_path / "speech.sgc").stat().st_size
    assert size * 8 / 3.0 < 3400  # 2.81 kbps of codes + the 40-byte header, over 3 s
    y, ysr = sf.read(tmp_path / "decoded.wav", dtype="float32")
    assert ysr == sr and len(y) == len(clean)
    from vocoder.mel import MelSpectrogram

    mel_fn = MelSpectrogram(MelConfig(sample_rate=sr, n_fft=1024, hop_length=256, n_mels=64, fmin=0.0, fmax=8000.0))

    def log_mel_l1(a, b):
        return float((mel_fn(torch.from_numpy(a)) - mel_fn(torch.from_numpy(b))).abs().mean())

    other = np.concatenate([speechy(1.5, f0=220, seed=5), speechy(1.5, f0=90, seed=6)])  # other speech, same shape
    decoded_err, other_err = log_mel_l1(clean, y), log_mel_l1(clean, other)

    rng = np.random.default_rng(0)
    noise = rng.standard_normal(len(clean)).astype(np.float32)
    noisy = clean + noise * np.sqrt(np.mean(clean**2) / np.mean(noise**2) / 10 ** (5 / 10))  # white, 5 dB
    sf.write(tmp_path / "noisy.wav", noisy, sr)
    assert main(["enhance", "--recipe", "enhance.yaml", "--set", work, str(tmp_path / "noisy.wav"),
                 "--out", str(tmp_path / "enhanced")]) == 0
    e, esr = sf.read(tmp_path / "enhanced" / "noisy.wav", dtype="float32")
    assert esr == sr and len(e) == len(clean)
    assert M.si_sdr(clean, e) > M.si_sdr(clean, noisy) + 1.0  # the gain synthesis removes noise
    assert decoded_err < 0.8 * other_err, (decoded_err, other_err)  # the decoded audio is this speech (1.02 vs 1.58 at 18k steps)
