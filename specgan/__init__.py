"""specgan: generate audio with GANs (SpecGAN-style WGAN-GP over log-mels + GAN vocoders)."""

__version__ = "0.1.0"


def load_stage_one(path, device="cpu"):
    """Load a trained stage-one generator (see :mod:`specgan.sampling`)."""
    from specgan.sampling import load_stage_one as _load

    return _load(path, device)


def sample(model, n, labels=None, seed=0):
    """``n`` spectrograms from a stage-one model: (normalised, log-mel); see :mod:`specgan.sampling`."""
    from specgan.sampling import sample as _sample

    return _sample(model, n, labels, seed)
