"""Audio I/O and clip preprocessing, via soundfile (wav, flac, ogg, ... whatever libsndfile reads).

Every reader returns mono float32 at the requested rate. Bad input raises :class:`AudioError`
whose message starts with the file's path and says what is wrong; dataset scans catch it,
skip the file and count the reason (see :func:`scan_report`).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioError",
    "Preprocess",
    "fade_out",
    "fit_length",
    "load_clip",
    "loudness_normalize",
    "peak_normalize",
    "read",
    "resample",
    "scan_report",
    "trim_silence",
    "write",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus")


class AudioError(ValueError):
    """A file that cannot be used as audio. ``reason`` is a short category for counting."""

    def __init__(self, path: str | Path, reason: str, detail: str = ""):
        self.path = str(path)
        self.reason = reason
        msg = f"{path}: {reason}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000   # a header outside this is not audio we can use
MAX_SECONDS = 3 * 3600                              # per file: bounds what resampling may allocate
SILENCE = 2.0 ** -24                                # below a 24-bit LSB: nothing to normalise


def read(path: str | Path, sr: int | None = None, mono: bool = True, min_samples: int = 1) -> tuple[np.ndarray, int]:
    """Read an audio file.

    Args:
        path: Any file libsndfile can decode.
        sr: Target sample rate; ``None`` keeps the file's rate.
        mono: Average the channels (else return (channels, samples)).
        min_samples: Shortest acceptable length *after* resampling, e.g. one STFT frame.

    Returns:
        (y, sr): y float32, shape (samples,) if mono else (channels, samples).

    Raises:
        AudioError: unreadable, empty, NaN/Inf samples, all zeros, or shorter than min_samples.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError as e:
        if path.is_symlink():
            raise AudioError(path, "dangling link", f"it points to {os.readlink(path)}, which does not exist") from e
        raise AudioError(path, "unreadable", e.strerror or type(e).__name__) from e
    except OSError as e:
        raise AudioError(path, "unreadable", e.strerror or type(e).__name__) from e
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise AudioError(path, "not a regular file", "a FIFO, socket or device")
    size = st.st_size
    if size == 0:
        raise AudioError(path, "empty", "the file is 0 bytes")
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, TypeError, ValueError) as e:
        raise AudioError(path, "unreadable", str(e).strip() or type(e).__name__) from e
    if data.shape[0] == 0:
        raise AudioError(path, "empty", "the file holds 0 samples")
    bad = ~np.isfinite(data)
    if bad.any():
        raise AudioError(path, "non-finite samples", f"{int(bad.sum())} of {data.size} samples are NaN or Inf")
    if not MIN_SAMPLE_RATE <= file_sr <= MAX_SAMPLE_RATE:
        raise AudioError(path, "bad sample rate", f"the header says {file_sr} Hz (accepted: {MIN_SAMPLE_RATE}-"
                                                  f"{MAX_SAMPLE_RATE} Hz)")
    out_rate = sr if sr is not None else file_sr
    if data.shape[0] / file_sr > MAX_SECONDS:
        raise AudioError(path, "too long", f"{data.shape[0] / file_sr:.0f} s at {out_rate} Hz (at most {MAX_SECONDS} s "
                                           f"per file; cut long recordings first)")
    # Sum channels in float64: samples near the float32 maximum would overflow a float32 sum.
    y = data.mean(axis=1, dtype=np.float64).astype(np.float32) if mono else np.ascontiguousarray(data.T)
    if sr is not None and sr != file_sr:
        y = resample(y, file_sr, sr)
    else:
        sr = file_sr
    if not np.all(np.isfinite(y)):
        raise AudioError(path, "non-finite samples", "NaN or Inf after downmixing/resampling (samples near the "
                                                     "float maximum)")
    if not np.any(np.abs(y) > SILENCE):
        raise AudioError(path, "silent", "all samples are zero" if not np.any(y) else
                         f"the peak {float(np.max(np.abs(y))):.1e} is below {SILENCE:.0e} (-144 dBFS)")
    n = y.shape[-1]
    if n < min_samples:
        raise AudioError(path, "too short", f"{n} samples at {sr} Hz, need at least {min_samples} (one frame)")
    return y, int(sr)


def resample(y: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    """Band-limited resampling with soxr (HQ). y: (samples,) or (channels, samples)."""
    if orig_sr == sr:
        return y.astype(np.float32, copy=False)
    import soxr

    if y.ndim == 1:
        return soxr.resample(y, orig_sr, sr, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(soxr.resample(y.T, orig_sr, sr, quality="HQ").T, dtype=np.float32)


def write(path: str | Path, y: np.ndarray, sr: int, subtype: str | None = None) -> None:
    """Write audio (mono (samples,) or (channels, samples)); the format follows the extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = y.T if y.ndim == 2 else y
    sf.write(str(path), data, sr, subtype=subtype)


def peak_normalize(y: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Scale so that max |y| == peak (the gain in float64, so a tiny peak cannot overflow it).
    All-zero input is returned unchanged.
    """
    m = float(np.max(np.abs(y))) if y.size else 0.0
    return y if m == 0.0 else (y.astype(np.float64) * (peak / m)).astype(np.float32)


def loudness_normalize(y: np.ndarray, target_db: float = -20.0, peak_limit: float = 0.99) -> np.ndarray:
    """Scale to an RMS level of ``target_db`` dBFS, then lower it if the peak would exceed
    ``peak_limit`` (so normalisation never clips). RMS is a plain (unweighted) loudness proxy.
    """
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if y.size else 0.0
    if rms == 0.0:
        return y
    gain = 10.0 ** (target_db / 20.0) / rms
    peak = float(np.max(np.abs(y))) * gain
    if peak > peak_limit:
        gain *= peak_limit / peak
    return (y * gain).astype(np.float32)


def trim_silence(y: np.ndarray, top_db: float = 40.0, frame_length: int = 1024, hop_length: int = 256) -> np.ndarray:
    """Cut leading/trailing parts quieter than ``top_db`` below the clip's loudest frame."""
    import librosa

    if y.size < frame_length:
        frame_length = max(16, 1 << int(np.log2(max(y.size, 16))))
        hop_length = max(1, frame_length // 4)
    yt, _ = librosa.effects.trim(y, top_db=top_db, frame_length=frame_length, hop_length=hop_length)
    return yt


def fit_length(y: np.ndarray, n: int, align: str = "center", offset: int = 0) -> np.ndarray:
    """Pad with zeros or crop to exactly ``n`` samples.

    Args:
        y: (samples,)
        n: target length.
        align: ``"center"`` keeps the middle (pads both sides), ``"start"`` keeps the beginning.
        offset: shift (samples) of the content from the aligned position; used for jitter.
    """
    if align not in ("center", "start"):
        raise ValueError(f"align must be 'center' or 'start', got {align!r}")
    out = np.zeros(n, dtype=np.float32)
    start = (n - y.size) // 2 if align == "center" else 0
    start += offset
    # Place y[src0:src1] at out[dst0:dst1], cropping whatever falls outside [0, n).
    dst0, src0 = max(start, 0), max(-start, 0)
    length = min(n - dst0, y.size - src0)
    if length > 0:
        out[dst0 : dst0 + length] = y[src0 : src0 + length]
    return out


@dataclass
class Preprocess:
    """How every clip of a dataset is conditioned before features are extracted.

    Attributes:
        trim_db: Trim leading/trailing audio quieter than this many dB below the peak frame
            (``None`` = no trimming).
        normalize: ``"peak"``, ``"loudness"`` (RMS dBFS) or ``"none"``.
        peak: Target peak for ``normalize: peak``.
        loudness_db: Target RMS level in dBFS for ``normalize: loudness``.
        clip_seconds: Pad/crop every clip to this length (``None`` keeps the full length).
        align: Where the content sits when padding/cropping: ``"center"`` or ``"start"``.
        fade_out: Seconds of a half-cosine fade to zero at the clip's end, after padding/cropping
            (``None`` = none). For clips cut from longer sounds (the first second of a held note):
            the STFT's last frames straddle the cut and turn it into a broadband stripe (a steady
            tone's last two frames 4-6 nats louder in every band), which stage one learns as part of
            every clip and a vocoder renders as a click. A fade of a few tens of ms removes it.
    """

    trim_db: float | None = 40.0
    normalize: str = "peak"
    peak: float = 0.9
    loudness_db: float = -20.0
    clip_seconds: float | None = None
    align: str = "center"
    fade_out: float | None = None

    def __post_init__(self) -> None:
        if self.normalize not in ("peak", "loudness", "none"):
            raise ValueError(f"normalize must be 'peak', 'loudness' or 'none', got {self.normalize!r}")
        if self.align not in ("center", "start"):
            raise ValueError(f"align must be 'center' or 'start', got {self.align!r}")
        if not 0 < self.peak <= 1:
            raise ValueError(f"peak must be in (0, 1], got {self.peak}")
        if self.clip_seconds is not None and self.clip_seconds <= 0:
            raise ValueError(f"clip_seconds must be > 0 or null, got {self.clip_seconds}")
        if self.fade_out is not None and not 0 < self.fade_out < float("inf"):
            raise ValueError(f"fade_out must be > 0 seconds or null, got {self.fade_out}")
        if self.fade_out is not None and self.clip_seconds is not None and self.fade_out > self.clip_seconds:
            raise ValueError(f"fade_out ({self.fade_out:g} s) is longer than clip_seconds ({self.clip_seconds:g} s)")

    def key(self) -> dict:
        """The fields that identify the preprocessing (features and models are keyed on them);
        ``fade_out`` only when set, so recipes without it keep the keys they had before it existed.
        """
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if d["fade_out"] is None:
            del d["fade_out"]
        return d


def fade_out(y: np.ndarray, n: int) -> np.ndarray:
    """``y`` with its last ``n`` samples faded to zero by a half cosine (a copy; all of it when
    shorter): 1 at the fade's first sample, 0 after its last.
    """
    y = np.array(y, dtype=np.float32, copy=True)
    n = min(int(n), y.shape[-1])
    if n > 0:
        y[..., -n:] *= (0.5 * (1.0 + np.cos(np.pi * np.arange(1, n + 1) / n))).astype(np.float32)
    return y


def load_clip(path: str | Path, sr: int, pre: Preprocess, min_samples: int = 1) -> np.ndarray:
    """Read, resample, trim, normalise and pad/crop one clip as ``pre`` says.

    Raises:
        AudioError: the file is bad, or nothing but silence is left after trimming.
    """
    y, _ = read(path, sr=sr, mono=True, min_samples=min_samples)
    if pre.trim_db is not None:
        y = trim_silence(y, top_db=pre.trim_db)
    if pre.normalize == "peak":
        y = peak_normalize(y, pre.peak)
    elif pre.normalize == "loudness":
        y = loudness_normalize(y, pre.loudness_db)
    if not np.all(np.isfinite(y)):  # after every transform: never a NaN downstream naming no file
        raise AudioError(path, "non-finite samples", f"NaN or Inf after trimming/normalising ({pre.normalize})")
    if pre.clip_seconds is not None:
        y = fit_length(y, int(round(pre.clip_seconds * sr)), pre.align)
    if pre.fade_out is not None:
        y = fade_out(y, int(round(pre.fade_out * sr)))
    if y.size < min_samples:
        raise AudioError(path, "too short", f"{y.size} samples after trimming, need at least {min_samples} (one frame)")
    return y


def scan_report(errors: Iterable[AudioError]) -> str:
    """Summarise skipped files: ``"skipped 3 files: 2 silent, 1 unreadable"``."""
    counts = collections.Counter(e.reason for e in errors)
    total = sum(counts.values())
    if not total:
        return "skipped 0 files"
    parts = ", ".join(f"{n} {reason}" for reason, n in counts.most_common())
    return f"skipped {total} file{'s' if total != 1 else ''}: {parts}"


def mono_memmap(src: str | Path, sr: int, raw: str | Path, block: int = 1 << 16):
    """Decode ``src`` block by block, downmixed to mono and resampled to ``sr``, into the float32 file
    ``raw``, and map it read-only: a long file in bounded memory. Returns (the memory map, the
    input's ``soundfile`` info); an input without samples is a ValueError naming it.
    """
    import soundfile as sf
    import soxr

    info = sf.info(str(src))
    n = 0
    stream = soxr.ResampleStream(info.samplerate, sr, 1, dtype="float32", quality="HQ") \
        if info.samplerate != sr else None
    with open(raw, "wb") as f:
        for chunk in sf.blocks(str(src), blocksize=block, dtype="float32", always_2d=True):
            mono = np.ascontiguousarray(chunk.mean(axis=1), dtype=np.float32)
            out = stream.resample_chunk(mono) if stream is not None else mono
            f.write(out.tobytes())
            n += len(out)
        if stream is not None:
            out = stream.resample_chunk(np.zeros(0, np.float32), last=True)
            f.write(out.astype(np.float32).tobytes())
            n += len(out)
    if n == 0:
        raise ValueError(f"{src}: no audio samples")
    return np.memmap(raw, dtype=np.float32, mode="r", shape=(n,)), info
