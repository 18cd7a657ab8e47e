import os
import shutil
from pathlib import Path

# One thread everywhere: on a shared 2-core machine two threads can be 5-15x slower.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# pytest-xdist runs two workers at once: numba's on-disk cache is not safe when two processes compile
# and write the same functions at the same time (numba issues #4807, #10128: a process that loads
# what another half wrote can segfault; seen here once, in two CLI runs' evaluate stage). Each worker,
# and every CLI process it starts, gets its own cache folder. A crash in native code prints the Python
# stack of every thread (faulthandler), so a failing CLI test names where.
if os.environ.get("PYTEST_XDIST_WORKER") and "NUMBA_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["NUMBA_CACHE_DIR"] = os.path.join(
        tempfile.gettempdir(), f"specgan-numba-cache-{os.getuid()}-{os.environ['PYTEST_XDIST_WORKER']}")
os.environ.setdefault("PYTHONFAULTHANDLER", "1")

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(1)


def speech_like(sr: int, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A vowel-ish signal: a gliding harmonic source through formant-like weights, noise bursts
    (fricatives) and a silent lead-in, so low-energy mel bins are exercised too."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 110 + 40 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = np.zeros_like(t)
    for k in range(1, 40):
        fk = k * 110
        weight = np.exp(-((fk - 700) / 300) ** 2) + 0.5 * np.exp(-((fk - 1800) / 400) ** 2) + 0.05
        y += weight * np.sin(k * phase) / k
    y *= 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    burst = (t > 0.9 * seconds) & (t < 0.95 * seconds)
    y[burst] += 0.3 * rng.standard_normal(burst.sum())
    y[: int(0.2 * sr)] = 0.0
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def music_like(sr: int, seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Two plucked notes with inharmonic partials and exponential decay, faint noise, and a
    silent tail (after the release)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    y = np.zeros_like(t)
    for f0, onset in ((220.0, 0.05), (329.6, 0.6)):
        tt = np.clip(t - onset, 0, None)
        env = (t >= onset) * np.exp(-3 * tt)
        for k in range(1, 16):
            fk = f0 * k * np.sqrt(1 + 1e-4 * k * k)
            if fk < sr / 2:
                y += env * np.sin(2 * np.pi * fk * tt) / k**1.2
    y += 1e-3 * rng.standard_normal(t.size)
    y[-int(0.25 * sr) :] = 0.0
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture
def write_wav(tmp_path):
    """write_wav(relpath, y, sr, **kw) -> Path under tmp_path."""

    def _write(rel, y, sr, **kw):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), y, sr, **kw)
        return p

    return _write


def load_tool(name: str):
    """A script of tools/ (not a package) imported as a module, e.g. ``load_tool("ablate_specgan")``."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def need_tool(program: str):
    """Mark a test that needs a system program: it launches one, so it is ``slow`` (out of the
    ``-m "not slow"`` loop, in the full suite). CI (SPECGAN_REQUIRE_TOOLS=1) installs them, so
    there a missing program is a failure, never a silent skip."""
    if shutil.which(program):
        return pytest.mark.slow
    if os.environ.get("SPECGAN_REQUIRE_TOOLS") == "1":
        raise RuntimeError(f"{program} is required (SPECGAN_REQUIRE_TOOLS=1) but not installed")
    return pytest.mark.skip(reason=f"{program} not installed (apt-get install {program}); .ci/run installs it")


def speechy(seconds=1.0, f0=140.0, seed=0, sr=16000):
    """A voiced, syllabic test signal: harmonics of a gliding F0 under a 4 Hz envelope."""
    import numpy as np

    t = np.arange(int(sr * seconds)) / sr
    f = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t + seed))
    phase = 2 * np.pi * np.cumsum(f) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 20))
    return (0.3 * y * np.clip(np.sin(2 * np.pi * 4 * t), 0, None) / np.abs(y).max()).astype(np.float32)


def clean_speech_recipe(tmp_path, recipe: str, overrides: list[str], clips: int = 12):
    """``recipe`` on a folder of ``clips`` synthetic voiced clips (1.5 s, 16 kHz) with a 20 % dev and test
    split, work dir under ``tmp_path``: the uses' recipes run end to end in seconds."""
    import soundfile as sf

    from specgan.recipe import load_recipe

    (tmp_path / "clean").mkdir()
    for i in range(clips):
        sf.write(tmp_path / "clean" / f"c{i:02d}.wav", speechy(1.5, f0=100 + 10 * i, seed=i), 16000)
    return load_recipe(Path(__file__).resolve().parents[1] / "recipes" / recipe, [
        f"work_dir={tmp_path / 'work'}", f"data.source=folder:{tmp_path / 'clean'}", "data.dev_fraction=0.2",
        "data.test_fraction=0.2", *overrides])
