"""The real `specgan` command on the CI-sized recipe: prepare + features, then again from cache."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need_tool

ROOT = Path(__file__).resolve().parent.parent


def specgan(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "specgan.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"specgan {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def specgan_here(*args, check=True):
    """The same command through ``specgan.cli.main`` in this process: for the short calls (an error
    message, an "up to date"), where a fresh interpreter would spend its ~5 s importing torch."""
    import contextlib
    import io
    import os

    from specgan.cli import main

    out, err, cwd = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(list(args))
            except SystemExit as e:  # argparse
                rc = e.code
    finally:
        os.chdir(cwd)
    proc = subprocess.CompletedProcess(["specgan", *args], rc, out.getvalue(), err.getvalue())
    if check and rc != 0:
        raise AssertionError(f"specgan {' '.join(args)} failed ({rc}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.mark.slow
def test_help_explains_every_command():
    out = specgan("--help").stdout
    for cmd in ("prepare", "features", "train", "run", "synth", "vocode", "export", "recipe"):
        assert cmd in out
        assert "--recipe" in specgan(cmd, "--help").stdout or cmd in ("export", "vocode")


@pytest.mark.slow
def test_bad_recipe_key_is_a_clear_error():
    proc = specgan("recipe", "--recipe", "recipes/tiny.yaml", "--set", "data.digits.speeds=[1,2]", check=False)
    assert proc.returncode == 2
    assert "data.digits.speeds: unknown key in data.digits; allowed keys:" in proc.stderr


@pytest.mark.slow
@need_tool("espeak-ng")
def test_tiny_recipe_prepare_and_features_twice(tmp_path):
    work = tmp_path / "tiny"
    common = ["--recipe", "recipes/tiny.yaml", "--set", f"work_dir={work}"]
    out = specgan("prepare", *common).stdout
    assert "train" in out and "skipped 0 files" in out
    counts = json.loads((work / "data" / "prepare.json").read_text())["counts"]
    assert counts["train"] > 0 and counts["dev"] > 0 and counts["test"] > 0
    n = sum(counts.values())

    out = specgan("features", *common).stdout
    assert "reused" in out and "stats: recomputed" in out
    npys = sorted((work / "features").rglob("*.npy"))
    assert len(npys) == n
    stamps = [p.stat().st_mtime_ns for p in npys]
    for stage in ("data", "features"):
        assert (work / stage / "config.yaml").is_file()  # the resolved recipe beside each output

    assert "up to date" in specgan_here("prepare", *common).stdout
    out = specgan("features", *common).stdout
    for split in ("train", "dev", "test"):
        assert f"features/{split}: {counts[split]} items (0 extracted, {counts[split]} reused from cache)" in out
    assert "stats: reused" in out
    assert [p.stat().st_mtime_ns for p in npys] == stamps


@pytest.mark.slow
@need_tool("espeak-ng")
def test_tiny_recipe_trains_both_stages_resumes_and_exports(tmp_path):
    work = tmp_path / "tiny"
    common = ["--recipe", "recipes/tiny.yaml", "--set", f"work_dir={work}"]
    specgan_here("prepare", *common)  # in this process; the trainings below go through fresh ones
    specgan_here("features", *common)
    out = specgan("train", *common, "--stage", "specgan").stdout
    assert "specgan: step 4" in out and "critic/wdist" in out
    for f in ("model.safetensors", "state.pt", "config.yaml", "history.jsonl", "samples/step0000004.png"):
        assert (work / "specgan" / f).is_file(), f
    assert "specgan: up to date at step 4" in specgan_here("train", *common, "--stage", "specgan").stdout
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "specgan.cli", "train", *common, "--stage", "specgan", "--resume", "--steps", "6"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    assert "specgan: step 6" in ddp.stdout and "(2 processes)" in ddp.stdout
    out = specgan("train", *common, "--stage", "vocoder", "--no-progress").stdout
    assert "vocoder: step 4" in out and "dev/mel_l1" in out
    voc = work / "vocoder"
    for f in ("model.safetensors", "best/model.safetensors", "state.pt", "config.yaml", "history.jsonl"):
        assert (voc / f).is_file(), f
    assert list((voc / "logs").glob("events.out.tfevents.*"))
    import vocoder
    from vocoder.mel import MelStats

    meta = vocoder.load(voc / "model.safetensors").checkpoint_meta
    assert MelStats.from_dict(meta["stats"]).n_mels == meta["mel"].n_mels  # features ran first
    assert "up to date at step 4" in specgan_here("train", *common, "--stage", "vocoder").stdout
    # The one skip/resume policy: more steps of the same recipe continue the run.
    out = specgan("train", *common, "--stage", "vocoder", "--steps", "6", "--no-progress").stdout
    assert "vocoder: step 6" in out
    steps = [json.loads(line)["step"] for line in (voc / "history.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6 and 4 in steps
    specgan_here("export", "--vocoder", str(voc / "model.safetensors"), "--onnx", str(tmp_path / "v.onnx"))
    assert (tmp_path / "v.onnx").stat().st_size > 10_000


@pytest.mark.slow
@need_tool("espeak-ng")
def test_run_all_stages_then_skip_then_synth_and_vocode_variants(tmp_path):
    import numpy as np
    import soundfile as sf

    work = tmp_path / "tiny"
    common = ["--recipe", "recipes/tiny.yaml", "--set", f"work_dir={work}"]
    out = specgan("run", *common, "--no-progress").stdout
    for i, name in enumerate(("prepare", "features", "specgan", "vocoder", "synth", "evaluate")):
        assert f"== stage {i}: {name}" in out
    assert (work / "data" / "train.jsonl").is_file() and (work / "features" / "stats.npz").is_file()
    assert (work / "specgan" / "model.safetensors").is_file() and (work / "vocoder" / "model.safetensors").is_file()
    wavs = sorted((work / "synth").glob("*.wav"))
    assert len(wavs) == 4 and (work / "synth" / "grid.png").is_file()
    assert np.load(work / "synth" / "mels.npy").shape == (4, 64, 64)
    y, sr = sf.read(wavs[0])
    assert sr == 16000 and y.shape == (16000,)  # data.preprocess.clip_seconds, not the model's 64 frames
    labels = [c["label"] for c in json.loads((work / "synth" / "synth.json").read_text())["clips"]]
    assert labels == ["eight", "five", "four", "nine"]  # every label in turn (sorted vocabulary)
    metrics = json.loads((work / "eval" / "metrics.json").read_text())
    assert metrics["vocoder"]["clips"] == 4 and metrics["vocoder"]["griffinlim"]["mel_l1"] > 0
    assert "note_pitch" not in metrics["vocoder"]["trained"]  # espeak's pitch setting is no MIDI note
    assert metrics["generation"]["step"] == 4 and "label_accuracy" in metrics["generation"]
    assert 0 <= metrics["generation"]["classifier"]["test_accuracy"] <= 1
    assert set(metrics["generation"]["label_accuracy_vocoded"]) == {"trained", "griffinlim"}
    ripple = metrics["generation"]["fine_structure"]  # builtin:digits is speech: the low-band ripple is scored
    assert ripple["bands"] == 30 and ripple["real"]["contrast"] > 0 and ripple["generated"]["frames"] > 0
    comb = metrics["generation"]["comb_fit"]  # and how harmonic that ripple is
    assert 0 < comb["real"]["fit"] <= 1 and comb["generated"]["frames"] == ripple["generated"]["frames"]
    assert "low-band ripple" in out and "periodicity of active frames" in out and "fit to a harmonic comb" in out
    assert (work / "eval" / "report.html").is_file() and (work / "classifier" / "model.safetensors").is_file()
    _check_grids_and_report_seeds(work)
    _check_scored_in_work_statistics(work)

    stamp = (work / "synth" / "synth.json").stat().st_mtime_ns
    wrapper = subprocess.run(["bash", "recipes/tiny/run.sh", "--set", f"work_dir={work}", "--no-progress"], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)  # the run.sh form, same runner
    assert wrapper.returncode == 0, wrapper.stderr[-2000:]
    out = wrapper.stdout
    assert out.count("up to date") == 6, out
    assert (work / "synth" / "synth.json").stat().st_mtime_ns == stamp
    out = specgan_here("run", *common, "--stage", "synth", "--stop-stage", "4", "--force", "--set", "synth.n=2").stdout
    assert "2 clips" in out and "evaluate" not in out

    # synth: griffinlim, a label, a seed, a latent walk
    specgan_here("synth", *common, "--vocoder", "griffinlim", "--label", "seven", "--n", "2", "--seed", "40",
            "--out", str(tmp_path / "gl"))
    assert sorted(p.name for p in (tmp_path / "gl").glob("*.wav")) == ["seven_seed00040.wav", "seven_seed00041.wav"]
    specgan_here("synth", *common, "--interpolate", "1", "2", "--points", "3", "--label", "two", "--out", str(tmp_path / "w"))
    assert sorted(p.name for p in (tmp_path / "w").glob("*.wav")) == [f"walk1-2_0{i}_two.wav" for i in range(3)]
    for bad, msg in ((["--label", "eleven"], "unknown label 'eleven'"), (["--n", "0"], "--n must be at least 1"),
                     (["--duration", "3"], "this model generates 1 to 16384 samples"),
                     (["--vocoder", "nonexistent.safetensors"], "not found")):
        proc = specgan_here("synth", *common, *bad, "--out", str(tmp_path / "bad"), check=False)
        assert proc.returncode == 2 and msg in proc.stderr, (bad, proc.stderr)

    # a vocoder trained for another mel is refused, naming the field
    other = tmp_path / "other"
    specgan_here("train", "--recipe", "recipes/tiny.yaml", "--set", f"work_dir={work}", "--set", "mel.n_mels=32",
                 "--stage", "vocoder", "--steps", "1", "--out", str(other), "--no-progress")
    proc = specgan_here("synth", *common, "--vocoder", str(other), check=False)
    assert proc.returncode == 2 and "n_mels: 32" in proc.stderr and "64" in proc.stderr, proc.stderr

    # vocode: a WAV and a log-mel .npy (copy synthesis)
    np.save(tmp_path / "m.npy", np.load(work / "synth" / "mels.npy")[0])
    src = str(work / json.loads((work / "data" / "test.jsonl").read_text().splitlines()[0])["path"])
    specgan_here("vocode", "--vocoder", str(work / "vocoder"), str(tmp_path / "m.npy"), src, "--out", str(tmp_path / "v"))
    y, sr = sf.read(tmp_path / "v" / "m.wav")
    assert sr == 16000 and y.shape == (64 * 256,) and np.abs(y).max() > 0
    assert (tmp_path / "v" / f"{Path(src).stem}.wav").is_file()


def _check_scored_in_work_statistics(work: Path) -> None:
    """A model file with other normalisation statistics (trained on another build of the data) that
    draws the same log-mels is scored in the work's normalisation: by the same evaluation
    classifier (not retrained), to the same numbers."""
    import copy
    import dataclasses

    import pytest
    import torch
    from specgan.evaluate import generation_draw, generation_metrics, in_work_statistics
    from specgan.recipe import load_recipe
    from specgan.stage_one import load as load_stage_one
    from vocoder.mel import MelStats

    torch.set_num_threads(1)
    recipe = load_recipe(ROOT / "recipes" / "tiny.yaml", [f"work_dir={work}"])
    a = load_stage_one(work / "specgan" / "model.safetensors")
    assert in_work_statistics(recipe, a) == (a, None)  # trained in this work: nothing to map
    own = a.stats
    other = MelStats(own.mean + 0.7, own.std * 1.3, own.count, own.clip_sigma)
    mean, std = (torch.as_tensor(v, dtype=torch.float32)[:, None] for v in (other.mean, other.std))
    g = copy.deepcopy(a.generator)  # the same log-mels, written in the other statistics' normalisation
    g.register_forward_hook(lambda m, args, out: (own.denormalize(out) - mean) / (std * other.clip_sigma))
    b = dataclasses.replace(a, generator=g, stats=other)
    # the draw comes with the model seen in the work's normalisation, which gives back b's log-mels
    _, _, fake_a, view_a = generation_draw(recipe, a)
    _, _, fake_b, view_b = generation_draw(recipe, b)
    assert view_a is a and view_b.stats.to_dict() == own.to_dict() and view_b.generator is g
    torch.testing.assert_close(view_b.stats.denormalize(fake_b), view_a.stats.denormalize(fake_a), rtol=1e-5, atol=1e-5)
    key = work / "classifier" / "key.json"
    ma, stamp = generation_metrics(recipe, a), key.stat().st_mtime_ns
    mb = generation_metrics(recipe, b)
    assert key.stat().st_mtime_ns == stamp  # the classifier was not retrained for b
    for k in ("label_accuracy", "label_accuracy_real", "fid_real_train_vs_test", "ndb"):
        assert mb[k] == ma[k], k
    for k in ("fid", "inception_score", "nn_train_distance_generated", "diversity_generated"):
        assert mb[k] == pytest.approx(ma[k], rel=1e-4, abs=1e-6), k
    assert mb["comb_fit"]["generated"]["fit"] == pytest.approx(ma["comb_fit"]["generated"]["fit"], abs=1e-5)
    assert ma["modulation"]["ratio"] and mb["modulation"]["ratio"] == pytest.approx(ma["modulation"]["ratio"], rel=1e-3)
    # the recipe's smoothing is what the draw is scored with (as synth writes it)
    from specgan.stage_one.model import smooth_frames

    recipe.synth.smoothing = 0.25
    _, _, fake_s, _ = generation_draw(recipe, a)
    recipe.synth.smoothing = 0.0
    torch.testing.assert_close(fake_s[:, 0], smooth_frames(fake_a[:, 0], 0.25))
    # evaluate once: each generated clip goes through the synth vocoder once (label accuracy after
    # vocoding and harmonicity share the audio), and each real clip once (harmonicity)
    from vocoder.registry import build_generator

    gl, seen = build_generator({"name": "griffinlim"}, recipe.mel).eval(), []

    class Counting(torch.nn.Module):
        registry_name = "counting"

        def forward(self, mel):
            seen.append(mel.shape[0])
            return gl(mel)

    mc = generation_metrics(recipe, a, Counting())
    assert set(mc["label_accuracy_vocoded"]) == {"trained", "griffinlim"} and "harmonicity" in mc
    assert sum(seen) == 2 * mc["n"], seen
    # DNSMOS of the three sets (tiny: one clip each), on the same audio
    d = mc["dnsmos"]
    assert all(d[k]["clips"] == 1 and 1.0 <= d[k]["ovrl"] <= 5.0 for k in ("generated", "real_vocoded", "real_audio")), d


def _check_grids_and_report_seeds(work: Path) -> None:
    """Issue 14 item 10: grids carry time/frequency axes and the model's path; the report's generated
    clips are synth's own files (same plan: clip i = seed + i, labels in turn)."""
    import base64
    import io
    import re

    import numpy as np
    import soundfile as sf
    from PIL import Image

    grid = Image.open(work / "synth" / "grid.png").text
    assert str(work / "specgan" / "model.safetensors") in grid["Title"], grid
    assert "time (s) [0, 0.5, 1]" in grid["Description"] and "frequency (Hz)" in grid["Description"], grid
    samples = sorted((work / "specgan" / "samples").glob("step*.png"))
    assert samples, "the trainer wrote no sample grid"
    meta = Image.open(samples[-1]).text
    assert str(work / "specgan") in meta["Title"] and "(Hz)" in meta["Description"], meta

    page = (work / "eval" / "report.html").read_text()
    for name in ("eight_seed00000.wav", "five_seed00001.wav"):
        found = re.search(r'src="data:audio/wav;base64,([A-Za-z0-9+/=]+)"></audio><figcaption>seed \d+: '
                          + re.escape(name) + "<", page)
        assert found, f"{name} not in the report"
        heard, _ = sf.read(io.BytesIO(base64.b64decode(found.group(1))))
        written, _ = sf.read(work / "synth" / name)
        assert heard.shape == written.shape and np.abs(heard - written).max() < 1e-3, name


@pytest.mark.slow
@need_tool("espeak-ng")
@need_tool("chromium")
def test_report_opens_in_headless_chromium_and_its_audio_loads(tmp_path):
    """The whole tiny pipeline with 2-step models, then the page in a real browser."""
    import re

    work = tmp_path / "tiny"
    common = ["--recipe", "recipes/tiny.yaml", "--set", f"work_dir={work}", "--set", "specgan.steps=2",
              "--set", "vocoder.steps=2", "--set", "evaluate.classifier_epochs=1"]
    specgan("run", *common, "--no-progress")
    page = work / "eval" / "report.html"
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    status = re.search(r'id="audio-status">loaded=(\d+) errors=(\d+) total=(\d+)<', proc.stdout)
    assert status, proc.stdout[-2000:] + proc.stderr[-2000:]
    loaded, errors, total = map(int, status.groups())
    # 10 labels x (1 real + 2 generated) + 4 A/B rows x 3
    assert (loaded, errors, total) == (42, 0, 42)
    # a broken audio element is reported as an error (the check can fail)
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("data:audio/wav;base64,", "data:audio/wav;base64,AAAA", 1))
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", broken.as_uri()], capture_output=True, text=True, timeout=120)
    assert re.search(r'id="audio-status">loaded=41 errors=1 total=42<', proc.stdout), proc.stdout[-1000:]
