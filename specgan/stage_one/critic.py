"""The SpecGAN critic: a normalised log-mel (+ a label) → an unbounded Wasserstein score.

The mirror of the generator: 5x5 stride-2 convs doubling channels, LeakyReLU 0.2, **no
normalisation layers** (the gradient penalty is per sample, which batch norm would break) → a
linear score, plus a projection term <embed(label), features> when conditioned (Miyato & Koyama
2018), and optionally an auxiliary classifier head and extra linear views of the input (fine
structure, pitch salience).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from specgan.stage_one.harmonics import FINE_STRUCTURE_MAX_HZ, harmonic_templates, low_band_ripple, ripple_bands
from specgan.stage_one.layers import LabelEmbedding, grid_for, label_sizes
from specgan.stage_one.registry import CRITICS, register

__all__ = ["Critic"]


@register(CRITICS, "specgan")
class Critic(nn.Module):
    """Normalised log-mel (+ label) → unbounded score (Wasserstein critic).

    Args:
        n_mels, frames: Input size (any; padded with zeros to :func:`grid_for`'s grid).
        d: Width: the first stage has d channels, each later stage twice as many.
        kernel_size: Convolution kernel (SpecGAN: 5).
        n_classes: Label values for the projection term (0 = unconditional), or one count per
            label: then one projection per label (their embeddings summed, :class:`LabelEmbedding`)
            and labels (B, L).
        aux_classifier: Also an auxiliary classifier head (AC-GAN, Odena et al. 2017; GANSynth's
            pitch classifier): a linear map of the same features to label logits, returned by
            ``forward(..., return_logits=True)`` — with several labels, their logits side by side
            (split by :attr:`label_sizes`: one softmax per label). The Wasserstein score (and so the
            gradient penalty) does not depend on it.
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
            moving average, the bands :func:`~specgan.stage_one.harmonics.ripple_bands` reads) with the unit-norm ripple of
            the harmonic comb of the k-th of n_mels F0s log-spaced over ``salience_range``, drawn
            through the same mel filterbank (:func:`~specgan.stage_one.harmonics.harmonic_templates`). A voiced frame is a peak
            at its F0 (and weaker ones at its octaves), a frame without harmonics a flat column,
            and an F0 contour a line the convolutions can follow. Linear in the mel, like
            ``detail``, so it adds no function, only a view in which "one F0, and where" is local;
            the generator's harmonic head (``f0_bins``) maps onto it one bin to one row. Its
            geometry is filled from the mel config and statistics (:meth:`set_salience_geometry`).
        salience_range: (lowest, highest) F0 in Hz of the salience map's rows.
        high_band: Weight of a second, small conditional critic on the mel bands above
            ``high_band_hz`` alone, added to the score; 0 = off. The main critic sees the whole mel
            through stride-2 convolutions, so the high band is a few rows of its last feature map,
            where the loud low bands dominate; the fricatives and bursts that tell "seven" from
            "one" live up there (docs/specgan.md, issue 29). This one keeps the band's frequency
            resolution (stride 1 along mel, 2 along time, then 2 x 2), scores every position of its
            feature map and averages (a patch critic), with a projection term per position when
            conditioned, so the label has its own say on the high band (the multi-band critics of
            the vocoder literature, here on the mel).
        high_band_hz: Where the high band starts: the bands whose centre frequency is at or above
            it (set from the mel config by :meth:`prepare`; at least 4 bands).
    """

    def __init__(self, n_mels: int = 64, frames: int = 64, d: int = 32, kernel_size: int = 5,
                 n_classes: int | list[int] = 0,
                 aux_classifier: bool = False, detail: float = 0.0, detail_width: int = 7, salience: float = 0.0,
                 salience_range: tuple[float, float] | list[float] = (60.0, 400.0), high_band: float = 0.0,
                 high_band_hz: float = 3000.0):
        super().__init__()
        self.label_sizes = label_sizes(n_classes)
        if aux_classifier and not self.label_sizes:
            raise ValueError("aux_classifier needs labels (a conditional model)")
        if detail < 0:
            raise ValueError(f"detail must be >= 0 (got {detail})")
        if salience < 0:
            raise ValueError(f"salience must be >= 0 (got {salience})")
        if len(salience_range) != 2 or not 0 < salience_range[0] < salience_range[1]:
            raise ValueError(f"salience_range must be [low, high] Hz with 0 < low < high, got {salience_range!r}")
        if (detail or salience) and (detail_width < 3 or detail_width % 2 == 0 or detail_width > n_mels):
            raise ValueError(f"detail_width must be odd, at least 3 and at most n_mels={n_mels} (got {detail_width})")
        if high_band < 0 or not high_band_hz > 0:
            raise ValueError(f"high_band must be >= 0 and high_band_hz > 0 (got {high_band}, {high_band_hz})")
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
        self.embed = LabelEmbedding(self.label_sizes, features) if self.label_sizes else None
        self.aux = nn.Linear(features, sum(self.label_sizes)) if aux_classifier else None
        self.n_classes = n_classes
        self.high_band, self.high_band_hz = float(high_band), float(high_band_hz)
        if high_band:
            self.register_buffer("high_band_start", torch.tensor(-1))  # the first band, from the mel (prepare)
            self.hi_net = nn.Sequential(
                nn.Conv2d(1, d, (3, kernel_size), (1, 2), padding=(1, pad)), nn.LeakyReLU(0.2),
                nn.Conv2d(d, 2 * d, (3, kernel_size), (1, 2), padding=(1, pad)), nn.LeakyReLU(0.2),
                nn.Conv2d(2 * d, 4 * d, (3, kernel_size), (2, 2), padding=(1, pad)), nn.LeakyReLU(0.2))
            self.hi_fc = nn.Conv2d(4 * d, 1, 1)
            self.hi_embed = LabelEmbedding(self.label_sizes, 4 * d) if self.label_sizes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, return_logits: bool = False):
        """X (B, 1, n_mels, frames), labels (B,) or (B, L) → scores (B,); with ``return_logits`` also
        the auxiliary classifier's logits (B, total label values).
        """
        hi = self.high_band_score(x, labels) if self.high_band else None
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
        if hi is not None:
            score = score + self.high_band * hi
        if return_logits:
            if self.aux is None:
                raise ValueError("this critic has no auxiliary classifier (aux_classifier: true)")
            return score, self.aux(h)
        return score

    def high_band_score(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """X (B, 1, n_mels, frames), labels → the high-band critic's score (B,): its per-position
        scores (plus the projection term) averaged over its feature map.
        """
        start = int(self.high_band_start)
        if start < 0:
            raise RuntimeError("the critic's high band is unset: call prepare() with the mel config (the trainer does)")
        h = self.hi_net(x[:, :1, start:, :])
        score = self.hi_fc(h).mean(dim=(1, 2, 3))
        if self.hi_embed is not None:
            if labels is None:
                raise ValueError("this critic is conditional: pass labels")
            score = score + (self.hi_embed(labels)[:, :, None, None] * h).sum(1).mean(dim=(1, 2))
        return score

    def prepare(self, data, mel, stats) -> dict:
        """Fill what the critic reads from the training setup before step 0 (the generator's
        hook's twin): the pitch-salience map from the mel config and statistics, when on.

        Args:
            data: The training :class:`~specgan.stage_one.data.MelDataset` (unused here).
            mel: The :class:`vocoder.mel.MelConfig`, or None.
            stats: The :class:`vocoder.mel.MelStats`, or None.

        Returns:
            What was filled, for the log.
        """
        done = {}
        if self.high_band:
            if mel is None:
                raise ValueError("specgan.critic.high_band needs the mel config (the recipe's)")
            done["critic_high_band"] = self.set_high_band(mel)
        if not self.salience:
            return done
        if mel is None or stats is None:
            raise ValueError("specgan.critic.salience needs the mel config and statistics (the recipe's)")
        self.set_salience_geometry(mel, stats)
        return done

    @torch.no_grad()
    def set_high_band(self, mel) -> str:
        """Set the high band's first mel band from ``mel``'s band centres and ``high_band_hz``;
        returns a line saying which bands.
        """
        if mel.n_mels != self.n_mels:
            raise ValueError(f"set_high_band: the mel has {mel.n_mels} bands, the critic {self.n_mels}")
        centres = np.asarray(mel.band_centres_hz())
        above = np.nonzero(centres >= self.high_band_hz)[0]
        if len(above) < 4:
            raise ValueError(f"specgan.critic.high_band_hz ({self.high_band_hz:g} Hz): {len(above)} of the "
                             f"{mel.n_mels} mel bands are centred at or above it (top band {centres[-1]:.0f} Hz); "
                             f"the high-band critic needs at least 4: lower it")
        self.high_band_start.fill_(int(above[0]))
        return f"bands {int(above[0])}-{mel.n_mels - 1} ({centres[above[0]]:.0f}-{centres[-1]:.0f} Hz)"

    @torch.no_grad()
    def set_salience_geometry(self, mel, stats) -> None:
        """Fill the salience map's matrix from the mel config (:class:`vocoder.mel.MelConfig`) and
        the normalisation (:class:`vocoder.mel.MelStats`): normalised mel → log-mel (per-band
        std · clip; the mean is a constant the ripple removes) → ripple of the low bands → dot
        product with each F0's unit-norm template ripple.
        """
        if not self.salience:
            raise ValueError("this critic has no salience channel (salience: 0)")
        n = self.salience_map.shape[0]
        if mel.n_mels != n:
            raise ValueError(f"set_salience_geometry: the mel has {mel.n_mels} bands, the critic {n}")
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
        """X (B, 1, n_mels, frames) normalised → the salience map (B, 1, n_mels F0 rows, frames), nats."""
        if not bool(self.salience_map.abs().sum() > 0):
            raise RuntimeError("the critic's salience geometry is unset: call set_salience_geometry (the trainer does)")
        return torch.einsum("km,bcmt->bckt", self.salience_map.to(x.dtype), x)

    def fine_structure(self, x: torch.Tensor) -> torch.Tensor:
        """X (B, 1, n_mels, frames) → x minus its moving average over ``detail_width`` mel bands
        (edge bands replicated: a flat spectrum has none, a linear one none away from the edges).
        """
        k = self.detail_width
        padded = F.pad(x, (0, 0, k // 2, k // 2), mode="replicate")
        return x - F.avg_pool2d(padded, (k, 1), stride=1)
