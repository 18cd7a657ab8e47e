"""The one training skeleton and the one checkpoint contract, tried the way they fail: killed at the
commit point, resumed on two ranks, re-run after a config change, fed crafted model files, run on a
filesystem without hard links."""

import ast
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from conftest import speech_like

from specgan.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "recipes" / "tiny.yaml")
SR = 16000
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def specgan_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "specgan.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=ENV, timeout=600, **kw)


def model_step(path: Path) -> int:
    from vocoder.checkpoint import read_header

    return int(read_header(path)[0]["step"])


def state_step(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["step"])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A 3-word folder corpus through prepare and features (no system tools), built once."""
    root = tmp_path_factory.mktemp("skeleton")
    for k, label in enumerate(("one", "two", "three")):
        (root / "audio" / label).mkdir(parents=True)
        for i in range(5):
            sf.write(root / "audio" / label / f"{i}.wav", speech_like(SR, 1.0, seed=10 * k + i), SR)
    work = root / "work"
    common = ["--recipe", TINY, "--set", f"work_dir={work}", "--set", f"data.source={root / 'audio'}",
              "--set", "data.label_from_subfolder=true", "--set", "data.label=folder",
              "--set", "data.dev_fraction=0.2", "--set", "data.test_fraction=0.2"]
    for cmd in (["prepare"], ["features"]):
        assert main([*cmd, *common]) == 0
    shutil.copytree(work, root / "snapshot")
    return root, common


@pytest.fixture
def tiny(prepared):
    root, common = prepared
    work = root / "work"
    shutil.rmtree(work)
    shutil.copytree(root / "snapshot", work)
    return work, common


# -- fault 1: SIGKILL at the commit point --------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("stage,when,step", [  # the vocoder shares the code path (one case keeps it honest)
    ("specgan", "before", 2), ("specgan", "after", 2), ("specgan", "after", 4), ("vocoder", "before", 4)])
def test_a_kill_at_the_commit_point_resumes_to_a_model_at_the_right_step(tiny, stage, when, step):
    """Checkpoints at steps 2 and 4 (the last): a SIGKILL just before state.pt is written (the
    model is already there) or the moment it has replaced the previous one, at the first and at
    the final checkpoint; the next `run` ends with model and state at step 4."""
    work, common = tiny
    args = ["train", "--stage", stage, *common, "--no-progress"]
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "kill_worker.py"), when, str(step), *args],
                          capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    out = work / stage
    assert model_step(out / "model.safetensors") == step  # written before the kill, in both cases
    again = specgan_cli("run", *common, "--stage", stage, "--stop-stage", stage, "--no-progress")
    assert again.returncode == 0, again.stderr[-2000:]
    assert model_step(out / "model.safetensors") == 4 and state_step(out / "state.pt") == 4
    if (when, step) == ("after", 4):
        assert "up to date" in again.stdout
    else:
        assert "trained to step 4" in again.stdout
    steps = [json.loads(ln)["step"] for ln in (out / "history.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 4  # monotonic, no step twice
    if stage == "specgan":
        import specgan

        assert specgan.load_stage_one(out / "model.safetensors").step == 4


# -- resuming on a GPU ----------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="resuming on CUDA needs a GPU")
@pytest.mark.parametrize("stage", ["specgan", "vocoder"])
def test_a_run_resumes_on_the_gpu(tiny, stage):
    """state.pt is loaded onto the training device; the RNG states in it must go back to the CPU
    (a CUDA resume failed with 'RNG state must be a torch.ByteTensor' on an H200, 2026-12-04)."""
    work, common = tiny
    assert main(["train", "--stage", stage, *common, "--steps", "2", "--device", "cuda", "--no-progress"]) == 0
    assert main(["train", "--stage", stage, *common, "--steps", "4", "--device", "cuda", "--no-progress"]) == 0
    assert state_step(work / stage / "state.pt") == 4


# -- fault 5: history across a resumed vocoder run ----------------------------------------------------
def test_a_resumed_vocoder_run_keeps_its_history_monotonic(tiny):
    work, common = tiny
    assert main(["train", "--stage", "vocoder", *common, "--steps", "2", "--no-progress"]) == 0
    hist = work / "vocoder" / "history.jsonl"
    with open(hist, "a") as f:  # what a run killed after its last checkpoint had logged
        f.write(json.dumps({"step": 3, "gen/mel": 9.0}) + "\n")
    assert main(["train", "--stage", "vocoder", *common, "--no-progress"]) == 0
    steps = [json.loads(ln)["step"] for ln in hist.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 4
    assert all(json.loads(ln).get("gen/mel") != 9.0 for ln in hist.read_text().splitlines())


@pytest.mark.slow
# -- fault 3: a changed shape is never "up to date" ----------------------------------------------------
def test_a_changed_architecture_or_mel_is_retrained_by_run_and_refused_by_train(tiny, capsys):
    work, common = tiny
    assert main(["run", *common, "--stage", "specgan", "--stop-stage", "vocoder", "--no-progress"]) == 0
    capsys.readouterr()
    wider = ["--set", "specgan.generator.d=8"]
    assert main(["train", "--stage", "specgan", *common, *wider]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.generator.d" in err[0] and "--force" in err[0]
    assert main(["run", *common, *wider, "--stage", "specgan", "--stop-stage", "specgan", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "up to date" not in out and "trained to step 4" in out
    assert (work / "specgan.prev" / "model.safetensors").is_file()  # the old run kept
    import specgan

    assert specgan.load_stage_one(work / "specgan" / "model.safetensors").generator.fc.in_features > 0
    # A mel change: features rebuild, and both trained stages retrain (never "up to date").
    mel = ["--set", "mel.n_mels=32"]
    assert main(["run", *common, *wider, *mel, "--stage", "features", "--stop-stage", "vocoder",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("trained to step 4") == 2 and "up to date" not in out.split("stage 2")[1]
    assert specgan.load_stage_one(work / "specgan" / "model.safetensors").mel_cfg.n_mels == 32
    import vocoder

    assert vocoder.load(work / "vocoder" / "model.safetensors").mel_cfg.n_mels == 32
    # Same recipe again: now up to date.
    assert main(["run", *common, *wider, *mel, "--stage", "specgan", "--stop-stage", "vocoder"]) == 0
    assert capsys.readouterr().out.count("up to date") == 2


# -- fault 2: two ranks draw different batches after a resume (both stages) --------------------------
def tiny_vocoder(clips_dir: Path, out: Path, steps: int, **cfg_kw):
    """A tiny vocoder trainer on four synthetic clips (also used by tests/ddp_worker.py)."""
    from vocoder.config import VocoderConfig
    from vocoder.data import SegmentDataset
    from vocoder.mel import MelConfig
    from vocoder.train import VocoderTrainer

    clips_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(4):
        p = clips_dir / f"c{i}.wav"
        if not p.is_file():
            sf.write(p, speech_like(8000, 0.6, seed=i), 8000)
        paths.append(str(p))
    mel = MelConfig(sample_rate=8000, n_fft=256, hop_length=64, n_mels=20)
    cfg = VocoderConfig(generator={"name": "istft", "dim": 16, "intermediate_dim": 32, "num_layers": 1},
                        critics=[{"name": "mpd", "periods": [2, 3], "width": 0.0625}], segment_samples=1024,
                        batch_size=2, steps=steps, log_every=1, eval_every=100, save_every=2, eval_items=1,
                        critic_warmup_steps=1, stft_resolutions=[[256, 64, 256]], **cfg_kw)
    return VocoderTrainer(cfg, mel, SegmentDataset(paths, 8000, 1024, seed=0), None, out, seed=3)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["specgan", "vocoder"])
def test_two_ranks_draw_different_batches_after_a_resume(tmp_path, stage):
    worker = ROOT / "tests" / "ddp_worker.py"
    for steps in (2, 4):  # train to 2 (a checkpoint), then a new launch resumes to 4
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                               "2", str(worker), str(tmp_path), stage, str(steps)], capture_output=True, text=True,
                              timeout=300, env={**ENV, "PYTHONFAULTHANDLER": "1"}, cwd=ROOT)
        # a crashed rank's Python stack (faulthandler) first: the launcher's summary follows it and would cut it
        fatal = proc.stderr.find("Fatal Python error")
        assert proc.returncode == 0, (proc.stderr[fatal:fatal + 6000] + "\n...\n" if fatal >= 0 else "") + proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}-4.pt", weights_only=False) for r in (0, 1))
    assert r0["step"] == r1["step"] == 4 and len(r0["drawn"]) == 2
    for a, b in zip(r0["drawn"], r1["drawn"], strict=True):
        assert not torch.equal(a, b)  # each rank its own stream after the resume
    for name in r0["modules"]:  # and still one model: gradients averaged, same start
        for k, v in r0["modules"][name].items():
            torch.testing.assert_close(v, r1["modules"][name][k], rtol=0, atol=0)
    hist = [json.loads(ln)["step"] for ln in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert hist == [1, 2, 3, 4]  # rank 0 alone writes, one line per step
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert len(state["rng"]) == 2 and not torch.equal(state["rng"][0]["sampler"], state["rng"][1]["sampler"])


def test_a_rollback_restores_each_ranks_own_stream(tmp_path):
    """Single process stand-in for the rollback path: state.pt keeps one RNG entry per rank and a
    rank restores its own entry, not rank 0's."""
    tr = tiny_vocoder(tmp_path / "clips", tmp_path / "run", steps=2)
    tr.fit(progress=False, tensorboard=False)
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    other = {**state["rng"][0], "sampler": torch.Generator().manual_seed(99).get_state()}
    state["rng"] = [state["rng"][0], other]
    tr.rank = 1
    tr.load_state_dict(state)
    assert torch.equal(tr.sampler.get_state(), other["sampler"])


# -- fault 7: crafted and broken model files ------------------------------------------------------------
def _crafted_stage_one(path: Path, d: int) -> None:
    """A small safetensors file whose metadata claims a generator of width d (1.28 TB at d=20000)."""
    from safetensors.torch import save_file

    from vocoder.checkpoint import FORMAT
    from vocoder.mel import MelConfig

    kwargs = {"n_mels": 64, "frames": 64, "n_classes": 0, "z_dim": 100, "d": d, "kernel_size": 5,
              "upsample": "transposed", "embed_dim": 32}
    meta = {"format": FORMAT, "kind": "stage-one", "version": "0", "name": "specgan", "kwargs": json.dumps(kwargs),
            "step": "1", "mel": json.dumps(MelConfig(sample_rate=16000, n_mels=64, fmax=8000.0).to_dict()),
            "stats": json.dumps({"mean": [0.0] * 64, "std": [1.0] * 64}), "extra": "{}"}
    save_file({"fc.weight": torch.zeros(512, 512)}, str(path), metadata=meta)


@pytest.mark.slow
def test_a_crafted_model_file_is_refused_in_one_line_without_allocating(tmp_path):
    crafted = tmp_path / "crafted.safetensors"
    _crafted_stage_one(crafted, 20000)
    assert crafted.stat().st_size < 1.1e6
    code = ("import resource, sys\n"
            "from specgan.cli import main\n"
            "rc = main(sys.argv[1:])\n"
            "print('peak_mb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, file=sys.stderr)\n"
            "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code, "synth", "--recipe", TINY, "--set",
                           f"work_dir={tmp_path / 'w'}", "--set", f"pretrained.specgan={crafted}", "--vocoder",
                           "griffinlim", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, env=ENV, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("peak_mb")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "crafted.safetensors" in lines[0] and "tensors do not match" in lines[0]
    peak = int(next(ln for ln in proc.stderr.splitlines() if ln.startswith("peak_mb")).split()[1])
    assert peak < 2000  # megabytes: nothing of the claimed size was allocated


def test_every_model_file_failure_is_one_line(tmp_path):
    import specgan
    import vocoder
    from vocoder.checkpoint import ModelFileError

    text = tmp_path / "notes.txt"
    text.write_text("not a model\n" * 100)
    with pytest.raises(ModelFileError, match="notes.txt: not a safetensors file"):
        specgan.load_stage_one(text)
    good = ROOT / "pretrained" / "speech" / "specgan.safetensors"
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="cut.safetensors: truncated"):
        specgan.load_stage_one(cut)
    with pytest.raises(ModelFileError, match="a stage-one model, not a vocoder model"):
        vocoder.load(good)
    shapes = tmp_path / "shapes.safetensors"
    _crafted_stage_one(shapes, 16)
    with pytest.raises(ModelFileError, match="shapes.safetensors: tensors do not match"):
        specgan.load_stage_one(shapes)
    header = tmp_path / "header.safetensors"
    header.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(ModelFileError, match="header length"):
        specgan.load_stage_one(header)
    for exc in (ModelFileError,):
        assert issubclass(exc, ValueError)  # the CLI's one-line net catches it


def test_init_from_another_architecture_is_one_line(tiny, capsys):
    work, common = tiny
    assert main(["train", "--stage", "specgan", *common, "--steps", "2", "--no-progress"]) == 0
    state = shutil.copy(work / "specgan" / "state.pt", work / "elsewhere.pt")
    capsys.readouterr()
    rc = main(["train", "--stage", "specgan", *common, "--set", "specgan.generator.d=8", "--init-from", str(state)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "already holds a run" in err[0]  # never trained over
    rc = main(["train", "--stage", "specgan", *common, "--set", "specgan.generator.d=8", "--init-from", str(state),
               "--force"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "another architecture" in err[0] and "generator.d" in err[0]


# -- fault 8: no hard links ----------------------------------------------------------------------------
def test_checkpoints_work_without_hard_links(tmp_path, monkeypatch):
    import errno

    def no_links(*a, **kw):
        raise OSError(errno.EPERM, "Operation not permitted (no hard links on this filesystem)")

    monkeypatch.setattr(os, "link", no_links)
    tr = tiny_vocoder(tmp_path / "clips", tmp_path / "run", steps=4)
    tr.fit(progress=False, tensorboard=False)  # checkpoints at 2 and 4: the second keeps the first
    assert state_step(tmp_path / "run" / "state.pt") == 4
    assert state_step(tmp_path / "run" / "state.prev.pt") == 2


# -- structure -----------------------------------------------------------------------------------------
def test_nothing_under_vocoder_imports_specgan():
    offenders = []
    for path in (ROOT / "vocoder").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "specgan"]
    assert not offenders, offenders


def test_only_the_cli_imports_the_cli():
    offenders = []
    for path in (ROOT / "specgan").rglob("*.py"):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "specgan.cli":
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders


def test_both_trainers_run_on_the_one_skeleton():
    from specgan.stage_one.trainer import SpecGANTrainer
    from vocoder.train import VocoderTrainer
    from vocoder.trainer import Trainer

    for cls in (SpecGANTrainer, VocoderTrainer):
        assert issubclass(cls, Trainer)
        own = set(vars(cls))
        # the machinery lives once, in the skeleton
        assert not own & {"_rollback", "save", "resume", "log_scalars", "_open_writer", "average_grads",
                          "state_dict", "load_state_dict"}, own


def test_no_progress_prints_periodic_plain_lines(tmp_path, capsys):
    tr = tiny_vocoder(tmp_path / "clips", tmp_path / "run", steps=2)
    tr.fit(progress=False, tensorboard=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "vocoder: step 0 of 2"
    assert lines[-1].startswith("vocoder: step 2/2 mel=") and "step/s ETA" in lines[-1]


def test_the_vocoder_trains_under_bf16_autocast(tmp_path):
    """bf16 autocast comes from the skeleton (on by default on CUDA; forced here on CPU)."""
    tr = tiny_vocoder(tmp_path / "clips", tmp_path / "run", steps=2, amp="bf16")
    assert tr.amp_dtype == torch.bfloat16
    assert tiny_vocoder(tmp_path / "clips", tmp_path / "auto", steps=2).amp_dtype is None  # auto: off on CPU
    seen = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, args, out: seen.append(out.dtype) if isinstance(m, torch.nn.Conv1d) and torch.is_tensor(out) else None)
    try:
        out = tr.train_step(tr.next_batch())
    finally:
        hook.remove()
    assert torch.bfloat16 in seen and all(torch.isfinite(v) for v in out.values())


def test_init_from_fine_tunes_stage_one(tiny, capsys, monkeypatch):
    """--init-from works for stage one too: another run's weights, same architecture and mel."""
    from specgan.stage_one.trainer import SpecGANTrainer

    work, common = tiny
    assert main(["train", "--stage", "specgan", *common, "--steps", "2", "--no-progress"]) == 0
    state = shutil.copy(work / "specgan" / "state.pt", work / "elsewhere.pt")
    saved_g = torch.load(state, weights_only=True)["modules"]["G"]
    started = {}
    fit = SpecGANTrainer.fit

    def spy(self, *a, **kw):
        started.update({k: v.clone() for k, v in self.G.state_dict().items()})
        return fit(self, *a, **kw)

    monkeypatch.setattr(SpecGANTrainer, "fit", spy)
    capsys.readouterr()
    assert main(["train", "--stage", "specgan", *common, "--steps", "3", "--init-from", str(state), "--force",
                 "--no-progress"]) == 0
    assert all(torch.equal(started[k], v) for k, v in saved_g.items())  # started from the other run's G
    assert "specgan: step 3" in capsys.readouterr().out  # counted afresh: 3 steps of fine-tuning
    assert model_step(work / "specgan" / "model.safetensors") == 3


def test_cpu_time_is_counted_saved_and_budgeted(tmp_path, capsys):
    """The skeleton counts the CPU time a run trained for and saves it with each checkpoint (what
    equal-budget ablations and model cards report); fit(cpu_seconds=) stops at a budget."""
    tr = tiny_vocoder(tmp_path / "clips", tmp_path / "run", steps=10**6)
    tr.fit(progress=False, tensorboard=False, cpu_seconds=0.5)
    assert 0 < tr.step < 10**6 and tr.cpu_seconds >= 0.5
    # the plain log's ETA is the budget's, not a million steps' (hours)
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.search(r" CPU \d+/0 s ETA 0:00:0\d$", last), last
    saved = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert saved["step"] == tr.step and 0.5 <= saved["cpu_seconds"] <= tr.cpu_seconds
    again = tiny_vocoder(tmp_path / "clips", tmp_path / "run", steps=10**6)
    again.resume()
    assert again.cpu_seconds == saved["cpu_seconds"]
    again.fit(progress=False, tensorboard=False, cpu_seconds=0.3)
    assert again.cpu_seconds >= saved["cpu_seconds"] + 0.3
