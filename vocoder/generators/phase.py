"""A phase-aware frame-rate vocoder: amplitude from the mel's pseudo-inverse plus a residual
(FreeV, Lv et al. 2024), phase from two parallel outputs through atan2 (APNet, Ai & Ling 2023),
an inverse STFT at a shorter hop than the mel's (frame features upsampled ×1/2/4).

Every lever is a constructor keyword, so a recipe ablates it in one line::

    generator: {name: phase, amp_prior: false}        # magnitude from scratch, as istft
    generator: {name: phase, phase_head: direct}      # one phase output, as istft
    generator: {name: phase, upsample: 1}             # iSTFT at the mel's hop

Layout (B batch, T mel frames, u = upsample, T' = T·u, F = n_fft // 2 + 1)::

    log-mel (B, n_mels, T) ─ ConvNeXt trunk at frame rate (dim) ─ upsample ×u ─┬─ ConvNeXt (phase_layers)
                                                                               │   → Linear → (re, im) → atan2
    log-mel → exp → pinv(mel filterbank) → clamp → log ── interpolate ×u ─────┴─ ConvNeXt (amp_layers)
                                                                                   → Linear → + prior → log|S|
    |S|·e^{iφ} (B, F, T') → iSTFT(n_fft, hop / u) → waveform (B, 1, T·hop)

Training losses at the generator's own STFT resolution (``stft_n_fft``, ``stft_hop``,
``stft_window``) are in :class:`vocoder.losses.PhaseAwareLoss`; :meth:`forward_with_spectrum`
returns what they need.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn

from vocoder.generators.base import Generator, StftGeometry
from vocoder.generators.istft import _ConvNeXtBlock
from vocoder.mel import MelConfig, mel_filterbank, stft_window
from vocoder.fastgl import STFTPlan, fast_griffin_lim_np
from vocoder.pghi import MODES as PGHI_MODES
from vocoder.pghi import fast_griffin_lim, pghi
from vocoder.registry import register_generator

__all__ = ["PhaseGenerator", "floor_aware_target", "integrate_phase", "mel_grid_weights", "mel_pseudo_inverse", "nnls_refine"]


def mel_grid_weights(mel_cfg: MelConfig, n_fft: int) -> tuple[np.ndarray | None, float]:
    """Weights carrying a spectrum on the mel's ``mel_cfg.n_fft`` grid to an ``n_fft`` grid, and the
    magnitude scale between the two window lengths (see :func:`mel_pseudo_inverse`).

    Returns:
        (weights, scale): weights (n_fft // 2 + 1, mel_cfg.n_fft // 2 + 1) rows summing to one, or
        None when the grids are the same (scale 1).
    """
    if n_fft == mel_cfg.n_fft:
        return None, 1.0
    f_mel = np.fft.rfftfreq(mel_cfg.n_fft, 1.0 / mel_cfg.sample_rate)
    f_int = np.fft.rfftfreq(n_fft, 1.0 / mel_cfg.sample_rate)
    half = max(f_mel[1], f_int[1])
    weights = np.clip(1.0 - np.abs(f_int[:, None] - f_mel[None, :]) / half, 0.0, None)  # (F_int, F_mel)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights, math.sqrt(n_fft / mel_cfg.win)


def _use_fastgl(x: torch.Tensor) -> bool:
    """Griffin-Lim iterations through :mod:`vocoder.fastgl` (numpy/numba) for tensors on the CPU;
    torch's STFT on other devices.
    """
    return x.device.type == "cpu"


def nnls_refine(fb: torch.Tensor, target: torch.Tensor, x: torch.Tensor, n_iter: int) -> torch.Tensor:
    """Lee-Seung multiplicative updates for min ||fb x - target||² subject to x >= 0.

    Each step keeps a positive ``x`` positive and does not increase the error, so starting from the
    clamped pseudo-inverse it moves toward the non-negative least-squares spectrum (the clamp alone
    leaves the bands' sums wrong wherever the pseudo-inverse swung negative).

    Args:
        fb (Tensor): (n_mels, F) filterbank.
        target (Tensor): (B, n_mels, T) mel on the linear scale (magnitude ** power).
        x (Tensor): (B, F, T) positive start.
        n_iter: updates.

    Returns:
        Tensor: (B, F, T) refined, non-negative.

    On a CPU the filterbank is applied as a sparse (CSR) matrix: a mel filterbank has about two
    non-zeros per frequency bin (1,009 of 128 x 513 for the music mel), so each update costs a
    fiftieth of the dense products' arithmetic (5x faster end to end; equal to float rounding).
    """
    if fb.device.type != "cpu" or x.dim() != 3:
        numer = torch.matmul(fb.T, target)
        for _ in range(n_iter):
            x = x * numer / torch.matmul(fb.T, torch.matmul(fb, x)).clamp(min=1e-10)
        return x
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the two products used here are stable
        warnings.simplefilter("ignore", UserWarning)
        a, a_t = fb.to_sparse_csr(), fb.T.contiguous().to_sparse_csr()
    b, f, t = x.shape
    flat = x.transpose(0, 1).reshape(f, b * t)  # (F, B*T): the batch's frames side by side, one product each
    numer = a_t @ target.transpose(0, 1).reshape(fb.shape[0], b * t)
    for _ in range(n_iter):
        flat = flat * numer / (a_t @ (a @ flat)).clamp(min=1e-10)
    return flat.reshape(f, b, t).transpose(0, 1)


def floor_aware_target(target: torch.Tensor, present: torch.Tensor, floor: float) -> torch.Tensor:
    """The mel a magnitude correction aims at: ``target`` where it is above ``floor``; where a band
    sits at the floor (the log clamped it there: its true level is anywhere below), the smaller of
    the floor and what the band ``present``ly holds, so a quiet band may stay quiet but is never
    raised to the floor (that would add noise at the floor's level).

    Args:
        target (Tensor): linear mel (magnitude ** power) of the input, any shape.
        present (Tensor): the linear mel of the magnitude being corrected, same shape.
        floor: the linear level at or under which a band counts as clamped.
    """
    return torch.where(target <= floor, torch.minimum(target, present), target)


def mel_pseudo_inverse(mel_cfg: MelConfig, n_fft: int) -> tuple[np.ndarray, float]:
    """The pseudo-inverse of ``mel_cfg``'s filterbank, resampled onto an ``n_fft``-point frequency grid.

    The inverse is taken where the mel was built (``mel_cfg.n_fft``), so every band counts: on a
    coarser grid the narrow low bands would fall between bins and the least-squares solution would
    swing negative. The smooth envelope it gives is then carried to the ``n_fft`` grid by triangular
    weights of half width max(grid spacings) (linear interpolation onto a finer grid, local
    averaging onto a coarser one). The STFT magnitude of the same sound at another window length
    also differs by a constant: ``scale`` is the one for noise-like (unresolved) content, sqrt of
    the window-energy ratio; the residual network learns what a constant misses.

    Args:
        mel_cfg: the mel definition.
        n_fft: FFT size of the target grid.

    Returns:
        (pinv, scale): pinv (n_fft // 2 + 1, n_mels) float64; magnitude at ``n_fft`` =
        scale · clamp(pinv @ mel)^(1 / power).
    """
    pinv = np.linalg.pinv(mel_filterbank(mel_cfg))  # (F_mel, n_mels)
    weights, scale = mel_grid_weights(mel_cfg, n_fft)
    return (pinv if weights is None else weights @ pinv), scale


def _interpolate_frames(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C, T) → (B, C, T·factor), linear between frames: internal frame t·u + r lies r/u of the way
    from mel frame t to t + 1 (centred STFTs), the last frame is held.
    """
    if factor == 1:
        return x
    nxt = torch.cat([x[..., 1:], x[..., -1:]], dim=-1)
    steps = [x + (nxt - x) * (r / factor) for r in range(factor)]
    return torch.stack(steps, dim=-1).flatten(-2)


def integrate_phase(offset: torch.Tensor, deviation: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """Phase from an integrated instantaneous frequency (the phase vocoder's accumulation).

    Bin k of a frame is taken to hold a component at (k + d) bins, d = ``deviation``; between
    frames its phase advances by 2π (k + d) hop / n_fft, accumulated from the first frame, plus a
    local ``offset`` (transients, noise). For a steady component d is constant, so the phase keeps
    advancing at the component's own frequency on a constant input — a per-frame estimate cannot
    (identical frames in, identical phases out: a signal periodic in the hop, i.e. the hop-rate comb).

    Args:
        offset (Tensor): (B, F, T) radians.
        deviation (Tensor): (B, F, T) bins.
        n_fft, hop: the STFT the phase is for.

    Returns:
        Tensor: (B, F, T) phase in radians (unwrapped).
    """
    k = torch.arange(offset.shape[-2], device=offset.device, dtype=offset.dtype)[:, None]
    advance = (2 * math.pi * hop / n_fft) * (k + deviation)        # (B, F, T) radians per frame
    advance = torch.remainder(advance, 2 * math.pi)                 # keeps the running sum small
    total = torch.cumsum(advance, dim=-1) - advance[..., :1]        # frame 0 starts at its offset
    return offset + torch.remainder(total, 2 * math.pi)


def _blocks(dim: int, intermediate: int, n: int) -> nn.ModuleList:
    return nn.ModuleList(_ConvNeXtBlock(dim, intermediate, 1.0 / max(n, 1)) for _ in range(n))


class _Stack(nn.Module):
    """ConvNeXt blocks → LayerNorm → Linear to ``out`` channels. (B, dim, T) → (B, out, T)."""

    def __init__(self, dim: int, intermediate: int, layers: int, out: int):
        super().__init__()
        self.blocks = _blocks(dim, intermediate, layers)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj = nn.Linear(dim, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.proj(self.norm(x.transpose(1, 2))).transpose(1, 2)


@register_generator("phase")
class PhaseGenerator(Generator):
    """Phase-aware frame-rate vocoder (FreeV amplitude prior + APNet phase head + short-hop iSTFT).

    Args:
        mel_cfg: The mel consumed (an un-normalised log-mel exactly as :class:`MelSpectrogram` makes it).
        dim: Trunk channels (frame rate).
        intermediate_dim: Hidden size of the trunk blocks' MLPs.
        num_layers: Trunk ConvNeXt blocks (frame rate, shared by both branches).
        upsample: 1, 2 or 4: iSTFT hop = mel hop / upsample; the branches run at that rate.
        n_fft: Internal FFT size (default ``mel n_fft // upsample``: the mel's window-to-hop ratio
            (75% overlap for 1024/256), and the same F·frames per second as the mel's STFT, so the
            heads cost the same at every ``upsample`` while the frame shift shrinks — APNet's point
            is that a short shift makes phase easy to predict per frame). Even, >= the internal hop.
        branch_dim: Channels of the two branches after upsampling.
        branch_intermediate_dim: Hidden size of the branch blocks' MLPs.
        amp_layers: ConvNeXt blocks of the amplitude branch (the residual refiner when ``amp_prior``).
        phase_layers: ConvNeXt blocks of the phase branch.
        amp_residual: With ``amp_prior``: learn a residual on the prior (True), or use the prior as the
            magnitude and learn the phase only (False; tools/phase_bounds.py: the mel's own magnitude
            with the true phase scores PESQ 3.8 on the unseen speaker, so the phase is the gap).
        amp_prior: Start the log-magnitude from the pseudo-inverse of the mel filterbank and learn a
            residual (FreeV); False predicts the log-magnitude from scratch (as ``istft``).
        phase_head: ``"atan2"`` (two parallel outputs, real and imaginary, phase = atan2(im, re):
            wrapped by construction, no discontinuity for the network to learn), ``"direct"`` (one
            output read as radians, as ``istft``) or ``"integrate"`` (atan2 for a local offset plus a
            per-bin frequency deviation whose phase advance is accumulated over frames:
            :func:`integrate_phase`) or ``"pghi"`` (no phase network: the phase is read off the
            predicted magnitude by phase-gradient heap integration, :mod:`vocoder.pghi`; the network
            learns the magnitude only, which with the true magnitude at n_fft 512 / hop 64 gives
            PESQ 4.3 on the unseen speaker, docs/vocoder.md).
        upsampler: ``"transposed"`` (a learned ConvTranspose1d: each sub-frame position has its
            own weights, a pattern that repeats every mel frame) or ``"linear"`` (features
            interpolated linearly between mel frames, then a 1x1 convolution).
        max_deviation: ``integrate``: the deviation is max_deviation · tanh(·) bins.
        max_log_magnitude: Clamp on the log-magnitude (keeps exp() finite early on).
        nnls_iter: ``amp_prior``: Lee-Seung non-negative least-squares updates on the clamped
            pseudo-inverse (:func:`nnls_refine`; 30 is griffinlim's). 0 keeps the clamped
            pseudo-inverse (models trained before this option).
        refine_iter: ``phase_head: pghi``: fast Griffin-Lim iterations at the internal STFT started
            from PGHI's phase (0: PGHI alone). Where the predicted magnitude has no fine structure
            (unresolved high harmonics, noise) PGHI's phase advances at each bin's centre frequency,
            which repeats every n_fft samples: a comb. A few iterations break it (docs/vocoder.md).
        pghi_mode: ``"offline"`` (one heap over the clip) or ``"frames"`` (frame by frame, RTPGHI:
            half the time, the same PESQ from a true magnitude; :func:`vocoder.pghi.pghi`).
        pghi_tol: PGHI integrates the coefficients above ``pghi_tol`` x the clip's largest; the
            quieter ones start from a random phase that the Griffin-Lim iterations then adjust
            (1e-5: -100 dB, 97 % of speech's coefficients; 1e-3: -60 dB, under half, 40 % faster).
        mel_refine_iter: An inference step after the internal iSTFT (0: none): the output's STFT at
            the *mel's* resolution, its magnitude pulled toward the input mel by ``mel_nnls_iter``
            multiplicative updates started from it (the network's fine structure kept, each band's
            energy set by the mel), then this many fast Griffin-Lim iterations at that resolution
            started from the output's own phase (:meth:`mel_refine`).
        mel_nnls_iter: The updates of ``mel_refine_iter``'s magnitude correction.
    """

    def __init__(self, mel_cfg: MelConfig, dim: int = 256, intermediate_dim: int = 768, num_layers: int = 4,
                 upsample: int = 4, n_fft: int | None = None, branch_dim: int = 128,
                 branch_intermediate_dim: int = 256, amp_layers: int = 1, phase_layers: int = 2,
                 amp_prior: bool = True, phase_head: str = "atan2", max_log_magnitude: float = 4.6,
                 upsampler: str = "transposed", max_deviation: float = 1.0, amp_residual: bool = True,
                 nnls_iter: int = 0, refine_iter: int = 0, pghi_mode: str = "offline",
                 pghi_tol: float = 1e-5, mel_refine_iter: int = 0, mel_nnls_iter: int = 10):
        super().__init__(mel_cfg)
        if upsample not in (1, 2, 4):
            raise ValueError(f"phase: upsample must be 1, 2 or 4, got {upsample}")
        if mel_cfg.hop_length % upsample:
            raise ValueError(f"phase: the mel hop {mel_cfg.hop_length} is not divisible by upsample {upsample}")
        if phase_head not in ("atan2", "direct", "integrate", "pghi"):
            raise ValueError(f"phase: phase_head must be 'atan2', 'direct', 'integrate' or 'pghi', got {phase_head!r}")
        if phase_head == "pghi" and not amp_residual:
            raise ValueError("phase: phase_head: pghi needs amp_residual: true (nothing would be learned)")
        if not amp_residual and not amp_prior:
            raise ValueError("phase: amp_residual: false needs amp_prior: true (the magnitude would be nothing)")
        if upsampler not in ("transposed", "linear"):
            raise ValueError(f"phase: upsampler must be 'transposed' or 'linear', got {upsampler!r}")
        if pghi_mode not in PGHI_MODES:
            raise ValueError(f"phase: pghi_mode must be {' or '.join(map(repr, PGHI_MODES))}, got {pghi_mode!r}")
        if not 0 < pghi_tol < 1:
            raise ValueError(f"phase: pghi_tol must be in (0, 1), got {pghi_tol}")
        if refine_iter < 0 or (refine_iter and phase_head != "pghi"):
            raise ValueError(f"phase: refine_iter must be >= 0 and needs phase_head: pghi, got {refine_iter}")
        if nnls_iter < 0 or (nnls_iter and not amp_prior):
            raise ValueError(f"phase: nnls_iter must be >= 0 and needs amp_prior: true, got {nnls_iter}")
        if mel_refine_iter < 0 or mel_nnls_iter < 0:
            raise ValueError(f"phase: mel_refine_iter and mel_nnls_iter must be >= 0, got {mel_refine_iter}, "
                             f"{mel_nnls_iter}")
        self.stft_hop = mel_cfg.hop_length // upsample
        self.stft_n_fft = int(n_fft or mel_cfg.n_fft // upsample)
        if self.stft_n_fft < self.stft_hop or self.stft_n_fft % 2:
            raise ValueError(f"phase: n_fft must be even and >= the internal hop {self.stft_hop}, got {self.stft_n_fft}")
        self.config = dict(dim=dim, intermediate_dim=intermediate_dim, num_layers=num_layers, upsample=upsample,
                           n_fft=self.stft_n_fft, branch_dim=branch_dim,
                           branch_intermediate_dim=branch_intermediate_dim, amp_layers=amp_layers,
                           phase_layers=phase_layers, amp_prior=bool(amp_prior), phase_head=phase_head,
                           max_log_magnitude=max_log_magnitude, upsampler=upsampler, max_deviation=max_deviation,
                           amp_residual=bool(amp_residual), nnls_iter=int(nnls_iter), refine_iter=int(refine_iter),
                           pghi_mode=pghi_mode, pghi_tol=float(pghi_tol))
        if mel_refine_iter:  # only where set: the files written before this option keep their config
            self.config.update(mel_refine_iter=int(mel_refine_iter), mel_nnls_iter=int(mel_nnls_iter))
        self.mel_refine_iter, self.mel_nnls_iter = int(mel_refine_iter), int(mel_nnls_iter)
        self._refine_fb = None  # (filterbank, window) at the mel's STFT, made at mel_refine's first call
        self.upsampler, self.max_deviation = upsampler, float(max_deviation)
        self.upsample, self.amp_prior, self.phase_head = upsample, bool(amp_prior), phase_head
        self.amp_residual, self.nnls_iter, self.refine_iter = bool(amp_residual), int(nnls_iter), int(refine_iter)
        self.pghi_mode, self.pghi_tol = pghi_mode, float(pghi_tol)
        self.max_log_magnitude = max_log_magnitude
        n_freqs = self.stft_n_fft // 2 + 1

        self.embed = nn.Conv1d(mel_cfg.n_mels, dim, 7, padding=3)
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        self.trunk = _blocks(dim, intermediate_dim, num_layers)
        self.norm_trunk = nn.LayerNorm(dim, eps=1e-6)
        if upsample == 1 or upsampler == "linear":
            self.up = nn.Conv1d(dim, branch_dim, 1)
        else:  # kernel 2u, stride u, padding u/2: exactly T·u frames out
            self.up = nn.ConvTranspose1d(dim, branch_dim, 2 * upsample, stride=upsample, padding=upsample // 2)

        if self.amp_prior:
            if self.nnls_iter:  # refine on the mel's own grid, then carry to the internal one
                fb = mel_filterbank(mel_cfg)
                grid, scale = mel_grid_weights(mel_cfg, self.stft_n_fft)
                self.register_buffer("mel_fb", torch.from_numpy(fb).float(), persistent=False)
                self.register_buffer("mel_pinv", torch.from_numpy(np.linalg.pinv(fb)).float(), persistent=False)
                self.register_buffer("mel_grid", None if grid is None else torch.from_numpy(grid).float(),
                                     persistent=False)
            else:
                pinv, scale = mel_pseudo_inverse(mel_cfg, self.stft_n_fft)
                self.register_buffer("mel_pinv", torch.from_numpy(pinv).float(), persistent=False)
            self.log_scale = math.log(scale)
        if self.amp_prior and self.amp_residual:
            self.amp_in = nn.Conv1d(n_freqs, branch_dim, 7, padding=3)
        if self.amp_residual:
            self.amp = _Stack(branch_dim, branch_intermediate_dim, amp_layers, n_freqs)
        if phase_head != "pghi":
            self.phase = _Stack(branch_dim, branch_intermediate_dim, phase_layers,
                                {"atan2": 2, "direct": 1, "integrate": 3}[phase_head] * n_freqs)
        if self.amp_prior and self.amp_residual:  # start at the prior: the residual is zero until trained
            nn.init.zeros_(self.amp.proj.weight)
            nn.init.zeros_(self.amp.proj.bias)
        self.register_buffer("stft_window", torch.hann_window(self.stft_n_fft), persistent=False)
        self.stft = StftGeometry(self.stft_n_fft, self.stft_hop, upsample)

    # -- pieces ---------------------------------------------------------------------------
    def log_magnitude_prior(self, mel: torch.Tensor) -> torch.Tensor:
        """FreeV's amplitude prior at the mel's frame rate.

        Args:
            mel (Tensor): (B, n_mels, T) log-mel (the MelConfig's log base, floor and power).

        Returns:
            Tensor: (B, n_fft // 2 + 1, T) natural-log magnitude at the internal n_fft.
        """
        cfg = self.mel_cfg
        linear = cfg.exp(mel.float())  # mel-weighted magnitude ** power
        spec = torch.matmul(self.mel_pinv, linear).clamp(min=cfg.floor)
        if self.nnls_iter:
            spec = nnls_refine(self.mel_fb, linear, spec, self.nnls_iter)
            if self.mel_grid is not None:
                spec = torch.matmul(self.mel_grid, spec)
            spec = spec.clamp(min=cfg.floor)
        return torch.log(spec) / cfg.power + self.log_scale

    def _features(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.norm_in(self.embed(mel).transpose(1, 2)).transpose(1, 2)
        for block in self.trunk:
            x = block(x)
        x = self.norm_trunk(x.transpose(1, 2)).transpose(1, 2)
        if self.upsampler == "linear":
            return self.up(_interpolate_frames(x, self.upsample))
        return self.up(x)

    def log_spectrum(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network proper: log-magnitude and phase at the internal resolution.

        Args:
            mel (Tensor): (B, n_mels, T).

        Returns:
            (log_magnitude, phase): each (B, n_fft // 2 + 1, T·upsample); phase in (-π, π] for
            ``atan2``, unbounded radians for ``direct``.
        """
        self.check_input(mel)
        h = self._features(mel)
        if self.amp_prior:
            prior = _interpolate_frames(self.log_magnitude_prior(mel), self.upsample)
            log_mag = prior + self.amp(h + self.amp_in(prior)) if self.amp_residual else prior
        else:
            log_mag = self.amp(h)
        if self.phase_head == "pghi":
            log_mag = log_mag.clamp(max=self.max_log_magnitude)
            return log_mag, self.pghi_phase(log_mag)
        p = self.phase(h)
        if self.phase_head == "atan2":
            re, im = p.chunk(2, dim=1)
            phase = torch.atan2(im, re)
        elif self.phase_head == "integrate":
            re, im, dev = p.float().chunk(3, dim=1)
            phase = integrate_phase(torch.atan2(im, re), self.max_deviation * torch.tanh(dev), self.stft_n_fft,
                                    self.stft_hop)
        else:
            phase = p
        return log_mag.clamp(max=self.max_log_magnitude), phase

    @torch.no_grad()
    def pghi_phase(self, log_mag: torch.Tensor) -> torch.Tensor:
        """``phase_head: pghi``: the phase phase-gradient heap integration reads off the predicted
        magnitude (:mod:`vocoder.pghi`; no gradient, computed on the CPU).

        Args:
            log_mag (Tensor): (B, F, T') natural-log magnitude at the internal STFT.

        Returns:
            Tensor: (B, F, T') radians, on ``log_mag``'s device.
        """
        mag = torch.exp(log_mag.detach().float())
        phase = torch.from_numpy(pghi(mag.cpu().numpy(), self.stft_n_fft, self.stft_hop, tol=self.pghi_tol,
                                           mode=self.pghi_mode))
        phase = phase.to(mag.device, torch.float32)
        if not self.refine_iter:
            return phase
        frames, length = mag.shape[-1], mag.shape[-1] * self.stft_hop
        if _use_fastgl(mag) and length > self.stft_n_fft // 2:
            # the same iterations through vocoder.fastgl (one STFT plan, fused update): 3-4x faster on a CPU;
            # its FFTs use torch's thread count, as torch's own would
            plan = STFTPlan(self.stft_n_fft, self.stft_hop, frames, self.stft_window.float().numpy(),
                            workers=torch.get_num_threads())
            m, p0 = mag.reshape(-1, *mag.shape[-2:]).numpy(), phase.reshape(-1, *mag.shape[-2:]).numpy()
            out = np.stack([fast_griffin_lim_np(a, b, plan, self.refine_iter) for a, b in zip(m, p0)])
            return torch.from_numpy(out).reshape(mag.shape)
        window = self.stft_window.float()

        def forward(y):
            return torch.stft(y, self.stft_n_fft, self.stft_hop, window=window, center=True,
                              return_complex=True)[..., :frames]

        def inverse(spec):
            return torch.istft(spec, self.stft_n_fft, self.stft_hop, window=window, center=True, length=length)

        return torch.angle(fast_griffin_lim(mag, forward, inverse, self.refine_iter, torch.polar(mag, phase)))

    def spectrum(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mel (B, n_mels, T) → (magnitude, phase), each (B, n_fft // 2 + 1, T·upsample)."""
        log_mag, phase = self.log_spectrum(mel)
        return torch.exp(log_mag), phase

    def istft(self, spec: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """Complex (B, F, T') → waveform (B, 1, T'·stft_hop), limited to [-1, 1] (:meth:`limit`)
        unless ``clamp`` is False.
        """
        y = torch.istft(spec, self.stft_n_fft, self.stft_hop, self.stft_n_fft, self.stft_window.to(spec.real.dtype),
                        center=True, length=spec.shape[-1] * self.stft_hop)
        return (self.limit(y) if clamp else y).unsqueeze(1)

    def onnx_unsupported(self) -> str | None:
        """PGHI reads the phase off the magnitude outside torch (numba): no ONNX form yet."""
        if self.phase_head == "pghi":
            return "phase_head pghi reads the phase off the magnitude outside torch (numba): no ONNX form yet; run it in Python"
        return None

    def forward_with_spectrum(self, mel: torch.Tensor):
        """Waveform and the spectrum it came from (what the phase-aware losses need).

        Args:
            mel (Tensor): (B, n_mels, T).

        Returns:
            (wave, log_amplitude, phase, spectrum): wave (B, 1, T·hop_length); log_amplitude and
            phase (B, F, T·upsample) real; spectrum (B, F, T·upsample) complex, F = n_fft // 2 + 1.
        """
        log_mag, phase = self.log_spectrum(mel)
        spec = torch.polar(torch.exp(log_mag.float()), phase.float())
        return self.istft(spec), log_mag, phase, spec

    @torch.no_grad()
    def mel_refine(self, wave: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """``mel_refine_iter``: the waveform re-synthesised at the mel's STFT with a magnitude that
        agrees with ``mel``.

        The network's magnitude at the internal STFT is smooth over each mel hop and adds low-level
        energy between harmonics that the mel does not have (docs/vocoder.md, music). Here the
        output's magnitude at the mel's own n_fft/hop (float32, centred as the mel is framed) starts
        Lee-Seung updates toward the input mel (:func:`nnls_refine`): each bin is scaled by its
        bands' ratio of wanted to present energy, so the structure inside a band stays and the
        bands' levels become the mel's. Fast Griffin-Lim then fits a phase to that magnitude,
        starting from the output's own.

        Args:
            wave (Tensor): (B, 1, T·hop_length), the internal iSTFT's output (unclamped).
            mel (Tensor): (B, n_mels, T), the input.

        Returns:
            Tensor: (B, 1, T·hop_length) on ``wave``'s device, limited to [-1, 1] (:meth:`limit`).
        """
        cfg, frames = self.mel_cfg, mel.shape[-1]
        if frames * cfg.hop_length <= cfg.n_fft // 2:  # too short to frame as the mel is framed: as it was
            return self.limit(wave)
        if self._refine_fb is None:  # once per model: librosa's filterbank and window
            self._refine_fb = (torch.from_numpy(mel_filterbank(cfg, dtype=np.float32)), stft_window(cfg))
        fb, window = self._refine_fb
        plan = STFTPlan(cfg.n_fft, cfg.hop_length, frames, window, workers=torch.get_num_threads())
        target = cfg.exp(mel.detach().float().cpu())
        floor = cfg.floor * (1 + 1e-3)  # the linear mel of a band clamped to the log floor
        out = []
        for y, tgt in zip(wave.detach().float().cpu().numpy()[:, 0], target):
            spec = plan.stft(np.ascontiguousarray(y)).T  # (F, T)
            mag = torch.from_numpy(np.abs(spec)).clamp(min=cfg.floor) ** cfg.power
            tgt = floor_aware_target(tgt, fb @ mag, floor)
            mag = nnls_refine(fb, tgt[None], mag[None], self.mel_nnls_iter)[0] ** (1.0 / cfg.power)
            mag = mag.numpy()
            phase = fast_griffin_lim_np(mag, np.angle(spec), plan, self.mel_refine_iter)
            out.append(plan.istft(np.ascontiguousarray((mag * np.exp(1j * phase)).T, np.complex64)).copy())
        y = torch.from_numpy(np.stack(out)).to(wave.device, wave.dtype)
        return self.limit(y).unsqueeze(1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel (B, n_mels, T) → waveform (B, 1, T * hop_length)."""
        if not self.mel_refine_iter:
            return self.forward_with_spectrum(mel)[0]
        log_mag, phase = self.log_spectrum(mel)
        # unclamped: a peak over full scale is the refinement's to rebuild, not a clipped edge to analyse
        return self.mel_refine(self.istft(torch.polar(torch.exp(log_mag.float()), phase.float()), clamp=False), mel)
