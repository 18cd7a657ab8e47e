"""specgan: generate audio with GANs (SpecGAN-style WGAN-GP over log-mels + GAN vocoders)."""

__version__ = "0.1.0"
