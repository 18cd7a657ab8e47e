"""The ``features`` stage: manifests → ``features/{split}/<id>.npy`` + ``index.json`` + ``stats.npz``.

The cache is reused item by item: an item is re-extracted only when its audio file changed
(size or mtime) or the feature key changed (mel config, clip preprocessing, dtype, code
version); a changed key rebuilds the whole split. Files that cannot be used (see
:class:`specgan.audio.AudioError`) are skipped, counted, and listed in the index with the reason.
Per-bin statistics come from the train split only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from specgan.progress import bar as progress_bar

from specgan.audio import AudioError, Preprocess, load_clip, scan_report
from specgan.data.manifest import SPLITS
from specgan.data.prepare import load_split
from specgan.features.extract import LogMelExtractor
from specgan.recipe import Recipe, save_resolved
from specgan.workdir import read_marker
from vocoder.checkpoint import atomic_write
from vocoder.mel import MelConfig, MelStats

__all__ = ["FEATURE_VERSION", "compute_stats", "stats_of", "extract_split", "features_key", "load_features", "load_index",
           "load_stats", "run_features"]

log = logging.getLogger(__name__)

FEATURE_VERSION = 1        # bump when extraction changes in a way the config does not capture
_POOL_MIN_SECONDS = 300.0  # below this much audio, worker start-up (imports) costs more than it saves
_STD_FLOOR = 1e-4          # a bin that never varies (e.g. above the content's band) normalises to 0


def features_key(recipe: Recipe) -> str:
    blob = {"mel": recipe.mel.to_dict(), "preprocess": recipe.data.preprocess.key(),
            "dtype": recipe.features.dtype, "version": FEATURE_VERSION}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _signature(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def _safe_name(item_id: str) -> str:
    return item_id.replace(os.sep, "__").replace("/", "__") + ".npy"


def _atomic_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1)))


def _usable(path: Path, shape: tuple[int, int], dtype: str) -> bool:
    """Whether a cached feature file is readable with the shape and dtype the index promises.

    A file cut short by a crash or a full disk fails here, named in one warning line, and is
    re-extracted.
    """
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
        problem = None if (x.shape, x.dtype) == (shape, np.dtype(dtype)) else \
            f"shape {x.shape} {x.dtype}, expected {shape} {dtype}"
    except (OSError, ValueError, EOFError) as e:
        problem = " ".join(str(e).split())[:120] or type(e).__name__
    if problem:
        log.warning("features: %s is corrupt (%s); re-extracting it", path, problem)
    return problem is None


# -- worker side --------------------------------------------------------------------------
_W: dict[str, Any] = {}


def _init_worker(mel: dict, pre: dict, dtype: str, threads: int) -> None:
    import numba
    import torch

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    cfg = MelConfig.from_dict(mel)
    _W.update(ex=LogMelExtractor(cfg, threads=threads), pre=Preprocess(**pre), dtype=np.dtype(dtype), sr=cfg.sample_rate)


def _extract_one(task: tuple[str, str, str]) -> tuple[str, int | None, str | None, str | None]:
    """(id, audio path, output path) → (id, frames, reason, message); reason set on skip."""
    item_id, path, out = task
    ex = _W["ex"]
    try:
        y = load_clip(path, _W["sr"], _W["pre"], ex.cfg.min_samples)
    except AudioError as e:
        return item_id, None, e.reason, str(e)
    mel = ex(y).astype(_W["dtype"])
    # Atomic (rename) without an fsync per clip: a file a power cut leaves short fails _usable next time.
    tmp = out + f".tmp-{os.getpid()}.npy"
    np.save(tmp, mel)
    os.replace(tmp, out)
    return item_id, int(mel.shape[1]), None, None


# -- stage side ---------------------------------------------------------------------------
def load_index(work: str | Path, split: str) -> dict:
    path = Path(work) / "features" / split / "index.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the features stage first")
    return json.loads(path.read_text())


def extract_split(recipe: Recipe, split: str, force: bool = False, workers: int | None = None) -> dict:
    """Extract (or reuse) the features of one split; returns counts for the report."""
    fc = recipe.features
    workers = fc.workers if workers is None else workers
    out_dir = recipe.work / "features" / split
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    key = features_key(recipe)
    old = {} if force else read_marker(index_path)
    if old.get("key") != key:
        if old:
            log.info("features/%s: config changed, rebuilding", split)
        old = {}
        for f in out_dir.glob("*.npy"):
            f.unlink()
    old_items, old_skipped = old.get("items", {}), old.get("skipped", {})

    items = load_split(recipe, split)
    new_items, new_skipped, todo = {}, {}, []
    reused = 0
    for it in items:
        try:
            sig = _signature(it.path)
        except OSError as e:
            new_skipped[it.id] = {"path": it.path, "reason": "missing", "error": f"{it.path}: missing ({e.strerror})"}
            continue
        entry = {"file": _safe_name(it.id), "audio": it.path, "sig": sig, "label": it.label,
                 "duration": it.duration}
        prev = old_items.get(it.id)
        if prev and prev["sig"] == sig and prev["audio"] == it.path and (out_dir / prev["file"]).is_file() \
                and _usable(out_dir / prev["file"], (recipe.mel.n_mels, prev.get("frames", -1)), fc.dtype):
            new_items[it.id] = prev | {"label": it.label}
            reused += 1
            continue
        prev_bad = old_skipped.get(it.id)
        if prev_bad and prev_bad.get("sig") == sig and prev_bad.get("path") == it.path:
            new_skipped[it.id] = prev_bad   # same bad file as last time: still bad
            continue
        todo.append((it.id, it.path, str(out_dir / entry["file"]), entry))

    init_args = (recipe.mel.to_dict(), asdict(recipe.data.preprocess), fc.dtype, fc.threads)
    tasks = [t[:3] for t in todo]
    entries = {t[0]: t[3] for t in todo}
    seconds = sum(entries[t[0]].get("duration") or 1.0 for t in tasks)
    results = []
    bar = dict(total=len(tasks), desc=f"features/{split}", unit="clip", disable=not tasks)
    if workers > 1 and seconds >= _POOL_MIN_SECONDS:
        ctx = mp.get_context("spawn")  # fork after torch/OpenMP start-up can deadlock
        # Compile (and cache) the numba kernels here first: workers that all compile at once on a fresh
        # install race on numba's on-disk cache, which can segfault (numba issues #4807, #10128).
        warm = LogMelExtractor(recipe.mel, threads=fc.threads)
        warm(np.zeros(warm.cfg.min_samples, np.float32))
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init_args) as pool:
            results = list(progress_bar(pool.map(_extract_one, tasks, chunksize=16), **bar))
    else:
        _init_worker(*init_args)
        results = [_extract_one(t) for t in progress_bar(tasks, **bar)]

    errors = []
    for item_id, frames, reason, message in results:
        entry = entries[item_id]
        if reason is not None:
            new_skipped[item_id] = {"path": entry["audio"], "reason": reason, "error": message, "sig": entry["sig"]}
            errors.append(AudioError(entry["audio"], reason))
            log.warning("features/%s: skipping %s", split, message)
        else:
            new_items[item_id] = entry | {"frames": frames}
    # Drop feature files of items that left the manifest.
    keep = {e["file"] for e in new_items.values()}
    for f in out_dir.glob("*.npy"):
        if f.name not in keep:
            f.unlink()
    _atomic_json(index_path, {"key": key, "mel": recipe.mel.to_dict(), "dtype": fc.dtype,
                              "items": new_items, "skipped": new_skipped})
    all_bad = [AudioError(v["path"], v["reason"]) for v in new_skipped.values()]
    report = {"items": len(new_items), "extracted": len(new_items) - reused, "reused": reused,
              "skipped": scan_report(all_bad)}
    log.info("features/%s: %d extracted, %d reused from cache, %s", split, report["extracted"], reused,
             report["skipped"])
    return report


def load_features(work: str | Path, split: str, item_id: str, index: dict | None = None, mmap: bool = True) -> np.ndarray:
    """One item's log-mel, (n_mels, frames), memory-mapped by default."""
    index = index or load_index(work, split)
    entry = index["items"][item_id]
    return np.load(Path(work) / "features" / split / entry["file"], mmap_mode="r" if mmap else None)


def compute_stats(recipe: Recipe) -> MelStats:
    """Per-bin mean/std over every frame of the train split (Chan's parallel merge, float64)."""
    index = load_index(recipe.work, "train")
    if not index["items"]:
        raise RuntimeError("features/train is empty: cannot compute normalisation statistics")
    mels = (load_features(recipe.work, "train", item_id, index) for item_id in index["items"])
    return stats_of(mels, recipe.mel.n_mels, recipe.features.clip_sigma)


def stats_of(mels, n_mels: int, clip_sigma: float | None) -> MelStats:
    """Per-bin mean/std over every frame of ``mels`` ((n_mels, frames) arrays, any iterable), merged
    clip by clip (Chan's parallel update, float64): the statistics of a split, or of a subset.
    """
    count, mean, m2 = 0, np.zeros(n_mels), np.zeros(n_mels)
    for m in mels:
        x = np.asarray(m, np.float64)
        nb = x.shape[1]
        if nb == 0:
            continue
        mb = x.mean(axis=1)
        m2b = ((x - mb[:, None]) ** 2).sum(axis=1)
        delta = mb - mean
        tot = count + nb
        mean = mean + delta * nb / tot
        m2 = m2 + m2b + delta**2 * count * nb / tot
        count = tot
    std = np.maximum(np.sqrt(m2 / max(count, 1)), _STD_FLOOR)
    return MelStats(mean, std, count, clip_sigma)


def _stats_key(recipe: Recipe) -> str:
    index = load_index(recipe.work, "train")
    items = sorted((k, v["sig"], v["audio"]) for k, v in index["items"].items())
    blob = json.dumps({"key": index["key"], "items": items, "clip": recipe.features.clip_sigma})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_stats(work: str | Path) -> MelStats:
    path = Path(work) / "features" / "stats.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the features stage first")
    return MelStats.load(path)


def run_features(recipe: Recipe, force: bool = False) -> dict:
    """Run the features stage over every split, then the train statistics."""
    report = {s: extract_split(recipe, s, force=force) for s in SPLITS}
    stats_path = recipe.work / "features" / "stats.npz"
    key = _stats_key(recipe)
    fresh = False
    if stats_path.is_file() and not force:
        try:
            with np.load(stats_path) as z:
                n = recipe.mel.n_mels
                fresh = "key" in z and str(z["key"]) == key and z["mean"].shape == z["std"].shape == (n,)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
            log.warning("features: %s is corrupt (%s); recomputing it", stats_path,
                        " ".join(str(e).split())[:120] or type(e).__name__)
    if not fresh:
        stats = compute_stats(recipe)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would add ".npz" to the temporary name
                stats.save(f, key=key)

        atomic_write(stats_path, write)
        log.info("features: train statistics over %d frames → %s", stats.count, stats_path)
    report["stats"] = {"path": str(stats_path), "recomputed": not fresh}
    save_resolved(recipe, recipe.work / "features")
    return report
