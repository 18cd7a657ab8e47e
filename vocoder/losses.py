"""Vocoder losses: adversarial (LSGAN or hinge), feature matching, mel L1 (through the one
MelConfig), multi-resolution STFT, and the phase-aware losses of APNet/APNet2 (amplitude,
anti-wrapped instantaneous phase, group delay, instantaneous angular frequency, STFT consistency).
Weighted by name from the recipe (HiFi-GAN's 45 / 2 / 1); every name a loss dict returns is a
:class:`LossWeights` field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vocoder.mel import MelConfig, MelSpectrogram

__all__ = ["LossWeights", "MelL1", "MultiResolutionSTFTLoss", "PhaseAwareLoss", "amplitude_loss", "anti_wrap",
           "consistency_loss", "critic_loss", "feature_matching", "generator_adversarial", "phase_losses",
           "safe_angle", "stft"]


@dataclass
class LossWeights:
    """Generator loss weights. ``adv`` multiplies the adversarial term, ``fm`` feature matching,
    ``mel`` the mel L1, ``stft`` the multi-resolution STFT loss (0 = not computed).

    The phase-aware terms (:class:`PhaseAwareLoss`, at the generator's own STFT resolution; 0 = not
    computed): ``amp`` log-amplitude MSE, ``phase_ip`` instantaneous phase, ``phase_gd`` group delay,
    ``phase_iaf`` instantaneous angular frequency (all three anti-wrapped), ``consistency`` the STFT
    consistency of a predicted spectrum. APNet's published weights, for scale: amp 45, phase_ip +
    phase_gd + phase_iaf 100 (each), consistency 20 — beside mel 45 (its mel loss and ours are both
    mean L1 of natural-log mels).
    """

    mel: float = 45.0
    fm: float = 2.0
    adv: float = 1.0
    stft: float = 0.0
    amp: float = 0.0
    phase_ip: float = 0.0
    phase_gd: float = 0.0
    phase_iaf: float = 0.0
    consistency: float = 0.0

    @classmethod
    def from_dict(cls, d: dict) -> "LossWeights":
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        if unknown:
            raise ValueError(f"unknown loss weight(s) {unknown}; known: {names}")
        return cls(**{k: float(v) for k, v in d.items()})


def critic_loss(real: list[torch.Tensor], fake: list[torch.Tensor], kind: str = "lsgan") -> torch.Tensor:
    """Critic loss summed over sub-critics. LSGAN: (D(x) - 1)² + D(G(z))²; hinge: relu(1 - D(x)) +
    relu(1 + D(G(z))).
    """
    total = 0.0
    for r, f in zip(real, fake, strict=True):
        if kind == "lsgan":
            total = total + torch.mean((r - 1) ** 2) + torch.mean(f**2)
        elif kind == "hinge":
            total = total + torch.mean(F.relu(1 - r)) + torch.mean(F.relu(1 + f))
        else:
            raise ValueError(f"adversarial loss must be 'lsgan' or 'hinge', got {kind!r}")
    return total


def generator_adversarial(fake: list[torch.Tensor], kind: str = "lsgan") -> torch.Tensor:
    """Generator's adversarial loss: LSGAN (D(G(z)) - 1)², hinge -D(G(z))."""
    total = 0.0
    for f in fake:
        if kind == "lsgan":
            total = total + torch.mean((f - 1) ** 2)
        elif kind == "hinge":
            total = total - torch.mean(f)
        else:
            raise ValueError(f"adversarial loss must be 'lsgan' or 'hinge', got {kind!r}")
    return total


def feature_matching(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean L1 between critic feature maps of real and generated audio, averaged per layer and
    summed over sub-critics (real features are constants here).
    """
    total = 0.0
    for rs, fs in zip(real, fake, strict=True):
        total = total + sum(torch.mean(torch.abs(r.detach() - f)) for r, f in zip(rs, fs, strict=True)) / len(rs)
    return total


class MelL1(nn.Module):
    """L1 between log-mels of two waveforms, using exactly the vocoder's MelConfig.

    y_hat, y: (B, 1, T) → scalar.
    """

    def __init__(self, mel_cfg: MelConfig):
        super().__init__()
        self.mel = MelSpectrogram(mel_cfg)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(self.mel(y_hat), self.mel(y))


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions (Parallel WaveGAN).

    Args:
        resolutions: (n_fft, hop, win) triples.
    """

    def __init__(self, resolutions=((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))):
        super().__init__()
        self.resolutions = [tuple(int(v) for v in r) for r in resolutions]
        for i, (_, _, win) in enumerate(self.resolutions):
            self.register_buffer(f"window{i}", torch.hann_window(win), persistent=False)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """y_hat, y: (B, 1, T) → scalar."""
        total = 0.0
        for i, (n_fft, hop, win) in enumerate(self.resolutions):
            w = getattr(self, f"window{i}")
            s_hat = torch.stft(y_hat.squeeze(1), n_fft, hop, win, w, return_complex=True).abs().clamp(min=1e-7)
            s = torch.stft(y.squeeze(1), n_fft, hop, win, w, return_complex=True).abs().clamp(min=1e-7)
            sc = torch.linalg.norm(s - s_hat) / torch.linalg.norm(s).clamp(min=1e-7)
            total = total + sc + F.l1_loss(torch.log(s_hat), torch.log(s))
        return total / len(self.resolutions)


# -- phase-aware losses (APNet, Ai & Ling 2023; APNet2, Du et al. 2023) --------------------------
def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """Distance of a phase difference to the nearest multiple of 2π: ``|x - 2π·round(x / 2π)|``.

    In [0, π]; zero exactly when ``x`` is a whole number of turns, so a phase error of 2π·k costs
    nothing. The gradient is ±1 almost everywhere (``round`` is piecewise constant).
    """
    return torch.abs(x - 2 * math.pi * torch.round(x / (2 * math.pi)))


def stft(y: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor) -> torch.Tensor:
    """Centred (reflect-padded) complex STFT, as the iSTFT generators invert it.

    Args:
        y (Tensor): (B, 1, L) or (B, L).
        window (Tensor): (n_fft,).

    Returns:
        Tensor: complex (B, n_fft // 2 + 1, 1 + L // hop_length).
    """
    if y.dim() == 3:
        y = y.squeeze(1)
    return torch.stft(y, n_fft, hop_length, n_fft, window.to(y.dtype), center=True, return_complex=True)


def safe_angle(spec: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """``angle(spec)`` whose gradient stays finite at (near-)zero bins (there it is zero).

    ``torch.angle``/``atan2`` differentiate to (re·dim - im·dre) / |S|², which is inf/NaN at an
    exact zero; the double ``where`` keeps the unsafe branch out of the backward pass.
    """
    re, im = spec.real, spec.imag
    small = (re * re + im * im) < eps
    re_safe = torch.where(small, torch.ones_like(re), re)
    im_safe = torch.where(small, torch.zeros_like(im), im)
    return torch.where(small, torch.atan2(im.detach(), re.detach()), torch.atan2(im_safe, re_safe))


def _weighted_mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return x.mean()
    return (x * weight).sum() / weight.sum().clamp(min=1e-12)


def phase_losses(phase_hat: torch.Tensor, phase: torch.Tensor,
                 weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """APNet's three anti-wrapped phase losses between two (B, F, T) phase spectrograms.

    - ``phase_ip``: instantaneous phase, mean ``anti_wrap(φ̂ - φ)``;
    - ``phase_gd``: group delay, the same on the differences along frequency (φ[k+1] - φ[k]);
    - ``phase_iaf``: instantaneous angular frequency, on the differences along time (φ[t+1] - φ[t]).

    All three are zero for identical phases and unchanged when either phase moves by 2π·k per bin.

    Args:
        phase_hat, phase (Tensor): (B, F, T) in radians (any range).
        weight (Tensor, optional): (B, F, T) non-negative bin weights (e.g. the reference magnitude);
            the differences use the smaller weight of their two bins. None = plain mean (APNet).

    Returns:
        dict: ``{"phase_ip", "phase_gd", "phase_iaf"}`` scalars, each in [0, π].
    """
    if phase_hat.shape != phase.shape:
        raise ValueError(f"phase shapes differ: {tuple(phase_hat.shape)} vs {tuple(phase.shape)}")
    d = phase_hat - phase
    w_gd = w_iaf = None
    if weight is not None:
        w_gd = torch.minimum(weight[..., 1:, :], weight[..., :-1, :])
        w_iaf = torch.minimum(weight[..., 1:], weight[..., :-1])
    return {"phase_ip": _weighted_mean(anti_wrap(d), weight),
            # diff of the error = diff(φ̂) - diff(φ): the group-delay / IAF error of the two spectra
            "phase_gd": _weighted_mean(anti_wrap(d[..., 1:, :] - d[..., :-1, :]), w_gd),
            "phase_iaf": _weighted_mean(anti_wrap(d[..., 1:] - d[..., :-1]), w_iaf)}


def amplitude_loss(log_amp_hat: torch.Tensor, log_amp: torch.Tensor) -> torch.Tensor:
    """Mean squared error of two (B, F, T) natural-log amplitude spectrograms (APNet's amplitude loss)."""
    return F.mse_loss(log_amp_hat, log_amp)


def consistency_loss(spec: torch.Tensor, n_fft: int, hop_length: int, window: torch.Tensor,
                     length: int | None = None) -> torch.Tensor:
    """STFT consistency: mean |S - STFT(iSTFT(S))|² over bins (real and imaginary parts).

    An STFT of any real signal is consistent, so this is zero for it (to float precision); an
    arbitrary complex array (e.g. a magnitude with random phase) is not, and pays.

    Args:
        spec (Tensor): complex (B, n_fft // 2 + 1, T) predicted spectrum, centred frames.
        length (int, optional): samples of the waveform it stands for (default (T - 1)·hop, what
            ``torch.istft`` would give); the iSTFT generators pass T·hop.

    Returns:
        Tensor: scalar.
    """
    frames = spec.shape[-1]
    length = (frames - 1) * hop_length if length is None else length
    w = window.to(spec.real.dtype)
    y = torch.istft(spec, n_fft, hop_length, n_fft, w, center=True, length=length)
    again = stft(y, n_fft, hop_length, w)[..., :frames]
    if again.shape[-1] != frames:
        raise ValueError(f"a {length}-sample signal has {again.shape[-1]} frames at hop {hop_length}, "
                         f"fewer than the spectrum's {frames}")
    return (again - spec).abs().pow(2).mean()


class PhaseAwareLoss(nn.Module):
    """The APNet/APNet2 loss family at one STFT resolution, returned as named terms.

    Works for any generator from waveforms alone: the amplitude and phase terms compare STFT(ŷ) with
    STFT(y). A generator that predicts its spectrum (``phase``) can pass its own outputs instead,
    which supervises its heads directly (APNet's setting: dense, and independent of what the iSTFT's
    overlap-add does to an inconsistent spectrum), and the predicted complex spectrum for the
    consistency term.

    Args:
        n_fft: FFT size (the generator's ``stft_n_fft``).
        hop_length: hop (the generator's ``stft_hop``).
        window: (n_fft,) analysis window (the generator's ``stft_window``); None = periodic Hann.
        floor: amplitude floor before the log (silence would otherwise give log 0).
        weighting: ``"none"`` (plain means, APNet) or ``"magnitude"`` (phase errors weighted by the
            reference amplitude, so the phase of near-silent bins, which is noise and inaudible,
            does not dominate; the difference terms take the smaller weight of the two bins).
    """

    names = ("amp", "phase_ip", "phase_gd", "phase_iaf", "consistency")

    def __init__(self, n_fft: int, hop_length: int, window: torch.Tensor | None = None, floor: float = 1e-5,
                 weighting: str = "none"):
        super().__init__()
        if weighting not in ("none", "magnitude"):
            raise ValueError(f"weighting must be 'none' or 'magnitude', got {weighting!r}")
        window = torch.hann_window(n_fft) if window is None else window.detach().clone()
        if window.shape != (n_fft,):
            raise ValueError(f"window must have shape ({n_fft},), got {tuple(window.shape)}")
        self.n_fft, self.hop_length, self.floor, self.weighting = n_fft, hop_length, floor, weighting
        self.register_buffer("window", window.float(), persistent=False)

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor, spectrum: torch.Tensor | None = None,
                log_amplitude: torch.Tensor | None = None,
                phase: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Named losses between a generated and a real waveform.

        Args:
            y_hat, y (Tensor): (B, 1, L) generated and real waveforms.
            spectrum (Tensor, optional): complex (B, F, T') predicted spectrum; enables
                ``consistency`` and, when log_amplitude/phase are not given, stands for them.
            log_amplitude, phase (Tensor, optional): (B, F, T') the generator's own head outputs.

        Returns:
            dict: ``amp``, ``phase_ip``, ``phase_gd``, ``phase_iaf`` and, with a spectrum,
            ``consistency`` — scalars named as the :class:`LossWeights` fields.
        """
        ref = stft(y, self.n_fft, self.hop_length, self.window)
        if log_amplitude is None or phase is None:
            est = spectrum if spectrum is not None else stft(y_hat, self.n_fft, self.hop_length, self.window)
            if log_amplitude is None:
                log_amplitude = torch.log(est.abs().clamp(min=self.floor))
            if phase is None:
                phase = safe_angle(est)
        frames = min(ref.shape[-1], phase.shape[-1], log_amplitude.shape[-1])
        ref = ref[..., :frames]
        ref_amp = ref.abs()
        weight = None
        if self.weighting == "magnitude":
            weight = ref_amp / ref_amp.mean(dim=(-2, -1), keepdim=True).clamp(min=self.floor)
        out = {"amp": amplitude_loss(log_amplitude[..., :frames], torch.log(ref_amp.clamp(min=self.floor))),
               **phase_losses(phase[..., :frames], safe_angle(ref), weight)}
        if spectrum is not None:
            out["consistency"] = consistency_loss(spectrum, self.n_fft, self.hop_length, self.window,
                                                  length=y_hat.shape[-1])
        return out
