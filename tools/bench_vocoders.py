"""Benchmark vocoder inference: the shipped vocoders beside Griffin-Lim and the field's peers, in one run.

Default table (issue 27): on the shipped models' own mel (16 kHz, hop 256; 64 mels for speech,
128 for music), from real audio, every vocoder vocodes the *same* mel:

- the shipped speech vocoder (``pretrained/speech/vocoder.safetensors``) and the shipped music
  vocoder (``pretrained/music/vocoder.safetensors``), with their trained weights;
- ``griffinlim`` (32 fast iterations, torchaudio's implementation, NNLS magnitude) on each mel;
- the peers at the same mel: Vocos (the published 512/1536 x 8 backbone + iSTFT head, from the
  ``vocos`` package) and HiFi-GAN V1 / V2 (``parallel_wavegan``'s implementation), random weights
  (speed does not depend on training);

x real time (audio seconds / wall seconds, median of ``--repeats``, interleaved) at 1 and 2 threads
on ``--seconds`` of audio (10 and 60 by default), the ratio of each shipped vocoder to Griffin-Lim on
its mel, and the peak memory a 60 s input adds (each vocoder in a fresh process: peak RSS while
vocoding minus RSS before it). Every vocoder vocodes as ``specgan vocode`` runs a long input: in
chunks of 512 frames (8.2 s), consecutive chunks sharing 16 (``--chunk-frames 0``: the whole mel in
one call, which costs the heap-based PGHI and Griffin-Lim more per second on long inputs).

The speech input is real speech: the it_IT_m_Carlo prompts that tools/setup.sh installs
(``asterisk-core-sounds-it-g722``, decoded with ffmpeg), concatenated; without them a synthetic
harmonic glide stands in (printed). The music input is synthetic notes (harmonic partials with
decays, a new note every 0.5 s). PGHI's time depends on the magnitude (bins under its floor are
skipped), so random mels would understate it.

    python tools/bench_vocoders.py --install     # the peers, pip --no-deps into .bench-deps/ (once)
    python tools/bench_vocoders.py               # the table above
    python tools/bench_vocoders.py --registry    # every registered generator at 22.05 kHz, random weights
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PEERS = ["vocos==0.1.0", "parallel_wavegan==0.6.1", "h5py", "kaldiio"]
CARLO = Path("/usr/share/asterisk/sounds/it_IT_m_Carlo")
SHIPPED = {"speech": ROOT / "pretrained/speech/vocoder.safetensors", "music": ROOT / "pretrained/music/vocoder.safetensors"}


def install(deps: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(deps),
           *PEERS]
    print("installing peers:", " ".join(cmd))
    subprocess.run(cmd, check=True)


def _peer_modules(deps: Path):
    """(parallel_wavegan.models or None, the vocos classes or None), with the two shims: scipy's
    moved ``kaiser`` for parallel_wavegan 0.6.1, and vocos' hub-importing ``__init__`` skipped.
    """
    sys.path.insert(0, str(deps))
    import scipy.signal
    import scipy.signal.windows

    if not hasattr(scipy.signal, "kaiser"):
        scipy.signal.kaiser = scipy.signal.windows.kaiser
    try:
        import parallel_wavegan.models as pwg
    except ImportError:
        pwg = None
    voc = None
    if (deps / "vocos").is_dir():
        pkg = types.ModuleType("vocos")
        pkg.__path__ = [str(deps / "vocos")]
        sys.modules["vocos"] = pkg
        from vocos.heads import ISTFTHead
        from vocos.models import VocosBackbone

        voc = (VocosBackbone, ISTFTHead)
    return pwg, voc


def build(name: str, mel_cfg, deps: Path):
    """One benchmarked vocoder by table name, in inference mode (None when its package is missing)."""
    import torch

    from specgan.checkpoints import load_vocoder
    from vocoder.registry import build_generator

    if name.startswith("shipped "):
        return load_vocoder(None, str(SHIPPED[name.split()[1]]), None)[0]
    if name.startswith("griffinlim"):
        return build_generator({"name": "griffinlim"}, mel_cfg).eval()
    if name.startswith("specgan "):  # the registry table
        spec = json.loads(name.split(" ", 1)[1])
        return build_generator(spec, mel_cfg).eval().remove_weight_norm()
    pwg, voc = _peer_modules(deps)
    torch.manual_seed(0)
    n = mel_cfg.n_mels
    if name.startswith("HiFi-GAN") and pwg is not None:
        g = pwg.HiFiGANGenerator(in_channels=n, channels=512 if name.endswith("V1") else 128)
        g.remove_weight_norm()
        return g.eval()
    if name.startswith("Vocos") and voc is not None:
        backbone_cls, head_cls = voc

        class Vocos(torch.nn.Module):  # the published backbone (512, 1536, 8 layers) + iSTFT head
            def __init__(self):
                super().__init__()
                self.backbone = backbone_cls(n, 512, 1536, 8)
                self.head = head_cls(512, mel_cfg.n_fft, mel_cfg.hop_length)

            def forward(self, mel):
                return self.head(self.backbone(mel))

        return Vocos().eval()
    return None


def real_speech(sr: int, seconds: float):
    """Real speech for the speech mel (see the module docstring); returns (wave, description)."""
    import numpy as np

    if CARLO.is_dir() and shutil.which("ffmpeg"):
        parts, total = [], 0
        for f in sorted(CARLO.glob("*.g722")):
            out = subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "g722", "-i", str(f), "-ar", str(sr), "-ac", "1",
                                  "-f", "f32le", "-"], capture_output=True, check=True).stdout
            parts.append(np.frombuffer(out, np.float32))
            total += len(parts[-1])
            if total >= seconds * sr:
                break
        y = np.concatenate(parts)
        reps = int(np.ceil(seconds * sr / len(y)))
        return np.tile(y, reps)[: int(seconds * sr)], f"real speech ({CARLO.name} prompts, concatenated)"
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 30) if k * 160 < sr / 2) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    return (0.3 * y).astype(np.float32), "a synthetic harmonic glide (no asterisk prompts installed)"


def synthetic_music(sr: int, seconds: float):
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.zeros(int(seconds * sr), np.float32)
    note = int(0.5 * sr)
    for start in range(0, len(y), note):
        f0 = 440.0 * 2 ** ((rng.integers(36, 85) - 69) / 12)
        t = np.arange(min(2 * note, len(y) - start)) / sr
        partials = sum(np.sin(2 * np.pi * k * f0 * t) * np.exp(-t * (1 + k)) / k for k in range(1, 16) if k * f0 < sr / 2)
        y[start: start + len(t)] += 0.2 * partials.astype(np.float32)
    return y / np.abs(y).max() * 0.9, "synthetic notes (harmonic partials with decays)"


def mel_of(kind: str, seconds: float):
    import torch

    from specgan.checkpoints import load_vocoder
    from vocoder.mel import MelSpectrogram

    cfg = load_vocoder(None, str(SHIPPED[kind]), None)[0].mel_cfg
    y, what = (real_speech if kind == "speech" else synthetic_music)(cfg.sample_rate, seconds)
    return cfg, MelSpectrogram(cfg)(torch.from_numpy(y)[None]), what


def table_rows(kind: str) -> list[str]:
    rows = [f"shipped {kind}", f"griffinlim ({kind} mel)"]
    return rows + (["Vocos (peer)", "HiFi-GAN V1 (peer)", "HiFi-GAN V2 (peer)"] if kind == "speech" else [])


def memory_child(args) -> int:
    """In a fresh process: build one vocoder, vocode ``--memory-seconds`` once, print the RSS added."""
    import torch

    torch.set_num_threads(1)
    kind, name = args.memory_child.split("|", 1)
    cfg, mel, _ = mel_of(kind, args.memory_seconds)
    g = build(name, cfg, args.deps)
    with torch.inference_mode():
        g(mel[..., :32])  # warm (numba compile, allocator)
        import gc

        gc.collect()
        before = _status_kb("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        run_chunks(g, mel, args.chunk_frames)
    peak = _status_kb("VmHWM")
    print(json.dumps({"added_mb": (peak - before) / 1024, "peak_mb": peak / 1024}))
    return 0


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc/self/status (kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def run_chunks(m, mel, chunk: int) -> None:
    """Vocode ``mel`` as ``specgan vocode`` does a long input: one call per chunk of
    :func:`vocoder.inference.chunk_spans` (the cross-fade itself is left out: it costs the same for
    every vocoder); ``chunk`` 0 = one call on the whole mel.
    """
    from vocoder.inference import chunk_spans

    frames = mel.shape[-1]
    if not chunk or frames <= chunk:
        m(mel)
        return
    for start, stop in chunk_spans(frames, chunk):
        m(mel[..., start:stop])


def speed(models: dict, mel, seconds_audio: float, threads: int, repeats: int, chunk: int = 0) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    with torch.inference_mode():
        for m in models.values():
            m(mel[..., :64])
        times = {name: [] for name in models}
        for _ in range(repeats):  # interleaved: machine drift hits every model alike
            for name, m in models.items():
                t = time.perf_counter()
                run_chunks(m, mel, chunk)
                times[name].append(time.perf_counter() - t)
    return {name: seconds_audio / float(np.median(v)) for name, v in times.items()}


def main_table(args) -> int:
    threads = [int(t) for t in args.threads.split(",")]
    seconds = [float(s) for s in args.seconds.split(",")]
    import torch

    from vocoder.inference import OVERLAP_FRAMES

    how = f"in chunks of {args.chunk_frames} frames ({OVERLAP_FRAMES} shared), as specgan vocode runs a long input" \
        if args.chunk_frames else "the whole mel in one call"
    print(f"torch {torch.__version__}; x real time = audio seconds / wall seconds, median of {args.repeats}; "
          f"peak memory: RSS added by one {args.memory_seconds:.0f} s input, fresh process, 1 thread; {how}")
    for kind in ("speech", "music"):
        names = table_rows(kind)
        results: dict[str, dict] = {n: {} for n in names}
        for secs in seconds:
            cfg, mel, what = mel_of(kind, secs)
            models = {n: build(n, cfg, args.deps) for n in names}
            missing = [n for n, m in models.items() if m is None]
            models = {n: m for n, m in models.items() if m is not None}
            for n in threads:
                for name, rt in speed(models, mel, mel.shape[-1] * cfg.hop_length / cfg.sample_rate, n,
                                      args.repeats, args.chunk_frames).items():
                    results[name][f"{secs:g}s {n}T"] = rt
        if missing:
            print(f"(not installed: {', '.join(missing)}; run with --install)")
        for name in names:
            if name in missing:
                continue
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            out = subprocess.run([sys.executable, __file__, "--memory-child", f"{kind}|{name}", "--memory-seconds",
                                  str(args.memory_seconds), "--deps", str(args.deps), "--chunk-frames",
                                  str(args.chunk_frames)], capture_output=True, text=True,
                                 env=env)
            results[name]["mem"] = json.loads(out.stdout.strip().splitlines()[-1])["added_mb"] if out.returncode == 0 \
                else float("nan")
        cols = [f"{s:g}s {n}T" for s in seconds for n in threads]
        print(f"\n{kind}: {cfg.n_mels} mels, {cfg.sample_rate} Hz, hop {cfg.hop_length}; input: {what}")
        print(f"{'vocoder':<28}" + "".join(f" {'xRT ' + c:>13}" for c in cols) + f" {f'MB +{args.memory_seconds:g}s':>10}")
        for name in names:
            if name in missing:
                continue
            r = results[name]
            print(f"{name:<28}" + "".join(f" {r[c]:>13.1f}" for c in cols) + f" {r.get('mem', float('nan')):>10.0f}")
        gl = results[f"griffinlim ({kind} mel)"]
        print(f"shipped {kind} / griffinlim: " + ", ".join(f"{c} {results[f'shipped {kind}'][c] / gl[c]:.2f}x"
                                                          for c in cols))
    return 0


def registry_table(args) -> int:
    """Every registered generator (and the ablation's designs) at 22.05 kHz, 80 mels, random weights."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vocoder.mel import MelConfig
    from vocoder.registry import generator_names

    cfg = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, n_mels=80)
    specs = [{"name": n, **({"preset": p} if p else {})} for n in generator_names()
             for p in (["v1", "v2", "v3"] if n == "hifigan" else [None])]
    pghi = {"name": "phase", "phase_head": "pghi", "n_fft": 512, "upsample": 4, "upsampler": "linear", "amp_layers": 3,
            "nnls_iter": 30, "refine_iter": 16, "pghi_mode": "frames"}
    specs.append(pghi)
    models = {f"specgan {json.dumps(s)}": None for s in specs}
    models.update({"Vocos (peer)": None, "HiFi-GAN V1 (peer)": None, "HiFi-GAN V2 (peer)": None})
    models = {n: build(n, cfg, args.deps) for n in models}
    models = {n: m for n, m in models.items() if m is not None}
    frames = int(10 * cfg.sample_rate / cfg.hop_length)
    mel = torch.randn(1, 80, frames) - 4
    rows = {}
    with torch.inference_mode():
        for name, m in models.items():
            counter = FlopCounterMode(display=False)
            with counter:
                m(mel[..., :86])
            rows[name] = {"params": sum(p.numel() for p in m.parameters()) / 1e6,
                          "gflops": counter.get_total_flops() / 1e9}
    threads = [int(t) for t in args.threads.split(",")]
    for n in threads:
        for name, rt in speed(models, mel, frames * cfg.hop_length / cfg.sample_rate, n, args.repeats).items():
            rows[name][n] = rt
    print(f"22.05 kHz, 80 mels, hop 256, 10 s, random weights, median of {args.repeats}")
    for name, r in rows.items():
        label = name.replace("specgan ", "")
        print(f"{label[:70]:<72} {r['params']:>6.2f} M {r['gflops']:>6.2f} GFLOP/s" +
              "".join(f" {r[n]:>7.1f}x ({n}T)" for n in threads))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", default="10,60", help="input lengths for the speed columns")
    ap.add_argument("--memory-seconds", type=float, default=60.0)
    ap.add_argument("--chunk-frames", type=int, default=512,
                    help="vocode in chunks of this many frames, every vocoder alike (specgan vocode's default); "
                         "0 = the whole mel in one call")
    ap.add_argument("--deps", type=Path, default=ROOT / ".bench-deps")
    ap.add_argument("--install", action="store_true", help="install the peers into --deps first")
    ap.add_argument("--registry", action="store_true", help="every registered generator, 22.05 kHz, random weights")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        return memory_child(args)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(int(t) for t in args.threads.split(","))))
    if args.install:
        install(args.deps)
    return registry_table(args) if args.registry else main_table(args)


if __name__ == "__main__":
    sys.exit(main())
