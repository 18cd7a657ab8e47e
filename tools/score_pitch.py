"""Score the pitch of a stage-one model's generated notes by every pitch tracker the recipe names
(``evaluate.pitch_trackers``), without the rest of ``specgan evaluate``: the same seeded draw of
held-out labels, the recipe's default synth vocoder (or ``--vocoder``), the same JSON block as
``metrics.json``'s ``generation.pitch``.

    python tools/score_pitch.py --recipe recipes/music.yaml --model exp/music/ablation-specgan/x/model.safetensors
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/music.yaml")
    ap.add_argument("--model", default=None, help="stage-one safetensors (default: the recipe's)")
    ap.add_argument("--vocoder", default="auto")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", default=[], help="recipe override")
    ap.add_argument("--json", default=None, help="write the result here")
    args = ap.parse_args()

    import specgan.evaluate as E
    from specgan.recipe import load_recipe
    from specgan.checkpoints import load_stage_one, load_vocoder, stage_one_path

    recipe = load_recipe(args.recipe, args.set)
    if recipe.data.label != "pitch":
        print(f"score_pitch: recipe {args.recipe} is not conditioned on pitch (data.label: {recipe.data.label})",
              file=sys.stderr)
        return 2
    path = Path(args.model) if args.model else stage_one_path(recipe)
    model = load_stage_one(path, recipe=recipe)
    voc, desc = load_vocoder(recipe, args.vocoder, recipe.mel)
    real, labels, fake, view = E.generation_draw(recipe, model)  # the draw generation_metrics makes
    out = E._pitch(recipe, view, E.Generated(view, fake).audio(voc), labels, real)
    out.update(model=str(path), step=model.step, vocoder=desc)
    for t, r in out["trackers"].items():
        print(f"{t}: generated {r['generated']['pitch_accuracy']:.3f}, real {r['real']['pitch_accuracy']:.3f} "
              f"({r['notes']} notes)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
