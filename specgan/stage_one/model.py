"""A trained stage-one model, loaded for use: the twin of :func:`vocoder.load`.

``load(path)`` reads a ``model.safetensors`` through the one model-file contract
(:mod:`vocoder.checkpoint`: the header checked before anything is built) and returns a
:class:`StageOne`, the EMA generator with its mel config, normalisation and label vocabulary.
:meth:`StageOne.sample` is the one place that draws from stage one: synth, evaluation, the report
and :func:`specgan.generate` all call it, so a seed means the same clip everywhere::

    model = stage_one.load("pretrained/speech/specgan.safetensors")
    logmel = model.sample(["seven", "seven"], seeds=[0, 1])   # (2, n_mels, frames), natural-log mel
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from specgan.stage_one import generator as _generator  # noqa: F401  (registers the generators)
from specgan.stage_one.labels import LabelSpace
from specgan.stage_one.registry import GENERATORS
from vocoder.checkpoint import ModelFileError, load_model
from vocoder.mel import MelConfig, MelStats
from vocoder.registry import build

__all__ = ["StageOne", "check_smoothing", "check_truncation", "load", "noise", "smooth_frames", "walk_latents"]


def noise(z_dim: int, seed: int) -> torch.Tensor:
    """The (1, z_dim) latent of one seed: a clip's noise depends on its seed alone (CPU)."""
    return torch.randn(1, z_dim, generator=torch.Generator().manual_seed(seed))


def check_truncation(psi) -> float:
    """ψ as a float, or one line saying what it must be (0 < ψ ≤ 1)."""
    if isinstance(psi, bool) or not isinstance(psi, int | float) or not 0 < psi <= 1:
        raise ValueError(f"truncation: must be a number in (0, 1] (1 = as trained), got {psi!r}")
    return float(psi)


def check_smoothing(a) -> float:
    """The smoothing weight as a float, or one line saying what it must be (0 ≤ a ≤ 1/3)."""
    if isinstance(a, bool) or not isinstance(a, int | float) or not 0 <= a <= 1 / 3 + 1e-9:
        raise ValueError(f"smoothing: must be a number in [0, 1/3] (0 = as drawn, 0.25 = the 1-2-1 filter), got {a!r}")
    return float(a)


def smooth_frames(x: torch.Tensor, a: float) -> torch.Tensor:
    """Each frame of ``x`` (..., frames) as ``a·previous + (1 − 2a)·itself + a·next``, the end frames
    repeated beyond the ends; ``a = 0`` returns ``x`` itself. A convex combination, so values stay
    in the range they were drawn in, and a constant track is unchanged.
    """
    if a == 0 or x.shape[-1] < 2:
        return x
    padded = torch.cat([x[..., :1], x, x[..., -1:]], dim=-1)
    return a * padded[..., :-2] + (1 - 2 * a) * x + a * padded[..., 2:]


def walk_latents(z_dim: int, seed_a: int, seed_b: int, points: int) -> torch.Tensor:
    """(points, z_dim): spherical interpolation from seed_a's latent to seed_b's (CPU)."""
    za, zb = noise(z_dim, seed_a), noise(z_dim, seed_b)
    t = torch.linspace(0, 1, points)[:, None]
    omega = torch.arccos((za / za.norm() * zb / zb.norm()).sum().clamp(-1, 1))
    if omega.abs() < 1e-6:
        return (1 - t) * za + t * zb
    return (torch.sin((1 - t) * omega) * za + torch.sin(t * omega) * zb) / torch.sin(omega)


@dataclass
class StageOne:
    """A loaded EMA generator with what it needs to produce vocoder-ready log-mels.

    Attributes:
        generator: The stage-one generator (a :class:`~specgan.stage_one.base.SpectrogramGenerator`).
        mel_cfg: The mel its output is in.
        stats: The normalisation its output is in.
        labels: What it is conditioned on (:class:`~specgan.stage_one.labels.LabelSpace`: keys,
            vocabularies, the training histogram); a plain list is one label's vocabulary.
        step: Training step of the weights.
        path: The file it was loaded from.
        truncation: ψ, the factor every latent is scaled by when :meth:`sample` draws it (1: as
            trained). The latent's mean is 0, so ψ < 1 draws nearer the generator's typical output:
            the truncation trick of BigGAN and StyleGAN (ψ-interpolation toward the mean latent),
            trading variety for clips that carry their label more clearly. ``load_pair`` sets it
            from ``synth.truncation``.
        smoothing: ``a``, the weight of each neighbouring frame when every drawn mel is smoothed
            along time (:func:`smooth_frames`; 0: as drawn, 0.25: the 1-2-1 filter). The generators
            draw more frame-to-frame modulation above 8 Hz than real mels carry (docs/specgan.md),
            which a vocoder renders as roughness; ``load_pair`` sets it from ``synth.smoothing``.
    """

    generator: torch.nn.Module
    mel_cfg: MelConfig
    stats: MelStats
    labels: LabelSpace
    step: int
    path: Path | None = field(default=None)
    truncation: float = 1.0
    smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_truncation(self.truncation)
        check_smoothing(self.smoothing)
        if not isinstance(self.labels, LabelSpace):  # a vocabulary list: one label
            self.labels = LabelSpace([None], [list(self.labels)]) if self.labels else LabelSpace([], [])

    def draw_as(self, synth) -> StageOne:
        """Draw as a recipe's synth section says (``truncation``, ``smoothing``: what ``specgan synth``
        writes); returns the model itself.
        """
        self.truncation = check_truncation(synth.truncation)
        self.smoothing = check_smoothing(synth.smoothing)
        return self

    @property
    def conditional(self) -> bool:
        """Whether the model needs a label."""
        return self.labels.conditional

    @property
    def vocab(self) -> list:
        """One label's values in class-index order; with several labels, the list of each key's."""
        if not self.labels.conditional:
            return []
        return self.labels.vocabs if self.labels.multi else self.labels.vocabs[0]

    @property
    def device(self) -> torch.device:
        """Where the generator's weights are."""
        return next(self.generator.parameters()).device

    def label_index(self, label) -> int | tuple[int, ...]:
        """A label → class index (one label: ``"seven"``, ``60`` or its string form), or the indices
        of the keys it names (several: ``{"pitch": 60}``); one line names what is wrong.
        """
        asked = self.labels.request(label)
        return asked[0] if not self.labels.multi else tuple(asked.get(i, -1) for i in range(len(self.labels.keys)))

    def label_indices(self, labels, n: int, seeds: Sequence[int] | None = None) -> torch.Tensor | None:
        """``labels`` (one label for all, ``n`` labels, or None) → class indices on the model's
        device, (n,) or (n, L) with several labels; None for an unconditional model. A key a
        request leaves out is drawn per clip from the training distribution, seeded by ``seeds[i]``
        (default: the row number). One line names what is wrong.
        """
        if not self.conditional:
            if labels is not None and not (isinstance(labels, (list, tuple)) and all(v is None for v in labels)):
                raise ValueError("this model is unconditional: labels are not accepted")
            return None
        if labels is None and not self.labels.multi:
            raise ValueError(f"this model is conditional: pass labels (one of {', '.join(map(str, self.vocab))})")
        one = labels is None or isinstance(labels, Mapping) or not isinstance(labels, (list, tuple)) \
            or (self.labels.multi and isinstance(labels, tuple) and len(labels) == len(self.labels.keys)
                and not any(isinstance(v, (Mapping, tuple, list)) for v in labels))
        if one:
            labels = [labels] * n
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} samples")
        seeds = list(range(n)) if seeds is None else list(seeds)
        return self.labels.indices(labels, seeds).to(self.device)

    def resolve(self, labels, seeds: Sequence[int]) -> list:
        """The label each clip is drawn with: what was asked, with a left-out key filled as
        :meth:`label_indices` fills it (``{"pitch": 60, "instrument": "violin"}``).
        """
        y = self.label_indices(labels, len(seeds), seeds)
        return [None] * len(seeds) if y is None else [self.labels.decode(row) for row in y.cpu().tolist()]

    @torch.no_grad()
    def draw(self, z: torch.Tensor, labels=None, batch_size: int | None = 1,
             seeds: Sequence[int] | None = None, smoothing: float | None = None) -> torch.Tensor:
        """Normalised mels (n, n_mels, frames) in [-1, 1] from latents ``z`` (n, z_dim), smoothed
        along time by ``smoothing`` (None: :attr:`smoothing`; :func:`smooth_frames`).

        Args:
            z: The latents, one row per clip.
            labels: One label for all, one per row, or None (unconditional; with several labels,
                every key drawn).
            batch_size: Rows per forward pass. 1 (the default) draws each clip in its own pass: a
                batched convolution may sum in another order than a lone one, so only then is a
                clip redrawn alone sample for sample the clip of a set. None: one pass.
            seeds: Each row's seed, for drawing the keys a label leaves out (default: row numbers).
            smoothing: The neighbouring frames' weight (None: :attr:`smoothing`).
        """
        a = self.smoothing if smoothing is None else check_smoothing(smoothing)
        y = self.label_indices(labels, len(z), seeds)
        z = z.to(self.device)
        step = len(z) if batch_size is None else max(1, int(batch_size))
        g = self.generator
        out = [g(z[i : i + step], None if y is None else y[i : i + step])[:, 0] for i in range(0, len(z), step)]
        return smooth_frames(torch.cat(out), a) if out else z.new_zeros(0, g.n_mels, g.frames)

    def sample_normalised(self, labels=None, seeds: Sequence[int] = (0,), batch_size: int | None = 1,
                          truncation: float | None = None, smoothing: float | None = None) -> torch.Tensor:
        """Normalised mels (n, n_mels, frames): clip i from the noise of ``seeds[i]`` (:func:`noise`)
        times ψ (``truncation``; None: :attr:`truncation`), asking for ``labels`` (one for all, one
        per seed, or None), smoothed along time by ``smoothing`` (None: :attr:`smoothing`). See
        :meth:`draw`.
        """
        psi = self.truncation if truncation is None else check_truncation(truncation)
        seeds = [int(s) for s in seeds]
        z = torch.cat([noise(self.generator.z_dim, s) for s in seeds]) if seeds else torch.zeros(0, self.generator.z_dim)
        return self.draw(z * psi if psi != 1.0 else z, labels, batch_size, seeds=seeds, smoothing=smoothing)

    def sample(self, labels=None, seeds: Sequence[int] = (0,), batch_size: int | None = 1,
               truncation: float | None = None, smoothing: float | None = None) -> torch.Tensor:
        """Log-mels (n, n_mels, frames) ready for a vocoder in :attr:`mel_cfg`: clip i from the noise
        of ``seeds[i]`` times ψ (``truncation``; None: :attr:`truncation`), asking for ``labels``
        (one for all, one per seed, or None), smoothed by ``smoothing`` (None: :attr:`smoothing`).
        """
        return self.stats.denormalize(self.sample_normalised(labels, seeds, batch_size, truncation, smoothing))

    def interpolate(self, seed_a: int, seed_b: int, points: int = 8, label=None) -> torch.Tensor:
        """A latent walk: log-mels (points, n_mels, frames) along the spherical interpolation from
        seed_a's latent to seed_b's (:func:`walk_latents`) times ψ, all asking for ``label``.
        """
        z = walk_latents(self.generator.z_dim, seed_a, seed_b, points)
        return self.stats.denormalize(self.draw(z * self.truncation if self.truncation != 1.0 else z, label))


def _build(info) -> torch.nn.Module:
    kwargs = dict(info.kwargs)  # n_classes (a count, or one per label) is the data's, not a checked parameter
    n_classes = kwargs.pop("n_classes", 0)
    return build(GENERATORS, "stage-one generator", {"name": info.name, **kwargs}, n_classes=n_classes)


def _rename(info):
    """The generator class's map of older tensor names (see ``SpectrogramGenerator.upgrade_key``)."""
    cls = GENERATORS.get(info.name)
    return cls.upgrade_key if cls is not None else None


def load(path: str | Path, device: str | torch.device = "cpu") -> StageOne:
    """Load a stage-one ``model.safetensors`` (or the run folder holding one).

    Every problem is one :class:`~vocoder.checkpoint.ModelFileError` line naming the file; the
    header is checked against the registered constructor before anything is built.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    g, info = load_model(path, _build, "stage-one", device, rename=_rename)
    if info.mel is None or info.stats is None:
        raise ModelFileError(f"{path}: a stage-one model without its mel config or statistics")
    return StageOne(g, info.mel, MelStats.from_dict(info.stats), LabelSpace.from_meta(info.extra), info.step, path)
