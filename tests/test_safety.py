"""Data safety through the real command line: `vocode` never writes over an input, one `synth` call
is one consistent set, one writer per work dir, and a corrupt stage marker is named and rebuilt."""

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import music_like, speech_like

from specgan.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "recipes" / "tiny.yaml")
SR = 16000


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root`` (hidden ones too) → (size, mtime_ns)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
            if p.is_file()}


def warnings_naming(caplog, path: Path) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and str(path) in r.getMessage()]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A small folder corpus (3 digit words, no system tools) through prepare and features, with
    the shipped speech models as the recipe's models (no training), built once; ``tiny`` restores a
    fresh copy of it for each test."""
    root = tmp_path_factory.mktemp("tiny")
    for k, label in enumerate(("one", "two", "three")):
        (root / "audio" / label).mkdir(parents=True)
        for i in range(6):
            f = music_like if label == "two" else speech_like
            sf.write(root / "audio" / label / f"{i}.wav", f(SR, 1.0, seed=10 * k + i), SR)
    for name in ("specgan", "vocoder"):  # a copy: a file that changes under a test would make it flaky
        shutil.copy2(ROOT / "pretrained" / "speech" / f"{name}.safetensors", root / f"{name}.safetensors")
    work = root / "work"
    common = ["--recipe", TINY, "--set", f"work_dir={work}", "--set", f"data.source={root / 'audio'}",
              "--set", "data.label_from_subfolder=true", "--set", "data.label=folder",
              "--set", "data.dev_fraction=0.2", "--set", "data.test_fraction=0.2",
              "--set", "data.preprocess.normalize=peak", "--set", "evaluate.classifier_epochs=1",
              "--set", "evaluate.n_generated=4",
              "--set", f"pretrained.specgan={root / 'specgan.safetensors'}",
              "--set", f"pretrained.vocoder={root / 'vocoder.safetensors'}"]
    for cmd in (["prepare"], ["features"]):
        assert main([*cmd, *common]) == 0, cmd
    shutil.copytree(work, root / "snapshot", symlinks=True)
    return root, common


@pytest.fixture
def tiny(tiny_base):
    """(work dir, common CLI args): the module's prepared work dir, as built (same path, so every
    absolute path recorded inside stays valid)."""
    root, common = tiny_base
    work = root / "work"
    shutil.rmtree(work)
    shutil.copytree(root / "snapshot", work, symlinks=True)
    return work, common


# -- vocode -------------------------------------------------------------------------------------------
def test_vocode_never_writes_over_an_input(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for rel in ("speech.wav", "a/x.wav", "b/x.wav"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        sf.write(tmp_path / rel, speech_like(SR, 0.5, seed=len(rel)), SR)
    before = {rel: (tmp_path / rel).read_bytes() for rel in ("speech.wav", "a/x.wav", "b/x.wav")}
    voc = ["--vocoder", "griffinlim", "--recipe", TINY]

    # the README's own example: the default output folder is ./vocoded, never the input's folder
    assert main(["vocode", *voc, "speech.wav"]) == 0
    assert (tmp_path / "vocoded" / "speech.wav").is_file()
    # two inputs with one file name do not collide
    assert main(["vocode", *voc, "a/x.wav", "b/x.wav"]) == 0
    assert sorted(p.name for p in (tmp_path / "vocoded").iterdir()) == ["speech.wav", "x-2.wav", "x.wav"]
    capsys.readouterr()
    # an output that would be an input is refused in one line, before any work
    for out, inputs in ((".", ["speech.wav"]), ("a", ["b/x.wav", "a/x.wav"])):
        assert main(["vocode", *voc, *inputs, "--out", out]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "refusing to write over an input" in err, err
    assert not (tmp_path / "a" / "x-2.wav").exists()
    assert {rel: (tmp_path / rel).read_bytes() for rel in before} == before


# -- synth --------------------------------------------------------------------------------------------
def synth_set(out: Path) -> tuple[list[str], list[str]]:
    """(WAV files in ``out``, WAVs its synth.json lists)."""
    listed = [c["wav"] for c in json.loads((out / "synth.json").read_text())["clips"]]
    return sorted(p.name for p in out.glob("*.wav")), sorted(listed)


def test_repeated_synth_calls_give_one_consistent_set_each(tiny):
    work, common = tiny
    syn = ["synth", *common, "--vocoder", "griffinlim", "--no-progress"]
    assert main([*syn, "--n", "3"]) == 0
    wavs, listed = synth_set(work / "synth")
    assert len(wavs) == 3 and wavs == listed
    assert main([*syn, "--n", "2", "--seed", "50"]) == 0
    wavs, listed = synth_set(work / "synth")
    assert wavs == listed == ["eight_seed00050.wav", "five_seed00051.wav"]  # the first call's three are gone
    assert np.load(work / "synth" / "mels.npy").shape[0] == 2
    assert [p.name for p in work.iterdir() if p.name.startswith(".synth")] == []  # no temporaries left


@pytest.mark.parametrize("fault", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_synth_leaves_the_previous_set_untouched(tiny, monkeypatch, fault):
    import specgan.checkpoints as synth_mod

    work, common = tiny
    syn = ["synth", *common, "--vocoder", "griffinlim", "--no-progress"]
    assert main([*syn, "--n", "2"]) == 0
    out = work / "synth"
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    real = synth_mod.load_vocoder

    def failing_vocoder(*args, **kwargs):  # vocodes one batch, then fails on the second
        g, desc = real(*args, **kwargs)
        forward, calls = g.forward, []

        def boom(mel):
            calls.append(1)
            if len(calls) == 2:
                raise fault("midway")
            return forward(mel)

        g.forward = boom
        return g, desc

    monkeypatch.setattr(synth_mod, "load_vocoder", failing_vocoder)
    if fault is KeyboardInterrupt:  # Ctrl-C: one line and exit status 130 (issue 14)
        assert main([*syn, "--n", "4", "--seed", "30"]) == 130
    else:
        with pytest.raises(fault, match="midway"):
            main([*syn, "--n", "4", "--seed", "30"])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in work.iterdir() if p.name.startswith(".synth")] == []


def test_synth_refuses_an_out_folder_that_is_not_a_synth_set(tiny, tmp_path, capsys):
    work, common = tiny
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code = main(["synth", *common, "--vocoder", "griffinlim", "--n", "1", "--out", str(tmp_path / "mine")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "notes.txt" in err, err
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


# -- work-dir lock ------------------------------------------------------------------------------------
COMMANDS = [["prepare"], ["features"], ["train", "--stage", "specgan"], ["train", "--stage", "vocoder"], ["run"],
            ["synth", "--vocoder", "griffinlim"], ["evaluate"], ["report"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: "-".join(c[:3:2]))
def test_a_second_writer_is_refused_in_one_line_naming_the_holder(tiny, cmd, capsys):
    from specgan.workdir import work_dir_lock

    work, common = tiny
    before = snapshot(work)
    with work_dir_lock(work, "specgan run --recipe holder.yaml"):  # its own open file: a separate flock
        held = snapshot(work)
        code = main([*cmd, *common])
        err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and f"pid {os.getpid()}" in err and "specgan run --recipe holder.yaml" in err \
        and "since" in err, err
    assert snapshot(work) == held and set(before) <= set(held)  # nothing written or deleted (but .lock)


@pytest.mark.slow
def test_the_lock_goes_with_its_process_even_when_killed(tiny, capsys):
    from specgan.workdir import holder, work_dir_lock

    work, common = tiny
    code = "import sys, time\nfrom specgan.workdir import work_dir_lock\n" \
           "with work_dir_lock(sys.argv[1], 'specgan prepare (child)'):\n    print('held', flush=True)\n" \
           "    time.sleep(120)\n"
    child = subprocess.Popen([sys.executable, "-c", code, str(work)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        assert holder(work)["pid"] == child.pid
        assert main(["prepare", *common]) == 2
        err = capsys.readouterr().err
        assert f"pid {child.pid}" in err and "specgan prepare (child)" in err, err
    finally:
        child.kill()
        child.wait()
    with work_dir_lock(work, "after"):  # SIGKILL released it: no stale lock
        pass
    assert main(["prepare", *common]) == 0
    assert holder(work)["command"].startswith("specgan prepare --recipe")


# -- corrupt markers ----------------------------------------------------------------------------------
def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_truncated_prepare_json_is_named_and_rebuilt(tiny, caplog, capsys):
    work, common = tiny
    marker = work / "data" / "prepare.json"
    truncate(marker)
    assert main(["prepare", *common]) == 0
    assert len(warnings_naming(caplog, marker)) == 1
    assert "up to date" not in capsys.readouterr().out
    assert json.loads(marker.read_text())["counts"]["train"] > 0
    assert main(["prepare", *common]) == 0 and "up to date" in capsys.readouterr().out


def test_truncated_features_index_npy_and_stats_are_named_and_rebuilt(tiny, caplog, capsys):
    from specgan.features.cache import load_index, load_stats

    work, common = tiny
    feats = work / "features"
    index, npy, stats = feats / "dev" / "index.json", sorted((feats / "train").glob("*.npy"))[0], feats / "stats.npz"
    wrong = sorted((feats / "test").glob("*.npy"))[0]
    for p in (index, npy, stats):
        truncate(p)
    np.save(wrong, np.zeros((3, 5), np.float32))  # readable, wrong shape
    assert main(["features", *common]) == 0
    for p in (index, npy, stats, wrong):
        assert len(warnings_naming(caplog, p)) == 1, (p, caplog.text)
    out = capsys.readouterr().out
    assert "features/train:" in out and "(1 extracted" in out and "stats: recomputed" in out, out
    assert load_index(work, "dev")["items"] and load_stats(work).n_mels == 64
    assert np.load(npy).shape[0] == 64 and np.load(wrong).shape[0] == 64
    caplog.clear()
    assert main(["features", *common]) == 0 and "stats: reused" in capsys.readouterr().out
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_truncated_synth_json_is_named_and_rebuilt_by_run(tiny, caplog, capsys):
    work, common = tiny
    run = ["run", *common, "--stage", "synth", "--stop-stage", "synth", "--no-progress",
           "--set", "synth.vocoder=griffinlim", "--set", "synth.n=2"]
    assert main(run) == 0
    marker = work / "synth" / "synth.json"
    assert "key" in json.loads(marker.read_text())
    truncate(marker)
    capsys.readouterr()
    assert main(run) == 0
    assert len(warnings_naming(caplog, marker)) == 1
    assert "2 clips" in capsys.readouterr().out
    wavs, listed = synth_set(work / "synth")
    assert wavs == listed and len(wavs) == 2
    assert main(run) == 0 and "up to date" in capsys.readouterr().out


@pytest.mark.slow
def test_a_truncated_metrics_json_is_named_and_rebuilt_by_run(tiny, caplog, capsys):
    work, common = tiny
    marker = work / "eval" / "metrics.json"
    marker.parent.mkdir()
    marker.write_text('{"generation": {"ndb": 1, "bin')  # what a crash mid-write used to leave
    (marker.parent / "report.html").write_text("<html></html>")
    run = ["run", *common, "--stage", "evaluate", "--no-progress"]
    assert main(run) == 0
    assert len(warnings_naming(caplog, marker)) == 1
    blob = json.loads(marker.read_text())
    assert "key" in blob and blob["vocoder"]["clips"] > 0
    capsys.readouterr()
    assert main(run) == 0 and "up to date" in capsys.readouterr().out
