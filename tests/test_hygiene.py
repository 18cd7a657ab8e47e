"""Code hygiene the review asked for: one docstring style, and one-way imports between packages."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # launches ruff
def test_docstrings_follow_the_google_convention():
    """ruff's pydocstyle rules, Google convention, as configured in pyproject.toml ([tool.ruff])."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).is_file():
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    run = subprocess.run([ruff, "check", "--no-cache", "specgan", "vocoder", "tools"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_stage_one_uses_only_the_shared_core_of_vocoder():
    """specgan.stage_one imports from vocoder only the shared core (mel, the model-file contract,
    the training skeleton, the registry helpers), never a vocoder model, critic or loss."""
    core = {"vocoder", "vocoder.mel", "vocoder.checkpoint", "vocoder.trainer", "vocoder.registry"}
    for path in sorted((ROOT / "specgan" / "stage_one").glob("*.py")):
        used = {m for m in _imports(path) if m == "vocoder" or m.startswith("vocoder.")}
        assert used <= core, f"{path.name} imports {sorted(used - core)}"


def test_stage_one_does_not_reach_back_into_the_pipeline():
    """The stage-one package stands below the pipeline: no import of synth, evaluate, report,
    pipeline, cli, training or recipe (those import it)."""
    above = {"specgan.synth", "specgan.evaluate", "specgan.report", "specgan.pipeline", "specgan.cli",
             "specgan.training", "specgan.recipe", "specgan.checkpoints"}
    for path in sorted((ROOT / "specgan" / "stage_one").glob("*.py")):
        bad = _imports(path) & above
        assert not bad, f"{path.name} imports {sorted(bad)}"
