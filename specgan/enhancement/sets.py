"""The recipe's clean speech for enhancement, read once, and the fixed dev and test pairs."""

from __future__ import annotations

import numpy as np
import torch

from specgan.enhancement.data import Pair, fixed_pairs

__all__ = ["clean_clips", "dev_pairs", "mel_statistics", "test_pairs"]


def clean_clips(recipe, split: str, max_items: int | None = None) -> tuple[list[np.ndarray], list[str]]:
    """The prepared ``split``'s clips as float32 mono at the recipe's rate, and their paths (the
    first ``max_items`` in the manifest's order).
    """
    from specgan.data.prepare import load_split
    from vocoder.data import read_mono

    items = load_split(recipe, split)
    if max_items is not None:
        items = items[:max_items]
    if not items:
        raise ValueError(f"the {split} split of {recipe.work / 'data'} is empty: run `specgan prepare --recipe "
                         f"{recipe.path}` first")
    sr = recipe.mel.sample_rate
    clips = [read_mono(it.path, sr) for it in items]
    return clips, [it.path for it in items]


def mel_statistics(mel_cfg, clips) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation of the clean clips' log-mels in ``mel_cfg`` (the
    enhancer's standardisation).
    """
    from vocoder.mel import MelSpectrogram

    mel_fn = MelSpectrogram(mel_cfg)
    with torch.no_grad():
        frames = torch.cat([mel_fn(torch.from_numpy(c)[None])[0] for c in clips], dim=1).double()
    return frames.mean(1).numpy(), frames.std(1).numpy()


def dev_pairs(recipe, pool=None, clips: int | None = None) -> list[Pair]:
    """The dev speakers under the training noise types at the test SNRs (model selection): the
    first ``clips`` dev clips, by default as many as ``eval_items`` pairs need.
    """
    ec = recipe.enhance
    if clips is None:
        clips = max(1, -(-ec.eval_items // (len(ec.train_noises) * len(ec.test_snrs))))
    audio, paths = clean_clips(recipe, "dev", clips)
    return fixed_pairs(audio, paths, recipe.mel.sample_rate, ec.train_noises, ec.test_snrs, recipe.seed + 1, pool=pool)


def test_pairs(recipe, pool=None) -> list[Pair]:
    """The test speaker under every unseen test noise type at every test SNR (``test_items`` clips each)."""
    ec = recipe.enhance
    clips, paths = clean_clips(recipe, "test", ec.test_items)
    return fixed_pairs(clips, paths, recipe.mel.sample_rate, ec.test_noises, ec.test_snrs, recipe.seed + 2, pool=pool)
