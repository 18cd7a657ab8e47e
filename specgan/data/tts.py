"""Offline TTS engines shared by the builders: espeak-ng, flite and festival.

``builtin:voices`` (sentences) and ``builtin:digits`` (single words) both drive these engines;
the speaker table, the Debian package names and the render helpers live here once.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["ENGINE_PACKAGES", "FESTIVAL_PACKAGES", "TTS_VOICES", "festival_batch", "festival_voice_ok",
           "run_tts", "sox_effects"]

# flite/festival voice → (speaker id, gender, natural median F0 in Hz measured here, or None
# where the pitch is left alone). The same recorded person behind two engines shares one speaker
# id. flite's diphone kal16 turns breathy when its F0 target is lowered (pYIN finds half as many
# voiced frames at 95 Hz), so only its speed varies; the clustergen voices (awb, rms, slt) shift
# cleanly.
TTS_VOICES = {
    ("flite", "kal16"): ("tts-kal", "m", None),
    ("flite", "kal"): ("tts-kal", "m", None),
    ("flite", "awb"): ("tts-awb", "m", 124.0),
    ("flite", "rms"): ("tts-rms", "m", 104.0),
    ("flite", "slt"): ("tts-slt", "f", 170.0),
    ("festival", "kal_diphone"): ("tts-kal", "m", 101.0),
    ("festival", "ked_diphone"): ("tts-ked", "m", 100.0),
    ("festival", "cmu_us_slt_arctic_hts"): ("tts-slt", "f", 176.0),
}
FESTIVAL_PACKAGES = {"kal_diphone": "festvox-kallpc16k", "ked_diphone": "festvox-kdlpc16k",
                     "cmu_us_slt_arctic_hts": "festvox-us-slt-hts"}
# engine → (program, Debian package)
ENGINE_PACKAGES = {"espeak": ("espeak-ng", "espeak-ng"), "flite": ("flite", "flite"),
                   "festival": ("text2wave", "festival")}
FESTIVAL_VOICE_ROOT = Path("/usr/share/festival/voices")


def _read_mono(data: bytes) -> tuple[np.ndarray, int]:
    y, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return y.mean(axis=1), sr


def run_tts(engine: str, tool: str, voice: str, text: str, speed: float, pitch) -> tuple[np.ndarray, int]:
    """One utterance. speed: tempo factor (>1 faster); pitch: espeak -p, flite F0 mean in Hz, or None."""
    with tempfile.TemporaryDirectory(prefix="specgan-tts-") as tmp:
        wav = Path(tmp) / "out.wav"
        if engine == "espeak":
            cmd = [tool, "-v", voice, "-s", str(int(round(165 * speed))), "-p", str(pitch), "-w", str(wav), text]
        elif engine == "flite":
            cmd = [tool, "-voice", voice, "--setf", f"duration_stretch={1 / speed:.3f}"]
            if pitch is not None:
                cmd += ["--setf", f"int_f0_target_mean={pitch:.1f}"]
            cmd += ["-t", text, "-o", str(wav)]
        else:  # festival: speed only (its pitch controls differ per voice type)
            txt = Path(tmp) / "in.txt"
            txt.write_text(text + "\n")
            cmd = [tool, "-eval", f"(voice_{voice})", "-eval", f"(Parameter.set 'Duration_Stretch {1 / speed:.3f})",
                   "-o", str(wav), str(txt)]
        proc = subprocess.run(cmd, capture_output=True, timeout=120)
        if proc.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
            raise RuntimeError(f"{engine} failed for voice {voice!r}: "
                               f"{proc.stderr.decode(errors='replace').strip()[-300:] or 'no audio produced'}")
        return _read_mono(wav.read_bytes())


def festival_batch(festival: str, voice: str, utterances: list[tuple[str, float]]) -> list[tuple[np.ndarray, int]]:
    """Many short utterances of one festival voice in ONE festival process (its start-up, 0.25-0.5 s,
    dominates a single word). ``utterances``: (text, tempo factor) pairs; returns (audio, rate) each.
    """
    with tempfile.TemporaryDirectory(prefix="specgan-festival-") as tmp:
        lines = [f"(voice_{voice})"]
        for i, (text, speed) in enumerate(utterances):
            safe = text.replace("\\", " ").replace('"', " ")
            lines.append(f"(Parameter.set 'Duration_Stretch {1 / speed:.3f})")
            lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{safe}")) "{Path(tmp) / f"{i}.wav"}" \'riff)')
        script = Path(tmp) / "batch.scm"
        script.write_text("\n".join(lines) + "\n")
        proc = subprocess.run([festival, "-b", str(script)], capture_output=True, timeout=600)
        out = []
        for i in range(len(utterances)):
            wav = Path(tmp) / f"{i}.wav"
            if proc.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
                raise RuntimeError(f"festival failed for voice {voice!r}: "
                                   f"{proc.stderr.decode(errors='replace').strip()[-300:] or 'no audio produced'}")
            out.append(_read_mono(wav.read_bytes()))
    return out


def sox_effects(sox: str, y: np.ndarray, sr: int, tempo: float = 1.0, cents: float = 0.0) -> np.ndarray:
    """``y`` through sox's ``tempo`` (speech mode, pitch kept) and ``pitch`` (cents, duration kept)
    effects; tempo 1 and 0 cents → unchanged.
    """
    effects = []
    if abs(tempo - 1.0) > 1e-3:
        effects += ["tempo", "-s", f"{tempo:.3f}"]
    if round(cents):
        effects += ["pitch", f"{cents:.0f}"]
    if not effects:
        return y
    with tempfile.TemporaryDirectory(prefix="specgan-sox-") as tmp:
        src, dst = Path(tmp) / "in.wav", Path(tmp) / "out.wav"
        sf.write(str(src), y, sr, subtype="FLOAT")
        proc = subprocess.run([sox, str(src), str(dst), *effects], capture_output=True, timeout=60)
        if proc.returncode != 0 or not dst.is_file():
            raise RuntimeError(f"sox {' '.join(effects)} failed: {proc.stderr.decode(errors='replace').strip()[-300:]}")
        z, _ = sf.read(str(dst), dtype="float32", always_2d=True)
    return z.mean(axis=1)


def festival_voice_ok(voice: str) -> str | None:
    """None if festival has ``voice``, else the reason (naming the Debian package)."""
    if not any(FESTIVAL_VOICE_ROOT.glob(f"*/{voice}")):
        pkg = FESTIVAL_PACKAGES.get(voice)
        return f"festival voice {voice} not installed" + (f" (apt-get install -y {pkg})" if pkg else "")
    return None
