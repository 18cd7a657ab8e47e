"""Reliability: bad audio and bad recipes through the real command line (one clear line, the
right exit code, no traceback, nothing half-written)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent


def cli(*args):
    return subprocess.run([sys.executable, "-m", "specgan.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def tone(sr, seconds=1.0, f=300.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def bad_audio_folder(root: Path) -> dict[str, str | None]:
    """name → expected skip reason (None: valid, converted)."""
    root.mkdir(parents=True)
    sf.write(root / "ok_16k.wav", tone(16000), 16000)
    sf.write(root / "ok_8bit.wav", tone(16000, f=350), 16000, subtype="PCM_U8")
    sf.write(root / "ok_24bit.wav", tone(16000, f=400), 16000, subtype="PCM_24")
    sf.write(root / "ok_stereo.wav", np.stack([tone(16000, f=450), tone(16000, f=500)], 1), 16000)
    sf.write(root / "ok_8k.wav", tone(8000, f=550), 8000)
    sf.write(root / "ok_48k.flac", tone(48000, f=600), 48000)
    (root / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40)))
    (root / "empty.wav").write_bytes(b"")
    sf.write(root / "zero_length.wav", np.zeros(0, np.float32), 16000)
    sf.write(root / "silent.wav", np.zeros(16000, np.float32), 16000)
    nan = tone(16000, f=650)
    nan[100:200] = np.nan
    sf.write(root / "nan.wav", nan, 16000, subtype="FLOAT")
    (root / "not_audio.wav").write_text("this is a text file with an audio extension\n")
    return {"ok_16k": None, "ok_8bit": None, "ok_24bit": None, "ok_stereo": None, "ok_8k": None, "ok_48k": None,
            "corrupt": "unreadable", "empty": "empty", "zero_length": "empty", "silent": "silent",
            "nan": "non-finite samples", "not_audio": "unreadable"}


@pytest.mark.slow
def test_bad_audio_folder_prepare_and_features_finish_with_a_summary(tmp_path):
    expected = bad_audio_folder(tmp_path / "audio")
    common = ["--recipe", "recipes/tiny.yaml", "--set", f"work_dir={tmp_path / 'work'}",
              "--set", f"data.source=folder:{tmp_path / 'audio'}", "--set", "data.label=null",
              "--set", "data.dev_fraction=0", "--set", "data.test_fraction=0"]
    proc = cli("prepare", *common)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    report = json.loads((tmp_path / "work" / "data" / "prepare.json").read_text())
    skipped = {Path(f["path"]).stem: f["reason"] for f in report["skipped_files"]}
    assert skipped == {k: v for k, v in expected.items() if v}, skipped
    assert "skipped 6 files:" in proc.stdout and "2 unreadable" in proc.stdout and "2 empty" in proc.stdout
    train = [json.loads(line) for line in (tmp_path / "work" / "data" / "train.jsonl").read_text().splitlines()]
    assert sorted(Path(it["path"]).stem for it in train) == sorted(k for k, v in expected.items() if v is None)

    proc = cli("features", *common)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    index = json.loads((tmp_path / "work" / "features" / "train" / "index.json").read_text())
    assert len(index["items"]) == 6
    for item in index["items"].values():  # every valid file: resampled to 16 kHz and downmixed, 1 s → 63 frames
        mel = np.load(tmp_path / "work" / "features" / "train" / item["file"])
        assert mel.shape == (64, 63) and np.isfinite(mel).all()


@pytest.mark.slow  # each case launches the CLI
@pytest.mark.parametrize("overrides, message", [
    (["--set", "specgan.batch_sise=4"], "specgan.batch_sise: unknown key in specgan; allowed keys:"),
    (["--set", "specgan.batch_size=many"], "specgan.batch_size: expected an integer, got str 'many'"),
    (["--set", "specgan.batch_size=-4"], "specgan.batch_size: must be positive, got -4"),
    (["--set", "vocoder.segment_samples=0"], "vocoder.segment_samples: must be positive, got 0"),
    (["--set", "mel.n_mels=600"], "n_mels (600) must be at most n_fft/2 + 1 (513)"),
    (["--set", "vocoder.generator={name: hifigan, preset: v1}", "--set", "mel.hop_length=200"],
     "vocoder.generator: hifigan: the product of upsample_rates [8, 8, 2, 2] is 256, but the mel's hop_length is 200"),
    (["--set", "data.source=folder:/no/such/folder"], "/no/such/folder is not a directory"),
])
def test_bad_recipes_get_one_clear_line_and_exit_2(tmp_path, overrides, message):
    work = tmp_path / "work"
    proc = cli("prepare", "--recipe", "recipes/tiny.yaml", "--set", f"work_dir={work}", *overrides)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not work.exists()  # nothing half-written


@pytest.mark.slow  # launches the CLI
def test_unreadable_yaml_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmel: {n_mels: [64\n")
    proc = cli("prepare", "--recipe", str(bad))
    assert proc.returncode == 2 and "invalid YAML" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = cli("prepare", "--recipe", str(tmp_path / "missing.yaml"))
    assert proc.returncode == 2 and "cannot read recipe" in proc.stderr


def test_a_truncated_checkpoint_is_detected_and_the_previous_one_used(tmp_path, caplog):
    from specgan.stage_one.trainer import SpecGANTrainer
    from test_specgan_train import cfg, data
    from vocoder.checkpoint import CheckpointError, load_training_state

    tr = SpecGANTrainer(cfg(steps=4, save_every=2), data(), tmp_path)
    tr.fit(progress=False, tensorboard=False)  # checkpoints at 2 (→ state.prev.pt) and 4 (state.pt)
    blob = (tmp_path / "state.pt").read_bytes()
    (tmp_path / "state.pt").write_bytes(blob[: len(blob) // 2])
    with caplog.at_level("WARNING"):
        state = load_training_state(tmp_path / "state.pt")
    assert state["step"] == 2
    assert "state.pt is unreadable (truncated or corrupt" in caplog.text and "previous checkpoint" in caplog.text
    (tmp_path / "state.prev.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="no usable training checkpoint: .*state.pt: .*state.prev.pt"):
        load_training_state(tmp_path / "state.pt")


def test_resume_refuses_a_pickle_that_would_run_code(tmp_path, capsys):
    """--resume loads state.pt with weights_only=True: a checkpoint carrying code is refused."""
    import torch

    from vocoder.checkpoint import CheckpointError, load_training_state

    class Evil:
        def __reduce__(self):
            return (print, ("this would have run",))

    torch.save({"step": 1, "x": Evil()}, tmp_path / "state.pt")
    with pytest.raises(CheckpointError, match="Weights only load failed"):
        load_training_state(tmp_path / "state.pt")
    assert "this would have run" not in capsys.readouterr().out


def test_a_manifest_cannot_reach_outside_the_work_dir_with_a_relative_path(tmp_path):
    from specgan.data.prepare import load_split
    from specgan.recipe import load_recipe

    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    inside = {"id": "a", "path": "data/wavs/a.wav", "label": None}
    outside = {"id": "b", "path": "../../etc/passwd", "label": None}
    absolute = {"id": "c", "path": str(tmp_path / "elsewhere" / "c.wav"), "label": None}
    r = load_recipe("recipes/tiny.yaml", [f"work_dir={work}"])
    (work / "data" / "train.jsonl").write_text("\n".join(json.dumps(x) for x in (inside, absolute)) + "\n")
    paths = [it.path for it in load_split(r, "train")]
    assert paths == [str(work.resolve() / "data/wavs/a.wav"), absolute["path"]]  # absolute: the user's choice
    (work / "data" / "train.jsonl").write_text("\n".join(json.dumps(x) for x in (inside, outside)) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl:2: relative path '../../etc/passwd' points outside"):
        load_split(r, "train")
