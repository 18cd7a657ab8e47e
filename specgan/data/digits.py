"""``builtin:digits`` — an SC09-like set of spoken digits rendered offline by espeak-ng.

Every (voice variant, accent, word, repeat) is spoken with a random speed and pitch, resampled
to the recipe rate, trimmed at -40 dB, peak-normalised and placed in a fixed-length clip with a
random shift. Voices (variants) never cross splits.
"""

from __future__ import annotations

import io
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from specgan.audio import fit_length, peak_normalize, resample, trim_silence, write
from specgan.data.manifest import Item, require_tool

__all__ = ["build_digits"]

_TRIM_DB = 40.0
_PEAK = 0.9


def _speak(espeak: str, voice: str, speed: int, pitch: int, word: str) -> tuple[np.ndarray, int]:
    cmd = [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r} word {word!r}: "
                           f"{proc.stderr.decode(errors='replace').strip() or 'no audio produced'}")
    y, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return (y if y.ndim == 1 else y.mean(axis=1)), sr


def build_digits(cfg, sample_rate: int, clip_seconds: float, out_dir: Path, seed: int, work_dir: Path) -> tuple[list[Item], dict]:
    """Render the set into ``out_dir``; return its items and a report.

    Args:
        cfg: :class:`specgan.recipe.DigitsConfig`.
        sample_rate: Output rate (espeak-ng renders at 22.05 kHz; resampled).
        clip_seconds: Length of every clip.
        out_dir: Where WAVs go (``<work>/data/wavs``).
        seed: Seeds speed, pitch and shift choices (the set is reproducible).
        work_dir: Paths in the manifest are made relative to it.
    """
    espeak = require_tool("espeak-ng", "espeak-ng")
    lo_s, hi_s = cfg.speed
    lo_p, hi_p = cfg.pitch
    rng = random.Random(seed)
    jobs = []
    for variant in cfg.variants:
        for accent in cfg.accents:
            for word in cfg.words:
                for rep in range(cfg.repeats):
                    jobs.append((variant, accent, word, rep, rng.randint(lo_s, hi_s), rng.randint(lo_p, hi_p),
                                 rng.uniform(-cfg.jitter_seconds, cfg.jitter_seconds)))
    n_clip = int(round(clip_seconds * sample_rate))

    def render(job):
        variant, accent, word, rep, speed, pitch, shift = job
        y, sr = _speak(espeak, f"{accent}+{variant}", speed, pitch, word)
        y = resample(y, sr, sample_rate)
        if not np.any(y):
            return None, "silent output"
        y = trim_silence(y, top_db=_TRIM_DB)
        cropped = y.size > n_clip
        y = fit_length(peak_normalize(y, _PEAK), n_clip, "center", int(round(shift * sample_rate)))
        # A shift can push the word's edge out of the clip; renormalise what is left.
        y = peak_normalize(y, _PEAK)
        cid = f"{word}_{variant}_{accent}_{rep}"
        path = out_dir / variant / f"{cid}.wav"
        write(path, y, sample_rate, subtype="PCM_16")
        item = Item(id=cid, path=str(path.relative_to(work_dir)), label=word,
                    labels={"word": word, "digit": cfg.words.index(word), "voice": variant, "accent": accent,
                            "speed": speed, "pitch": pitch},
                    group=variant, duration=n_clip / sample_rate, sr=sample_rate)
        return item, "cropped" if cropped else None

    items, notes = [], {}
    with ThreadPoolExecutor(max(1, cfg.workers)) as pool:
        for item, note in tqdm(pool.map(render, jobs), total=len(jobs), desc="digits", unit="clip"):
            if note:
                notes[note] = notes.get(note, 0) + 1
            if item is not None:
                items.append(item)
    report = {"rendered": len(items), "requested": len(jobs), "notes": notes}
    return items, report
