#!/usr/bin/env python
"""How intelligible is each TTS engine / voice of ``builtin:digits``? Held-out-speaker accuracy
of the project's evaluation classifier (:func:`specgan.classifier.train_classifier`).

Prepares the recipe's data and features (if not done yet), then runs a speaker-grouped k-fold:
every speaker (an espeak-ng variant, or the recorded person behind a flite/festival voice) is in
exactly one fold; each fold is classified by a classifier trained on the other folds (one of them
held back for early stopping), so every clip gets a prediction from a model that never heard its
speaker. Folds are stratified by engine (each fold gets some of every engine). Reports word
accuracy per engine, per voice (engine:voice), per espeak-ng accent and per pitch setting, and
writes them as JSON and a Markdown table.

``--train-engines flite`` trains on one engine's speakers only (and still tests every engine):
how well does a classifier of one engine's digits hear the others?

    OMP_NUM_THREADS=1 python tools/digit_intelligibility.py --recipe recipes/speech-multi.yaml \
        --set work_dir=exp/digits-probe --folds 4 --epochs 8 --out docs/digit_intelligibility.json
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from specgan.classifier import predict, train_classifier  # noqa: E402
from specgan.data.prepare import load_split, prepare  # noqa: E402
from specgan.features.cache import load_features, load_index, load_stats, run_features  # noqa: E402
from specgan.stage_one.data import MelDataset  # noqa: E402
from specgan.recipe import load_recipe  # noqa: E402

log = logging.getLogger("digit_intelligibility")


def _items(recipe):
    """Every clip of every split: (id, split, labels dict, word, group, mel)."""
    out = []
    for split in ("train", "dev", "test"):
        index = load_index(recipe.work, split)
        for it in load_split(recipe, split):
            if it.id not in index["items"]:
                continue
            mel = load_features(recipe.work, split, it.id, index)
            labels = dict(it.labels)
            labels.setdefault("engine", "espeak-ng")
            out.append({"id": it.id, "labels": labels, "word": it.labels["word"], "group": it.group, "mel": mel})
    return out


def _folds(items, k: int, seed: int) -> dict[str, int]:
    """Speaker → fold, stratified by engine (a speaker of two engines is placed once)."""
    by_engine = defaultdict(set)
    for it in items:
        by_engine[it["labels"]["engine"]].add(it["group"])
    where, rng, nxt = {}, random.Random(seed), 0
    for engine in sorted(by_engine, key=lambda e: (len(by_engine[e]), e)):
        free = sorted(by_engine[engine] - set(where))
        rng.shuffle(free)
        for g in free:
            where[g] = nxt % k
            nxt += 1
    return where


def _table(rows: dict[str, list[bool]]) -> list[dict]:
    return [{"key": key, "n": len(v), "accuracy": round(float(np.mean(v)), 3)} for key, v in sorted(rows.items())]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="recipes/speech-multi.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="recipe override (repeatable)")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--width", type=int, default=32, help="classifier width (the project's default: 32)")
    ap.add_argument("--train-engines", nargs="*", default=None, help="train only on these engines' speakers")
    ap.add_argument("--out", default=None, help="JSON report path (default <work>/intelligibility.json)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe, ["features.workers=1", *args.set])
    if recipe.data.label != "word":
        raise SystemExit("the recipe must condition on the word (data.label: word)")
    t0 = time.time()
    prepare(recipe)
    run_features(recipe)
    t_data = time.time() - t0
    stats = load_stats(recipe.work)
    frames = recipe.specgan.frames
    items = _items(recipe)
    vocab = sorted({it["word"] for it in items})
    fold_of = _folds(items, args.folds, recipe.seed)
    correct: dict[str, bool] = {}
    fold_metrics = []
    for f in range(args.folds):
        dev_f = (f + 1) % args.folds
        test = [it for it in items if fold_of[it["group"]] == f]
        dev = [it for it in items if fold_of[it["group"]] == dev_f]
        train = [it for it in items if fold_of[it["group"]] not in (f, dev_f)
                 and (args.train_engines is None or it["labels"]["engine"] in args.train_engines)]
        sets = [MelDataset([it["mel"] for it in s], [it["word"] for it in s], stats, frames, recipe.mel.log_floor,
                           vocab=vocab) for s in (train, dev, test)]
        m = train_classifier(*sets, recipe.work / "intelligibility" / f"fold{f}", epochs=args.epochs,
                             width=args.width, seed=recipe.seed)
        from specgan.classifier import load_classifier

        model, _, _ = load_classifier(recipe.work / "intelligibility" / f"fold{f}" / "model.safetensors")
        probs, _ = predict(model, sets[2].x)
        for it, p in zip(test, probs.argmax(1), strict=True):
            correct[it["id"]] = vocab[p] == it["word"]
        fold_metrics.append({"fold": f, "train": len(train), "dev": len(dev), "test": len(test),
                             "test_accuracy": round(m["test_accuracy"], 3), "epochs": m["epochs"]})
        log.info("fold %d: train %d, test %d, accuracy %.3f", f, len(train), len(test), m["test_accuracy"])
    per = defaultdict(lambda: defaultdict(list))
    for it in items:
        ok, lab = correct[it["id"]], it["labels"]
        e = lab["engine"]
        per["engine"][e].append(ok)
        per["voice"][f"{e}:{lab['voice']}"].append(ok)
        per["speaker"][it["group"]].append(ok)
        if e == "espeak-ng":
            per["espeak_accent"][lab["accent"]].append(ok)
            per["espeak_pitch"][f"-p {10 * (int(lab['pitch']) // 10):02d}-{10 * (int(lab['pitch']) // 10) + 9:02d}"].append(ok)
        else:
            c = int(lab["pitch"])
            per["tts_cents"][f"{'+' if c >= 0 else '-'}{100 * (abs(c) // 100):03d}..{100 * (abs(c) // 100) + 99:03d}"].append(ok)
        per["word"][it["word"]].append(ok)
    report = {"recipe": args.recipe, "overrides": args.set, "folds": fold_metrics, "train_engines": args.train_engines,
              "epochs": args.epochs, "width": args.width, "items": len(items),
              "overall": round(float(np.mean(list(correct.values()))), 3),
              "seconds": {"data": round(t_data, 1), "total": round(time.time() - t0, 1)},
              **{k: _table(v) for k, v in per.items()}}
    out = Path(args.out) if args.out else recipe.work / "intelligibility.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"overall held-out-speaker word accuracy {report['overall']:.3f} on {len(items)} clips "
          f"({args.folds} folds, {report['seconds']['total']:.0f} s)")
    for section in ("engine", "voice", "espeak_accent", "espeak_pitch", "tts_cents"):
        print(f"\n| {section} | clips | accuracy |\n|---|---|---|")
        for row in report[section]:
            print(f"| {row['key']} | {row['n']} | {row['accuracy']:.2f} |")
    print(f"\nreport: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
