"""Griffin-Lim: the no-training baseline with the same interface as the trained generators."""

from __future__ import annotations

import numpy as np
import torch
import torchaudio

from vocoder.generators.base import Generator
from vocoder.generators.phase import nnls_refine
from vocoder.mel import MelConfig, mel_filterbank, stft_window
from vocoder.registry import register_generator

__all__ = ["GriffinLim"]


@register_generator("griffinlim")
class GriffinLim(Generator):
    """Log-mel → linear magnitude (non-negative least squares: the pseudo-inverse, clamped, refined
    by multiplicative updates) → phase by torchaudio's fast Griffin-Lim (momentum 0.99).

    Args:
        mel_cfg: The mel consumed.
        n_iter: Griffin-Lim iterations (32 is the usual speed/quality point).
        momentum: Fast Griffin-Lim momentum (0 = plain Griffin-Lim).
    """

    trainable = False

    def __init__(self, mel_cfg: MelConfig, n_iter: int = 32, momentum: float = 0.99, nnls_iter: int = 30):
        super().__init__(mel_cfg)
        if n_iter < 1:
            raise ValueError(f"griffinlim: n_iter must be >= 1, got {n_iter}")
        self.config = dict(n_iter=n_iter, momentum=momentum, nnls_iter=nnls_iter)
        self.nnls_iter = nnls_iter
        fb = mel_filterbank(mel_cfg)
        self.register_buffer("fb", torch.from_numpy(fb.astype(np.float32)), persistent=False)
        self.register_buffer("inverse_fb", torch.from_numpy(np.linalg.pinv(fb).astype(np.float32)), persistent=False)
        window = torch.from_numpy(stft_window(mel_cfg)[: mel_cfg.n_fft].astype(np.float32))
        self.gl = torchaudio.transforms.GriffinLim(
            n_fft=mel_cfg.n_fft, win_length=mel_cfg.n_fft, hop_length=mel_cfg.hop_length, power=1.0, n_iter=n_iter,
            momentum=momentum, length=None, rand_init=False, window_fn=lambda n, **_: window.clone())

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel (B, n_mels, T) → waveform (B, 1, T * hop_length)."""
        self.check_input(mel)
        cfg = self.mel_cfg
        target = cfg.exp(mel.float())
        linear = nnls_refine(self.fb, target, torch.matmul(self.inverse_fb, target).clamp(min=1e-8), self.nnls_iter)
        if cfg.power != 1.0:
            linear = linear.pow(1.0 / cfg.power)
        # T centred frames describe (T - 1) * hop samples; pad the last hop to keep the
        # T * hop_length contract every generator follows.
        frames = mel.shape[-1]
        self.gl.length = (frames - 1) * cfg.hop_length
        y = self.gl(linear)
        y = torch.nn.functional.pad(y, (0, cfg.hop_length))
        return self.limit(y).unsqueeze(1)
