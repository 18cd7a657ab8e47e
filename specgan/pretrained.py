"""Shipping trained models: float16 copies of ``model.safetensors`` files, metadata unchanged.

Both loaders (:func:`specgan.load_stage_one`, :func:`vocoder.load`) build float32 modules and copy
the stored weights into them, so a float16 file loads as float32 with no other change; the
copy halves the size (what goes into ``pretrained/``). Nothing here runs code from the file:
safetensors holds tensors and a JSON string table only.
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["half_copy"]


def half_copy(src: str | Path, dst: str | Path) -> Path:
    """Write ``src`` (a safetensors checkpoint) to ``dst`` with floating tensors in float16.

    Refuses a weight that float16 cannot hold (|w| > 65504 would become inf), naming it.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found")
    with safe_open(str(src), "pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    out = {}
    for k, v in tensors.items():
        if v.is_floating_point():
            if v.abs().max() > torch.finfo(torch.float16).max:
                raise ValueError(f"{src}: tensor {k} exceeds the float16 range")
            v = v.half()
        out[k] = v.contiguous()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    save_file(out, str(tmp), metadata=meta)
    tmp.replace(dst)
    return dst
