"""Enhancing audio with a trained enhancer and a vocoder, in bounded memory.

:func:`load_enhancer` reads a ``model.safetensors`` of kind ``enhancer`` through the one model-file
contract. :class:`Enhancement` pairs it with a vocoder of the same mel; :meth:`Enhancement.enhance`
takes a waveform at any rate and channel count (downmixed, resampled to the mel's rate), and
streams it: the noisy log-mel is computed ``chunk_frames`` at a time with ``context_frames`` of
context either side (:meth:`vocoder.mel.MelSpectrogram.frame_range`), the enhancer runs on each
chunk and keeps its centre, and :func:`vocoder.inference.vocode_stream` renders the frames with
cross-faded chunks — so a 10-minute file needs the memory of a few seconds of it.

Two ways to the waveform (``enhance.synthesis``), weighed in docs/enhance.md:

- ``vocoder``: the trained vocoder renders the enhanced mel (VoiceFixer's analysis/synthesis split):
  the output is the vocoder's speech, as clean as the mel and as faithful as the vocoder;
- ``gain``: the enhanced mel over the noisy mel is a gain per mel band and frame, spread to the STFT
  bins through the filterbank (each bin takes the weighted mean log-gain of the bands that cover it,
  as RNNoise spreads its band gains), applied to the noisy STFT and inverted with its own phase by
  overlap-add: no vocoder, the speech's own fine structure and phase; the noise's phase stays where
  the gain lets it through.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from specgan.enhancement import model as _model  # noqa: F401  (fills the enhancer tables)
from specgan.stage_one.registry import ENHANCERS
from specgan.mel_gan import load_registered
from vocoder.mel import MelConfig, MelSpectrogram

__all__ = ["Enhancement", "load_enhancer", "recipe_job"]


def load_enhancer(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, MelConfig, int]:
    """(enhancer in eval mode, its mel, its training step) from a model file or a run folder."""
    return load_registered(path, ENHANCERS, "enhancer", device)


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
    vocoder: torch.nn.Module | None
    mel_cfg: MelConfig
    chunk_frames: int = 512
    context_frames: int = 32
    synthesis: str = "vocoder"
    max_gain: float = 1.0
    min_gain: float = 0.0

    def __post_init__(self) -> None:
        from specgan.enhancement.config import SYNTHESES

        if self.synthesis not in SYNTHESES:
            raise ValueError(f"synthesis: one of {', '.join(SYNTHESES)}, got {self.synthesis!r}")
        if self.synthesis == "vocoder":
            if self.vocoder is None:
                raise ValueError("synthesis 'vocoder' needs a vocoder")
            self.vocoder.mel_cfg.check_compatible(self.mel_cfg, "vocoder", "enhancer")
        elif not self.mel_cfg.center:
            raise ValueError("synthesis 'gain' needs a centred STFT (mel center: true)")
        self.mel_fn = MelSpectrogram(self.mel_cfg)
        # bin log-gain = spread @ band log-gain: each STFT bin's weighted mean over the bands covering
        # it; bins no band covers (below fmin, above fmax) take the nearest covered bin's row
        fb = self.mel_fn.fb.double()
        cover = fb.sum(0)
        spread = (fb / cover.clamp_min(1e-12)).T.contiguous()
        idx = torch.nonzero(cover > 0).flatten()
        if len(idx):
            spread[: idx[0]] = spread[idx[0]]
            spread[idx[-1] + 1:] = spread[idx[-1]]
        self._spread = spread.float()
        self._scale = self.mel_cfg.log_scale / self.mel_cfg.power  # log-mel units → ln |X|

    @classmethod
    def for_config(cls, enhancer: torch.nn.Module, vocoder: torch.nn.Module | None, mel_cfg: MelConfig, ec,
                   synthesis: str | None = None) -> "Enhancement":
        """The job an ``enhance:`` section describes (its chunking and synthesis, or ``synthesis``)."""
        return cls(enhancer, vocoder, mel_cfg, chunk_frames=ec.chunk_frames, context_frames=ec.context_frames,
                   synthesis=synthesis or ec.synthesis, max_gain=ec.max_gain, min_gain=ec.min_gain)

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
    def gained_frames(self, y: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """The noisy STFT frames ``start .. stop-1`` of ``y`` (1-D) times the enhancer's gains
        (n_fft // 2 + 1, stop - start): the ``gain`` synthesis before its inverse STFT.
        """
        total = self.frames(len(y))
        a, b = max(0, start - self.context_frames), min(total, stop + self.context_frames)
        spec = self.mel_fn.stft_range(y, a, b)
        if spec is None:
            raise ValueError(f"a signal of {len(y)} samples is too short for the STFT's reflect padding "
                             f"({self.mel_cfg.n_fft // 2})")
        noisy = self.mel_fn.from_spectrum(spec[None])
        out = self.enhancer(noisy)
        band = ((out - noisy)[0, :, start - a: stop - a] * self._scale).clamp(
            min=float(np.log(self.min_gain)) if self.min_gain > 0 else None, max=float(np.log(self.max_gain)))
        return spec[:, start - a: stop - a] * torch.exp(self._spread @ band)

    def _gain_stream(self, yt: torch.Tensor) -> Iterator[np.ndarray]:
        """Overlap-add of the gained frames, chunk by chunk (the ``gain`` synthesis)."""
        cfg = self.mel_cfg
        n_fft, hop, n = cfg.n_fft, cfg.hop_length, len(yt)
        total = self.frames(n)
        w = self.mel_fn.window.float()
        tail = torch.zeros(n_fft - hop)  # the overlap not yet complete: signal, and the window² sum
        tail_env = torch.zeros(n_fft - hop)
        skip, left = n_fft // 2, n  # the centred framing's padding in front, then the input's samples
        for a in range(0, total, self.chunk_frames):
            b = min(total, a + self.chunk_frames)
            frames = torch.fft.irfft(self.gained_frames(yt, a, b), n=n_fft, dim=0) * w[:, None]
            length = (b - a - 1) * hop + n_fft
            fold = dict(output_size=(1, length), kernel_size=(1, n_fft), stride=(1, hop))
            buf = torch.nn.functional.fold(frames[None], **fold).flatten()
            env = torch.nn.functional.fold((w**2)[:, None].expand(n_fft, b - a)[None].contiguous(), **fold).flatten()
            buf[: len(tail)] += tail
            env[: len(tail_env)] += tail_env
            done = (b - a) * hop if b < total else length
            piece = (buf[:done] / env[:done].clamp_min(1e-8))
            tail, tail_env = buf[done:].clone(), env[done:].clone()
            piece = piece[skip:]
            skip = max(0, skip - done)
            piece = piece[:left]
            left -= len(piece)
            if len(piece):
                yield piece.clamp(-1, 1).numpy()
            if left <= 0:
                return

    @torch.inference_mode()
    def stream(self, y: np.ndarray) -> Iterator[np.ndarray]:
        """The enhanced waveform of ``y`` (1-D float at the mel's rate), piece by piece."""
        from vocoder.inference import vocode_stream

        import warnings

        with warnings.catch_warnings():  # a read-only memory map (enhance_file): never written to
            warnings.simplefilter("ignore", UserWarning)
            yt = torch.from_numpy(np.asarray(y, dtype=np.float32))
        if self.synthesis == "gain":
            yield from self._gain_stream(yt)
            return
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

        from specgan.audio import mono_memmap

        src, dst = Path(src), Path(dst)
        rate = self.mel_cfg.sample_rate
        dst.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.stem}.") as tmp:
            y, info = mono_memmap(src, rate, Path(tmp) / "input.f32", block)
            n = len(y)
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


def recipe_job(recipe, model: str | Path | None = None, vocoder: str = "auto", device="cpu",
               synthesis: str | None = None) -> tuple[Enhancement, Path, int, str]:
    """(the job, the enhancer's file, its step, the synthesis described) for a recipe's enhancer (or
    ``model``): the recipe's vocoder (or ``vocoder``) where the synthesis is ``vocoder``, none where it
    is ``gain``.
    """
    from specgan.checkpoints import enhancer_path, load_vocoder

    ec = recipe.enhance
    synthesis = synthesis or ec.synthesis
    path = Path(model) if model else enhancer_path(recipe)
    g, mel, step = load_enhancer(path, device)
    if synthesis == "gain":
        voc, desc = None, "none: the enhancer's gains on the noisy STFT, its phase (synthesis: gain)"
    else:
        voc, desc = load_vocoder(recipe, vocoder, mel, device)
    return Enhancement.for_config(g, voc, mel, ec, synthesis), path, step, desc
