"""Enhancement ablation at an equal CPU budget (issue 30): the output (mask or direct), the GAN term
(on or off), the reconstruction domain (log-mel or compressed magnitude), each candidate trained for
the same CPU time (one thread, the same clean speech and noise stream, the same seed), then scored
by ``specgan evaluate``'s enhancement scorer (:func:`specgan.enhancement.evaluate.evaluate_enhancement`)
on the unseen speaker under the unseen noise types at the four test SNRs, through **both** syntheses:
the vocoder (``enhanced_vocoder``) and the enhancer's gains on the noisy STFT (``enhanced_gain``).

    python tools/ablate_enhance.py --recipe recipes/enhance.yaml --cpu-minutes 20
    python tools/ablate_enhance.py --only mask-reg,mask-comp --cpu-minutes 40 --clips 3

The recipe's work dir must hold its prepared clean speech (``specgan run --recipe R --stop-stage 0``).
Outputs: ``<work>/ablation-enhance/<name>/`` (the run, resumable with the CPU time it has left; a
larger ``--cpu-minutes`` continues it), ``<name>/eval/enhance.json``, ``<name>/result.json`` and the
markdown table ``<work>/ablation-enhance/table.md``. The budget is the training process's CPU time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ablate_use import Ablation  # noqa: E402

SECTION = "ablation-enhance"

# the first ablation's training noise types (the recipe's before bands and bursts joined them)
FOUR = "enhance.train_noises=[white, pink, hum, babble]"
# the unseen synthesised types and two recorded groups (OpenSFX) that no candidate trains on
RECORDED_TEST = "enhance.test_noises=[brown, clicks, tones, vehicles, signals]"
# comp-gan-rec's recipe: the recorded test list, and three recorded groups beside the six synthesised types
RECORDED_TRAIN = [RECORDED_TEST, "enhance.train_noises=[white, pink, hum, babble, bands, bursts, machinery, nature, "
                                 "impacts]"]
# name: (what it is, recipe overlay)
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "mask-gan": ("mask, log-mel L1 + LSGAN pair critic", [FOUR]),
    "mask-reg": ("mask, log-mel L1 only (no critic)", [FOUR, "enhance.adv_weight=0"]),
    "direct-reg": ("direct mel, log-mel L1 only", [FOUR, "enhance.adv_weight=0", "enhance.model.output=direct"]),
    "mask-comp": ("mask, compressed-magnitude L1 only", [FOUR, "enhance.adv_weight=0", "enhance.loss=compressed"]),
    "mask-comp-gan": ("mask, compressed-magnitude L1 + LSGAN pair critic", [FOUR, "enhance.loss=compressed"]),
    "mask-gan-wide": ("mask, log-mel L1 + critic, six training noise types (+ bands, bursts)", []),
    # recorded noise (specgan.enhancement.recorded): the recipe as shipped against the same with three
    # recorded groups added to training, both tested on the synthesised unseen types and two recorded
    # groups neither heard
    "comp-gan-six": ("the recipe (mask, compressed L1 + critic, six synthesised training types); tested with "
                     "recorded vehicles and signals too", [RECORDED_TEST]),
    "comp-gan-rec": ("comp-gan-six + recorded machinery, nature and impacts in training",
                     RECORDED_TRAIN),
    # the trade-off above (recorded noise: more removed, more speech lost): an asymmetric loss that
    # charges removed speech three times what it charges noise left
    "comp-gan-rec-sw3": ("comp-gan-rec with the reconstruction charging removed speech 3x (speech_weight 3: an "
                         "asymmetric loss against over-suppression)",
                         [*RECORDED_TRAIN, "enhance.speech_weight=3.0"]),
    "comp-gan-rec-sw6": ("comp-gan-rec-sw3 with removed speech charged 6x (sw3 still over-suppressed brown noise "
                         "and the 17.5-dB pairs)",
                         [*RECORDED_TRAIN, "enhance.speech_weight=6.0"]),
    "comp-gan-keys": ("comp-gan-rec + typing (keyboard: bucklespring's recorded keys) in training",
                      [RECORDED_TEST, "enhance.train_noises=[white, pink, hum, babble, bands, bursts, machinery, "
                                      "nature, impacts, keyboard]"]),
}
DEFAULT = ["mask-gan", "mask-reg", "direct-reg", "mask-comp"]
MEASURES = ("pesq_wb", "stoi", "si_sdr", "dnsmos_ovrl")


def score(args, recipe, name: str, out: Path) -> dict:
    """Both syntheses on the test pairs, and the last dev L1."""
    from specgan.enhancement.evaluate import evaluate_enhancement

    ev = evaluate_enhancement(recipe, model=out / "model.safetensors", max_clips=args.clips, report=lambda _: None,
                              out_dir=out / "eval")
    enhanced = "enhanced" if recipe.enhance.synthesis == "vocoder" else "enhanced_gain"
    rename = {enhanced: f"enhanced_{recipe.enhance.synthesis}"}
    hist = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines() if '"dev/l1"' in line]
    return {"step": ev["step"], "pairs": ev["pairs"], "overall": {rename.get(k, k): v for k, v in ev["overall"].items()},
            "dev_l1": hist[-1]["dev/l1"] if hist else None, "dev_noisy_l1": hist[-1]["dev/noisy_l1"] if hist else None}


def table(rows: list[dict]) -> str:
    """One line per candidate and synthesis, the references (noisy, baseline, ceiling) once."""
    head = "| candidate | synthesis | steps | CPU-min | dev L1 (noisy) | " + " | ".join(MEASURES) + " |"
    lines = [head, "|---|---|---|---|---|" + "---|" * len(MEASURES)]

    def cells(d: dict) -> str:
        return " | ".join(f"{d[m]:.3f}" if m in d else "–" for m in MEASURES)

    if rows:
        ref = rows[0]["overall"]
        for s in ("noisy", "baseline", "clean_vocoded"):
            if s in ref:
                lines.append(f"| ({s}) | | | | | {cells(ref[s])} |")
    for r in rows:
        dev = f"{r['dev_l1']:.3f} ({r['dev_noisy_l1']:.3f})" if r.get("dev_l1") is not None else "–"
        for s in ("enhanced_vocoder", "enhanced_gain"):
            if s in r["overall"]:
                lines.append(f"| {r['name']}: {r['what']} | {s.split('_')[1]} | {r['step']} | {r['cpu_minutes']:.3g} "
                             f"| {dev} | {cells(r['overall'][s])} |")
    return "\n".join(lines)


def _train(*a, **kw):
    from specgan.training import train_enhancer

    return train_enhancer(*a, **kw)


ABLATION = Ablation(__doc__, "recipes/enhance.yaml", SECTION, CANDIDATES, DEFAULT, _train, score, table,
                    [(("--clips",), {"type": int, "default": 3,
                                     "help": "test clips scored (x test noise types x SNRs)"})], cpu_minutes=20.0)

if __name__ == "__main__":
    sys.exit(ABLATION.main())
