"""The codec's rate–quality figure (issue 32): PESQ-wb, STOI and DNSMOS OVRL against the actual
kbps (from the files' sizes) for specgan at each scored bitrate, Opus and Codec2, with the vocoded
ceiling (the original's mel through the vocoder) as a dashed line; read from a ``codec.json`` that
``specgan evaluate`` (or ``tools/ablate_codec.py``) wrote.

    python tools/codec_rate_quality.py exp/codec/eval/codec.json docs/img/codec-rate-quality.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PANELS = (("pesq_wb", "PESQ-wb"), ("stoi", "STOI"), ("dnsmos_ovrl", "DNSMOS OVRL"))


def curves(overall: dict) -> dict[str, list[tuple[float, dict]]]:
    """System family (specgan, opus, codec2) → [(kbps, scores)] by rate; the ceiling is left out."""
    out: dict[str, list[tuple[float, dict]]] = {}
    for name, scores in overall.items():
        if "kbps" in scores and "@" in name:
            out.setdefault(name.split("@")[0], []).append((scores["kbps"], scores))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in out.items()}


def plot(overall: dict, path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from specgan.plotting import save_figure

    fams = curves(overall)
    if "specgan" not in fams:
        raise SystemExit("codec_rate_quality: no specgan@<rate> system with a kbps in the file")
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.2 * len(PANELS), 2.7))
    style = {"specgan": ("C0", "o-"), "opus": ("C1", "s-"), "codec2": ("C2", "^-")}
    for ax, (key, label) in zip(axes, PANELS):
        for fam, pts in fams.items():
            color, marker = style.get(fam, ("C3", "x-"))
            ax.plot([k for k, _ in pts], [s[key] for _, s in pts], marker, color=color, label=fam, ms=4)
        if key in overall.get("vocoded", {}):
            ax.axhline(overall["vocoded"][key], color="k", ls="--", lw=0.8, label="original mel, vocoded")
        ax.set_xscale("log")
        ax.set_xticks([0.7, 1.5, 3, 6, 12], ["0.7", "1.5", "3", "6", "12"])
        ax.minorticks_off()
        ax.set_xlabel("kbps (from the files)", fontsize=7)
        ax.set_title(label, fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0].set_ylabel("score", fontsize=7)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path, title)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("codec_json")
    ap.add_argument("png")
    ap.add_argument("--title", default="specgan codec: quality against bitrate (unseen speaker)")
    args = ap.parse_args()
    ev = json.loads(Path(args.codec_json).read_text())
    print(plot(ev["overall"], Path(args.png), args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
