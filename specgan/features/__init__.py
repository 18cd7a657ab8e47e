"""Fast log-mel features (numba) and the on-disk feature cache (``features`` stage)."""

from specgan.features.extract import LogMelExtractor, logmel

__all__ = ["LogMelExtractor", "logmel"]
