"""Scoring an enhancer on the test pairs: the unseen speaker under the unseen noise types at the
test SNRs (:func:`specgan.enhancement.sets.test_pairs`).

Each pair is scored against its clean reference for four systems:

- ``noisy``: the input itself;
- ``baseline``: spectral gating (the ``noisereduce`` package, non-stationary mode), the
  classical denoiser to beat;
- ``enhanced``: the enhancer through the recipe's synthesis (``enhance.synthesis``: the vocoder,
  or its gains on the noisy STFT), and ``enhanced_<other>`` the same model through the other one
  (``enhanced_gain`` or ``enhanced_vocoder``): both routes are always scored;
- ``clean_vocoded``: the clean reference's own mel through the vocoder, the ceiling of the
  synthesis route (what a perfect enhancer would give).

Measures: PESQ-wb, STOI, SI-SDR (against the clean reference) and DNSMOS SIG/BAK/OVRL (no
reference), as the mean over all pairs, per SNR and per noise type. SI-SDR punishes the vocoder's
phase, which is not the input's; PESQ and STOI less, DNSMOS not at all. The table says so.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

__all__ = ["SYSTEMS", "evaluate_enhancement", "summary_table"]

log = logging.getLogger(__name__)

SYSTEMS = ("noisy", "baseline", "enhanced", "clean_vocoded")
MEASURES = ("pesq_wb", "stoi", "si_sdr", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")


def _baseline(noisy: np.ndarray, sr: int) -> np.ndarray | None:
    try:
        import noisereduce
    except ImportError:
        return None
    return np.asarray(noisereduce.reduce_noise(y=noisy, sr=sr, stationary=False), np.float32)


def _score(ref: np.ndarray, est: np.ndarray, sr: int, dnsmos: bool) -> dict:
    from specgan import metrics as M

    out = {"pesq_wb": M.pesq_wb(ref, est, sr), "stoi": M.stoi(ref, est, sr), "si_sdr": M.si_sdr(ref, est)}
    if dnsmos:
        d = M.dnsmos(est, sr)
        out.update({f"dnsmos_{k}": v for k, v in d.items()})
    return out


def _mean(rows: list[dict]) -> dict:
    return {m: float(np.nanmean([r[m] for r in rows if m in r])) for m in MEASURES if any(m in r for r in rows)}


@torch.inference_mode()
def evaluate_enhancement(recipe, model: str | Path | None = None, vocoder: str = "auto", max_clips: int | None = None,
                         report=log.info, examples: int = 1, out_dir: str | Path | None = None) -> dict:
    """Score the recipe's enhancer (or ``model``) on the test pairs; write ``<work>/eval/enhance.json``
    and example WAVs (``eval/enhance/``: per noise type, the first clip at each SNR, every system),
    or ``out_dir/enhance.json`` and ``out_dir/enhance/``.
    """
    import soundfile as sf

    from specgan import metrics as M
    from specgan.checkpoints import enhancer_path, load_vocoder
    from specgan.enhancement.inference import Enhancement, load_enhancer
    from specgan.enhancement.sets import clean_clips, test_pairs
    from vocoder.mel import MelSpectrogram

    ec = recipe.enhance
    path = Path(model) if model else enhancer_path(recipe)
    g, mel, step = load_enhancer(path)
    voc, voc_desc = load_vocoder(recipe, vocoder, mel)  # the ceiling (clean_vocoded) needs it whatever the route
    other = "gain" if ec.synthesis == "vocoder" else "vocoder"
    job, alt = Enhancement.for_config(g, voc, mel, ec), Enhancement.for_config(g, voc, mel, ec, other)
    pool = clean_clips(recipe, "train")[0] if "babble" in ec.test_noises else None
    pairs = test_pairs(recipe, pool=pool)
    if max_clips is not None:
        pairs = [p for p in pairs if p.index < max_clips]
    sr = mel.sample_rate
    mel_fn = MelSpectrogram(mel)
    dnsmos = M.dnsmos_available() is None
    if not dnsmos:
        log.warning("enhance evaluation: DNSMOS skipped: %s", M.dnsmos_available())
    has_baseline = _baseline(np.zeros(sr, np.float32), sr) is not None
    rows = []
    eval_dir = Path(out_dir) if out_dir is not None else recipe.work / "eval"
    ex_dir = eval_dir / "enhance"
    ex_dir.mkdir(parents=True, exist_ok=True)
    copies: dict[int, np.ndarray] = {}
    from specgan.progress import bar

    for p in bar(pairs, desc="evaluate: enhancement", unit="pair"):
        outs = {"noisy": p.noisy, "enhanced": job.enhance(p.noisy, sr)[0], f"enhanced_{other}": alt.enhance(p.noisy, sr)[0]}
        if has_baseline:
            outs["baseline"] = _baseline(p.noisy, sr)
        if p.index not in copies:  # the clean clip's own mel through the vocoder, once per clip
            copies[p.index] = voc(mel_fn(torch.from_numpy(p.clean))[None])[0, 0, : len(p.clean)].numpy()
        outs["clean_vocoded"] = copies[p.index]
        row = {"clip": p.index, "noise": p.noise, "snr": p.snr, "path": p.path}
        for name, y in outs.items():
            row[name] = _score(p.clean, y, sr, dnsmos)
        rows.append(row)
        if p.index < examples:
            for name, y in [("clean", p.clean), *outs.items()]:
                sf.write(ex_dir / f"{p.noise}_{p.snr:g}dB_clip{p.index}_{name}.wav", np.clip(y, -1, 1), sr,
                         subtype="PCM_16")
    systems = [s for s in (*SYSTEMS[:3], f"enhanced_{other}", SYSTEMS[3]) if any(s in r for r in rows)]
    out = {"protocol": f"{len({r['clip'] for r in rows})} clips of the test speaker x test noises "
                       f"{list(ec.test_noises)} x SNRs {list(ec.test_snrs)} dB ({len(rows)} pairs); PESQ-wb, STOI and "
                       "SI-SDR against the clean clip, DNSMOS P.835 without reference; baseline = noisereduce "
                       "(non-stationary spectral gating); clean_vocoded = the clean clip's mel through the vocoder",
           "model": str(path), "step": step, "vocoder": voc_desc, "synthesis": ec.synthesis, "pairs": len(rows),
           "overall": {s: _mean([r[s] for r in rows]) for s in systems},
           "by_snr": {f"{snr:g}": {s: _mean([r[s] for r in rows if r["snr"] == snr]) for s in systems}
                      for snr in ec.test_snrs},
           "by_noise": {k: {s: _mean([r[s] for r in rows if r["noise"] == k]) for s in systems}
                        for k in ec.test_noises},
           "rows": rows}
    (eval_dir / "enhance.json").write_text(json.dumps(out, indent=1))
    report(summary_table(out))
    return out


def summary_table(out: dict) -> str:
    """The overall means as a Markdown table (systems × measures)."""
    systems = list(out["overall"])
    measures = [m for m in MEASURES if any(m in out["overall"][s] for s in systems)]
    lines = ["| system | " + " | ".join(measures) + " |", "|---|" + "---|" * len(measures)]
    for s in systems:
        lines.append(f"| {s} | " + " | ".join(f"{out['overall'][s].get(m, float('nan')):.3f}" for m in measures) + " |")
    return "\n".join(lines)
