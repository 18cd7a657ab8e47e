"""Run under torchrun by tests/test_specgan_train.py: a few data-parallel steps, then each rank
writes its weights so the test can compare them."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
from test_specgan_train import cfg, data  # noqa: E402

from specgan.train_gan import SpecGANTrainer  # noqa: E402

dist.init_process_group("gloo")
out = Path(sys.argv[1])
tr = SpecGANTrainer(cfg(steps=3), data(), out / "run", seed=5)
tr.fit()
torch.save({"G": tr.G.state_dict(), "D": tr.D.state_dict(), "sampler": tr.sampler.get_state()},
           out / f"rank{dist.get_rank()}.pt")
dist.destroy_process_group()
