"""Vocoder ablation at an equal CPU budget: each candidate trains for the same CPU time (one
thread, same data, same seed), then is measured by copy synthesis on the recipe's test split
(for recipes/voices.yaml: a real speaker no candidate trained on) beside Griffin-Lim.

    python tools/ablate_vocoders.py --recipe recipes/voices.yaml --cpu-minutes 20 --jobs 2
    python tools/ablate_vocoders.py --recipe recipes/voices.yaml --only phase,istft   # a subset

Candidates are recipe overlays (``--set`` lines, below), so an ablation is a config line.
Outputs: ``<work>/ablation/<name>/`` (the run; resumable: an interrupted candidate continues
with the CPU time it has left), ``<work>/ablation/<name>/result.json`` and a markdown table
``<work>/ablation/table.md``. Budget is CPU time of the training process (``time.process_time``),
so other load on the machine does not change what a candidate gets.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Every candidate states its whole objective (generator, critics, adversarial loss, weights), so it
# does not drift when the recipe's own vocoder section changes.
_MEL_WEIGHTS = "vocoder.weights={mel: 45.0, fm: 2.0, adv: 1.0, stft: 2.5}"
_PHASE_WEIGHTS = ("vocoder.weights={mel: 45.0, fm: 2.0, adv: 1.0, stft: 2.5, amp: 45.0, phase_ip: 100.0, "
                  "phase_gd: 100.0, phase_iaf: 100.0, consistency: 20.0}")
_MSD_MPD = ["vocoder.critics=[{name: msd, width: 0.25}, {name: mpd, width: 0.25}]", "vocoder.adversarial=lsgan"]
_MPD_MRD = ["vocoder.critics=[{name: mpd, width: 0.25}, {name: mrd, width: 0.25}]", "vocoder.adversarial=hinge"]
_PHASE = ["vocoder.generator={name: phase}", _PHASE_WEIGHTS, *_MPD_MRD]
_PGHI = ["vocoder.generator={name: phase, phase_head: pghi, n_fft: 512, upsample: 4, upsampler: linear, "
         "amp_layers: 3, nnls_iter: 30}"]
_PGHI_FRAMES = [_PGHI[0].replace("nnls_iter: 30}", "nnls_iter: 30, pghi_mode: frames}")]
# pghi-refine's settings on top of _PGHI: 16 Griffin-Lim iterations, regression losses only, no critics
_REFINE = ["vocoder.generator.refine_iter=16", "vocoder.weights={mel: 45.0, stft: 2.5, amp: 45.0}",
           "vocoder.critic_warmup_steps=1000000000"]

# name → (what it tests, overrides on top of the recipe)
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "istft": ("the previous speech recipe: istft, MSD+MPD (LSGAN), mel + MR-STFT",
              ["vocoder.generator={name: istft}", *_MSD_MPD, _MEL_WEIGHTS]),
    "phase": ("the new design: phase (FreeV prior, atan2, hop/4 iSTFT), APNet losses, MPD+MRD hinge", _PHASE),
    "phase-no-prior": ("phase minus the amplitude prior", [*_PHASE, "vocoder.generator.amp_prior=false"]),
    "phase-direct": ("phase minus atan2 (phase predicted directly)", [*_PHASE, "vocoder.generator.phase_head=direct"]),
    "phase-hop1": ("phase minus the short internal hop (upsample 1)", [*_PHASE, "vocoder.generator.upsample=1"]),
    "phase-no-phase-loss": ("phase minus the phase/amplitude/consistency losses",
                            ["vocoder.generator={name: phase}", _MEL_WEIGHTS, *_MPD_MRD]),
    "phase-mpd-only": ("phase minus MRD (MPD only)",
                       [*_PHASE, "vocoder.critics=[{name: mpd, width: 0.25}]"]),
    "phase-integrate": ("phase with the integrated-frequency phase head and linear upsampling (no per-frame "
                        "pattern: the hop-rate comb's cause)", [*_PHASE, "vocoder.generator.phase_head=integrate",
                                                               "vocoder.generator.upsampler=linear"]),
    "phase-linear": ("phase with the linear upsampler (no per-mel-frame pattern), atan2 head",
                     [*_PHASE, "vocoder.generator.upsampler=linear"]),
    "phase-only": ("the mel's own magnitude (prior, no residual) at the mel's STFT, integrated phase: "
                   "only the phase is learned (tools/phase_bounds.py: PESQ 3.8 with the true phase)",
                   [*_PHASE, "vocoder.generator.amp_residual=false", "vocoder.generator.upsample=1",
                    "vocoder.generator.phase_head=integrate"]),
    "phase-only-nnls": ("phase-only with the prior refined by 30 NNLS updates (the magnitude of the oracle's "
                        "PESQ-3.8 row: the clamped pseudo-inverse adds energy between harmonics)",
                        [*_PHASE, "vocoder.generator.amp_residual=false", "vocoder.generator.upsample=1",
                         "vocoder.generator.phase_head=integrate", "vocoder.generator.nnls_iter=30"]),
    "pghi-mag": ("magnitude network (FreeV prior + NNLS + residual, 3 branch blocks, linear upsampler) at "
                 "n_fft 512 / hop 64, phase by PGHI from it (no phase network); amplitude + mel + MR-STFT "
                 "losses, no critics (tools/phase_bounds.py: true magnitude there + PGHI scores PESQ 4.3)",
                 [*_PGHI, "vocoder.weights={mel: 45.0, stft: 2.5, amp: 45.0}",
                  "vocoder.critic_warmup_steps=1000000000"]),
    "pghi-refine": ("pghi-mag with 16 fast Griffin-Lim iterations from PGHI's phase at the internal STFT (in "
                    "training and inference: breaks the comb PGHI makes where the magnitude has no fine structure)",
                    [*_PGHI, *_REFINE]),
    "pghi-refine-1024": ("pghi-refine at n_fft 1024 (hop 64 still): a window that resolves low notes' harmonics "
                         "(31 Hz bins at 512 do not split MIDI 36's 65 Hz spacing), so the magnitude the network "
                         "must draw is steadier between mel frames (lost to pghi-refine at 20 CPU-min on music)",
                         [*_PGHI, "vocoder.generator.n_fft=1024", *_REFINE]),
    "pghi-frames": ("pghi-refine as speech.yaml now trains it: frame-by-frame PGHI in training too (the "
                    "shipped file was trained with the offline heap and runs with frames)",
                    [*_PGHI_FRAMES, *_REFINE]),
    "pghi-wide": ("pghi-frames with a larger magnitude network: trunk 384/1152 x 6 blocks, branch 192/576, "
                  "4 amplitude blocks (about 3x the network's FLOPs; PGHI and the iterations unchanged)",
                  [*_PGHI_FRAMES, *_REFINE, "vocoder.generator.dim=384", "vocoder.generator.intermediate_dim=1152",
                   "vocoder.generator.num_layers=6", "vocoder.generator.branch_dim=192",
                   "vocoder.generator.branch_intermediate_dim=576", "vocoder.generator.amp_layers=4"]),
    "ft-regress": ("the shipped speech vocoder (120 CPU-min) trained on: the same regression objective, "
                   "frame PGHI (the control for ft-gan)", [*_PGHI_FRAMES, *_REFINE]),
    "ft-gan": ("the shipped speech vocoder (120 CPU-min) with a GAN phase: MPD + MRD critics (hinge, quarter "
               "width) and feature matching from the first step, beside the regression terms",
               [*_PGHI_FRAMES, "vocoder.generator.refine_iter=16",
                "vocoder.weights={mel: 45.0, fm: 2.0, adv: 1.0, stft: 2.5, amp: 45.0}", *_MPD_MRD,
                "vocoder.critic_warmup_steps=0"]),
    "ft-heap": ("the shipped speech vocoder (120 CPU-min) trained on as it was trained: offline heap PGHI, "
                "16 iterations, regression only, the lrs ramped over 500 steps (fresh Adam moments)",
                [*_PGHI, *_REFINE, "vocoder.lr_warmup_steps=500"]),
    "mft-heap": ("music: the shipped music vocoder (120 CPU-min) trained on as it was trained (offline heap PGHI, "
                 "16 iterations, regression only), the lrs ramped over 500 steps; run with recipes/music-voc.yaml",
                 [*_PGHI, *_REFINE, "vocoder.lr_warmup_steps=500"]),
    "mft-heap-sc": ("mft-heap with the MR-STFT term (spectral convergence + log magnitude) weighted 10 instead of "
                    "2.5: the linear-magnitude error is where the low-level energy between harmonics shows "
                    "(music's ViSQOL and spectral-convergence deficit against Griffin-Lim)",
                    [*_PGHI, *_REFINE, "vocoder.weights={mel: 45.0, stft: 10.0, amp: 45.0}",
                     "vocoder.lr_warmup_steps=500"]),
    "pghi-gan": ("pghi-mag with MPD + MRD critics (hinge) and feature matching after 1500 steps",
                 [*_PGHI, "vocoder.weights={mel: 45.0, fm: 2.0, adv: 1.0, stft: 2.5, amp: 45.0}", *_MPD_MRD]),
    "hifigan-v2": ("HiFi-GAN V2, MSD+MPD (LSGAN), mel", ["vocoder.generator={name: hifigan, preset: v2}", *_MSD_MPD,
                                                       "vocoder.weights={mel: 45.0, fm: 2.0, adv: 1.0}"]),
}
# candidates that start from a trained model file (fine-tuning: the generator's weights; fresh critics)
INIT_FROM = {**{name: "pretrained/speech/vocoder.safetensors" for name in ("ft-regress", "ft-gan", "ft-heap")},
             **{name: "pretrained/music/vocoder.safetensors" for name in ("mft-heap", "mft-heap-sc")}}
# f0_gpe / f0_fpe_cents: the gross (> 20 %) and fine halves of the F0 error (specgan.metrics.f0_metrics)
METRICS = ("pesq_wb", "stoi", "f0_rmse_cents", "f0_gpe", "f0_fpe_cents", "vuv_error", "buzz_db", "mel_l1",
           "x_real_time")
# music recipes: single notes of the split through the vocoder against their asked pitch (issue 12)
NOTE_METRICS = ("note_pitch_copies", "note_pitch_real", "note_pitch_ratio", "note_buzz_db")


def _notes(g, recipe, args) -> dict:
    """The note-pitch columns (empty for a split without pitched notes, e.g. speech)."""
    from specgan.evaluate import copy_pitch

    p = copy_pitch(g, recipe, args.split, args.max_notes)
    if not p:
        return {}
    return {"note_pitch_copies": p["copies"]["pitch_accuracy"], "note_pitch_real": p["real"]["pitch_accuracy"],
            "note_pitch_ratio": p["ratio"], "note_buzz_db": p["buzz_db"], "note_pitch": p}


def _recipe(recipe_path: str, name: str, work: str | None):
    from specgan.recipe import load_recipe

    sets = CANDIDATES[name][1] if name != "griffinlim" else []
    # a candidate is scored as it trains: no inference switches from the recipe (speech.yaml ships
    # frame PGHI and 8 iterations; the ablation's rows are the training settings)
    return load_recipe(recipe_path, ["vocoder.inference={}", *sets, *([f"work_dir={work}"] if work else [])])


def run_one(args, name: str) -> dict:
    """Train ``name`` until its CPU budget is used (resuming), then measure it."""
    import torch

    torch.set_num_threads(1)
    from specgan.evaluate import _clips, copy_synthesis, is_speech
    from specgan.training import train_to_cpu_budget, train_vocoder

    recipe = _recipe(args.recipe, name, args.work_dir)
    out = recipe.work / "ablation" / name
    out.mkdir(parents=True, exist_ok=True)

    def train(seconds):  # a fine-tuning candidate takes its start weights once, when its run is fresh
        init = INIT_FROM.get(name) if not (out / "state.pt").is_file() else None
        return train_vocoder(recipe, steps=10**7, out=out, progress=False, mode="run", cpu_seconds=seconds,
                             init_from=str(ROOT / init) if init else None)

    used = train_to_cpu_budget(out, args.cpu_minutes * 60, train)
    from specgan.checkpoints import load_vocoder

    g, _ = load_vocoder(None, str(out / "model.safetensors"), None)
    clips = _clips(recipe, args.split, args.max_items)
    m = copy_synthesis(g, clips, recipe, speech=is_speech(recipe))
    result = {"name": name, "what": CANDIDATES[name][0], "step": g.checkpoint_meta["step"],
              "cpu_minutes": used / 60, "clips": len(clips), **m, **_notes(g, recipe, args)}
    (out / "result.json").write_text(json.dumps(result, indent=1))
    # one file per budget as well: a candidate resumed at a larger budget keeps its earlier point
    (out / f"result-{round(used / 60)}min.json").write_text(json.dumps(result, indent=1))
    return result


# the code behind the Griffin-Lim row: the floor itself and every measure it is scored with
FLOOR_SOURCES = ("vocoder/generators/griffinlim.py", "vocoder/generators/phase.py", "vocoder/mel.py",
                 "vocoder/buzz.py", "specgan/metrics.py", "specgan/evaluate.py", "specgan/audio.py")


def _floor_key(args) -> str:
    """What the Griffin-Lim row depends on besides the recipe's data: the split and counts, and the
    source of the floor and of every measure (a stored row from older code is measured again).
    """
    import hashlib

    h = hashlib.sha256(f"{args.split} {args.max_items} {args.max_notes}".encode())
    for rel in FLOOR_SOURCES:
        h.update((ROOT / rel).read_bytes())
    return h.hexdigest()[:16]


def griffinlim(args) -> dict:
    import torch

    torch.set_num_threads(1)
    from specgan.evaluate import _clips, copy_synthesis, is_speech
    from vocoder.registry import build_generator

    recipe = _recipe(args.recipe, "istft", args.work_dir)
    path = recipe.work / "ablation" / "griffinlim.json"
    key = _floor_key(args)
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
        print("ablation: griffinlim's stored row was measured by other code or settings: measuring again", flush=True)
    g = build_generator({"name": "griffinlim"}, recipe.mel)
    clips = _clips(recipe, args.split, args.max_items)
    result = {"name": "griffinlim", "what": "Griffin-Lim, 32 iterations (the floor)", "step": 0,
              "cpu_minutes": 0.0, "clips": len(clips), **copy_synthesis(g, clips, recipe, speech=is_speech(recipe)),
              **_notes(g, recipe, args), "key": key}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def table(rows: list[dict]) -> str:
    metrics = METRICS + tuple(k for k in NOTE_METRICS if any(k in r for r in rows))
    head = "| candidate | what | steps | CPU-min | " + " | ".join(metrics) + " |"
    lines = [head, "|" + "---|" * (4 + len(metrics))]
    for r in rows:
        cells = [f"{r.get(k, float('nan')):.3g}" if isinstance(r.get(k), float) else str(r.get(k, "")) for k in metrics]
        lines.append(f"| {r['name']} | {r['what']} | {r['step']} | {r['cpu_minutes']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/voices.yaml")
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--cpu-minutes", type=float, default=60.0, help="training CPU time per candidate")
    ap.add_argument("--only", default=None, help="comma-separated candidate names")
    ap.add_argument("--jobs", type=int, default=1, help="candidates trained at once (one thread each)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--max-items", type=int, default=24, help="test clips measured")
    ap.add_argument("--max-notes", type=int, default=147,
                    help="music recipes: single notes of the split scored against their asked pitch")
    ap.add_argument("--run", default=None, help=argparse.SUPPRESS)  # one candidate, in a worker process
    args = ap.parse_args()
    if args.run:
        print(json.dumps(griffinlim(args) if args.run == "griffinlim" else run_one(args, args.run)))
        return 0
    names = args.only.split(",") if args.only else list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        ap.error(f"unknown candidate(s) {unknown}; known: {', '.join(CANDIDATES)}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    base = [sys.executable, str(Path(__file__).resolve()), "--recipe", args.recipe, "--cpu-minutes",
            str(args.cpu_minutes), "--split", args.split, "--max-items", str(args.max_items), "--max-notes",
            str(args.max_notes)]
    if args.work_dir:
        base += ["--work-dir", args.work_dir]
    queue, running, failed = ["griffinlim", *names], [], []
    while queue or running:
        while queue and len(running) < args.jobs:
            name = queue.pop(0)
            print(f"ablation: {name} ...", flush=True)
            running.append((name, subprocess.Popen([*base, "--run", name], env=env, cwd=ROOT)))
        time.sleep(2)
        for item in list(running):
            if item[1].poll() is not None:
                running.remove(item)
                if item[1].returncode:
                    failed.append(item[0])
                print(f"ablation: {item[0]} {'failed' if item[1].returncode else 'done'}", flush=True)
    recipe = _recipe(args.recipe, "istft", args.work_dir)
    rows = [json.loads(p.read_text()) for p in [recipe.work / "ablation" / "griffinlim.json",
                                                *(recipe.work / "ablation" / n / "result.json" for n in names)]
            if p.is_file()]
    text = table(rows)
    (recipe.work / "ablation" / "table.md").write_text(text)
    print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
