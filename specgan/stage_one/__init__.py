"""Stage one: a 2-D convolutional WGAN-GP that draws normalised log-mels from noise and labels.

Built like :mod:`vocoder`, one concept per module:

- :mod:`.config` — the ``specgan:`` recipe section (model specs verbatim, then the optimisation);
- :mod:`.registry` — stage-one generators and critics by name (``GENERATORS``, ``CRITICS``);
- :mod:`.base` — what every generator is (:class:`~.base.SpectrogramGenerator`: the ``prepare``
  hook, legacy tensor names);
- :mod:`.layers` — the convolutional grid and small blocks (residual, FiLM, F0 input);
- :mod:`.heads` — the composed class prior and harmonic head;
- :mod:`.generator`, :mod:`.critic` — the SpecGAN pair;
- :mod:`.harmonics` — the comb / F0 / ripple maths the head, the critic and the evaluation share;
- :mod:`.losses` — WGAN-GP, written out; :mod:`.augment` — DiffAugment for mels;
- :mod:`.data` — the training mels in memory; :mod:`.trainer` — the step function on the shared
  training skeleton (:mod:`vocoder.trainer`);
- :mod:`.model` — :func:`load` and :class:`StageOne`, whose ``sample`` is the one place that draws.

It imports from :mod:`vocoder` only the shared core (the mel, the model-file contract, the
training skeleton, the registry helpers), never a vocoder model.
"""

from specgan.stage_one import critic, generator  # noqa: F401  (fill the registries)
from specgan.stage_one.model import StageOne, load
from specgan.stage_one.registry import CRITICS, GENERATORS

__all__ = ["CRITICS", "GENERATORS", "StageOne", "load"]
