"""Stage one: the SpecGAN generator and critic (Donahue et al. 2018), for (n_mels x frames) inputs.

Generator: z (+ a label embedding) → dense to (C0, h0, w0) → stride-2 upsampling stages of 5x5
kernels, halving channels each time → 1 channel, tanh (normalised mels live in [-1, 1]).
Critic: the mirror — 5x5 stride-2 convs doubling channels, LeakyReLU 0.2, **no normalisation
layers** (the gradient penalty is per-sample, which batch norm would break) → a linear score,
plus a projection term <embed(label), features> when conditioned (Miyato & Koyama 2018).

SpecGAN's published size: 128x128, d=64, 4x4x16d projection. ``64x64`` with d=16..32 is the
CPU size used for 1 s digits (64 mels x 64 frames).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vocoder.registry import build, check_spec, registrar

__all__ = ["CRITICS", "GENERATORS", "Critic", "FiLM", "Generator", "build_critic", "build_generator", "check_critic_spec",
           "check_generator_spec", "grid_for", "stages_for"]

# Stage-one models by name: a recipe's ``specgan.generator`` / ``specgan.critic`` section is the
# constructor's keyword arguments verbatim; n_mels, frames and n_classes come from the data.
GENERATORS: dict[str, type] = {}
CRITICS: dict[str, type] = {}
_DERIVED = ("n_classes",)


def stages_for(n_mels: int, frames: int) -> int:
    """Number of stride-2 stages so that the smaller side starts at 4 to 7 (SpecGAN: 128 → 5 stages)."""
    for name, v in (("n_mels", n_mels), ("frames", frames)):
        if int(v) != v or v < 8:
            raise ValueError(f"{name} must be an integer >= 8 (the smaller side starts at 4 after the stages), got {v}")
    return int(math.log2(min(n_mels, frames))) - 2


def grid_for(n_mels: int, frames: int) -> tuple[int, int, int]:
    """(stages, H, W): the convolutional grid for (n_mels x frames) — each side rounded up to a
    multiple of 2**stages. Any size works: the generator draws the grid and crops it to
    (n_mels, frames), the critic pads its input to the grid (80 mels x 64 frames needs neither:
    80 = 5 x 16; 100 mels draw 112 and keep 100)."""
    n = stages_for(n_mels, frames)
    step = 1 << n
    return n, -(-n_mels // step) * step, -(-frames // step) * step


COMB_GRID = 1025      # frequency points of the harmonic comb (0 … sr/2: n_fft 2048's bins)
COMB_MAX_HZ = 4000.0  # bands reaching above this are wide (≥ 3 harmonics of 400 Hz): comb ≈ flat there


def comb_geometry(mel) -> dict[str, torch.Tensor]:
    """What drawing a harmonic comb through a mel filterbank needs, from a :class:`vocoder.mel.MelConfig`:
    ``fb`` the filterbank on a :data:`COMB_GRID`-point frequency grid, rows normalised to sum 1
    (n_mels, G); ``hz`` the grid (G,); ``sigma`` the analysis window's main lobe as a Gaussian σ in
    Hz (a Hann window's magnitude is 0.5 one bin off its peak: σ = 0.85 bins); ``bands`` the low
    bands that lie wholly below :data:`COMB_MAX_HZ` (the bands are sorted by frequency; wider ones
    average the comb to flat) and ``points`` the grid points those bands use."""
    import dataclasses

    from vocoder.mel import mel_filterbank

    n_fft = 2 * (COMB_GRID - 1)
    fb = torch.as_tensor(mel_filterbank(dataclasses.replace(mel, n_fft=n_fft, win_length=n_fft)), dtype=torch.float32)
    fb = fb / fb.sum(1, keepdim=True).clamp_min(1e-12)
    hz = torch.linspace(0, mel.sample_rate / 2, COMB_GRID)
    cut = int((hz <= COMB_MAX_HZ).sum())
    bands = int((fb[:, cut:].sum(1) == 0).cumprod(0).sum())  # up to the first band reaching past the cut
    points = int((fb[:bands] > 0).any(0).nonzero().max()) + 1 if bands else 0
    return {"fb": fb, "hz": hz, "sigma": torch.tensor(0.85 * mel.sample_rate / (mel.win_length or mel.n_fft)),
            "bands": torch.tensor(bands), "points": torch.tensor(points)}


def comb_contrast(fb: torch.Tensor, hz: torch.Tensor, sigma: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
    """The harmonic comb of F0 ``f0`` (Hz, any shape S) averaged by each filter of ``fb`` (nb, G)
    on the grid ``hz`` (G,), relative to a flat spectrum of the same mean: (*S, nb); 1 where the
    comb is unresolved, above 1 on a harmonic, below between. Peaks at k·F0 (k ≥ 1) shaped like
    the window's main lobe (Gaussian σ Hz). Differentiable in F0 almost everywhere (the nearest
    harmonic is chosen by rounding)."""
    f = f0[..., None]
    r = hz / f
    dist = f * (r - torch.round(r))                      # Hz to the nearest multiple of F0
    peaks = torch.exp(-0.5 * (dist / sigma) ** 2) * torch.sigmoid(8.0 * (r - 0.5))  # no peak at k = 0
    flat = sigma * math.sqrt(2 * math.pi) / f0[..., None]  # the comb's mean over a wide band
    return torch.einsum("mg,...g->...m", fb, peaks) / flat


def harmonic_templates(mel, f0s) -> tuple[torch.Tensor, int]:
    """Full-depth harmonic combs through the mel filterbank: for each F0 in ``f0s`` (Hz) the log
    contrast ``log(comb / flat + floor)`` of the low bands (K, bands), and ``bands`` (the low bands
    that can hold a comb, :func:`comb_geometry`)."""
    g = comb_geometry(mel)
    nb, ng = int(g["bands"]), int(g["points"])
    f0 = torch.as_tensor(f0s, dtype=torch.float32)
    band = comb_contrast(g["fb"][:nb, :ng], g["hz"][:ng], g["sigma"], f0)
    return torch.log(band + Generator.COMB_FLOOR), nb


COMB_F0_GRID = (60.0, 400.0, 120)  # the comb read-outs' candidate F0s: lowest, highest (Hz), count (log-spaced)


def comb_candidates(mel, f0_range=COMB_F0_GRID[:2], count: int = COMB_F0_GRID[2],
                    who: str = "comb") -> tuple[np.ndarray, np.ndarray, int]:
    """The comb read-outs' shared setup: ``count`` log-spaced candidate F0s over ``f0_range`` (Hz),
    their :func:`harmonic_templates` (count, comb bands) as numpy, and the ripple bands
    (:func:`specgan.metrics.ripple_bands`) the read-outs use; a one-line error naming ``who`` when
    the mel has fewer bands that can hold a comb than the ripple reads."""
    from specgan.metrics import ripple_bands

    f0s = np.geomspace(float(f0_range[0]), float(f0_range[1]), int(count))
    templates, nb = harmonic_templates(mel, f0s)
    bands = ripple_bands(mel)
    if nb < bands:
        raise ValueError(f"{who}: the mel has {nb} bands that can hold a comb, the ripple uses {bands}")
    return f0s, templates.numpy(), bands


def comb_f0_tracks(logmels, mel, f0_range=COMB_F0_GRID[:2], count: int = COMB_F0_GRID[2]) -> np.ndarray:
    """Natural-log mels (N, n_mels, T) → each frame's F0 (N, T), Hz, read as the best-fitting of
    ``count`` log-spaced harmonic combs over ``f0_range`` (:func:`specgan.metrics.comb_track` on
    the bands :func:`specgan.metrics.ripple_bands` reads), NaN where the fit is below
    :data:`specgan.metrics.COMB_FIT_HARMONIC` (not a harmonic frame) or the frame is not active."""
    from specgan.metrics import COMB_FIT_HARMONIC, comb_track

    f0s, templates, bands = comb_candidates(mel, f0_range, count, "comb_f0_tracks")
    best, f0 = comb_track(np.asarray(logmels), templates, f0s, bands)
    return np.where(np.nan_to_num(best, nan=-1.0) >= COMB_FIT_HARMONIC, f0, np.nan)


def despike_f0(f0, semitones: float, window: int = 9) -> tuple[torch.Tensor, int]:
    """F0 tracks (N, frames), Hz, NaN where a frame is not harmonic → the same with each harmonic
    frame set to NaN whose F0 is more than ``semitones`` from the median of its clip's harmonic
    frames around it (``window`` of them, centred; fewer at the ends), and how many were dropped.
    An octave error of a comb read-out is 12 semitones off; a voice's glide moves the median with
    it. Clips with fewer than 3 harmonic frames are left as they are (no majority to trust)."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"despike_f0: window must be odd and >= 1, got {window}")
    out = torch.as_tensor(f0, dtype=torch.float64).clone()
    h, dropped = window // 2, 0
    for track in out:
        idx = torch.nonzero(torch.isfinite(track) & (track > 0))[:, 0]
        if len(idx) < 3:
            continue
        st = 12 * torch.log2(track[idx])
        med = torch.stack([st[max(0, i - h) : i + h + 1].median() for i in range(len(st))])
        bad = (st - med).abs() > semitones
        track[idx[bad]] = float("nan")
        dropped += int(bad.sum())
    return out, dropped


@registrar(GENERATORS, "stage-one generator")("specgan")
class Generator(nn.Module):
    """Noise (+ label) → normalised log-mel.

    Args:
        n_mels, frames: Output size, any integers >= 8 (the smaller side sets the number of stages; a
            side that is not a multiple of 2**stages is drawn larger and cropped, :func:`grid_for`).
        z_dim: Latent size.
        d: Width: the last hidden stage has d channels, each earlier stage twice as many.
        kernel_size: Convolution kernel (SpecGAN: 5).
        upsample: ``"transposed"`` (SpecGAN), ``"nearest"`` or ``"bilinear"`` (resize x2 + conv: no
            checkerboard artefacts; bilinear also smooths the resize's blocks).
        n_classes: Number of labels for conditioning (0 = unconditional).
        embed_dim: Label embedding size, concatenated to z.
        conditioning: ``"input"`` (SpecGAN: the embedding joins z, so the label reaches later
            stages only through the first) or ``"film"`` (also FiLM, Perez et al. 2018: every
            stage's features are scaled and shifted per channel, ``h·(1 + γ(e)) + β(e)``, by
            linear maps of the label embedding e, before each ReLU — the label modulates every
            upsampling stage, as BigGAN's conditional normalisation does, without the
            normalisation).
        refine_blocks: Residual blocks (ReLU, 3×3 conv, ReLU, 3×3 conv, + input) at the output
            resolution with ``d`` channels before a final 3×3 conv to one channel (0: SpecGAN, the
            last upsampling stage writes the mel directly). In SpecGAN the finest detail the
            generator can draw comes from one convolution of features at half the resolution,
            the Nyquist of which is a line every 2 bins: harmonics 2–5 mel bins apart sit at that
            limit. With FiLM, each block's input is modulated too.
        class_prior: ``"none"`` (SpecGAN), ``"mean"`` or ``"profile"``: the generator draws a
            residual on top of its label's mean training mel — the whole mean image (``"mean"``:
            for a note, its harmonic lines at the asked pitch and the programs' average attack
            and decay) or its mean over time (``"profile"``: the spectral envelope and harmonic
            lines only) — as ``tanh(x + atanh(prior[label]))``. The prior is a buffer filled once
            from the training data (:meth:`set_class_prior`) and saved with the weights; at step
            0 the output is already the label's average, and the critic asks for the detail and
            the variety. Needs labels.
        harmonic: A source-filter head (off: SpecGAN). From the features before the last
            upsampling stage (pooled over frequency) a 1-D conv gives each frame an F0 in
            ``f0_range`` (Hz, log-uniform through a sigmoid) and a voicing v in [0, 1]; the head
            draws the harmonic comb of that F0 — peaks at k·F0 (k ≥ 1) shaped like the analysis
            window's main lobe, averaged by each mel band's filter — and adds
            ``gain · log(v · comb / flat + 1 − v + 0.05)`` (in normalised units, per band) to the
            pre-tanh output. Wide bands, where many harmonics average out, get ≈ 0; the narrow low
            bands get lines at the harmonics, which the convolutions alone cannot draw 2–5 bins
            apart. The geometry (filterbank on a fine frequency grid, window width, normalisation
            scale) is a set of buffers filled once from the mel config and the statistics
            (:meth:`set_harmonic_geometry`) and saved with the weights. Differentiable in F0 almost
            everywhere (the nearest harmonic is chosen by rounding).
        f0_range: (lowest, highest) F0 in Hz of the harmonic head.
        f0_bins: 0 (default): the head regresses one F0 per frame through a sigmoid, and the
            gradient reaches it only through the comb's shape, which has a local optimum at every
            octave and fifth (trained here, the F0 stayed near its initial 155 Hz: 160–225 Hz
            where the real voices' lines fit 80–290 Hz). k ≥ 2: the head classifies the F0 into k
            log-spaced bins over ``f0_range`` (CREPE's framing of pitch) and draws the
            softmax-weighted mixture of the bins' combs — linear in the weights, so every bin's
            comb gets its own gradient and the critic sharpens the mixture to the lines it sees.
        f0_hard: With ``f0_bins``: draw only the most likely bin's comb (a full-depth comb at one
            F0 per frame) and pass the gradient to the softmax as if the mixture had been drawn
            (straight-through, Bengio et al. 2013). The soft mixture let the head stay undecided —
            trained here, the median largest bin weight was 0.03 against a uniform 0.016, so it
            drew nearly flat combs; a hard head must commit to an F0 in every frame, and the
            gradient still tells each bin whether its comb would lower the loss.
        f0_source: ``"head"`` (default): the head chooses the F0. ``"data"``: the F0 contour is
            chosen, per generated clip by its latent, from a bank of ``f0_contours`` contours read off the
            training mels of the same label (:meth:`set_f0_contours`: each frame's best-fitting
            comb, :func:`specgan.metrics.comb_track`, interpolated across the frames that are not
            harmonic), and the head only decides where and how strongly to voice it — prosody from
            the data, the source-filter split of a parametric synthesiser. ``forward(..., f0=)``
            imposes a contour instead (pitch control). Not with ``f0_bins``.
        f0_contours: The bank's size (per label: ``f0_contours // n_classes``).
        f0_input: With ``f0_source: data``: the network sees the contour it is given — its log-F0,
            scaled to [-1, 1] over ``f0_range`` and averaged to each stage's frame rate, is added
            to every stage's features (where FiLM acts) through a per-channel weight that starts
            at zero — so formants and voicing can be placed to fit the contour.
        f0_despike: With ``f0_source: data``, semitones (0: off): before the bank is filled, a
            harmonic frame whose F0 is further than this from the median of its clip's harmonic
            frames around it (:data:`F0_DESPIKE_WINDOW` of them) is dropped as an octave or
            subharmonic error of the comb read-out, and the contour is interpolated across it.
    """

    F0_DESPIKE_WINDOW = 9  # harmonic frames in f0_despike's running median (the frame and 4 either side)

    COMB_FLOOR = 0.05    # the comb's valley floor (linear, relative to a flat band): ~26 dB of contrast

    def __init__(self, n_mels: int = 64, frames: int = 64, z_dim: int = 100, d: int = 32, kernel_size: int = 5,
                 upsample: str = "transposed", n_classes: int = 0, embed_dim: int = 32, conditioning: str = "input",
                 refine_blocks: int = 0, class_prior: str = "none", harmonic: bool = False,
                 f0_range: tuple[float, float] | list[float] = (60.0, 400.0), f0_bins: int = 0,
                 f0_hard: bool = False, f0_source: str = "head", f0_contours: int = 512, f0_input: bool = False,
                 f0_despike: float = 0.0):
        super().__init__()
        if not isinstance(harmonic, bool):
            raise ValueError(f"harmonic must be true or false, got {harmonic!r}")
        if len(f0_range) != 2 or not 0 < f0_range[0] < f0_range[1]:
            raise ValueError(f"f0_range must be [low, high] Hz with 0 < low < high, got {f0_range!r}")
        if isinstance(f0_bins, bool) or int(f0_bins) != f0_bins or f0_bins < 0 or f0_bins == 1:
            raise ValueError(f"f0_bins must be 0 (regress the F0) or an integer >= 2, got {f0_bins!r}")
        if f0_bins and not harmonic:
            raise ValueError("f0_bins applies to the harmonic head: set harmonic: true")
        if not isinstance(f0_hard, bool):
            raise ValueError(f"f0_hard must be true or false, got {f0_hard!r}")
        if f0_hard and not f0_bins:
            raise ValueError("f0_hard picks one of the F0 bins: set f0_bins (and harmonic: true)")
        if f0_source not in ("head", "data"):
            raise ValueError(f"f0_source must be 'head' or 'data', got {f0_source!r}")
        if f0_source == "data" and (not harmonic or f0_bins):
            raise ValueError("f0_source: data gives the harmonic head its F0: set harmonic: true and f0_bins: 0")
        if not isinstance(f0_input, bool):
            raise ValueError(f"f0_input must be true or false, got {f0_input!r}")
        if f0_input and f0_source != "data":
            raise ValueError("f0_input feeds the network the contour it is given: set f0_source: data")
        if isinstance(f0_despike, bool) or not isinstance(f0_despike, (int, float)) or not f0_despike >= 0:
            raise ValueError(f"f0_despike must be a number of semitones >= 0 (0: off), got {f0_despike!r}")
        if f0_despike and f0_source != "data":
            raise ValueError("f0_despike cleans the data's F0 contours: set f0_source: data")
        if isinstance(f0_contours, bool) or int(f0_contours) != f0_contours or f0_contours < max(n_classes, 1):
            raise ValueError(f"f0_contours must be an integer >= the number of labels ({max(n_classes, 1)}), "
                             f"got {f0_contours!r}")
        if class_prior not in ("none", "mean", "profile"):
            raise ValueError(f"class_prior must be 'none', 'mean' or 'profile', got {class_prior!r}")
        if class_prior != "none" and not n_classes:
            raise ValueError("class_prior needs labels (a conditional model)")
        if upsample not in ("transposed", "nearest", "bilinear"):
            raise ValueError(f"upsample must be 'transposed', 'nearest' or 'bilinear', got {upsample!r}")
        if conditioning not in ("input", "film"):
            raise ValueError(f"conditioning must be 'input' or 'film', got {conditioning!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if int(refine_blocks) != refine_blocks or refine_blocks < 0:
            raise ValueError(f"refine_blocks must be an integer >= 0, got {refine_blocks!r}")
        self.n_mels, self.frames, self.z_dim, self.n_classes = n_mels, frames, z_dim, n_classes
        n, self.grid_h, self.grid_w = grid_for(n_mels, frames)
        self.h0, self.w0 = self.grid_h >> n, self.grid_w >> n
        self.c0 = d * 2 ** (n - 1)
        self.embed = nn.Embedding(n_classes, embed_dim) if n_classes else None
        self.fc = nn.Linear(z_dim + (embed_dim if n_classes else 0), self.c0 * self.h0 * self.w0)
        pad = kernel_size // 2
        layers: list[nn.Module] = []
        c = self.c0
        refine_blocks = int(refine_blocks)
        for i in range(n):
            last = i == n - 1
            c_out = (d if refine_blocks else 1) if last else c // 2
            if upsample == "transposed":
                layers.append(nn.ConvTranspose2d(c, c_out, kernel_size, 2, padding=pad, output_padding=1))
            else:
                resize = nn.Upsample(scale_factor=2, mode=upsample, **({"align_corners": False}
                                                                        if upsample == "bilinear" else {}))
                layers += [resize, nn.Conv2d(c, c_out, kernel_size, padding=pad)]
            if not last:
                layers.append(nn.ReLU())
            c = c_out
        self.net = nn.Sequential(*layers)
        # the index in self.net where the last upsampling stage starts (the harmonic head's input)
        self._last_stage = len(layers) - (1 if upsample == "transposed" else 2)
        self._last_stage_width = self.c0 >> (n - 1)
        # refine_blocks: full-resolution residual blocks and the output conv (absent at 0, so the
        # shipped models' weights keep their names)
        self.refine = nn.ModuleList(_Residual(d) for _ in range(refine_blocks)) if refine_blocks else None
        self.out = nn.Conv2d(d, 1, 3, padding=1) if refine_blocks else None
        # FiLM: one (γ, β) pair per hidden stage (the dense stage and each upsampling stage but the
        # last), in self.net's order of ReLUs, then one per refine block. "input" models have none.
        self.film = None
        widths = [self.c0] + [self.c0 >> (i + 1) for i in range(n - 1)] + [d] * refine_blocks
        if conditioning == "film" and n_classes:
            self.film = nn.ModuleList(FiLM(embed_dim, w) for w in widths)
        # f0_input: the contour's log-F0 added at the same places (absent when off)
        self.f0_in = nn.ModuleList(F0Input(w) for w in widths) if f0_input else None
        # class_prior: pre-tanh (atanh) mean of each label's training mels; absent at "none" so the
        # shipped models keep their tensors
        self.class_prior = class_prior
        if class_prior != "none":
            self.register_buffer("prior", torch.zeros(n_classes, 1, n_mels, 1 if class_prior == "profile" else frames))
        # harmonic: absent when off, so earlier models keep their tensors
        self.harmonic = harmonic
        if harmonic:
            self.f0_range = (float(f0_range[0]), float(f0_range[1]))
            self.f0_bins = int(f0_bins)
            self.f0_hard = f0_hard
            self.f0_source = f0_source
            # one F0 logit (regression) or one per F0 bin (classification), then the voicing logit
            self.source = nn.Conv1d(self._last_stage_width, 1 + (self.f0_bins or 1), 3, padding=1)
            self.comb_gain = nn.Parameter(torch.ones(()))
            self.register_buffer("comb_fb", torch.zeros(n_mels, COMB_GRID))   # rows sum to 1
            self.register_buffer("comb_hz", torch.zeros(COMB_GRID))
            self.register_buffer("comb_sigma", torch.zeros(()))                    # main lobe, Hz
            self.register_buffer("comb_scale", torch.zeros(n_mels))                # log units → normalised
            self.register_buffer("comb_bands", torch.zeros((), dtype=torch.long))   # bands with a drawn comb
            self.register_buffer("comb_points", torch.zeros((), dtype=torch.long))  # grid points they use
            if self.f0_bins:  # each bin's comb through the filterbank, comb/flat (f0_bins, n_mels)
                self.register_buffer("comb_bank", torch.zeros(self.f0_bins, n_mels))
            if f0_source == "data":  # the contours, Hz, label by label (each label's rows contiguous)
                self.f0_per_label = int(f0_contours) // max(n_classes, 1)
                self.f0_despike = float(f0_despike)
                self.register_buffer("f0_bank", torch.zeros(self.f0_per_label * max(n_classes, 1), frames))

    @torch.no_grad()
    def set_harmonic_geometry(self, mel, stats) -> None:
        """Fill the harmonic head's buffers from the mel config (a :class:`vocoder.mel.MelConfig`)
        and the normalisation (:class:`vocoder.mel.MelStats`): :func:`comb_geometry` (the filterbank
        on a fine frequency grid, the window's main lobe, the low bands that get a comb), 1 /
        (per-band std · clip), and with ``f0_bins`` the comb of every bin's F0. Only the low bands
        that lie wholly below :data:`COMB_MAX_HZ` get a drawn comb; the rest are wide, where the
        comb averages to flat."""
        if not self.harmonic:
            raise ValueError("this generator has no harmonic head (harmonic: false)")
        if mel.n_mels != self.n_mels:
            raise ValueError(f"set_harmonic_geometry: the mel has {mel.n_mels} bands, the generator {self.n_mels}")
        g = comb_geometry(mel)
        self.comb_fb.copy_(g["fb"])
        self.comb_hz.copy_(g["hz"])
        self.comb_sigma.copy_(g["sigma"])
        std = torch.as_tensor(stats.std, dtype=torch.float32).reshape(-1)
        self.comb_scale.copy_(1.0 / (std * (stats.clip_sigma or 1.0)))
        self.comb_bands.copy_(g["bands"])
        self.comb_points.copy_(g["points"])
        if self.f0_bins:
            nb, ng = int(g["bands"]), int(g["points"])
            self.comb_bank.fill_(1.0)
            self.comb_bank[:, :nb] = comb_contrast(g["fb"][:nb, :ng], g["hz"][:ng], g["sigma"], self.bin_f0())

    def bin_f0(self) -> torch.Tensor:
        """The F0 of each of the ``f0_bins`` bins, Hz: log-spaced over ``f0_range``, ends included."""
        lo, hi = self.f0_range
        return torch.logspace(math.log10(lo), math.log10(hi), self.f0_bins)

    def source_params(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features before the last stage (B, C, n_mels/2, frames/2) → per-frame voicing (B, frames)
        and the F0: in Hz (B, frames) for regression, or with ``f0_bins`` the softmax over the
        bins (B, frames, f0_bins)."""
        a = self.source(feat.mean(2))                                           # (B, K + 1, frames/2)
        a = F.interpolate(a, size=self.frames, mode="linear", align_corners=False).float()
        v = torch.sigmoid(a[:, -1])
        if self.f0_bins:
            return self.bin_weights(a[:, :-1].transpose(1, 2)), v
        lo, hi = self.f0_range
        return lo * (hi / lo) ** torch.sigmoid(a[:, 0]), v

    @torch.no_grad()
    def set_f0_contours(self, f0: torch.Tensor, labels: torch.Tensor | None = None, min_frames: int = 4) -> dict:
        """Fill the F0 bank (``f0_source: data``) from per-frame F0 tracks of training clips
        (N, frames), Hz, NaN where a frame is not harmonic, and their labels (N,). A clip with at
        least ``min_frames`` harmonic frames gives a contour: log-F0 interpolated across its other
        frames (held at the ends) and clamped to ``f0_range``. Each label's rows take its contours
        evenly spaced (repeating when it has fewer); a label without any takes every label's.
        Returns {"clips": N, "contours": clips that gave one}."""
        if getattr(self, "f0_source", "head") != "data":
            raise ValueError("this generator's F0 is not drawn from data (f0_source: head)")
        f0 = torch.as_tensor(f0, dtype=torch.float64).cpu()
        n_groups = max(self.n_classes, 1)
        labels = torch.zeros(len(f0), dtype=torch.long) if labels is None else torch.as_tensor(labels).cpu().long()
        if f0.ndim != 2 or f0.shape[1] != self.frames or len(labels) != len(f0):
            raise ValueError(f"set_f0_contours: expected F0 tracks (N, {self.frames}) and N labels, "
                             f"got {tuple(f0.shape)} and {tuple(labels.shape)}")
        lo, hi = self.f0_range
        t = torch.arange(self.frames, dtype=torch.float64)
        despiked = 0
        if getattr(self, "f0_despike", 0.0) > 0:
            f0, despiked = despike_f0(f0, self.f0_despike, self.F0_DESPIKE_WINDOW)
        contours, owner = [], []
        for track, y in zip(f0, labels, strict=True):
            ok = torch.isfinite(track) & (track > 0)
            if int(ok.sum()) < min_frames:
                continue
            logf = np.interp(t.numpy(), t[ok].numpy(), torch.log(track[ok]).numpy())
            contours.append(torch.from_numpy(logf).exp().clamp(lo, hi))
            owner.append(int(y))
        if not contours:
            raise ValueError(f"set_f0_contours: no clip has {min_frames} harmonic frames to read an F0 contour from")
        bank = torch.stack(contours).float()
        owner_t = torch.tensor(owner)
        rows = []
        for c in range(n_groups):
            mine = bank[owner_t == c] if self.n_classes else bank
            if not len(mine):
                mine = bank
            pick = torch.linspace(0, len(mine) - 1, self.f0_per_label).round().long()
            rows.append(mine[pick])
        self.f0_bank.copy_(torch.cat(rows))
        return {"clips": len(f0), "contours": len(contours), "despiked": despiked}

    def draw_f0(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """One F0 contour per clip (B, frames), Hz: the bank row of its label chosen by its first
        latent, ``floor(Φ(z[:, 0]) · rows per label)`` (Φ the normal CDF, so the rows are equally
        likely): a function of the latent, so a seed redraws the same clip whatever the batch, and
        no random generator is consumed."""
        if not float(self.f0_bank[0, 0]) > 0:
            raise RuntimeError("the F0 bank is empty: call set_f0_contours (the trainer does)")
        u = torch.special.ndtr(z[:, 0].float())
        row = (u * self.f0_per_label).long().clamp(0, self.f0_per_label - 1)
        if labels is not None and self.n_classes:
            row = row + labels.to(row.device) * self.f0_per_label
        return self.f0_bank[row]

    def f0_feature(self, f0: torch.Tensor) -> torch.Tensor:
        """F0 contours (B, frames), Hz → log-F0 scaled to [-1, 1] over ``f0_range`` (B, 1, frames)."""
        lo, hi = self.f0_range
        c = torch.log(f0.float().clamp(lo, hi) / math.sqrt(lo * hi)) / (0.5 * math.log(hi / lo))
        return c[:, None, :]

    def bin_weights(self, logits: torch.Tensor) -> torch.Tensor:
        """F0-bin logits (B, T, f0_bins) → the weights of the bins' combs: the softmax, or with
        ``f0_hard`` the one-hot of its largest weight carrying the softmax's gradient
        (straight-through)."""
        w = torch.softmax(logits, -1)
        if self.f0_hard:
            w = F.one_hot(w.argmax(-1), self.f0_bins).to(w.dtype) + w - w.detach()
        return w

    def harmonic_comb(self, f0: torch.Tensor, voicing: torch.Tensor) -> torch.Tensor:
        """Per-frame F0 and voicing (B, T) → the comb's log contrast per mel band,
        ``log(v · comb/flat + 1 − v + floor)`` (B, n_mels, T), in log-magnitude units. The F0 is in
        Hz, or with ``f0_bins`` a distribution over the bins (B, T, f0_bins), whose combs are mixed
        with those weights (linear in the weights: no local optimum between octaves for the
        gradient to fall into, as there is for an F0 regressed through the comb)."""
        if not float(self.comb_sigma) > 0:
            raise RuntimeError("the harmonic head's geometry is unset: call set_harmonic_geometry (the trainer does)")
        if self.f0_bins:
            if f0.shape[-1] != self.f0_bins:
                raise ValueError(f"harmonic_comb: expected F0 weights over {self.f0_bins} bins, got shape {tuple(f0.shape)}")
            band = torch.einsum("btk,km->bmt", f0, self.comb_bank)
        else:
            nb, ng = int(self.comb_bands), int(self.comb_points)
            low = comb_contrast(self.comb_fb[:nb, :ng], self.comb_hz[:ng], self.comb_sigma, f0).transpose(1, 2)
            band = torch.cat([low, low.new_ones(low.shape[0], self.n_mels - nb, low.shape[2])], 1)
        v = voicing[:, None, :]
        return torch.log(v * band + (1 - v) + self.COMB_FLOOR)

    @torch.no_grad()
    def set_class_prior(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fill the prior from normalised training mels x (N, 1, n_mels, frames) and label indices
        y (N,): per label the mean (over clips, and over time for ``"profile"``), clamped inside
        tanh's range and mapped through atanh. Labels without clips keep 0 (tanh(0): the mid-level)."""
        if self.class_prior == "none":
            raise ValueError("this generator has no class prior (class_prior: none)")
        if x.shape[1:3] != (1, self.n_mels) or x.shape[3] != self.frames or len(x) != len(y):
            raise ValueError(f"set_class_prior: expected mels (N, 1, {self.n_mels}, {self.frames}) and N labels, "
                             f"got {tuple(x.shape)} and {tuple(y.shape)}")
        prior = torch.zeros_like(self.prior)
        for c in range(self.n_classes):
            sel = x[y == c].float()
            if len(sel):
                m = sel.mean(0)
                if self.class_prior == "profile":
                    m = m.mean(-1, keepdim=True)
                prior[c] = torch.atanh(m.clamp(-0.999, 0.999))
        self.prior.copy_(prior)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, f0: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, z_dim), labels (B,) long → mels (B, 1, n_mels, frames) in [-1, 1]. ``f0`` (B,
        frames), Hz: the harmonic head's F0 contour, imposed (``f0_source: data`` draws one from
        its bank when not given)."""
        if f0 is not None and not (self.harmonic and not self.f0_bins):
            raise ValueError("forward(f0=...) needs a harmonic head that takes an F0 in Hz (harmonic: true, f0_bins: 0)")
        e = None
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is conditional: pass labels")
            e = self.embed(labels)
            z = torch.cat([z, e], dim=1)
        x = self.fc(z).view(-1, self.c0, self.h0, self.w0)
        feat = None
        if self.harmonic and f0 is None and self.f0_source == "data":
            f0 = self.draw_f0(z, labels)  # z[:, 0] is still the first latent (the label is appended)
        if f0 is not None and tuple(f0.shape) != (len(z), self.frames):
            raise ValueError(f"forward: f0 must be (batch, frames) {(len(z), self.frames)}, got {tuple(f0.shape)}")
        if self.film is None and self.f0_in is None:
            x = F.relu(x)
            if self.harmonic:
                feat = x = self.net[: self._last_stage](x)
                x = self.net[self._last_stage :](x)
            else:
                x = self.net(x)
        else:
            contour = None if self.f0_in is None else self.f0_feature(f0)
            k = 0

            def modulate(h):  # FiLM and/or the contour, at each hidden stage before its ReLU
                nonlocal k
                if self.film is not None:
                    h = self.film[k](h, e)
                if contour is not None:
                    h = self.f0_in[k](h, contour)
                k += 1
                return h

            x = F.relu(modulate(x))
            for i, layer in enumerate(self.net):
                if isinstance(layer, nn.ReLU):
                    x = modulate(x)
                if i == self._last_stage:
                    feat = x
                x = layer(x)
        if self.refine is not None:
            for block in self.refine:
                x = block(x if self.film is None and self.f0_in is None else modulate(x))
            x = self.out(F.relu(x))
        x = x[:, :, : self.n_mels, : self.frames]  # the grid's extra rows/columns (none at powers of two)
        if self.class_prior != "none":
            x = x + self.prior[labels].to(x.dtype)
        if self.harmonic:
            f0_head, voicing = self.source_params(feat)
            if f0 is not None:
                f0_head = f0.to(f0_head)
            comb = self.harmonic_comb(f0_head, voicing)
            x = x + (self.comb_gain * self.comb_scale[:, None] * comb)[:, None].to(x.dtype)
        return torch.tanh(x)


class _Residual(nn.Module):
    """x + conv(ReLU(conv(ReLU(x)))), 3×3, same width (the generator's full-resolution blocks)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FiLM(nn.Module):
    """Feature-wise linear modulation: h (B, C, H, W), e (B, E) → h·(1 + γ(e)) + β(e), γ, β (B, C).

    Default (non-zero) initialisation, as BigGAN's class-conditional gains: the label already
    steers every stage at step 0.
    """

    def __init__(self, embed_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(embed_dim, 2 * channels)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(e).to(h.dtype)[:, :, None, None].chunk(2, dim=1)
        return h * (1 + gamma) + beta


class F0Input(nn.Module):
    """h (B, C, H, W) + a per-frame contour c (B, 1, T): c averaged to W frames, times a
    per-channel weight (zero at the start: the model begins as the one without it), added at every
    frequency row."""

    def __init__(self, channels: int):
        super().__init__()
        self.proj = nn.Conv1d(1, channels, 1, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return h + self.proj(F.adaptive_avg_pool1d(c, h.shape[-1])).to(h.dtype)[:, :, None, :]


@registrar(CRITICS, "stage-one critic")("specgan")
class Critic(nn.Module):
    """Normalised log-mel (+ label) → unbounded score (Wasserstein critic).

    Args:
        n_mels, frames: Input size (any; padded with zeros to :func:`grid_for`'s grid).
        d: Width: the first stage has d channels, each later stage twice as many.
        kernel_size: Convolution kernel (SpecGAN: 5).
        n_classes: Labels for the projection term (0 = unconditional).
        aux_classifier: Also an auxiliary classifier head (AC-GAN, Odena et al. 2017; GANSynth's
            pitch classifier): a linear map of the same features to label logits, returned by
            ``forward(..., return_logits=True)``. The Wasserstein score (and so the gradient
            penalty) does not depend on it.
        detail: Gain of a second input channel holding the mel's fine structure along frequency
            (the mel minus its ``detail_width``-band moving average: harmonic lines, and the
            generator's fixed ripple), 0 = off. The channel is linear in the mel, so it adds no
            function the critic could not learn; it preconditions: Adam moves that channel's
            weights as fast as the mel's, so features of the small fine structure (real speech:
            ±0.2-0.6 nats around its envelope) can be learnt faster. The image-GAN
            analogue is a discriminator given the high-frequency bands of its input (FreGAN,
            Yang et al. 2022, for limited data); GANs' spectral bias leaves those bands underfit.
        detail_width: Bands of that moving average (odd; more than the widest harmonic spacing
            in bands that should count as fine structure).
        salience: Gain of an input channel that is a pitch-salience map, 0 = off: row k, frame t is
            the dot product of frame t's low-band ripple (in nats, around a ``detail_width``-band
            moving average, the bands :func:`specgan.metrics.ripple_bands` reads) with the unit-norm ripple of
            the harmonic comb of the k-th of n_mels F0s log-spaced over ``salience_range``, drawn
            through the same mel filterbank (:func:`harmonic_templates`). A voiced frame is a peak
            at its F0 (and weaker ones at its octaves), a frame without harmonics a flat column,
            and an F0 contour a line the convolutions can follow. Linear in the mel, like
            ``detail``, so it adds no function, only a view in which "one F0, and where" is local;
            the generator's harmonic head (``f0_bins``) maps onto it one bin to one row. Its
            geometry is filled from the mel config and statistics (:meth:`set_salience_geometry`).
        salience_range: (lowest, highest) F0 in Hz of the salience map's rows.
    """

    def __init__(self, n_mels: int = 64, frames: int = 64, d: int = 32, kernel_size: int = 5, n_classes: int = 0,
                 aux_classifier: bool = False, detail: float = 0.0, detail_width: int = 7, salience: float = 0.0,
                 salience_range: tuple[float, float] | list[float] = (60.0, 400.0)):
        super().__init__()
        if aux_classifier and not n_classes:
            raise ValueError("aux_classifier needs labels (a conditional model)")
        if detail < 0:
            raise ValueError(f"detail must be >= 0 (got {detail})")
        if salience < 0:
            raise ValueError(f"salience must be >= 0 (got {salience})")
        if len(salience_range) != 2 or not 0 < salience_range[0] < salience_range[1]:
            raise ValueError(f"salience_range must be [low, high] Hz with 0 < low < high, got {salience_range!r}")
        if (detail or salience) and (detail_width < 3 or detail_width % 2 == 0 or detail_width > n_mels):
            raise ValueError(f"detail_width must be odd, at least 3 and at most n_mels={n_mels} (got {detail_width})")
        self.detail, self.detail_width = float(detail), int(detail_width)
        self.salience, self.salience_range = float(salience), (float(salience_range[0]), float(salience_range[1]))
        if salience:  # (F0 rows, mel bands): normalised mel → ripple · template, in nats
            self.register_buffer("salience_map", torch.zeros(n_mels, n_mels))
        n, self.grid_h, self.grid_w = grid_for(n_mels, frames)
        self.n_mels, self.frames = n_mels, frames
        pad = kernel_size // 2
        layers: list[nn.Module] = []
        c_in, c = 1 + bool(detail) + bool(salience), d
        for _ in range(n):
            layers += [nn.Conv2d(c_in, c, kernel_size, 2, padding=pad), nn.LeakyReLU(0.2)]
            c_in, c = c, c * 2
        self.net = nn.Sequential(*layers)
        features = c_in * (self.grid_h >> n) * (self.grid_w >> n)
        self.fc = nn.Linear(features, 1)
        self.embed = nn.Embedding(n_classes, features) if n_classes else None
        self.aux = nn.Linear(features, n_classes) if aux_classifier else None
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, return_logits: bool = False):
        """x (B, 1, n_mels, frames), labels (B,) → scores (B,); with ``return_logits`` also the
        auxiliary classifier's logits (B, n_classes)."""
        extra = []
        if self.detail:
            extra.append(self.detail * self.fine_structure(x))
        if self.salience:
            extra.append(self.salience * self.pitch_salience(x))
        if extra:
            x = torch.cat([x, *extra], dim=1)
        if (self.grid_h, self.grid_w) != tuple(x.shape[-2:]):  # zeros up to the grid (none at powers of two)
            x = F.pad(x, (0, self.grid_w - x.shape[-1], 0, self.grid_h - x.shape[-2]))
        h = self.net(x).flatten(1)
        score = self.fc(h).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("this critic is conditional: pass labels")
            score = score + (self.embed(labels) * h).sum(dim=1)
        if return_logits:
            if self.aux is None:
                raise ValueError("this critic has no auxiliary classifier (aux_classifier: true)")
            return score, self.aux(h)
        return score

    @torch.no_grad()
    def set_salience_geometry(self, mel, stats) -> None:
        """Fill the salience map's matrix from the mel config (:class:`vocoder.mel.MelConfig`) and
        the normalisation (:class:`vocoder.mel.MelStats`): normalised mel → log-mel (per-band
        std · clip; the mean is a constant the ripple removes) → ripple of the low bands → dot
        product with each F0's unit-norm template ripple."""
        if not self.salience:
            raise ValueError("this critic has no salience channel (salience: 0)")
        n = self.salience_map.shape[0]
        if mel.n_mels != n:
            raise ValueError(f"set_salience_geometry: the mel has {mel.n_mels} bands, the critic {n}")
        from specgan.metrics import FINE_STRUCTURE_MAX_HZ, low_band_ripple, ripple_bands

        bands, k = ripple_bands(mel), self.detail_width
        if bands < k + 2:
            raise ValueError(f"set_salience_geometry: {bands} mel bands below {FINE_STRUCTURE_MAX_HZ:.0f} Hz; the "
                             f"ripple needs at least detail_width + 2 = {k + 2}")
        lo, hi = self.salience_range
        tmpl, nb = harmonic_templates(mel, torch.logspace(math.log10(lo), math.log10(hi), n))
        # the ripple operator R (bands - 2·(k // 2), bands): metrics' ripple of the identity
        r = torch.from_numpy(low_band_ripple(np.eye(bands)[None], bands, k, np.inf, "set_salience_geometry")[0][0])
        t = tmpl[:, :bands].double() @ r.T                                   # (n, bands - 2·(k // 2)) template ripple
        t = t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)
        std = torch.as_tensor(stats.std, dtype=torch.float64).reshape(-1)[:bands] * (stats.clip_sigma or 1.0)
        m = torch.zeros(n, n, dtype=torch.float64)
        m[:, :bands] = (t @ r) * std[None, :]
        self.salience_map.copy_(m.float())

    def pitch_salience(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, n_mels, frames) normalised → the salience map (B, 1, n_mels F0 rows, frames), nats."""
        if not bool(self.salience_map.abs().sum() > 0):
            raise RuntimeError("the critic's salience geometry is unset: call set_salience_geometry (the trainer does)")
        return torch.einsum("km,bcmt->bckt", self.salience_map.to(x.dtype), x)

    def fine_structure(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, n_mels, frames) → x minus its moving average over ``detail_width`` mel bands
        (edge bands replicated: a flat spectrum has none, a linear one none away from the edges)."""
        k = self.detail_width
        padded = F.pad(x, (0, 0, k // 2, k // 2), mode="replicate")
        return x - F.avg_pool2d(padded, (k, 1), stride=1)


def check_generator_spec(spec) -> None:
    """Validate ``specgan.generator`` (name and parameter names) without building it."""
    check_spec(GENERATORS, "stage-one generator", spec, 2, _DERIVED)


def check_critic_spec(spec) -> None:
    """Validate ``specgan.critic`` (name and parameter names) without building it."""
    check_spec(CRITICS, "stage-one critic", spec, 2, _DERIVED)


def build_generator(spec, n_mels: int, frames: int, n_classes: int = 0) -> nn.Module:
    """``{name: specgan, d: 16, ...}`` → a generator for (n_mels x frames) and n_classes labels."""
    return build(GENERATORS, "stage-one generator", spec, n_mels, frames, n_classes=n_classes)


def build_critic(spec, n_mels: int, frames: int, n_classes: int = 0) -> nn.Module:
    """``{name: specgan, d: 16, ...}`` → a critic for (n_mels x frames) and n_classes labels."""
    return build(CRITICS, "stage-one critic", spec, n_mels, frames, n_classes=n_classes)
