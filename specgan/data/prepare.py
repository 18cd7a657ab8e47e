"""The ``prepare`` stage: a data source → ``<work>/data/{train,dev,test}.jsonl``.

Builtin sources render audio into ``<work>/data/wavs``; layouts and folders are referenced in
place. Every file's header is checked (unreadable, empty, shorter than one frame → skipped and
counted); full decoding checks (NaN/Inf, all-zero) happen in the features stage, which reads
every sample anyway. The stage is skipped when ``data/prepare.json`` was written by the same
data config, unless ``force``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path


from specgan.audio import AudioError, scan_report
from specgan.audio import read as read_audio
from specgan.data.layouts import LAYOUTS
from specgan.data.manifest import SPLITS, Item, read_manifest, split_by_group, write_manifest
from specgan.data.sources import SOURCES
from specgan.recipe import Recipe, save_resolved
from specgan.workdir import read_marker
from vocoder.checkpoint import atomic_write

__all__ = ["check_label", "parse_source", "prepare", "prepare_key", "load_split", "source_labels"]

log = logging.getLogger(__name__)

_PREPARE_VERSION = 1  # bump when prepare's output format or rendering changes


def parse_source(source: str) -> tuple[str, str]:
    """Split a ``data.source`` into what it is and where.

    Args:
        source: ``builtin:NAME`` (a name of :data:`~specgan.data.sources.SOURCES`), ``LAYOUT:PATH``
            (a name of :data:`~specgan.data.layouts.LAYOUTS`), ``folder:PATH`` or a bare path.

    Returns:
        ``(kind, arg)``: ``("builtin", NAME)``, ``(LAYOUT, PATH)``, or ``("folder", path)`` for a bare path.

    Raises:
        ValueError: An unknown builtin or kind (listing the known ones), or a layout without a path.
    """
    kind, sep, arg = source.partition(":")
    if sep and kind == "builtin":
        if arg not in SOURCES:
            raise ValueError(f"data.source: unknown builtin {arg!r}; available: {', '.join(sorted(SOURCES))}")
        return "builtin", arg
    if sep and kind in LAYOUTS:
        if not arg:
            raise ValueError(f"data.source: {kind}: needs a path, e.g. {kind}:/data/{kind}")
        return kind, arg
    if sep and len(kind) > 1 and not Path(source).exists():
        raise ValueError(f"data.source: unknown kind {kind!r} in {source!r}; use "
                         f"{', '.join('builtin:' + b for b in sorted(SOURCES))}, "
                         f"{', '.join(k + ':PATH' for k in LAYOUTS)} or a folder path")
    return "folder", source


def prepare_key(recipe: Recipe) -> str:
    """What prepare's output depends on: the data section, the sample rate, the seed, and for a
    corpus on disk (a folder or a layout) its file list: names, sizes and modification times, so
    a file added, removed or rewritten makes the prepared data out of date.
    """
    blob = {"data": recipe.fingerprint("data"), "sr": recipe.mel.sample_rate, "seed": recipe.seed,
            "version": _PREPARE_VERSION}
    kind, arg = parse_source(recipe.data.source)
    if kind != "builtin":
        blob["files"] = _listing_key(Path(arg).expanduser())
    return json.dumps(blob, sort_keys=True)


def _listing_key(root: Path) -> str | None:
    """A hash of every file under ``root`` (relative name, size, mtime); None when it is not a folder
    (prepare itself then says what is wrong with it).
    """
    if not root.is_dir():
        return None
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in sorted(files):
            p = Path(folder) / name
            try:
                st = p.stat()
            except OSError:
                continue  # a dangling link: prepare counts it among the skipped files
            h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def _check_audio(it: Item, min_samples: int, sr: int) -> Item:
    """Read the whole file once (so NaN, silent and corrupt-in-the-middle files are caught here,
    not hours later); fill duration/sr; raise AudioError for unusable files.
    """
    y, file_sr = read_audio(it.path)
    n_at_sr = y.shape[-1] * sr / file_sr
    if n_at_sr < min_samples:
        raise AudioError(it.path, "too short", f"{y.shape[-1]} samples at {file_sr} Hz, "
                                               f"need at least {min_samples} at {sr} Hz (one frame)")
    it.duration, it.sr = y.shape[-1] / file_sr, int(file_sr)
    return it


def source_labels(kind: str, arg: str, dc) -> list[str]:
    """The labels a source provides, known before anything is scanned or rendered.

    Args:
        kind, arg: As :func:`parse_source` returns them.
        dc: The recipe's ``data`` section (some sources' labels depend on it).

    Returns:
        Label keys in the order error messages list them; ``[]`` for an unknown kind.
    """
    if kind == "builtin":  # each builtin declares its own labels in the table
        return SOURCES[arg].labels_for(dc)
    return {"sc09": ["word", "digit", "speaker"], "ljspeech": ["text"],
            "nsynth": ["pitch", "velocity", "instrument", "instrument_str", "instrument_family_str",
                       "instrument_source_str"],
            "folder": ["folder"] if dc.label_from_subfolder else []}.get(kind, [])


def check_label(dc) -> None:
    """Each key of ``data.label`` names a label the source has, or is refused before any audio is
    touched; ``label: folder`` on a folder source turns on ``label_from_subfolder`` (the one-line
    way to train on your own folder of sub-folders).
    """
    if dc.label is None:
        return
    kind, arg = parse_source(dc.source)
    if kind != "builtin" and not Path(arg).exists():
        return  # the layout's own one-line error names the missing path
    if kind == "folder" and "folder" in dc.label_keys:
        dc.label_from_subfolder = True
    known = source_labels(kind, arg, dc)
    for key in dc.label_keys:
        if key not in known:
            hint = " (a folder's only label is its first sub-folder: data.label: folder)" if kind == "folder" else ""
            raise ValueError(f"data.label: {key!r} is not a label of {dc.source} "
                             f"(available: {', '.join(known) or 'none'}){hint}")


def _apply_label(items: list[Item], keys: list[str], source: str) -> None:
    """Set each item's ``label``: the value of the one key, or the list of the keys' values."""
    for label in keys:
        missing = [it for it in items if label not in it.labels]
        if missing and len(missing) == len(items):
            avail = sorted({k for it in items for k in it.labels})
            raise ValueError(f"data.label: {label!r} is not a label of {source} "
                             f"(available: {', '.join(avail) or 'none'})")
        if missing:
            raise ValueError(f"data.label: {len(missing)} of {len(items)} items have no {label!r} label "
                             f"(e.g. {missing[0].path})")
    if not keys:
        return
    for it in items:
        it.label = it.labels[keys[0]] if len(keys) == 1 else [it.labels[k] for k in keys]


def prepare(recipe: Recipe, force: bool = False) -> dict:
    """Run the prepare stage; returns the report also written to ``data/prepare.json``."""
    check_label(recipe.data)  # before anything is scanned, rendered or compared
    work = recipe.work
    data_dir = work / "data"
    marker = data_dir / "prepare.json"
    key = prepare_key(recipe)
    if not force and marker.is_file() and all((data_dir / f"{s}.jsonl").is_file() for s in SPLITS):
        old = read_marker(marker)
        if old.get("key") == key:
            log.info("prepare: up to date (%s), skipping; --force to redo", marker)
            return {**old, "skipped_stage": True}
    dc = recipe.data
    kind, arg = parse_source(dc.source)
    sr = recipe.mel.sample_rate

    min_samples = recipe.mel.min_samples
    bad: list[AudioError] = []
    wavs = data_dir / "wavs"
    if kind == "builtin":
        if wavs.exists():
            shutil.rmtree(wavs)   # stale renders from another config must not linger
        # Rendered audio is trusted (no _check_audio pass): the builder wrote it at `sr` itself.
        items, build, split_of = SOURCES[arg].build(dc, sr, wavs, recipe.seed, work)
    else:
        scanned, split_of = LAYOUTS[kind](Path(arg), dc)
        items, build = [], {"scanned": len(scanned)}
        for it in scanned:
            try:
                items.append(_check_audio(it, min_samples, sr))
            except AudioError as e:
                bad.append(e)
                log.warning("prepare: skipping %s", e)
    if not items:
        raise ValueError(f"data.source: no usable audio in {dc.source} ({scan_report(bad)}); "
                         f"data/prepare.json is not written")
    _apply_label(items, dc.label_keys, dc.source)
    if split_of is not None:
        splits = {s: [it for it in items if split_of.get(it.id) == s] for s in SPLITS}
    else:
        splits = split_by_group(items, dc.dev_fraction, dc.test_fraction, recipe.seed)
    if dc.max_items is not None:
        rng = random.Random(recipe.seed)
        for s in SPLITS:
            rng.shuffle(splits[s])
            splits[s] = splits[s][: dc.max_items]
    data_dir.mkdir(parents=True, exist_ok=True)
    counts = {s: write_manifest(data_dir / f"{s}.jsonl", splits[s]) for s in SPLITS}
    report = {
        "key": key,
        "source": dc.source,
        "counts": counts,
        "build": build,
        "skipped": scan_report(bad),
        "skipped_files": [{"path": e.path, "reason": e.reason, "error": str(e)} for e in bad],
        "groups": {s: len({it.group for it in splits[s]}) for s in SPLITS},
    }
    save_resolved(recipe, data_dir)
    atomic_write(marker, lambda tmp: tmp.write_text(json.dumps(report, indent=1)))
    log.info("prepare: %s → %s; %s", dc.source, counts, report["skipped"])
    return report


def load_split(recipe: Recipe, split: str) -> list[Item]:
    """Items of one split, paths made absolute."""
    path = recipe.work / "data" / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run `specgan prepare --recipe {recipe.path or '...'}` first")
    items = read_manifest(path)
    root = recipe.work.resolve()
    for n, it in enumerate(items, 1):
        if not Path(it.path).is_absolute():
            full = (root / it.path).resolve()
            if not full.is_relative_to(root):  # "../../x" must not reach outside the work dir
                raise ValueError(f"{path}:{n}: relative path {it.path!r} points outside {root}; write an absolute "
                                 f"path to use a file elsewhere")
            it.path = str(full)
    return items


