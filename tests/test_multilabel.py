"""Several labels at once (pitch × instrument, word × voice): the label space, the networks, the
trainer and the sampling API, and the CLI a user meets (``--label key=value``).
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import need_tool
from specgan.stage_one.config import SpecGANConfig
from specgan.stage_one.data import MelDataset
from specgan.stage_one.labels import LabelSpace, parse_label_args
from specgan.stage_one.registry import build_critic, build_generator
from specgan.stage_one.trainer import SpecGANTrainer
from vocoder.mel import MelConfig, MelStats

PITCHES, INSTRUMENTS = (60, 62, 64), ("piano", "violin")


def space():
    # every pitch on the piano, only 60 and 62 on the violin (twice as often as the piano)
    labels = [(p, "piano") for p in PITCHES] + [(p, "violin") for p in (60, 62)] * 2
    return LabelSpace.from_labels(["pitch", "instrument"], labels)


def test_requests_name_what_is_wrong_in_one_line():
    s = space()
    assert s.describe() == "pitch (3) × instrument (2)" and s.n_classes == [3, 2]
    assert s.request({"pitch": 62, "instrument": "violin"}) == {0: 1, 1: 1}
    assert s.request({"pitch": "62"}) == {0: 1}       # a string form (the CLI's) of an integer label
    assert s.request((64, "piano")) == {0: 2, 1: 0}   # a full tuple in key order
    with pytest.raises(ValueError, match=r"^unknown pitch 61; this model knows: 60, 62, 64$"):
        s.request({"pitch": 61})
    with pytest.raises(ValueError, match=r"^unknown label key 'colour'; this model's labels are pitch, instrument$"):
        s.request({"colour": "red"})
    with pytest.raises(ValueError, match=r"several labels \(pitch \(3\) × instrument \(2\)\): name them, e\.g\. "
                                         r"--label pitch=60 --label instrument=piano"):
        s.request(60)


def test_a_key_left_out_is_drawn_from_the_training_clips_given_the_asked_ones():
    s = space()
    rng = np.random.default_rng(0)
    # pitch 64 was only ever played on the piano
    assert {s.complete({0: 2}, rng)[1] for _ in range(50)} == {0}
    # at 60 the violin has two clips to the piano's one
    drawn = [s.complete({0: 0}, rng)[1] for _ in range(3000)]
    assert np.mean(drawn) == pytest.approx(2 / 3, abs=0.03)
    # the violin never played 64: asked in full it is used as asked (factorised conditioning)
    assert s.complete({0: 2, 1: 1}, rng) == (2, 1)
    # a seed gives the same draw, whatever else is drawn beside it
    a = s.indices([{"pitch": 60}, {"pitch": 60}], seeds=[5, 6])
    b = s.indices([{"pitch": 60}], seeds=[6])
    assert a.shape == (2, 2) and torch.equal(a[1], b[0])
    back = LabelSpace.from_meta(s.to_meta())  # through a model file's metadata
    assert back.keys == s.keys and back.vocabs == s.vocabs and np.array_equal(back.table, s.table)


def test_label_arguments():
    assert parse_label_args(None) is None
    assert parse_label_args(["60", "seven"]) == [60, "seven"]          # bare: labels in turn
    assert parse_label_args(["pitch=60", "instrument=violin", "pitch=64"]) == [
        {"pitch": 60, "instrument": "violin"}, {"pitch": 64, "instrument": "violin"}]
    with pytest.raises(ValueError, match="key=value or none of them"):
        parse_label_args(["pitch=60", "62"])
    with pytest.raises(ValueError, match="expected key=value"):
        parse_label_args(["pitch="])


def test_one_label_models_keep_their_tensors_and_several_get_one_table_each():
    one = build_generator({"name": "specgan", "d": 4, "class_prior": "mean"}, 16, 16, 3)
    critic_one = build_critic({"name": "specgan", "d": 4, "aux_classifier": True}, 16, 16, 3)
    assert one.state_dict()["embed.weight"].shape == (3, 32) and "prior.overall" not in one.state_dict()
    assert critic_one.aux.out_features == 3 and critic_one.state_dict()["embed.weight"].shape[0] == 3
    several = build_generator({"name": "specgan", "d": 4, "class_prior": "mean", "conditioning": "film"}, 16, 16,
                              [3, 2])
    assert several.state_dict()["embed.weight"].shape == (5, 32) and "prior.overall" in several.state_dict()
    y = torch.tensor([[0, 1], [2, 0]])
    assert several(torch.randn(2, 100), y).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match=r"expected label indices \(B, 2\)"):
        several(torch.randn(2, 100), torch.tensor([0, 1]))


def test_the_class_prior_adds_each_labels_difference_from_the_overall_mean():
    g = build_generator({"name": "specgan", "d": 4, "class_prior": "profile"}, 16, 16, [3, 2])
    # normalised mels that are additive in pre-tanh units: overall + pitch row + instrument row
    rng = np.random.default_rng(0)
    base, pitch, inst = rng.normal(0, 0.1, 16), rng.normal(0, 0.1, (3, 16)), rng.normal(0, 0.1, (2, 16))
    pitch -= pitch.mean(0)
    inst -= inst.mean(0)
    y = torch.tensor([(p, i) for p in range(3) for i in range(2)] * 4)
    pre = base + pitch[y[:, 0]] + inst[y[:, 1]]
    x = torch.tanh(torch.from_numpy(pre)).float()[:, None, :, None].expand(-1, 1, 16, 16).contiguous()

    class Data:
        pass

    d = Data()
    d.x, d.y = x, y
    g.prepare(d, None, None)
    got = g.prior(y)[:, 0, :, 0].double().numpy()
    # exact for balanced data up to atanh(mean(tanh)) vs mean: within a few thousandths here
    np.testing.assert_allclose(got, pre, atol=5e-3)


def dataset(n=12):
    rng = np.random.default_rng(0)
    mels = [rng.normal(-5, 2, (16, 15)).astype(np.float32) for _ in range(n)]
    labels = [(PITCHES[i % 3], INSTRUMENTS[(i // 3) % 2]) for i in range(n)]
    stats = MelStats(np.full(16, -5.0), np.full(16, 2.0))
    return MelDataset(mels, labels, stats, frames=16, floor_log=float(np.log(1e-5)), keys=["pitch", "instrument"])


@pytest.mark.slow  # trains (seconds); the quick loop keeps under two minutes
def test_trained_with_two_labels_sampled_by_key(tmp_path):
    import specgan

    ds = dataset()
    assert ds.y.shape == (12, 2) and ds.vocab == [list(PITCHES), list(INSTRUMENTS)]
    cfg = SpecGANConfig(frames=16, generator={"name": "specgan", "z_dim": 8, "d": 4, "embed_dim": 4,
                                              "class_prior": "mean", "conditioning": "film"},
                        critic={"name": "specgan", "d": 4, "aux_classifier": True}, aux_weight=1.0, mode_seeking=1.0,
                        batch_size=4, n_critic=2, steps=3, log_every=1, save_every=3, sample_every=3)
    tr = SpecGANTrainer(cfg, ds, tmp_path, mel=MelConfig(n_mels=16), stats=ds.stats.to_dict())
    tr.fit(progress=False, tensorboard=False)
    hist = [json.loads(line) for line in open(tmp_path / "history.jsonl")]
    assert all(np.isfinite(h["critic/aux_ce"]) and np.isfinite(h["gen/aux_ce"]) for h in hist)
    assert (tmp_path / "samples" / "step0000003.png").is_file()  # the grid draws label combinations
    model = specgan.load_stage_one(tmp_path / "model.safetensors")
    assert model.labels.keys == ["pitch", "instrument"] and model.vocab == [list(PITCHES), list(INSTRUMENTS)]
    full = model.sample_normalised({"pitch": 62, "instrument": "violin"}, seeds=[3, 4])
    assert full.shape == (2, 16, 16)
    # a key left out is drawn per clip from its seed: a clip drawn alone is the clip of the set
    part = model.sample_normalised({"pitch": 62}, seeds=[3, 4, 5])
    torch.testing.assert_close(model.sample_normalised({"pitch": 62}, seeds=[4]), part[1:2])
    resolved = model.resolve({"pitch": 62}, [3, 4, 5])
    assert all(r["pitch"] == 62 and r["instrument"] in INSTRUMENTS for r in resolved)
    torch.testing.assert_close(model.sample_normalised(resolved, seeds=[3, 4, 5]), part)
    other = model.sample_normalised({"pitch": 62, "instrument": "piano"}, seeds=[3, 4])
    assert not torch.allclose(full, other)  # the instrument is heard
    with pytest.raises(ValueError, match="unknown instrument 'tuba'"):
        model.sample({"instrument": "tuba"})


def test_a_per_key_aux_weight_scales_that_labels_cross_entropy_alone():
    from specgan.stage_one.losses import fused_critic_losses, generator_losses, label_cross_entropies

    torch.manual_seed(0)
    critic = build_critic({"name": "specgan", "d": 4, "aux_classifier": True}, 16, 16, [3, 2])
    x = torch.randn(6, 1, 16, 16)
    labels = torch.tensor([[0, 1], [1, 0], [2, 1], [0, 0], [1, 1], [2, 0]])
    _, logits = critic(x, labels, return_logits=True)
    ce_pitch, ce_inst = label_cross_entropies(logits, labels, critic.label_sizes)
    plain = generator_losses(critic, x, labels, aux_weight=1.0)
    heavy = generator_losses(critic, x, labels, aux_weight=1.0, aux_key_weights=[1.0, 4.0])
    torch.testing.assert_close(plain["gen/aux_ce"], ce_pitch + ce_inst)
    torch.testing.assert_close(heavy["gen/aux_ce"], ce_pitch + 4.0 * ce_inst)
    torch.testing.assert_close(heavy["gen/loss"] - plain["gen/loss"], 3.0 * ce_inst)
    torch.testing.assert_close(heavy["gen/aux_ce/1"], ce_inst)  # each label's own term, unweighted
    eps = torch.rand(3)
    real, fake = x[:3], x[3:]
    a = fused_critic_losses(critic, real, fake, labels[:3], 10.0, eps=eps, aux_weight=2.0)
    b = fused_critic_losses(critic, real, fake, labels[:3], 10.0, eps=eps, aux_weight=2.0, aux_key_weights=[0.0, 1.0])
    _, lg = critic(real, labels[:3], return_logits=True)
    inst_only = label_cross_entropies(lg, labels[:3], critic.label_sizes)[1]
    torch.testing.assert_close(b["critic/aux_ce"], inst_only)
    torch.testing.assert_close(a["critic/loss"] - b["critic/loss"], 2.0 * (a["critic/aux_ce"] - inst_only))
    with pytest.raises(ValueError, match="1 aux_key_weights for 2 labels"):
        generator_losses(critic, x, labels, aux_weight=1.0, aux_key_weights=[2.0])


def test_aux_key_weight_is_checked_against_the_labels(tmp_path):
    from specgan.recipe import RecipeError, load_recipe

    base = dict(frames=16, generator={"name": "specgan", "z_dim": 8, "d": 4, "embed_dim": 4},
                critic={"name": "specgan", "d": 4, "aux_classifier": True}, aux_weight=1.0,
                batch_size=4, n_critic=1, steps=2, log_every=1, save_every=2, sample_every=100)
    with pytest.raises(ValueError, match="aux_key_weight needs aux_weight > 0"):
        SpecGANConfig(**{**base, "aux_weight": 0.0, "critic": {"name": "specgan", "d": 4}},
                      aux_key_weight={"instrument": 2.0})
    with pytest.raises(ValueError, match=r"aux_key_weight.instrument: must be a number >= 0"):
        SpecGANConfig(**base, aux_key_weight={"instrument": -1})
    ds = dataset()
    with pytest.raises(ValueError, match=r"'timbre' is not a label of this recipe \(data.label: \['pitch', 'instrument'\]\)"):
        SpecGANTrainer(SpecGANConfig(**base, aux_key_weight={"timbre": 2.0}), ds, tmp_path / "x")
    tr = SpecGANTrainer(SpecGANConfig(**base, aux_key_weight={"instrument": 3.0}), ds, tmp_path / "y")
    assert tr.aux_key_weights == [1.0, 3.0]
    tr.fit(progress=False, tensorboard=False)
    hist = [json.loads(line) for line in open(tmp_path / "y" / "history.jsonl")]
    assert all({"gen/aux_ce/pitch", "gen/aux_ce/instrument"} <= set(h) for h in hist)
    # and in a recipe, at load time, before anything runs
    overrides = [f"work_dir={tmp_path / 'w'}", "data.label=[pitch, instrument]", "specgan.aux_weight=1.0",
                 "specgan.critic.aux_classifier=true"]
    with pytest.raises(RecipeError, match=r"specgan.aux_key_weight: 'program' is not a label"):
        load_recipe("music", [*overrides, "specgan.aux_key_weight={program: 4.0}"])
    assert load_recipe("music", [*overrides, "specgan.aux_key_weight={instrument: 4.0}"]).specgan.aux_key_weight \
        == {"instrument": 4.0}


@pytest.mark.slow
@need_tool("fluidsynth")
def test_a_pitch_by_instrument_recipe_runs_and_synthesises_by_key(tmp_path, monkeypatch, capsys):
    from specgan.cli import main

    work = tmp_path / "work"
    sets = ["--set", f"work_dir={work}", "--set", "data.source=builtin:notes",
            "--set", "data.label=[pitch, instrument]", "--set", "data.notes.programs=[0, 40]",
            "--set", "data.notes.pitch_min=48", "--set", "data.notes.pitch_max=72", "--set", "data.notes.pitch_step=6",
            "--set", "data.notes.velocities=[70, 100]", "--set", "data.preprocess.trim_db=null",
            "--set", "synth.vocoder=griffinlim", "--set", "evaluate.n_generated=6"]

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "specgan.cli", *args, "--recipe", "tiny", *sets, "--no-progress"],
                              capture_output=True, text=True, cwd=tmp_path)

    def here(*args):  # the same command in this process (one torch start-up for the rest)
        capsys.readouterr()
        rc = main([*args, "--recipe", "tiny", *sets, "--no-progress"])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, rc, out.out, out.err)

    run = cli("run", "--stop-stage", "specgan")
    assert run.returncode == 0, run.stderr[-2000:]
    monkeypatch.chdir(tmp_path)
    synth = here("synth", "--label", "pitch=60", "--label", "instrument=violin",
                 "--label", "instrument=acoustic_grand_piano", "--n", "4", "--out", str(tmp_path / "a"))
    assert synth.returncode == 0, synth.stderr[-2000:]
    clips = json.loads((tmp_path / "a" / "synth.json").read_text())["clips"]
    assert [c["wav"] for c in clips] == ["60-violin_seed00000.wav", "60-acoustic-grand-piano_seed00001.wav",
                                         "60-violin_seed00002.wav", "60-acoustic-grand-piano_seed00003.wav"]
    assert clips[0]["label"] == {"pitch": 60, "instrument": "violin"}
    # the instrument left out: drawn per clip, and a clip asked for alone is the file of the set
    here("synth", "--label", "pitch=66", "--n", "3", "--out", str(tmp_path / "b"))
    first = json.loads((tmp_path / "b" / "synth.json").read_text())["clips"][2]
    again = here("synth", "--label", "pitch=66", "--seed", "2", "--n", "1", "--out", str(tmp_path / "c"))
    assert again.returncode == 0, again.stderr[-2000:]
    assert (tmp_path / "c" / first["wav"]).read_bytes() == (tmp_path / "b" / first["wav"]).read_bytes()
    # a bare label on a several-label recipe (unknown keys and values: the unit tests above)
    bad = here("synth", "--label", "60", "--out", str(tmp_path / "d"))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "several labels (pitch (5) × instrument (2)): name them, e.g. --label pitch=48" in bad.stderr
    assert not (tmp_path / "d").exists()
    ev = here("evaluate")
    assert ev.returncode == 0, ev.stderr[-2000:]
    gen = json.loads((work / "eval" / "metrics.json").read_text())["generation"]
    assert gen["label_keys"] == ["pitch", "instrument"] and set(gen["labels"]) == {"pitch", "instrument", "all"}
    assert "instrument accuracy" in ev.stdout and "every label right" in ev.stdout
    assert (work / "classifier-instrument" / "model.safetensors").is_file()


@pytest.mark.slow  # renders 60 digits
@need_tool("espeak-ng")
def test_digits_split_by_take_puts_every_voice_in_every_split(tmp_path):
    """[word, voice] needs the voices it is scored on in training: split_by: take deals each voice's takes."""
    from specgan.data.digits import split_takes
    from specgan.data.manifest import Item
    from specgan.data.prepare import load_split, prepare
    from specgan.recipe import load_recipe

    items = [Item(id=f"{v}-{i}", path="x", group=v) for v in ("a", "b") for i in range(10)]
    where = split_takes(items, 0.1, 0.2, seed=0)
    assert where == split_takes(items, 0.1, 0.2, seed=0)
    for v in ("a", "b"):
        got = [where[f"{v}-{i}"] for i in range(10)]
        assert (got.count("test"), got.count("dev"), got.count("train")) == (2, 1, 7)
    r = load_recipe("tiny", [f"work_dir={tmp_path / 'w'}", "data.label=[word, voice]", "data.digits.split_by=take"])
    prepare(r)
    splits = {s: load_split(r, s) for s in ("train", "dev", "test")}
    voices = {s: {it.labels["voice"] for it in items} for s, items in splits.items()}
    assert voices["train"] == voices["dev"] == voices["test"] and len(voices["train"]) == 6
    assert all(isinstance(it.label, list) and len(it.label) == 2 for it in splits["test"])


def test_the_label_map_starts_as_the_identity_and_lets_the_labels_interact():
    kw = dict(z_dim=8, d=4, embed_dim=6, conditioning="film")
    plain = build_generator({"name": "specgan", **kw}, 16, 16, [3, 2])
    assert not any("label_map" in k for k in plain.state_dict())  # off: the file's tensors unchanged
    torch.manual_seed(0)
    mapped = build_generator({"name": "specgan", **kw, "label_mlp": 2}, 16, 16, [3, 2])
    missing = mapped.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(k.startswith("label_map.") for k in missing)
    z, y = torch.randn(4, 8), torch.tensor([[0, 0], [0, 1], [2, 0], [2, 1]])
    torch.testing.assert_close(mapped(z, y), plain(z, y))  # the last layer starts at zero
    with torch.no_grad():  # trained: the instrument's FiLM shift now depends on the pitch
        for p in mapped.label_map.parameters():
            p.normal_(0, 0.5)
    beta = lambda g, yy: g.film[0].proj(g.label_map(g.embed(yy)) if g.label_map is not None else g.embed(yy))
    for g, additive in ((plain, True), (mapped, False)):
        b = beta(g, y)
        interaction = (b[1] - b[0]) - (b[3] - b[2])  # instrument 1 - 0 at pitch 0, minus the same at pitch 2
        assert torch.allclose(interaction, torch.zeros_like(interaction), atol=1e-5) == additive
    with pytest.raises(ValueError, match="label_mlp must be an integer >= 0"):
        build_generator({"name": "specgan", **kw, "label_mlp": -1}, 16, 16, [3, 2])
    with pytest.raises(ValueError, match="label_mlp maps the label embedding"):
        build_generator({"name": "specgan", **kw, "label_mlp": 1}, 16, 16, 0)
