"""The builtin data sources (``data.source: builtin:NAME``): one table, one builder signature.

Each entry of :data:`SOURCES` says everything the rest of specgan asks about a builtin source:
the function that renders it, the labels its items carry (checked against ``data.label`` before
anything is rendered) and whether it is speech. Nothing else lists the builtins: the names
``parse_source`` accepts, the labels ``check_label`` offers and prepare's dispatch all read this
table, so a new builtin source is one module with a builder plus one line here.

Every builder is called the same way (:class:`Builder`)::

    items, report, split_of = build(data_config, sample_rate, out_dir, seed, work_dir)

It takes the whole ``data`` section (not its own sub-section) because some builders read more
than their own options: ``builtin:music`` renders the notes of ``data.notes``, ``builtin:digits``
takes its clip length from ``data.preprocess`` and its split fractions from ``data``.

Layouts of corpora on disk (``sc09:``, ``nsynth:``...) are the other table,
:data:`specgan.data.layouts.LAYOUTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from specgan.data.digits import build_digits, digits_config_labels
from specgan.data.manifest import Item
from specgan.data.music import build_music
from specgan.data.notes import build_notes
from specgan.data.voices import build_voices

if TYPE_CHECKING:  # recipe imports the audio stack; a type hint must not make it a runtime dependency here
    from specgan.recipe import DataConfig

__all__ = ["SOURCES", "Build", "Builder", "Source"]

Build = tuple[list[Item], dict, dict[str, str] | None]
"""What a builder returns: ``(items, report, split_of)``. ``report`` goes into
``data/prepare.json`` as ``build``; ``split_of`` maps item id → ``train``/``dev``/``test``, or is
None to let prepare split by :attr:`Item.group` with ``data.dev_fraction``/``test_fraction``."""


class Builder(Protocol):
    """The one call signature of every builtin builder."""

    def __call__(self, dc: DataConfig, sample_rate: int, out_dir: Path, seed: int, work_dir: Path) -> Build:
        """Render the source.

        Args:
            dc: The recipe's ``data`` section (:class:`specgan.recipe.DataConfig`).
            sample_rate: The recipe's ``mel.sample_rate``; every clip is written at it.
            out_dir: Where WAVs go (``<work>/data/wavs``, emptied by prepare beforehand).
            seed: The recipe's seed; the same seed gives the same set.
            work_dir: Manifest paths are made relative to it.

        Returns:
            ``(items, report, split_of)``, see :data:`Build`.
        """


@dataclass(frozen=True)
class Source:
    """One builtin source.

    Attributes:
        build: Renders it (:class:`Builder`).
        labels: The label keys ``data.label`` may name (every item carries them), in the order the
            "not a label of" error lists them.
        speech: Whether it is speech (PESQ/STOI and the like apply): what
            ``specgan.evaluate.is_speech`` answers when the recipe leaves ``evaluate.speech`` unset.
        config_labels: Labels present only under some configurations (e.g. ``builtin:digits``
            has ``engine``/``speaker`` only with more engines than espeak-ng): a function of the
            ``data`` section, appended to ``labels``. None: ``labels`` is the whole answer.
    """

    build: Builder
    labels: tuple[str, ...]
    speech: bool
    config_labels: Callable[[DataConfig], tuple[str, ...]] | None = None

    def labels_for(self, dc: DataConfig) -> list[str]:
        """The labels this source's items will carry under data section ``dc``.

        Args:
            dc: The recipe's ``data`` section.

        Returns:
            ``labels`` followed by ``config_labels(dc)``.
        """
        return [*self.labels, *(self.config_labels(dc) if self.config_labels else ())]


# The names are what `builtin:NAME` accepts; error messages list them sorted, so order here is free.
SOURCES: dict[str, Source] = {
    "digits": Source(build_digits, ("word", "digit", "voice", "accent", "speed", "pitch"), speech=True,
                     config_labels=digits_config_labels),
    "music": Source(build_music, ("kind", "program", "instrument"), speech=False),
    "notes": Source(build_notes, ("pitch", "velocity", "program", "instrument"), speech=False),
    "voices": Source(build_voices, ("speaker", "language", "engine", "gender", "voice"), speech=True),
}
