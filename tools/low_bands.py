r"""Held-out real mels against generated ones, zoomed on the low mel bands where voiced speech shows
its harmonic lines (and notes their lowest partials): one row per source, the same seeded draw of
held-out labels that ``specgan evaluate`` makes (:func:`specgan.evaluate.generation_draw`), each
panel in nats from its loudest value down ``--range`` nats.

    python tools/low_bands.py --recipe recipes/speech-multi.yaml --out docs/img/x.png \\
        pretrained/speech-multi/specgan.safetensors exp/speech-multi/ablation-specgan/combined-detail/model.safetensors
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="stage-one safetensors, one row each (the real row comes first)")
    ap.add_argument("--recipe", default="recipes/speech-multi.yaml")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--n", type=int, default=8, help="clips per row")
    ap.add_argument("--bands", type=int, default=32, help="lowest mel bands shown")
    ap.add_argument("--range", type=float, default=9.0, help="nats shown below each panel's maximum")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", default=[], help="recipe override")
    ap.add_argument("--names", default=None, help="comma-separated row names (default: the models' folders)")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import specgan.evaluate as E
    from specgan.plotting import mel_axes, save_figure
    from specgan.recipe import load_recipe
    from specgan.checkpoints import load_stage_one

    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe, args.set)
    names = args.names.split(",") if args.names else [Path(m).parent.name for m in args.models]
    if len(names) != len(args.models):
        raise SystemExit(f"low_bands: {len(names)} names for {len(args.models)} models")
    rows, titles = [], []
    for path, name in zip(args.models, names, strict=True):
        model = load_stage_one(Path(path), recipe=recipe)
        real, labels, fake, model = E.generation_draw(recipe, model)  # model: in the draw's normalisation
        if not rows:
            rows.append(model.stats.denormalize(real.x[: args.n, 0]).numpy())
            titles.append(("held-out real", labels))
        rows.append(model.stats.denormalize(fake[: args.n, 0]).numpy())
        titles.append((f"{name} (step {model.step})", labels))
    n = min(args.n, rows[0].shape[0])
    bands = min(args.bands, rows[0].shape[1])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.9 * n, 1.7 * len(rows)), squeeze=False)
    for r, (x, (title, labels)) in enumerate(zip(rows, titles, strict=True)):
        for c in range(n):
            ax = axes[r, c]
            top = float(x[c].max())
            ax.imshow(x[c, :bands], origin="lower", aspect="auto", cmap="magma", vmin=top - args.range, vmax=top)
            mel_axes(ax, recipe.mel, x.shape[2], fontsize=4, labels=c == 0, bands=bands)
            ax.set_title(f"{title}: {labels[c]}" if labels else title, fontsize=5)
    fig.tight_layout()
    save_figure(fig, args.out, title=f"lowest {bands} mel bands of {recipe.path}: " + "; ".join(t for t, _ in titles),
                dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
