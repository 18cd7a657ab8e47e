"""Stage-one ablation at an equal CPU budget: today's recipe against each lever of issue 13 added
alone, and all of them together. Every candidate trains for the same CPU time (one thread, the
same prepared features, the same seed), then is scored by ``specgan evaluate``'s own generation
metrics (:func:`specgan.evaluate.generation_metrics`) with Griffin-Lim as the vocoder, so that no
candidate's score depends on a trained vocoder.

    python tools/ablate_specgan.py --recipe recipes/speech.yaml --cpu-minutes 60 --jobs 2
    python tools/ablate_specgan.py --recipe recipes/music.yaml --only baseline,film,combined

The recipe's work dir must hold its features (``specgan run --recipe R --stop-stage 1``).
Candidates are recipe overlays (``--set`` lines, below), so an ablation is a config line; extra
``--set`` options apply to every candidate (e.g. to point at another prepared work dir).
Outputs: ``<work>/ablation-specgan/<name>/`` (the run; resumable: an interrupted candidate
continues with the CPU time it has left), ``.../<name>/result.json`` and the markdown table
``<work>/ablation-specgan/table.md``. The budget is CPU time of the training process
(``time.process_time``), so other load on the machine does not change what a candidate gets.
``--branch-from C`` starts each candidate that has no run yet from candidate C's last checkpoint
(weights, optimisers, step, and the CPU time behind them, which counts toward the budget): two
levers compared from one trained point at an equal further budget. The lever must keep C's model
shape (a loss weight, not a new layer); another shape is refused, naming the changed keys.

Candidates are drawn as trained (truncation ψ 1, no smoothing), whatever the recipe's ``synth``
says.

Columns: the evaluation classifier's label accuracy on generated clips (real held-out clips in
brackets: its ceiling), FID on the classifier's embeddings (real train vs real test in brackets:
the floor), NDB/k, and for pitch labels the pYIN pitch accuracy of the Griffin-Lim-vocoded
notes (real notes in brackets), for speech the periodicity of active frames (real mels through
Griffin-Lim in brackets; :func:`specgan.metrics.harmonicity`) and the voiced fraction, and the
ripple of the low mel bands with its frame-to-frame correlation (:func:`specgan.stage_one.harmonics.fine_structure`:
harmonic lines move with the F0; a checkerboard flips sign, a frozen pattern does not move).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "ablation-specgan"

_AUGMENT = ["specgan.augment={policy: [gain, translation, cutout], p: 1.0, translation: 0.125, cutout: 0.25, "
            "gain_db: 6.0}"]
_FILM = ["specgan.generator.conditioning=film"]
# GANSynth weighted its pitch classifier 10 against a loss of another scale; the WGAN-GP authors'
# AC-WGAN-GP used 1 (critic). 1 keeps the cross-entropy (~ln K) beside the Wasserstein estimate.
_AUX = ["specgan.critic.aux_classifier=true", "specgan.aux_weight=1.0"]
_NEAREST = ["specgan.generator.upsample=nearest"]
_TTUR = ["specgan.lr_d=4.0e-4", "specgan.n_critic=2"]
_LAZY_GP = ["specgan.gp_every=4"]
_COMBINED = [*_AUGMENT, *_FILM, *_AUX, *_NEAREST, *_TTUR, *_LAZY_GP]
# the source-filter head, and its F0 as 64 bins or from the data
_HARMONIC = [*_COMBINED, "specgan.generator.harmonic=true"]
_BINS = [*_HARMONIC, "specgan.generator.f0_bins=64"]
_F0_DATA = [*_HARMONIC, "specgan.generator.f0_source=data"]
_PRIOR_MS = [*_COMBINED, "specgan.generator.class_prior=mean", "specgan.mode_seeking=1.0"]
# Real speech's harmonic lines are ±0.2-0.6 nats around the envelope, a few bands apart.
_DETAIL = ["specgan.critic.detail=4.0", "specgan.critic.detail_width=7"]
# issue 29's consonant levers, on the shipped speech-multi design (combined-harmonic-data): a critic
# of its own on the bands above 3 kHz (fricatives, bursts), or the label classifier weighted up
_HIGH_BAND = ["specgan.critic.high_band=1.0", "specgan.critic.high_band_hz=3000.0"]

# name → (what it tests, overrides on top of the recipe)
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "baseline": ("today's recipe (SpecGAN: label at the input, transposed convs, n_critic 5, lr 1e-4)", []),
    "augment": ("+ DiffAugment: gain ±6 dB, time shift ±1/8, time cutout 1/4 (real and fake)", _AUGMENT),
    "film": ("+ FiLM: the label scales/shifts every generator stage", _FILM),
    "aux": ("+ auxiliary classifier head on the critic, weight 1", _AUX),
    "nearest": ("+ nearest resize + conv upsampling", _NEAREST),
    "ttur": ("+ TTUR: lr_d 4e-4, n_critic 2", _TTUR),
    "lazy-gp": ("+ lazy GP: every 4th critic step, weighted 4", _LAZY_GP),
    "combined": ("all of the above", _COMBINED),
    "combined-refine": ("combined + two full-resolution residual blocks in the generator (harmonic lines are "
                        "2-5 mel bins apart: at the Nyquist of SpecGAN's last stage; behind combined at 20 CPU-min, not in "
                        "the default set)",
                        [*_COMBINED, "specgan.generator.refine_blocks=2"]),
    "combined-prior": ("combined, drawing a residual on each label's mean training mel (generator.class_prior: "
                       "mean; not in the default set)", [*_COMBINED, "specgan.generator.class_prior=mean"]),
    "combined-prior-ms": ("combined-prior + mode seeking (MSGAN, weight 1: same label, other noise, other note; "
                          "against combined-prior's within-pitch collapse; not in the default set)",
                          _PRIOR_MS),
    "combined-harmonic": ("combined + the source-filter head (generator.harmonic: per-frame F0 and voicing draw "
                          "the harmonic comb of the low mel bands; not in the default set)",
                          _HARMONIC),
    "combined-harmonic-bins": ("combined + the source-filter head with its F0 classified into 64 log-spaced bins "
                               "(generator.f0_bins: the softmax mixes the bins' combs; a regressed F0 stayed near its "
                               "initial value; not in the default set)",
                               _BINS),
    "combined-harmonic-hard": ("combined-harmonic-bins, drawing only the most likely bin's comb with the softmax's "
                               "gradient (generator.f0_hard: straight-through; the soft mixture never committed to an "
                               "F0; not in the default set)",
                               [*_BINS, "specgan.generator.f0_hard=true"]),
    "combined-harmonic-data": ("combined + the source-filter head whose F0 contour is drawn from the training clips' "
                               "own (generator.f0_source: data; the head only voices it; not in the default set)",
                               _F0_DATA),
    "combined-harmonic-data-input": ("combined-harmonic-data + the contour as a network input (generator.f0_input: its "
                                     "log-F0 added to every stage's features, so formants and voicing can fit it; not "
                                     "in the default set)",
                                     [*_F0_DATA, "specgan.generator.f0_input=true"]),
    "combined-harmonic-data-despike": ("combined-harmonic-data with the contours' octave errors dropped before the bank "
                                       "is filled (generator.f0_despike 5 semitones from the median of 9 harmonic "
                                       "frames; not in the default set)",
                                       [*_F0_DATA, "specgan.generator.f0_despike=5.0"]),
    "combined-harmonic-salience": ("combined-harmonic-bins + the critic's pitch-salience channel (critic.salience 1: "
                                   "each frame's low-band ripple against the comb of 64 F0s, so one F0 and its "
                                   "contour are local to the critic; not in the default set)",
                                   [*_BINS, "specgan.critic.salience=1.0"]),
    "combined-detail": ("combined + the critic's fine-structure channel (critic.detail 4: the mel minus its 7-band "
                        "moving average along frequency, as a second input; not in the default set)",
                        [*_COMBINED, *_DETAIL]),
    "combined-harmonic-detail": ("combined-harmonic + the critic's fine-structure channel (the critic learns "
                                 "the comb's depth faster; not in the default set)",
                                 [*_HARMONIC, *_DETAIL]),
    "combined-profile": ("combined, drawing a residual on each label's mean spectrum over time "
                         "(generator.class_prior: profile; not in the default set)",
                         [*_COMBINED, "specgan.generator.class_prior=profile"]),
    "combined-harmonic-data-hiband": ("combined-harmonic-data + a small conditional patch critic on the mel bands "
                                      "above 3 kHz alone, with its own projection term (critic.high_band 1: the "
                                      "label's say on the fricative band; not in the default set)",
                                      [*_F0_DATA, *_HIGH_BAND]),
    "combined-prior-ms-inst4": ("combined-prior-ms with the instrument label's auxiliary cross-entropy weighted 4 "
                               "(specgan.aux_key_weight; pitch stays 1), for [pitch, instrument] recipes",
                               [*_PRIOR_MS, "specgan.aux_key_weight={instrument: 4.0}"]),
    "combined-prior-ms-map": ("combined-prior-ms with a mapping network on the summed label embedding "
                              "(generator.label_mlp 2: e + MLP(e), zero at the start), so that FiLM's modulation "
                              "by one label can depend on another's value; for [pitch, instrument] recipes",
                              [*_PRIOR_MS, "specgan.generator.label_mlp=2"]),
    "combined-prior-ms-detail": ("combined-prior-ms + the critic's fine-structure channel (critic.detail 4): the "
                                 "instrument classifier reads the sustain's partials along frequency, where the "
                                 "generated notes are softer (curvature 0.89x real); for [pitch, instrument] recipes",
                                 [*_PRIOR_MS, *_DETAIL]),
    "combined-prior-ms-refine": ("combined-prior-ms + two full-resolution residual blocks in the generator (the "
                                 "partials' detail drawn at the mel's own resolution); for [pitch, instrument] recipes",
                                 [*_PRIOR_MS, "specgan.generator.refine_blocks=2"]),
    "combined-harmonic-data-aux3": ("combined-harmonic-data with the auxiliary classifier weighted 3 instead of 1 "
                                    "(word-conditional detail pulled harder; not in the default set)",
                                    [*_F0_DATA, "specgan.aux_weight=3.0"]),
    "bilinear": ("+ bilinear resize + conv upsampling (not in the default set)",
                 ["specgan.generator.upsample=bilinear"]),
    "combined-no-film": ("all levers but FiLM (combined collapsed within each label at 20 CPU-min; not in the "
                         "default set)", [*_AUGMENT, *_AUX, *_NEAREST, *_TTUR, *_LAZY_GP]),
    "no-ema-rampup": ("baseline with the EMA's fixed 0.999 decay from step 1 (before ema_rampup; not in the "
                      "default set)", ["specgan.ema_rampup=0"]),
}
DEFAULT = [n for n in CANDIDATES if n not in ("bilinear", "no-ema-rampup", "combined-no-film", "combined-refine",
                                              "combined-prior", "combined-profile",
                                              "combined-prior-ms", "combined-harmonic", "combined-harmonic-bins",
                                              "combined-harmonic-hard", "combined-harmonic-data",
                                              "combined-harmonic-data-input", "combined-harmonic-data-despike",
                                              "combined-harmonic-salience",
                                              "combined-detail",
                                              "combined-harmonic-detail", "combined-harmonic-data-hiband",
                                              "combined-harmonic-data-aux3")]


def _recipe(args, name: str):
    from specgan.recipe import load_recipe

    extra = [*(args.set or []), *([f"work_dir={args.work_dir}"] if args.work_dir else [])]
    # candidates are scored as trained (psi 1, no smoothing), whatever the recipe's synth draws with,
    # so that every table compares the same draw; --set synth.truncation=... scores another
    return load_recipe(args.recipe, ["synth.truncation=1.0", "synth.smoothing=0.0", *CANDIDATES[name][1], *extra])


def _flat(m: dict) -> dict:
    """The table's numbers out of generation_metrics' answer."""
    out = {k: m.get(k) for k in ("label_accuracy", "label_accuracy_real", "fid", "fid_real_train_vs_test", "ndb",
                                 "bins", "jsd", "n")}
    for key, acc in m.get("labels", {}).items():  # several labels: each one's accuracy, then all right
        out[f"label_accuracy_{key}"], out[f"label_accuracy_{key}_real"] = acc["generated"], acc["real"]
    if "pitch" in m:
        out["pitch_accuracy"] = m["pitch"]["generated"]["pitch_accuracy"]
        out["pitch_accuracy_real"] = m["pitch"]["real"]["pitch_accuracy"]
        for t, r in m["pitch"].get("trackers", {}).items():
            if t != "pyin":
                out[f"pitch_accuracy_{t}"] = r["generated"]["pitch_accuracy"]
                out[f"pitch_accuracy_{t}_real"] = r["real"]["pitch_accuracy"]
    if "harmonicity" in m:
        h = m["harmonicity"]
        out["periodicity"] = h["generated"]["periodicity"]
        out["periodicity_real"] = h["real_vocoded"]["periodicity"]
        out["voiced_fraction"] = h["generated"]["voiced_fraction"]
        out["voiced_fraction_real"] = h["real_vocoded"]["voiced_fraction"]
    if "comb_fit" in m:
        for k in ("fit", "harmonic_frames"):
            out[f"comb_{k}"] = m["comb_fit"]["generated"][k]
            out[f"comb_{k}_real"] = m["comb_fit"]["real"][k]
    if "fine_structure" in m:
        f = m["fine_structure"]
        for k in ("contrast", "time_corr"):
            out[f"ripple_{k}"] = f["generated"][k]
            out[f"ripple_{k}_real"] = f["real"][k]
    if "ovrl" in m.get("dnsmos", {}).get("generated", {}):  # the real column: the held-out audio itself
        out["dnsmos_ovrl"] = m["dnsmos"]["generated"]["ovrl"]
        out["dnsmos_ovrl_real"] = m["dnsmos"]["real_audio"]["ovrl"]
    return out


def branch(src: Path, out: Path) -> None:
    """Start candidate ``out`` from candidate ``src``'s last checkpoint: its state (weights,
    optimisers, step, the CPU time behind it), history and budget ledger, so that two levers are
    compared from the same trained point at an equal further budget. ``branched_from.json`` says so.
    """
    import shutil

    if not (src / "state.pt").is_file():
        raise SystemExit(f"ablate_specgan: --branch-from: {src} has no state.pt to start from")
    for f in ("state.pt", "history.jsonl", "budget.json"):
        if (src / f).is_file():
            shutil.copy2(src / f, out / f)
    from vocoder.checkpoint import load_training_state

    st = load_training_state(out / "state.pt", report=False)
    (out / "branched_from.json").write_text(json.dumps({"from": src.name, "step": st.get("step"),
                                                        "cpu_seconds": st.get("cpu_seconds")}, indent=1))


def run_one(args, name: str) -> dict:
    """Train ``name`` until its CPU budget is used (resuming), then score it."""
    import torch

    torch.set_num_threads(1)
    recipe = _recipe(args, name)
    if args.n_generated:
        recipe.evaluate.n_generated = args.n_generated
    out = recipe.work / SECTION / name
    out.mkdir(parents=True, exist_ok=True)
    # one process per candidate: a second one (another ablation call naming it) would resume the same
    # state.pt and both would write it; refused, naming the candidate
    with open(out / ".train.lock", "w") as busy:
        try:
            fcntl.flock(busy, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"ablate_specgan: {name} is being trained or scored by another process ({out})") \
                from None
        return _train_and_score(args, name, recipe, out)


def _train_and_score(args, name: str, recipe, out: Path) -> dict:
    """:func:`run_one`'s work, under the candidate's lock."""
    from specgan.checkpoints import load_stage_one
    from specgan.evaluate import generation_metrics
    from specgan.training import train_specgan, train_to_cpu_budget
    from vocoder.registry import build_generator

    budget = args.cpu_minutes * 60
    if args.branch_from and not (out / "state.pt").is_file():
        branch(recipe.work / SECTION / args.branch_from, out)
    done = out / "result.json"
    if done.is_file() and json.loads(done.read_text())["cpu_minutes"] * 60 >= budget - 1 \
            and (out / "model.safetensors").is_file():
        return json.loads(done.read_text())  # trained and scored at this budget already
    # a branched run must resume its source's weights: another shape is refused (mode train), not
    # retrained from scratch on what is left of a budget the source already spent
    mode = "train" if (out / "branched_from.json").is_file() else "run"
    used = train_to_cpu_budget(out, budget, lambda seconds: train_specgan(
        recipe, steps=10**9, out=out, progress=False, mode=mode, device="cpu", cpu_seconds=seconds,
        meta={"ablation": name}))
    model = load_stage_one(out / "model.safetensors")
    gl = build_generator({"name": "griffinlim"}, recipe.mel).eval()
    # One candidate scores at a time: the evaluation classifier (<work>/classifier) is trained on
    # first use and shared, and two workers must not both write it.
    with open(recipe.work / SECTION / ".score.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        m = generation_metrics(recipe, model, gl)
    result = {"name": name, "what": CANDIDATES[name][0], "step": model.step, "cpu_minutes": used / 60,
              **_flat(m)}
    (out / "metrics.json").write_text(json.dumps(m, indent=1, default=str))
    done.write_text(json.dumps(result, indent=1))
    # one file per budget as well: a candidate resumed at a larger budget keeps its earlier point
    (out / f"result-{round(used / 60)}min.json").write_text(json.dumps(result, indent=1))
    return result


def _cell(r: dict, key: str, digits: str = ".3g") -> str:
    v, ref = r.get(key), r.get(f"{key}_real", r.get({"fid": "fid_real_train_vs_test"}.get(key, ""), None))
    if v is None:
        return "–"
    text = format(v, digits)
    return f"{text} ({format(ref, digits)})" if ref is not None else text


def table(rows: list[dict]) -> str:
    cols = [("label acc (real)", "label_accuracy", ".2f"),
            ("instrument acc (real)", "label_accuracy_instrument", ".2f"),
            ("voice acc (real)", "label_accuracy_voice", ".2f"), ("all labels right (real)", "label_accuracy_all", ".2f"),
            ("FID (real floor)", "fid", ".3g"),
            ("NDB/k", None, None), ("pitch acc, pYIN (real)", "pitch_accuracy", ".2f"),
            ("pitch acc, CREPE (real)", "pitch_accuracy_crepe", ".2f"),
            ("periodicity (real)", "periodicity", ".2f"), ("voiced fraction (real)", "voiced_fraction", ".2f"),
            ("low-band ripple, nats (real)", "ripple_contrast", ".2f"),
            ("ripple frame-to-frame corr. (real)", "ripple_time_corr", ".2f"),
            ("ripple's comb fit (real)", "comb_fit", ".2f"), ("harmonic frames (real)", "comb_harmonic_frames", ".2f"),
            ("DNSMOS OVRL (real audio)", "dnsmos_ovrl", ".2f")]
    cols = [c for c in cols if c[1] is None or any(r.get(c[1]) is not None for r in rows)]
    lines = ["| candidate | what | steps | CPU-min | " + " | ".join(c[0] for c in cols) + " |",
             "|" + "---|" * (4 + len(cols))]
    for r in rows:
        cells = [f"{r.get('ndb', '–')}/{r.get('bins', '–')}" if key is None else _cell(r, key, fmt)
                 for _, key, fmt in cols]
        lines.append(f"| {r['name']} | {r['what']} | {r['step']} | {r['cpu_minutes']:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


CURVE_PANELS = (("label_accuracy", "label accuracy"), ("fid", "FID"), ("periodicity", "periodicity"),
                ("voiced_fraction", "voiced fraction"), ("pitch_accuracy", "pitch accuracy (pYIN)"))


def budget_points(out: Path) -> list[dict]:
    """A candidate's scored budgets (its ``result-<N>min.json`` files), by CPU time."""
    pts = [json.loads(p.read_text()) for p in out.glob("result-*min.json")]
    return sorted(pts, key=lambda r: r["cpu_minutes"])


def plot_curves(work: Path, names: list[str], path: Path, recipe_name: str) -> Path:
    """Metric against CPU-minutes for each candidate's scored budgets (real held-out clips dashed),
    and the critic's Wasserstein estimate against step (history.jsonl, smoothed over 40 logs).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from specgan.plotting import save_figure

    curves = {n: budget_points(work / n) for n in names}
    curves = {n: c for n, c in curves.items() if c}
    if not curves:
        raise SystemExit(f"ablate_specgan: no scored budgets (result-<N>min.json) for {', '.join(names)} in {work}")
    panels = [(k, t) for k, t in CURVE_PANELS if any(r.get(k) is not None for c in curves.values() for r in c)]
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(3.0 * (len(panels) + 1), 2.6), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels):
        real = None
        for i, (name, pts) in enumerate(curves.items()):
            xs = [r["cpu_minutes"] for r in pts if r.get(key) is not None]
            ys = [r[key] for r in pts if r.get(key) is not None]
            ax.plot(xs, ys, "o-", color=f"C{i}", label=name, ms=3)
            ref = {"fid": "fid_real_train_vs_test"}.get(key, f"{key}_real")
            real = next((r[ref] for r in reversed(pts) if r.get(ref) is not None), real)
        if real is not None:
            ax.axhline(real, color="k", ls="--", lw=0.8, label="real held-out" if key != "fid" else "real floor")
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("CPU-minutes", fontsize=7)
        ax.tick_params(labelsize=6)
    ax = axes[0][-1]
    for i, name in enumerate(curves):
        hist = work / name / "history.jsonl"
        rows = [json.loads(line) for line in hist.read_text().splitlines() if '"critic/wdist"' in line] \
            if hist.is_file() else []
        if len(rows) > 1:
            w = np.convolve([r["critic/wdist"] for r in rows], np.ones(40) / 40, mode="valid") \
                if len(rows) >= 40 else np.array([r["critic/wdist"] for r in rows])
            ax.plot([r["step"] for r in rows][len(rows) - len(w):], w, color=f"C{i}", lw=0.8)
    ax.set_title("critic's Wasserstein estimate", fontsize=8)
    ax.set_xlabel("generator step", fontsize=7)
    ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=5)
    fig.tight_layout()
    return save_figure(fig, path, f"stage one against CPU time ({recipe_name})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/speech.yaml")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="recipe override for every candidate")
    ap.add_argument("--work-dir", default=None)
    ap.add_argument("--cpu-minutes", type=float, default=60.0, help="training CPU time per candidate")
    ap.add_argument("--only", default=None, help=f"comma-separated candidates (default: {','.join(DEFAULT)})")
    ap.add_argument("--branch-from", default=None, metavar="CANDIDATE",
                    help="start each candidate that has no run yet from this candidate's last checkpoint (its "
                         "CPU time counts toward the budget), to compare levers from one trained point")
    ap.add_argument("--jobs", type=int, default=1, help="candidates trained at once (one thread each)")
    ap.add_argument("--n-generated", type=int, default=None, help="clips scored (default: evaluate.n_generated)")
    ap.add_argument("--curves", default=None, metavar="PNG",
                    help="train nothing: plot the --only candidates' scored budgets against CPU time to PNG")
    ap.add_argument("--run", default=None, help=argparse.SUPPRESS)  # one candidate, in a worker process
    args = ap.parse_args()
    if args.run:
        print(json.dumps(run_one(args, args.run)))
        return 0
    names = args.only.split(",") if args.only else DEFAULT
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        ap.error(f"unknown candidate(s) {unknown}; known: {', '.join(CANDIDATES)}")
    for name in names:  # every overlay must load before anything trains
        _recipe(args, name)
    if args.curves:
        recipe = _recipe(args, "baseline")
        print(plot_curves(recipe.work / SECTION, names, Path(args.curves), recipe.name))
        return 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    base = [sys.executable, str(Path(__file__).resolve()), "--recipe", args.recipe, "--cpu-minutes",
            str(args.cpu_minutes)]
    for s in args.set or []:
        base += ["--set", s]
    if args.work_dir:
        base += ["--work-dir", args.work_dir]
    if args.n_generated:
        base += ["--n-generated", str(args.n_generated)]
    if args.branch_from:
        base += ["--branch-from", args.branch_from]
    queue, running, failed = list(names), [], []
    while queue or running:
        while queue and len(running) < args.jobs:
            name = queue.pop(0)
            print(f"ablation: {name} ...", flush=True)
            running.append((name, subprocess.Popen([*base, "--run", name], env=env, cwd=ROOT,
                                                   stdout=subprocess.DEVNULL)))
        time.sleep(1)
        for item in list(running):
            if item[1].poll() is not None:
                running.remove(item)
                if item[1].returncode:
                    failed.append(item[0])
                print(f"ablation: {item[0]} {'failed' if item[1].returncode else 'done'}", flush=True)
    work = _recipe(args, "baseline").work / SECTION
    # every candidate scored so far (also by earlier --only calls), in the table's fixed order
    rows = [json.loads(p.read_text()) for p in (work / n / "result.json" for n in CANDIDATES) if p.is_file()]
    text = table(rows)
    (work / "table.md").write_text(text)
    print(text)
    if failed:
        print(f"ablation: failed: {', '.join(failed)} (their logs: stderr above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
