"""Scoring the codec against Opus and Codec2 on the unseen speaker (the recipe's test split).

Every system goes through real files, and its bitrate is counted from their sizes:

- ``specgan@<rate>``: ``.sgc`` files at each of ``codec.bitrates`` (the header's 40 bytes included),
  decoded by the recipe's vocoder;
- ``opus@6k/8k/12k``: ffmpeg's libopus (``-application voip``, Ogg files: the container's pages
  included), decoded back by ffmpeg;
- ``codec2@1300/2400/3200``: ffmpeg's libcodec2 at 8 kHz (raw ``.c2`` files with their 7-byte
  header), decoded and resampled to 16 kHz;
- ``vocoded``: the original's own mel through the vocoder, the ceiling of the mel route (no codes).

Measures against the original: PESQ-wb, STOI, the log-mel L1 in the recipe's mel, and DNSMOS P.835
OVRL (no reference). Decoded audio is aligned to the original by cross-correlating energy envelopes (±50 ms) before
the measures that need alignment (codecs delay by a few milliseconds). The codec's own encode and
decode speed (× real time, this process's threads) and its size are stated beside.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

__all__ = ["PEERS", "evaluate_codec", "summary_table"]

log = logging.getLogger(__name__)

PEERS = {"opus": ("6k", "8k", "12k"), "codec2": ("1300", "2400", "3200")}
MEASURES = ("kbps", "pesq_wb", "stoi", "dnsmos_ovrl", "mel_l1")


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *args], check=True, capture_output=True)


def peer_round_trip(kind: str, rate: str, wav: Path, tmp: Path, sr: int) -> tuple[np.ndarray, int]:
    """Encode ``wav`` with Opus or Codec2 through ffmpeg and decode it back: (audio at ``sr``, file bytes)."""
    import soundfile as sf

    enc = tmp / f"{wav.stem}.{kind}{rate}.{'opus' if kind == 'opus' else 'c2'}"
    dec = tmp / f"{wav.stem}.{kind}{rate}.wav"
    if kind == "opus":
        _ffmpeg("-i", str(wav), "-ac", "1", "-c:a", "libopus", "-b:a", rate, "-application", "voip", str(enc))
    else:
        _ffmpeg("-i", str(wav), "-ac", "1", "-ar", "8000", "-c:a", "libcodec2", "-mode", rate, str(enc))
    _ffmpeg("-i", str(enc), "-ac", "1", "-ar", str(sr), str(dec))
    y, _ = sf.read(dec, dtype="float32")
    return y, enc.stat().st_size


def align(ref: np.ndarray, est: np.ndarray, sr: int, max_ms: float = 50.0) -> np.ndarray:
    """``est`` shifted by the lag (within ±max_ms) that best correlates its energy envelope with
    ``ref``'s, cut/padded to ``ref``'s length.

    The envelopes (RMS over 10 ms, every 0.5 ms), not the waveforms: a vocoder's output has its own
    phase, and the waveform correlation of two renderings of one voice peaks as readily a pitch
    period away as at the true lag (that first version misaligned the mel route by tens of ms).
    """
    n, step = len(ref), max(1, sr // 2000)
    est = np.pad(est[:n], (0, max(0, n - len(est))))

    def envelope(x):
        p = np.convolve(np.square(x.astype(np.float64)), np.ones(sr // 100) / (sr // 100), mode="same")
        e = np.sqrt(p[::step])
        return e - e.mean()

    a, b = envelope(ref), envelope(est)
    m = int(sr * max_ms / 1000) // step
    scores = [float(np.dot(a[max(0, k):len(a) + min(0, k)], b[max(0, -k):len(b) - max(0, k)])) for k in range(-m, m + 1)]
    coarse = (int(np.argmax(scores)) - m) * step  # est[t] matches ref[t - lag]

    def dot(k):  # the waveforms, within one envelope step only: no pitch period away
        return float(np.dot(ref[max(0, k):n + min(0, k)], est[max(0, -k):n - max(0, k)]))

    lag = max(range(coarse - step, coarse + step + 1), key=dot)
    out = np.roll(est, lag)
    if lag > 0:
        out[:lag] = 0
    elif lag < 0:
        out[lag:] = 0
    return out


def test_files(recipe, n: int) -> tuple[list[np.ndarray], list[str]]:
    """The test split's clips joined, in manifest order with 0.25 s of silence between them, into ``n``
    files of at least ``codec.eval_seconds`` each (fewer if the split runs out); their names list the clips.
    """
    from specgan.data.prepare import load_split
    from vocoder.data import read_mono

    sr, want = recipe.mel.sample_rate, recipe.codec.eval_seconds
    gap = np.zeros(int(0.25 * sr), np.float32)
    files, names, cur, cur_names = [], [], [], []
    for it in load_split(recipe, "test"):
        if len(files) == n:
            break
        cur += [read_mono(it.path, sr), gap]
        cur_names.append(Path(it.path).stem)
        if sum(len(c) for c in cur) >= want * sr:
            files.append(np.concatenate(cur[:-1]))
            names.append("+".join(cur_names))
            cur, cur_names = [], []
    if cur and len(files) < n:
        files.append(np.concatenate(cur[:-1]))
        names.append("+".join(cur_names))
    if not files:
        raise ValueError(f"the test split of {recipe.work / 'data'} is empty: run `specgan prepare --recipe "
                         f"{recipe.path}` first")
    return files, names


@torch.inference_mode()
def evaluate_codec(recipe, model: str | Path | None = None, vocoder: str = "auto", max_files: int | None = None,
                   report=log.info, out_dir: str | Path | None = None, peers: bool = True) -> dict:
    """Score the recipe's codec (or ``model``) and the peers on the test clips; write ``codec.json``
    into ``out_dir`` (default ``<work>/eval``) and the first clip of every system into ``codec/``.
    """
    import soundfile as sf

    from specgan import metrics as M
    from specgan.codec.inference import recipe_job
    from specgan.progress import bar
    from vocoder.mel import MelSpectrogram

    cc = recipe.codec
    job, path, step, voc_desc = recipe_job(recipe, model, vocoder)
    g, voc, mel = job.codec, job.vocoder, job.mel_cfg
    sr = mel.sample_rate
    clips, paths = test_files(recipe, cc.test_items if max_files is None else min(max_files, cc.test_items))
    mel_fn = MelSpectrogram(mel)
    dnsmos = M.dnsmos_available() is None
    if not dnsmos:
        log.warning("codec evaluation: DNSMOS skipped: %s", M.dnsmos_available())
    have_ffmpeg = peers and shutil.which("ffmpeg") is not None
    if peers and not have_ffmpeg:
        log.warning("codec evaluation: ffmpeg not found: Opus and Codec2 not scored")
    eval_dir = Path(out_dir) if out_dir is not None else recipe.work / "eval"
    ex_dir = eval_dir / "codec"
    ex_dir.mkdir(parents=True, exist_ok=True)
    rates = {f"specgan@{b}": job.quantisers_for(b) for b in cc.bitrates}
    rows: dict[str, list[dict]] = {}
    bits: dict[str, float] = {}
    seconds = 0.0
    timing = {"encode": 0.0, "decode": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (y, p) in enumerate(bar(list(zip(clips, paths)), desc="evaluate: codec", unit="file")):
            wav = tmp / f"clip{i}.wav"
            sf.write(wav, y, sr, subtype="PCM_16")
            ref, _ = sf.read(wav, dtype="float32")   # what every system was given: the 16-bit file
            seconds += len(ref) / sr
            lm_ref = mel_fn(torch.from_numpy(ref))
            outs: dict[str, tuple[np.ndarray, int | None]] = {}
            outs["vocoded"] = (voc(lm_ref[None])[0, 0, : len(ref)].numpy(), None)
            for name, n_q in rates.items():
                t0 = time.perf_counter()
                data = job.encode(ref, sr, job.bitrate(n_q))
                t1 = time.perf_counter()
                dec, _ = job.decode(data)
                timing["encode"] += t1 - t0
                timing["decode"] += time.perf_counter() - t1
                outs[name] = (dec, len(data))
            if have_ffmpeg:
                for kind, levels in PEERS.items():
                    for level in levels:
                        outs[f"{kind}@{level}"] = peer_round_trip(kind, level, wav, tmp, sr)
            for name, (est, size) in outs.items():
                est = align(ref, np.asarray(est, np.float32), sr)
                r = {"pesq_wb": M.pesq_wb(ref, est, sr), "stoi": M.stoi(ref, est, sr),
                     "mel_l1": float((mel_fn(torch.from_numpy(est)) - lm_ref).abs().mean())}
                if dnsmos:
                    r["dnsmos_ovrl"] = M.dnsmos(est, sr)["ovrl"]
                rows.setdefault(name, []).append({"file": p, **r})
                if size is not None:
                    bits[name] = bits.get(name, 0.0) + 8 * size
                if i == 0:
                    sf.write(ex_dir / f"clip0_{name.replace('@', '_')}.wav", np.clip(est, -1, 1), sr, subtype="PCM_16")
            if i == 0:
                sf.write(ex_dir / "clip0_original.wav", ref, sr, subtype="PCM_16")
    overall = {}
    for name, rs in rows.items():
        overall[name] = {m: float(np.nanmean([r[m] for r in rs])) for m in MEASURES[1:] if m in rs[0]}
        if name in bits:
            overall[name]["kbps"] = bits[name] / seconds / 1000
    params = sum(p.numel() for p in g.parameters())
    out = {"protocol": f"{len(clips)} files of the unseen test speaker's prompts joined ({seconds:.1f} s); bitrates "
                       "from the files' sizes; measures against the original 16-bit file after alignment (±50 ms)",
           "model": str(path), "step": step, "vocoder": voc_desc, "files": len(clips), "seconds": seconds,
           "codec": {"bitrates": {n: job.bitrate(k) for n, k in rates.items()},
                     "encode_x_real_time": seconds * len(rates) / max(timing["encode"], 1e-9),
                     "decode_x_real_time": seconds * len(rates) / max(timing["decode"], 1e-9),
                     "threads": torch.get_num_threads(), "parameters": params, "fp16_megabytes": 2 * params / 1e6},
           "overall": overall, "rows": rows}
    eval_dir.mkdir(parents=True, exist_ok=True)
    (eval_dir / "codec.json").write_text(json.dumps(out, indent=1))
    report(summary_table(out))
    return out


def summary_table(out: dict) -> str:
    """Systems × measures (Markdown), the specgan rows first."""
    names = sorted(out["overall"], key=lambda n: (not n.startswith("specgan"), n.split("@")[0],
                                                  out["overall"][n].get("kbps", 1e9)))
    lines = ["| system | " + " | ".join(MEASURES) + " |", "|---|" + "---|" * len(MEASURES)]
    for n in names:
        o = out["overall"][n]
        lines.append(f"| {n} | " + " | ".join(f"{o[m]:.3f}" if m in o else "–" for m in MEASURES) + " |")
    c = out["codec"]
    lines.append(f"\nspecgan codec: encode {c['encode_x_real_time']:.0f}x, decode (with the vocoder) "
                 f"{c['decode_x_real_time']:.1f}x real time on {c['threads']} thread(s); {c['parameters'] / 1e6:.2f} M "
                 f"parameters ({c['fp16_megabytes']:.1f} MB at float16)")
    return "\n".join(lines)
