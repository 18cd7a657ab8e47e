r"""An independent listener for spoken digits: CMU PocketSphinx, restricted to the ten digit words.

Debian's ``pocketsphinx`` and ``pocketsphinx-en-us`` (an acoustic model trained on recorded
English speech, nothing of this project's), with a grammar of the ten digit words, transcribes

- the real held-out clips' audio (the recogniser's ceiling on this data),
- the same clips' mels through the vocoder (Griffin-Lim unless ``--vocoder``: what vocoding costs),
- each stage-one model's generated mels for the same labels, through the same vocoder (the seeded
  draw ``specgan evaluate`` makes: :func:`specgan.evaluate.generation_draw`),

and reports the share transcribed as the asked word, overall and per word. With ``--dnsmos N`` it
also gives DNSMOS P.835 (SIG/BAK/OVRL; :func:`specgan.metrics.dnsmos_set`) of the first N clips of
every row and of N random prepared training clips (the voices the model learnt from: issue 29's
target is generated OVRL within 0.2 of theirs), so one command scores a speech model on both of
the issue's listeners. The project
classifier is trained on the training voices, so it can hear generated digits better than real
held-out ones; this recogniser has heard none of them.

    sudo apt-get install pocketsphinx pocketsphinx-en-us      # tools/setup.sh installs them
    python tools/recognise_digits.py --recipe recipes/speech-multi.yaml \\
        pretrained/speech-multi/specgan.safetensors --out logs/recognise.json
    python tools/recognise_digits.py --vocoder auto --dnsmos 128 A/model.safetensors B/model.safetensors
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SAMPLE_RATE = 16000  # the en-us acoustic model's rate
GRAMMAR = "#JSGF V1.0;\ngrammar digits;\npublic <digit> = " + " | ".join(DIGITS) + ";\n"


def recogniser() -> str:
    """The PocketSphinx command, or a one-line error saying how to install it."""
    exe = shutil.which("pocketsphinx_continuous")
    if exe is None:
        raise SystemExit("recognise_digits: pocketsphinx_continuous not found "
                         "(sudo apt-get install pocketsphinx pocketsphinx-en-us)")
    return exe


def recognise(wavs: list[np.ndarray], sr: int) -> list[str]:
    """Waveforms (float, any peak) at ``sr`` → the digit word PocketSphinx hears in each ("" for
    none). Each clip is resampled to 16 kHz, peak-normalised to 0.9 and padded with 0.25 s of
    silence on both sides (the decoder's voice-activity detection needs some).
    """
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    exe = recogniser()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        gram = Path(tmp) / "digits.gram"
        gram.write_text(GRAMMAR)
        for i, w in enumerate(wavs):
            w = np.asarray(w, dtype=np.float32).reshape(-1)
            if sr != SAMPLE_RATE:
                w = AF.resample(torch.from_numpy(w), sr, SAMPLE_RATE).numpy()
            peak = float(np.abs(w).max()) if w.size else 0.0
            w = w * (0.9 / peak) if peak > 0 else w
            pad = np.zeros(SAMPLE_RATE // 4, np.float32)
            path = Path(tmp) / f"{i}.wav"
            sf.write(path, np.concatenate([pad, w, pad]), SAMPLE_RATE, subtype="PCM_16")
            res = subprocess.run([exe, "-infile", str(path), "-jsgf", str(gram), "-logfn", "/dev/null"],
                                 capture_output=True, text=True, timeout=120)
            if res.returncode != 0:  # e.g. no acoustic model: never read a failure as "nothing heard"
                tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"recognise_digits: pocketsphinx failed on clip {i} (rc {res.returncode}): {tail[0]}")
            words = [t for t in res.stdout.split() if t in DIGITS]
            out.append(words[-1] if words else "")
    return out


def score(heard: list[str], asked: list[str]) -> dict:
    """Share of clips heard as the asked word, overall and per word, and what the misheard ones
    were heard as (per asked word, most frequent first).
    """
    if len(heard) != len(asked):
        raise ValueError(f"{len(heard)} transcripts for {len(asked)} clips")
    ok, n, wrong = Counter(), Counter(), {}
    for h, a in zip(heard, asked, strict=True):
        n[a] += 1
        ok[a] += h == a
        if h != a:
            wrong.setdefault(a, Counter())[h or "(nothing)"] += 1
    return {"accuracy": sum(ok.values()) / max(1, len(asked)), "n": len(asked),
            "none_heard": sum(h == "" for h in heard) / max(1, len(heard)),
            "per_word": {w: ok[w] / n[w] for w in sorted(n)},
            "confusions": {a: dict(c.most_common()) for a, c in sorted(wrong.items())}}


def table(rows: dict[str, dict], dnsmos: bool = False) -> list[str]:
    """The markdown table of :func:`main`'s rows: share heard as asked, per word, and with
    ``dnsmos`` each row's SIG / BAK / OVRL (a row without transcripts, the training audio, shows
    only those).
    """
    ovrl = " | DNSMOS SIG / BAK / OVRL" if dnsmos else ""
    lines = ["| clips | heard as the asked word | nothing heard | " + " | ".join(DIGITS) + ovrl + " |",
             "|---|---|---|" + "---|" * (len(DIGITS) + bool(ovrl))]
    for name, r in rows.items():
        d = r.get("dnsmos")
        mos = f" | {d['sig']:.2f} / {d['bak']:.2f} / **{d['ovrl']:.2f}** (n = {d['clips']})" if d else ""
        if "accuracy" not in r:
            lines.append(f"| {name} | – | – | " + " | ".join("–" for _ in DIGITS) + mos + " |")
            continue
        per = " | ".join(f"{r['per_word'].get(w, float('nan')):.2f}" for w in DIGITS)
        lines.append(f"| {name} | **{r['accuracy']:.3f}** (n = {r['n']}) | {r['none_heard']:.3f} | {per}{mos} |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="stage-one safetensors (one row each)")
    ap.add_argument("--recipe", default="recipes/speech-multi.yaml")
    ap.add_argument("--vocoder", default="griffinlim",
                    help="griffinlim, auto (the recipe's synth default) or a vocoder model file")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", default=[], help="recipe override")
    ap.add_argument("--out", default=None, help="JSON to write")
    ap.add_argument("--dnsmos", type=int, default=0, metavar="N",
                    help="also DNSMOS of the first N clips of each row and of N random training clips")
    args = ap.parse_args()
    recogniser()
    if args.dnsmos < 0:
        raise SystemExit(f"recognise_digits: --dnsmos must be 0 or more, got {args.dnsmos}")

    import torch

    import specgan.evaluate as E
    from specgan.audio import load_clip
    from specgan.recipe import load_recipe
    from specgan.checkpoints import load_stage_one, load_vocoder
    from specgan import metrics as M

    torch.set_num_threads(1)
    if args.dnsmos:
        why = M.dnsmos_available()
        if why is not None:
            raise SystemExit(f"recognise_digits: --dnsmos: {why}")
    recipe = load_recipe(args.recipe, args.set)
    if not args.models:
        raise SystemExit("recognise_digits: give at least one stage-one model file")
    g = load_vocoder(recipe, args.vocoder, recipe.mel)[0].eval()  # every model is checked against recipe.mel
    rows: dict[str, dict] = {}

    def add(name: str, wavs, sr: int, asked: list[str] | None) -> None:
        row = score(recognise(wavs, sr), asked) if asked is not None else {}
        if args.dnsmos:
            row["dnsmos"] = M.dnsmos_set(list(wavs[: args.dnsmos]), sr)
        rows[name] = row

    for k, path in enumerate(args.models):
        model = load_stage_one(Path(path), recipe=recipe)
        real, labels, fake, view = E.generation_draw(recipe, model)
        asked = [str(lab).lower() for lab in labels or []]
        bad = sorted(set(asked) - set(DIGITS))
        if not asked or bad:
            raise SystemExit(f"recognise_digits: {path}: labels {bad or 'none'} are not digit words")
        sr = model.mel_cfg.sample_rate
        if k == 0:  # the real rows: the same draw for every model of one work dir
            if args.dnsmos:  # the voices learnt from: a seeded draw of the prepared training clips
                train = E._split_set(recipe, "train", view.stats, model.generator.frames, max_items=args.dnsmos,
                                     seed=recipe.evaluate.seed)
                add("training audio", [load_clip(p, sr, recipe.data.preprocess, model.mel_cfg.n_fft)
                                       for p in train.paths], sr, None)
            audio = [load_clip(p, sr, recipe.data.preprocess, model.mel_cfg.n_fft) for p in real.paths]
            add("real audio", audio, sr, asked)
            add(f"real mels, {args.vocoder}", E._vocode(view, real.x, g), sr, asked)
        add(f"{path}, {args.vocoder}", E._vocode(view, fake, g), sr, asked)
        print(f"{path}: step {model.step}", flush=True)
    lines = table(rows, bool(args.dnsmos))
    print("\n".join(lines))
    for name, r in rows.items():
        if r.get("confusions"):
            print(f"{name}: misheard as " + "; ".join(
                f"{a} → " + ", ".join(f"{h} {c}" for h, c in heard.items()) for a, heard in r["confusions"].items()))
    if args.out:
        Path(args.out).write_text(json.dumps({"recipe": str(recipe.path), "vocoder": args.vocoder, "rows": rows},
                                             indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
