"""``builtin:digits`` — an SC09-like set of spoken digits rendered offline by TTS engines.

Engines (``data.digits.engines``): ``espeak-ng`` (every variant × accent × word × ``repeats``,
random ``-s`` speed and ``-p`` pitch), ``flite`` and ``festival`` (every voice × word ×
``tts_repeats``, random tempo — the engine's own duration stretch where it has one, else sox
``tempo`` — and a random sox ``pitch`` shift in cents). Every clip is resampled to the recipe
rate, trimmed at -40 dB, peak-normalised to 0.9 and placed in a fixed-length clip with a random
shift.

Splits are by *speaker*: an espeak-ng variant is one speaker; a flite/festival voice is its
recorded person (flite ``kal16`` and festival ``kal_diphone`` are both Kal, flite ``slt`` and
festival ``cmu_us_slt_arctic_hts`` both SLT), and a pitch-shifted copy of a voice is still the same
speaker. With ``engines: [espeak-ng]`` (the default) the set, its ids and its split are exactly
those of the espeak-only builder (prepare splits by variant); with more engines the builder
deals speakers to splits engine by engine, fewest speakers first, so dev and test each get at
least one speaker of every engine that has three or more, preferring a person shared by two
engines for dev/test so that more distinct people stay in train (:func:`split_speakers`).
"""

from __future__ import annotations

import io
import logging
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from specgan.progress import bar as progress_bar

from specgan.audio import fit_length, peak_normalize, resample, trim_silence, write
from specgan.data.manifest import Item, MissingToolError, require_tool
from specgan.data.tts import TTS_VOICES, festival_batch, festival_voice_ok, run_tts, sox_effects

__all__ = ["DIGIT_ENGINES", "build_digits", "digits_config_labels", "split_speakers", "split_takes"]

log = logging.getLogger(__name__)

_TRIM_DB = 40.0
_PEAK = 0.9
DIGIT_ENGINES = ("espeak-ng", "flite", "festival")
_PROGRAMS = {"espeak-ng": ("espeak-ng", "espeak-ng"), "flite": ("flite", "flite"), "festival": ("festival", "festival")}
_FESTIVAL_CHUNK = 40          # utterances per festival process
# festival voices whose Duration_Stretch works (diphone); the HTS voice ignores it → sox tempo.
_FESTIVAL_NATIVE_TEMPO = {"kal_diphone", "ked_diphone"}


def _speak(espeak: str, voice: str, speed: int, pitch: int, word: str) -> tuple[np.ndarray, int]:
    cmd = [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word]
    proc = subprocess.run(cmd, capture_output=True, timeout=60)
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r} word {word!r}: "
                           f"{proc.stderr.decode(errors='replace').strip() or 'no audio produced'}")
    y, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    return (y if y.ndim == 1 else y.mean(axis=1)), sr


def speaker_of(engine: str, voice: str) -> str:
    """The split group of a voice: the espeak-ng variant, or the recorded person of a flite/festival voice."""
    if engine == "espeak-ng":
        return voice
    return TTS_VOICES.get((engine, voice), (f"{engine}-{voice}",))[0]


def _tools(cfg) -> dict[str, str]:
    """Engine → program path; a missing engine or festival voice is one clear error line."""
    unknown = [e for e in cfg.engines if e not in DIGIT_ENGINES]
    if unknown or not cfg.engines:
        raise ValueError(f"data.digits.engines: {'unknown ' + ', '.join(unknown) if unknown else 'empty'}; "
                         f"choose from {', '.join(DIGIT_ENGINES)}")
    tools = {}
    for engine in cfg.engines:
        try:
            tools[engine] = require_tool(*_PROGRAMS[engine])
        except MissingToolError as e:
            raise MissingToolError(f"data.digits.engines lists {engine}, but {e} "
                                   f"(or drop {engine} from data.digits.engines)") from None
    if "festival" in tools:
        for v in cfg.festival_voices:
            reason = festival_voice_ok(v)
            if reason:
                raise MissingToolError(f"data.digits.festival_voices: {reason} (or drop it from the list)")
    if "flite" in tools or "festival" in tools:   # tempo/pitch effects
        try:
            tools["sox"] = require_tool("sox", "sox")
        except MissingToolError as e:
            raise MissingToolError(f"data.digits: flite/festival clips get their pitch shift from sox: {e}") from None
    return tools


def _jobs(cfg, seed: int) -> list[dict]:
    rng = random.Random(seed)
    jobs = []
    if "espeak-ng" in cfg.engines:   # first, with the espeak-only builder's draws (same set, same ids)
        lo_s, hi_s = cfg.speed
        lo_p, hi_p = cfg.pitch
        for variant in cfg.variants:
            for accent in cfg.accents:
                for word in cfg.words:
                    for rep in range(cfg.repeats):
                        speed, pitch = rng.randint(lo_s, hi_s), rng.randint(lo_p, hi_p)
                        shift = rng.uniform(-cfg.jitter_seconds, cfg.jitter_seconds)
                        jobs.append({"engine": "espeak-ng", "voice": variant, "accent": accent, "word": word,
                                     "rep": rep, "speed": speed, "pitch": pitch, "shift": shift,
                                     "id": f"{word}_{variant}_{accent}_{rep}", "speaker": variant})
    lo_t, hi_t = cfg.tts_tempo
    lo_c, hi_c = cfg.tts_cents
    for engine, voices in (("flite", cfg.flite_voices), ("festival", cfg.festival_voices)):
        if engine not in cfg.engines:
            continue
        for voice in voices:
            for word in cfg.words:
                for rep in range(cfg.tts_repeats):
                    jobs.append({"engine": engine, "voice": voice, "accent": "en-us" if engine == "flite" or "us" in voice
                                 else "en-gb", "word": word, "rep": rep,
                                 "speed": round(rng.uniform(lo_t, hi_t), 3), "pitch": int(round(rng.uniform(lo_c, hi_c))),
                                 "shift": rng.uniform(-cfg.jitter_seconds, cfg.jitter_seconds),
                                 "id": f"{word}_{engine}-{voice}_{rep}", "speaker": speaker_of(engine, voice)})
    return jobs


def split_takes(items: list[Item], dev: float, test: float, seed: int) -> dict[str, str]:
    """Item id → split with every voice in every split: each voice's takes (sorted by id, then
    shuffled with ``seed``) dealt out, ``round(n · fraction)`` to test and to dev (at least one each
    when the voice has three takes or more), the rest to train.
    """
    by_voice: dict[str, list[str]] = {}
    for it in items:
        by_voice.setdefault(it.group, []).append(it.id)
    where: dict[str, str] = {}
    for voice in sorted(by_voice):
        ids = sorted(by_voice[voice])
        random.Random(f"{seed}-{voice}").shuffle(ids)
        n = len(ids)
        k_test = max(round(n * test), 1 if test > 0 and n >= 3 else 0)
        k_dev = max(round(n * dev), 1 if dev > 0 and n >= 3 else 0)
        for i, item_id in enumerate(ids):
            where[item_id] = "test" if i < k_test else "dev" if i < k_test + k_dev else "train"
    return where


def split_speakers(engine_speakers: dict[str, list[str]], dev: float, test: float, seed: int) -> dict[str, str]:
    """Speaker → split: test, then dev, get ``round(n · fraction)`` of each engine's n speakers (at
    least one when the engine has three or more), the rest is train.

    Engines are filled fewest speakers first; among the candidates (shuffled with ``seed``) a
    speaker shared by several engines that are still short in that split (the same recorded
    person behind a flite and a festival voice) is taken first, so one held-out person covers
    both engines and more distinct people stay in train. A speaker is placed once.
    """
    speakers_of = {e: sorted(set(v)) for e, v in engine_speakers.items()}
    engines_of: dict[str, set[str]] = {}
    for e, spk in speakers_of.items():
        for s in spk:
            engines_of.setdefault(s, set()).add(e)
    order = sorted(speakers_of, key=lambda e: (len(speakers_of[e]), e))
    where: dict[str, str] = {}
    rng = random.Random(seed)

    def want(e: str, frac: float) -> int:
        n = len(speakers_of[e])
        k = round(n * frac)
        return max(k, 1) if frac > 0 and n >= 3 else k

    def short(e: str, split: str, frac: float) -> int:
        return want(e, frac) - sum(where.get(s) == split for s in speakers_of[e])

    for split, frac in (("test", test), ("dev", dev)):
        for e in order:
            while short(e, split, frac) > 0:
                free = [s for s in speakers_of[e] if s not in where]
                if not free:
                    break
                rng.shuffle(free)
                free.sort(key=lambda s: -sum(short(o, split, frac) > 0 for o in engines_of[s]))
                where[free[0]] = split
    for s in engines_of:
        where.setdefault(s, "train")
    return where


def _multi_engine(cfg) -> bool:
    """More engines than espeak-ng alone: only then do items carry ``engine``/``speaker`` labels
    and a speaker split (the espeak-only set keeps its labels, ids and split as they always were).
    """
    return list(cfg.engines) != ["espeak-ng"]


def digits_config_labels(dc) -> tuple[str, ...]:
    """The labels ``builtin:digits`` adds under data section ``dc`` (its ``config_labels`` entry in
    :data:`specgan.data.sources.SOURCES`); the builder asks the same :func:`_multi_engine`, so the
    declared labels and the rendered ones cannot drift apart.

    Args:
        dc: The recipe's ``data`` section.

    Returns:
        ``("engine", "speaker")`` with several engines, else ``()``.
    """
    return ("engine", "speaker") if _multi_engine(dc.digits) else ()


def build_digits(dc, sample_rate: int, out_dir: Path, seed: int,
                 work_dir: Path) -> tuple[list[Item], dict, dict | None]:
    """Render the set into ``out_dir``; return its items, a report and each item's split.

    The common builder signature (:class:`specgan.data.sources.Builder`).

    Args:
        dc: The recipe's ``data`` section: ``dc.digits`` (:class:`specgan.recipe.DigitsConfig`), the
            clip length ``dc.preprocess.clip_seconds`` (unset: 1 s, SC09's length) and
            ``dc.dev_fraction`` / ``dc.test_fraction`` (share of each engine's speakers in dev / test).
        sample_rate: Output rate (every engine is resampled to it).
        out_dir: Where WAVs go (``<work>/data/wavs``), one folder per speaker.
        seed: Seeds speed, pitch, shift and split choices (the set is reproducible).
        work_dir: Paths in the manifest are made relative to it.

    Returns:
        (items, report, split_of): ``split_of`` maps item id → split, or is None for an
        espeak-only build (prepare then splits by variant, as it always has).
    """
    cfg = dc.digits
    clip_seconds = dc.preprocess.clip_seconds or 1.0
    tools = _tools(cfg)
    jobs = _jobs(cfg, seed)
    n_clip = int(round(clip_seconds * sample_rate))

    def finish(job, y, sr):
        if job["engine"] != "espeak-ng":
            native = job["engine"] == "flite" or job["voice"] in _FESTIVAL_NATIVE_TEMPO
            y = sox_effects(tools["sox"], y, sr, 1.0 if native else job["speed"], job["pitch"]) \
                if (job["pitch"] or not native) else y
        y = resample(y, sr, sample_rate)
        if not np.all(np.isfinite(y)) or not np.any(y):
            return None, "silent or non-finite output"
        y = trim_silence(y, top_db=_TRIM_DB)
        cropped = y.size > n_clip
        y = fit_length(peak_normalize(y, _PEAK), n_clip, "center", int(round(job["shift"] * sample_rate)))
        # A shift can push the word's edge out of the clip; renormalise what is left.
        y = peak_normalize(y, _PEAK)
        path = out_dir / job["speaker"] / f"{job['id']}.wav"
        write(path, y, sample_rate, subtype="PCM_16")
        labels = {"word": job["word"], "digit": cfg.words.index(job["word"]), "voice": job["voice"],
                  "accent": job["accent"], "speed": job["speed"], "pitch": job["pitch"]}
        if _multi_engine(cfg):   # the espeak-only set keeps its labels as they were
            labels.update(engine=job["engine"], speaker=job["speaker"])
        item = Item(id=job["id"], path=str(path.relative_to(work_dir)), label=job["word"], labels=labels,
                    group=job["speaker"], duration=n_clip / sample_rate, sr=sample_rate)
        return item, "cropped" if cropped else None

    def render(task):
        kind, batch = task
        try:
            if kind == "festival":
                voice = batch[0]["voice"]
                native = voice in _FESTIVAL_NATIVE_TEMPO
                audio = festival_batch(tools["festival"], voice, [(j["word"], j["speed"] if native else 1.0) for j in batch])
            elif kind == "flite":
                audio = [run_tts("flite", tools["flite"], j["voice"], j["word"], j["speed"], None) for j in batch]
            else:
                j = batch[0]
                audio = [_speak(tools["espeak-ng"], f"{j['accent']}+{j['voice']}", j["speed"], j["pitch"], j["word"])]
            return [finish(j, y, sr) for j, (y, sr) in zip(batch, audio, strict=True)]
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            return [(None, f"failed ({kind}): {str(e).splitlines()[0][:200]}")] * len(batch)

    tasks = [(j["engine"], [j]) for j in jobs if j["engine"] != "festival"]
    fest = [j for j in jobs if j["engine"] == "festival"]
    for voice in dict.fromkeys(j["voice"] for j in fest):
        mine = [j for j in fest if j["voice"] == voice]
        tasks += [("festival", mine[i : i + _FESTIVAL_CHUNK]) for i in range(0, len(mine), _FESTIVAL_CHUNK)]
    items, notes = [], {}
    with ThreadPoolExecutor(max(1, cfg.workers)) as pool, \
            progress_bar(total=len(jobs), desc="digits", unit="clip") as bar:
        for results in pool.map(render, tasks):
            for item, note in results:
                if note:
                    notes[note] = notes.get(note, 0) + 1
                if item is not None:
                    items.append(item)
            bar.update(len(results))
    if cfg.split_by == "take":
        split_of = split_takes(items, dc.dev_fraction, dc.test_fraction, seed)
        return items, {"rendered": len(items), "requested": len(jobs), "notes": notes, "split_by": "take"}, split_of
    if not _multi_engine(cfg):
        return items, {"rendered": len(items), "requested": len(jobs), "notes": notes}, None
    engine_speakers: dict[str, list[str]] = {}
    for it in items:
        engine_speakers.setdefault(it.labels["engine"], []).append(it.group)
    where = split_speakers(engine_speakers, dc.dev_fraction, dc.test_fraction, seed)
    split_of = {it.id: where[it.group] for it in items}
    per: dict[tuple, int] = {}
    for it in items:
        key = (it.labels["engine"], split_of[it.id])
        per[key] = per.get(key, 0) + 1
    report = {"rendered": len(items), "requested": len(jobs), "notes": notes,
              "per_engine": {e: {s: per.get((e, s), 0) for s in ("train", "dev", "test")} for e in cfg.engines},
              "speakers": {s: sorted(g for g, w in where.items() if w == s) for s in ("train", "dev", "test")}}
    return items, report, split_of
