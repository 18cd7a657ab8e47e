"""Stage 5: how good is a trained recipe? Numbers written to ``<work>/eval/metrics.json``.

Vocoder (stage two), by copy synthesis of the held-out split: every clip, preprocessed exactly
as in training, → its log-mel → vocoder → waveform, compared with the original by mel-L1 (the
recipe's mel, natural-log magnitudes) and the multi-resolution STFT distance (the vocoder loss's
resolutions), plus speed as × real time on this process's threads. Griffin-Lim runs beside the
trained vocoder on the same clips as the no-training floor.

Generation (stage one): per-bin statistics of N generated log-mels against the same number of
real held-out ones (mean absolute difference of per-bin means and standard deviations) and the
diversity of the generated set (mean pairwise L1 between normalised mels) next to the real set's.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from specgan.recipe import Recipe

__all__ = ["copy_synthesis", "evaluate", "generation_stats"]

log = logging.getLogger(__name__)


def _clips(recipe: Recipe, split: str, max_items: int | None) -> list[torch.Tensor]:
    from specgan.audio import load_clip
    from specgan.data.prepare import load_split

    mel_cfg, hop = recipe.mel, recipe.mel.hop_length
    items = load_split(recipe, split)[:max_items]
    if not items:
        raise ValueError(f"evaluate: split {split!r} of {recipe.work / 'data'} is empty")
    clips = []
    for it in items:
        y = load_clip(it.path, mel_cfg.sample_rate, recipe.data.preprocess, mel_cfg.n_fft)
        clips.append(torch.from_numpy(y[: (y.size // hop) * hop])[None, None])
    return clips


@torch.inference_mode()
def copy_synthesis(generator, clips: list[torch.Tensor], recipe: Recipe) -> dict[str, float]:
    """Mean mel-L1 and MR-STFT distance of ``generator`` re-synthesising ``clips``; × real time."""
    from vocoder.losses import MelL1, MultiResolutionSTFTLoss
    from vocoder.mel import MelSpectrogram

    mel_cfg, hop = recipe.mel, recipe.mel.hop_length
    mel_fn, mel_l1 = MelSpectrogram(mel_cfg), MelL1(mel_cfg)
    mrstft = MultiResolutionSTFTLoss(recipe.vocoder.stft_resolutions)
    m1, m2, busy = [], [], 0.0
    for y in clips:
        mel = mel_fn(y)[..., : y.shape[-1] // hop]
        t = time.perf_counter()
        y_hat = generator(mel)
        busy += time.perf_counter() - t
        m1.append(float(mel_l1(y_hat, y)))
        m2.append(float(mrstft(y_hat, y)))
    secs = sum(c.shape[-1] for c in clips) / mel_cfg.sample_rate
    return {"mel_l1": float(np.mean(m1)), "mrstft": float(np.mean(m2)), "x_real_time": secs / busy,
            "threads": torch.get_num_threads()}


def generation_stats(fake: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Simple distribution checks on (N, n_mels, frames) normalised mels in [-1, 1]."""

    def pairwise_l1(x: np.ndarray) -> float:
        flat = x.reshape(len(x), -1)
        d = np.abs(flat[:, None, :] - flat[None, :, :]).mean(-1)
        return float(d[np.triu_indices(len(x), 1)].mean()) if len(x) > 1 else 0.0

    return {
        "bin_mean_abs_diff": float(np.abs(fake.mean((0, 2)) - real.mean((0, 2))).mean()),
        "bin_std_abs_diff": float(np.abs(fake.std((0, 2)) - real.std((0, 2))).mean()),
        "diversity_generated": pairwise_l1(fake),
        "diversity_real": pairwise_l1(real),
    }


def evaluate(recipe: Recipe, vocoder_name: str = "auto") -> dict:
    """Run both evaluations and write ``<work>/eval/metrics.json``; returns what was written."""
    from specgan.features.cache import load_features, load_index
    from specgan.sampling import load_stage_one, sample
    from specgan.synth import load_vocoder, resolve_stage_one
    from specgan.train_gan import MelDataset
    from vocoder.registry import build_generator

    ec = recipe.evaluate
    out: dict = {"recipe": recipe.path, "split": ec.split, "seed": ec.seed}
    clips = _clips(recipe, ec.split, ec.max_items)
    out["vocoder"] = {"protocol": f"copy synthesis of {len(clips)} {ec.split} clips (first {ec.max_items}); "
                                  f"mel-L1 in natural-log magnitude, MR-STFT = spectral convergence + log-magnitude "
                                  f"L1 summed over resolutions {recipe.vocoder.stft_resolutions}",
                      "clips": len(clips)}
    voc, desc = load_vocoder(recipe, vocoder_name, recipe.mel)
    voc.mel_cfg.check_compatible(recipe.mel, f"vocoder {desc}", f"recipe {recipe.path}")
    for name, g in (("trained", voc), ("griffinlim", build_generator({"name": "griffinlim"}, recipe.mel).eval())):
        out["vocoder"][name] = {"model": desc if name == "trained" else "griffinlim", **copy_synthesis(g, clips, recipe)}

    g_path = resolve_stage_one(recipe)
    model = load_stage_one(g_path)
    index = load_index(recipe.work, ec.split)
    ids = list(index["items"])[: ec.n_generated]
    real = MelDataset([load_features(recipe.work, ec.split, i, index) for i in ids],
                      [None] * len(ids), model.stats, model.generator.frames,
                      float(recipe.mel.log(np.float64(recipe.mel.floor)))).x[:, 0].numpy()
    n = len(ids)
    labels = [model.vocab[i % len(model.vocab)] for i in range(n)] if model.generator.n_classes else None
    fake, _ = sample(model, n, labels=labels, seed=ec.seed)
    out["generation"] = {"protocol": f"{n} generated (seed {ec.seed}, labels in turn) vs {n} real {ec.split} "
                                     f"normalised mels", "model": str(g_path), "step": model.step,
                         **generation_stats(fake.numpy(), real)}
    path = recipe.work / "eval" / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(path)
    out["path"] = str(path)
    return out


def load_metrics(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
