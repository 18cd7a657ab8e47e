"""vocoder: waveform <-> mel, GAN vocoders, critics and losses.

A standalone library: it never imports ``specgan``. It owns the mel definition
(:class:`vocoder.mel.MelConfig`) that its models consume.
"""

from vocoder.mel import MelConfig, MelConfigMismatch, MelSpectrogram, MelStats

__all__ = ["MelConfig", "MelConfigMismatch", "MelSpectrogram", "MelStats"]
__version__ = "0.1.0"
