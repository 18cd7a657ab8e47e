"""Benchmark log-mel extraction: specgan's numba path vs librosa vs torchaudio, plus an FFT-only floor.

Two workloads at 22.05 kHz, 80 mels, n_fft 1024, hop 256 (reflect-padded, magnitude mel, log):
one 10 s signal, and 200 separate 1 s signals (per-call overhead shows there). Every method
runs on the same thread count; repeats are interleaved (A B C A B C ...) so drift in machine
load hits all methods alike; medians are reported. The floor is the faster of scipy.fft.rfft and
rocket-fft's numba-compiled rfft of the already framed, windowed float32 frames (no framing, no
mel, no log).

    python tools/bench_features.py [--threads 1] [--repeats 30]

Targets (issue #2): >= 3x librosa, >= 1.5x torchaudio, <= 1.5x the FFT-only floor.
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--files", type=int, default=200)
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import time

    import librosa
    import numpy as np
    import scipy.fft
    import torch
    import torchaudio

    from specgan.features import LogMelExtractor
    from vocoder.mel import MelConfig, stft_window

    torch.set_num_threads(args.threads)
    cfg = MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, n_mels=80)
    rng = np.random.default_rng(0)

    def signal(seconds: float) -> np.ndarray:
        t = np.arange(int(cfg.sample_rate * seconds)) / cfg.sample_rate
        y = sum(np.sin(2 * np.pi * 110 * k * t) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
        return (0.3 * y / np.abs(y).max() + 0.01 * rng.standard_normal(t.size)).astype(np.float32)

    long_y = signal(10.0)
    short_ys = [signal(1.0) for _ in range(args.files)]

    ours32 = LogMelExtractor(cfg, threads=args.threads, precision="float32")
    ours64 = LogMelExtractor(cfg, threads=args.threads, precision="float64")
    ta = torchaudio.transforms.MelSpectrogram(
        sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels, power=1.0,
        center=True, pad_mode="reflect", norm="slaney", mel_scale="slaney")
    window = stft_window(cfg).astype(np.float32)

    def f_librosa(y):
        S = librosa.feature.melspectrogram(y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                                           n_mels=cfg.n_mels, power=1.0, pad_mode="reflect")
        return np.log(np.maximum(S, cfg.floor))

    def f_torchaudio(y):
        with torch.inference_mode():
            return torch.log(torch.clamp(ta(torch.from_numpy(y)), min=cfg.floor)).numpy()

    def framed(y):
        yp = np.pad(y, cfg.n_fft // 2, mode="reflect")
        return np.ascontiguousarray(np.lib.stride_tricks.sliding_window_view(yp, cfg.n_fft)[:: cfg.hop_length] * window)

    import rocket_fft  # noqa: F401
    from numba import njit

    @njit(cache=False)
    def _rfft_rows(frames):
        return np.fft.rfft(frames, axis=1)

    long_frames = framed(long_y)
    short_frames = [framed(y) for y in short_ys]

    methods = {
        "specgan numba f32": (lambda: ours32(long_y), lambda: [ours32(y) for y in short_ys]),
        "specgan numba f64": (lambda: ours64(long_y), lambda: [ours64(y) for y in short_ys]),
        "librosa": (lambda: f_librosa(long_y), lambda: [f_librosa(y) for y in short_ys]),
        "torchaudio": (lambda: f_torchaudio(long_y), lambda: [f_torchaudio(y) for y in short_ys]),
        "FFT floor (scipy)": (lambda: scipy.fft.rfft(long_frames, axis=1, workers=args.threads),
                              lambda: [scipy.fft.rfft(f, axis=1, workers=args.threads) for f in short_frames]),
        "FFT floor (rocket)": (lambda: _rfft_rows(long_frames), lambda: [_rfft_rows(f) for f in short_frames]),
    }
    # Agreement check, so a fast wrong answer cannot win.
    ref = f_librosa(long_y)
    err = {"specgan numba f32": np.abs(ours32(long_y) - ref).max(), "specgan numba f64": np.abs(ours64(long_y) - ref).max(),
           "torchaudio": np.abs(f_torchaudio(long_y) - ref).max()}

    times = {name: ([], []) for name in methods}
    for long_fn, short_fn in methods.values():  # warm-up (numba load, torch init)
        long_fn(), short_fn()
    for _ in range(args.repeats):
        for workload in (0, 1):  # interleaved: each method once per round, per workload
            for name, fns in methods.items():
                t = time.perf_counter()
                fns[workload]()
                times[name][workload].append(time.perf_counter() - t)

    med = {k: (float(np.median(v[0])) * 1e3, float(np.median(v[1])) * 1e3) for k, v in times.items()}
    o_long, o_short = med["specgan numba f32"]
    print(f"log-mel, 22.05 kHz, 80 mels, n_fft 1024, hop 256; {args.threads} thread(s), {args.repeats} interleaved "
          f"repeats, medians; numpy {np.__version__}, scipy {scipy.__version__}, librosa {librosa.__version__}, "
          f"torch {torch.__version__}")
    print(f"{'method':<20} {'10 s (ms)':>10} {'f32 speed-up':>13} {f'{args.files}x1 s (ms)':>14} {'f32 speed-up':>13}"
          f" {'max|d| vs librosa':>18}")
    for name, (l, s) in med.items():
        e = f"{err[name]:.1e}" if name in err else "-"
        print(f"{name:<20} {l:>10.2f} {l / o_long:>12.2f}x {s:>14.1f} {s / o_short:>12.2f}x {e:>18}")
    lib_l, lib_s = med["librosa"]
    ta_l, ta_s = med["torchaudio"]
    # The floor is the faster of the two FFTs, per workload.
    fl_l = min(med["FFT floor (scipy)"][0], med["FFT floor (rocket)"][0])
    fl_s = min(med["FFT floor (scipy)"][1], med["FFT floor (rocket)"][1])
    print()
    print(f"targets (f32 path):  vs librosa {lib_l / o_long:.2f}x / {lib_s / o_short:.2f}x (>= 3)   "
          f"vs torchaudio {ta_l / o_long:.2f}x / {ta_s / o_short:.2f}x (>= 1.5)   "
          f"over FFT floor {o_long / fl_l:.2f}x / {o_short / fl_s:.2f}x (<= 1.5)   [10 s / {args.files} x 1 s]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
