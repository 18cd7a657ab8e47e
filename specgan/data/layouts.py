"""Readers for the standard corpus layouts. Each returns items (paths absolute) and, when the
corpus defines its own split, the split of every item (else ``None``: split by group later).

- SC09 / Speech Commands: ``<root>/{train,valid,test}/Word_speaker_nohash_n.wav`` (the SC09
  archive) or ``<root>/<word>/<speaker>_nohash_<n>.wav`` (Speech Commands; its
  ``validation_list.txt`` / ``testing_list.txt`` are honoured when present). Only the ten digit
  words are kept; the speaker is the group.
- NSynth: ``<root>/examples.json`` + ``<root>/audio/<note_str>.wav``, or a root holding
  ``nsynth-{train,valid,test}/`` folders of that form. The instrument is the group.
- LJSpeech: ``<root>/metadata.csv`` (``id|text|normalized text``) + ``<root>/wavs/<id>.wav``.
- folder: every audio file below the root; optionally the first sub-folder is the label.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

from specgan.audio import AUDIO_EXTENSIONS
from specgan.data.manifest import Item

log = logging.getLogger(__name__)

__all__ = ["DIGIT_WORDS", "LAYOUTS", "SPEECH_LAYOUTS", "scan_folder", "scan_ljspeech", "scan_nsynth", "scan_sc09"]

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SPLIT_NAMES = {"train": "train", "valid": "dev", "validation": "dev", "dev": "dev", "test": "test"}

Scan = tuple[list[Item], dict[str, str] | None]


def _need_dir(root: Path, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{what} root {root} is not a directory")
    return root


def _sc09_item(path: Path, word: str, speaker: str, rel: str) -> Item:
    return Item(id=rel.replace("/", "__").rsplit(".", 1)[0], path=str(path.resolve()), label=word,
                labels={"word": word, "digit": DIGIT_WORDS.index(word), "speaker": speaker}, group=speaker)


def scan_sc09(root: str | Path, data_cfg=None) -> Scan:
    """SC09 (either archive layout); see the module docstring."""
    root = _need_dir(root, "sc09")
    items, split_of = [], {}
    split_dirs = [d for d in ("train", "valid", "test") if (root / d).is_dir()]
    if split_dirs:
        for d in split_dirs:
            for p in sorted((root / d).glob("*.wav")):
                word = p.stem.split("_", 1)[0].lower()
                if word not in DIGIT_WORDS:
                    continue
                speaker = p.stem.split("_")[1] if p.stem.count("_") >= 1 else p.stem
                it = _sc09_item(p, word, speaker, f"{d}/{p.name}")
                items.append(it)
                split_of[it.id] = _SPLIT_NAMES[d]
        return items, split_of
    listed: dict[str, str] = {}
    for fname, split in (("validation_list.txt", "dev"), ("testing_list.txt", "test")):
        f = root / fname
        if f.is_file():
            for line in f.read_text().split():
                listed[line.strip()] = split
    for wdir in sorted(p for p in root.iterdir() if p.is_dir()):
        word = wdir.name.lower()
        if word not in DIGIT_WORDS:
            continue
        for p in sorted(wdir.glob("*.wav")):
            rel = f"{wdir.name}/{p.name}"
            speaker = p.stem.split("_nohash_")[0]
            it = _sc09_item(p, word, speaker, rel)
            items.append(it)
            if listed:
                split_of[it.id] = listed.get(rel, "train")
    if not items:
        raise FileNotFoundError(f"sc09 root {root}: no digit-word folders (zero..nine) or train/valid/test folders")
    return items, (split_of if listed else None)


def _nsynth_split(folder: Path, data_cfg) -> list[Item]:
    meta_path = folder / "examples.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{meta_path}: cannot read NSynth metadata: {e}") from e
    lo = getattr(data_cfg, "pitch_min", None)
    hi = getattr(data_cfg, "pitch_max", None)
    items = []
    for note, m in sorted(meta.items()):
        try:
            pitch = int(m["pitch"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{meta_path}: entry {note!r} has no integer 'pitch'") from e
        if (lo is not None and pitch < lo) or (hi is not None and pitch > hi):
            continue
        labels = {"pitch": pitch}
        for k in ("velocity", "instrument", "instrument_str", "instrument_family_str", "instrument_source_str"):
            if k in m:
                labels[k] = m[k]
        items.append(Item(id=note, path=str((folder / "audio" / f"{note}.wav").resolve()), labels=labels,
                          group=str(m.get("instrument_str", m.get("instrument", note)))))
    return items


def scan_nsynth(root: str | Path, data_cfg=None) -> Scan:
    """NSynth: one split folder, or a root of ``nsynth-{train,valid,test}`` folders."""
    root = _need_dir(root, "nsynth")
    if (root / "examples.json").is_file():
        return _nsynth_split(root, data_cfg), None
    items, split_of = [], {}
    for name, split in (("nsynth-train", "train"), ("nsynth-valid", "dev"), ("nsynth-test", "test")):
        if (root / name / "examples.json").is_file():
            for it in _nsynth_split(root / name, data_cfg):
                items.append(it)
                split_of[it.id] = split
    if not items and not split_of:
        raise FileNotFoundError(f"nsynth root {root}: no examples.json, nor nsynth-{{train,valid,test}}/examples.json")
    return items, split_of


def scan_ljspeech(root: str | Path, data_cfg=None) -> Scan:
    """LJSpeech: ``metadata.csv`` + ``wavs/``. One speaker, so every clip is its own group."""
    root = _need_dir(root, "ljspeech")
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise FileNotFoundError(f"ljspeech root {root}: metadata.csv not found")
    items = []
    with open(meta, newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise ValueError(f"{meta}:{lineno}: expected 'id|text|normalized text', got {'|'.join(row)!r}")
            cid = row[0].strip()
            text = row[2] if len(row) > 2 and row[2] else row[1]
            items.append(Item(id=cid, path=str((root / "wavs" / f"{cid}.wav").resolve()), labels={"text": text},
                              group=cid))
    return items, None


def _walk_audio(root: Path):
    """Audio-named entries below ``root``, following symlinked sub-folders (each real folder once,
    so a link cycle ends), yielding FIFOs and dangling links too: the reader counts those as
    skipped with their reason instead of their vanishing here.
    """
    seen = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in AUDIO_EXTENSIONS:
                yield Path(folder) / name


def unique_ids(items: list[Item], max_bytes: int = 200) -> int:
    """Make item ids unique and short enough for file names, deterministically: ids that collide
    (``a/b.wav`` and ``a__b.wav``; ``x.wav`` and ``x.flac``) or exceed ``max_bytes`` get a hash of
    their full relative path. Returns how many ids changed.
    """
    import hashlib

    counts: dict[str, int] = {}
    for it in items:
        counts[it.id] = counts.get(it.id, 0) + 1
    changed = 0
    for it in items:
        if counts[it.id] > 1 or len(it.id.encode()) > max_bytes:
            digest = hashlib.sha1(it.group.encode()).hexdigest()[:10]
            stem = it.id.encode()[: max_bytes - 12].decode(errors="ignore")
            it.id = f"{stem}-{digest}"
            changed += 1
    return changed


def scan_folder(root: str | Path, data_cfg=None) -> Scan:
    """Every audio file below ``root`` (symlinked sub-folders followed); the label is the first
    sub-folder when ``data.label_from_subfolder`` is set (files directly in the root then have no
    label). Ids are unique and fit in a file name (:func:`unique_ids`).
    """
    root = _need_dir(root, "folder")
    by_label = bool(getattr(data_cfg, "label_from_subfolder", False))
    items = []
    for p in _walk_audio(root):
        rel = p.relative_to(root)
        labels = {}
        if by_label and len(rel.parts) > 1:
            labels["folder"] = rel.parts[0]
        items.append(Item(id=str(rel.with_suffix("")).replace("/", "__"), path=str(p.absolute()), labels=labels,
                          group=str(rel)))
    if not items:
        raise FileNotFoundError(f"folder {root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    changed = unique_ids(items)
    if changed:
        log.info("folder %s: %d file ids collided or were too long for a file name; given a path hash", root, changed)
    return items, None


LAYOUTS = {"sc09": scan_sc09, "nsynth": scan_nsynth, "ljspeech": scan_ljspeech, "folder": scan_folder}
# the layouts holding speech (evaluate scores PESQ/STOI on them unless the recipe says otherwise)
SPEECH_LAYOUTS = frozenset({"sc09", "ljspeech"})
