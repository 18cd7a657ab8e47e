"""``specgan run``: the recipe's stages in order, each skipped when its outputs are up to date.

    0 prepare   1 features   2 specgan (train stage one)   3 vocoder (train stage two)
    4 synth     5 evaluate

A training stage whose ``state.pt`` is behind the recipe's ``steps`` resumes from it; one that
reached them is skipped. ``--force`` redoes the selected stages: prepare and features rebuild in
place, a training stage starts over after moving the previous run to ``<name>.prev/`` (one
generation kept, so a mistaken --force costs nothing), synth and evaluate rewrite their outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from specgan.recipe import Recipe
from specgan.workdir import read_marker

__all__ = ["STAGES", "parse_stage", "run"]

log = logging.getLogger(__name__)

STAGES = ["prepare", "features", "specgan", "vocoder", "synth", "evaluate"]
ALIASES = {"train-specgan": "specgan", "train_specgan": "specgan", "train-vocoder": "vocoder",
           "train_vocoder": "vocoder", "data": "prepare", "eval": "evaluate"}


def parse_stage(text: str | int) -> int:
    """``3``, ``vocoder`` or ``train-vocoder`` → 3."""
    s = str(text).strip().lower()
    if s.isdigit() and int(s) < len(STAGES):
        return int(s)
    s = ALIASES.get(s, s)
    if s in STAGES:
        return STAGES.index(s)
    raise ValueError(f"unknown stage {text!r}: use 0-{len(STAGES) - 1} or one of {', '.join(STAGES)}")


def _file_key(*paths: Path) -> list:
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] if p.is_file() else [str(p), None] for p in paths]


def _key(blob) -> str:
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _train(recipe: Recipe, stage: str, force: bool, device: str, progress: bool) -> str:
    from specgan.training import train_specgan, train_vocoder

    train = train_specgan if stage == "specgan" else train_vocoder
    result = train(recipe, device=device, progress=progress, mode="run", force=force)
    out = result["out"]
    if result.get("up_to_date"):
        target = recipe.specgan.steps if stage == "specgan" else recipe.vocoder.steps
        return f"up to date ({out}, step {result['step']} of {target})"
    return f"{'resumed and trained' if result.get('resumed') else 'trained'} to step {result['step']} → {out}"


def _synth(recipe: Recipe, force: bool, device: str, progress: bool) -> str:
    from specgan.checkpoints import stage_one_path, vocoder_choice
    from specgan.synth import synth

    out = recipe.work / "synth"
    g = stage_one_path(recipe)
    voc = Path(vocoder_choice(recipe, recipe.synth.vocoder))
    key = _key({"synth": recipe.synth, "mel": recipe.mel, "files": _file_key(g, voc),
                "pretrained": recipe.pretrained})
    if not force and read_marker(out / "synth.json").get("key") == key:
        return f"up to date ({out})"
    result = synth(recipe, out=out, device=device, progress=progress, extra={"key": key})
    return f"{len(result.wavs)} clips → {out} (stage one {result.stage_one}, vocoder {result.vocoder})"


def _evaluate(recipe: Recipe, force: bool, device: str, progress: bool) -> str:
    from specgan.checkpoints import stage_one_path, vocoder_choice
    from specgan.evaluate import evaluate

    path = recipe.work / "eval" / "metrics.json"
    g = stage_one_path(recipe)
    voc = Path(vocoder_choice(recipe, "auto"))
    key = _key({"evaluate": recipe.evaluate, "mel": recipe.mel, "files": _file_key(g, voc),
                "pretrained": recipe.pretrained, "data": _file_key(recipe.work / "data" / "prepare.json")})
    if not force and read_marker(path).get("key") == key and (path.parent / "report.html").is_file():
        return f"up to date ({path})"
    from specgan.evaluate import summary_lines
    from specgan.report import write_report

    out = evaluate(recipe, extra={"key": key})
    report = write_report(recipe)
    return f"{path}, {report}\n" + summary_lines(out)


def _prepare(recipe: Recipe, force: bool, device: str, progress: bool) -> str:
    from specgan.data.prepare import prepare

    report = prepare(recipe, force=force)
    if report.get("skipped_stage"):
        return f"up to date ({recipe.work / 'data'})"
    return ", ".join(f"{k} {v}" for k, v in report["counts"].items()) + f"; {report['skipped']}"


def _features(recipe: Recipe, force: bool, device: str, progress: bool) -> str:
    from specgan.features.cache import run_features

    report = run_features(recipe, force=force)
    splits = {k: v for k, v in report.items() if k != "stats"}
    if not any(r["extracted"] for r in splits.values()) and not report["stats"]["recomputed"]:
        return f"up to date ({recipe.work / 'features'}, {sum(r['items'] for r in splits.values())} items)"
    return "; ".join(f"{s} {r['items']} ({r['extracted']} extracted)" for s, r in splits.items())


RUNNERS: dict[str, Callable[..., str]] = {
    "prepare": _prepare,
    "features": _features,
    "specgan": lambda r, f, d, p: _train(r, "specgan", f, d, p),
    "vocoder": lambda r, f, d, p: _train(r, "vocoder", f, d, p),
    "synth": _synth,
    "evaluate": _evaluate,
}


def _use_train(section: str):
    """Stage 2 of a use's recipe (``enhance`` or ``codec``): train its model through the run policy."""

    def runner(recipe: Recipe, force: bool, device: str, progress: bool) -> str:
        from specgan import training

        train = {"enhance": training.train_enhancer, "codec": training.train_codec}[section]
        result = train(recipe, device=device, progress=progress, mode="run", force=force)
        if result.get("up_to_date"):
            return f"up to date ({result['out']}, step {result['step']} of {getattr(recipe, section).steps})"
        return f"{'resumed and trained' if result.get('resumed') else 'trained'} to step {result['step']} → {result['out']}"

    return runner


def _use_evaluate(section: str):
    """Stage 5 of a use's recipe: its evaluation, skipped while the model, vocoder, data and section
    are those of ``eval/<section>.json``.
    """

    def runner(recipe: Recipe, force: bool, device: str, progress: bool) -> str:
        from specgan import checkpoints
        from specgan.checkpoints import vocoder_choice

        if section == "enhance":
            from specgan.enhancement.evaluate import evaluate_enhancement as evaluate, summary_table
        else:
            from specgan.codec.evaluate import evaluate_codec as evaluate, summary_table
        model = {"enhance": checkpoints.enhancer_path, "codec": checkpoints.codec_path}[section](recipe)
        path = recipe.work / "eval" / f"{section}.json"
        key = _key({section: getattr(recipe, section), "mel": recipe.mel, "pretrained": recipe.pretrained,
                    "files": _file_key(model, Path(vocoder_choice(recipe, "auto"))),
                    "data": _file_key(recipe.work / "data" / "prepare.json")})
        if not force and read_marker(path).get("key") == key:
            return f"up to date ({path})"
        out = evaluate(recipe, report=lambda _: None)
        out["key"] = key
        path.write_text(json.dumps(out, indent=1))
        return f"{path}\n" + summary_table(out)

    return runner


# an enhance recipe's stages: the same numbers, what each does for the enhancer
ENHANCE_RUNNERS: dict[str, Callable[..., str]] = {
    "prepare": _prepare,
    "features": lambda r, f, d, p: "not used (noisy/clean pairs are mixed on the fly from the prepared audio)",
    "specgan": _use_train("enhance"),
    "vocoder": lambda r, f, d, p: "not trained here: the enhancer renders through the recipe's vocoder "
                                  f"({r.pretrained.vocoder or 'synth.vocoder'})",
    "synth": lambda r, f, d, p: "not a generation recipe: `specgan enhance --recipe R FILES` enhances your audio",
    "evaluate": _use_evaluate("enhance"),
}


# a codec recipe's stages
CODEC_RUNNERS: dict[str, Callable[..., str]] = {
    "prepare": _prepare,
    "features": lambda r, f, d, p: "not used (the codec computes mels of random crops of the prepared audio)",
    "specgan": _use_train("codec"),
    "vocoder": lambda r, f, d, p: "not trained here: the codec decodes through the recipe's vocoder "
                                  f"({r.pretrained.vocoder or 'synth.vocoder'})",
    "synth": lambda r, f, d, p: "not a generation recipe: `specgan encode` / `specgan decode` code your audio",
    "evaluate": _use_evaluate("codec"),
}


def _kshot(step: str):
    """Stages 2, 4 and 5 of an augment recipe (:mod:`specgan.kshot`)."""

    def runner(recipe: Recipe, force: bool, device: str, progress: bool) -> str:
        from specgan import kshot

        if step == "specgan":
            return "\n".join(kshot.train_cell_gans(recipe, device=device, progress=progress, force=force,
                                                    report=lambda _: None))
        if step == "synth":
            return "\n".join(kshot.make_sets(recipe, device="cpu", force=force, report=lambda _: None))
        from specgan.report import write_report

        out = kshot.evaluate_kshot(recipe, force=force, report=print)
        return f"{out['path']} (.md, .png beside it), {write_report(recipe)}\n" + kshot.summary_table(out)

    return runner


# an augment recipe's stages: the low-resource experiment
AUGMENT_RUNNERS: dict[str, Callable[..., str]] = {
    "prepare": _prepare,
    "features": _features,
    "specgan": _kshot("specgan"),
    "vocoder": lambda r, f, d, p: "not used: the recogniser reads log-mels, and generated mels reach it as drawn",
    "synth": _kshot("synth"),
    "evaluate": _kshot("evaluate"),
}


def run(recipe: Recipe, stage: int = 0, stop_stage: int = len(STAGES) - 1, force: bool = False,
        device: str = "auto", progress: bool = True, report: Callable[[str], None] = print) -> dict[str, str]:
    """Run stages ``stage..stop_stage``; returns {stage name: what happened}."""
    if stop_stage < stage:
        raise ValueError(f"--stop-stage {stop_stage} ({STAGES[stop_stage]}) is before --stage {stage} "
                         f"({STAGES[stage]})")
    done = {}
    for i in range(stage, stop_stage + 1):
        name = STAGES[i]
        report(f"== stage {i}: {name}")
        runners = {"enhance": ENHANCE_RUNNERS, "codec": CODEC_RUNNERS, "augment": AUGMENT_RUNNERS}.get(recipe.task, RUNNERS)
        msg = runners[name](recipe, force, device, progress)
        done[name] = msg
        report(f"   {name}: {msg}")
    return done

