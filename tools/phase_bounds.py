"""Where copy synthesis loses quality: magnitude or phase? Oracle bounds on a recipe's test split.

Each row rebuilds the test clips from one magnitude (the true |STFT|, or the mel's non-negative
least-squares inverse that Griffin-Lim starts from) and one phase (the true phase, Griffin-Lim's,
phase gradient heap integration's (:mod:`vocoder.pghi`), none), at the mel's own STFT (n_fft, hop), and scores it as ``specgan evaluate`` scores a vocoder
(PESQ-wb, STOI, F0 RMSE, buzz). With a trained vocoder (``--vocoder``) two more rows: its output,
and its phase used as the start of fast Griffin-Lim on the mel's magnitude (``--refine`` iterations).

    python tools/phase_bounds.py --recipe recipes/voices.yaml --clips 24
    python tools/phase_bounds.py --recipe recipes/voices.yaml --vocoder exp/voices/ablation/phase

What the rows mean for a vocoder: if "mel magnitude + true phase" scores far above Griffin-Lim,
a model that gets the phase right can beat Griffin-Lim without a better magnitude (docs/vocoder.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fast_griffin_lim(mag: torch.Tensor, n: int, iters: int, stft, istft, init: torch.Tensor | None = None,
                     momentum: float = 0.99) -> torch.Tensor:
    """Fast Griffin-Lim (:func:`vocoder.pghi.fast_griffin_lim`) from ``init``'s phase, as a waveform of n samples."""
    from vocoder.pghi import fast_griffin_lim as fgla

    angles = fgla(mag, stft, lambda spec: istft(spec, n), iters, init, momentum)
    return istft(mag * angles, n)


def _stft_pair(text: str) -> tuple[int, int]:
    n_fft, _, hop = text.partition("/")
    if not (n_fft.isdigit() and hop.isdigit()) or int(hop) > int(n_fft):
        raise argparse.ArgumentTypeError(f"expected N/H with hop H <= n_fft N, got {text!r}")
    return int(n_fft), int(hop)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/voices.yaml")
    ap.add_argument("--split", default="test")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--iters", type=int, default=32, help="Griffin-Lim iterations of the oracle rows")
    ap.add_argument("--vocoder", default=None, help="a trained vocoder (model.safetensors or its run folder)")
    ap.add_argument("--refine", type=int, default=32, help="Griffin-Lim iterations from the vocoder's phase")
    ap.add_argument("--pghi-stft", type=_stft_pair, nargs="*", default=[(512, 64), (1024, 128)], metavar="N/H",
                    help="more rows: the true magnitude at these STFTs (Hann, n_fft/hop) with PGHI's phase")
    ap.add_argument("--json", default=None, help="also write the table here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from specgan import metrics as M
    from specgan.evaluate import _clips
    from specgan.recipe import load_recipe
    from vocoder.mel import MelSpectrogram, mel_filterbank, stft_window
    from vocoder.pghi import pghi

    recipe = load_recipe(args.recipe, [])
    cfg = recipe.mel
    n_fft, hop, sr = cfg.n_fft, cfg.hop_length, cfg.sample_rate
    window = torch.from_numpy(stft_window(cfg)[:n_fft].astype(np.float32))

    def stft(y):
        return torch.stft(y, n_fft, hop, window=window, center=True, return_complex=True)

    def istft(spec, n):
        return torch.istft(spec, n_fft, hop, window=window, center=True, length=n)

    fb = torch.from_numpy(mel_filterbank(cfg).astype(np.float32))
    pinv = torch.linalg.pinv(fb)

    def mel_magnitude(mel, frames):  # as vocoder/generators/griffinlim.py: pinv, clamp, Lee-Seung NNLS
        target = cfg.exp(mel.float())[0]
        lin = (pinv @ target).clamp(min=1e-8)
        numer = fb.T @ target
        for _ in range(30):
            lin = lin * numer / (fb.T @ (fb @ lin)).clamp(min=1e-10)
        lin = lin.pow(1.0 / cfg.power)
        pad = max(0, frames - lin.shape[-1])
        return torch.cat([lin, lin[:, -1:].expand(-1, pad)], -1)[:, :frames]

    def _pghi(m):
        return torch.from_numpy(pghi(m.numpy(), n_fft, hop, cfg.win)).float()

    voc = None
    if args.vocoder:
        from specgan.checkpoints import load_vocoder

        voc, _ = load_vocoder(None, args.vocoder, None)
    mel_fn = MelSpectrogram(cfg)
    rows: dict[str, list[tuple[float, ...]]] = {}
    for y in _clips(recipe, args.split, args.clips):
        wave = y[0, 0]
        n = wave.shape[-1]
        mel = cfg.crop_frames(mel_fn(y), n)
        spec = stft(wave)
        mag, unit = spec.abs(), spec / spec.abs().clamp(min=1e-8)
        est = mel_magnitude(mel, spec.shape[-1])
        cand = {
            "true magnitude + true phase (analysis/synthesis check)": istft(spec, n),
            f"true magnitude + Griffin-Lim {args.iters}": fast_griffin_lim(mag, n, args.iters, stft, istft),
            "mel magnitude + true phase": istft(est * unit, n),
            f"mel magnitude + Griffin-Lim {args.iters} (the griffinlim vocoder)":
                fast_griffin_lim(est, n, args.iters, stft, istft),
            "true magnitude + zero phase": istft(mag.to(torch.complex64), n),
            "true magnitude + PGHI": istft(torch.polar(mag, _pghi(mag)), n),
            "mel magnitude + PGHI": istft(torch.polar(est, _pghi(est)), n),
            f"mel magnitude + PGHI + Griffin-Lim {args.iters}":
                fast_griffin_lim(est, n, args.iters, stft, istft, init=torch.polar(est, _pghi(est))),
        }
        for other_fft, other_hop in args.pghi_stft:  # the true magnitude at other STFTs, phase by PGHI
            win = torch.hann_window(other_fft)
            true = torch.stft(wave, other_fft, other_hop, window=win, center=True, return_complex=True).abs()
            phase = torch.from_numpy(pghi(true.numpy(), other_fft, other_hop)).float()
            cand[f"true magnitude at {other_fft}/{other_hop} + PGHI"] = torch.istft(
                torch.polar(true, phase), other_fft, other_hop, window=win, center=True, length=n)
        if voc is not None:
            out = voc(mel.float())[0, 0][:n].float()
            cand["vocoder output"] = out
            cand[f"mel magnitude + Griffin-Lim {args.refine} from the vocoder's phase"] = fast_griffin_lim(
                est, n, args.refine, stft, istft, init=stft(out))
        ref = wave.numpy().astype(np.float64)
        for name, w in cand.items():
            w = w.numpy().astype(np.float64)
            try:
                pesq = M.pesq_wb(ref, w, sr)
            except Exception:  # noqa: BLE001 (the pesq package's own error types: no speech found)
                pesq = float("nan")
            f0 = M.f0_metrics(ref, w, sr, hop=hop)
            rows.setdefault(name, []).append((pesq, M.stoi(ref, w, sr), f0.get("f0_rmse_cents", float("nan")),
                                              M.buzz_db(w, ref, sr, hop)))
    table = {name: dict(zip(("pesq_wb", "stoi", "f0_rmse_cents", "buzz_db"),
                            map(float, np.nanmean(np.array(v), axis=0)), strict=True)) for name, v in rows.items()}
    print(f"{args.recipe}, split {args.split}, {len(next(iter(rows.values())))} clips, STFT {n_fft}/{hop}\n")
    print("| magnitude + phase | PESQ-wb | STOI | F0 RMSE (cents) | buzz (dB) |\n|---|---|---|---|---|")
    for name, m in table.items():
        print(f"| {name} | {m['pesq_wb']:.2f} | {m['stoi']:.3f} | {m['f0_rmse_cents']:.1f} | {m['buzz_db']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
