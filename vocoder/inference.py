"""Inference helpers: mel → waveform in batches, long inputs in overlapping chunks; loaded
generators made notebook-friendly (:func:`for_inference`)."""

from __future__ import annotations

import numpy as np
import torch

from vocoder.generators.base import Generator
from vocoder.mel import MelConfig

__all__ = ["for_inference", "vocode"]


@torch.inference_mode()
def vocode(generator: Generator, mel: torch.Tensor, mel_cfg: MelConfig | None = None, chunk_frames: int | None = None,
           overlap_frames: int = 16) -> torch.Tensor:
    """Run a generator on log-mels.

    Args:
        generator: Any registered generator.
        mel (Tensor): (n_mels, T) or (B, n_mels, T), log-mel in the generator's MelConfig.
        mel_cfg: The config the mel was made with; refused (naming the fields) if it differs
            from the generator's.
        chunk_frames: Vocode at most this many frames at a time (bounded memory for long
            inputs); chunks overlap by ``overlap_frames`` and are cross-faded linearly.

    Returns:
        Tensor: (T * hop,) or (B, T * hop) waveform.
    """
    if mel_cfg is not None:
        generator.mel_cfg.check_compatible(mel_cfg, "vocoder", "input mel")
    squeeze = mel.dim() == 2
    if squeeze:
        mel = mel[None]
    device = next((p.device for p in generator.parameters()), torch.device("cpu"))
    mel = mel.to(device)
    hop = generator.hop_length
    frames = mel.shape[-1]
    if chunk_frames is None or frames <= chunk_frames:
        y = generator(mel)[:, 0]
        return y[0] if squeeze else y
    if overlap_frames * 2 >= chunk_frames:
        raise ValueError(f"overlap_frames ({overlap_frames}) must be < chunk_frames / 2 ({chunk_frames})")
    out = torch.zeros(mel.shape[0], frames * hop, device=device)
    weight = torch.zeros(frames * hop, device=device)
    step = chunk_frames - overlap_frames
    ramp = torch.linspace(0, 1, overlap_frames * hop + 2, device=device)[1:-1]
    start = 0
    while start < frames:
        stop = min(start + chunk_frames, frames)
        y = generator(mel[..., start:stop])[:, 0]
        w = torch.ones(y.shape[-1], device=device)
        if start > 0:
            w[: ramp.numel()] = ramp
        if stop < frames:
            w[-ramp.numel() :] = torch.minimum(w[-ramp.numel() :], ramp.flip(0))
        out[:, start * hop : stop * hop] += y * w
        weight[start * hop : stop * hop] += w
        if stop == frames:
            break
        start += step
    y = out / weight.clamp(min=1e-8)
    return y[0] if squeeze else y


class _Inference:
    """Mixed into a loaded generator's class by :func:`for_inference` (the instance keeps its type
    for ``isinstance``, its weights, ``mel_cfg`` and ``checkpoint_meta``)."""

    @property
    def sample_rate(self) -> int:
        """Samples per second of the waveform this vocoder writes (its MelConfig's)."""
        return self.mel_cfg.sample_rate

    def forward(self, mel):
        """Log-mel → waveform, without autograd.

        Args:
            mel (Tensor or ndarray): (n_mels, T) or (B, n_mels, T), log-mel in ``self.mel_cfg``.

        Returns:
            Tensor: (T * hop,) for a 2-D input, (B, 1, T * hop) for a 3-D one; ``.numpy()`` works
            directly (no grad).
        """
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():  # export traces the plain network
            return super().forward(mel)
        if isinstance(mel, np.ndarray):
            mel = torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        squeeze = mel.dim() == 2
        with torch.inference_mode():
            y = super().forward((mel[None] if squeeze else mel).to(device, torch.float32))
        return y[0, 0] if squeeze else y


_CLASSES: dict[type, type] = {}


def for_inference(generator: Generator) -> Generator:
    """Put a generator in eval mode and make its forward notebook-friendly: no autograd
    (``torch.inference_mode``), numpy or tensor input, (n_mels, T) or (B, n_mels, T), on its own
    device; ``sample_rate`` added. Returns the same object (its class swapped for a subclass)."""
    cls = type(generator)
    if not isinstance(generator, _Inference):
        if cls not in _CLASSES:
            _CLASSES[cls] = type(cls.__name__, (_Inference, cls), {"__module__": cls.__module__,
                                                                   "__qualname__": cls.__qualname__})
        generator.__class__ = _CLASSES[cls]
    return generator.eval()
