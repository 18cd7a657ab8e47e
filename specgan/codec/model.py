"""The mel codec: a convolutional encoder, residual vector quantisation with quantiser dropout, a
decoder back to the log-mel, and a critic of decoded mels. The trained speech vocoder renders the
waveform, so the codec carries only what a log-mel carries (about 80 numbers 62.5 times a second at
16 kHz), and the GAN restores the detail the codes drop.

- :class:`MelCodec` (``codec.model: {name: rvq}``): the log-mel is standardised per band (the
  clean training speech's statistics, buffers saved with the weights); an encoder of dilated
  residual 1-D convolutions with one strided convolution (``stride`` mel frames per code frame)
  maps it to a latent; ``n_q`` residual quantisers of ``codebook_size`` codes each quantise the
  latent; a mirror decoder (a transposed convolution up) returns the standardised log-mel.
- Quantisers are DAC's factorised kind (Kumar et al. 2023): each projects its residual to
  ``code_dim`` dimensions, looks up the nearest code by cosine (both L2-normalised), and projects
  back. Trained with a codebook and a commitment term and a straight-through gradient; a code
  unused for a while is restarted on a recent encoder output (SoundStream's dead-code restart).
- Quantiser dropout (SoundStream, DAC): in training, each clip keeps only its first k quantisers
  (k uniform in 1..n_q) with probability ``dropout``, so one model decodes every bitrate
  k · log2(codebook_size) · frame rate / stride.
- :class:`MelPatchCritic` (``codec.critic: {name: patch}``): a 2-D convolutional critic of
  standardised log-mels returning a map of patch scores and its hidden features (for feature
  matching).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from specgan.mel_gan import BandStandardised
from specgan.stage_one.registry import CODEC_CRITICS, CODECS, register

__all__ = ["MelCodec", "MelPatchCritic", "ResidualVQ", "codec_id"]


class _ResUnit(nn.Module):
    """x + conv1x1(ELU(conv_k,dilated(ELU(x))))."""

    def __init__(self, c: int, dilation: int):
        super().__init__()
        self.a = nn.Conv1d(c, c, 3, padding=dilation, dilation=dilation)
        self.b = nn.Conv1d(c, c, 1)

    def forward(self, x):
        return x + self.b(F.elu(self.a(F.elu(x))))


def _stack(c: int, dilations) -> nn.Sequential:
    return nn.Sequential(*[_ResUnit(c, d) for d in dilations])


class _VQ(nn.Module):
    """One factorised quantiser: latent → code_dim → nearest of ``size`` codes (cosine) → latent."""

    def __init__(self, latent: int, size: int, code_dim: int):
        super().__init__()
        self.size = size
        self.proj_in = nn.Conv1d(latent, code_dim, 1)
        self.proj_out = nn.Conv1d(code_dim, latent, 1)
        self.codebook = nn.Embedding(size, code_dim)
        nn.init.normal_(self.codebook.weight)
        self.register_buffer("usage", torch.ones(size), persistent=False)  # EMA of each code's share
        self._recent: torch.Tensor | None = None

    def nearest(self, ze: torch.Tensor) -> torch.Tensor:
        """(B, code_dim, T) → the nearest codes' indices (B, T) by cosine."""
        enc = F.normalize(ze.transpose(1, 2).reshape(-1, ze.shape[1]), dim=1)
        cb = F.normalize(self.codebook.weight, dim=1)
        return (enc @ cb.T).argmax(1).reshape(ze.shape[0], ze.shape[2])

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        """Indices (B, T) → their codes projected back to the latent (B, latent, T)."""
        return self.proj_out(self.codebook(idx).transpose(1, 2))

    def forward(self, z: torch.Tensor):
        ze = self.proj_in(z)
        idx = self.nearest(ze)
        zq = self.codebook(idx).transpose(1, 2)
        commit = (ze - zq.detach()).pow(2).mean((1, 2))   # per clip
        book = (zq - ze.detach()).pow(2).mean((1, 2))
        if self.training:
            with torch.no_grad():
                counts = torch.bincount(idx.flatten(), minlength=self.size).float()
                self.usage.mul_(0.99).add_(0.01 * counts / counts.sum().clamp_min(1))
                flat = ze.detach().transpose(1, 2).reshape(-1, ze.shape[1])
                self._recent = flat[torch.randperm(len(flat), device=flat.device)[:1024]]
        zq = ze + (zq - ze).detach()  # straight through
        return self.proj_out(zq), idx, commit, book

    @torch.no_grad()
    def restart_dead(self, threshold: float) -> int:
        """Codes whose usage share fell under ``threshold`` / size take recent encoder outputs."""
        if self._recent is None:
            return 0
        dead = torch.nonzero(self.usage < threshold / self.size).flatten()
        if not len(dead):
            return 0
        pick = self._recent[torch.randint(len(self._recent), (len(dead),), device=self._recent.device)]
        self.codebook.weight[dead] = pick + 0.01 * torch.randn_like(pick) * pick.std()
        self.usage[dead] = 1.0 / self.size
        return len(dead)


class ResidualVQ(nn.Module):
    """``n_q`` quantisers in residual: each quantises what the ones before it left."""

    def __init__(self, latent: int, n_q: int, size: int, code_dim: int):
        super().__init__()
        self.layers = nn.ModuleList(_VQ(latent, size, code_dim) for _ in range(n_q))

    def forward(self, z: torch.Tensor, keep: torch.Tensor):
        """Z (B, latent, T), keep (B,) quantisers per clip → (quantised z, codes (B, n_q, T), commit, book)."""
        out = torch.zeros_like(z)
        residual = z
        codes, commit, book = [], z.new_zeros(()), z.new_zeros(())
        for i, q in enumerate(self.layers):
            zq, idx, c, b = q(residual)
            on = (keep > i).to(z.dtype)
            out = out + zq * on[:, None, None]
            residual = residual - zq
            codes.append(idx)
            commit = commit + (c * on).sum() / on.sum().clamp_min(1) * (on.sum() > 0)
            book = book + (b * on).sum() / on.sum().clamp_min(1) * (on.sum() > 0)
        return out, torch.stack(codes, 1), commit, book

    def encode(self, z: torch.Tensor, n_q: int) -> torch.Tensor:
        residual, codes = z, []
        for q in self.layers[:n_q]:
            idx = q.nearest(q.proj_in(residual))
            residual = residual - q.lookup(idx)
            codes.append(idx)
        return torch.stack(codes, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return sum(q.lookup(codes[:, i]) for i, q in enumerate(self.layers[: codes.shape[1]]))


@register(CODECS, "rvq")
class MelCodec(BandStandardised):
    """Log-mel (B, n_mels, T) ↔ codes (B, k, ceil(T / stride)) of ``codebook_size`` values each.

    Args:
        n_mels: Mel bands.
        channels: Width of the encoder and decoder.
        latent: The quantised latent's dimension.
        stride: Mel frames per code frame (1, 2 or 4).
        n_q: Quantisers (the most a bitstream uses).
        codebook_size: Codes per quantiser (a power of two: log2 of it is the bits per code).
        code_dim: Each quantiser's lookup dimension (factorised codes).
        dilations: Dilations of the residual units at each resolution.
        floor_log: The mel's log floor (no output below it).
    """

    def __init__(self, n_mels: int = 80, channels: int = 128, latent: int = 64, stride: int = 2, n_q: int = 12,
                 codebook_size: int = 1024, code_dim: int = 8, dilations: tuple = (1, 3, 9),
                 floor_log: float = -11.512925):
        super().__init__(n_mels)
        if stride not in (1, 2, 4):
            raise ValueError(f"stride: 1, 2 or 4, got {stride!r}")
        if codebook_size < 2 or codebook_size & (codebook_size - 1):
            raise ValueError(f"codebook_size: a power of two >= 2, got {codebook_size!r}")
        if not 1 <= n_q <= 255:
            raise ValueError(f"n_q: 1 .. 255, got {n_q!r}")
        self.n_mels, self.stride, self.n_q, self.codebook_size = n_mels, int(stride), int(n_q), int(codebook_size)
        self.bits = int(math.log2(codebook_size))
        d = sum(dilations)
        # mel frames either side that reach one output frame, through the encoder and through the
        # decoder (streaming gives the whole file's codes and mels with at least this much context)
        self.receptive_frames = max(3 + d + (stride + stride * d + stride if stride > 1 else d + 1),
                                    3 * stride + stride * d + (stride + d if stride > 1 else 0) + 3) + stride
        self.floor_log = float(floor_log)
        c, s, dil = channels, self.stride, tuple(dilations)
        down = [nn.ELU(), nn.Conv1d(c, c, 2 * s, s, padding=s // 2), _stack(c, dil)] if s > 1 else []
        self.encoder = nn.Sequential(nn.Conv1d(n_mels, c, 7, padding=3), _stack(c, dil), *down,
                                     nn.ELU(), nn.Conv1d(c, latent, 3, padding=1))
        self.rvq = ResidualVQ(latent, n_q, codebook_size, code_dim)
        up = [nn.ELU(), nn.ConvTranspose1d(c, c, 2 * s, s, padding=s // 2), _stack(c, dil)] if s > 1 else []
        self.decoder = nn.Sequential(nn.Conv1d(latent, c, 7, padding=3), _stack(c, dil), *up,
                                     nn.ELU(), nn.Conv1d(c, n_mels, 7, padding=3))

    def _out(self, s: torch.Tensor) -> torch.Tensor:
        return self.unstandardise(s).clamp_min(self.floor_log)

    def code_frames(self, frames: int) -> int:
        """Code frames of a log-mel of ``frames`` frames."""
        return -(-frames // self.stride)

    def _latent(self, logmel: torch.Tensor) -> torch.Tensor:
        if logmel.dim() != 3 or logmel.shape[1] != self.n_mels:
            raise ValueError(f"expected log-mels (B, {self.n_mels}, T), got {tuple(logmel.shape)}")
        pad = -logmel.shape[-1] % self.stride
        x = self.standardise(logmel)
        x = F.pad(x, (0, pad), mode="replicate") if pad else x
        return self.encoder(x)

    def forward(self, logmel: torch.Tensor, keep: torch.Tensor | None = None):
        """Training: (decoded log-mel (B, n_mels, T), codes, commitment, codebook loss); ``keep``
        (B,) quantisers per clip (default all).
        """
        t = logmel.shape[-1]
        z = self._latent(logmel)
        if keep is None:
            keep = torch.full((z.shape[0],), self.n_q, device=z.device)
        zq, codes, commit, book = self.rvq(z, keep)
        return self._out(self.decoder(zq)[..., :t]), codes, commit, book

    @torch.no_grad()
    def encode(self, logmel: torch.Tensor, n_q: int) -> torch.Tensor:
        """Log-mel (B, n_mels, T) → codes (B, n_q, ceil(T / stride)), int64."""
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q: 1 .. {self.n_q}, got {n_q}")
        return self.rvq.encode(self._latent(logmel), n_q)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, k, T') → log-mel (B, n_mels, T' · stride)."""
        return self._out(self.decoder(self.rvq.decode(codes)))

    @torch.no_grad()
    def restart_dead_codes(self, threshold: float = 0.02) -> int:
        return sum(q.restart_dead(threshold) for q in self.rvq.layers)


def codec_id(model: MelCodec) -> bytes:
    """8 bytes naming what a bitstream needs to be read back: the codebooks, their projections and the
    decoder, hashed at float16 (so a model and its float16 copy read each other's files).
    """
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if name.startswith(("rvq.", "decoder.", "mean", "std")):
            h.update(name.encode())
            h.update(np.ascontiguousarray(t.detach().cpu().to(torch.float16).numpy()).tobytes())
    h.update(f"{model.n_mels}/{model.stride}/{model.codebook_size}".encode())
    return h.digest()[:8]


@register(CODEC_CRITICS, "patch")
class MelPatchCritic(nn.Module):
    """Standardised log-mel (B, n_mels, T) → (patch scores (B, h, w), [hidden feature maps]).

    Args:
        n_mels: Mel bands (the critic is fully convolutional; kept for the file's record).
        d: Channels of the first layer; doubled per layer.
        layers: Stride-2 layers.
    """

    def __init__(self, n_mels: int = 80, d: int = 32, layers: int = 3):
        super().__init__()
        self.convs = nn.ModuleList()
        c = 1
        for i in range(int(layers)):
            self.convs.append(nn.Conv2d(c, d * 2**i, 4, 2, 1))
            c = d * 2**i
        self.out = nn.Conv2d(c, 1, 3, 1, 1)

    def forward(self, mel: torch.Tensor):
        x, feats = mel[:, None], []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            feats.append(x)
        return self.out(x)[:, 0], feats
