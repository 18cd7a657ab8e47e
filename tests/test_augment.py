"""`specgan augment`: labelled generated clips in the layout folder.yaml reads."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specgan.augment import augment
from specgan.recipe import RecipeError, load_recipe

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny recipe trained through stage one (its own models; Griffin-Lim as the vocoder)."""
    from specgan.pipeline import run

    work = tmp_path_factory.mktemp("aug") / "work"
    recipe = load_recipe("tiny", [f"work_dir={work}"])
    run(recipe, 0, 2, device="cpu", progress=False, report=lambda _: None)
    return recipe


@pytest.mark.slow
def test_augment_writes_the_classes_asked_with_a_manifest(tiny, tmp_path):
    out = tmp_path / "aug"
    common = ["--recipe", "tiny", "--set", f"work_dir={tiny.work}", "--no-progress", "--vocoder", "griffinlim"]
    run = subprocess.run([sys.executable, "-m", "specgan.cli", "augment", "--per-class", "3", "--label", "seven",
                          "--label", "two", "--out", str(out), *common], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "6 WAVs (3 per class x 2)" in run.stdout
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["seven", "two"]
    rows = [json.loads(line) for line in open(out / "manifest.jsonl")]
    assert [(r["class"], r["seed"]) for r in rows] == [("seven", 0), ("two", 1), ("seven", 2), ("two", 3),
                                                       ("seven", 4), ("two", 5)]  # synth's plan
    for r in rows:
        assert (out / r["path"]).is_file() and r["path"].startswith(f"{r['class']}/") and r["vocoder"] == "griffinlim"
        assert sf.info(out / r["path"]).samplerate == 16000
    # an unknown label: one line at the CLI, nothing written
    bad = subprocess.run([sys.executable, "-m", "specgan.cli", "augment", "--per-class", "1", "--label", "eleven",
                          "--out", str(tmp_path / "x"), *common], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown label 'eleven'" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists()
    # a folder that holds something: refused, then replaced with force (the old one kept beside it)
    with pytest.raises(FileExistsError, match="exists and is not empty; --force replaces it"):
        augment(tiny, 1, out, labels=["two"], vocoder_name="griffinlim", progress=False)
    augment(tiny, 1, out, labels=["two"], vocoder_name="griffinlim", force=True, progress=False)
    assert len(list(out.glob("*/*.wav"))) == 1 and len(list((tmp_path / "aug.prev").glob("*/*.wav"))) == 6


@pytest.mark.slow
def test_augment_filter_counts_what_it_drops(tiny, tmp_path):
    # the recipe's evaluation classifier (2 epochs on tiny: near chance, P(class) about 0.1) judges
    # each vocoded clip; a threshold it always passes keeps every clip and records its confidence
    out = tmp_path / "f"
    summary = augment(tiny, 2, out, labels=["one", "six"], vocoder_name="griffinlim", filter_tau=1e-6, progress=False)
    rows = [json.loads(line) for line in open(out / "manifest.jsonl")]
    assert len(rows) == 4 and all(1e-6 <= r["confidence"] <= 1 for r in rows)
    assert summary["drawn"] == 4 and summary["dropped"] == {}
    # one it never passes: every draw dropped and counted, then one line naming the classes short
    with pytest.raises(ValueError, match=r"--filter 0.99: 40 clips drawn and classes still short \{'one': 1, 'six': 1\}"):
        augment(tiny, 1, tmp_path / "s", labels=["one", "six"], vocoder_name="griffinlim", filter_tau=0.99,
                progress=False)
    assert not (tmp_path / "s").exists()
    with pytest.raises(ValueError, match=r"--filter must be a probability in \(0, 1\]"):
        augment(tiny, 1, tmp_path / "g", labels=["one"], filter_tau=1.5, progress=False)


# -- the low-resource experiment (specgan/kshot.py) -------------------------------------------
def _items(per_class: dict[str, int]) -> dict:
    return {f"{c}-{i:03d}": {"label": c} for c, n in per_class.items() for i in range(n)}


def test_kshot_cells_draw_k_per_class_nested_and_reproducible():
    from specgan.kshot import draw_subset

    items = _items({"one": 30, "two": 12, "three": 20})
    five, ten = draw_subset(items, 5, seed=0), draw_subset(items, 10, seed=0)
    for ids, k in ((five, 5), (ten, 10)):
        assert sorted(items[i]["label"] for i in ids) == sorted(["one", "two", "three"] * k)
    assert set(five) <= set(ten)                                  # one seed's cells are nested
    assert draw_subset(items, 5, seed=0) == five                  # reproducible
    assert set(draw_subset(items, 5, seed=1)) != set(five)        # another seed, other clips
    # a class is drawn the same whatever other classes exist (the order is per class)
    more = {**items, **_items({"four": 9})}
    assert [i for i in draw_subset(more, 5, 0) if not i.startswith("four")] == five
    with pytest.raises(ValueError, match="class 'two' has 12 in the train split.*use K ≤ 12"):
        draw_subset(items, 13, seed=0)


def test_spec_augment_masks_bands_and_frames_within_their_widths():
    import torch

    from specgan.kshot import ClassicalConfig, spec_augment

    x = torch.ones(64, 1, 20, 30)
    gen = torch.Generator().manual_seed(0)
    c = ClassicalConfig(freq_masks=1, freq_width=4, time_masks=0)
    y = spec_augment(x, c, gen)
    assert torch.equal(x, torch.ones_like(x))                     # the input is left alone
    zero_rows = (y == 0).all(dim=3)[:, 0]                         # (B, n_mels): whole bands masked
    assert ((y == 0) == zero_rows[:, None, :, None]).all()        # only whole bands
    widths = zero_rows.sum(1)
    assert widths.max() <= 4 and widths.float().mean() > 1        # up to the width, 2 on average
    # the masked bands of a clip are contiguous
    for row in zero_rows:
        idx = row.nonzero().flatten()
        assert len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx)
    t = spec_augment(x, ClassicalConfig(freq_masks=0, time_masks=2, time_width=3), gen)
    frames = (t == 0).all(dim=2)[:, 0]
    assert ((t == 0) == frames[:, None, None, :]).all() and frames.sum(1).max() <= 6
    assert torch.equal(spec_augment(x, ClassicalConfig(freq_masks=0, time_masks=0), gen), x)


def test_kshot_config_mistakes_are_one_line():
    from specgan.kshot import ClassicalConfig, KShotConfig

    with pytest.raises(ValueError, match="conditions: expected some of real, classical"):
        KShotConfig(conditions=["real", "gans"])
    with pytest.raises(ValueError, match="shots: expected positive"):
        KShotConfig(shots=[0, 5])
    with pytest.raises(ValueError, match=r"speed: expected \[low, high\]"):
        ClassicalConfig(speed=[1.1, 0.9])
    with pytest.raises(ValueError, match="noises: unknown traffic"):
        ClassicalConfig(noises=["white", "traffic"])
    with pytest.raises(ValueError, match="filter: a probability"):
        KShotConfig(filter=1.0)
    # and through a recipe: the key is named
    with pytest.raises((RecipeError, ValueError), match="kshot"):
        load_recipe(ROOT / "recipes" / "augment-digits.yaml", ["kshot.ratio=-1"])


def test_kshot_summary_is_mean_and_spread_over_seeds():
    from specgan.kshot import summarise, summary_table

    rows = [{"k": 5, "condition": "real", "accuracy": a} for a in (0.5, 0.6, 0.7)] + \
           [{"k": 5, "condition": "gan", "accuracy": a} for a in (0.4, 0.4, 0.7)]
    s = {r["condition"]: r for r in summarise(rows)}
    assert s["real"]["mean"] == pytest.approx(0.6) and s["real"]["std"] == pytest.approx(0.1)
    assert s["gan"]["mean"] == pytest.approx(0.5) and s["gan"]["std"] == pytest.approx(0.17320508)
    table = summary_table({"summary": summarise(rows), "test_split": "test", "test_items": 9, "classes": 3})
    assert "| 5 | 0.600 ± 0.100 | 0.500 ± 0.173 |" in table and table.index("real") < table.index("gan")


def test_kshot_filter_drops_what_the_judge_rejects_and_counts_it():
    import numpy as np
    import torch

    from specgan.kshot import _draw
    from vocoder.mel import MelStats

    class Labels:
        multi = False

    class Fake:   # a stage-one model: mel value = class index, so the judge can tell them apart
        labels = Labels()

        def sample(self, ask, seeds, batch_size=None):
            return torch.full((len(seeds), 4, 6), float(["a", "b"].index(ask)))

    stats = MelStats(np.zeros(4), np.ones(4), 1, None)

    def judge(x):  # class a: always confident; class b: never
        p_a = (x[:, 0, 0, 0] < 0.5).float().numpy()
        return np.stack([p_a, 1 - p_a], 1) * np.array([1.0, 0.0])

    x, ys, info = _draw(Fake(), ["a", "b"], 3, stats, 6, -11.5, seed=0, judge=judge, tau=0.5, tries=2)
    assert ys == ["a"] * 3 and x.shape == (3, 1, 4, 6)
    # draws come 16 at a time: a's first 16 all pass (3 kept); b's 16 all fail, and 16 ≥ tries × 3 ends it
    assert info["short"] == {"b": 3} and info["dropped"] == {"a": 0, "b": 16}
    x, ys, info = _draw(Fake(), ["a", "b"], 3, stats, 6, -11.5, seed=0)
    assert ys == ["a"] * 3 + ["b"] * 3 and info == {"dropped": {}, "short": {}}


@pytest.mark.slow
def test_kshot_experiment_runs_stage_by_stage_and_resumes(tiny):
    """The whole experiment on tiny (2 clips per word): a GAN per cell on that cell's clips alone,
    the sets each condition adds, a recogniser per condition, the table and the figure; a second
    run retrains nothing.
    """
    import torch

    from specgan.kshot import draw_subset
    from specgan.pipeline import run
    from vocoder.checkpoint import load_training_state

    shipped = tiny.work / "specgan" / "model.safetensors"   # the fixture's stage one plays the shipped model
    recipe = load_recipe("tiny", [f"work_dir={tiny.work}", "task=augment", "kshot.shots=[2]", "kshot.seeds=[0]",
                                  "kshot.ratio=1.5", "kshot.recogniser.steps=3", "kshot.recogniser.width=4",
                                  "kshot.classical.copies=2", f"pretrained.specgan={shipped}"])
    said = []
    done = run(recipe, 2, 5, device="cpu", progress=False, report=said.append)
    assert "K=2 seed 0: 20 clips, trained to step 4" in done["specgan"]
    assert done["vocoder"].startswith("not used")
    cell = tiny.work / "kshot" / "k2-s0"
    state = load_training_state(cell / "specgan" / "state.pt", report=False)
    ids = draw_subset(json.loads((tiny.work / "features" / "train" / "index.json").read_text())["items"], 2, 0)
    import hashlib
    assert state["extra"]["shape"]["data"]["items"] == hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]
    sets = torch.load(cell / "sets.pt", weights_only=False)
    assert sets["ids"] == ids and len(sets["real"][1]) == 20 and len(sets["classical"][1]) == 40
    assert len(sets["gan"][1]) == len(sets["shipped"][1]) == 30          # round(1.5 × 2) per class
    assert sorted(set(sets["gan"][1])) == sorted(set(sets["real"][1]))  # every class, balanced
    assert sets["gan"][0].abs().max() <= 1.0                             # in the cell's normalisation
    out = json.loads((tiny.work / "eval" / "kshot.json").read_text())
    by = {r["condition"]: r for r in out["rows"]}
    assert [by[c]["train_items"] for c in ("real", "classical", "gan", "both", "shipped")] == [20, 60, 50, 90, 50]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in out["rows"]) and out["test_split"] == "test"
    assert (tiny.work / "eval" / "kshot.png").stat().st_size > 1000
    assert "| 2 |" in (tiny.work / "eval" / "kshot.md").read_text()
    # each recogniser's confusions: every test clip counted once, under its true class
    for r in out["rows"]:
        assert sum(n for preds in r["confusion"].values() for n in preds.values()) == out["test_items"]
        assert all(r["confusion"][c].get(c, 0) / sum(r["confusion"][c].values()) == pytest.approx(a)
                   for c, a in r["per_class"].items())
    assert "**K = 2**" in (tiny.work / "eval" / "kshot.md").read_text()
    page = (tiny.work / "eval" / "report.html").read_text()   # the report: the figure, the table, the cell's mels
    assert 'alt="accuracy against K"' in page and page.count("<figcaption>shipped</figcaption>") == 10
    assert "<th>K per class</th><th>real</th>" in page and "<tr><td class=num>2</td>" in page
    # again: every stage is up to date, no recogniser is retrained
    said.clear()
    again = run(recipe, 2, 5, device="cpu", progress=False, report=said.append)
    assert "up to date" in again["specgan"] and "up to date" in again["synth"]
    assert not any("accuracy" in line for line in said if line.startswith("   K="))
    assert json.loads((tiny.work / "eval" / "kshot.json").read_text())["rows"] == out["rows"]
    # a variant that changes the GAN itself trains its own cell GANs and leaves the shared ones alone
    shared = (cell / "specgan" / "model.safetensors").read_bytes()
    ms = load_recipe("tiny", [f"work_dir={tiny.work}", "task=augment", "kshot.shots=[2]", "kshot.seeds=[0]",
                              "kshot.ratio=1.5", "kshot.recogniser.steps=3", "kshot.recogniser.width=4",
                              "kshot.classical.copies=2", f"pretrained.specgan={shipped}", "kshot.variant=ms",
                              "kshot.variant_gans=true", "kshot.conditions=[gan]", "specgan.mode_seeking=1.0"])
    done = run(ms, 2, 5, device="cpu", progress=False, report=said.append)
    assert "trained to step 4" in done["specgan"] and str(cell / "specgan-ms") in done["specgan"]
    assert (cell / "specgan" / "model.safetensors").read_bytes() == shared and not (cell / "specgan.prev").exists()
    assert (cell / "sets-ms.pt").is_file() and (tiny.work / "eval" / "kshot-ms.json").is_file()
    with pytest.raises((RecipeError, ValueError), match="variant_gans: needs a variant"):
        load_recipe("tiny", ["task=augment", "kshot.variant_gans=true"])


def test_an_augment_recipe_refuses_the_single_stage_one_training(tmp_path):
    run = subprocess.run([sys.executable, "-m", "specgan.cli", "train", "--recipe", "recipes/augment-digits.yaml",
                          "--set", f"work_dir={tmp_path / 'w'}", "--stage", "specgan"], cwd=ROOT, capture_output=True,
                         text=True)
    assert run.returncode != 0 and "trains one GAN per K-shot cell" in run.stderr and "Traceback" not in run.stderr


def test_recogniser_batches_hold_the_real_share(monkeypatch):
    import torch

    from specgan import kshot

    seen = []

    class Spy(torch.nn.Module):   # records the batches the recogniser trains on
        def __init__(self, n_classes, width):
            super().__init__()
            self.lin = torch.nn.Linear(1, n_classes)

        def forward(self, x):
            seen.append(x[:, 0, 0, 0].clone())
            return self.lin(x[:, :, 0, 0])

    x = torch.cat([torch.ones(6, 1, 2, 3), torch.zeros(40, 1, 2, 3)])   # 6 real clips (1), 40 added ones (0)
    ys = ["a"] * 6 + ["b"] * 40
    rc = kshot.RecogniserConfig(steps=10, batch_size=8, max_shift=0, real_share=0.5)
    monkeypatch.setattr("specgan.classifier.MelClassifier", Spy)
    kshot.train_recogniser((x, ys), ["a", "b"], rc, seed=0, n_real=6)
    assert all(int(b.sum()) == 4 and len(b) == 8 for b in seen)          # half of every batch real
    seen.clear()
    kshot.train_recogniser((x, ys), ["a", "b"], kshot.RecogniserConfig(steps=23, batch_size=8, max_shift=0),
                           seed=0, n_real=6)
    assert sum(int(b.sum()) for b in seen) < 4 * 23 / 2                  # shuffled together: about 6 in 46


def test_kshot_table_merges_runs_over_other_cells(tmp_path):
    from conftest import load_tool

    tool = load_tool("kshot_table")

    def part(name, rows):
        p = tmp_path / name
        p.write_text(json.dumps({"recipe": "r", "test_split": "test", "test_items": 9, "classes": 3, "rows": rows}))
        return p

    a = part("a.json", [{"k": 5, "seed": s, "condition": "real", "accuracy": v} for s, v in ((0, 0.5), (1, 0.7))])
    b = part("b.json", [{"k": 10, "seed": 0, "condition": "real", "accuracy": 0.8}])
    out = tool.merge([a, b])
    assert [(s["k"], s["seeds"], round(s["mean"], 3)) for s in out["summary"]] == [(5, 2, 0.6), (10, 1, 0.8)]
    from specgan.kshot import summary_table

    assert "over the seeds each K has (K=5: 2, K=10: 1)" in summary_table(out)
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"recipe": "other", "test_split": "test", "test_items": 9, "rows": []}))
    with pytest.raises(ValueError, match="another recipe or test split"):
        tool.merge([a, c])


def test_kshot_per_class_table_reads_accuracy_and_confusions_per_class():
    from specgan.kshot import per_class_table

    def row(cond, seed, per, confusion=None):
        return {"k": 10, "seed": seed, "condition": cond, "accuracy": 0.0, "per_class": per, "confusion": confusion}

    rows = [row("real", 0, {"one": 0.5, "seven": 1.0}), row("real", 1, {"one": 0.7, "seven": 0.8}),
            row("gan", 0, {"one": 0.6, "seven": 0.5}, {"one": {"one": 3, "nine": 2}, "seven": {"seven": 1, "one": 1}}),
            row("gan", 1, {"one": 0.8, "seven": 1.0}, {"one": {"one": 4, "nine": 1}, "seven": {"seven": 2}})]
    table = per_class_table({"rows": rows})
    assert "| one | 0.60 | 0.70 | +0.10 | nine 3 |" in table
    assert "| seven | 0.90 | 0.75 | -0.15 | one 1 |" in table
    # results cached before confusions were kept: the column says so instead of claiming no errors
    old = per_class_table({"rows": [{**r, "confusion": None} for r in rows]})
    assert "| one | 0.60 | 0.70 | +0.10 | — |" in old


@pytest.mark.slow
def test_an_augment_clip_is_the_synth_clip_even_past_full_scale(tmp_path):
    """docs/augment.md: any clip can be regenerated with `specgan synth --label L --seed S --n 1`.
    The shipped music models rebuild pitch 49, seed 13 past full scale (a bright blotch stage one
    drew at frame 41, 2.7x): both write it through the same edge repair and peak protection, sample
    for sample.
    """
    from specgan.recipe import load_recipe
    from specgan.synth import synth

    recipe = load_recipe("music", [f"work_dir={tmp_path / 'w'}"])
    augment(recipe, 1, tmp_path / "aug", labels=[49], seed=13, progress=False)
    row = json.loads(open(tmp_path / "aug" / "manifest.jsonl").readline())
    assert row["seed"] == 13 and row["gain_db"] == -6.0 and row["clipped"] > 0
    res = synth(recipe, n=1, labels=[49], seed=13, out=tmp_path / "s", progress=False)
    a, _ = sf.read(tmp_path / "aug" / row["path"], dtype="int16")
    b, _ = sf.read(res.wavs[0], dtype="int16")
    assert np.array_equal(a, b)
