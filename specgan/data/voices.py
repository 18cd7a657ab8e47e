"""``builtin:voices`` — real recorded speech plus TTS voices, split by speaker, for speech vocoders.

Real speech: Debian's asterisk PBX prompts (studio recordings, 16 kHz wideband G.722), one
speaker per voice folder under ``/usr/share/asterisk/sounds``: ``fr_CA_f_June``,
``it_IT_m_Carlo``, ``ru_RU_f_IvrvoiceRU``. ffmpeg decodes them; leading/trailing silence is
trimmed, prompts that are still too short (and the beeps, tones and ``silence/`` files) are
skipped, the rest peak-normalised.

The English and Spanish prompt packages (``asterisk-core-sounds-en*``, ``-es*``) are reserved for
independent evaluation: this module only ever lists the folders it is configured with, and
refuses any folder whose language is ``en`` or ``es`` (:func:`check_not_reserved`) before
reading anything.

Synthetic speech: English Harvard sentences spoken by espeak-ng (a curated list of clear
variants), flite and festival voices, with random speed (and pitch where the engine has a clean
control for it). Each TTS engine is optional: a missing one is skipped, logged and counted.

Splits are by *speaker*: the configured real test speaker is the whole test split and nothing
else; the configured dev speakers (TTS voices) are the dev split; everyone else is train. The
same recorded person behind two engines (flite ``slt`` and festival's ``cmu_us_slt_arctic_hts``;
flite ``kal16`` and festival ``kal_diphone``) is one speaker, so never in two splits.
"""

from __future__ import annotations

import logging
import random
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from specgan.progress import bar as progress_bar

from specgan.audio import peak_normalize, resample, trim_silence, write
from specgan.data.manifest import Item, MissingToolError, require_tool
from specgan.data.sentences import HARVARD
from specgan.data.tts import ENGINE_PACKAGES, FESTIVAL_PACKAGES, TTS_VOICES, festival_voice_ok, run_tts

__all__ = ["RESERVED_LANGUAGES", "ReservedVoiceError", "build_voices", "check_not_reserved", "real_speaker_info"]

log = logging.getLogger(__name__)

RESERVED_LANGUAGES = ("en", "es")
_PEAK = 0.9
# Not speech: tones and beeps (top level), and the silence/ folder (1-10 s of silence).
_NOT_SPEECH = {"beep", "beeperr", "ascending-2tone", "descending-2tone"}
_SKIP_DIRS = {"silence"}

_TTS_VOICES = TTS_VOICES                  # shared with builtin:digits (specgan.data.tts)
_FESTIVAL_PACKAGES = FESTIVAL_PACKAGES
_ENGINE_PACKAGES = ENGINE_PACKAGES
_run_tts = run_tts
_festival_voice_ok = festival_voice_ok


class ReservedVoiceError(ValueError):
    """A configured voice folder belongs to the reserved English/Spanish evaluation prompts."""


def _language(name: str) -> str:
    return re.split(r"[_\-.]", name.lower(), maxsplit=1)[0]


def check_not_reserved(folder: str | Path) -> None:
    """Refuse ``folder`` if it, or anything it resolves through, is an ``en``/``es`` voice folder.

    Every path component is checked, before and after resolving symlinks, so neither
    ``sounds/en_US_f_Allison``, ``sounds/es`` nor a link to one gets through.
    """
    p = Path(folder).expanduser()
    for candidate in (p, p.resolve()):
        for part in candidate.parts:
            if _language(part) in RESERVED_LANGUAGES:
                raise ReservedVoiceError(
                    f"data.voices: {folder} is an '{_language(part)}' voice folder: asterisk-core-sounds-en*/-es* "
                    f"are reserved for independent evaluation and are never read")


def real_speaker_info(name: str) -> dict:
    """``fr_CA_f_June`` → language fr, locale fr_CA, gender f (asterisk's folder naming)."""
    parts = Path(name).name.split("_")
    info = {"language": _language(Path(name).name), "locale": "_".join(parts[:2]) if len(parts) > 1 else parts[0],
            "gender": parts[2] if len(parts) > 2 and parts[2] in ("f", "m") else "?"}
    return info


def _real_prompts(cfg, seed: int) -> dict[str, tuple[Path, list[Path]]]:
    """Speaker → (folder, prompt files); every folder checked against the reserved languages first."""
    root = Path(cfg.real_root)
    folders = {}
    for name in cfg.real_speakers:
        folder = root / name
        check_not_reserved(folder)
        folders[Path(name).name] = folder
    out = {}
    for spk, folder in folders.items():
        if not folder.is_dir():
            lang = real_speaker_info(spk)["language"]
            raise MissingToolError(f"real voice folder {folder} not found; install it with: "
                                   f"apt-get install -y asterisk-core-sounds-{lang}-g722")
        files = []
        for f in sorted(folder.rglob("*.g722")):
            rel = f.relative_to(folder)
            if rel.parts[0] in _SKIP_DIRS or f.stem in _NOT_SPEECH:
                continue
            check_not_reserved(f)  # a symlink inside an allowed folder must not reach a reserved one
            files.append(f)
        if not files:
            raise MissingToolError(f"no .g722 prompts in {folder}; install them with: "
                                   f"apt-get install -y asterisk-core-sounds-{real_speaker_info(spk)['language']}-g722")
        if cfg.max_prompts is not None:
            random.Random(f"{seed}-{spk}").shuffle(files)
            files = sorted(files[: cfg.max_prompts])
        out[spk] = (folder, files)
    return out


def _decode_g722(ffmpeg: str, path: Path) -> tuple[np.ndarray, int]:
    cmd = [ffmpeg, "-loglevel", "error", "-f", "g722", "-i", str(path), "-ar", "16000", "-ac", "1",
           "-f", "s16le", "-"]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed on {path}: {proc.stderr.decode(errors='replace').strip()}")
    return np.frombuffer(proc.stdout, dtype="<i2").astype(np.float32) / 32768.0, 16000


def _tts_jobs(cfg, seed: int, engines: dict[str, str], skipped: dict[str, str]) -> list[dict]:
    """Every (engine, voice) speaks ``sentences_per_voice`` sentences with random speed/pitch."""
    rng = random.Random(seed)
    units = []  # (engine, engine voice, speaker, gender, accent, natural f0)
    if "espeak" in engines:
        for variant in cfg.espeak_variants:
            gender = "f" if re.fullmatch(r"f\d+", variant) else "m" if re.fullmatch(r"m\d+", variant) else "?"
            for accent in cfg.espeak_accents:
                units.append(("espeak", f"{accent}+{variant}", f"espeak-{variant}", gender, accent, None))
    if "flite" in engines:
        for v in cfg.flite_voices:
            spk, gender, f0 = _TTS_VOICES.get(("flite", v), (f"flite-{v}", "?", None))
            units.append(("flite", v, spk, gender, "en-us", f0))
    if "festival" in engines:
        for v in cfg.festival_voices:
            reason = _festival_voice_ok(v)
            if reason:
                skipped[f"festival:{v}"] = reason
                log.warning("voices: skipping %s", reason)
                continue
            spk, gender, f0 = _TTS_VOICES.get(("festival", v), (f"festival-{v}", "?", None))
            units.append(("festival", v, spk, gender, "en-us" if "us" in v else "en-gb", f0))
    n = min(cfg.sentences_per_voice, len(HARVARD))
    lo_s, hi_s = cfg.speed
    lo_p, hi_p = cfg.pitch
    jobs = []
    for engine, voice, spk, gender, accent, f0 in units:
        for k, idx in enumerate(sorted(rng.sample(range(len(HARVARD)), n))):
            speed = round(rng.uniform(lo_s, hi_s), 3)
            if engine == "espeak":
                pitch = rng.randint(*cfg.espeak_pitch)
            elif engine == "flite" and f0 is not None:
                pitch = round(f0 * rng.uniform(lo_p, hi_p), 1)
            else:
                pitch = None
            slug = re.sub(r"[^A-Za-z0-9]+", "-", voice)
            jobs.append({"kind": "tts", "engine": engine, "tool": engines[engine], "voice": voice, "speaker": spk,
                         "gender": gender, "accent": accent, "text": HARVARD[idx], "speed": speed, "pitch": pitch,
                         "id": f"{spk}_{engine}_{slug}_h{idx:02d}"})
    return jobs


def _check_splits(cfg, speakers: set[str]) -> None:
    if cfg.test_speaker not in [Path(s).name for s in cfg.real_speakers]:
        raise ValueError(f"data.voices.test_speaker: {cfg.test_speaker!r} is not one of data.voices.real_speakers "
                         f"({', '.join(cfg.real_speakers)})")
    if cfg.test_speaker in cfg.dev_speakers:
        raise ValueError(f"data.voices.dev_speakers: {cfg.test_speaker!r} is the test speaker")
    unknown = [s for s in cfg.dev_speakers if s not in speakers]
    if unknown:
        raise ValueError(f"data.voices.dev_speakers: unknown speaker(s) {', '.join(unknown)}; configured speakers: "
                         f"{', '.join(sorted(speakers))}")


def _configured_speakers(cfg) -> set[str]:
    """Every speaker id the config can produce, whether or not its engine is installed."""
    spk = {Path(s).name for s in cfg.real_speakers}
    if "espeak" in cfg.engines:
        spk |= {f"espeak-{v}" for v in cfg.espeak_variants}
    for engine, voices in (("flite", cfg.flite_voices), ("festival", cfg.festival_voices)):
        if engine in cfg.engines:
            spk |= {_TTS_VOICES.get((engine, v), (f"{engine}-{v}",))[0] for v in voices}
    return spk


def build_voices(dc, sample_rate: int, out_dir: Path, seed: int,
                 work_dir: Path) -> tuple[list[Item], dict, dict[str, str]]:
    """Decode and render the set into ``out_dir``; return items, a report and each item's split.

    The common builder signature (:class:`specgan.data.sources.Builder`).

    Args:
        dc: The recipe's ``data`` section; its ``dc.voices`` (:class:`specgan.recipe.VoicesConfig`) is read.
        sample_rate: Output rate (everything is resampled to it).
        out_dir: Where WAVs go (``<work>/data/wavs``), one folder per speaker.
        seed: Seeds prompt caps, sentence choice, speed and pitch (the set is reproducible).
        work_dir: Paths in the manifest are made relative to it.

    Returns:
        (items, report, split_of) where ``split_of`` maps item id → ``train``/``dev``/``test``
        (by speaker: the held-out real speaker is the test split).
    """
    cfg = dc.voices
    unknown = sorted(set(cfg.engines) - set(_ENGINE_PACKAGES))
    if unknown:
        raise ValueError(f"data.voices.engines: unknown {', '.join(unknown)}; choose from {', '.join(_ENGINE_PACKAGES)}")
    _check_splits(cfg, _configured_speakers(cfg))
    prompts = _real_prompts(cfg, seed)      # refuses reserved folders before anything is read
    ffmpeg = require_tool("ffmpeg", "ffmpeg")
    engines, skipped = {}, {}
    for engine in cfg.engines:
        try:
            engines[engine] = require_tool(*_ENGINE_PACKAGES[engine])
        except MissingToolError as e:
            skipped[engine] = str(e)
            log.warning("voices: TTS engine %s skipped: %s", engine, e)
    jobs = [{"kind": "real", "path": f, "speaker": spk, "id": f"{spk}_{'-'.join(f.relative_to(folder).with_suffix('').parts)}"}
            for spk, (folder, files) in prompts.items() for f in files]
    jobs += _tts_jobs(cfg, seed, engines, skipped)

    def render(job):
        spk = job["speaker"]
        if job["kind"] == "real":
            y, sr = _decode_g722(ffmpeg, job["path"])
            info = real_speaker_info(spk)
            labels = {"speaker": spk, "language": info["language"], "engine": "real", "gender": info["gender"],
                      "voice": spk, "prompt": job["id"][len(spk) + 1:]}
        else:
            y, sr = _run_tts(job["engine"], job["tool"], job["voice"], job["text"], job["speed"], job["pitch"])
            labels = {"speaker": spk, "language": "en", "engine": job["engine"], "gender": job["gender"],
                      "voice": job["voice"], "accent": job["accent"], "text": job["text"], "speed": job["speed"],
                      "pitch": job["pitch"]}
        if not np.all(np.isfinite(y)) or not np.any(y):
            return None, "silent or non-finite"
        y = trim_silence(resample(y, sr, sample_rate), top_db=cfg.trim_db)
        if y.size < cfg.min_seconds * sample_rate:
            return None, "too short"
        y = peak_normalize(y, _PEAK)
        path = out_dir / spk / f"{job['id']}.wav"
        write(path, y, sample_rate, subtype="PCM_16")
        return Item(id=job["id"], path=str(path.relative_to(work_dir)), label=None, labels=labels, group=spk,
                    duration=y.size / sample_rate, sr=sample_rate), None

    def safe(job):
        try:
            return render(job)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            return None, f"failed ({job.get('engine', 'real')}): {str(e).splitlines()[0][:200]}"

    items, notes = [], {}
    with ThreadPoolExecutor(max(1, cfg.workers)) as pool:
        for item, note in progress_bar(pool.map(safe, jobs), total=len(jobs), desc="voices", unit="clip"):
            if note:
                notes[note] = notes.get(note, 0) + 1
            if item is not None:
                items.append(item)
    dev = set(cfg.dev_speakers)
    split_of = {it.id: "test" if it.group == cfg.test_speaker else "dev" if it.group in dev else "train"
                for it in items}
    missing_dev = sorted(dev - {it.group for it in items})
    if missing_dev:
        log.warning("voices: dev speaker(s) %s produced no audio (engine missing?)", ", ".join(missing_dev))
    per = {}
    for it in items:
        key = (split_of[it.id], it.labels["engine"], it.group)
        n, secs = per.get(key, (0, 0.0))
        per[key] = (n + 1, secs + it.duration)
    report = {
        "rendered": len(items), "requested": len(jobs), "notes": notes, "engines_skipped": skipped,
        "test_speaker": cfg.test_speaker, "dev_speakers": sorted(dev), "dev_speakers_missing": missing_dev,
        "hours": round(sum(it.duration for it in items) / 3600, 3),
        "speakers": [{"split": s, "engine": e, "speaker": g, "items": n, "seconds": round(t, 1)}
                     for (s, e, g), (n, t) in sorted(per.items())],
    }
    return items, report, split_of
