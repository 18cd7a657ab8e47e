"""Manifests (``data/{split}.jsonl``), group-wise splitting and system-tool checks."""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

__all__ = ["SPLITS", "Item", "MissingToolError", "read_manifest", "require_tool", "split_by_group", "write_manifest"]

SPLITS = ("train", "dev", "test")


class MissingToolError(RuntimeError):
    """A system program a data builder needs is not installed."""


def require_tool(program: str, package: str) -> str:
    """Path of ``program`` on PATH, or an error saying which Debian package provides it."""
    found = shutil.which(program)
    if found is None:
        raise MissingToolError(
            f"'{program}' was not found on PATH; install it with: apt-get install -y {package}"
        )
    return found


@dataclass
class Item:
    """One clip of a dataset.

    Attributes:
        id: Unique within the dataset; also the feature file's stem.
        path: Audio file: relative to the work dir when inside it, else absolute.
        label: The label the models condition on (``data.label``), or None.
        labels: Every known label (word, voice, pitch, program, text...).
        group: Items sharing a group (voice, speaker, instrument) stay in one split.
        duration: Seconds, from the file header.
        sr: The file's sample rate.
    """

    id: str
    path: str
    label: Any = None
    labels: dict[str, Any] = field(default_factory=dict)
    group: str = ""
    duration: float | None = None
    sr: int | None = None


def write_manifest(path: str | Path, items: Iterable[Item]) -> int:
    """Write items as JSON lines (atomically); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    n = 0
    with open(tmp, "w") as f:
        for it in items:
            f.write(json.dumps(asdict(it), ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


def read_manifest(path: str | Path) -> list[Item]:
    """Read a manifest; a malformed line raises an error naming the file and line."""
    path = Path(path)
    items = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                items.append(Item(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: malformed manifest line: {e}") from e
    return items


def split_by_group(items: list[Item], dev: float, test: float, seed: int) -> dict[str, list[Item]]:
    """Assign whole groups to train/dev/test so that no group is in two splits.

    Groups are shuffled with ``seed`` and dealt out so that dev and test each hold
    ``round(n_groups * fraction)`` groups, at least one when the fraction is > 0 and there are
    at least three groups.
    """
    if not (0 <= dev < 1 and 0 <= test < 1 and dev + test < 1):
        raise ValueError(f"dev_fraction={dev} and test_fraction={test} must be >= 0 with a sum < 1")
    groups = sorted({it.group or it.id for it in items})
    random.Random(seed).shuffle(groups)
    n = len(groups)

    def count(frac: float) -> int:
        k = round(n * frac)
        return max(k, 1) if frac > 0 and n >= 3 else k

    n_test, n_dev = count(test), count(dev)
    where = {}
    for i, g in enumerate(groups):
        where[g] = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
    out: dict[str, list[Item]] = {s: [] for s in SPLITS}
    for it in items:
        out[where[it.group or it.id]].append(it)
    return out
