"""The one model locator: where the project's model files are, and loading them as a pair.

- :func:`stage_one_path` — the recipe's trained stage one (``<work>/specgan/model.safetensors``),
  else the shipped one its ``pretrained.specgan`` names.
- :func:`vocoder_choice` — what ``--vocoder`` / ``synth.vocoder`` resolves to: a model file
  (``auto``: the recipe's trained vocoder, else its ``pretrained.vocoder``), or a registry name
  without weights (``griffinlim``); :func:`load_vocoder` loads it.
- :func:`load_pair` — both, with the mel check between them inside; what synth, evaluate, the
  report and :func:`specgan.generate` call.
- :func:`find_model`, :func:`find_vocoder`, :func:`shipped` — paths as users type them
  (``pretrained/speech/vocoder.safetensors``, ``speech``) from any folder and after ``pip install``.
- :func:`half_copy` — a float16 copy for shipping, written by the one model-file writer.

Every file goes through the one checkpoint contract of :mod:`vocoder.checkpoint`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from specgan.stage_one.model import StageOne
from specgan.stage_one.model import load as _load_stage_one
from vocoder.checkpoint import ModelFileError

__all__ = ["ModelFileError", "Pair", "StageOne", "codec_path", "enhancer_path", "find_model", "find_vocoder", "half_copy", "load_pair",
           "load_stage_one", "load_vocoder", "shipped", "shipped_vocoders", "stage_one_path", "vocoder_choice"]

log = logging.getLogger(__name__)


def _bundled() -> Path:
    from specgan.recipe import bundled_dir

    return bundled_dir()


def find_model(path: str | Path) -> Path:
    """``path`` itself if it exists; else, for ``pretrained/...`` (the README's paths), the shipped
    model of that path, so ``--vocoder pretrained/speech/vocoder.safetensors`` works from any folder
    and after ``pip install``. Otherwise ``path`` unchanged (the caller says it is not found).
    """
    path = Path(path).expanduser()
    if path.exists() or path.is_symlink() or not path.parts or path.parts[0] != "pretrained":
        return path
    shipped = _bundled() / path
    if shipped.exists():
        log.debug("model %s: not in %s; using the shipped %s", path, Path.cwd(), shipped)
        return shipped
    return path


def _shipped_names(stage: str) -> list[str]:
    root = _bundled() / "pretrained"
    return sorted(p.parent.name for p in root.glob(f"*/{stage}.safetensors")) if root.is_dir() else []


def shipped_vocoders() -> list[str]:
    """Names of the shipped vocoders (``pretrained/<name>/vocoder.safetensors``)."""
    return _shipped_names("vocoder")


def find_vocoder(name: str | Path) -> Path:
    """A vocoder model file: ``name`` as a path (:func:`find_model`), or a shipped vocoder's name
    (``speech``, ``music``: ``pretrained/<name>/vocoder.safetensors``) when no such path exists.
    """
    path = find_model(name)
    if not path.exists() and len(path.parts) == 1 and str(name) in shipped_vocoders():
        return _bundled() / "pretrained" / str(name) / "vocoder.safetensors"
    return path


def shipped(name: str, stage: str = "vocoder") -> Path:
    """The path of a shipped model: ``shipped("speech")`` is ``pretrained/speech/vocoder.safetensors``
    (``stage="specgan"``: its stage-one model); an unknown name lists the shipped ones.
    """
    if stage not in ("vocoder", "specgan"):
        raise ValueError(f"shipped: stage must be 'vocoder' or 'specgan', got {stage!r}")
    path = _bundled() / "pretrained" / str(name) / f"{stage}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"shipped({name!r}): no shipped {stage} of that name; shipped: "
                                f"{', '.join(_shipped_names(stage))}")
    return path


def _own_or_shipped(recipe, folder: str, key: str, train_hint: str) -> Path:
    """``<work>/<folder>/model.safetensors`` if trained, else the file ``pretrained.<key>`` names."""
    own = recipe.work / folder / "model.safetensors"
    if own.is_file():
        return own
    shipped_path = getattr(recipe.pretrained, key)
    if shipped_path:
        path = recipe.resolve(shipped_path)
        if path.is_file():
            return path
        raise FileNotFoundError(f"pretrained.{key}: {path} not found (and {own} not trained)")
    raise FileNotFoundError(f"{train_hint.split(':')[0]}: {own} not found and the recipe sets no pretrained.{key}; "
                            f"train it with `specgan train --recipe {recipe.path} --stage {train_hint.split(':')[1]}`")


def stage_one_path(recipe) -> Path:
    """``<work>/specgan/model.safetensors`` if trained, else ``pretrained.specgan``."""
    return _own_or_shipped(recipe, "specgan", "specgan", "no stage-one model:specgan")


def enhancer_path(recipe) -> Path:
    """``<work>/enhance/model.safetensors`` if trained, else ``pretrained.enhance``."""
    return _own_or_shipped(recipe, "enhance", "enhance", "no enhancer:enhance")


def codec_path(recipe) -> Path:
    """``<work>/codec/model.safetensors`` if trained, else ``pretrained.codec``."""
    return _own_or_shipped(recipe, "codec", "codec", "no codec:codec")


def vocoder_choice(recipe, which: str) -> Path | str:
    """What a vocoder name resolves to, without loading: a model file, or a registry name.

    ``auto`` needs ``recipe``: its trained vocoder, else the shipped one its ``pretrained.vocoder``
    names, else ``"griffinlim"`` (a shipped recipe names a vocoder only where it beats
    Griffin-Lim). A path, run folder or shipped name gives its ``model.safetensors``.
    """
    if which == "auto":
        if recipe is None:
            raise ValueError("--vocoder auto needs --recipe")
        own = recipe.work / "vocoder" / "model.safetensors"
        if own.is_file():
            return own
        if recipe.pretrained.vocoder:
            path = recipe.resolve(recipe.pretrained.vocoder)
            if not path.is_file():
                raise FileNotFoundError(f"pretrained.vocoder: {path} not found (and {own} not trained)")
            return path
        log.info("vocoder auto: %s not trained and the recipe ships no vocoder: Griffin-Lim", own)
        return "griffinlim"
    path = find_vocoder(which)
    if path.is_dir():
        path = path / "model.safetensors"
    if path.suffix == ".safetensors" or path.exists():
        return path
    from vocoder.registry import GENERATORS

    if which in GENERATORS:
        return which
    raise FileNotFoundError(f"--vocoder {which!r}: no such file, and not one of: auto, griffinlim, "
                            f"{', '.join(shipped_vocoders())} (the shipped ones) or a model.safetensors path")


def parse_kwargs(pairs: list[str], flag: str = "--vocoder-kwarg") -> dict:
    """``["KEY=VALUE", ...]`` → ``{KEY: VALUE}`` with each value read as recipe YAML is (``8`` → 8,
    ``1e-3`` → 0.001, ``frames`` → "frames"); ValueError naming ``flag`` and the bad item.
    """
    from specgan.recipe import _yaml

    out = {}
    for kv in pairs:
        key, sep, value = kv.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} {kv!r}: expected KEY=VALUE")
        out[key.strip()] = _yaml(value, f"{flag} {kv!r}")
    return out


def load_vocoder(recipe, which: str, mel_cfg, device="cpu", kwargs: dict | None = None):
    """A vocoder ready for inference for ``which`` (:func:`vocoder_choice`); returns
    (generator, description: its file, or its registry name). ``kwargs``: inference settings
    that override a trained file's (:func:`vocoder.load`); ignored by Griffin-Lim.
    """
    import vocoder
    from vocoder.inference import for_inference
    from vocoder.registry import build_generator

    choice = vocoder_choice(recipe, which)
    if isinstance(choice, Path):
        return vocoder.load(choice, device, kwargs=kwargs), str(choice)
    if mel_cfg is None:
        raise ValueError(f"--vocoder {which}: give --recipe so its mel settings are known")
    g = build_generator({"name": choice}, mel_cfg)
    if any(True for _ in g.parameters()):
        raise ValueError(f"--vocoder {choice}: a trainable vocoder needs its trained weights; "
                         f"give the path of its model.safetensors")
    return for_inference(g.to(device)), choice


def load_stage_one(path: str | Path, device="cpu", recipe=None) -> StageOne:
    """A stage-one model file (:func:`specgan.stage_one.load`); with ``recipe``, refused with one
    line naming the fields when its mel is not the recipe's.
    """
    model = _load_stage_one(path, device)
    if recipe is not None:
        model.mel_cfg.check_compatible(recipe.mel, f"stage-one model {path}", f"recipe {recipe.path}")
    return model


@dataclass
class Pair:
    """Stage one and a vocoder that reads its mels, loaded together."""

    stage_one: StageOne
    vocoder: torch.nn.Module
    stage_one_path: Path
    vocoder_desc: str


def load_pair(recipe, vocoder_name: str = "auto", device="cpu", recipe_mel: bool = False) -> Pair:
    """The recipe's stage one (:func:`stage_one_path`), drawing with ``synth.truncation`` and
    ``synth.smoothing``, and the
    vocoder ``vocoder_name`` names (:func:`load_vocoder`), refused with one line naming the fields
    when their mels differ.

    ``recipe_mel`` (evaluation, which reads the recipe's features): both models must also be in
    the recipe's mel; stage one is checked first, then the vocoder, each error naming the recipe.
    """
    path = stage_one_path(recipe)
    model = load_stage_one(path, device, recipe=recipe if recipe_mel else None)
    model.draw_as(recipe.synth)  # ψ and smoothing: what synth draws with
    voc, desc = load_vocoder(recipe, vocoder_name, recipe.mel if recipe_mel else model.mel_cfg, device)
    if recipe_mel:
        voc.mel_cfg.check_compatible(recipe.mel, f"vocoder {desc}", f"recipe {recipe.path}")
    voc.mel_cfg.check_compatible(model.mel_cfg, f"vocoder {desc}", f"stage-one model {path}")
    return Pair(model, voc, path, desc)


def half_copy(src: str | Path, dst: str | Path, kwargs: dict | None = None) -> Path:
    """Write ``src`` (a model file) to ``dst`` with floating tensors in float16, through the one
    model-file writer (:func:`vocoder.checkpoint.save_model`; a version-1 file is upgraded to the
    current contract's layout on the way: the one-time conversion of the shipped models). Refuses
    a weight that float16 cannot hold (|w| > 65504), naming it.

    ``kwargs`` overrides constructor arguments that change no tensor (an inference-time switch such
    as the ``phase`` vocoder's ``pghi_mode``); the copy must still load (:func:`vocoder.load` checks
    every shape), else nothing is written.
    """
    import os

    from safetensors.torch import load_file

    from vocoder.checkpoint import ModelFile, load, read_header, save_model

    src, dst = Path(src), Path(dst)
    meta, _ = read_header(src)
    info = ModelFile(src, meta)

    def write(path: Path) -> Path:
        try:
            return save_model(path, load_file(str(src)), kind=info.kind, name=info.name,
                              kwargs={**info.kwargs, **(kwargs or {})}, step=info.step, mel=info.mel,
                              stats=info.stats, shape=info.shape, extra=info.extra, half=True, version=info.version)
        except ValueError as e:  # a weight float16 cannot hold
            raise ValueError(f"{src}: {e}") from None

    if not kwargs:
        return write(dst)
    trial = dst.with_name(f".{dst.name}.check-{os.getpid()}")
    try:
        write(trial)
        try:  # the new arguments must still build exactly these tensors
            (load if info.kind == "vocoder" else load_stage_one)(trial)
        except ModelFileError as e:
            reason = str(e).split(": ", 1)[-1]
            raise ModelFileError(f"{src}: {kwargs} would change the model, not only how it runs ({reason})") from None
        os.replace(trial, dst)
    finally:
        trial.unlink(missing_ok=True)
    return dst
