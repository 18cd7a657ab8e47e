"""Benchmark vocoder inference speed: every registered specgan generator beside the reference
implementations from the ``parallel_wavegan`` and ``vocos`` PyPI packages, in one run.

22.05 kHz, 80 mels, hop 256, random weights (speed does not depend on training), weight norm
folded, ``torch.inference_mode``; a 10 s mel; medians over repeats; x real time = audio seconds /
wall seconds. GFLOPs per second of audio from torch's FlopCounterMode (matmul/conv FLOPs).

The peers are installed only for this benchmark, into a separate folder on ``sys.path``:

    python tools/bench_vocoders.py --install      # pip --no-deps into .bench-deps/ (once)
    python tools/bench_vocoders.py [--threads 1,2] [--repeats 5]

Compatibility shims, both for the old packages and neither affecting the timed code:
parallel_wavegan 0.6.1 imports ``scipy.signal.kaiser`` (now ``scipy.signal.windows.kaiser``);
vocos' package ``__init__`` imports its hub downloader, so only ``vocos.models`` and
``vocos.heads`` are imported.

Target (issues #3, #12): the recipes' vocoder (``phase``; ``istft`` before it) >= 2x Vocos x real
time on one thread.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The ablation's designs beside each generator's defaults (tools/ablate_vocoders.py)
_PGHI = {"name": "phase", "phase_head": "pghi", "n_fft": 512, "upsample": 4, "upsampler": "linear", "amp_layers": 3,
         "nnls_iter": 30}
VARIANTS = {
    "specgan phase (pghi head, 512/64)": _PGHI,
    "specgan phase (pghi + 16 GL)": {**_PGHI, "refine_iter": 16},
    "specgan phase (pghi frames + 16 GL, voices.yaml, shipped)": {**_PGHI, "refine_iter": 16, "pghi_mode": "frames"},
    "specgan phase (phase-only, integrate)": {"name": "phase", "amp_residual": False, "upsample": 1,
                                              "phase_head": "integrate", "nnls_iter": 30},
}
PEERS = ["vocos==0.1.0", "parallel_wavegan==0.6.1", "h5py", "kaldiio"]


def install(deps: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(deps),
           *PEERS]
    print("installing peers:", " ".join(cmd))
    subprocess.run(cmd, check=True)


def load_peers(deps: Path) -> dict:
    """Build the peer generators (or explain why they are missing)."""
    sys.path.insert(0, str(deps))
    import scipy.signal
    import scipy.signal.windows
    import torch

    if not hasattr(scipy.signal, "kaiser"):
        scipy.signal.kaiser = scipy.signal.windows.kaiser
    peers = {}
    try:
        import parallel_wavegan.models as pwg
        from parallel_wavegan.layers import PQMF
    except ImportError as e:
        print(f"parallel_wavegan not available ({e}); run with --install")
    else:
        peers["PWG HiFiGAN V1"] = pwg.HiFiGANGenerator(in_channels=80, channels=512)
        peers["PWG HiFiGAN V2"] = pwg.HiFiGANGenerator(in_channels=80, channels=128)
        peers["PWG MelGAN"] = pwg.MelGANGenerator(in_channels=80, channels=512)

        class MultiBand(torch.nn.Module):
            # Multi-band MelGAN as in parallel_wavegan's recipe: 4 bands at hop 64, PQMF synthesis.
            def __init__(self):
                super().__init__()
                self.g = pwg.MelGANGenerator(in_channels=80, out_channels=4, channels=384, upsample_scales=[4, 4, 4],
                                             stacks=4)
                self.pqmf = PQMF(4)

            def forward(self, c):
                return self.pqmf.synthesis(self.g(c))

            def remove_weight_norm(self):
                self.g.remove_weight_norm()

        peers["PWG Multi-band MelGAN"] = MultiBand()
    spec = importlib.util.find_spec("vocos", [str(deps)]) if (deps / "vocos").is_dir() else None
    if spec is None:
        print("vocos not available; run with --install")
    else:
        pkg = types.ModuleType("vocos")
        pkg.__path__ = [str(deps / "vocos")]
        sys.modules["vocos"] = pkg
        from vocos.heads import ISTFTHead
        from vocos.models import VocosBackbone

        class Vocos(torch.nn.Module):
            # The published 22.05 kHz mel configuration: dim 512, 1536, 8 layers, n_fft 1024, hop 256.
            def __init__(self):
                super().__init__()
                self.backbone = VocosBackbone(80, 512, 1536, 8)
                self.head = ISTFTHead(512, 1024, 256)

            def forward(self, mel):
                return self.head(self.backbone(mel))

        peers["vocos (Vocos)"] = Vocos()
    return peers


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--deps", type=Path, default=ROOT / ".bench-deps")
    ap.add_argument("--install", action="store_true", help="install the peers into --deps first")
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    os.environ.setdefault("OMP_NUM_THREADS", str(max(threads)))
    if args.install:
        install(args.deps)

    import numpy as np
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vocoder.mel import MelConfig
    from vocoder.registry import build_generator, generator_names

    mel_cfg = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, n_mels=80)
    torch.manual_seed(0)
    models = {}
    for name in generator_names():
        presets = ["v1", "v2", "v3"] if name == "hifigan" else [None]
        for preset in presets:
            spec = {"name": name, **({"preset": preset} if preset else {})}
            models[f"specgan {name}{' ' + preset.upper() if preset else ''}"] = build_generator(spec, mel_cfg)
    for label, spec in VARIANTS.items():
        models[label] = build_generator(spec, mel_cfg)
    models.update(load_peers(args.deps))
    for m in models.values():
        m.eval()
        if hasattr(m, "remove_weight_norm"):
            m.remove_weight_norm()

    frames = int(args.seconds * mel_cfg.sample_rate / mel_cfg.hop_length)
    audio_seconds = frames * mel_cfg.hop_length / mel_cfg.sample_rate
    mel = torch.randn(1, 80, frames)
    one_second = torch.randn(1, 80, int(mel_cfg.sample_rate / mel_cfg.hop_length))
    rows = {}
    with torch.inference_mode():
        for name, m in models.items():
            counter = FlopCounterMode(display=False)
            with counter:
                m(one_second)
            params = sum(p.numel() for p in m.parameters()) / 1e6
            rows[name] = {"params": params, "gflops": counter.get_total_flops() / 1e9}
        for n in threads:
            torch.set_num_threads(n)
            for m in models.values():  # warm-up at this thread count
                m(mel[..., :64])
            times = {name: [] for name in models}
            for _ in range(args.repeats):  # interleaved: machine drift hits every model alike
                for name, m in models.items():
                    t = time.perf_counter()
                    m(mel)
                    times[name].append(time.perf_counter() - t)
            for name in models:
                rows[name][f"rt{n}"] = audio_seconds / float(np.median(times[name]))

    print(f"vocoder inference, 22.05 kHz, 80 mels, hop 256, {audio_seconds:.1f} s of audio, random weights, "
          f"median of {args.repeats}; torch {torch.__version__}")
    head = f"{'model':<40} {'params (M)':>10} {'GFLOPs/s':>9}" + "".join(f" {f'xRT {n}T':>9}" for n in threads)
    print(head)
    for name, r in rows.items():
        print(f"{name:<40} {r['params']:>10.2f} {r['gflops']:>9.2f}" + "".join(f" {r[f'rt{n}']:>9.1f}" for n in threads))
    if "vocos (Vocos)" in rows:
        for ours in ("specgan phase", "specgan istft", *VARIANTS):  # the recipes' design first
            ratio = rows[ours]["rt1"] / rows["vocos (Vocos)"]["rt1"]
            print(f"\n{ours.removeprefix('specgan ')} / Vocos x real time on 1 thread: {ratio:.2f}x (target >= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
