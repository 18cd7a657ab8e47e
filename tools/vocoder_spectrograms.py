"""Spectrograms of one test clip copied by several vocoders, one panel each, beside the reference.

    python tools/vocoder_spectrograms.py --recipe recipes/voices.yaml --clip 3 --fmax 4000 \
        --vocoder griffinlim --vocoder pghi-mag=exp/voices/ablation/pghi-mag --out docs/img/x.png

``--vocoder`` is ``griffinlim`` (the recipe's mel, no training) or ``label=path`` (a model file or
its run folder). The clip is the recipe's ``--split`` (default test: for recipes/voices.yaml the
unseen speaker) item ``--clip``, as ``specgan evaluate`` loads it. Panels share one dB scale
(STFT 1024/256, Hann, up to ``--fmax``), so a comb, smeared harmonics or a missing onset show as
they would to the eye in a spectrogram viewer; the PNG's title names the clip and the models.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/voices.yaml")
    ap.add_argument("--split", default="test")
    ap.add_argument("--clip", type=int, default=0)
    ap.add_argument("--vocoder", action="append", default=[], metavar="griffinlim|LABEL=PATH")
    ap.add_argument("--fmax", type=float, default=4000.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dpi", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(1)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from specgan.checkpoints import load_vocoder
    from specgan.evaluate import _clips
    from specgan.recipe import load_recipe
    from vocoder.mel import MelSpectrogram
    from vocoder.registry import build_generator

    recipe = load_recipe(args.recipe, [])
    cfg = recipe.mel
    clips = _clips(recipe, args.split, args.clip + 1)
    if args.clip >= len(clips):
        raise SystemExit(f"--clip {args.clip}: the {args.split} split has {len(clips)} clips")
    y = clips[args.clip]
    n = y.shape[-1]
    mel = cfg.crop_frames(MelSpectrogram(cfg)(y), n).float()
    waves = {"reference": y[0, 0]}
    for spec in args.vocoder:
        if spec == "griffinlim":
            label, g = "Griffin-Lim 32", build_generator({"name": "griffinlim"}, cfg)
        else:
            label, _, path = spec.partition("=")
            if not path:
                raise SystemExit(f"--vocoder {spec!r}: expected griffinlim or LABEL=PATH")
            g, _ = load_vocoder(None, path, None)
        with torch.no_grad():
            waves[label] = g.eval()(mel)[0, 0, :n].float()
    window = torch.hann_window(1024)
    specs = {k: 20 * torch.log10(torch.stft(w, 1024, 256, window=window, return_complex=True).abs() + 1e-6)
             for k, w in waves.items()}
    top = float(specs["reference"].max())
    freqs = np.fft.rfftfreq(1024, 1 / cfg.sample_rate)
    keep = freqs <= args.fmax
    fig, axes = plt.subplots(len(specs), 1, figsize=(9, 2.2 * len(specs)), sharex=True, squeeze=False)
    for ax, (label, s) in zip(axes[:, 0], specs.items(), strict=True):
        t = np.arange(s.shape[-1]) * 256 / cfg.sample_rate
        ax.pcolormesh(t, freqs[keep], s.numpy()[keep], vmin=top - 80, vmax=top, shading="auto", cmap="magma")
        ax.set_ylabel("Hz")
        ax.set_title(label, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{recipe.name}, {args.split} clip {args.clip}: STFT 1024/256, 0-{args.fmax:.0f} Hz, 80 dB range",
                 fontsize=10)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=args.dpi)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
