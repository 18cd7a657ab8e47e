"""Encoding audio to ``.sgc`` files and decoding them, in bounded memory.

:func:`load_codec` reads a ``model.safetensors`` of kind ``codec``. :class:`CodecJob` pairs it with
a vocoder of the same mel:

- :meth:`CodecJob.encode` / :meth:`CodecJob.encode_file`: the waveform (any rate and channel
  count: downmixed, resampled to the mel's rate) → log-mel computed ``chunk_frames`` at a time with
  ``context_frames`` of context either side → the encoder and the first ``n_q`` quantisers → codes,
  bit-packed behind the header (:mod:`specgan.codec.bitstream`). The codes of a 10-minute file are
  a few hundred kilobytes; the audio and its mel are never whole in memory.
- :meth:`CodecJob.decode` / :meth:`CodecJob.decode_file`: the codes → the decoder, chunk by chunk
  with context → :func:`vocoder.inference.vocode_stream` → a 16-bit WAV at the mel's rate, cut to
  the original's length.

Neither file method writes over its input: the output is written under a temporary name beside it
and renamed when complete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from specgan.codec import model as _model  # noqa: F401  (fills the codec tables)
from specgan.codec.bitstream import BitPacker, CodecFileError, Header, read_codes
from specgan.codec.config import parse_bitrate
from specgan.stage_one.registry import CODECS
from specgan.mel_gan import load_registered
from vocoder.mel import MelConfig, MelSpectrogram

__all__ = ["CodecJob", "describe_bitrates", "load_codec", "recipe_job"]


def load_codec(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, MelConfig, int]:
    """(codec in eval mode, its mel, its training step) from a model file or a run folder."""
    return load_registered(path, CODECS, "codec", device)


def _fmt(bps: float) -> str:
    return f"{bps / 1000:.4g}k"


@dataclass
class CodecJob:
    """A codec and the vocoder that renders its decoded mels (the same mel).

    Attributes:
        codec: A loaded :class:`~specgan.codec.model.MelCodec`.
        vocoder: A loaded vocoder generator (None: encoding only).
        mel_cfg: Their mel.
        chunk_frames: Mel frames per encoder, decoder and vocoder call.
        context_frames: Mel frames of context either side of an encoder or decoder chunk (at least
            the codec's receptive field, so a streamed file's codes and mels are the whole file's).
    """

    codec: torch.nn.Module
    vocoder: torch.nn.Module | None
    mel_cfg: MelConfig
    chunk_frames: int = 512
    context_frames: int = 32

    def __post_init__(self) -> None:
        if self.vocoder is not None:
            self.vocoder.mel_cfg.check_compatible(self.mel_cfg, "vocoder", "codec")
        s = self.codec.stride
        self.chunk_frames = max(s, self.chunk_frames // s * s)  # whole code frames per chunk
        self.context_frames = -(-max(self.context_frames, self.codec.receptive_frames) // s) * s
        self.mel_fn = MelSpectrogram(self.mel_cfg)
        self.model_id = _model.codec_id(self.codec)

    # -- bitrates ---------------------------------------------------------------------------
    @property
    def code_rate(self) -> float:
        """Code frames per second."""
        return self.mel_cfg.sample_rate / self.mel_cfg.hop_length / self.codec.stride

    def bitrate(self, n_q: int) -> float:
        """Bits per second of the codes with ``n_q`` quantisers (the header's 40 bytes aside)."""
        return n_q * self.codec.bits * self.code_rate

    def bitrates(self) -> list[float]:
        return [self.bitrate(k) for k in range(1, self.codec.n_q + 1)]

    def quantisers_for(self, bitrate: str | float) -> int:
        """The most quantisers whose bitrate is at most ``bitrate`` (``"3k"``, 2400 ...); one line
        listing the model's bitrates when none fits or the request is above them all.
        """
        want = parse_bitrate(bitrate)
        rates = self.bitrates()
        listed = ", ".join(_fmt(r) for r in rates)
        if want < rates[0] * (1 - 1e-9):
            raise ValueError(f"bitrate {bitrate}: below this model's lowest, {_fmt(rates[0])} (it has {listed})")
        if want > rates[-1] * 1.05:
            raise ValueError(f"bitrate {bitrate}: above this model's highest, {_fmt(rates[-1])} (it has {listed})")
        return max(k for k in range(1, len(rates) + 1) if rates[k - 1] <= want * (1 + 1e-9))

    # -- encoding ---------------------------------------------------------------------------
    def frames(self, n: int) -> int:
        return n // self.mel_cfg.hop_length + 1

    @torch.inference_mode()
    def code_chunks(self, y: torch.Tensor, n_q: int) -> Iterator[np.ndarray]:
        """Codes (code frames, n_q) of a 1-D waveform at the mel's rate, chunk by chunk."""
        total, s, ctx = self.frames(len(y)), self.codec.stride, self.context_frames
        for a in range(0, total, self.chunk_frames):
            b = min(total, a + self.chunk_frames)
            lo, hi = max(0, a - ctx), min(total, b + ctx)
            codes = self.codec.encode(self.mel_fn.frame_range(y, lo, hi)[None], n_q)[0]
            yield codes[:, (a - lo) // s: (a - lo) // s + self.codec.code_frames(b - a)].T.cpu().numpy()

    def encode(self, y: np.ndarray, sr: int, bitrate: str | float) -> bytes:
        """A waveform (samples,) or (samples, channels) at ``sr`` → the bytes of an ``.sgc`` file."""
        y = np.asarray(y, dtype=np.float32)
        if y.ndim == 2:
            y = y.mean(axis=1)
        rate = self.mel_cfg.sample_rate
        if sr != rate:
            import soxr

            y = soxr.resample(y, sr, rate, quality="HQ").astype(np.float32)
        n_q = self.quantisers_for(bitrate)
        packer, parts = BitPacker(self.codec.bits), []
        for codes in self.code_chunks(torch.from_numpy(y), n_q):
            parts.append(packer.pack(codes))
        parts.append(packer.finish())
        return self._header(n_q, len(y), packer.crc).pack() + b"".join(parts)

    def _header(self, n_q: int, samples: int, crc: int) -> Header:
        return Header(n_q, self.codec.bits, self.codec.stride, self.model_id, self.mel_cfg.sample_rate, samples,
                      self.codec.code_frames(self.frames(samples)), int(round(self.bitrate(n_q))), crc)

    def encode_file(self, src: str | Path, dst: str | Path, bitrate: str | float, block: int = 1 << 16) -> dict:
        """Encode the audio file ``src`` into ``dst`` in bounded memory (``dst`` appears complete or not at all).

        Returns:
            {"seconds", "bytes", "bitrate_nominal", "bitrate_actual" (file bits / seconds), "n_q"}.
        """
        from specgan.audio import mono_memmap

        src, dst = Path(src), Path(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        n_q = self.quantisers_for(bitrate)
        with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.stem}.") as tmp:
            y, _ = mono_memmap(src, self.mel_cfg.sample_rate, Path(tmp) / "input.f32", block)
            import warnings

            with warnings.catch_warnings():  # a read-only memory map: never written to
                warnings.simplefilter("ignore", UserWarning)
                yt = torch.from_numpy(y)
            part = Path(tmp) / "out.sgc"
            packer = BitPacker(self.codec.bits)
            with open(part, "wb") as f:
                f.write(self._header(n_q, len(y), 0).pack())
                for codes in self.code_chunks(yt, n_q):
                    f.write(packer.pack(codes))
                f.write(packer.finish())
                f.seek(0)
                f.write(self._header(n_q, len(y), packer.crc).pack())
            seconds = len(y) / self.mel_cfg.sample_rate
            del yt, y
            os.replace(part, dst)
        size = dst.stat().st_size
        return {"seconds": seconds, "bytes": size, "bitrate_nominal": self.bitrate(n_q),
                "bitrate_actual": 8 * size / seconds, "n_q": n_q}

    # -- decoding ---------------------------------------------------------------------------
    def check(self, header: Header, path: str | Path) -> None:
        """Refuse a file this model cannot read (one line naming it and why)."""
        c = self.codec
        if header.model_id != self.model_id:
            raise CodecFileError(f"{path}: encoded by another codec model (id {header.model_id.hex()}); this model "
                                 f"is {self.model_id.hex()}: decode it with the model that encoded it")
        if (header.bits, header.stride, header.sample_rate) != (c.bits, c.stride, self.mel_cfg.sample_rate) \
                or header.n_q > c.n_q:
            raise CodecFileError(f"{path}: its header (n_q {header.n_q}, {header.bits} bits, stride {header.stride}, "
                                 f"{header.sample_rate} Hz) does not fit this model")
        if header.code_frames != c.code_frames(self.frames(header.samples)):
            raise CodecFileError(f"{path}: {header.code_frames} code frames for {header.samples} samples "
                                 "(a corrupt header)")

    @torch.inference_mode()
    def mel_of_codes(self, codes: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Decoded log-mel frames ``start .. stop-1`` (n_mels, stop - start) of codes (k, code frames)."""
        s, ctx = self.codec.stride, self.context_frames
        total = codes.shape[1] * s
        lo, hi = max(0, start - ctx) // s, -(-min(total, stop + ctx) // s)
        mel = self.codec.decode(codes[None, :, lo:hi])[0]
        return mel[:, start - lo * s: stop - lo * s]

    @torch.inference_mode()
    def stream(self, codes: np.ndarray, samples: int) -> Iterator[np.ndarray]:
        """The decoded waveform of codes (code frames, k), ``samples`` long, piece by piece."""
        from vocoder.inference import vocode_stream

        if self.vocoder is None:
            raise ValueError("decoding needs a vocoder")
        ct = torch.from_numpy(np.ascontiguousarray(codes.T))
        n, left = self.frames(samples), samples
        for piece in vocode_stream(self.vocoder, lambda a, b: self.mel_of_codes(ct, a, b)[None], n,
                                   chunk_frames=self.chunk_frames):
            piece = piece[0, :left].clamp(-1, 1).cpu().numpy()
            left -= len(piece)
            if len(piece):
                yield piece
            if left <= 0:
                return

    def decode(self, data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, int]:
        """The bytes of an ``.sgc`` file → (waveform, the mel's rate)."""
        import io

        header, codes = read_codes(io.BytesIO(data), name)
        self.check(header, name)
        return np.concatenate(list(self.stream(codes, header.samples)) or [np.zeros(0, np.float32)]), header.sample_rate

    def decode_file(self, src: str | Path, dst: str | Path) -> dict:
        """Decode the ``.sgc`` file ``src`` into the WAV ``dst`` (16-bit, the mel's rate), streamed."""
        import soundfile as sf

        src, dst = Path(src), Path(dst)
        with open(src, "rb") as f:
            header, codes = read_codes(f, src)
        self.check(header, src)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dst.parent, prefix=f".{dst.stem}.") as tmp:
            part = Path(tmp) / "out.wav"
            with sf.SoundFile(str(part), "w", header.sample_rate, 1, subtype="PCM_16", format="WAV") as w:
                for piece in self.stream(codes, header.samples):
                    w.write(piece)
            os.replace(part, dst)
        return {"seconds": header.samples / header.sample_rate, "n_q": header.n_q, "bitrate_nominal": header.bitrate}


def describe_bitrates(job: CodecJob) -> str:
    """``1.5k (4 quantisers), ...`` for messages and docs."""
    return ", ".join(f"{_fmt(r)} ({k})" for k, r in enumerate(job.bitrates(), 1))


def recipe_job(recipe, model: str | Path | None = None, vocoder: str | None = "auto", device="cpu"
               ) -> tuple[CodecJob, Path, int, str]:
    """(the job, the codec's file, its step, the vocoder described) for a recipe's codec (or ``model``)
    with the recipe's chunking; the recipe's vocoder (or ``vocoder``), none where ``vocoder`` is None
    (encoding only).
    """
    from specgan.checkpoints import codec_path, load_vocoder

    path = Path(model) if model else codec_path(recipe)
    g, mel, step = load_codec(path, device)
    voc, desc = load_vocoder(recipe, vocoder, mel, device) if vocoder is not None else (None, "")
    return CodecJob(g, voc, mel, recipe.codec.chunk_frames, recipe.codec.context_frames), path, step, desc
