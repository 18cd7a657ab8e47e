"""Model files of the project, found and loaded in one place: stage-one models (the work dir's
own or a recipe's ``pretrained:``), vocoders, and float16 copies for shipping. Every file goes
through the one checkpoint contract of :mod:`vocoder.checkpoint`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vocoder.checkpoint import ModelFileError
from vocoder.mel import MelConfig, MelStats

__all__ = ["ModelFileError", "StageOne", "half_copy", "load_stage_one"]


@dataclass
class StageOne:
    """A loaded EMA generator with what it needs to produce vocoder-ready log-mels."""

    generator: torch.nn.Module   # the stage-one generator (specgan.models)
    mel_cfg: MelConfig
    stats: MelStats
    vocab: list
    step: int

    def label_index(self, label) -> int:
        """A label (``"seven"``, ``60``, or its string form) → the generator's class index."""
        for i, v in enumerate(self.vocab):
            if v == label or str(v) == str(label):
                return i
        raise ValueError(f"unknown label {label!r}; this model knows: {', '.join(map(str, self.vocab))}")


def load_stage_one(path: str | Path, device: str | torch.device = "cpu") -> StageOne:
    """Load a stage-one ``model.safetensors`` (the checkpoint contract: header checked before
    anything is built; every problem one line naming the file)."""
    from specgan.models import GENERATORS
    from vocoder.checkpoint import load_model
    from vocoder.registry import build

    def _build(info):
        return build(GENERATORS, "stage-one generator", {"name": info.name, **info.kwargs})

    g, info = load_model(path, _build, "stage-one", device)
    if info.mel is None or info.stats is None:
        raise ModelFileError(f"{path}: a stage-one model without its mel config or statistics")
    return StageOne(g, info.mel, MelStats.from_dict(info.stats), list(info.extra.get("vocab", [])), info.step)


def half_copy(src: str | Path, dst: str | Path, kwargs: dict | None = None) -> Path:
    """Write ``src`` (a model file) to ``dst`` with floating tensors in float16, metadata in the
    current contract's layout (a version-1 file is upgraded on the way: the one-time conversion
    of the shipped models). Refuses a weight that float16 cannot hold (|w| > 65504), naming it.

    ``kwargs`` overrides constructor arguments that change no tensor (an inference-time switch such
    as the ``phase`` vocoder's ``pghi_mode``); the copy must still load (:func:`vocoder.load` checks
    every shape), else nothing is written.
    """
    import json

    from safetensors.torch import load_file, save_file

    from vocoder.checkpoint import FORMAT, ModelFile, atomic_write, read_header

    src, dst = Path(src), Path(dst)
    meta, _ = read_header(src)
    info = ModelFile(src, meta)
    tensors = load_file(str(src))
    out = {}
    for k, v in tensors.items():
        if v.is_floating_point():
            if v.abs().max() > torch.finfo(torch.float16).max:
                raise ValueError(f"{src}: tensor {k} exceeds the float16 range")
            v = v.half()
        out[k] = v.contiguous()
    new = {"format": FORMAT, "kind": info.kind, "version": info.version, "name": info.name,
           "kwargs": json.dumps({**info.kwargs, **(kwargs or {})}), "step": str(info.step),
           "extra": json.dumps(info.extra)}
    if info.mel is not None:
        new["mel"] = json.dumps(info.mel.to_dict())
    if info.stats is not None:
        new["stats"] = json.dumps(info.stats)
    if info.shape is not None:
        new["shape"] = json.dumps(info.shape)
        new["fingerprint"] = info.fingerprint or ""
    if not kwargs:
        return atomic_write(dst, lambda tmp: save_file(out, str(tmp), metadata=new))

    def write_checked(tmp):
        save_file(out, str(tmp), metadata=new)
        from vocoder.checkpoint import load

        try:  # the new arguments must still build exactly these tensors
            (load if info.kind == "vocoder" else load_stage_one)(tmp)
        except ModelFileError as e:
            reason = str(e).split(": ", 1)[-1]
            raise ModelFileError(f"{src}: {kwargs} would change the model, not only how it runs ({reason})") from None

    return atomic_write(dst, write_checked)
