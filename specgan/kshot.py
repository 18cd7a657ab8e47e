"""The low-resource experiment (issue 31): does a conditional GAN help a recogniser that has only
K real clips per class, and by how much against classical augmentation?

A recipe with ``task: augment`` and a ``kshot`` section (``recipes/augment-digits.yaml``,
``recipes/augment-notes.yaml``) runs it stage by stage with ``specgan run``:

    0 prepare, 1 features   the recipe's data, as for generation
    2 specgan               one stage-one GAN per cell (K, seed), trained on that cell's real clips alone
    3 vocoder               not used: the recogniser reads log-mels, and generated mels reach it as drawn
    4 synth                 per cell, the extra training sets: the classical copies, the cell GAN's clips,
                            the shipped model's clips
    5 evaluate              per cell and condition, a recogniser trained from scratch and scored on the
                            held-out test split; the table and the figure of accuracy against K

**A cell** is K clips per class from the train split, drawn by ``seed`` (per class, the sorted ids
in the seed's random order, the first K: the cells of one seed are nested, K = 5 inside K = 10).
Everything in a cell sees those clips and nothing else of the training data: the normalisation
statistics are theirs, the cell's GAN trains on them alone, a filter's judge is trained on them.
The one exception is the ``shipped`` condition, whose model saw the whole train split; it is there
as a reference and says so.

**The conditions**, one recogniser each (the evaluation classifier's CNN, trained for a fixed number
of steps, with no early stopping on held-out data; the same for every condition):

- ``real``: the cell's clips;
- ``classical``: + ``copies`` perturbed copies of each clip, made in the audio (speed, pitch shift,
  time stretch, added noise: what the recipe's ``classical`` block enables), and SpecAugment masks
  on every training batch;
- ``gan``: + ``ratio`` × as many clips drawn from the cell's GAN, balanced over classes;
- ``both``: classical and gan together;
- ``shipped``: + as many clips drawn from the recipe's shipped stage one (``pretrained.specgan``).

Generated log-mels are normalised with the cell's statistics, as the real ones are. With
``filter`` τ > 0 a recogniser trained on the cell's real clips judges every drawn clip and keeps it
only when P(asked class) ≥ τ; the draws go on (up to ``filter_tries`` × the count per class) and
the drops are counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = ["CONDITIONS", "ClassicalConfig", "KShotConfig", "RecogniserConfig", "cells", "draw_subset",
           "evaluate_kshot", "make_sets", "per_class_table", "spec_augment", "summary_cells", "summary_table",
           "train_cell_gans", "train_recogniser"]

log = logging.getLogger(__name__)

CONDITIONS = ("real", "classical", "gan", "both", "shipped")


@dataclass
class ClassicalConfig:
    """Label-preserving perturbations of the real clips (set a range to null to leave it out)."""

    copies: int = 2                                  # perturbed copies of each real clip
    speed: list[float] | None = field(default_factory=lambda: [0.9, 1.1])   # resampling: tempo and pitch (Kaldi's)
    semitones: float | None = 2.0                    # pitch shift, uniform in ±semitones, tempo kept
    stretch: list[float] | None = None               # time stretch, tempo only (pitch kept: for pitch labels)
    noises: list[str] = field(default_factory=lambda: ["white", "pink", "babble"])  # babble: other cell clips
    snr_db: list[float] | None = field(default_factory=lambda: [5.0, 20.0])
    freq_masks: int = 2                              # SpecAugment, on every training batch
    freq_width: int = 8                              # (mel bins, at most)
    time_masks: int = 2
    time_width: int = 8                              # (frames, at most)

    def __post_init__(self) -> None:
        from specgan.enhancement.noise import KINDS

        if self.copies < 0:
            raise ValueError(f"copies: must be 0 or more, got {self.copies}")
        for name in ("speed", "stretch", "snr_db"):
            v = getattr(self, name)
            if v is not None and (len(v) != 2 or v[0] > v[1]):
                raise ValueError(f"{name}: expected [low, high], got {v!r}")
        for name in ("speed", "stretch"):
            v = getattr(self, name)
            if v is not None and v[0] <= 0:
                raise ValueError(f"{name}: factors must be positive, got {v!r}")
        bad = [k for k in self.noises if k not in KINDS]
        if bad:
            raise ValueError(f"noises: unknown {', '.join(bad)} (known: {', '.join(KINDS)})")
        for name in ("freq_masks", "freq_width", "time_masks", "time_width"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be 0 or more, got {getattr(self, name)}")


@dataclass
class RecogniserConfig:
    """The recogniser every condition trains: :class:`specgan.classifier.MelClassifier`."""

    width: int = 16
    steps: int = 1000             # fixed: the same for every condition, no early stopping on held-out data; enough
    #                               to fit the augmented sets (at 400 the classical recogniser fit 85% of its real clips)
    batch_size: int = 32
    lr: float = 1e-3
    max_shift: int = 4            # random circular time shift (frames), every condition (the classifier's own)
    real_share: float | None = None   # None: real and added clips shuffled together; 0.5: every batch half real

    def __post_init__(self) -> None:
        if self.real_share is not None and not 0 < self.real_share <= 1:
            raise ValueError(f"real_share: a share in (0, 1] or null, got {self.real_share}")
        for name in ("width", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be positive, got {self.lr}")


@dataclass
class KShotConfig:
    """The ``kshot`` recipe section (``task: augment``)."""

    shots: list[int] = field(default_factory=lambda: [5, 10, 25, 50])   # K real clips per class
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    conditions: list[str] = field(default_factory=lambda: list(CONDITIONS))
    ratio: float = 2.0            # generated clips per real clip (gan, both, shipped)
    filter: float = 0.0           # τ: keep a drawn clip when the cell's real-data recogniser gives P(asked) ≥ τ
    filter_tries: int = 10
    test_split: str = "test"      # held-out speakers / programs
    variant: str = ""             # a name for a lever's run (ratio, filter...): its sets, results and table are
    #                               kept apart (sets-<variant>.pt, eval/kshot-<variant>.*), the cells' GANs shared
    variant_gans: bool = False    # the variant trains its own cell GANs (specgan-<variant>/): for a lever of the
    #                               GAN itself (mode seeking, a loss weight), which must not retrain the shared ones
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)
    recogniser: RecogniserConfig = field(default_factory=RecogniserConfig)

    def __post_init__(self) -> None:
        if not self.shots or any(k < 1 for k in self.shots):
            raise ValueError(f"shots: expected positive clip counts, got {self.shots!r}")
        if not self.seeds:
            raise ValueError("seeds: at least one")
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad or not self.conditions:
            raise ValueError(f"conditions: expected some of {', '.join(CONDITIONS)}, got {self.conditions!r}")
        if self.ratio < 0:
            raise ValueError(f"ratio: must be 0 or more, got {self.ratio}")
        if not 0 <= self.filter < 1:
            raise ValueError(f"filter: a probability in [0, 1), got {self.filter}")
        if self.variant and not all(ch.isalnum() or ch in "-_" for ch in self.variant):
            raise ValueError(f"variant: letters, digits, - and _ only (it names files), got {self.variant!r}")
        if self.filter_tries < 1:
            raise ValueError(f"filter_tries: must be at least 1, got {self.filter_tries}")
        if self.variant_gans and not self.variant:
            raise ValueError("variant_gans: needs a variant name (its GANs go to specgan-<variant>/)")


# -- cells ----------------------------------------------------------------------------------
def cells(cfg: KShotConfig) -> list[tuple[int, int]]:
    return [(k, s) for k in sorted(cfg.shots) for s in cfg.seeds]


def cell_dir(recipe, k: int, seed: int) -> Path:
    return recipe.work / "kshot" / f"k{k}-s{seed}"


def cell_gan_dir(recipe, k: int, seed: int) -> Path:
    """Where a cell's GAN trains: ``specgan/``, shared by every variant, or the variant's own
    ``specgan-<variant>/`` (``kshot.variant_gans``).
    """
    cfg = recipe.kshot
    return cell_dir(recipe, k, seed) / (f"specgan-{cfg.variant}" if cfg.variant_gans else "specgan")


def _suffix(cfg: KShotConfig) -> str:
    return f"-{cfg.variant}" if cfg.variant else ""


def _first_label(label):
    return label[0] if isinstance(label, (list, tuple)) else label


def draw_subset(items: dict, k: int, seed: int) -> list[str]:
    """K ids per class (the first label) of a features index's ``items``: per class, the sorted ids
    in the order of a seeded permutation, the first K (so a seed's cells are nested). A class with
    fewer than K clips is one line.
    """
    by_class: dict[str, list[str]] = {}
    for item_id, entry in items.items():
        by_class.setdefault(str(_first_label(entry["label"])), []).append(item_id)
    short = {c: len(v) for c, v in by_class.items() if len(v) < k}
    if short:
        c, n = min(short.items(), key=lambda kv: kv[1])
        raise ValueError(f"kshot.shots: {k} clips per class asked, but class {c!r} has {n} in the train split "
                         f"({len(short)} classes short); use K ≤ {n}")
    out = []
    for c in sorted(by_class):
        ids = sorted(by_class[c])
        h = int(hashlib.sha256(f"{seed}:{c}".encode()).hexdigest()[:8], 16)  # per class: adding a class moves no other
        order = np.random.default_rng(h).permutation(len(ids))
        out += [ids[i] for i in order[:k]]
    return out


class _Split:
    """One split's cached log-mels and first labels (lazy)."""

    def __init__(self, recipe, split: str):
        from specgan.features.cache import load_index

        self.recipe, self.split = recipe, split
        self.index = load_index(recipe.work, split)

    def mels(self, ids) -> list[np.ndarray]:
        from specgan.features.cache import load_features

        return [load_features(self.recipe.work, self.split, i, self.index, mmap=False) for i in ids]

    def labels(self, ids) -> list[str]:
        return [str(_first_label(self.index["items"][i]["label"])) for i in ids]

    def audio(self, ids) -> list[str]:
        return [self.index["items"][i]["audio"] for i in ids]


def _cell_stats(recipe, train: _Split, ids):
    from specgan.features.cache import stats_of

    return stats_of(train.mels(ids), recipe.mel.n_mels, recipe.features.clip_sigma)


def _normalised(mels, stats, frames: int, floor_log: float) -> torch.Tensor:
    """(N, 1, n_mels, frames) in the cell's normalisation, padded with silence / cropped."""
    from specgan.stage_one.data import MelDataset

    return MelDataset(list(mels), [None] * len(mels), stats, frames, floor_log).x


# -- stage 2: the cells' GANs --------------------------------------------------------------
def train_cell_gans(recipe, device: str = "auto", progress: bool = True, force: bool = False,
                    report=print) -> list[str]:
    """Train (or resume, or skip) the GAN of every cell the conditions need; one line per cell."""
    from specgan.training import train_specgan

    cfg = recipe.kshot
    if not {"gan", "both"} & set(cfg.conditions):
        return ["no condition draws from a cell GAN"]
    train = _Split(recipe, "train")
    lines = []
    for k, seed in cells(cfg):
        ids = draw_subset(train.index["items"], k, seed)
        out = cell_gan_dir(recipe, k, seed)
        res = train_specgan(recipe, device=device, progress=progress, mode="run", force=force, out=out, items=ids,
                            stats=_cell_stats(recipe, train, ids), meta={"kshot": {"k": k, "seed": seed}})
        what = "up to date" if res.get("up_to_date") else f"trained to step {res['step']}"
        lines.append(f"K={k} seed {seed}: {len(ids)} clips, {what} → {out}")
        report(f"   {lines[-1]}")
    return lines


# -- stage 4: the extra training sets ------------------------------------------------------
def _perturb(y: np.ndarray, sr: int, c: ClassicalConfig, rng: np.random.Generator, pool: list[np.ndarray]):
    import librosa
    import soxr

    from specgan.audio import fit_length
    from specgan.enhancement.noise import make_noise, mix

    n = len(y)
    if c.speed is not None:
        f = float(rng.uniform(*c.speed))
        y = soxr.resample(y, sr * f, sr).astype(np.float32)   # played f× faster: tempo and pitch
    if c.semitones:
        y = librosa.effects.pitch_shift(y, sr=sr, n_steps=float(rng.uniform(-c.semitones, c.semitones)))
    if c.stretch is not None:
        y = librosa.effects.time_stretch(y, rate=float(rng.uniform(*c.stretch)))
    y = fit_length(np.asarray(y, np.float32), n, "center")
    if c.snr_db is not None and c.noises:
        kind = c.noises[int(rng.integers(len(c.noises)))]
        noise = make_noise(kind, n, sr, rng, pool=pool)
        y, _ = mix(y, noise, float(rng.uniform(*c.snr_db)))
    return y.astype(np.float32)


def _classical_set(recipe, train: _Split, ids, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """``copies`` perturbed log-mels of each real clip, from its audio."""
    from specgan.audio import Preprocess, load_clip
    from specgan.features.extract import LogMelExtractor

    c = recipe.kshot.classical
    if c.copies == 0:
        return [], []
    sr = recipe.mel.sample_rate
    pre = Preprocess(**asdict(recipe.data.preprocess))
    ex = LogMelExtractor(recipe.mel)
    clips = [load_clip(p, sr, pre, ex.cfg.min_samples) for p in train.audio(ids)]
    labels = train.labels(ids)
    rng = np.random.default_rng([seed, len(ids), 31])
    mels, ys = [], []
    for i, (y, lab) in enumerate(zip(clips, labels, strict=True)):
        others = [clips[j] for j in rng.choice(len(clips), size=min(3, len(clips)), replace=False) if j != i]
        for _ in range(c.copies):
            mels.append(ex(_perturb(y, sr, c, rng, others)))
            ys.append(lab)
    return mels, ys


def _draw(model, classes: list[str], per_class: int, stats, frames: int, floor_log: float, seed: int,
          judge=None, tau: float = 0.0, tries: int = 10) -> tuple[torch.Tensor, list[str], dict]:
    """``per_class`` clips of each class from a stage-one model, normalised with ``stats``; with a
    judge, only clips it gives P(asked) ≥ tau (drops counted, short classes reported).
    """
    xs, ys, dropped, short = [], [], {}, {}
    chunk = max(per_class, 16)
    with torch.inference_mode():
        for ci, c in enumerate(classes):
            kept, drawn = [], 0
            while len(kept) < per_class and drawn < tries * per_class:
                seeds = [seed * 1_000_003 + ci * 100_003 + drawn + j for j in range(chunk)]
                drawn += chunk
                ask = {model.labels.name(0): c} if model.labels.multi else c   # other keys drawn per clip
                logmel = model.sample(ask, seeds=seeds, batch_size=None)
                x = _normalised([m.numpy() for m in logmel.float().cpu()], stats, frames, floor_log)
                if judge is not None:
                    keep = torch.from_numpy(judge(x)[:, ci] >= tau)
                    dropped[c] = dropped.get(c, 0) + int((~keep).sum())
                    x = x[keep]
                kept += list(x)
            if len(kept) < per_class:
                short[c] = per_class - len(kept)
            kept = kept[:per_class]
            xs += kept
            ys += [c] * len(kept)
    x = torch.stack(xs) if xs else torch.zeros(0, 1, stats.n_mels, frames)
    return x, ys, {"dropped": dropped, "short": short}


def _sets_key(recipe, k: int, seed: int, files: list[Path], cell: Path) -> str:
    """What a cell's sets depend on: its K and seed, the set-making keys, the mel, the truncation
    and smoothing the GAN clips are drawn with (when not 1 and 0), the model files (a file inside the cell by its path
    there, so a cell's folder can be moved or linked).
    """
    from specgan.recipe import to_dict

    cfg = {n: v for n, v in to_dict(recipe.kshot).items() if n not in ("shots", "seeds", "recogniser", "variant",
                                                                          "variant_gans", "test_split")}

    def where(p: Path) -> str:
        return str(p.relative_to(cell)) if p.is_relative_to(cell) else str(p)

    blob = {"kshot": cfg, "mel": recipe.mel.to_dict(), "k": k, "seed": seed,
            **({"truncation": recipe.synth.truncation} if recipe.synth.truncation != 1.0 else {}),
            **({"smoothing": recipe.synth.smoothing} if recipe.synth.smoothing != 0.0 else {}),
            "files": [[where(p), p.stat().st_size, p.stat().st_mtime_ns] if p.is_file() else [where(p), None]
                      for p in files]}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_sets(recipe, device: str = "cpu", force: bool = False, report=print) -> list[str]:
    """Stage 4: every cell's ``sets.pt`` (the real clips, the classical copies, the generated clips
    its conditions need), skipped while its key (config, models) is unchanged.
    """
    from specgan.checkpoints import load_stage_one
    from vocoder.checkpoint import atomic_write

    cfg = recipe.kshot
    train = _Split(recipe, "train")
    frames, floor_log = recipe.specgan.frames, recipe.mel.log_floor
    shipped = None
    if "shipped" in cfg.conditions:
        if not recipe.pretrained.specgan:
            raise ValueError(f"{recipe.path}: kshot.conditions has `shipped` but pretrained.specgan is not set")
        shipped = recipe.resolve(recipe.pretrained.specgan)
    lines = []
    for k, seed in cells(cfg):
        d = cell_dir(recipe, k, seed)
        gan_file = cell_gan_dir(recipe, k, seed) / "model.safetensors"
        needs_gan = bool({"gan", "both"} & set(cfg.conditions))
        if needs_gan and not gan_file.is_file():
            raise FileNotFoundError(f"{gan_file} not found: run stage 2 (specgan) of {recipe.path} first")
        files = ([gan_file] if needs_gan else []) + ([shipped] if shipped else [])
        key = _sets_key(recipe, k, seed, files, d)
        path = d / f"sets{_suffix(cfg)}.pt"
        if not force and path.is_file() and torch.load(path, weights_only=False).get("key") == key:
            lines.append(f"K={k} seed {seed}: up to date ({path})")
            report(f"   {lines[-1]}")
            continue
        ids = draw_subset(train.index["items"], k, seed)
        stats = _cell_stats(recipe, train, ids)
        classes = sorted(set(train.labels(train.index["items"])), key=_natural)
        real_y = train.labels(ids)
        sets = {"key": key, "classes": classes, "stats": stats.to_dict(), "ids": ids,
                "real": (_normalised(train.mels(ids), stats, frames, floor_log), real_y)}
        info = {}
        if "classical" in cfg.conditions or "both" in cfg.conditions:
            mels, ys = _classical_set(recipe, train, ids, seed)
            sets["classical"] = (_normalised(mels, stats, frames, floor_log), ys)
        per_class = int(round(cfg.ratio * k))
        judge = None
        if cfg.filter > 0 and per_class:
            model, _ = train_recogniser(sets["real"], classes, recipe.kshot.recogniser, seed=seed)
            model.eval()
            judge = lambda x, m=model: torch.softmax(m(x), -1).numpy()  # noqa: E731
        for name, mfile in (("gan", gan_file if needs_gan else None), ("shipped", shipped)):
            if mfile is None or not per_class:
                continue
            model = load_stage_one(mfile, device, recipe=recipe).draw_as(recipe.synth)  # drawn as synth draws
            x, ys, info[name] = _draw(model, classes, per_class, stats, frames, floor_log, seed, judge, cfg.filter,
                                      cfg.filter_tries)
            sets[name] = (x, ys)
        sets["info"] = info
        atomic_write(path, lambda tmp: torch.save(sets, tmp))
        counts = ", ".join(f"{n} {len(sets[n][1])}" for n in ("real", "classical", "gan", "shipped") if n in sets)
        drops = {n: sum(v["dropped"].values()) for n, v in info.items() if v["dropped"]}
        lines.append(f"K={k} seed {seed}: {counts}" + (f"; filter τ={cfg.filter} dropped {drops}" if drops else ""))
        report(f"   {lines[-1]}")
    return lines


def _natural(c: str):
    try:
        return (0, float(c), c)
    except ValueError:
        return (1, 0.0, c)


# -- stage 5: the recognisers --------------------------------------------------------------
def spec_augment(x: torch.Tensor, c: ClassicalConfig, gen: torch.Generator) -> torch.Tensor:
    """SpecAugment's frequency and time masks (Park et al. 2019) on a normalised batch
    (B, 1, n_mels, frames): each mask sets up to ``*_width`` bands or frames to 0, the normalised
    mean, independently per clip.
    """
    x = x.clone()
    b, _, n_mels, frames = x.shape
    for count, width, axis, size in ((c.freq_masks, c.freq_width, 2, n_mels), (c.time_masks, c.time_width, 3, frames)):
        for _ in range(count):
            w = torch.randint(0, width + 1, (b,), generator=gen)
            start = (torch.rand(b, generator=gen) * (size - w + 1).float()).long()
            pos = torch.arange(size)
            m = (pos[None] >= start[:, None]) & (pos[None] < (start + w)[:, None])   # (b, size)
            shape = (b, 1, size, 1) if axis == 2 else (b, 1, 1, size)
            x = x.masked_fill(m.view(shape), 0.0)
    return x


class _Stream:
    """Indices 0..n-1 in a fresh random order each pass, ``take(b)`` at a time."""

    def __init__(self, n: int, gen: torch.Generator, offset: int = 0):
        self.n, self.gen, self.offset, self.order, self.pos = n, gen, offset, torch.randperm(n, generator=gen), 0

    def take(self, b: int) -> torch.Tensor:
        if self.pos + b > self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.gen), 0
        idx = self.order[self.pos : self.pos + b]
        self.pos += b
        return idx + self.offset


def train_recogniser(train: tuple[torch.Tensor, list[str]], classes: list[str], rc: RecogniserConfig, seed: int,
                     augment: ClassicalConfig | None = None, n_real: int | None = None):
    """A :class:`~specgan.classifier.MelClassifier` trained for ``rc.steps`` steps on ``train``
    ((N, 1, n_mels, frames), labels); SpecAugment on every batch when ``augment`` is given. With
    ``rc.real_share`` and ``n_real`` (the first ``n_real`` clips are the real ones), every batch
    holds that share of real clips, the rest from the added ones. Returns (model, train seconds).
    """
    import time

    from specgan.classifier import start_training, train_step

    x, ys = train
    index = {c: i for i, c in enumerate(classes)}
    y = torch.tensor([index[c] for c in ys])
    model, opt, sched, gen = start_training(len(classes), rc.width, rc.lr, seed, rc.steps)
    transform = None if augment is None else (lambda xb: spec_augment(xb, augment, gen))
    t0 = time.process_time()
    model.train()
    mixed = rc.real_share is not None and n_real is not None and 0 < n_real < len(x)
    if mixed:
        b_real = max(1, min(rc.batch_size - 1, round(rc.real_share * rc.batch_size)))
        real, added = _Stream(n_real, gen), _Stream(len(x) - n_real, gen, offset=n_real)
    else:
        every = _Stream(len(x), gen)
    for _ in range(rc.steps):
        if mixed:
            idx = torch.cat([real.take(min(b_real, n_real)), added.take(min(rc.batch_size - b_real, len(x) - n_real))])
        else:
            idx = every.take(min(rc.batch_size, len(x)))
        train_step(model, opt, x[idx], y[idx], gen, rc.max_shift, transform)
        sched.step()
    model.eval()
    return model, time.process_time() - t0


def _accuracy(model, x: torch.Tensor, ys: list[str], classes: list[str]) -> tuple[float, dict, dict]:
    """(accuracy, per class accuracy, confusion: true class → {predicted class: count}, non-zero counts)."""
    from specgan.classifier import predict

    probs, _ = predict(model, x)
    pred = probs.argmax(1)
    truth = np.array([classes.index(c) for c in ys])
    per = {c: float((pred[truth == i] == i).mean()) for i, c in enumerate(classes) if (truth == i).any()}
    confusion = {c: {classes[j]: int(n) for j, n in enumerate(np.bincount(pred[truth == i], minlength=len(classes)))
                     if n} for i, c in enumerate(classes) if (truth == i).any()}
    return float((pred == truth).mean()), per, confusion


def _condition_set(sets: dict, condition: str) -> tuple[torch.Tensor, list[str]]:
    parts = {"real": ["real"], "classical": ["real", "classical"], "gan": ["real", "gan"],
             "both": ["real", "classical", "gan"], "shipped": ["real", "shipped"]}[condition]
    missing = [p for p in parts if p not in sets]
    if missing:
        raise ValueError(f"condition {condition}: the cell has no {', '.join(missing)} set (rerun stage 4, synth)")
    xs = [sets[p][0] for p in parts if len(sets[p][1])]
    ys = [y for p in parts for y in sets[p][1]]
    return torch.cat(xs), ys


def evaluate_kshot(recipe, force: bool = False, report=print) -> dict:
    """Stage 5: a recogniser per cell and condition (cached per cell in ``results.json`` under the
    sets' and the recogniser's key), then ``eval/kshot.json``, ``kshot.md`` and ``kshot.png``.
    """
    from specgan.recipe import to_dict
    from vocoder.checkpoint import atomic_write
    from vocoder.mel import MelStats

    cfg = recipe.kshot
    test = _Split(recipe, cfg.test_split)
    test_ids = sorted(test.index["items"])
    test_y = test.labels(test_ids)
    test_mels = test.mels(test_ids)
    frames, floor_log = recipe.specgan.frames, recipe.mel.log_floor
    rows = []
    for k, seed in cells(cfg):
        d = cell_dir(recipe, k, seed)
        sets_path = d / f"sets{_suffix(cfg)}.pt"
        if not sets_path.is_file():
            raise FileNotFoundError(f"{sets_path} not found: run stage 4 (synth) of {recipe.path} first")
        sets = torch.load(sets_path, weights_only=False)
        rc = {n: v for n, v in to_dict(cfg.recogniser).items() if v is not None}   # an unset lever: no new key
        key = hashlib.sha256(json.dumps([sets["key"], rc, cfg.test_split, len(test_ids)],
                                        sort_keys=True).encode()).hexdigest()[:16]
        cache_path = d / f"results{_suffix(cfg)}.json"
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() and not force else {}
        if cache.get("key") != key:
            cache = {"key": key, "results": {}}
        classes = sets["classes"]
        unknown = sorted(set(test_y) - set(classes))
        if unknown:
            raise ValueError(f"{cfg.test_split} split: labels the train split lacks: {', '.join(unknown[:5])}")
        x_test = _normalised(test_mels, MelStats.from_dict(sets["stats"]), frames, floor_log)
        for cond in cfg.conditions:
            if cond in cache["results"]:
                continue
            data = _condition_set(sets, cond)
            model, secs = train_recogniser(data, classes, cfg.recogniser, seed=seed,
                                           augment=cfg.classical if cond in ("classical", "both") else None,
                                           n_real=len(sets["real"][1]))
            acc, per, confusion = _accuracy(model, x_test, test_y, classes)
            cache["results"][cond] = {"accuracy": acc, "per_class": per, "confusion": confusion,
                                      "train_items": len(data[1]), "cpu_seconds": round(secs, 1)}
            atomic_write(cache_path, lambda tmp: tmp.write_text(json.dumps(cache, indent=1)))
            report(f"   K={k} seed {seed} {cond}: accuracy {acc:.3f} ({len(data[1])} training clips, {secs:.0f} CPU-s)")
        for cond in cfg.conditions:
            r = cache["results"][cond]
            rows.append({"k": k, "seed": seed, "condition": cond, "accuracy": r["accuracy"],
                         "train_items": r["train_items"], "per_class": r["per_class"],
                         "confusion": r.get("confusion"),   # results cached before it was kept: None
                         "info": sets.get("info", {}).get("gan" if cond in ("gan", "both") else cond, {})})
    path = recipe.work / "eval" / f"kshot{_suffix(cfg)}.json"
    out = {"recipe": recipe.name, "variant": cfg.variant, "path": str(path), "test_split": cfg.test_split, "test_items": len(test_ids),
           "classes": len(set(test_y)), "config": to_dict(cfg), "rows": rows, "summary": summarise(rows)}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(out, indent=1)))
    path.with_suffix(".md").write_text(summary_table(out) + "\n\n" + per_class_table(out) + "\n")
    plot_kshot(out, path.with_suffix(".png"))
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and sample standard deviation over seeds, per K and condition."""
    groups: dict[tuple[int, str], list[float]] = {}
    for r in rows:
        groups.setdefault((r["k"], r["condition"]), []).append(r["accuracy"])
    return [{"k": k, "condition": c, "mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
             "seeds": len(v)} for (k, c), v in sorted(groups.items(), key=lambda kv: (kv[0][0], CONDITIONS.index(kv[0][1])))]


def summary_cells(out: dict) -> tuple[list[str], list[list[str]], str]:
    """The summary as a grid: the header (K, then each condition), a row of cells per K (mean ± std
    over seeds, "—" where a cell has no result) and the caption; the markdown table and the report
    page both render it.
    """
    conds = [c for c in CONDITIONS if any(s["condition"] == c for s in out["summary"])]
    cell = {(s["k"], s["condition"]): s for s in out["summary"]}
    rows = []
    for k in sorted({s["k"] for s in out["summary"]}):
        rows.append([str(k)] + ["—" if (s := cell.get((k, c))) is None else f"{s['mean']:.3f} ± {s['std']:.3f}"
                                for c in conds])
    per_k = {s["k"]: s["seeds"] for s in out["summary"]}
    seeds = f"{next(iter(per_k.values()))} seed(s)" if len(set(per_k.values())) == 1 else \
        "the seeds each K has (" + ", ".join(f"K={k}: {n}" for k, n in sorted(per_k.items())) + ")"
    caption = (f"Test accuracy on the {out['test_split']} split ({out['test_items']} clips, {out['classes']} "
               f"classes), mean ± standard deviation over {seeds}.")
    return ["K per class", *conds], rows, caption


def summary_table(out: dict) -> str:
    """Markdown: accuracy (mean ± std over seeds) per K (rows) and condition (columns)."""
    head, rows, caption = summary_cells(out)
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - 1)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([*lines, "", caption])


def per_class_table(out: dict) -> str:
    """Markdown, per K: each class's accuracy per condition (mean over seeds), and what the
    recogniser trained with GAN clips (``gan``) hears each class as most often when it is wrong
    (counts summed over seeds; "—" for results cached before confusions were kept).
    """
    conds = [c for c in CONDITIONS if any(r["condition"] == c for r in out["rows"])]
    blocks = []
    for k in sorted({r["k"] for r in out["rows"]}):
        rows = [r for r in out["rows"] if r["k"] == k]
        classes = sorted({c for r in rows for c in r["per_class"]})
        have = any(r.get("confusion") for r in rows if r["condition"] == "gan")
        lines = [f"**K = {k}**: accuracy per class (mean over seeds); last column: what the `gan` recogniser "
                 "heard the class as when it was wrong (counts summed over seeds)", "",
                 "| class | " + " | ".join(conds) + " | gan − real | gan, wrong as |",
                 "|---|" + "---|" * (len(conds) + 2)]
        for c in classes:
            mean = {cond: np.mean([r["per_class"][c] for r in rows if r["condition"] == cond and c in r["per_class"]])
                    for cond in conds}
            wrong: dict[str, int] = {}
            for r in rows:
                if r["condition"] == "gan" and r.get("confusion"):
                    for p, n in r["confusion"].get(c, {}).items():
                        if p != c:
                            wrong[p] = wrong.get(p, 0) + n
            top = ", ".join(f"{p} {n}" for p, n in sorted(wrong.items(), key=lambda kv: -kv[1])[:2]) or \
                ("none" if have else "—")
            gap = f"{mean['gan'] - mean['real']:+.2f}" if "gan" in mean and "real" in mean else "—"
            lines.append(f"| {c} | " + " | ".join(f"{mean[cond]:.2f}" for cond in conds) + f" | {gap} | {top} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def plot_kshot(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for c in CONDITIONS:
        pts = [s for s in out["summary"] if s["condition"] == c]
        if not pts:
            continue
        ks = [s["k"] for s in pts]
        ax.errorbar(ks, [s["mean"] for s in pts], yerr=[s["std"] for s in pts], marker="o", capsize=3, label=c,
                    linestyle="--" if c == "shipped" else "-")
    ax.set_xscale("log")
    ax.minorticks_off()
    ks = sorted({s["k"] for s in out["summary"]})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("real clips per class (K)")
    ax.set_ylabel(f"accuracy on the {out['test_split']} split")
    variant = f" ({out['variant']})" if out.get("variant") else ""
    ax.set_title(f"{out['recipe']}{variant}: recogniser accuracy against K")
    ax.grid(alpha=0.3)
    ax.legend(title="training data", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
