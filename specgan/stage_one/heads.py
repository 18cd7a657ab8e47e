"""The generator's composed heads: a class prior (each label's mean training mel, drawn under the
network's residual) and a source-filter harmonic head (a per-frame F0 and voicing drawn as a
harmonic comb through the mel filterbank).

Both hold buffers filled once from the training data or the mel config (``fill`` /
``set_geometry``) and saved with the weights, so a loaded model needs neither.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from specgan.stage_one.harmonics import COMB_FLOOR, COMB_GRID, comb_contrast, comb_geometry, despike_f0
from specgan.stage_one.layers import label_sizes

__all__ = ["ClassPrior", "HarmonicHead"]


class ClassPrior(nn.Module):
    """Each label's mean training mel, in pre-tanh units, for the generator to draw a residual on.

    With several labels (pitch × instrument) each value of each label has its mean, and a clip's
    prior is additive in pre-tanh units: the overall mean plus, per label, its value's difference
    from it (a combination needs no clips of its own; 784 pitch × instrument pairs would have about
    three each).

    Args:
        mode: ``"mean"`` (the whole mean image: for a note, its harmonic lines at the asked pitch
            and the programs' average attack and decay) or ``"profile"`` (its mean over time: the
            spectral envelope and harmonic lines only).
        n_classes: Label values, or one count per label.
        n_mels, frames: The generator's output size.
    """

    def __init__(self, mode: str, n_classes: int | list[int], n_mels: int, frames: int):
        super().__init__()
        if mode not in ("mean", "profile"):
            raise ValueError(f"class_prior must be 'none', 'mean' or 'profile', got {mode!r}")
        self.sizes = label_sizes(n_classes)
        if not self.sizes:
            raise ValueError("class_prior needs labels (a conditional model)")
        self.mode, self.n_mels, self.frames = mode, n_mels, frames
        self.n_classes = sum(self.sizes)
        width = 1 if mode == "profile" else frames
        self.register_buffer("mean", torch.zeros(self.n_classes, 1, n_mels, width))
        if len(self.sizes) > 1:  # the overall mean (absent with one label: its files keep their tensors)
            self.register_buffer("overall", torch.zeros(1, 1, n_mels, width))
        self.register_buffer("offsets", torch.tensor([0, *self.sizes[:-1]]).cumsum(0), persistent=False)

    def _mean_of(self, x: torch.Tensor) -> torch.Tensor:
        m = x.float().mean(0)
        if self.mode == "profile":
            m = m.mean(-1, keepdim=True)
        return torch.atanh(m.clamp(-0.999, 0.999))

    @torch.no_grad()
    def fill(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fill the prior from normalised training mels and their labels.

        Per label value the mean (over clips, and over time for ``"profile"``), clamped inside
        tanh's range and mapped through atanh. Values without clips keep 0 (tanh(0): the
        mid-level) with one label, the overall mean with several.

        Args:
            x: Normalised mels (N, 1, n_mels, frames).
            y: Label indices (N,), or (N, L) with several labels.
        """
        y = y if y.dim() == 2 else y[:, None]
        if x.shape[1:3] != (1, self.n_mels) or x.shape[3] != self.frames or len(x) != len(y) \
                or y.shape[1] != len(self.sizes):
            raise ValueError(f"ClassPrior.fill: expected mels (N, 1, {self.n_mels}, {self.frames}) and (N, "
                             f"{len(self.sizes)}) labels, got {tuple(x.shape)} and {tuple(y.shape)}")
        prior = torch.zeros_like(self.mean)
        if len(self.sizes) > 1:
            self.overall.copy_(self._mean_of(x)[None])
            prior += self.overall
        for col, size in enumerate(self.sizes):
            for c in range(size):
                sel = x[y[:, col] == c]
                if len(sel):
                    prior[int(self.offsets[col]) + c] = self._mean_of(sel)
        self.mean.copy_(prior)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """Labels (B,) or (B, L) → the prior to add before tanh (B, 1, n_mels, frames or 1)."""
        if len(self.sizes) == 1:
            return self.mean[labels if labels.dim() == 1 else labels[:, 0]]
        rows = self.mean[labels + self.offsets.to(labels.device)]          # (B, L, 1, n_mels, W)
        return self.overall + (rows - self.overall[:, None]).sum(1)


class HarmonicHead(nn.Module):
    """A source-filter head: per-frame F0 and voicing → a harmonic comb per mel band.

    From the generator's features before its last upsampling stage (pooled over frequency), a
    1-D conv gives each frame an F0 and a voicing v in [0, 1]; the head draws the harmonic comb
    of that F0 (peaks at k·F0, k ≥ 1, shaped like the analysis window's main lobe, averaged by
    each mel band's filter) and returns ``gain · log(v · comb / flat + 1 − v + floor)`` in
    normalised units per band, for the generator to add before its tanh. Wide bands, where many
    harmonics average out, get ≈ 0; the narrow low bands get lines at the harmonics, which the
    convolutions alone cannot draw 2–5 bins apart. See :class:`specgan.stage_one.generator.Generator`
    for the options (``f0_range``, ``f0_bins``, ``f0_hard``, ``f0_source``, ``f0_contours``,
    ``f0_despike``).

    Args:
        n_mels, frames: The generator's output size.
        n_classes: Labels (the F0 bank is filled label by label).
        channels: Width of the features the head reads.
    """

    F0_DESPIKE_WINDOW = 9  # harmonic frames in f0_despike's running median (the frame and 4 either side)

    def __init__(self, n_mels: int, frames: int, n_classes: int, channels: int,
                 f0_range: tuple[float, float] | list[float] = (60.0, 400.0), f0_bins: int = 0,
                 f0_hard: bool = False, f0_source: str = "head", f0_contours: int = 512, f0_despike: float = 0.0):
        super().__init__()
        if len(f0_range) != 2 or not 0 < f0_range[0] < f0_range[1]:
            raise ValueError(f"f0_range must be [low, high] Hz with 0 < low < high, got {f0_range!r}")
        if isinstance(f0_bins, bool) or int(f0_bins) != f0_bins or f0_bins < 0 or f0_bins == 1:
            raise ValueError(f"f0_bins must be 0 (regress the F0) or an integer >= 2, got {f0_bins!r}")
        if not isinstance(f0_hard, bool):
            raise ValueError(f"f0_hard must be true or false, got {f0_hard!r}")
        if f0_hard and not f0_bins:
            raise ValueError("f0_hard picks one of the F0 bins: set f0_bins (and harmonic: true)")
        if f0_source not in ("head", "data"):
            raise ValueError(f"f0_source must be 'head' or 'data', got {f0_source!r}")
        if f0_source == "data" and f0_bins:
            raise ValueError("f0_source: data gives the harmonic head its F0: set harmonic: true and f0_bins: 0")
        if isinstance(f0_despike, bool) or not isinstance(f0_despike, (int, float)) or not f0_despike >= 0:
            raise ValueError(f"f0_despike must be a number of semitones >= 0 (0: off), got {f0_despike!r}")
        if f0_despike and f0_source != "data":
            raise ValueError("f0_despike cleans the data's F0 contours: set f0_source: data")
        if isinstance(f0_contours, bool) or int(f0_contours) != f0_contours or f0_contours < max(n_classes, 1):
            raise ValueError(f"f0_contours must be an integer >= the number of labels ({max(n_classes, 1)}), "
                             f"got {f0_contours!r}")
        self.n_mels, self.frames, self.n_classes = n_mels, frames, n_classes
        self.f0_range = (float(f0_range[0]), float(f0_range[1]))
        self.f0_bins = int(f0_bins)
        self.f0_hard = f0_hard
        self.f0_source = f0_source
        # one F0 logit (regression) or one per F0 bin (classification), then the voicing logit
        self.source = nn.Conv1d(channels, 1 + (self.f0_bins or 1), 3, padding=1)
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
    def set_geometry(self, mel, stats) -> None:
        """Fill the comb's buffers from the mel config and the normalisation.

        :func:`~specgan.stage_one.harmonics.comb_geometry` (the filterbank on a fine frequency
        grid, the window's main lobe, the low bands that get a comb), 1 / (per-band std · clip),
        and with ``f0_bins`` the comb of every bin's F0. Only the low bands that lie wholly below
        :data:`~specgan.stage_one.harmonics.COMB_MAX_HZ` get a drawn comb; the rest are wide,
        where the comb averages to flat.

        Args:
            mel: A :class:`vocoder.mel.MelConfig`.
            stats: A :class:`vocoder.mel.MelStats`.
        """
        if mel.n_mels != self.n_mels:
            raise ValueError(f"HarmonicHead.set_geometry: the mel has {mel.n_mels} bands, the generator {self.n_mels}")
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
        """Per-frame F0 and voicing from the generator's features.

        Args:
            feat: Features before the last stage (B, C, n_mels/2, frames/2).

        Returns:
            The F0: in Hz (B, frames) for regression, or with ``f0_bins`` the softmax over the
            bins (B, frames, f0_bins); and the voicing (B, frames).
        """
        a = self.source(feat.mean(2))                                           # (B, K + 1, frames/2)
        a = F.interpolate(a, size=self.frames, mode="linear", align_corners=False).float()
        v = torch.sigmoid(a[:, -1])
        if self.f0_bins:
            return self.bin_weights(a[:, :-1].transpose(1, 2)), v
        lo, hi = self.f0_range
        return lo * (hi / lo) ** torch.sigmoid(a[:, 0]), v

    @torch.no_grad()
    def set_f0_contours(self, f0: torch.Tensor, labels: torch.Tensor | None = None, min_frames: int = 4) -> dict:
        """Fill the F0 bank (``f0_source: data``) from the F0 tracks of training clips.

        A clip with at least ``min_frames`` harmonic frames gives a contour: log-F0 interpolated
        across its other frames (held at the ends) and clamped to ``f0_range``. Each label's rows
        take its contours evenly spaced (repeating when it has fewer); a label without any takes
        every label's.

        Args:
            f0: Per-frame F0 (N, frames), Hz, NaN where a frame is not harmonic.
            labels: Label indices (N,), or None.
            min_frames: Harmonic frames a clip needs to give a contour.

        Returns:
            ``{"clips": N, "contours": clips that gave one, "despiked": frames dropped}``.
        """
        if self.f0_source != "data":
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
        if self.f0_despike > 0:
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
        """One F0 contour per clip (B, frames), Hz, from the bank.

        The bank row of its label chosen by its first latent, ``floor(Φ(z[:, 0]) · rows per
        label)`` (Φ the normal CDF, so the rows are equally likely): a function of the latent, so
        a seed redraws the same clip whatever the batch, and no random generator is consumed.
        """
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
        """F0-bin logits (B, T, f0_bins) → the weights of the bins' combs.

        The softmax, or with ``f0_hard`` the one-hot of its largest weight carrying the softmax's
        gradient (straight-through).
        """
        w = torch.softmax(logits, -1)
        if self.f0_hard:
            w = F.one_hot(w.argmax(-1), self.f0_bins).to(w.dtype) + w - w.detach()
        return w

    def comb(self, f0: torch.Tensor, voicing: torch.Tensor) -> torch.Tensor:
        """Per-frame F0 and voicing (B, T) → the comb's log contrast per mel band (B, n_mels, T).

        ``log(v · comb/flat + 1 − v + floor)``, in log-magnitude units. The F0 is in Hz, or with
        ``f0_bins`` a distribution over the bins (B, T, f0_bins), whose combs are mixed with those
        weights (linear in the weights: no local optimum between octaves for the gradient to fall
        into, as there is for an F0 regressed through the comb).
        """
        if not float(self.comb_sigma) > 0:
            raise RuntimeError("the harmonic head's geometry is unset: call Generator.prepare or HarmonicHead.set_geometry (the trainer does)")
        if self.f0_bins:
            if f0.shape[-1] != self.f0_bins:
                raise ValueError(f"HarmonicHead.comb: expected F0 weights over {self.f0_bins} bins, got shape {tuple(f0.shape)}")
            band = torch.einsum("btk,km->bmt", f0, self.comb_bank)
        else:
            nb, ng = int(self.comb_bands), int(self.comb_points)
            low = comb_contrast(self.comb_fb[:nb, :ng], self.comb_hz[:ng], self.comb_sigma, f0).transpose(1, 2)
            band = torch.cat([low, low.new_ones(low.shape[0], self.n_mels - nb, low.shape[2])], 1)
        v = voicing[:, None, :]
        return torch.log(v * band + (1 - v) + COMB_FLOOR)

    def forward(self, feat: torch.Tensor, f0: torch.Tensor | None = None) -> torch.Tensor:
        """Features before the last stage → the term to add before the generator's tanh.

        Args:
            feat: (B, C, n_mels/2, frames/2).
            f0: An imposed F0 contour (B, frames), Hz; the head's own when None.

        Returns:
            (B, 1, n_mels, frames), normalised units.
        """
        f0_head, voicing = self.source_params(feat)
        if f0 is not None:
            f0_head = f0.to(f0_head)
        comb = self.comb(f0_head, voicing)
        return (self.comb_gain * self.comb_scale[:, None] * comb)[:, None]
