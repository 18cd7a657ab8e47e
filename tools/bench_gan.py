"""Benchmark stage-one training: this trainer's generator iteration (n_critic critic steps + one
generator step) against a plain, straightforward WGAN-GP loop on the same models, same thread
count, same batch, in one interleaved run.

The plain loop is the textbook one: per critic step it runs G with autograd on, then three critic
forwards (real, fake, interpolates) and the penalty. This trainer runs G under no_grad for the
critic steps, one critic forward over [real; fake] (exact: the critic has no batch norm), and
optionally a lazy penalty (every k-th critic step, weighted by k). Measured here: generating the
fakes of all critic steps in one batched G forward gained nothing on CPU (0.36 vs 0.35 s), so the
trainer does not.

    python tools/bench_gan.py [--threads 1] [--size 64] [--d 16] [--batch 16] [--repeats 7]

Target (issue #4): >= 1.5x the plain loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=64, help="n_mels = frames")
    ap.add_argument("--d", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import numpy as np
    import torch

    from specgan.stage_one.losses import gradient_penalty
    from specgan.stage_one.config import SpecGANConfig
    from specgan.stage_one.data import MelDataset
    from specgan.stage_one.trainer import SpecGANTrainer
    from vocoder.mel import MelStats

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = args.size
    mels = [rng.normal(-5, 2, (n, n)).astype(np.float32) for _ in range(256)]
    labels = [i % args.classes for i in range(256)]
    data = MelDataset(mels, labels, MelStats(np.full(n, -5.0), np.full(n, 2.0)), n, float(np.log(1e-5)))  # the log floor of MelConfig's default

    def trainer(gp_every: int) -> SpecGANTrainer:
        cfg = SpecGANConfig(frames=n, generator={"name": "specgan", "d": args.d}, critic={"name": "specgan", "d": args.d},
                            batch_size=args.batch, gp_every=gp_every)
        return SpecGANTrainer(cfg, data, "/tmp/bench_gan_unused", seed=0)

    plain = trainer(1)
    cfg = plain.cfg
    z_dim = plain.G.z_dim

    def plain_iteration() -> None:
        G, D, gen = plain.G, plain.D, plain.sampler
        for _ in range(cfg.n_critic):
            real, y = data.batch(cfg.batch_size, gen)
            fake = G(torch.randn(cfg.batch_size, z_dim, generator=gen), y)
            d_real, d_fake = D(real, y).mean(), D(fake.detach(), y).mean()
            gp, _ = gradient_penalty(D, real, fake.detach(), y)
            loss = d_fake - d_real + cfg.gp_weight * gp
            plain.opt_d.zero_grad()
            loss.backward()
            plain.opt_d.step()
        y = data.y[torch.randint(len(data), (cfg.batch_size,), generator=gen)]
        loss_g = -D(G(torch.randn(cfg.batch_size, z_dim, generator=gen), y), y).mean()
        plain.opt_g.zero_grad()
        loss_g.backward()
        plain.opt_g.step()

    def step(tr: SpecGANTrainer):
        return lambda: tr.train_step(tr.next_batch())

    methods = {"plain WGAN-GP loop": plain_iteration, "specgan (exact GP)": step(trainer(1)),
               "specgan (lazy GP k=4)": step(trainer(4)), "specgan (lazy GP k=8)": step(trainer(8))}
    for fn in methods.values():
        fn()
    times = {k: [] for k in methods}
    for _ in range(args.repeats):
        for name, fn in methods.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    base = med["plain WGAN-GP loop"]
    print(f"one generator iteration = {cfg.n_critic} critic steps + 1 G step; {n}x{n}, d={args.d}, batch "
          f"{args.batch}, {args.classes} classes, {args.threads} thread(s), median of {args.repeats}; "
          f"torch {torch.__version__}")
    print(f"{'loop':<30} {'s/iteration':>12} {'speed-up':>9}")
    for name, t in med.items():
        print(f"{name:<30} {t:>12.3f} {base / t:>8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
