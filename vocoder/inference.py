"""Inference helpers: mel → waveform in batches, long inputs in overlapping chunks; loaded
generators made notebook-friendly (:func:`for_inference`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from vocoder.generators.base import Generator
from vocoder.mel import MelConfig

__all__ = ["MIN_FRAMES", "for_inference", "vocode", "vocode_stream"]

# Inputs shorter than this are padded with silence and the output cropped: every registered
# generator accepts 8 frames (Griffin-Lim's centred STFT needs (T - 1)·hop > n_fft / 2).
MIN_FRAMES = 8
OVERLAP_FRAMES = 16  # frames two consecutive chunks share (cross-faded)


@torch.inference_mode()
def vocode(generator: Generator, mel: torch.Tensor, mel_cfg: MelConfig | None = None, chunk_frames: int | None = None,
           overlap_frames: int = OVERLAP_FRAMES) -> torch.Tensor:
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
    frames = mel.shape[-1]
    if (chunk_frames is None or frames <= chunk_frames) and frames >= MIN_FRAMES:
        y = generator(mel)[:, 0]
    else:
        y = torch.cat(list(vocode_stream(generator, lambda a, b: mel[..., a:b], frames, chunk_frames or frames,
                                         overlap_frames)), dim=-1)
    return y[0] if squeeze else y


def chunk_spans(frames: int, chunk_frames: int, overlap_frames: int = OVERLAP_FRAMES) -> Iterator[tuple[int, int]]:
    """The (start, stop) frames of each chunk :func:`vocode_stream` vocodes: ``chunk_frames`` at a
    time, consecutive chunks sharing ``overlap_frames``, the last ending at ``frames``.
    """
    if overlap_frames * 2 >= chunk_frames:
        raise ValueError(f"overlap_frames ({overlap_frames}) must be < chunk_frames / 2 ({chunk_frames})")
    start = 0
    while True:
        stop = min(start + chunk_frames, frames)
        yield start, stop
        if stop == frames:
            return
        start += chunk_frames - overlap_frames


@torch.inference_mode()
def vocode_stream(generator: Generator, mel_of: Callable[[int, int], torch.Tensor], frames: int,
                  chunk_frames: int = 512, overlap_frames: int = OVERLAP_FRAMES) -> Iterator[torch.Tensor]:
    """Vocode ``frames`` mel frames in chunks, yielding the waveform piece by piece (in order), so
    neither the whole mel nor the whole waveform need be in memory.

    Args:
        generator: Any registered generator.
        mel_of: ``mel_of(a, b)`` → (B, n_mels, b - a) log-mel frames a .. b-1 (e.g. read from a
            memory-mapped file or computed from the audio around them).
        frames: Total frames.
        chunk_frames: Frames per generator call; consecutive chunks overlap by ``overlap_frames``
            and are cross-faded linearly (the two ramps sum to one).

    Yields:
        Tensor: (B, samples) pieces; concatenated they are (B, frames * hop).
    """
    hop = generator.hop_length
    device = next((p.device for p in generator.parameters()), torch.device("cpu"))
    if frames < 1:
        raise ValueError("a log-mel of 0 frames has nothing to vocode")
    if frames < MIN_FRAMES:  # shorter than some generators' STFT padding: pad with silence, crop after
        mel = mel_of(0, frames)
        mel = mel[None] if mel.dim() == 2 else mel
        silence = generator.mel_cfg.log(torch.tensor(generator.mel_cfg.floor, dtype=mel.dtype)).item()
        padded = torch.nn.functional.pad(mel, (0, MIN_FRAMES - frames), value=silence)
        yield generator(padded.to(device))[:, 0, : frames * hop]
        return
    if frames <= chunk_frames:
        mel = mel_of(0, frames)
        yield generator((mel[None] if mel.dim() == 2 else mel).to(device))[:, 0]
        return
    tail = None  # the previous chunk's last overlap, already weighted by its falling ramp
    for start, stop in chunk_spans(frames, chunk_frames, overlap_frames):
        mel = mel_of(start, stop)
        y = generator((mel[None] if mel.dim() == 2 else mel).to(device))[:, 0]
        n = overlap_frames * hop
        ramp = torch.linspace(0, 1, n + 2, device=y.device)[1:-1]
        if tail is not None:
            y = y.clone()
            y[:, :n] = y[:, :n] * ramp + tail
        if stop == frames:
            yield y
            return
        tail = y[:, -n:] * ramp.flip(0)
        yield y[:, :-n]


class _Inference:
    """Mixed into a loaded generator's class by :func:`for_inference` (the instance keeps its type
    for ``isinstance``, its weights, ``mel_cfg`` and ``checkpoint_meta``).
    """

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
    device; ``sample_rate`` added. Returns the same object (its class swapped for a subclass).
    """
    cls = type(generator)
    if not isinstance(generator, _Inference):
        if cls not in _CLASSES:
            _CLASSES[cls] = type(cls.__name__, (_Inference, cls), {"__module__": cls.__module__,
                                                                   "__qualname__": cls.__qualname__})
        generator.__class__ = _CLASSES[cls]
    return generator.eval()
