"""Copy a recipe's trained models into pretrained/<name>/ as float16 safetensors, and print the
numbers a model card needs (steps, training time from history.jsonl, eval/metrics.json).

    python tools/ship_pretrained.py --recipe recipes/speech.yaml --dest pretrained/speech
    python tools/ship_pretrained.py --recipe recipes/voices.yaml --dest pretrained/speech --only vocoder \
        --vocoder exp/voices/ablation/pghi-refine/model.safetensors --vocoder-kwarg pghi_mode=frames
    python tools/ship_pretrained.py --recipe recipes/enhance.yaml --dest pretrained/enhance --only enhance
    python tools/ship_pretrained.py --recipe recipes/codec.yaml --dest pretrained/codec --only codec

Run ``specgan run --recipe ... --stage evaluate`` first so the card's metrics exist. The model card
itself (README.md beside the weights) is written by a person, from these numbers and by listening.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--dest", required=True)
    ap.add_argument("--vocoder", default=None, help="vocoder model.safetensors (default <work>/vocoder)")
    ap.add_argument("--only", choices=("specgan", "vocoder", "enhance", "codec"), default=None,
                    help="ship one model (default: stage one and the vocoder; enhance and codec recipes: --only enhance / codec)")
    ap.add_argument("--vocoder-kwarg", action="append", default=[], metavar="KEY=VALUE",
                    help="an inference-time constructor argument for the shipped vocoder (YAML value), e.g. "
                         "pghi_mode=frames; refused if it would change the tensors")
    args = ap.parse_args()

    from specgan.checkpoints import half_copy, parse_kwargs
    from specgan.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    dest = Path(args.dest)
    voc = Path(args.vocoder) if args.vocoder else recipe.work / "vocoder" / "model.safetensors"
    try:
        voc_kwargs = parse_kwargs(args.vocoder_kwarg)
    except ValueError as e:
        ap.error(str(e))
    summary = {}
    models = {"specgan": ("specgan", recipe.work / "specgan" / "model.safetensors"), "vocoder": ("vocoder", voc),
              "enhance": ("enhancer", recipe.work / "enhance" / "model.safetensors"),
              "codec": ("codec", recipe.work / "codec" / "model.safetensors")}
    for name in [args.only] if args.only else ["specgan", "vocoder"]:
        file, src = models[name]
        out = half_copy(src, dest / f"{file}.safetensors", kwargs=voc_kwargs if name == "vocoder" else None)
        hist = src.parent / "history.jsonl"
        rows = [json.loads(line) for line in hist.read_text().splitlines() if line.strip()] if hist.is_file() else []
        secs = [r.get("time/sec_per_it", r.get("time/sec_per_step")) for r in rows]
        summary[name] = {"file": str(out), "bytes": out.stat().st_size, "source": str(src),
                         "last_logged": rows[-1] if rows else None,
                         "logged_sec_per_step_mean": (sum(s for s in secs if s) / max(1, sum(1 for s in secs if s)))
                         if any(secs) else None}
        state = src.parent / "state.pt"
        if state.is_file():  # the CPU time the run trained for, across resumes (the skeleton counts it)
            import torch

            summary[name]["cpu_hours"] = float(torch.load(state, weights_only=True).get("cpu_seconds", 0.0)) / 3600
    metrics = recipe.work / "eval" / "metrics.json"
    if metrics.is_file():
        summary["metrics"] = json.loads(metrics.read_text())
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
