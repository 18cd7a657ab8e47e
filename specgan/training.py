"""Recipes → the two trainers, with the one skip/resume policy that ``specgan train`` and
``specgan run`` share (:func:`plan`).

A training output folder (``<work>/specgan``, ``<work>/vocoder``) is, given the recipe:

* **up to date** — ``state.pt`` reached the recipe's steps and was trained with the same
  *shape* (architecture, critics, mel, data: the fingerprint stored in the checkpoint);
* **to resume** — same shape, fewer steps;
* **changed** — another shape: ``run`` moves it to ``<name>.prev/`` and retrains, naming the
  changed keys; ``train`` refuses with the changed keys (``--force`` retrains);
* **empty** — trained from scratch.

``state.pt`` is authoritative for the step (the model file is written before it, so it is never
older); a missing or stale ``model.safetensors`` is rewritten from the state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specgan.audio import load_clip
from specgan.data.prepare import load_split
from specgan.recipe import Recipe, save_resolved
from vocoder.checkpoint import (CheckpointError, ModelFileError, changed_keys, fingerprint, load_training_state,
                                read_header)

__all__ = ["Plan", "pick_device", "plan", "specgan_shape", "train_specgan", "train_vocoder", "vocoder_shape"]

log = logging.getLogger(__name__)


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; ``cuda`` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        have = ["auto", "cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
                                   if torch.cuda.is_available() else [])
        raise ValueError(f"--device {device}: not a device; this machine has: {', '.join(have)}") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device {device}: specgan runs on cpu or cuda (auto picks CUDA when there is a GPU)")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA GPU is available here (use --device cpu or auto)")
    return dev


# -- shapes: what a model's weights depend on ------------------------------------------------
def _data_key(recipe: Recipe) -> dict[str, Any]:
    return {"source": recipe.data.source, "label": recipe.data.label,
            "preprocess": recipe.data.preprocess.key()}


def vocoder_shape(recipe: Recipe) -> dict[str, Any]:
    """What shapes the recipe's vocoder (a change means another model, not more steps)."""
    vc = recipe.vocoder
    return {"model": dict(vc.generator), "critics": [dict(c) for c in vc.critics], "mel": recipe.mel.to_dict(),
            "data": _data_key(recipe)}


def specgan_shape(recipe: Recipe, space) -> dict[str, Any]:
    """What shapes the recipe's stage-one model (``space``: the training labels' ``LabelSpace``)."""
    from specgan.stage_one.trainer import label_shape

    cfg = recipe.specgan
    return {"model": {"generator": dict(cfg.generator), "critic": dict(cfg.critic), "frames": cfg.frames,
                      "conditional": cfg.conditional},
            "mel": recipe.mel.to_dict(), "data": _data_key(recipe),
            "labels": label_shape(space) if cfg.conditional and space is not None else None}


# -- the policy ------------------------------------------------------------------------------
@dataclass
class Plan:
    """What to do with a training output folder."""

    action: str                     # "fresh" | "resume" | "up-to-date" | "retrain"
    step: int = 0                   # the checkpoint's step
    changed: list[str] = field(default_factory=list)   # keys whose change forces a retrain
    model_stale: bool = False       # model.safetensors missing or older than state.pt


def _model_step(path: Path) -> int | None:
    try:
        meta, _ = read_header(path)
        return int(meta.get("step", -1))
    except (ModelFileError, ValueError):
        return None


def plan(out: Path, target: int, shape: dict[str, Any]) -> Plan:
    """Decide, from ``out/state.pt`` (or ``state.prev.pt``) and the shape the recipe asks for."""
    state_path = out / "state.pt"
    if not state_path.is_file() and not (out / "state.prev.pt").is_file():
        return Plan("fresh")
    try:
        state = load_training_state(state_path, report=False)  # the trainer's load reports a fallback
    except CheckpointError as e:
        log.warning("%s: %s; training from scratch", out, e)
        return Plan("retrain", changed=["(unreadable checkpoint)"])
    extra = state.get("extra", {})
    saved = extra.get("shape")
    step = int(state.get("step", 0))
    if saved is None or fingerprint(saved) != fingerprint(shape):
        return Plan("retrain", step, changed_keys(saved or {}, shape) if saved else ["(no fingerprint: older run)"])
    model_step = _model_step(out / "model.safetensors")
    stale = model_step is None or model_step < step
    return Plan("up-to-date" if step >= target else "resume", step, model_stale=stale)


def set_aside(out: Path) -> Path | None:
    """Move a training folder to ``<name>.prev/`` (one generation kept)."""
    if not out.exists():
        return None
    prev = out.with_name(out.name + ".prev")
    if prev.exists():
        shutil.rmtree(prev)
    out.rename(prev)
    log.info("previous run kept as %s", prev)
    return prev


def _decide(out: Path, target: int, shape: dict[str, Any], mode: str, force: bool, resume: bool,
            init_from: str | None = None) -> Plan:
    """Apply the policy: ``mode`` is ``run`` (retrain a changed run) or ``train`` (refuse it)."""
    if init_from and not force and plan(out, target, shape).action != "fresh":
        raise FileExistsError(f"--init-from: {out} already holds a run; pass --force to set it aside "
                              f"(kept as {out.name}.prev/) or --out elsewhere")
    if force:
        set_aside(out)
        return Plan("fresh")
    p = plan(out, target, shape)
    if p.action == "retrain":
        what = ", ".join(p.changed[:6]) + (" ..." if len(p.changed) > 6 else "")
        if mode == "train":
            raise ValueError(f"{out} was trained with another {what}: pass --force to retrain it "
                             f"(the old run is kept as {out.name}.prev/), or restore those keys")
        log.warning("%s: the recipe changed (%s): retraining; the old run is kept as %s.prev/", out, what, out.name)
        set_aside(out)
        return Plan("fresh", changed=p.changed)
    if resume and p.action == "fresh":
        raise FileNotFoundError(f"--resume: {out / 'state.pt'} not found")
    return p


# -- the two stages --------------------------------------------------------------------------
def train_vocoder(recipe: Recipe, steps: int | None = None, resume: bool = False, init_from: str | None = None,
                  device: str = "auto", progress: bool = True, out: str | Path | None = None,
                  mode: str = "train", force: bool = False, cpu_seconds: float | None = None) -> dict:
    """Train the recipe's vocoder on its prepared data into ``<work>/vocoder`` (or ``out``).

    The clips go through the same preprocessing as the features stage, and the vocoder's mel is
    the recipe's ``mel`` block, so the vocoder consumes exactly what stage one is trained on.
    """
    from vocoder.data import SegmentDataset
    from vocoder.train import VocoderTrainer

    out = Path(out) if out else recipe.work / "vocoder"
    target = recipe.vocoder.steps if steps is None else steps
    shape = vocoder_shape(recipe)
    if init_from:  # before anything is set aside: a file this recipe cannot start from is refused first
        init_from = str(_check_vocoder_init(recipe, init_from))
    p = _decide(out, target, shape, mode, force, resume, init_from)
    if p.action == "up-to-date" and not p.model_stale:
        return {"step": p.step, "out": str(out), "up_to_date": True}
    sr, pre = recipe.mel.sample_rate, recipe.data.preprocess

    def load(path: str, sample_rate: int):
        return load_clip(path, sample_rate, pre, recipe.mel.n_fft)

    vc = recipe.vocoder
    train_items, dev_items = load_split(recipe, "train"), load_split(recipe, "dev")
    train_set = SegmentDataset([it.path for it in train_items], sr, vc.segment_samples, load, seed=recipe.seed)
    dev_set = SegmentDataset([it.path for it in dev_items[: vc.eval_items]], sr, None, load) if dev_items else None
    for name, ds in (("train", train_set), ("dev", dev_set)):
        if ds is not None and ds.skipped:
            log.warning("vocoder data/%s: skipped %d unusable files (e.g. %s)", name, len(ds.skipped), ds.skipped[0][1])
    stats = None
    stats_path = recipe.work / "features" / "stats.npz"
    if stats_path.is_file():  # the normalisation stage one uses, so a checkpoint carries both
        from vocoder.mel import MelStats

        stats = MelStats.load(stats_path).to_dict()
    trainer = VocoderTrainer(vc, recipe.mel, train_set, dev_set, out, pick_device(device), seed=recipe.seed,
                             stats=stats, data=shape["data"], extra_meta={"recipe": recipe.name})
    _start(trainer, p, recipe, out, target, init_from)
    metrics = trainer.fit(target, progress=progress, cpu_seconds=cpu_seconds)
    return {"step": trainer.step, "out": str(out), "resumed": p.action == "resume",
            "cpu_seconds": trainer.cpu_seconds, **metrics}


def train_to_cpu_budget(out: Path, budget: float, train) -> float:
    """Call ``train(cpu_seconds)`` until the run in ``out`` has trained for ``budget`` CPU seconds
    and has a model file (the equal-budget ablations); return the CPU seconds it has used.

    The CPU time behind the last checkpoint is in its state.pt (the skeleton counts it), so a kill
    loses no accounting; ``out/budget.json`` is kept for runs from before that counter. ``train``
    gets the seconds left and returns its result dict with ``cpu_seconds`` (the run's total).
    """
    ledger = out / "budget.json"
    used = json.loads(ledger.read_text())["cpu_seconds"] if ledger.is_file() else 0.0
    if (out / "state.pt").is_file():
        used = max(used, float(load_training_state(out / "state.pt", report=False).get("cpu_seconds", 0.0)))
    while used < budget - 1 or not (out / "model.safetensors").is_file():
        res = train(max(budget - used, 1.0))
        used = max(used + 1, res["cpu_seconds"])  # +1: never loop without progress
        ledger.write_text(json.dumps({"cpu_seconds": used}))
    return used


def _start(trainer, p: Plan, recipe: Recipe, out: Path, target: int, init_from: str | None) -> None:
    """Either stage, before fit: weights from --init-from or the resumed state, the resolved recipe
    beside the run, and a model file rewritten when it is missing or older than a finished state
    (killed between the two files, or removed).
    """
    if init_from:
        _init_from(trainer, Path(init_from))
    elif p.action in ("resume", "up-to-date"):
        trainer.resume()
        log.info("%s: resumed at step %d from %s", trainer.progress_name, trainer.step, out / "state.pt")
    if trainer.rank == 0:
        save_resolved(recipe, out)
    if p.model_stale and trainer.step >= target:
        trainer.save()


def _init_from(trainer, path: Path) -> None:
    """Fine-tuning: weights from another run's state.pt (generator and critics), or, for the
    vocoder, the generator of a model file (``model.safetensors``, a run folder, a shipped
    ``pretrained/...`` path; the critics start fresh). Same architecture and mel, or one line.
    """
    path, model_file = _init_file(path)
    if model_file.suffix == ".safetensors":
        if trainer.progress_name in _USE_KINDS:
            _init_use_from_model(trainer, model_file)
        elif trainer.progress_name != "vocoder":
            raise ValueError(f"--init-from {path}: stage one fine-tunes from a state.pt (its critic is part of it)")
        else:
            _init_generator_from_model(trainer, model_file)
        return
    try:
        state = load_training_state(path, trainer.device)
        saved = state.get("extra", {}).get("shape", {})
        if saved and saved.get("model") != trainer.shape["model"]:
            raise ValueError(f"--init-from {path}: another architecture "
                             f"({', '.join(changed_keys(saved.get('model', {}), trainer.shape['model'])[:4])})")
        trainer.load_state_dict(state, weights_only=True)
    except CheckpointError as e:
        raise ValueError(f"--init-from {path}: {e}") from None
    except RuntimeError as e:  # load_state_dict's size mismatches
        raise ValueError(f"--init-from {path}: weights do not fit this model "
                         f"({' '.join(str(e).split())[:160]})") from None
    log.info("%s: initialised from %s", trainer.progress_name, path)


def _init_file(init_from: str | Path) -> tuple[Path, Path]:
    """(the path ``--init-from`` names, resolved as ``--vocoder`` resolves it; the file to read: a
    run folder's model.safetensors, else the path itself).
    """
    from specgan.checkpoints import find_vocoder

    path = find_vocoder(init_from)
    if not path.exists():
        raise FileNotFoundError(f"--init-from {init_from}: not found")
    return path, path / "model.safetensors" if path.is_dir() else path


def _check_vocoder_init(recipe: Recipe, init_from: str) -> Path:
    """The file ``--init-from`` names, resolved (shipped names too); a model file whose mel or
    generator family differs from the recipe's is refused here, naming what differs.
    """
    from vocoder.mel import MelConfig

    path, model_file = _init_file(init_from)
    if model_file.suffix == ".safetensors":
        try:
            meta, _ = read_header(model_file)
        except (CheckpointError, ModelFileError, OSError, ValueError) as e:
            raise ValueError(f"--init-from {model_file}: {e}") from None
        if meta.get("kind") != "vocoder":
            raise ValueError(f"--init-from {model_file}: a {meta.get('kind', 'unknown')} model file, not a vocoder")
        recipe.mel.check_compatible(MelConfig.from_dict(json.loads(meta["mel"])), "this recipe",
                                    f"--init-from {model_file}")
        name = meta.get("name")
        if name != recipe.vocoder.generator.get("name"):
            raise ValueError(f"--init-from {model_file}: a {name!r} vocoder, but vocoder.generator is "
                             f"{recipe.vocoder.generator.get('name')!r}; set vocoder.generator to the file's "
                             f"({_spec_text({'name': name, **json.loads(meta.get('kwargs', '{}'))})})")
    return path


def _init_generator_from_model(trainer, path: Path) -> None:
    """The vocoder's generator from a model file (e.g. a shipped float16 one, made float32 here);
    its mel and family were checked by :func:`_check_vocoder_init` before anything was set aside.
    """
    from specgan.checkpoints import load_vocoder

    try:
        g, _ = load_vocoder(None, str(path), None)
    except (CheckpointError, OSError, ValueError) as e:
        raise ValueError(f"--init-from {path}: {e}") from None
    try:
        trainer.G.load_state_dict({k: v.float() for k, v in g.state_dict().items()})
    except RuntimeError as e:
        raise ValueError(f"--init-from {path}: its weights do not fit vocoder.generator (the file is "
                         f"{_spec_text(dict(g.checkpoint_meta['generator']))}; "
                         f"{' '.join(str(e).split())[:120]})") from None
    if trainer.G_ema is not None:
        trainer.G_ema.load_state_dict(trainer.G.state_dict())
    log.info("vocoder: initialised from %s (step %s; critics start fresh)", path, g.checkpoint_meta.get("step"))


# a use's section → the kind its model files are saved as
_USE_KINDS = {"codec": "codec", "enhance": "enhancer"}


def _check_use_init(recipe: Recipe, section: str, init_from: str) -> Path:
    """``--init-from`` for the codec or enhance stage: a run folder, its state.pt, or a model file
    (a shipped ``pretrained/...`` one too) of this stage's kind, family and mel, or one line naming
    what differs.
    """
    from vocoder.mel import MelConfig

    path = Path(init_from)
    if not path.exists():
        raise FileNotFoundError(f"--init-from {init_from}: not found")
    if path.is_dir():
        path = path / "model.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"--init-from {init_from}: no model.safetensors in that folder")
    if path.suffix != ".safetensors":
        return path  # a state.pt: its architecture is checked against the trainer's when loaded
    try:
        meta, _ = read_header(path)
    except (CheckpointError, ModelFileError, OSError, ValueError) as e:
        raise ValueError(f"--init-from {path}: {e}") from None
    kind, spec = _USE_KINDS[section], getattr(recipe, section).model
    if meta.get("kind") != kind:
        raise ValueError(f"--init-from {path}: a model file of kind {meta.get('kind', 'unknown')!r}; the {section} "
                         f"stage fine-tunes from kind {kind!r}")
    recipe.mel.check_compatible(MelConfig.from_dict(json.loads(meta["mel"])), "this recipe", f"--init-from {path}")
    if meta.get("name") != spec.get("name"):
        raise ValueError(f"--init-from {path}: a {meta.get('name')!r} {kind}, but {section}.model is "
                         f"{spec.get('name')!r}")
    return path


def _init_use_from_model(trainer, path: Path) -> None:
    """A codec's or an enhancer's weights (buffers included: statistics, codebooks) from a model file,
    made float32; its critic starts fresh, and the run counts steps from 0.
    """
    from specgan.mel_gan import load_registered
    from specgan.stage_one.registry import CODECS, ENHANCERS

    kind = _USE_KINDS[trainer.progress_name]
    try:
        g, _, step = load_registered(path, CODECS if kind == "codec" else ENHANCERS, kind)
    except (CheckpointError, ModelFileError, OSError, ValueError) as e:
        raise ValueError(f"--init-from {path}: {e}") from None
    try:
        trainer.G.load_state_dict({k: v.float() for k, v in g.state_dict().items()})
    except RuntimeError as e:
        raise ValueError(f"--init-from {path}: its weights do not fit {trainer.progress_name}.model "
                         f"({' '.join(str(e).split())[:160]})") from None
    log.info("%s: initialised from %s (its step %s; the critic starts fresh)", trainer.progress_name, path, step)


def _spec_text(spec: dict) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in spec.items()) + "}"


def train_specgan(recipe: Recipe, steps: int | None = None, resume: bool = False, device: str = "auto",
                  progress: bool = True, init_from: str | None = None, mode: str = "train",
                  force: bool = False, out: str | Path | None = None, cpu_seconds: float | None = None,
                  meta: dict | None = None, items: list[str] | None = None, stats=None) -> dict:
    """Train stage one on the recipe's cached train features into ``<work>/specgan`` (or ``out``),
    for ``steps`` steps or until ``cpu_seconds`` of CPU time are used; ``meta`` adds keys to the
    model file's metadata.

    ``items`` trains on those train-split ids alone (the low-resource experiment's K clips per
    class) and ``stats`` normalises with other statistics than the split's (theirs): both are part
    of the run's fingerprint, so another subset retrains instead of resuming.
    """
    from specgan.features.cache import features_key, load_features, load_index, load_stats
    from specgan.stage_one.data import MelDataset
    from specgan.stage_one.labels import LabelSpace
    from specgan.stage_one.trainer import SpecGANTrainer

    cfg = recipe.specgan
    out = Path(out) if out else recipe.work / "specgan"
    target = cfg.steps if steps is None else steps
    index = load_index(recipe.work, "train")
    if index["key"] != features_key(recipe):
        raise ValueError(f"{recipe.work / 'features'} was made with another mel/preprocessing config: "
                         f"run `specgan features --recipe {recipe.path}` first")
    ids = list(index["items"]) if items is None else list(items)
    missing = [i for i in ids if i not in index["items"]]
    if missing:
        raise ValueError(f"{recipe.work / 'features' / 'train'}: {len(missing)} of the asked items are not in the "
                         f"train split (first: {missing[0]})")
    labels = [index["items"][i]["label"] for i in ids] if cfg.conditional else [None] * len(ids)
    keys = recipe.data.label_keys
    space = LabelSpace.from_labels(keys, labels) if cfg.conditional and labels and labels[0] is not None \
        else LabelSpace([], [])
    shape = specgan_shape(recipe, space)
    if items is not None:   # in the data key: the trainer stores it in state.pt's shape
        shape["data"]["items"] = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]
    if stats is not None:
        shape["data"]["stats"] = hashlib.sha256(np.concatenate([stats.mean, stats.std]).tobytes()).hexdigest()[:16]
    p = _decide(out, target, shape, mode, force, resume, init_from)
    if p.action == "up-to-date" and not p.model_stale:
        return {"step": p.step, "out": str(out), "up_to_date": True}
    stats = load_stats(recipe.work) if stats is None else stats
    mels = [load_features(recipe.work, "train", i, index, mmap=False) for i in ids]
    data = MelDataset(mels, labels, stats, cfg.frames, recipe.mel.log_floor, space=space)
    trainer = SpecGANTrainer(cfg, data, out, pick_device(device), seed=recipe.seed, mel=recipe.mel,
                             stats=stats.to_dict(), data_key=shape["data"],
                             meta={"recipe": recipe.name, "label": recipe.data.label, **(meta or {})})
    _start(trainer, p, recipe, out, target, init_from)
    last = trainer.fit(target, progress=progress, cpu_seconds=cpu_seconds)
    return {"step": trainer.step, "out": str(out), "resumed": p.action == "resume",
            "cpu_seconds": trainer.cpu_seconds, **last}


def enhance_shape(recipe: Recipe) -> dict[str, Any]:
    """What shapes the recipe's enhancer (a change means another model, not more steps)."""
    ec = recipe.enhance
    return {"model": dict(ec.model), "critic": dict(ec.critic), "mel": recipe.mel.to_dict(), "data": _data_key(recipe),
            "noises": {"train": list(ec.train_noises), "snrs": list(ec.train_snrs)}}


def _train_use(recipe: Recipe, section: str, shape: dict[str, Any], make_trainer, steps, resume, device, progress,
               mode, force, out, cpu_seconds, init_from: str | None = None) -> dict:
    """Train a use's model (``make_trainer(out, device)``) into ``<work>/<section>`` (or ``out``) under the
    run policy of every stage (resume, up-to-date, retrain a changed run); ``init_from`` fine-tunes
    from another run's state.pt or a model file of the same kind and architecture (critic fresh).
    """
    out = Path(out) if out else recipe.work / section
    target = getattr(recipe, section).steps if steps is None else steps
    if init_from:  # checked before anything is set aside
        init_from = str(_check_use_init(recipe, section, init_from))
    p = _decide(out, target, shape, mode, force, resume, init_from)
    if p.action == "up-to-date" and not p.model_stale:
        return {"step": p.step, "out": str(out), "up_to_date": True}
    trainer = make_trainer(out, pick_device(device))
    _start(trainer, p, recipe, out, target, init_from)
    last = trainer.fit(target, progress=progress, cpu_seconds=cpu_seconds)
    return {"step": trainer.step, "out": str(out), "resumed": p.action == "resume",
            "cpu_seconds": trainer.cpu_seconds, **last}


def train_enhancer(recipe: Recipe, steps: int | None = None, resume: bool = False, device: str = "auto",
                   progress: bool = True, mode: str = "train", force: bool = False, out: str | Path | None = None,
                   cpu_seconds: float | None = None, meta: dict | None = None, init_from: str | None = None) -> dict:
    """Train the enhancement GAN (:mod:`specgan.enhancement`) on the recipe's prepared clean speech into
    ``<work>/enhance`` (or ``out``): noisy/clean pairs made on the fly, the dev speakers' pairs for
    validation. The same run policy as the other stages (resume, up-to-date, retrain a changed run).
    """
    from specgan.enhancement.data import PairSource
    from specgan.enhancement.trainer import EnhanceTrainer
    from specgan.enhancement.sets import clean_clips, dev_pairs, mel_statistics

    ec, shape = recipe.enhance, enhance_shape(recipe)

    def make(out, dev):
        sr = recipe.mel.sample_rate
        train, _ = clean_clips(recipe, "train")
        source = PairSource(train, sr, int(round(ec.segment_seconds * sr)), ec.train_noises, ec.train_snrs)
        return EnhanceTrainer(ec, recipe.mel, source, dev_pairs(recipe, pool=train), mel_statistics(recipe.mel, train),
                              out, dev, seed=recipe.seed, meta={"recipe": recipe.name, **(meta or {})}, shape=shape)

    return _train_use(recipe, "enhance", shape, make, steps, resume, device, progress, mode, force, out, cpu_seconds,
                      init_from)


def codec_shape(recipe: Recipe) -> dict[str, Any]:
    """What shapes the recipe's codec (a change means another model, not more steps)."""
    return {"model": dict(recipe.codec.model), "critic": dict(recipe.codec.critic), "mel": recipe.mel.to_dict(),
            "data": _data_key(recipe)}


def train_codec(recipe: Recipe, steps: int | None = None, resume: bool = False, device: str = "auto",
                progress: bool = True, mode: str = "train", force: bool = False, out: str | Path | None = None,
                cpu_seconds: float | None = None, meta: dict | None = None, init_from: str | None = None) -> dict:
    """Train the mel codec (:mod:`specgan.codec`) on the recipe's prepared clean speech into
    ``<work>/codec`` (or ``out``); the dev split's clips for validation. The same run policy as the
    other stages (resume, up-to-date, retrain a changed run).
    """
    from specgan.codec.trainer import CodecTrainer
    from specgan.enhancement.sets import clean_clips, mel_statistics

    cc, shape = recipe.codec, codec_shape(recipe)

    def make(out, dev):
        train, _ = clean_clips(recipe, "train")
        return CodecTrainer(cc, recipe.mel, train, clean_clips(recipe, "dev", cc.eval_items)[0],
                            mel_statistics(recipe.mel, train), out, dev, seed=recipe.seed,
                            meta={"recipe": recipe.name, **(meta or {})}, shape=shape)

    return _train_use(recipe, "codec", shape, make, steps, resume, device, progress, mode, force, out, cpu_seconds,
                      init_from)
