"""Spectrograms of one enhancement test pair as `specgan evaluate` wrote it (``eval/enhance/``):
noisy, the classical baseline, the enhancer, and the clean reference, one row per pair, on one dB
scale (STFT 1024/256, Hann, up to ``--fmax``), so what the enhancer removes and what it damages show
side by side.

    python tools/enhance_spectrograms.py exp/enhance/eval/enhance tones_7.5dB_clip0 clicks_12.5dB_clip0 \
        --out docs/img/enhance-spectrograms.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYSTEMS = (("noisy", "noisy"), ("baseline", "noisereduce"), ("enhanced", "enhancer"), ("clean", "clean"))


def spectrogram_db(x: np.ndarray, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """|STFT| in dB (Hann, frames as columns), as tools/vocoder_spectrograms.py draws its panels."""
    import torch

    spec = torch.stft(torch.from_numpy(np.ascontiguousarray(x, np.float32)), n_fft, hop,
                      window=torch.hann_window(n_fft), return_complex=True).abs()
    return (20 * torch.log10(spec + 1e-6)).numpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="an eval/enhance folder of <pair>_<system>.wav files")
    ap.add_argument("pairs", nargs="+", help="pair names, e.g. tones_7.5dB_clip0")
    ap.add_argument("--out", required=True)
    ap.add_argument("--fmax", type=float, default=8000.0)
    args = ap.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    from specgan.plotting import save_figure

    folder = Path(args.folder)
    missing = [f"{p}_{s}.wav" for p in args.pairs for s, _ in SYSTEMS if not (folder / f"{p}_{s}.wav").is_file()]
    if missing:
        raise SystemExit(f"enhance_spectrograms: {folder}: missing {', '.join(missing[:3])}")
    fig, axes = plt.subplots(len(args.pairs), len(SYSTEMS), figsize=(2.6 * len(SYSTEMS), 2.0 * len(args.pairs)),
                             squeeze=False)
    for row, pair in zip(axes, args.pairs):
        specs = {}
        for s, _ in SYSTEMS:
            x, sr = sf.read(folder / f"{pair}_{s}.wav", dtype="float32", always_2d=True)
            specs[s] = spectrogram_db(x.mean(axis=1))
        top = max(float(v.max()) for v in specs.values())
        for ax, (s, title) in zip(row, SYSTEMS):
            v = specs[s]
            ax.imshow(v, origin="lower", aspect="auto", vmin=top - 80, vmax=top, cmap="magma",
                      extent=(0, v.shape[1] * 256 / sr, 0, sr / 2))
            ax.set_ylim(0, args.fmax)
            ax.set_title(f"{title}: {pair}", fontsize=6)
            ax.tick_params(labelsize=5)
        row[0].set_ylabel("Hz", fontsize=6)
    axes[-1][0].set_xlabel("s", fontsize=6)
    fig.tight_layout()
    print(save_figure(fig, args.out, f"enhancement test pairs: {', '.join(args.pairs)}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
