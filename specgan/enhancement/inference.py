"""Enhancing audio with a trained enhancer and a vocoder, in bounded memory.

:func:`load_enhancer` reads a ``model.safetensors`` of kind ``enhancer`` through the one model-file
contract. :class:`Enhancement` pairs it with a vocoder of the same mel; :meth:`Enhancement.enhance`
takes a waveform at any rate and channel count (downmixed, resampled to the mel's rate), and
streams it: the noisy log-mel is computed ``chunk_frames`` at a time with ``context_frames`` of
context either side (:meth:`vocoder.mel.MelSpectrogram.frame_range`), the enhancer runs on each
chunk and keeps its centre, and :func:`vocoder.inference.vocode_stream` renders the frames with
cross-faded chunks — so a 10-minute file needs the memory of a few seconds of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from specgan.enhancement import model as _model  # noqa: F401  (fills the enhancer tables)
from specgan.stage_one.registry import ENHANCERS
from vocoder.checkpoint import load_model
from vocoder.mel import MelConfig, MelSpectrogram
from vocoder.registry import build

__all__ = ["Enhancement", "load_enhancer"]


def load_enhancer(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, MelConfig, int]:
    """(enhancer in eval mode, its mel, its training step) from a model file or a run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    g, info = load_model(path, lambda i: build(ENHANCERS, "enhancer", {"name": i.name, **i.kwargs}), "enhancer", device)
    if info.mel is None:
        from vocoder.checkpoint import ModelFileError

        raise ModelFileError(f"{path}: an enhancer without its mel config")
    return g.eval(), info.mel, info.step


@dataclass
class Enhancement:
    """An enhancer and the vocoder that renders its output (the same mel).

    Attributes:
        enhancer: mel → mel (:class:`~specgan.enhancement.model.MelUNet`).
        vocoder: A loaded vocoder generator (``vocoder.load`` / the recipe's).
        mel_cfg: Their mel.
        chunk_frames: Frames per enhancer call and per vocoder call.
        context_frames: Frames of context either side of an enhancer chunk (dropped after).
    """

    enhancer: torch.nn.Module
    vocoder: torch.nn.Module
    mel_cfg: MelConfig
    chunk_frames: int = 512
    context_frames: int = 32

    def __post_init__(self) -> None:
        self.vocoder.mel_cfg.check_compatible(self.mel_cfg, "vocoder", "enhancer")
        self.mel_fn = MelSpectrogram(self.mel_cfg)

    def frames(self, n: int) -> int:
        """Mel frames of an ``n``-sample waveform (centred STFT)."""
        return n // self.mel_cfg.hop_length + 1

    @torch.inference_mode()
    def enhanced_mel(self, y: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Enhanced log-mel frames ``start .. stop-1`` (n_mels, stop - start) of waveform ``y`` (1-D)."""
        total = self.frames(len(y))
        a, b = max(0, start - self.context_frames), min(total, stop + self.context_frames)
        noisy = self.mel_fn.frame_range(y, a, b)
        out = self.enhancer(noisy[None])[0]
        return out[:, start - a : start - a + (stop - start)]

    @torch.inference_mode()
    def stream(self, y: np.ndarray) -> Iterator[np.ndarray]:
        """The enhanced waveform of ``y`` (1-D float at the mel's rate), piece by piece."""
        from vocoder.inference import vocode_stream

        import warnings

        with warnings.catch_warnings():  # a read-only memory map (enhance_file): never written to
            warnings.simplefilter("ignore", UserWarning)
            yt = torch.from_numpy(np.asarray(y, dtype=np.float32))
        n = self.frames(len(yt))
        for piece in vocode_stream(self.vocoder, lambda a, b: self.enhanced_mel(yt, a, b)[None], n,
                                   chunk_frames=self.chunk_frames):
            yield piece[0].clamp(-1, 1).cpu().numpy()

    def enhance(self, y: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
        """A waveform (samples,) or (samples, channels) at ``sr`` → the enhanced mono waveform at the
        mel's rate, cut to the input's duration, and that rate.
        """
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 2:
            y = y.mean(axis=1)
        if y.ndim != 1:
            raise ValueError(f"expected a waveform (samples,) or (samples, channels), got shape {y.shape}")
        rate = self.mel_cfg.sample_rate
        if sr != rate:
            import soxr

            y = soxr.resample(y, sr, rate, quality="HQ").astype(np.float32)
        if not len(y):
            return y, rate
        out = np.concatenate(list(self.stream(y)))
        return out[: len(y)], rate

    def enhance_file(self, src: str | Path, dst: str | Path, block: int = 1 << 16) -> dict:
        """Enhance the audio file ``src`` into the WAV ``dst`` (16-bit, the mel's rate), in bounded
        memory: the input is decoded, downmixed and resampled block by block into a float32 file
        beside ``dst`` (memory-mapped, removed after), then streamed; ``dst`` appears only when
        complete (written under a temporary name, then renamed).

        Returns:
            {"seconds", "sample_rate_in", "channels_in", "sample_rate_out"}.
        """
        import os
        import tempfile

        import soundfile as sf
        import soxr

        src, dst = Path(src), Path(dst)
        info = sf.info(str(src))
        rate = self.mel_cfg.sample_rate
        dst.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.stem}.") as tmp:
            raw = Path(tmp) / "input.f32"
            n = 0
            stream = soxr.ResampleStream(info.samplerate, rate, 1, dtype="float32", quality="HQ") \
                if info.samplerate != rate else None
            with open(raw, "wb") as f:
                for chunk in sf.blocks(str(src), blocksize=block, dtype="float32", always_2d=True):
                    mono = np.ascontiguousarray(chunk.mean(axis=1), dtype=np.float32)
                    out = stream.resample_chunk(mono) if stream is not None else mono
                    f.write(out.tobytes())
                    n += len(out)
                if stream is not None:
                    out = stream.resample_chunk(np.zeros(0, np.float32), last=True)
                    f.write(out.astype(np.float32).tobytes())
                    n += len(out)
            if n == 0:
                raise ValueError(f"{src}: no audio samples")
            y = np.memmap(raw, dtype=np.float32, mode="r", shape=(n,))
            part = Path(tmp) / "output.wav"
            written = 0
            with sf.SoundFile(str(part), "w", rate, 1, subtype="PCM_16", format="WAV") as w:
                for piece in self.stream(y):
                    piece = piece[: n - written]
                    w.write(piece)
                    written += len(piece)
            del y
            os.replace(part, dst)
        return {"seconds": n / rate, "sample_rate_in": info.samplerate, "channels_in": info.channels,
                "sample_rate_out": rate}
