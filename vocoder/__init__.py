"""vocoder: waveform <-> mel, GAN vocoders, critics and losses.

A standalone library: it never imports ``specgan``. It owns the mel definition
(:class:`vocoder.mel.MelConfig`) that its models consume.
"""

from vocoder.mel import MelConfig, MelConfigMismatch, MelSpectrogram, MelStats


def load(path, device="cpu", kwargs=None):
    """Load a trained generator from ``model.safetensors`` or its run folder, ready for inference.

    The result runs without autograd, takes a log-mel as a tensor or numpy array, (n_mels, T) →
    (T * hop,) or (B, n_mels, T) → (B, 1, T * hop), and has ``sample_rate`` and ``mel_cfg``::

        g = vocoder.load("pretrained/speech/vocoder.safetensors")
        wav = g(logmel).numpy()      # logmel: (n_mels, T) in g.mel_cfg

    ``kwargs`` overrides inference settings recorded in the file for this load (e.g.
    ``{"refine_iter": 16}`` for the ``phase`` design); one that changes a tensor is refused.
    """
    from pathlib import Path

    from vocoder.checkpoint import load as _load
    from vocoder.inference import for_inference

    path = Path(path)
    return for_inference(_load(path / "model.safetensors" if path.is_dir() else path, device, kwargs=kwargs))


__all__ = ["MelConfig", "MelConfigMismatch", "MelSpectrogram", "MelStats", "load"]
__version__ = "0.1.0"
