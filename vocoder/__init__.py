"""vocoder: waveform <-> mel, GAN vocoders, critics and losses.

A standalone library: it never imports ``specgan``. It owns the mel definition
(:class:`vocoder.mel.MelConfig`) that its models consume.
"""

from vocoder.mel import MelConfig, MelConfigMismatch, MelSpectrogram, MelStats


def load(path, device="cpu"):
    """Load a trained generator from ``model.safetensors`` (see :mod:`vocoder.checkpoint`)."""
    from vocoder.checkpoint import load as _load

    return _load(path, device)


__all__ = ["MelConfig", "MelConfigMismatch", "MelSpectrogram", "MelStats", "load"]
__version__ = "0.1.0"
