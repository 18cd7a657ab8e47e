r"""Where consonants go missing: generated against held-out real mels, band by band and word by word.

Fricatives and bursts live in the high bands (above ~2-4 kHz) and in fast changes there. For the
same seeded draw ``specgan evaluate`` makes (:func:`specgan.evaluate.generation_draw`), this tool
compares, in natural-log magnitudes over each clip's active frames (loudest band within 30 dB of
the clip's loudest frame):

- the mean level of every mel band, generated minus real, and held-out real minus the training
  clips (the voices the model learnt from: a generated band can only be judged against those;
  the held-out voices of a split by speaker may differ on their own);
- the high band's share of the energy (bands centred above ``--split-hz``), per word;
- the high band's onsets: the mean rise of its level from one frame to the next (a burst is a
  sharp rise; a smeared one rises slowly).

    python tools/consonant_bands.py --recipe recipes/speech-multi.yaml --out docs/img/x.png \
        pretrained/speech-multi/specgan.safetensors
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def active_frames(logmels: np.ndarray, active_db: float = 30.0) -> np.ndarray:
    """(N, n_mels, T) natural-log mels → (N, T) frames whose loudest band is within ``active_db``
    of the clip's loudest.
    """
    loud = logmels.max(axis=1)
    return loud >= loud.max(axis=1, keepdims=True) - active_db / 20 * np.log(10)


def band_levels(logmels: np.ndarray, active_db: float = 30.0) -> np.ndarray:
    """Mean natural-log magnitude of each band over the active frames of all clips: (n_mels,)."""
    act = active_frames(logmels, active_db)
    return logmels.transpose(1, 0, 2)[:, act].mean(axis=1)


def high_share(logmels: np.ndarray, high: np.ndarray, active_db: float = 30.0) -> np.ndarray:
    """Per clip (N,): the share of the active frames' energy (squared magnitude) in the ``high``
    bands (a boolean mask over bands).
    """
    act = active_frames(logmels, active_db)
    power = np.exp(2 * logmels.astype(np.float64))
    total = (power.sum(axis=1) * act).sum(axis=1)
    return (power[:, high].sum(axis=1) * act).sum(axis=1) / np.maximum(total, 1e-30)


def high_onsets(logmels: np.ndarray, high: np.ndarray, active_db: float = 30.0) -> np.ndarray:
    """Per clip (N,): the mean rise (nats a frame, falls counted as 0) of the high bands' level
    (log of their summed power, halved) between consecutive frames, over pairs with an active frame.
    """
    act = active_frames(logmels, active_db)
    level = 0.5 * np.log(np.exp(2 * logmels[:, high].astype(np.float64)).sum(axis=1) + 1e-30)
    rise = np.maximum(np.diff(level, axis=1), 0.0)
    pair = act[:, 1:] | act[:, :-1]
    return (rise * pair).sum(axis=1) / np.maximum(pair.sum(axis=1), 1)


def training_mels(recipe, frames: int, n: int = 256, seed: int = 0) -> tuple[np.ndarray, list]:
    """``n`` random training clips' cached log-mels (N, n_mels, frames), padded with the log floor,
    and their labels.
    """
    from specgan.features.cache import load_features, load_index

    index = load_index(recipe.work, "train")
    ids = list(index["items"])
    pick = np.random.default_rng(seed).choice(len(ids), min(n, len(ids)), replace=False)
    out = []
    for i in pick:
        m = load_features(recipe.work, "train", ids[i], index)[:, :frames]
        out.append(np.pad(m, ((0, 0), (0, frames - m.shape[1])), constant_values=recipe.mel.log_floor))
    return np.stack(out).astype(np.float64), [index["items"][ids[i]]["label"] for i in pick]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="stage-one safetensors")
    ap.add_argument("--recipe", default="recipes/speech-multi.yaml")
    ap.add_argument("--out", required=True, help="PNG to write (the table goes to stdout, markdown)")
    ap.add_argument("--split-hz", type=float, default=3000.0, help="bands centred above this are the high band")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", default=[], help="recipe override")
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    import specgan.evaluate as E
    from specgan.checkpoints import load_stage_one
    from specgan.plotting import save_figure
    from specgan.recipe import load_recipe

    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe, args.set)
    centres = recipe.mel.band_centres_hz()
    high = centres > args.split_hz
    fig, ax = plt.subplots(figsize=(6, 3))
    print(f"high band: {int(high.sum())} mel bands centred above {args.split_hz:.0f} Hz\n")
    train = None
    for path in args.models:
        model = load_stage_one(Path(path), recipe=recipe)
        real, labels, fake, view = E.generation_draw(recipe, model)
        r = view.stats.denormalize(real.x[:, 0]).double().numpy()
        f = view.stats.denormalize(fake[:, 0]).double().numpy()
        if train is None:
            train, train_labels = training_mels(recipe, r.shape[-1], 2 * len(r))
            held = band_levels(r) - band_levels(train)
            ax.plot(centres, held, "k--", label="held-out real − training clips")
        diff = band_levels(f) - band_levels(r)
        ax.plot(centres, band_levels(f) - band_levels(train), label=f"{Path(path).parent.name} (step {model.step}) − training clips")
        share_r, share_f = high_share(r, high), high_share(f, high)
        on_r, on_f = high_onsets(r, high), high_onsets(f, high)
        print(f"## {path} (step {model.step}, {len(r)} clips each)\n")
        vs_train = band_levels(f) - band_levels(train)
        for what, d in (("generated − held-out real", diff), ("generated − training clips", vs_train),
                        ("held-out real − training clips", held)):
            print(f"mean level, {what}: bands < 1 kHz {d[centres < 1000].mean():+.2f} nats, "
                  f"1-{args.split_hz / 1000:.0f} kHz {d[(centres >= 1000) & ~high].mean():+.2f}, "
                  f"high band {d[high].mean():+.2f}; 500 Hz-2.5 kHz {d[(centres >= 500) & (centres < 2500)].mean():+.2f}")
        share_t, on_t = high_share(train, high), high_onsets(train, high)
        print()
        print("| word | clips (held-out, training) | high-band share: held-out | training | generated | "
              "high-band onsets (nats/frame): held-out | training | generated |")
        print("|---|---|---|---|---|---|---|---|")
        words = sorted(set(labels or [None]), key=str)
        for w in words:
            sel = np.array([lab == w for lab in labels]) if labels else np.ones(len(r), bool)
            tsel = np.array([str(lab) == str(w) for lab in train_labels]) if labels else np.ones(len(train), bool)
            print(f"| {w} | {int(sel.sum())}, {int(tsel.sum())} | {share_r[sel].mean():.4f} | "
                  f"{share_t[tsel].mean():.4f} | {share_f[sel].mean():.4f} | {on_r[sel].mean():.3f} | "
                  f"{on_t[tsel].mean():.3f} | {on_f[sel].mean():.3f} |")
        print(f"| all | {len(r)}, {len(train)} | {share_r.mean():.4f} | {share_t.mean():.4f} | {share_f.mean():.4f} | "
              f"{on_r.mean():.3f} | {on_t.mean():.3f} | {on_f.mean():.3f} |\n")
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(args.split_hz, color="grey", lw=0.5, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("mel band centre (Hz)")
    ax.set_ylabel("level difference (nats)")
    ax.legend(fontsize=6)
    title = f"{recipe.name}: mean level per band over active frames, against the training clips"
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    save_figure(fig, Path(args.out), title)
    plt.close(fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
