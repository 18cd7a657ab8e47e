"""Vocoder library: every generator x critic trains, tiny models overfit, checkpoints, resume,
mismatch refusal, chunked inference, registry errors."""

import json
import math

import numpy as np
import pytest
import torch

import vocoder
from vocoder.config import VocoderConfig
from vocoder.critics import CriticSet
from vocoder.data import SegmentDataset
from vocoder.inference import vocode, vocode_stream
from vocoder.mel import MelConfig, MelConfigMismatch, MelSpectrogram
from vocoder.registry import build_critic, build_generator, generator_names
from vocoder.train import VocoderTrainer

SR = 8000
MEL = MelConfig(sample_rate=SR, n_fft=256, hop_length=64, n_mels=20)
TINY_G = {
    "hifigan": dict(preset=None, upsample_rates=[8, 8], upsample_kernel_sizes=[16, 16], upsample_initial_channel=16,
                    resblock="1", resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]]),
    "hifigan_snake": dict(preset=None, upsample_rates=[8, 8], upsample_kernel_sizes=[16, 16],
                          upsample_initial_channel=16, resblock="2", resblock_kernel_sizes=[3],
                          resblock_dilation_sizes=[[1, 2]]),
    "melgan": dict(upsample_rates=[8, 8], channels=8, n_residual_layers=2),
    "istft": dict(dim=32, intermediate_dim=64, num_layers=2),
    "phase": dict(dim=32, intermediate_dim=64, num_layers=1, branch_dim=16, branch_intermediate_dim=32),
}
TINY_STFT = [[256, 64, 256], [128, 32, 128]]
TINY_C = {"msd": dict(scales=2, width=0.0625), "mpd": dict(periods=[2, 3], width=0.0625),
          "mrd": dict(resolutions=[[256, 64, 256], [128, 32, 128]], width=0.25)}


def harmonic(seconds=0.5, f0=220.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    y = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 8))
    return (0.5 * y / np.abs(y).max() * np.minimum(1, 10 * t)).astype(np.float32)


@pytest.fixture
def clips(tmp_path):
    import soundfile as sf

    paths = []
    for i, f0 in enumerate((180.0, 220.0, 260.0, 330.0)):
        p = tmp_path / f"c{i}.wav"
        sf.write(p, harmonic(0.5, f0, i), SR)
        paths.append(str(p))
    return paths


def test_every_registered_generator_is_covered():
    assert set(generator_names()) == set(TINY_G) | {"griffinlim"}


@pytest.mark.parametrize("name", sorted(TINY_G) + ["griffinlim"])
def test_generator_shapes(name):
    g = build_generator({"name": name, **TINY_G.get(name, {})}, MEL)
    y = g(torch.randn(2, MEL.n_mels, 12))
    assert y.shape == (2, 1, 12 * MEL.hop_length) and torch.isfinite(y).all()
    assert y.abs().max() <= 1.0


@pytest.mark.parametrize("gname", sorted(TINY_G))
@pytest.mark.parametrize("critic", sorted(TINY_C))
def test_generator_critic_pairs_train_with_finite_losses(gname, critic, clips, tmp_path):
    cfg = VocoderConfig(generator={"name": gname, **TINY_G[gname]}, critics=[{"name": critic, **TINY_C[critic]}],
                        segment_samples=1024, batch_size=2, steps=2, log_every=1, eval_every=2, save_every=2,
                        eval_items=1, weights={"mel": 45, "fm": 2, "adv": 1, "stft": 1},
                        stft_resolutions=TINY_STFT)
    tr = VocoderTrainer(cfg, MEL, SegmentDataset(clips, SR, 1024), SegmentDataset(clips[:1], SR, None), tmp_path)
    before = [p.detach().clone() for p in tr.G.parameters()]
    for _ in range(2):
        out = tr.train_step(tr.next_batch())
        assert "skipped" not in out
        for key in ("critic/loss", "gen/mel", "gen/adv", "gen/fm", "gen/stft"):
            assert math.isfinite(float(out[key])), key
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.G.parameters()))


@pytest.mark.parametrize("gname,steps", [("istft", 150), ("hifigan", 150)])
def test_tiny_generator_overfits_one_clip(gname, steps, tmp_path):
    torch.manual_seed(0)
    y = torch.from_numpy(harmonic(0.256, 200.0))[None, None]
    g = build_generator({"name": gname, **TINY_G[gname]}, MEL)
    mel_fn = MelSpectrogram(MEL)
    mel = mel_fn(y)[..., : y.shape[-1] // MEL.hop_length]
    opt = torch.optim.Adam(g.parameters(), 3e-3)
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.l1_loss(mel_fn(g(mel)), mel_fn(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5]), (losses[:5], losses[-10:])


def test_checkpoint_roundtrip_and_fp16(clips, tmp_path):
    cfg = VocoderConfig(generator={"name": "hifigan", **TINY_G["hifigan"]}, critics=[{"name": "msd", **TINY_C["msd"]}],
                        segment_samples=1024, batch_size=2, steps=1, eval_every=1, save_every=1, eval_items=1,
                        stft_resolutions=TINY_STFT)
    tr = VocoderTrainer(cfg, MEL, SegmentDataset(clips, SR, 1024), SegmentDataset(clips[:1], SR, None), tmp_path)
    tr.fit(progress=False, tensorboard=False)
    g = vocoder.load(tmp_path / "model.safetensors")
    assert g.mel_cfg == MEL and g.checkpoint_meta["step"] == 1
    assert (tmp_path / "best" / "model.safetensors").is_file()
    m = torch.randn(1, MEL.n_mels, 10)
    with torch.no_grad():
        ref = tr.G.eval()(m)
        np.testing.assert_allclose(g(m).numpy(), ref.numpy(), atol=1e-5)
    from vocoder.checkpoint import save_generator

    save_generator(tmp_path / "half.safetensors", tr.G, cfg.generator, step=1, half=True)
    g16 = vocoder.load(tmp_path / "half.safetensors")
    with torch.no_grad():
        assert (g16(m) - ref).abs().max() < 2e-2


@pytest.mark.parametrize("warmup", [0, 5])
def test_resume_continues_exactly(clips, tmp_path, warmup):
    def make(out):
        cfg = VocoderConfig(generator={"name": "istft", **TINY_G["istft"]}, critics=[{"name": "mpd", **TINY_C["mpd"]}],
                            segment_samples=1024, batch_size=2, steps=6, log_every=1, eval_every=3, save_every=3,
                            eval_items=1, critic_warmup_steps=2, ema=0.9, stft_resolutions=TINY_STFT,
                            lr_decay=0.5, lr_decay_every=2, lr_warmup_steps=warmup)
        return VocoderTrainer(cfg, MEL, SegmentDataset(clips, SR, 1024, seed=1), SegmentDataset(clips[:1], SR, None),
                              out, seed=3)

    whole = make(tmp_path / "a")
    whole.fit(progress=False, tensorboard=False)
    part = make(tmp_path / "b")
    part.fit(steps=3, progress=False, tensorboard=False)
    # the lrs after 3 steps: halved every 2 steps, and (warmup 5) ramped to 4/5 of that
    ramp = 4 / 5 if warmup else 1.0
    assert part.opt_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5 ** 1.5 * ramp)
    resumed = make(tmp_path / "b")
    resumed.load_state_dict(torch.load(tmp_path / "b" / "state.pt", weights_only=False))
    assert resumed.step == 3
    resumed.fit(progress=False, tensorboard=False)
    assert resumed.step == 6
    for opt in (whole.opt_g, resumed.opt_g):
        assert opt.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.5 ** 3)
    for a, b in zip(whole.G.state_dict().values(), resumed.G.state_dict().values()):
        torch.testing.assert_close(a, b)
    import json

    last = lambda p: [json.loads(line) for line in open(p / "history.jsonl")][-1]  # noqa: E731
    assert last(tmp_path / "a")["dev/mel_l1"] == pytest.approx(last(tmp_path / "b")["dev/mel_l1"], rel=1e-6)


def test_init_from_and_mel_mismatch_refused(clips, tmp_path):
    cfg = VocoderConfig(generator={"name": "istft", **TINY_G["istft"]}, critics=[{"name": "msd", **TINY_C["msd"]}],
                        segment_samples=1024, batch_size=2, steps=1, eval_items=1, stft_resolutions=TINY_STFT)
    tr = VocoderTrainer(cfg, MEL, SegmentDataset(clips, SR, 1024), None, tmp_path)
    tr.fit(progress=False, tensorboard=False)
    state = torch.load(tmp_path / "state.pt", weights_only=False)
    other = MelConfig(sample_rate=SR, n_fft=256, hop_length=64, n_mels=20, fmax=3000.0)
    tr2 = VocoderTrainer(cfg, other, SegmentDataset(clips, SR, 1024), None, tmp_path / "x")
    with pytest.raises(MelConfigMismatch, match=r"fmax: 3000.0 \(this recipe\) != None \(the checkpoint\)"):
        tr2.load_state_dict(state, weights_only=True)
    tr3 = VocoderTrainer(cfg, MEL, SegmentDataset(clips, SR, 1024), None, tmp_path / "y")
    tr3.load_state_dict(state, weights_only=True)
    assert tr3.step == 0 and torch.equal(next(tr3.D.parameters()), next(tr.D.parameters()))
    g = vocoder.load(tmp_path / "model.safetensors")
    with pytest.raises(MelConfigMismatch, match="fmax"):
        vocode(g, torch.randn(MEL.n_mels, 10), mel_cfg=other)


def test_chunked_inference_matches_whole():
    torch.manual_seed(0)
    g = build_generator({"name": "istft", **TINY_G["istft"]}, MEL).eval()
    mel = torch.randn(MEL.n_mels, 200)
    whole = vocode(g, mel, MEL)
    chunked = vocode(g, mel, MEL, chunk_frames=80, overlap_frames=16)
    assert whole.shape == chunked.shape == (200 * MEL.hop_length,)
    # Away from the seams the receptive field is inside one chunk: identical there.
    inner = slice(20 * MEL.hop_length, 50 * MEL.hop_length)
    torch.testing.assert_close(chunked[inner], whole[inner], atol=1e-5, rtol=0)
    assert (chunked - whole).abs().mean() < 0.05 * whole.abs().mean()
    # streamed pieces (what `specgan vocode` writes for a long input) record no autograd graph
    pieces = list(vocode_stream(g, lambda a, b: mel[None, :, a:b], 200, 80, 16))
    assert all(torch.is_inference(p) and not p.requires_grad for p in pieces)


def test_registry_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="unknown generator 'wavenet'; registered: griffinlim, hifigan"):
        build_generator({"name": "wavenet"}, MEL)
    with pytest.raises(ValueError, match="hifigan': unknown parameter.s. upsample_ratez; accepted: preset"):
        build_generator({"name": "hifigan", "upsample_ratez": [8]}, MEL)
    with pytest.raises(ValueError, match="unknown critic 'msdd'"):
        build_critic({"name": "msdd"})
    with pytest.raises(ValueError, match=r"product of upsample_rates \[8, 8, 2, 2\] is 256, but the mel's hop_length "
                                         r"is 64"):
        build_generator({"name": "hifigan", "preset": "v1"}, MEL)
    with pytest.raises(ValueError, match="has nothing to train"):
        VocoderTrainer(VocoderConfig(generator={"name": "griffinlim"}), MEL,
                       SegmentDataset([], SR, 64) if False else None, None, "/tmp/never")
    with pytest.raises(ValueError, match="unknown loss weight"):
        VocoderTrainer(VocoderConfig(generator={"name": "istft"}, weights={"mell": 1}), MEL, None, None, "/tmp/never")


def test_critic_set_concatenates():
    c = CriticSet([{"name": "msd", **TINY_C["msd"]}, {"name": "mpd", **TINY_C["mpd"]}])
    scores, feats = c(torch.randn(2, 1, 1024))
    assert len(scores) == len(feats) == 4
    msd = c.critics[0].critics

    def norms(scale):
        return {type(conv.parametrizations.weight[0]).__name__ for conv in scale.convs}

    assert norms(msd[0]) == {"_SpectralNorm"} and norms(msd[1]) == {"_WeightNorm"}


def test_griffinlim_inverts_a_mel_reasonably():
    y = torch.from_numpy(harmonic(0.5, 220.0))
    mel = MelSpectrogram(MEL)(y)[None, :, :-1]
    def err(**params):
        g = build_generator({"name": "griffinlim", **params}, MEL)
        g.gl.rand_init = params.get("n_iter") == 1  # one iteration from random phase = no phase recovery
        out = g(mel)
        assert out.shape == (1, 1, mel.shape[-1] * MEL.hop_length)
        return float((MelSpectrogram(MEL)(out[0, 0])[:, : mel.shape[-1]] - mel[0]).abs().mean())

    gl = err(n_iter=32)
    assert gl < 0.3
    assert gl < 0.85 * err(n_iter=1, momentum=0.0)      # phase recovery helps
    assert gl < 0.5 * err(n_iter=32, nnls_iter=0)       # the non-negative inversion helps


@pytest.mark.parametrize("name", ["istft", "phase", "hifigan", "melgan"])
def test_onnx_export_matches_torch(name, tmp_path):
    from specgan.cli import main
    from vocoder.checkpoint import save_generator
    from vocoder.export import OnnxVocoder

    torch.manual_seed(0)
    spec = {"name": name, **TINY_G[name]}
    save_generator(tmp_path / "model.safetensors", build_generator(spec, MEL), spec, step=0)
    assert main(["export", "--vocoder", str(tmp_path / "model.safetensors"), "--onnx", str(tmp_path / "g.onnx")]) == 0
    g = vocoder.load(tmp_path / "model.safetensors")
    runner = OnnxVocoder(tmp_path / "g.onnx")
    assert runner.mel_cfg == MEL
    for frames in (16, 45):  # dynamic frame axis
        mel = torch.randn(2, MEL.n_mels, frames)
        with torch.no_grad():
            ref = g(mel)[:, 0].numpy()
        out = runner(mel.numpy())
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=1e-4)


def _small_trainer(clips, tmp_path, **kw):
    cfg = VocoderConfig(generator={"name": "istft", **TINY_G["istft"]}, critics=[{"name": "msd", **TINY_C["msd"]}],
                        segment_samples=1024, batch_size=2, log_every=1, eval_every=100, save_every=2, eval_items=1,
                        critic_warmup_steps=0, stft_resolutions=TINY_STFT, **kw)
    return VocoderTrainer(cfg, MEL, SegmentDataset(clips, SR, 1024), None, tmp_path)


def test_nan_loss_rolls_back_lowers_the_lr_and_logs_grad_norms(clips, tmp_path, caplog):
    tr = _small_trainer(clips, tmp_path, steps=2)
    tr.fit(progress=False, tensorboard=False)  # checkpoint at step 2
    hist = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert all(math.isfinite(h["gen/grad_norm"]) and math.isfinite(h["critic/grad_norm"]) for h in hist)
    with torch.no_grad():
        next(tr.G.parameters()).fill_(float("nan"))  # diverged
    with caplog.at_level("WARNING"):
        tr.fit(steps=4, progress=False, tensorboard=False)
    assert tr.step == 4 and tr.rollbacks == 1 and "rolled back to step 2" in caplog.text
    assert tr.opt_g.param_groups[0]["lr"] == pytest.approx(0.5 * 2e-4, rel=0.01)
    assert all(torch.isfinite(p).all() for p in tr.G.parameters())
    steps = [json.loads(line)["step"] for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_nan_in_a_batch_is_skipped_and_repeated_divergence_stops(clips, tmp_path):
    tr = _small_trainer(clips, tmp_path, steps=2, max_rollbacks=2)
    draw, calls = tr.next_batch, []

    def first_bad():
        y = draw()
        calls.append(1)
        if len(calls) == 1:
            y[0, 0, 10] = float("nan")
        return y

    tr.next_batch = first_bad
    tr.fit(progress=False, tensorboard=False)
    assert tr.bad_batches == 1 and tr.step == 2 and len(calls) == 3
    tr = _small_trainer(clips, tmp_path / "a", steps=2, max_rollbacks=2)
    with torch.no_grad():
        next(tr.G.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="before any checkpoint"):
        tr.fit(progress=False, tensorboard=False)
    tr = _small_trainer(clips, tmp_path / "b", steps=2, max_rollbacks=2)
    tr.fit(progress=False, tensorboard=False)
    orig = tr.mel_l1.forward
    tr.mel_l1.forward = lambda *a: orig(*a) * float("nan")  # every step diverges
    with pytest.raises(FloatingPointError, match="2 rollbacks in a row without progress"):
        tr.fit(steps=6, progress=False, tensorboard=False)


def test_ten_minute_mel_is_vocoded_in_bounded_chunks_without_seams():
    torch.manual_seed(0)
    g = build_generator({"name": "istft", **TINY_G["istft"]}, MEL).eval()
    frames = 600 * MEL.sample_rate // MEL.hop_length  # ten minutes
    mel = torch.randn(MEL.n_mels, frames) - 4
    seen = []
    g.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[-1]))
    y = vocode(g, mel, MEL, chunk_frames=512, overlap_frames=16)
    assert y.shape == (frames * MEL.hop_length,) and torch.isfinite(y).all()
    assert max(seen) <= 512 and len(seen) == -(-(frames - 16) // (512 - 16))  # memory bounded by the chunk
    # Seams: around every chunk boundary the cross-faded output stays close to the whole-signal output.
    part = mel[:, :2000]
    whole, chunked = vocode(g, part, MEL), vocode(g, part, MEL, chunk_frames=512, overlap_frames=16)
    hop, err = MEL.hop_length, (chunked - whole).abs()
    for start in range(496, 2000 - 16, 496):  # overlap regions [start, start + 16) frames
        seam = err[start * hop : (start + 16) * hop]
        assert seam.max() < 0.1 * whole.abs().max(), (start, float(seam.max()), float(whole.abs().max()))


def test_the_speed_bench_calls_each_vocoder_on_the_chunks_specgan_vocode_uses():
    """tools/bench_vocoders.py times every vocoder on the same chunks as ``vocode_stream``: the same
    (start, stop) frames, the last chunk ending at the input's end."""
    from conftest import load_tool


    bench = load_tool("bench_vocoders")
    seen = []

    class Recorder(torch.nn.Module):
        hop_length = 1

        def forward(self, mel):
            seen.append(float(mel[0, 0, 0]))  # frame index of the chunk's first frame
            return torch.zeros(mel.shape[0], 1, mel.shape[-1])

    mel = torch.arange(1200.0).expand(1, 3, 1200)
    bench.run_chunks(Recorder(), mel, 512)
    by_bench, seen[:] = list(seen), []
    list(vocode_stream(Recorder(), lambda a, b: mel[..., a:b], 1200, 512))
    assert by_bench == seen == [0.0, 496.0, 992.0]
    bench.run_chunks(Recorder(), mel, 0)
    assert seen[-1] == 0.0 and len(seen) == 4


def test_paired_differences_skip_the_columns_scored_per_set_not_per_clip(capsys):
    """tools/eval_vocoders.py --paired --notes: the note-pitch columns are one figure per vocoder, not per
    clip, so the paired table leaves them out instead of failing on them."""
    from conftest import load_tool

    tool = load_tool("eval_vocoders")
    per = lambda v: {"per_clip": {"mel_l1": list(v)}, "mel_l1": float(np.mean(v)), "note_pitch_copies": 1.0}  # noqa: E731
    results = {"a": per([0.3, 0.4, 0.5, 0.2]), "b": per([0.2, 0.3, 0.4, 0.1])}
    tool._paired(results, ["mel_l1", "note_pitch_copies"])
    assert set(results["b"]["paired"]) == {"mel_l1"}
    assert results["b"]["paired"]["mel_l1"]["diff"] == pytest.approx(-0.1)
