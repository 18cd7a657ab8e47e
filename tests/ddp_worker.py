"""Run under torchrun by tests/test_skeleton.py: a few data-parallel steps of one stage (resuming
from the folder's state.pt when there is one); each rank records the batches it drew after the
(re)start and its final weights, so the test can compare ranks.

    torchrun --nproc_per_node 2 tests/ddp_worker.py OUT {specgan,vocoder} STEPS
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))

dist.init_process_group("gloo")
out, stage, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.set_num_threads(1)
if stage == "specgan":
    from test_specgan_train import cfg, data

    from specgan.stage_one.trainer import SpecGANTrainer

    tr = SpecGANTrainer(cfg(steps=steps, save_every=2), data(), out / "run", seed=5)
else:
    from test_skeleton import tiny_vocoder

    tr = tiny_vocoder(out / "clips", out / "run", steps=steps)
if (out / "run" / "state.pt").is_file():
    tr.resume()
drawn = []
draw = tr.next_batch


def recording():
    batch = draw()
    drawn.append(batch[0] if isinstance(batch, tuple) else batch)
    return batch


tr.next_batch = recording
tr.fit(progress=False, tensorboard=False)
torch.save({"modules": {k: m.state_dict() for k, m in tr.modules().items()}, "drawn": drawn, "step": tr.step},
           out / f"rank{dist.get_rank()}-{steps}.pt")
dist.destroy_process_group()
