"""The SpecGAN generator (Donahue et al. 2018): noise (+ a label) → a normalised log-mel.

z (+ a label embedding) → dense to (C0, h0, w0) → stride-2 upsampling stages of 5x5 kernels,
halving channels each time → 1 channel, tanh (normalised mels live in [-1, 1]). SpecGAN's
published size: 128x128, d=64, 4x4x16d projection; ``64x64`` with d=16..32 is the CPU size used
for 1 s digits (64 mels x 64 frames). Options beyond SpecGAN (FiLM conditioning, full-resolution
refinement blocks, a class prior, a source-filter harmonic head) are composed modules
(:mod:`.layers`, :mod:`.heads`), absent when off so the shipped models keep their tensors.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from specgan.stage_one.base import SpectrogramGenerator
from specgan.stage_one.heads import ClassPrior, HarmonicHead
from specgan.stage_one.layers import F0Input, FiLM, LabelEmbedding, LabelMap, Residual, grid_for
from specgan.stage_one.registry import GENERATORS, register

__all__ = ["Generator"]

# the harmonic head's options: given without ``harmonic: true``, each is a mistake to name
_HEAD_OPTIONS = {"f0_bins": (0, "f0_bins applies to the harmonic head: set harmonic: true"),
                 "f0_hard": (False, "f0_hard picks one of the F0 bins: set f0_bins (and harmonic: true)"),
                 "f0_source": ("head", "f0_source: data gives the harmonic head its F0: set harmonic: true and "
                                       "f0_bins: 0"),
                 "f0_despike": (0.0, "f0_despike cleans the data's F0 contours: set f0_source: data")}


@register(GENERATORS, "specgan")
class Generator(SpectrogramGenerator):
    """Noise (+ label) → normalised log-mel.

    Args:
        n_mels, frames: Output size, any integers >= 8 (the smaller side sets the number of stages; a
            side that is not a multiple of 2**stages is drawn larger and cropped, :func:`grid_for`).
        z_dim: Latent size.
        d: Width: the last hidden stage has d channels, each earlier stage twice as many.
        kernel_size: Convolution kernel (SpecGAN: 5).
        upsample: ``"transposed"`` (SpecGAN), ``"nearest"`` or ``"bilinear"`` (resize x2 + conv: no
            checkerboard artefacts; bilinear also smooths the resize's blocks).
        n_classes: Number of label values for conditioning (0 = unconditional), or a list of
            counts, one per label (several labels at once, e.g. pitch × instrument: each label has
            its own embedding rows and the embeddings are summed, :class:`LabelEmbedding`; labels
            are then (B, L) indices).
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
            from the training data (:meth:`prepare`, :class:`~specgan.stage_one.heads.ClassPrior`) and saved with the weights; at step
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
            (:meth:`prepare`, :class:`~specgan.stage_one.heads.HarmonicHead`) and saved with the weights. Differentiable in F0 almost
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
            training mels of the same label (:meth:`prepare`: each frame's best-fitting
            comb, :func:`~specgan.stage_one.harmonics.comb_track`, interpolated across the frames that are not
            harmonic), and the head only decides where and how strongly to voice it — prosody from
            the data, the source-filter split of a parametric synthesiser. ``forward(..., f0=)``
            imposes a contour instead (pitch control). Not with ``f0_bins``.
        f0_contours: The bank's size (per label: ``f0_contours // n_classes``).
        f0_input: With ``f0_source: data``: the network sees the contour it is given — its log-F0,
            scaled to [-1, 1] over ``f0_range`` and averaged to each stage's frame rate, is added
            to every stage's features (where FiLM acts) through a per-channel weight that starts
            at zero — so formants and voicing can be placed to fit the contour.
        label_mlp: Hidden layers of a mapping network on the label embedding (0: none, the
            embedding is used as it is). With several labels the embedding is a sum, and FiLM's
            γ, β are linear in it, so each label's modulation adds to the others' and none depends
            on another's value (a violin's timbre could not change with the pitch except through
            the deeper layers). ``e + MLP(e)`` (LeakyReLU 0.2 between layers of ``embed_dim``, the
            last layer zero at the start, so the model begins as the one without it) lets the
            labels interact where they steer every stage, as StyleGAN's mapping network does for z.
        f0_despike: With ``f0_source: data``, semitones (0: off): before the bank is filled, a
            harmonic frame whose F0 is further than this from the median of its clip's harmonic
            frames around it (:data:`HarmonicHead.F0_DESPIKE_WINDOW` of them) is dropped as an octave or
            subharmonic error of the comb read-out, and the contour is interpolated across it.
    """

    # Tensor names before the class prior and the harmonic head became modules (files written
    # before 0.2 still load, and resume, through :meth:`SpectrogramGenerator.upgrade_key`).
    LEGACY_KEYS: ClassVar[dict[str, str]] = {
        "prior": "prior.mean", "comb_gain": "harmonic.comb_gain", "comb_fb": "harmonic.comb_fb",
        "comb_hz": "harmonic.comb_hz", "comb_sigma": "harmonic.comb_sigma", "comb_scale": "harmonic.comb_scale",
        "comb_bands": "harmonic.comb_bands", "comb_points": "harmonic.comb_points",
        "comb_bank": "harmonic.comb_bank", "f0_bank": "harmonic.f0_bank", "source.weight": "harmonic.source.weight",
        "source.bias": "harmonic.source.bias"}

    def __init__(self, n_mels: int = 64, frames: int = 64, z_dim: int = 100, d: int = 32, kernel_size: int = 5,
                 upsample: str = "transposed", n_classes: int | list[int] = 0, embed_dim: int = 32, conditioning: str = "input",
                 refine_blocks: int = 0, class_prior: str = "none", harmonic: bool = False,
                 f0_range: tuple[float, float] | list[float] = (60.0, 400.0), f0_bins: int = 0,
                 f0_hard: bool = False, f0_source: str = "head", f0_contours: int = 512, f0_input: bool = False,
                 f0_despike: float = 0.0, label_mlp: int = 0):
        super().__init__(n_mels, frames, z_dim, n_classes)
        if isinstance(label_mlp, bool) or int(label_mlp) != label_mlp or label_mlp < 0:
            raise ValueError(f"label_mlp must be an integer >= 0, got {label_mlp!r}")
        if label_mlp and not n_classes:
            raise ValueError("label_mlp maps the label embedding: the generator needs labels (conditional)")
        if not isinstance(harmonic, bool):
            raise ValueError(f"harmonic must be true or false, got {harmonic!r}")
        if not harmonic:
            given = {"f0_bins": f0_bins, "f0_hard": f0_hard, "f0_source": f0_source, "f0_despike": f0_despike}
            for key, value in given.items():
                default, why = _HEAD_OPTIONS[key]
                if value != default:
                    raise ValueError(why)
        if not isinstance(f0_input, bool):
            raise ValueError(f"f0_input must be true or false, got {f0_input!r}")
        if f0_input and f0_source != "data":
            raise ValueError("f0_input feeds the network the contour it is given: set f0_source: data")
        if class_prior not in ("none", "mean", "profile"):
            raise ValueError(f"class_prior must be 'none', 'mean' or 'profile', got {class_prior!r}")
        if upsample not in ("transposed", "nearest", "bilinear"):
            raise ValueError(f"upsample must be 'transposed', 'nearest' or 'bilinear', got {upsample!r}")
        if conditioning not in ("input", "film"):
            raise ValueError(f"conditioning must be 'input' or 'film', got {conditioning!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if int(refine_blocks) != refine_blocks or refine_blocks < 0:
            raise ValueError(f"refine_blocks must be an integer >= 0, got {refine_blocks!r}")
        n, self.grid_h, self.grid_w = grid_for(n_mels, frames)
        self.h0, self.w0 = self.grid_h >> n, self.grid_w >> n
        self.c0 = d * 2 ** (n - 1)
        sizes = self.label_sizes
        self.embed = LabelEmbedding(sizes, embed_dim) if sizes else None
        # the mapping network on the embedding (absent at 0, so existing files keep their names)
        self.label_map = LabelMap(embed_dim, int(label_mlp)) if label_mlp else None
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
        # refine_blocks: full-resolution residual blocks and the output conv (absent at 0, so the
        # shipped models' weights keep their names)
        self.refine = nn.ModuleList(Residual(d) for _ in range(refine_blocks)) if refine_blocks else None
        self.out = nn.Conv2d(d, 1, 3, padding=1) if refine_blocks else None
        # FiLM: one (γ, β) pair per hidden stage (the dense stage and each upsampling stage but the
        # last), in self.net's order of ReLUs, then one per refine block. "input" models have none.
        self.film = None
        widths = [self.c0] + [self.c0 >> (i + 1) for i in range(n - 1)] + [d] * refine_blocks
        if conditioning == "film" and n_classes:
            self.film = nn.ModuleList(FiLM(embed_dim, w) for w in widths)
        # f0_input: the contour's log-F0 added at the same places (absent when off)
        self.f0_in = nn.ModuleList(F0Input(w) for w in widths) if f0_input else None
        self.prior = ClassPrior(class_prior, n_classes, n_mels, frames) if class_prior != "none" else None
        # the harmonic head's F0 bank is kept per value of the first label
        self.harmonic = (HarmonicHead(n_mels, frames, sizes[0] if sizes else 0, self.c0 >> (n - 1), f0_range,
                                      f0_bins, f0_hard, f0_source, f0_contours, f0_despike) if harmonic else None)

    @property
    def class_prior(self) -> str:
        """``"none"``, ``"mean"`` or ``"profile"``: the class prior's mode (:class:`ClassPrior`)."""
        return self.prior.mode if self.prior is not None else "none"

    def prepare(self, data, mel, stats) -> dict[str, Any]:
        """Fill what the model reads from its training data before step 0: the class prior from
        the normalised mels and labels, the harmonic head's comb geometry from the mel config and
        statistics, and with ``f0_source: data`` its F0 bank from the training clips' harmonic
        frames. A resume then loads the saved buffers over these.

        Args:
            data: A :class:`~specgan.stage_one.data.MelDataset` (``x`` (N, 1, n_mels, frames), ``y``).
            mel: The :class:`vocoder.mel.MelConfig` of the features (None: not known).
            stats: The :class:`vocoder.mel.MelStats` of their normalisation (None: not known).

        Returns:
            What was filled, for the log (``{"f0_bank": {...}}`` when the F0 bank was).
        """
        filled: dict[str, Any] = {}
        if self.prior is not None:
            self.prior.fill(data.x, data.y)
        if self.harmonic is not None:
            if mel is None or stats is None:
                raise ValueError("specgan.generator.harmonic needs the mel config and statistics (the recipe's)")
            self.harmonic.set_geometry(mel, stats)
            if self.harmonic.f0_source == "data":  # the F0 bank: the training clips' harmonic frames' F0
                from specgan.stage_one.harmonics import comb_f0_tracks

                logmels = stats.denormalize(data.x[:, 0].float()).numpy()
                tracks = comb_f0_tracks(logmels, mel, self.harmonic.f0_range)
                first = None if data.y is None or not self.n_classes else (data.y if data.y.dim() == 1 else data.y[:, 0])
                filled["f0_bank"] = self.harmonic.set_f0_contours(tracks, first)
        return filled

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, f0: torch.Tensor | None = None) -> torch.Tensor:
        """Draw normalised log-mels.

        Args:
            z: Latents (B, z_dim).
            labels: Label indices (B,), long, or (B, L) with several labels; required when conditional.
            f0: The harmonic head's F0 contour (B, frames), Hz, imposed (``f0_source: data`` draws
                one from its bank when not given).

        Returns:
            Mels (B, 1, n_mels, frames) in [-1, 1].
        """
        head = self.harmonic
        if f0 is not None and not (head is not None and not head.f0_bins):
            raise ValueError("forward(f0=...) needs a harmonic head that takes an F0 in Hz (harmonic: true, f0_bins: 0)")
        e = None
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is conditional: pass labels")
            e = self.embed(labels)
            if self.label_map is not None:
                e = self.label_map(e)
            z = torch.cat([z, e], dim=1)
        x = self.fc(z).view(-1, self.c0, self.h0, self.w0)
        feat = None
        if head is not None and f0 is None and head.f0_source == "data":
            first = labels if labels is None or labels.dim() == 1 else labels[:, 0]
            f0 = head.draw_f0(z, first)  # z[:, 0] is still the first latent (the label is appended)
        if f0 is not None and tuple(f0.shape) != (len(z), self.frames):
            raise ValueError(f"forward: f0 must be (batch, frames) {(len(z), self.frames)}, got {tuple(f0.shape)}")
        if self.film is None and self.f0_in is None:
            x = F.relu(x)
            if head is not None:
                feat = x = self.net[: self._last_stage](x)
                x = self.net[self._last_stage :](x)
            else:
                x = self.net(x)
        else:
            contour = None if self.f0_in is None else head.f0_feature(f0)
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
        if self.prior is not None:
            x = x + self.prior(labels).to(x.dtype)
        if head is not None:
            x = x + head(feat, f0).to(x.dtype)
        return torch.tanh(x)
