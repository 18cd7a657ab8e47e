"""Copy-synthesis quality of vocoders on a recipe's held-out clips: mel-L1 and MR-STFT loss.

Each clip (preprocessed exactly as in training) → log-mel with the recipe's mel → vocoder →
waveform, compared with the original. ``griffinlim`` needs no checkpoint. Every vocoder sees
the same clips.

    python tools/eval_vocoders.py --recipe recipes/speech.yaml --split dev \\
        exp/speech/vocoder/best/model.safetensors exp/speech/vocoder-hifigan-v2/best/model.safetensors griffinlim
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vocoders", nargs="+", help="model.safetensors paths, or 'griffinlim'")
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--max-items", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    import numpy as np
    import torch

    import vocoder
    from specgan.audio import load_clip
    from specgan.data.prepare import load_split
    from specgan.recipe import load_recipe
    from vocoder.losses import MelL1, MultiResolutionSTFTLoss
    from vocoder.mel import MelSpectrogram
    from vocoder.registry import build_generator

    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe)
    mel_cfg, hop = recipe.mel, recipe.mel.hop_length
    items = load_split(recipe, args.split)[: args.max_items]
    clips = []
    for it in items:
        y = load_clip(it.path, mel_cfg.sample_rate, recipe.data.preprocess, mel_cfg.n_fft)
        clips.append(torch.from_numpy(y[: (y.size // hop) * hop])[None, None])
    mel_fn, mel_l1 = MelSpectrogram(mel_cfg), MelL1(mel_cfg)
    mrstft = MultiResolutionSTFTLoss(recipe.vocoder.stft_resolutions)
    results = {}
    for spec in args.vocoders:
        if spec == "griffinlim":
            g, label = build_generator({"name": "griffinlim"}, mel_cfg).eval(), "griffinlim (32 it.)"
        else:
            g = vocoder.load(spec)
            g.mel_cfg.check_compatible(mel_cfg, spec, args.recipe)
            label = f"{g.registry_name} ({spec}, step {g.checkpoint_meta['extra'].get('step')})"
        m1, m2 = [], []
        t = time.perf_counter()
        with torch.inference_mode():
            for y in clips:
                y_hat = g(mel_fn(y)[..., : y.shape[-1] // hop])
                m1.append(float(mel_l1(y_hat, y)))
                m2.append(float(mrstft(y_hat, y)))
        secs = sum(c.shape[-1] for c in clips) / mel_cfg.sample_rate
        results[label] = {"mel_l1": float(np.mean(m1)), "mrstft": float(np.mean(m2)),
                          "xrt_1thread": secs / (time.perf_counter() - t), "clips": len(clips)}
    print(f"{args.recipe}, split {args.split}, {len(clips)} clips")
    print(f"{'vocoder':<70} {'mel-L1':>8} {'MR-STFT':>8} {'xRT':>7}")
    for label, r in results.items():
        print(f"{label:<70} {r['mel_l1']:>8.4f} {r['mrstft']:>8.4f} {r['xrt_1thread']:>7.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
