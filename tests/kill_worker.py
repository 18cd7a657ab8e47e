"""Trains stage one on toy data until killed (tests/test_reliability.py kills it with SIGKILL)."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_specgan_train import cfg, data  # noqa: E402

from specgan.train_gan import SpecGANTrainer  # noqa: E402

torch.set_num_threads(1)
SpecGANTrainer(cfg(steps=10**6, save_every=3), data(), sys.argv[1]).fit(progress=False, tensorboard=False)
