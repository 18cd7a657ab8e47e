"""Stage-one trainer: resume continues, NaN rolls back and lowers the learning rates."""

import json

import numpy as np
import pytest
import torch

from specgan.stage_one.config import SpecGANConfig
from specgan.stage_one.data import MelDataset
from specgan.stage_one.trainer import SpecGANTrainer
from vocoder.mel import MelStats


def data(n=12, n_mels=16, frames=15, seed=0):
    rng = np.random.default_rng(seed)
    mels = [rng.normal(-5, 2, (n_mels, frames)).astype(np.float32) for _ in range(n)]
    labels = ["a", "b", "c"] * (n // 3)
    stats = MelStats(np.full(n_mels, -5.0), np.full(n_mels, 2.0))
    return MelDataset(mels, labels, stats, frames=16, floor_log=float(np.log(1e-5)))


def cfg(**kw):
    base = dict(frames=16, generator={"name": "specgan", "z_dim": 8, "d": 4, "embed_dim": 4},
                critic={"name": "specgan", "d": 4}, batch_size=4, n_critic=2, steps=4, log_every=1, save_every=2,
                sample_every=1000)  # no sample grids (matplotlib: seconds each) but where a test asks
    return SpecGANConfig(**{**base, **kw})


def test_dataset_pads_with_the_normalised_floor_and_indexes_labels():
    ds = data()
    assert ds.x.shape == (12, 1, 16, 16) and ds.vocab == ["a", "b", "c"]
    assert ds.y.tolist()[:4] == [0, 1, 2, 0]
    assert torch.all(ds.x[:, 0, :, 15] == -1.0)  # log(1e-5) is > 3 sigma below the mean: clipped to -1
    assert ds.x.abs().max() <= 1.0


def test_resume_continues_the_step_count_and_the_run(tmp_path):
    whole = SpecGANTrainer(cfg(), data(), tmp_path / "a", seed=1)
    whole.fit(progress=False, tensorboard=False)
    part = SpecGANTrainer(cfg(), data(), tmp_path / "b", seed=1)
    part.fit(steps=2, progress=False, tensorboard=False)
    resumed = SpecGANTrainer(cfg(), data(), tmp_path / "b", seed=1)
    resumed.load_state_dict(torch.load(tmp_path / "b" / "state.pt", weights_only=False))
    assert resumed.step == 2
    resumed.fit(progress=False, tensorboard=False)
    assert resumed.step == 4
    for a, b in zip(whole.G_ema.state_dict().values(), resumed.G_ema.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    hist = [json.loads(line) for line in open(tmp_path / "b" / "history.jsonl")]
    assert [h["step"] for h in hist] == [1, 2, 3, 4]
    assert (tmp_path / "b" / "model.safetensors").is_file()


def test_nan_rolls_back_to_the_checkpoint_and_lowers_the_lr(tmp_path, caplog):
    tr = SpecGANTrainer(cfg(steps=2), data(), tmp_path)
    tr.fit(progress=False, tensorboard=False)  # checkpoint at step 2
    with torch.no_grad():
        next(tr.D.parameters()).fill_(float("nan"))  # poison the critic
    with caplog.at_level("WARNING"):
        tr.fit(steps=4, progress=False, tensorboard=False)
    assert tr.rollbacks == 1 and tr.step == 4
    assert "rolled back to step 2" in caplog.text
    assert tr.opt_d.param_groups[0]["lr"] == pytest.approx(0.5e-4)
    assert tr.opt_g.param_groups[0]["lr"] == pytest.approx(0.5e-4)
    assert all(torch.isfinite(p).all() for p in tr.D.parameters())


def test_nan_before_any_checkpoint_is_an_error(tmp_path):
    tr = SpecGANTrainer(cfg(), data(), tmp_path)
    with torch.no_grad():
        next(tr.D.parameters()).fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="before any checkpoint"):
        tr.fit(progress=False, tensorboard=False)


def test_lazy_gp_and_unconditional(tmp_path):
    tr = SpecGANTrainer(cfg(conditional=False, gp_every=2, n_critic=4), data(), tmp_path)
    out = tr.train_step(tr.next_batch())
    assert tr.G.embed is None and "critic/gp" in out and torch.isfinite(out["critic/wdist"])
    with pytest.raises(ValueError, match="no labels"):
        ds = data()
        ds.y, ds.vocab = None, []
        SpecGANTrainer(cfg(), ds, tmp_path / "x")


def test_sampling_api_roundtrip(tmp_path):
    import specgan
    from vocoder.mel import MelConfig

    ds = data()
    tr = SpecGANTrainer(cfg(), ds, tmp_path, mel=MelConfig(n_mels=16),
                        stats=MelStats(np.full(16, -5.0), np.full(16, 2.0)).to_dict())
    tr.fit(progress=False, tensorboard=False)
    model = specgan.load_stage_one(tmp_path / "model.safetensors")
    assert model.step == 4 and model.vocab == ["a", "b", "c"]
    norm = model.sample_normalised("b", seeds=[7, 8, 9])
    logmel = model.sample("b", seeds=[7, 8, 9])
    assert norm.shape == logmel.shape == (3, 16, 16) and norm.abs().max() <= 1
    torch.testing.assert_close(logmel, norm * 3 * 2.0 - 5.0)  # denormalised with the stored stats
    torch.testing.assert_close(norm, model.sample_normalised(["b"] * 3, seeds=[7, 8, 9]))
    # a clip depends on its seed alone: drawn alone or in one batch (to rounding)
    torch.testing.assert_close(model.sample_normalised("b", seeds=[8]), norm[1:2])
    torch.testing.assert_close(model.sample_normalised("b", seeds=[7, 8, 9], batch_size=None), norm)
    other = model.sample_normalised("c", seeds=[7, 8, 9])
    assert not torch.allclose(norm, other)
    walk = model.interpolate(1, 2, points=5, label="a")
    torch.testing.assert_close(walk[0], model.sample("a", seeds=[1])[0])
    torch.testing.assert_close(walk[-1], model.sample("a", seeds=[2])[0], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="unknown label 'z'; this model knows: a, b, c"):
        model.sample("z")
    with pytest.raises(ValueError, match="conditional: pass labels"):
        model.sample()
    with pytest.raises(ValueError, match="2 labels for 3 samples"):
        model.sample(["a", "b"], seeds=[1, 2, 3])


def test_resume_drops_history_logged_after_the_checkpoint(tmp_path):
    part = SpecGANTrainer(cfg(), data(), tmp_path, seed=1)
    part.fit(steps=2, progress=False, tensorboard=False)
    with open(tmp_path / "history.jsonl", "a") as f:  # logged by a run killed before its next checkpoint
        f.write(json.dumps({"step": 3, "critic/wdist": 0.0}) + "\n")
    resumed = SpecGANTrainer(cfg(), data(), tmp_path, seed=1)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    resumed.fit(progress=False, tensorboard=False)
    assert [json.loads(line)["step"] for line in open(tmp_path / "history.jsonl")] == [1, 2, 3, 4]


def test_tensorboard_gets_the_losses_and_the_sample_grid(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    SpecGANTrainer(cfg(sample_every=2), data(), tmp_path).fit(progress=False)
    acc = EventAccumulator(str(tmp_path / "logs"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"critic/wdist", "critic/gp", "critic/loss", "gen/loss"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("critic/wdist")] == [1, 2, 3, 4]
    assert [e.step for e in acc.Images("samples/grid")] == [2, 4]  # with each checkpoint


def test_bf16_autocast_and_channels_last_keep_the_penalty_in_float32(tmp_path):
    tr = SpecGANTrainer(cfg(amp="bf16", channels_last="on"), data(), tmp_path)
    assert tr.amp_dtype == torch.bfloat16
    assert next(p for p in tr.D.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
    seen = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, args, out: seen.append(out.dtype) if isinstance(m, torch.nn.Conv2d) else None)
    try:
        out = tr.train_step(tr.next_batch())
    finally:
        hook.remove()
    assert torch.bfloat16 in seen and torch.float32 in seen  # D(x), D(G(z)) in bf16; the penalty's pass in fp32
    assert all(torch.isfinite(v) for v in out.values()) and out["critic/gp"].dtype == torch.float32
    auto = SpecGANTrainer(cfg(), data(), tmp_path / "auto")  # "auto" is off on CPU
    assert auto.amp_dtype is None and not auto.channels_last


@pytest.mark.slow
def test_compiled_generator_trains_and_saves_plain_weights(tmp_path):
    tr = SpecGANTrainer(cfg(compile=True, steps=2), data(), tmp_path)
    tr.fit(progress=False, tensorboard=False)
    z, y = torch.randn(2, 8), torch.tensor([0, 1])
    torch.testing.assert_close(tr.G_fwd(z, y), tr.G(z, y))
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert state["step"] == 2 and not any("_orig_mod" in k for k in state["modules"]["G"])
