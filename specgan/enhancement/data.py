"""Noisy/clean pairs from a recipe's clean speech: drawn afresh every training step, fixed (seeded)
for validation and test.

Training mixes a random crop of a training clip with a random training noise type at a random
training SNR each time it is drawn, so the model never sees the same pair twice (babble is made of
other training clips). The dev and test sets are fixed lists of (clip, noise type, SNR, seed):
the dev set uses the dev speakers with the training noise types at the test SNRs (model
selection), the test set the test speaker with the unseen test noise types at the test SNRs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from specgan.enhancement.noise import check_available, make_noise, mix

__all__ = ["Pair", "PairSource", "fixed_pairs"]


@dataclass
class Pair:
    """One fixed noisy/clean pair: the clean clip, the noise type, the SNR, and the noise seed."""

    index: int
    noise: str
    snr: float
    seed: int
    clean: np.ndarray
    noisy: np.ndarray
    path: str = ""


class PairSource:
    """Training pairs drawn on the fly.

    Args:
        clips: Clean training clips (float32 at the recipe's rate).
        sr: Their rate.
        segment: Samples per crop (shorter clips are zero-padded at the end).
        noises: Noise types to draw from.
        snrs: SNRs (dB) to draw from.
    """

    def __init__(self, clips: Sequence[np.ndarray], sr: int, segment: int, noises: Sequence[str],
                 snrs: Sequence[float]):
        if not clips:
            raise ValueError("no clean training clips to mix noise into")
        self.clips, self.sr, self.segment = [np.asarray(c, np.float32) for c in clips], sr, int(segment)
        self.noises, self.snrs = list(noises), [float(s) for s in snrs]
        check_available(self.noises, sr)

    def crop(self, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = self.segment
        if len(clip) >= n:
            start = int(rng.integers(0, len(clip) - n + 1))
            return clip[start : start + n]
        return np.pad(clip, (0, n - len(clip)))

    def batch(self, b: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(noisy, clean), each (b, segment) float32."""
        noisy, clean = np.empty((b, self.segment), np.float32), np.empty((b, self.segment), np.float32)
        for i in range(b):
            c = self.crop(self.clips[int(rng.integers(len(self.clips)))], rng)
            kind = self.noises[int(rng.integers(len(self.noises)))]
            snr = self.snrs[int(rng.integers(len(self.snrs)))]
            noise = make_noise(kind, self.segment, self.sr, rng, pool=self.clips)
            if not np.any(c):  # a silent crop: no SNR to set; pass silence through
                noisy[i], clean[i] = c, c
                continue
            noisy[i], clean[i] = mix(c, noise, snr)
        return noisy, clean


def fixed_pairs(clips: Sequence[np.ndarray], paths: Sequence[str], sr: int, noises: Sequence[str],
                snrs: Sequence[float], seed: int, pool: Sequence[np.ndarray] | None = None,
                max_clips: int | None = None) -> list[Pair]:
    """Every clip (the first ``max_clips``) under every noise type at every SNR, each noise seeded
    by (seed, clip, type, SNR): the same pairs whatever else is drawn.
    """
    check_available(noises, sr)
    out = []
    n = len(clips) if max_clips is None else min(len(clips), max_clips)
    for i in range(n):
        for k, kind in enumerate(noises):
            for j, snr in enumerate(snrs):
                s = [int(seed), i, k, j]
                rng = np.random.default_rng(s)
                clip = np.asarray(clips[i], np.float32)
                noise = make_noise(kind, len(clip), sr, rng, pool=pool)
                noisy, clean = mix(clip, noise, float(snr))
                out.append(Pair(i, kind, float(snr), hash(tuple(s)) & 0x7FFFFFFF, clean, noisy, paths[i]))
    return out
