"""Choose the enhancer's attenuation limit (``enhance.min_gain``, the ``gain`` synthesis) on the
**dev** pairs: the dev speakers under the training noise types at the test SNRs, never the test
speaker or the unseen noise types. Prints PESQ-wb and STOI (means over the pairs) for each
candidate limit beside the noisy input, and the limit with the best PESQ among those whose STOI is
not below the input's (if none keeps STOI, the best PESQ).

    python tools/enhance_min_gain.py --recipe recipes/enhance.yaml --model exp/enhance/enhance \
        --values 0 0.1 0.2 0.3 0.4 0.5 --clips 3
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def choose(table: dict[float, dict], noisy: dict) -> float:
    """The limit with the best PESQ among those whose STOI is at least the input's (else the best PESQ)."""
    keep = [v for v, s in table.items() if s["stoi"] >= noisy["stoi"]] or list(table)
    return max(keep, key=lambda v: table[v]["pesq_wb"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/enhance.yaml")
    ap.add_argument("--model", default=None, help="an enhancer file or run folder (default: the recipe's)")
    ap.add_argument("--values", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    ap.add_argument("--clips", type=int, default=3, help="dev clips (x training noise types x test SNRs)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from specgan import metrics as M
    from specgan.checkpoints import enhancer_path
    from specgan.enhancement.inference import Enhancement, load_enhancer
    from specgan.enhancement.sets import clean_clips, dev_pairs
    from specgan.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    ec = recipe.enhance
    path = Path(args.model) if args.model else enhancer_path(recipe)
    g, mel, step = load_enhancer(path)
    pool = clean_clips(recipe, "train")[0] if "babble" in ec.train_noises else None
    pairs = dev_pairs(recipe, pool=pool, clips=args.clips)
    sr = mel.sample_rate
    scores: dict[str, list[dict]] = {"noisy": []}
    jobs = {v: Enhancement.for_config(g, None, mel, replace(ec, min_gain=v), "gain") for v in args.values}
    for p in pairs:
        scores["noisy"].append({"pesq_wb": M.pesq_wb(p.clean, p.noisy, sr), "stoi": M.stoi(p.clean, p.noisy, sr)})
        for v, job in jobs.items():
            y = job.enhance(p.noisy, sr)[0]
            scores.setdefault(v, []).append({"pesq_wb": M.pesq_wb(p.clean, y, sr), "stoi": M.stoi(p.clean, y, sr)})
    mean = {k: {m: float(np.nanmean([r[m] for r in rows])) for m in ("pesq_wb", "stoi")} for k, rows in scores.items()}
    table = {v: mean[v] for v in args.values}
    best = choose(table, mean["noisy"])
    print(f"dev pairs: {len(pairs)} ({args.clips} clips x {list(ec.train_noises)} x {list(ec.test_snrs)} dB); "
          f"model {path} (step {step})")
    print("| min_gain | PESQ-wb | STOI |\n|---|---|---|")
    print(f"| (noisy input) | {mean['noisy']['pesq_wb']:.3f} | {mean['noisy']['stoi']:.3f} |")
    for v in args.values:
        print(f"| {v:g}{' (chosen)' if v == best else ''} | {table[v]['pesq_wb']:.3f} | {table[v]['stoi']:.3f} |")
    print(json.dumps({"chosen": best, "step": step, "noisy": mean["noisy"], "table": {str(k): t for k, t in table.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
