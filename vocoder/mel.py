"""The one mel definition shared by features, vocoder inputs and vocoder losses.

``MelConfig`` is plain data: it is stored in every checkpoint and compared when a stage-one
model is joined with a vocoder. ``MelSpectrogram`` is its torch implementation (GPU friendly,
differentiable, used by the mel losses); ``specgan.features`` holds the numba implementation
used to build datasets. Both are built on librosa's window and mel filterbank, and the tests
hold them to librosa's ``melspectrogram`` + log within 1e-4.

Log-mel definition, for a waveform ``y``::

    S   = |STFT(y; n_fft, hop_length, win_length, window, center, pad_mode)| ** power
    M   = mel_basis(sample_rate, n_fft, n_mels, fmin, fmax, htk, norm) @ S
    out = log_base(max(M, floor))
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

__all__ = [
    "MelConfig",
    "MelConfigMismatch",
    "MelSpectrogram",
    "MelStats",
    "mel_filterbank",
    "stft_window",
]

_LOG_BASES = {"e": 1.0, "10": math.log(10.0), "2": math.log(2.0)}
_PAD_MODES = ("reflect", "constant")
_NORMS = ("slaney", "none")


class MelConfigMismatch(ValueError):
    """Raised when two parts of a pipeline disagree on the mel definition."""


@dataclass(frozen=True)
class MelConfig:
    """How a waveform becomes a log-mel spectrogram.

    Field names follow librosa (``n_fft``, ``hop_length``, ``n_mels``, ``fmin``, ``fmax``).

    Attributes:
        sample_rate: Audio sample rate in Hz.
        n_fft: FFT size.
        hop_length: Samples between successive frames.
        win_length: Window length (``None`` = ``n_fft``); the window is centre-padded to n_fft.
        window: Any window name ``scipy.signal.get_window`` knows (periodic form).
        n_mels: Number of mel bands.
        fmin: Lowest band edge in Hz.
        fmax: Highest band edge in Hz (``None`` = Nyquist).
        power: Exponent of the magnitude (1 = magnitude, the vocoder convention; 2 = power).
        log_base: ``"e"``, ``"10"`` or ``"2"``.
        floor: Values below this are clamped before the log (avoids log(0)).
        center: Pad ``n_fft // 2`` on both sides so frame ``t`` is centred on ``t * hop_length``.
        pad_mode: ``"reflect"`` or ``"constant"`` (zeros); used only when ``center``.
        htk: HTK mel scale instead of Slaney's.
        norm: ``"slaney"`` (area-normalised bands, librosa's default) or ``"none"``.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int | None = None
    window: str = "hann"
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 1.0
    log_base: str = "e"
    floor: float = 1e-5
    center: bool = True
    pad_mode: str = "reflect"
    htk: bool = False
    norm: str = "slaney"

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be > 0, got {self.sample_rate}")
        if self.n_fft <= 0:
            problems.append(f"n_fft must be > 0, got {self.n_fft}")
        if self.hop_length <= 0:
            problems.append(f"hop_length must be > 0, got {self.hop_length}")
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            problems.append(f"win_length must be in (0, n_fft={self.n_fft}], got {self.win_length}")
        if self.n_mels <= 0:
            problems.append(f"n_mels must be > 0, got {self.n_mels}")
        elif self.n_fft > 0 and self.n_mels > self.n_fft // 2 + 1:
            problems.append(f"n_mels ({self.n_mels}) must be at most n_fft/2 + 1 ({self.n_fft // 2 + 1}), the number "
                            f"of STFT bins; more mel bands than bins leaves bands empty")
        nyquist = self.sample_rate / 2
        fmax = self.fmax_hz
        if not 0 <= self.fmin < fmax:
            problems.append(f"need 0 <= fmin < fmax, got fmin={self.fmin}, fmax={fmax}")
        if fmax > nyquist:
            problems.append(f"fmax={fmax} is above the Nyquist frequency {nyquist}")
        if self.power <= 0:
            problems.append(f"power must be > 0, got {self.power}")
        if self.log_base not in _LOG_BASES:
            problems.append(f"log_base must be one of {sorted(_LOG_BASES)}, got {self.log_base!r}")
        if self.floor <= 0:
            problems.append(f"floor must be > 0, got {self.floor}")
        if self.pad_mode not in _PAD_MODES:
            problems.append(f"pad_mode must be one of {_PAD_MODES}, got {self.pad_mode!r}")
        if self.norm not in _NORMS:
            problems.append(f"norm must be one of {_NORMS}, got {self.norm!r}")
        if problems:
            raise ValueError("invalid MelConfig: " + "; ".join(problems))

    # -- derived values -------------------------------------------------------------------
    @property
    def win(self) -> int:
        """Effective window length."""
        return self.n_fft if self.win_length is None else self.win_length

    @property
    def fmax_hz(self) -> float:
        """Effective upper band edge."""
        return self.sample_rate / 2 if self.fmax is None else float(self.fmax)

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def min_samples(self) -> int:
        """Shortest signal this config can analyse: one frame (a centred reflect-padded STFT needs
        ``n_fft // 2 + 1`` samples to reflect, a constant-padded one any, an uncentred one n_fft).
        """
        if not self.center:
            return self.n_fft
        return self.n_fft // 2 + 1 if self.pad_mode == "reflect" else 1

    def band_centres_hz(self) -> np.ndarray:
        """(n_mels,) centre frequency of each band, Hz: its filter's weighted mean frequency."""
        return _band_centres(self)

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for a signal of ``n_samples`` samples."""
        if self.center:
            return 1 + n_samples // self.hop_length
        if n_samples < self.n_fft:
            return 0
        return 1 + (n_samples - self.n_fft) // self.hop_length

    # -- the frame contract: T frames <-> T * hop_length samples ----------------------------
    def frames_in(self, n_samples: int) -> int:
        """Whole vocoder frames in ``n_samples`` samples: a vocoder turns T frames into exactly
        T * hop_length samples, so a clip is cut to ``frames_in(n) * hop_length`` samples and its
        (centred) mel to the first ``frames_in(n)`` frames.
        """
        return int(n_samples) // self.hop_length

    def crop_samples(self, y):
        """``y`` (..., S) cut to whole frames: (..., frames_in(S) * hop_length)."""
        return y[..., : self.frames_in(y.shape[-1]) * self.hop_length]

    def crop_frames(self, mel, n_samples: int):
        """The mel (..., T') of a signal of ``n_samples`` samples cut to the frames a vocoder
        turns back into it: (..., frames_in(n_samples)) (a centred STFT has one more).
        """
        return mel[..., : self.frames_in(n_samples)]

    @property
    def log_floor(self) -> float:
        """The log-mel value of silence (the floor through :meth:`log`)."""
        return float(self.log(np.float64(self.floor)))

    @property
    def log_scale(self) -> float:
        """Natural-log units per unit of this config's log (ln of the base): ``ln(mel) = log(mel) * log_scale``."""
        return _LOG_BASES[self.log_base]

    def log(self, x):
        """Apply this config's floor and log to a numpy array or torch tensor."""
        scale = self.log_scale
        if isinstance(x, torch.Tensor):
            out = torch.log(torch.clamp(x, min=self.floor))
        else:
            out = np.log(np.maximum(x, self.floor))
        return out if scale == 1.0 else out / scale

    def exp(self, x):
        """Inverse of :meth:`log` (above the floor)."""
        scale = self.log_scale
        if isinstance(x, torch.Tensor):
            return torch.exp(x * scale)
        return np.exp(x * scale)

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown MelConfig field(s) {unknown}; allowed: {sorted(names)}")
        return cls(**dict(d))

    def fingerprint(self) -> str:
        """A short stable hash of every field (used to key caches)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def diff(self, other: "MelConfig") -> dict[str, tuple[Any, Any]]:
        """Fields whose values differ: ``{name: (self_value, other_value)}``."""
        out = {}
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a != b:
                out[f.name] = (a, b)
        return out

    def check_compatible(self, other: "MelConfig", what: str = "mel", other_what: str = "other") -> None:
        """Raise :class:`MelConfigMismatch` naming every differing field."""
        d = self.diff(other)
        if d:
            fields = ", ".join(f"{k}: {a!r} ({what}) != {b!r} ({other_what})" for k, (a, b) in d.items())
            raise MelConfigMismatch(f"mel configs differ between {what} and {other_what}: {fields}")


# -- shared building blocks ---------------------------------------------------------------
@functools.lru_cache(maxsize=8)  # the config is frozen: one filterbank per config, not one per call
def _band_centres(cfg: MelConfig) -> np.ndarray:
    fb = mel_filterbank(cfg)
    freqs = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate)
    weight = fb.sum(axis=1)
    centres = (fb @ freqs) / np.where(weight > 0, weight, 1.0)
    centres.setflags(write=False)
    return centres


def stft_window(cfg: MelConfig) -> np.ndarray:
    """The analysis window, centre-padded to ``n_fft`` exactly as librosa does (float64)."""
    import librosa

    w = librosa.filters.get_window(cfg.window, cfg.win, fftbins=True)
    return librosa.util.pad_center(np.asarray(w, dtype=np.float64), size=cfg.n_fft)


def mel_filterbank(cfg: MelConfig, dtype=np.float64) -> np.ndarray:
    """Librosa's mel filterbank for this config, shape (n_mels, n_fft // 2 + 1)."""
    import librosa

    return librosa.filters.mel(
        sr=cfg.sample_rate,
        n_fft=cfg.n_fft,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax_hz,
        htk=cfg.htk,
        norm="slaney" if cfg.norm == "slaney" else None,
        dtype=dtype,
    )


class MelSpectrogram(torch.nn.Module):
    """Torch log-mel spectrogram for a :class:`MelConfig`.

    The window and filterbank are buffers, so the module follows ``.to(device)``; it is
    differentiable and used by the vocoder losses.

    Args:
        cfg: The mel definition.
        log: Return log-mel (True) or linear mel (False).
    """

    def __init__(self, cfg: MelConfig, log: bool = True):
        super().__init__()
        self.cfg = cfg
        self.use_log = log
        # float64 masters, cast to the input's dtype per call: a window rounded to float32 leaks
        # enough to move deep spectral valleys, so .double() must be able to recover full precision.
        self.register_buffer("window", torch.from_numpy(stft_window(cfg)), persistent=False)
        self.register_buffer("fb", torch.from_numpy(mel_filterbank(cfg)), persistent=False)

    def frame_range(self, y: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Frames ``start .. stop-1`` of ``forward(y)`` for a 1-D ``y``, computing only those (the
        signal's own ends are padded as ``forward`` pads them): a long file's mel in bounded memory.

        Returns:
            Tensor: (n_mels, stop - start), equal to ``forward(y)[:, start:stop]`` up to rounding.
        """
        cfg = self.cfg
        if not cfg.center:
            return self.forward(y[start * cfg.hop_length: (stop - 1) * cfg.hop_length + cfg.n_fft])
        spec = self.stft_range(y, start, stop)
        if spec is None:  # a signal shorter than the reflect padding: forward says why
            return self.forward(y)[:, start:stop]
        return self.from_spectrum(spec[None])[0]

    def stft_range(self, y: torch.Tensor, start: int, stop: int) -> torch.Tensor | None:
        """The complex STFT frames ``start .. stop-1`` (n_fft // 2 + 1, stop - start) of a 1-D ``y``
        under this config's centred framing, computing only those; None where the signal is too short
        for its reflect padding.
        """
        cfg = self.cfg
        pad, n = cfg.n_fft // 2, y.shape[-1]
        a, b = start * cfg.hop_length - pad, (stop - 1) * cfg.hop_length + cfg.n_fft - pad  # in y's samples
        if a >= 0 and b <= n:
            seg = y[a:b]
        else:  # at an end: pad exactly as forward does (reflect uses the samples next to the end)
            left, right = max(0, -a), max(0, b - n)
            seg = y[max(a, 0): min(b, n)]
            if left or right:
                if cfg.pad_mode == "reflect" and (left >= n or right >= n):
                    return None
                seg = torch.nn.functional.pad(seg[None, None], (left, right), mode=cfg.pad_mode)[0, 0] \
                    if cfg.pad_mode != "reflect" else torch.cat([y[1: left + 1].flip(0), seg, y[n - 1 - right: n - 1].flip(0)])
        return torch.stft(seg[None], n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.n_fft,
                          window=self.window.to(seg.dtype), center=False, return_complex=True)[0]

    def from_spectrum(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex STFT frames (B, n_fft // 2 + 1, T) → the (log-)mel (B, n_mels, T)."""
        cfg = self.cfg
        mag = spec.abs()
        if cfg.power != 1.0:
            mag = mag.pow(cfg.power)
        mel = torch.matmul(self.fb.to(mag.dtype), mag)
        return cfg.log(mel) if self.use_log else mel

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Compute the (log-)mel.

        Args:
            y (Tensor): waveform, shape (T,) or (B, T) or (B, 1, T).

        Returns:
            Tensor: (n_mels, frames) for 1-D input, else (B, n_mels, frames).
        """
        squeeze = y.dim() == 1
        if y.dim() == 3:
            if y.shape[1] != 1:
                raise ValueError(f"expected (B, 1, T) audio, got shape {tuple(y.shape)}")
            y = y[:, 0]
        if squeeze:
            y = y[None]
        cfg = self.cfg
        if cfg.center:
            pad = cfg.n_fft // 2
            if cfg.pad_mode == "reflect" and y.shape[-1] <= pad:
                raise ValueError(
                    f"signal of {y.shape[-1]} samples is too short for reflect padding of {pad}"
                )
            y = torch.nn.functional.pad(y[:, None], (pad, pad), mode=cfg.pad_mode)[:, 0]
        spec = torch.stft(
            y,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.n_fft,
            window=self.window.to(y.dtype),
            center=False,
            return_complex=True,
        )
        out = self.from_spectrum(spec)
        return out[0] if squeeze else out


# -- normalisation statistics -------------------------------------------------------------
@dataclass
class MelStats:
    """Per-mel-bin statistics of log-mels from a training split, and the normalisation.

    ``normalize(x) = clip((x - mean) / std, -clip_sigma, clip_sigma) / clip_sigma`` so that
    normalised mels lie in [-1, 1] (SpecGAN's convention). ``clip_sigma=None`` skips the
    clip and the scaling (plain standardisation).

    Attributes:
        mean: (n_mels,) float64.
        std: (n_mels,) float64, strictly positive.
        count: Number of frames the statistics were computed on.
        clip_sigma: Clip bound in standard deviations, or None.
    """

    mean: np.ndarray
    std: np.ndarray
    count: int = 0
    clip_sigma: float | None = 3.0

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.std = np.asarray(self.std, dtype=np.float64)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError(f"mean/std must be 1-D and the same shape, got {self.mean.shape} and {self.std.shape}")
        if not np.all(np.isfinite(self.mean)) or not np.all(np.isfinite(self.std)) or np.any(self.std <= 0):
            raise ValueError("MelStats needs finite mean and finite std > 0 in every bin")
        if self.clip_sigma is not None and self.clip_sigma <= 0:
            raise ValueError(f"clip_sigma must be > 0 or None, got {self.clip_sigma}")

    @property
    def n_mels(self) -> int:
        return int(self.mean.shape[0])

    def _broadcast(self, x, v: np.ndarray):
        # Stats index the mel axis, which is the second-to-last axis of (..., n_mels, frames).
        if x.shape[-2] != self.n_mels:
            raise ValueError(f"expected {self.n_mels} mel bins on axis -2, got shape {tuple(x.shape)}")
        if isinstance(x, torch.Tensor):
            return torch.as_tensor(v, dtype=x.dtype, device=x.device)[:, None]
        return v.astype(x.dtype if x.dtype.kind == "f" else np.float32)[:, None]

    def normalize(self, x):
        """Log-mel (..., n_mels, frames) → normalised mel (same shape)."""
        z = (x - self._broadcast(x, self.mean)) / self._broadcast(x, self.std)
        if self.clip_sigma is None:
            return z
        c = self.clip_sigma
        z = z.clamp(-c, c) if isinstance(z, torch.Tensor) else np.clip(z, -c, c)
        return z / c

    def denormalize(self, z):
        """Normalised mel → log-mel (inverse of :meth:`normalize` inside the clip range)."""
        if self.clip_sigma is not None:
            z = z * self.clip_sigma
        return z * self._broadcast(z, self.std) + self._broadcast(z, self.mean)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "count": int(self.count),
                "clip_sigma": self.clip_sigma}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MelStats":
        return cls(np.asarray(d["mean"]), np.asarray(d["std"]), int(d.get("count", 0)), d.get("clip_sigma", 3.0))

    def save(self, path: str | Path, **extra: str) -> None:
        """Write an ``.npz`` with mean, std, count, clip_sigma and string metadata."""
        clip = np.nan if self.clip_sigma is None else float(self.clip_sigma)
        np.savez(path, mean=self.mean, std=self.std, count=np.int64(self.count), clip_sigma=np.float64(clip),
                 **{k: np.str_(v) for k, v in extra.items()})

    @classmethod
    def load(cls, path: str | Path) -> "MelStats":
        with np.load(path) as z:
            clip = float(z["clip_sigma"])
            return cls(z["mean"], z["std"], int(z["count"]), None if math.isnan(clip) else clip)
