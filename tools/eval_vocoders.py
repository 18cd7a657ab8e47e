r"""Copy-synthesis quality of several vocoders on a recipe's held-out clips, side by side.

Each clip (preprocessed exactly as in training) → log-mel with the recipe's mel → vocoder →
waveform, compared with the original by :func:`specgan.evaluate.copy_synthesis` (mel-L1,
MR-STFT, F0 RMSE and V/UV, and PESQ/STOI for speech recipes) — the same numbers as
``specgan evaluate``, for any number of checkpoints. ``griffinlim`` needs no checkpoint. Every
vocoder sees the same clips.

    python tools/eval_vocoders.py --recipe recipes/speech.yaml --split dev \\
        exp/speech/vocoder/best/model.safetensors exp/speech/vocoder-hifigan-v2/best/model.safetensors griffinlim

``--paired`` adds, for every vocoder after the first, its mean per-clip difference from the first
on each metric with a 95 % bootstrap interval over clips (:func:`specgan.metrics.paired_bootstrap`):
an interval that contains 0 means the clips cannot tell the two apart on that metric.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vocoders", nargs="+", help="model.safetensors paths, or 'griffinlim'")
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--max-items", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--notes", type=int, default=0, metavar="N",
                    help="music recipes: also copy up to N single notes of the split and score their pitch "
                         "against the asked one (specgan.evaluate.copy_pitch: copies vs originals)")
    ap.add_argument("--visqol", action="store_true",
                    help="add ViSQOL's audio mode (MOS-LQO, full band; slow: a few seconds per clip)")
    ap.add_argument("--paired", action="store_true",
                    help="differences from the first vocoder, per clip, with 95%% bootstrap intervals")
    ap.add_argument("--vocoder-kwarg", action="append", default=[], metavar="KEY=VALUE",
                    help="an inference setting for every trained vocoder given (YAML value), overriding its "
                         "file's, e.g. refine_iter=16 or pghi_mode=frames; repeatable")
    args = ap.parse_args()
    from specgan.checkpoints import parse_kwargs

    try:
        voc_kwargs = parse_kwargs(args.vocoder_kwarg)
    except ValueError as e:
        ap.error(str(e))
    if args.paired and len(args.vocoders) < 2:
        ap.error("--paired needs at least two vocoders (the first is the reference)")

    import torch

    from specgan.evaluate import _clips, copy_pitch, copy_synthesis, is_speech
    from specgan.recipe import load_recipe
    from specgan.checkpoints import load_vocoder

    torch.set_num_threads(1)
    recipe = load_recipe(args.recipe)
    clips = _clips(recipe, args.split, args.max_items)
    results, notes_done = {}, None
    for spec in args.vocoders:
        g, desc = load_vocoder(recipe, spec, recipe.mel, kwargs=voc_kwargs)
        g.mel_cfg.check_compatible(recipe.mel, spec, args.recipe)
        step = getattr(g, "checkpoint_meta", {}).get("step")
        label = f"{g.registry_name} ({desc}{f', step {step}' if step is not None else ''})"
        if voc_kwargs and hasattr(g, "checkpoint_meta"):
            print(f"{desc}: runs with {voc_kwargs}", file=sys.stderr)
        results[label] = {**copy_synthesis(g, clips, recipe, speech=is_speech(recipe), per_clip=args.paired,
                                           visqol=args.visqol),
                          "clips": len(clips)}
        if args.notes:
            real_notes = None if not notes_done else notes_done["real"]
            p = copy_pitch(g, recipe, args.split, args.notes, real=real_notes)
            if p:
                notes_done = p
                results[label].update(note_pitch_copies=p["copies"]["pitch_accuracy"],
                                      note_pitch_real=p["real"]["pitch_accuracy"], note_pitch_ratio=p["ratio"],
                                      note_buzz_db=p["buzz_db"])
    cols = [c for c in ("mel_l1", "mrstft", "spectral_convergence", "visqol", "f0_rmse_cents", "f0_gpe", "f0_fpe_cents", "vuv_error", "buzz_db", "pesq_wb",
                        "stoi", "note_pitch_copies", "note_pitch_real", "note_pitch_ratio", "note_buzz_db",
                        "x_real_time")
            if any(c in r for r in results.values())]
    print(f"{args.recipe}, split {args.split}, {len(clips)} clips")
    print(f"{'vocoder':<70}" + "".join(f" {c:>13}" for c in cols))
    for label, r in results.items():
        print(f"{label:<70}" + "".join(f" {r.get(c, float('nan')):>13.4f}" for c in cols))
    if args.paired:
        _paired(results, [c for c in cols if c != "x_real_time"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def _paired(results: dict, cols: list[str]) -> None:
    """Each vocoder after the first minus the first, per clip: mean [95 % interval] (clips), printed
    and stored as the vocoder's ``"paired"`` entry (so ``--json`` has it).
    """
    from specgan.metrics import paired_bootstrap

    (ref_label, ref), *others = results.items()
    cols = [c for c in cols if c in ref["per_clip"]]  # per-clip measures only (--notes' columns are per set)
    print(f"\nminus {ref_label}, per clip: mean difference [95% bootstrap interval] (clips)")
    for label, r in others:
        r["paired"] = {c: paired_bootstrap(r["per_clip"][c], ref["per_clip"][c]) for c in cols}
        print(label)
        for c, b in r["paired"].items():
            print(f"  {c:<14} {b['diff']:+.4f} [{b['lo']:+.4f}, {b['hi']:+.4f}] ({b['n']})")


if __name__ == "__main__":
    sys.exit(main())
