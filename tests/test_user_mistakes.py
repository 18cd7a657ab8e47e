"""Issue 14: the commands users type and the mistakes they make, at the command line (and the
notebook API): bundled recipes by name from any folder, package data, recipes that are refused in
one line, one exception net for every command, synth's `--points`, `vocode` of synth's mels.npy."""

import errno
import os
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from specgan.cli import main

ROOT = Path(__file__).resolve().parent.parent
SR = 16000


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("specgan ") and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


# -- item 1: bundled recipes and models ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["music.yaml", "recipes/speech.yaml", "tiny"])
def test_a_bundled_recipe_is_found_by_name_from_any_folder(tmp_path, monkeypatch, capsys, name):
    from specgan.recipe import load_recipe

    monkeypatch.chdir(tmp_path)  # no recipes/ here
    assert main(["recipe", "--recipe", name]) == 0
    assert "work_dir:" in capsys.readouterr().out
    r = load_recipe(name)
    # relative paths inside the recipe still resolve (../pretrained/...)
    for path in (r.pretrained.specgan, r.pretrained.vocoder):
        assert path is None or r.resolve(path).is_file(), path
    if name != "tiny":
        assert r.pretrained.specgan
    assert main(["recipe", "--recipe", "nosuch.yaml"]) == 2
    one_line_error(capsys, "nosuch.yaml", "bundled: ", "music")


def test_the_readmes_model_paths_work_from_any_folder(tmp_path, monkeypatch, capsys):
    """`specgan vocode --vocoder pretrained/speech/vocoder.safetensors speech.wav` (the README's tour)
    from a folder without pretrained/: the shipped model; a missing path is "not found", one line."""
    monkeypatch.chdir(tmp_path)
    t = np.arange(SR // 2) / SR
    sf.write("speech.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    assert main(["vocode", "--vocoder", "pretrained/speech/vocoder.safetensors", "speech.wav"]) == 0
    y, sr = sf.read(tmp_path / "vocoded" / "speech.wav")
    assert sr == SR and len(y) >= SR // 2 - 256
    capsys.readouterr()
    assert main(["vocode", "--vocoder", "pretrained/speech/nosuch.safetensors", "speech.wav", "--out", "x"]) == 2
    one_line_error(capsys, "pretrained/speech/nosuch.safetensors", "not found")
    assert not (tmp_path / "x").exists()


def test_pip_install_carries_recipes_models_and_licence():
    """The wheel's package data (pyproject) covers every shipped recipe and model file; a LICENSE and
    a licence section in each model card."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = conf["tool"]["setuptools"]["package-data"]["specgan"]
    carried = {p.resolve() for pat in patterns for p in (ROOT / "specgan").glob(pat) if p.is_file()}
    shipped = {*(ROOT / "recipes").glob("*.yaml"), *(p for p in (ROOT / "pretrained").glob("*/*") if p.is_file())}
    assert shipped and {p.resolve() for p in shipped} <= carried
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    for card in (ROOT / "pretrained").glob("*/README.md"):
        text = card.read_text()
        assert "## Licence" in text and "MIT" in text and "Debian" in text, card


# -- item 7: recipes -----------------------------------------------------------------------------------
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefg", "bcdefgh"))


@pytest.mark.parametrize("text, needles", [
    (LAUGHS, ["bad.yaml:1:", "anchor &a is not allowed"]),
    ("name: x\nseed: 1\nname: y\n", ["bad.yaml:3:", "duplicate key 'name' (first on line 1)"]),
    ("specgan:\n  lr_g: .nan\n", ["specgan.lr_g", "finite"]),
    ("mel:\n  floor: -1.0e-5\n", ["mel", "floor"]),
    ("features:\n  clip_sigma: -3\n", ["features.clip_sigma", "positive"]),
    ("data:\n  max_items: 0\n", ["data.max_items", "positive"]),
    ("synth:\n  duration: .inf\n", ["synth.duration", "finite"]),
    ("vocoder:\n  critics: [{name: mpd, periods: [0]}]\n", ["vocoder.critics[0].periods[0]"]),
    ("vocoder:\n  critics: [{name: msd, width: 0}]\n", ["vocoder.critics[0].width"]),
    ("vocoder:\n  lr_g: -2.0e-4\n", ["vocoder.lr_g"]),
])
def test_a_bad_recipe_is_refused_in_one_line_naming_file_and_key(tmp_path, capsys, text, needles):
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: " + str(ROOT / "recipes" / "tiny.yaml") + "\n" + text
                   if "&" not in text and "name: x" not in text else text)
    assert main(["recipe", "--recipe", str(bad)]) == 2
    one_line_error(capsys, *needles)


def test_recipe_files_that_are_not_recipes_are_refused_before_reading(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    big.write_text("# x\n" * 300_000)
    for path, needle in (("/dev/zero", "not a regular file"), (str(big), "limit"), (str(tmp_path), "is a folder")):
        assert main(["recipe", "--recipe", path]) == 2
        one_line_error(capsys, path, needle)
    binary = tmp_path / "model.yaml"
    binary.write_bytes(b"\x80\x81\xff" * 10)
    assert main(["recipe", "--recipe", str(binary)]) == 2
    one_line_error(capsys, "not UTF-8")


def test_recipe_numbers_sizes_and_home(tmp_path, capsys):
    from specgan.recipe import load_recipe

    mine = tmp_path / "mine.yaml"
    mine.write_text(f"extends: {ROOT / 'recipes' / 'tiny.yaml'}\nwork_dir: ~/specgan-exp\nspecgan:\n  lr_g: 1e-4\n")
    r = load_recipe(mine, ["vocoder.lr_g=2e-4"])
    assert r.specgan.lr_g == 1e-4 and r.vocoder.lr_g == 2e-4  # YAML 1.1 reads these two as strings
    assert r.work_dir == os.path.expanduser("~/specgan-exp") and "~" not in r.work_dir
    assert main(["recipe", "--recipe", str(mine), "--set", "specgan.generator.d=-4"]) == 2
    one_line_error(capsys, "specgan.generator.d", "-4")


# -- item 8: one exception net -------------------------------------------------------------------------
def _os_error(code):
    return OSError(code, os.strerror(code), "/out/" + "x" * 20)


@pytest.mark.parametrize("fault, code, needles", [
    (_os_error(errno.ENOSPC), 2, ["disk full", "/out/x"]),
    (_os_error(errno.ENAMETOOLONG), 2, ["file name too long", "/out/x"]),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/out/thing"), 2, ["/out/thing", "Is a directory"]),
    (MemoryError(), 2, ["out of memory", "batch_size"]),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), 2, ["out of memory", "batch_size"]),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1e12 bytes"), 2,
     ["out of memory"]),
    (FloatingPointError("6 rollbacks in a row without progress (non-finite loss at step 40); lower specgan.lr_g / "
                        "lr_d and resume from x/state.pt"), 2, ["rollbacks in a row", "specgan.lr_g"]),
    (KeyboardInterrupt(), 130, ["interrupted"]),
])
def test_every_user_error_is_one_line_and_v_shows_the_traceback(tmp_path, monkeypatch, capsys, fault, code, needles):
    import specgan.synth

    def boom(*args, **kwargs):
        raise fault

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(specgan.synth, "synth", boom)
    cmd = ["synth", "--recipe", "tiny.yaml", "--vocoder", "griffinlim"]
    assert main(cmd) == code
    one_line_error(capsys, *needles)
    assert main([*cmd, "-v"]) == code
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("specgan synth:"), err


def test_a_bug_still_shows_its_traceback(tmp_path, monkeypatch):
    import specgan.synth

    def bug(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(specgan.synth, "synth", bug)
    with pytest.raises(KeyError):
        main(["synth", "--recipe", "tiny.yaml"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
@pytest.mark.parametrize("cmd", [["train", "--stage", "specgan"], ["train", "--stage", "vocoder"], ["run"],
                                 ["synth"], ["vocode", "x.wav", "--vocoder", "griffinlim"]],
                         ids=lambda c: "-".join(c[:3:2]))
def test_device_cuda_without_a_gpu_is_one_line_before_any_work(tmp_path, monkeypatch, capsys, cmd):
    monkeypatch.chdir(tmp_path)
    sf.write(tmp_path / "x.wav", np.zeros(1600, np.float32), SR)
    assert main([*cmd, "--recipe", "tiny.yaml", "--device", "cuda"]) == 2
    one_line_error(capsys, "--device cuda", "no CUDA GPU")
    assert not (tmp_path / "exp").exists() and not (tmp_path / "vocoded").exists()


# -- items 8 and 10: synth's latent walk ---------------------------------------------------------------
def speech_synth(tmp_path, *extra):
    return ["synth", "--recipe", "speech.yaml", "--set", f"work_dir={tmp_path / 'work'}", "--vocoder", "griffinlim",
            "--no-progress", "--out", str(tmp_path / "out"), *extra]


def test_the_walk_has_its_own_points_cap_and_batches(tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):  # --steps is training steps only: synth no longer takes it
        main(speech_synth(tmp_path, "--interpolate", "1", "2", "--steps", "3"))
    capsys.readouterr()
    assert main(speech_synth(tmp_path, "--interpolate", "1", "2", "--points", "1000000")) == 2
    one_line_error(capsys, "--points", "100000")

    calls = []
    from specgan import checkpoints

    real = checkpoints.load_stage_one

    def counting(*args, **kwargs):
        model = real(*args, **kwargs)
        forward = model.generator.forward

        def fwd(z, *rest):
            calls.append(z.shape[0])
            return forward(z, *rest)

        model.generator.forward = fwd
        return model

    monkeypatch.setattr(checkpoints, "load_stage_one", counting)
    assert main(speech_synth(tmp_path, "--interpolate", "1", "2", "--points", "5", "--label", "two",
                             )) == 0
    assert calls == [1, 1, 1, 1, 1]  # one point per forward pass, as clips (bit-exact alone)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.wav")) == [f"walk1-2_{i:02d}_two.wav" for i in range(5)]
    assert np.load(out / "mels.npy").shape[0] == 5


def test_synth_disk_estimate_leaves_a_margin(tmp_path, monkeypatch, capsys):
    import shutil

    import specgan.synth

    raw = 4 * (2 * SR + 64 * 64 * 4)  # four clips' bare WAV data and mel rows
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(specgan.synth.shutil, "disk_usage",
                        lambda p: usage._replace(free=int(raw * 1.05)))
    assert main(speech_synth(tmp_path, "--n", "4")) == 2
    line = one_line_error(capsys, "MB needed")  # sizes in the unit that reads (issue 33: not "0.00 GB")
    assert "kB free on its disk" in line


# -- item 4: vocode synth's mels.npy -------------------------------------------------------------------
def test_vocode_takes_synths_mels_npy_one_wav_per_row(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(speech_synth(tmp_path, "--n", "3", "--label", "seven")) == 0
    mels = tmp_path / "out" / "mels.npy"
    assert np.load(mels).shape == (3, 64, 64)
    np.save(tmp_path / "one.npy", np.load(mels)[1])
    voc = ["vocode", "--vocoder", "griffinlim", "--recipe", "speech.yaml"]
    assert main([*voc, str(mels), "one.npy"]) == 0
    names = sorted(p.name for p in (tmp_path / "vocoded").iterdir())
    assert names == ["mels_000.wav", "mels_001.wav", "mels_002.wav", "one.wav"]
    a, sr = sf.read(tmp_path / "vocoded" / "mels_001.wav")
    b, _ = sf.read(tmp_path / "vocoded" / "one.wav")
    assert sr == SR and len(a) == 64 * 256 and np.allclose(a, b, atol=1e-3)
    capsys.readouterr()
    np.save(tmp_path / "flat.npy", np.zeros(10, np.float32))
    (tmp_path / "text.npy").write_text("not an array")
    for bad, needle in (("flat.npy", "got shape (10,)"), ("text.npy", "not a NumPy")):
        assert main([*voc, bad, "--out", "again"]) == 2
        one_line_error(capsys, bad, needle)
    assert not (tmp_path / "again").exists()


# -- item 5: the notebook API --------------------------------------------------------------------------
def test_vocoder_load_is_ready_for_a_notebook():
    import vocoder

    g = vocoder.load(ROOT / "pretrained" / "speech" / "vocoder.safetensors")
    assert g.sample_rate == SR and not g.training
    mel = np.random.default_rng(0).normal(-4, 1, (64, 20)).astype(np.float32)
    wav = g(mel)  # numpy, (n_mels, T), no torch.no_grad needed
    assert wav.shape == (20 * 256,) and not wav.requires_grad and wav.numpy().dtype == np.float32
    batch = g(torch.from_numpy(np.stack([mel, mel])))
    assert batch.shape == (2, 1, 20 * 256)
    # the network's batched matmuls may differ from the single item's in the last bits, and PGHI (its
    # heap order) with 16 Griffin-Lim iterations carries that to ~1e-4 of a ~0.1 signal (-60 dB)
    np.testing.assert_allclose(batch[0, 0].numpy(), wav.numpy(), atol=5e-4)


def test_generate_is_one_call(tmp_path, monkeypatch):
    import specgan

    monkeypatch.chdir(tmp_path)
    wav, sr = specgan.generate("seven", seed=3, recipe="speech", vocoder="griffinlim")
    assert sr == SR and wav.shape == (SR,) and wav.dtype == np.float32 and np.isfinite(wav).all()
    assert 0 < np.abs(wav).max() <= 1
    with pytest.raises(ValueError, match="unknown label 'eleven'.*seven"):
        specgan.generate("eleven", recipe="speech", vocoder="griffinlim")


# -- item 10: export takes a run folder ----------------------------------------------------------------
def test_export_accepts_a_run_folder(tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from vocoder.checkpoint import save_generator
    from vocoder.mel import MelConfig
    from vocoder.registry import build_generator

    mel = MelConfig(sample_rate=SR, n_fft=256, hop_length=64, n_mels=16)
    spec = {"name": "istft", "dim": 16, "intermediate_dim": 32, "num_layers": 1}
    save_generator(tmp_path / "run" / "model.safetensors", build_generator(spec, mel), spec, step=0)
    assert main(["export", "--vocoder", str(tmp_path / "run"), "--onnx", str(tmp_path / "g.onnx")]) == 0
    assert (tmp_path / "g.onnx").is_file()


def test_help_texts_name_their_stage(capsys):
    from specgan.cli import build_parser

    text = build_parser().format_help()
    for line in ("stage 0", "stage 1", "stages 2-3", "stage 4"):
        assert line in text
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "specgan.steps" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    out = capsys.readouterr().out
    assert "--points" in out and "--steps" not in out


def test_own_folder_of_subfolders_is_one_line_and_a_wrong_label_is_refused_before_scanning(tmp_path, monkeypatch,
                                                                                           capsys):
    from conftest import speech_like

    import specgan.data.layouts as layouts

    for label in ("yes", "no"):
        (tmp_path / "audio" / label).mkdir(parents=True)
        for i in range(5):
            sf.write(tmp_path / "audio" / label / f"{i}.wav", speech_like(16000, 1.0, seed=i), 16000)
    work = ["--set", f"work_dir={tmp_path / 'w'}"]
    scans = []
    real_scan = layouts.scan_folder
    monkeypatch.setitem(layouts.LAYOUTS, "folder", lambda *a: scans.append(1) or real_scan(*a))
    assert main(["prepare", "--recipe", "folder.yaml", "--set", f"data.source={tmp_path / 'audio'}", *work]) == 0
    import json

    lines = (tmp_path / "w" / "data" / "train.jsonl").read_text().splitlines()
    assert {json.loads(ln)["label"] for ln in lines} <= {"yes", "no"} and scans == [1]
    # The same with any recipe: data.label=folder alone takes labels from the sub-folders.
    assert main(["prepare", "--recipe", "speech.yaml", "--set", f"data.source={tmp_path / 'audio'}",
                 "--set", "data.label=folder", "--set", f"work_dir={tmp_path / 'w2'}"]) == 0
    capsys.readouterr()
    assert main(["prepare", "--recipe", "folder.yaml", "--set", f"data.source={tmp_path / 'audio'}",
                 "--set", "data.label=word", "--set", f"work_dir={tmp_path / 'w3'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data.label: 'word' is not a label of" in err[0] and "data.label: folder" in err[0]
    assert scans == [1, 1]  # refused before any scan
    assert main(["prepare", "--recipe", "speech.yaml", "--set", "data.label=instrument", *work]) == 2
    assert "data.label: 'instrument' is not a label of builtin:digits (available: word, digit" in capsys.readouterr().err


@pytest.mark.slow
def test_no_progress_silences_every_bar_and_leaves_plain_lines(tmp_path, capsys):
    import subprocess
    import sys

    from conftest import speech_like

    for label in ("yes", "no"):
        (tmp_path / "audio" / label).mkdir(parents=True)
        for i in range(4):
            sf.write(tmp_path / "audio" / label / f"{i}.wav", speech_like(16000, 1.0, seed=i), 16000)
    common = ["--recipe", "folder.yaml", "--set", f"data.source={tmp_path / 'audio'}", "--set",
              f"work_dir={tmp_path / 'w'}", "--set", "features.workers=1"]
    # One process for both stages, as a log sees them: no bar, a plain line per step.
    code = ("import sys; from specgan.cli import main; a = sys.argv[1:]; "
            "sys.exit(main(['prepare', *a]) or main(['features', *a]))")
    quiet = subprocess.run([sys.executable, "-c", code, *common, "--no-progress"], capture_output=True,
                           text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "\r" not in quiet.stderr and "%|" not in quiet.stderr  # no bar
    assert re.search(r"features/train: \d+/\d+ clips \([\d.]+/s\) done", quiet.stderr), quiet.stderr
    capsys.readouterr()
    assert main(["features", *common, "--force"]) == 0  # without the flag, the bar is there
    assert "%|" in capsys.readouterr().err

def test_float_wavs_at_the_edges_and_absurd_headers_are_skipped_with_a_count(tmp_path, capsys):
    """Near-silent (1e-40) and near-float-max samples used to become NaN in normalisation, and a
    header claiming 1 Hz made resampling allocate gigabytes: now each is skipped and counted."""
    import json

    from conftest import speech_like

    audio = tmp_path / "audio" / "a"
    audio.mkdir(parents=True)
    for i in range(6):
        sf.write(audio / f"good{i}.wav", speech_like(16000, 1.0, seed=i), 16000)
    tone = speech_like(16000, 1.0, seed=9)
    sf.write(audio / "tiny.wav", (tone * 1e-40).astype(np.float32), 16000, subtype="FLOAT")
    sf.write(audio / "huge.wav", (tone / np.abs(tone).max() * 3.0e38).astype(np.float32), 16000, subtype="FLOAT")
    sf.write(audio / "one_hz.wav", tone[:16000], 1, subtype="FLOAT")
    work = tmp_path / "w"
    args = ["--recipe", "folder.yaml", "--set", f"data.source={tmp_path / 'audio'}", "--set", f"work_dir={work}",
            "--set", "features.workers=1", "--set", "data.dev_fraction=0.2", "--set", "data.test_fraction=0.2"]
    assert main(["prepare", *args]) == 0
    report = json.loads((work / "data" / "prepare.json").read_text())
    assert "skipped 2 files" in report["skipped"] and "bad sample rate" in report["skipped"], report["skipped"]
    assert "silent" in report["skipped"]
    assert main(["features", *args]) == 0  # the near-float-max file normalises to finite audio
    stats = np.load(work / "features" / "stats.npz")
    assert np.all(np.isfinite(stats["mean"])) and np.all(np.isfinite(stats["std"]))


def test_colliding_ids_links_fifos_and_long_names_are_kept_or_counted(tmp_path, capsys):
    """a/b.wav and a__b.wav, x.wav and x.flac used to collide (7 counted, 5 kept, "skipped 0",
    the winner flipping between runs); symlinked sub-folders, dangling links and FIFOs vanished."""
    import json

    from conftest import speech_like

    root = tmp_path / "audio"
    for rel in ("lab/a/b.wav", "lab/a__b.wav", "lab/x.wav", "lab/x.flac", "lab/y.wav", "other/z.wav",
                "lab/" + "n" * 120 + "/" + "m" * 120 + ".wav"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, speech_like(16000, 1.0, seed=len(rel)), 16000)
    (tmp_path / "elsewhere" / "sub").mkdir(parents=True)
    sf.write(tmp_path / "elsewhere" / "sub" / "w.wav", speech_like(16000, 1.0, seed=3), 16000)
    (root / "linked").symlink_to(tmp_path / "elsewhere" / "sub")
    (root / "lab" / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    os.mkfifo(root / "lab" / "pipe.wav")
    work = tmp_path / "w"
    args = ["--recipe", "folder.yaml", "--set", f"data.source={root}", "--set", f"work_dir={work}",
            "--set", "data.dev_fraction=0.2", "--set", "data.test_fraction=0.2", "--set", "features.workers=1"]
    assert main(["prepare", *args]) == 0
    report = json.loads((work / "data" / "prepare.json").read_text())
    kept = [json.loads(ln) for s in ("train", "dev", "test") for ln in (work / "data" / f"{s}.jsonl").read_text().splitlines()]
    ids = [it["id"] for it in kept]
    assert len(ids) == len(set(ids)) == 8  # 7 files + the one behind the symlinked folder
    assert all(len(i.encode()) <= 200 for i in ids)
    assert "1 dangling link" in report["skipped"] and "1 not a regular file" in report["skipped"]
    assert main(["prepare", *args, "--force"]) == 0  # the same ids every run
    again = [json.loads(ln)["id"] for s in ("train", "dev", "test")
             for ln in (work / "data" / f"{s}.jsonl").read_text().splitlines()]
    assert sorted(again) == sorted(ids)
    assert main(["features", *args]) == 0  # ids fit in feature file names


def test_a_folder_where_every_file_is_bad_is_one_line_naming_folder_and_reasons(tmp_path, capsys):
    (tmp_path / "audio" / "a").mkdir(parents=True)
    (tmp_path / "audio" / "a" / "empty.wav").write_bytes(b"")
    (tmp_path / "audio" / "a" / "junk.wav").write_text("not audio")
    rc = main(["prepare", "--recipe", "folder.yaml", "--set", f"data.source={tmp_path / 'audio'}",
               "--set", f"work_dir={tmp_path / 'w'}"])
    assert rc == 2
    one_line_error(capsys, str(tmp_path / "audio"), "skipped 2 files: 1 empty, 1 unreadable")
