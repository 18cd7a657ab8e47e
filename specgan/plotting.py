"""Spectrogram grids with readable axes: time in seconds, frequency in Hz at the mel bins' centres.

Used by synth's ``grid.png`` and the trainer's sample grids. :func:`save_figure` writes the title
and the axes' labels into the PNG's text chunks as well (``Title``, ``Description``), so a script
or a test can read what a grid shows without looking at pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["mel_axes", "save_figure"]


def _hz(f: float) -> str:
    return f"{f / 1000:.3g}k" if f >= 1000 else f"{f:.0f}"


def mel_axes(ax, mel_cfg, n_frames: int, fontsize: float = 5.0, labels: bool = True, bands: int | None = None) -> None:
    """Ticks in seconds (x) and Hz (y) on an ``imshow(mel, origin="lower")`` axis.

    Args:
        ax: The matplotlib axis holding one (n_mels, n_frames) image.
        mel_cfg: The :class:`vocoder.mel.MelConfig` the image is in; None leaves frame/bin indices
            (labelled as such), for a model saved without its mel.
        n_frames: Frames shown.
        fontsize: Tick label size.
        labels: Also write the axis labels ("s", "Hz").
        bands: The image shows only the lowest ``bands`` mel bands (default: all of them).
    """
    ax.tick_params(labelsize=fontsize, length=2, pad=1)
    if mel_cfg is None:
        if labels:
            ax.set_xlabel("frame", fontsize=fontsize, labelpad=1)
            ax.set_ylabel("mel bin", fontsize=fontsize, labelpad=1)
        return
    seconds = n_frames * mel_cfg.hop_length / mel_cfg.sample_rate
    step = next(s for s in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0) if seconds / s <= 4)
    ticks = np.arange(0.0, seconds + 1e-9, step)
    ax.set_xticks(ticks * mel_cfg.sample_rate / mel_cfg.hop_length - 0.5)
    ax.set_xticklabels([f"{t:g}" for t in ticks])
    centres = mel_cfg.band_centres_hz()[:bands]
    rows = np.linspace(0, len(centres) - 1, 4).round().astype(int)
    ax.set_yticks(rows)
    ax.set_yticklabels([_hz(centres[r]) for r in rows])
    if labels:
        ax.set_xlabel("time (s)", fontsize=fontsize, labelpad=1)
        ax.set_ylabel("frequency (Hz)", fontsize=fontsize, labelpad=1)


def save_figure(fig, path: str | Path, title: str, dpi: int = 80) -> Path:
    """Save ``fig`` as PNG with ``title``, the axis labels and the first panel's ticks in its text chunks."""
    ax = fig.axes[0]
    xlabel = next((a.get_xlabel() for a in fig.axes if a.get_xlabel()), "")
    ylabel = next((a.get_ylabel() for a in fig.axes if a.get_ylabel()), "")
    description = (f"x: {xlabel} [{', '.join(t.get_text() for t in ax.get_xticklabels())}]; "
                   f"y: {ylabel} [{', '.join(t.get_text() for t in ax.get_yticklabels())}]")
    path = Path(path)
    fig.savefig(path, dpi=dpi, metadata={"Title": title, "Description": description})
    return path
