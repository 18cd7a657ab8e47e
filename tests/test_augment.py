"""`specgan augment`: labelled generated clips in the layout folder.yaml reads."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from specgan.augment import augment
from specgan.recipe import load_recipe

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
