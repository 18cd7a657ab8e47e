r"""How fast generated mels move, against real ones: the modulation spectrum of each mel band's track
over time (:func:`specgan.metrics.modulation_spectrum`), generated over real power by modulation
frequency, for the draw as made and smoothed along time at each ``--smoothing`` weight
(:func:`specgan.stage_one.model.smooth_frames`), beside the real mels smoothed the same way (what
smoothing takes from real speech). Below, held-out real mels and the same labels generated, as drawn
and smoothed. The draw is ``specgan evaluate``'s (:func:`specgan.evaluate.generation_draw`) at the
recipe's ψ; give ``--set synth.smoothing=0`` so that "as drawn" is as drawn.

    python tools/modulation_figure.py --recipe recipes/speech-multi.yaml --set synth.smoothing=0 \\
        pretrained/speech-multi/specgan.safetensors --out docs/img/specgan-modulation.png
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="a stage-one safetensors")
    ap.add_argument("--recipe", default="recipes/speech-multi.yaml")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--smoothing", type=float, nargs="+", default=[0.1, 0.25], help="weights to compare")
    ap.add_argument("--n", type=int, default=6, help="clips shown per row")
    ap.add_argument("--range", type=float, default=9.0, help="nats shown below each panel's maximum")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", default=[], help="recipe override")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    import specgan.evaluate as E
    from specgan import metrics as M
    from specgan.checkpoints import load_stage_one
    from specgan.plotting import mel_axes, save_figure
    from specgan.recipe import load_recipe
    from specgan.stage_one.model import check_smoothing, smooth_frames

    torch.set_num_threads(1)
    for a in args.smoothing:
        try:
            check_smoothing(a)
        except ValueError as e:
            raise SystemExit(f"modulation_figure: --smoothing: {e}") from None
    recipe = load_recipe(args.recipe, args.set)
    model = load_stage_one(Path(args.model), recipe=recipe)
    real, labels, fake, model = E.generation_draw(recipe, model)
    real_x, fake_x = real.x[:, 0], fake[:, 0]
    rate = model.mel_cfg.sample_rate / model.mel_cfg.hop_length
    f, p_real = M.modulation_spectrum(real_x.numpy(), rate)
    keep = f > 0
    fig = plt.figure(figsize=(2.0 * args.n, 3.0 + 1.6 * (2 + len(args.smoothing))))
    grid = fig.add_gridspec(3 + len(args.smoothing), args.n, height_ratios=[2.2] + [1] * (2 + len(args.smoothing)))
    ax = fig.add_subplot(grid[0, :])
    ratio = lambda x, ref=p_real: M.modulation_spectrum(x.numpy(), rate)[1][keep] / ref[keep]  # noqa: E731
    ax.plot(f[keep], ratio(fake_x), "k-", lw=1.6, label="generated, as drawn")
    print(f"{args.model}: generated / real modulation power, as drawn: "
          + ", ".join(f"{k} {v:.2f}" for k, v in M.modulation_ratio(real_x.numpy(), fake_x.numpy(), rate).items()))
    for a, colour in zip(args.smoothing, plt.cm.viridis(np.linspace(0.2, 0.8, len(args.smoothing))), strict=True):
        s = smooth_frames(fake_x, a)
        ax.plot(f[keep], ratio(s), "-", color=colour, lw=1.4, label=f"generated, smoothed a = {a:g}")
        ax.plot(f[keep], ratio(smooth_frames(real_x, a)), "--", color=colour, lw=1.0,
                label=f"real, smoothed a = {a:g} (what it takes from real mels)")
        print(f"  smoothed a = {a:g}: "
              + ", ".join(f"{k} {v:.2f}" for k, v in M.modulation_ratio(real_x.numpy(), s.numpy(), rate).items()))
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_ylim(0, 2)
    ax.set_xlabel("modulation frequency (Hz)", fontsize=8)
    ax.set_ylabel("power / real held-out", fontsize=8)
    ax.set_title(f"{recipe.name}: {len(real_x)} clips, each mel band's track over time; {Path(args.model)} "
                 f"(step {model.step}), ψ {recipe.synth.truncation:g}", fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    ax.tick_params(labelsize=7)
    rows = [("held-out real", real_x), ("generated, as drawn", fake_x),
            *((f"smoothed a = {a:g}", smooth_frames(fake_x, a)) for a in args.smoothing)]
    n = min(args.n, len(real_x))
    for r, (title, x) in enumerate(rows, start=1):
        logmel = model.stats.denormalize(x[:n]).numpy()
        for c in range(n):
            axc = fig.add_subplot(grid[r, c])
            top = float(logmel[c].max())
            axc.imshow(logmel[c], origin="lower", aspect="auto", cmap="magma", vmin=top - args.range, vmax=top)
            mel_axes(axc, recipe.mel, logmel.shape[2], fontsize=4, labels=c == 0)
            axc.set_title(f"{title}: {labels[c] if labels else ''}", fontsize=5)
    fig.tight_layout()
    save_figure(fig, args.out, f"{recipe.name}: modulation spectrum of generated mels, as drawn and smoothed")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
