"""``specgan enhance``: files and folders in, enhanced WAVs out, one bad file never stopping the rest.

Inputs are audio files or folders (searched recursively for the extensions soundfile reads). Each
output is ``<out>/<name>.wav``: a file given directly by its name, a file found in a folder by its
path below that folder (so two folders' same-named files stay apart). Rules, each one line:

- an output that would be an input is refused before any work (nothing a user gives is written);
- an output that exists is refused unless ``--force`` (a previous run's output is replaced then);
- a folder without audio, or a missing input, is refused before any work;
- a file that cannot be read or decoded is reported, skipped, and the others are still done.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

__all__ = ["AUDIO_EXTENSIONS", "enhance_paths", "plan_outputs"]

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf")


def plan_outputs(inputs: Sequence[str | Path], out: str | Path, force: bool = False) -> list[tuple[Path, Path]]:
    """(input file, output WAV) for every input, checked as the module docstring says."""
    out = Path(out)
    pairs: list[tuple[Path, Path]] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                raise ValueError(f"{path}: no audio files in this folder (looked for {', '.join(AUDIO_EXTENSIONS)})")
            pairs += [(p, out / p.relative_to(path).with_suffix(".wav")) for p in found]
        elif path.is_file():
            pairs.append((path, out / (path.stem + ".wav")))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    inputs_resolved = {p.resolve() for p, _ in pairs}
    seen: dict[Path, Path] = {}
    for src, dst in pairs:
        r = dst.resolve()
        if r in inputs_resolved:
            raise ValueError(f"--out {out}: {dst} would overwrite the input {src if r == src.resolve() else r}; "
                             f"give another --out")
        if r in seen:
            raise ValueError(f"--out {out}: {seen[r]} and {src} would both be written to {dst}; enhance them into "
                             f"different --out folders")
        seen[r] = src
        if dst.exists() and not force:
            raise FileExistsError(f"{dst} exists; --force replaces outputs (never an input)")
    return pairs


def enhance_paths(recipe, inputs: Sequence[str | Path], out: str | Path = "enhanced", force: bool = False,
                  model: str | None = None, vocoder: str = "auto", device: str = "cpu",
                  progress: bool = True, synthesis: str | None = None) -> dict:
    """Enhance every input (see the module docstring) with the recipe's enhancer (or ``model``) and
    vocoder; returns {"written": [...], "failed": [(path, reason)], "model", "vocoder"}.
    """
    from specgan.enhancement.inference import recipe_job
    from specgan.progress import bar

    pairs = plan_outputs(inputs, out, force)
    job, path, _, voc_desc = recipe_job(recipe, model, vocoder, device, synthesis)
    written, failed = [], []
    for src, dst in bar(pairs, desc="enhance", unit="file", disable=not progress):
        try:
            job.enhance_file(src, dst)
            written.append(dst)
        except (RuntimeError, ValueError, OSError) as e:  # soundfile's LibsndfileError is a RuntimeError
            reason = " ".join(str(e).split())[:300]
            log.warning("enhance: skipping %s: %s", src, reason)
            failed.append((str(src), reason))
    return {"written": [str(p) for p in written], "failed": failed, "model": str(path), "vocoder": voc_desc}
