"""Generation and vocoder metrics, as pure functions of arrays (no models inside).

Generation (the SC09 / WaveGAN protocol and its successors):

- :func:`inception_score` — exp E_x KL(p(y|x) ‖ p(y)) from a classifier's class probabilities
  (Salimans et al. 2016); between 1 and the number of classes.
- :func:`frechet_distance` — between Gaussians fitted to two sets of embeddings (Heusel et al.
  2017), here the project classifier's penultimate layer.
- :func:`ndb_jsd` — number of statistically different bins: k-means on the real samples, then a
  two-proportion z-test per bin between real and generated bin shares (Richardson & Weiss 2018),
  and the Jensen-Shannon divergence between the two bin histograms.
- :func:`mean_pairwise_distance`, :func:`nearest_neighbour_distance` — diversity, and distance of
  each generated sample to its nearest training sample (near 0 = memorised).

Signal metrics: :func:`f0_metrics` (log-F0 RMSE in cents and voicing error from librosa's pYIN),
:func:`pitch_accuracy` (median pYIN pitch of a note against the asked MIDI pitch), :func:`pesq_wb`
and :func:`stoi` (the ``pesq`` and ``pystoi`` packages); :func:`buzz_db` (hop-rate comb contrast
against the reference, from :mod:`vocoder.buzz`); :func:`harmonicity` (how periodic the active
frames are: a voiced vowel near 1, breath and noise near 0). The same question asked of the mel
itself (the low bands' ripple, and whether it is a harmonic comb) is
:func:`specgan.stage_one.harmonics.fine_structure` and :func:`~specgan.stage_one.harmonics.comb_fit`,
beside the comb maths they share with the generator's harmonic head.

Comparisons: :func:`paired_bootstrap` — the mean per-clip difference between two systems measured
on the same clips, with a percentile bootstrap interval over clips (is a 4-cent F0 gap real, or
the luck of 24 clips?).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from vocoder.buzz import buzz_db, comb_contrast_db

__all__ = ["buzz_db", "comb_contrast_db", "dnsmos", "dnsmos_available", "dnsmos_set", "f0_metrics", "frechet_distance", "harmonicity", "inception_score", "kmeans",
           "mean_pairwise_distance", "ndb_jsd", "nearest_neighbour_distance", "paired_bootstrap", "periodicity",
           "pesq_wb", "pitch_accuracy", "spectral_convergence", "stoi", "visqol_audio"]


def inception_score(probs: np.ndarray, splits: int = 1, eps: float = 1e-12) -> tuple[float, float]:
    """(mean, std over ``splits``) of exp(E KL(p(y|x) ‖ p(y))) for (N, classes) probabilities."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or len(probs) < splits:
        raise ValueError(f"inception_score: expected (N >= splits, classes) probabilities, got {probs.shape}")
    scores = []
    for part in np.array_split(probs, splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + eps) - np.log(py + eps))).sum(1).mean()
        scores.append(float(np.exp(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½) between (N, D) embedding sets."""
    from scipy import linalg

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"frechet_distance: expected two (N >= 2, D) sets, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    import warnings

    with warnings.catch_warnings():  # a near-singular product (few clips, many dimensions) is expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():  # singular product: regularise as the reference FID code does
            off = np.eye(len(cov_a)) * 1e-6
            covmean = linalg.sqrtm((cov_a + off) @ (cov_b + off))
    covmean = covmean.real
    return float(max(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean), 0.0))


def kmeans(x: np.ndarray, k: int, iters: int = 50, seed: int = 0) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding on (N, D) rows; returns the (k, D) centres."""
    x = np.asarray(x, np.float64)
    if len(x) < k:
        raise ValueError(f"kmeans: {len(x)} samples for {k} clusters")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    d2 = ((x - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1 / len(x))
        centres.append(x[rng.choice(len(x), p=p)])
        d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
    c = np.stack(centres)
    for _ in range(iters):
        assign = _nearest(x, c)
        new = np.stack([x[assign == j].mean(0) if np.any(assign == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c


def _nearest(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    d = (x ** 2).sum(1)[:, None] - 2 * x @ c.T + (c ** 2).sum(1)[None]
    return d.argmin(1)


def ndb_jsd(real: np.ndarray, fake: np.ndarray, k: int = 20, alpha: float = 0.05,
            seed: int = 0) -> dict[str, float]:
    """NDB (count and fraction of k bins whose shares differ at level ``alpha``) and JSD (nats).

    Bins are k-means cells of the real samples (flattened); each sample goes to its nearest
    centre. The test per bin is the two-proportion z-test with the pooled proportion.
    """
    from scipy.stats import norm

    real = np.asarray(real, np.float64).reshape(len(real), -1)
    fake = np.asarray(fake, np.float64).reshape(len(fake), -1)
    centres = kmeans(real, k, seed=seed)
    pr = np.bincount(_nearest(real, centres), minlength=k) / len(real)
    pf = np.bincount(_nearest(fake, centres), minlength=k) / len(fake)
    pooled = (pr * len(real) + pf * len(fake)) / (len(real) + len(fake))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(real) + 1 / len(fake)))
    z = np.divide(pr - pf, se, out=np.zeros(k), where=se > 0)
    different = int((np.abs(z) > norm.ppf(1 - alpha / 2)).sum())
    m = (pr + pf) / 2

    def kl(p, q):
        nz = p > 0
        return float((p[nz] * np.log(p[nz] / q[nz])).sum())

    return {"ndb": different, "ndb_fraction": different / k, "jsd": 0.5 * kl(pr, m) + 0.5 * kl(pf, m), "bins": k}


MODULATION_BANDS_HZ = ((0.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 32.0))


def modulation_spectrum(mels: np.ndarray, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """How fast the bands of a set of mels move: each band's track over time, its mean removed,
    as power per modulation frequency, averaged over clips and bands.

    Args:
        mels: (N, n_mels, frames), any affine scale per band (normalised or log-mel).
        frame_rate: Frames per second (sample rate / hop).

    Returns:
        (freqs_hz, power): the rFFT bins' modulation frequencies and the mean power in each.
    """
    x = np.asarray(mels, np.float64)
    x = x - x.mean(-1, keepdims=True)
    power = (np.abs(np.fft.rfft(x, axis=-1)) ** 2).mean((0, 1))
    return np.fft.rfftfreq(x.shape[-1], 1.0 / frame_rate), power


def modulation_ratio(real: np.ndarray, fake: np.ndarray, frame_rate: float,
                     bands: Sequence[tuple[float, float]] = MODULATION_BANDS_HZ) -> dict[str, float]:
    """Generated over real modulation power (:func:`modulation_spectrum`) summed within each band of
    modulation frequencies, ``"lo-hi Hz"`` → ratio (1: the generated mels move as fast as the real
    ones; above 1 they flicker more from frame to frame, which a vocoder renders as roughness). A
    band holding no bin is left out; the 0 Hz bin (the removed mean) counts in none.
    """
    f, p_real = modulation_spectrum(real, frame_rate)
    _, p_fake = modulation_spectrum(fake, frame_rate)
    out = {}
    for lo, hi in bands:
        sel = (f > max(lo, 0.0)) & (f <= hi)
        if sel.any() and p_real[sel].sum() > 0:
            out[f"{lo:g}-{hi:g} Hz"] = float(p_fake[sel].sum() / p_real[sel].sum())
    return out


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean L2 distance over distinct pairs of (N, ...) samples (RMS-normalised per element)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    if len(x) < 2:
        raise ValueError("mean_pairwise_distance: need at least two samples")
    d = np.sqrt(np.maximum((x ** 2).sum(1)[:, None] - 2 * x @ x.T + (x ** 2).sum(1)[None], 0) / x.shape[1])
    return float(d[np.triu_indices(len(x), 1)].mean())


def nearest_neighbour_distance(fake: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Per generated sample, the RMS distance to its nearest training sample."""
    f = np.asarray(fake, np.float64).reshape(len(fake), -1)
    t = np.asarray(train, np.float64).reshape(len(train), -1)
    d = (f ** 2).sum(1)[:, None] - 2 * f @ t.T + (t ** 2).sum(1)[None]
    return np.sqrt(np.maximum(d.min(1), 0) / f.shape[1])


def paired_bootstrap(a, b, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean of ``a - b`` over clips measured by both systems (pairs where either is NaN are left
    out), and a percentile bootstrap interval at ``level`` from ``n_boot`` resamples of those clips
    (Efron & Tibshirani; the clip, not the frame, is the unit, since frames of a clip are not
    independent). Returns ``{"diff", "lo", "hi", "n"}``; the interval excludes 0 when the
    difference is unlikely to be the luck of the clips drawn.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_bootstrap: need two 1-D arrays of equal length, got {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"paired_bootstrap: level must be in (0, 1), got {level}")
    d = (a - b)[~(np.isnan(a) | np.isnan(b))]
    if len(d) == 0:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    means = d[np.random.default_rng(seed).integers(0, len(d), (n_boot, len(d)))].mean(1)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": int(len(d))}


def _pyin(y: np.ndarray, sr: int, fmin: float, fmax: float, hop: int):
    import librosa

    f0, voiced, _ = librosa.pyin(np.asarray(y, np.float64), fmin=fmin, fmax=fmax, sr=sr, hop_length=hop,
                                 frame_length=4 * hop)
    return f0, voiced


CREPE_VOICED = 0.21  # torchcrepe's README thresholds pitch at periodicity 0.21


def _crepe(y: np.ndarray, sr: int, fmin: float, fmax: float, hop: int, model: str = "full"):
    """(f0, voiced) by torchcrepe (CREPE, Kim et al. 2018) with Viterbi decoding; a frame is voiced
    where the network's periodicity is at least :data:`CREPE_VOICED`.
    """
    try:
        import torchcrepe
    except ImportError as e:
        raise ImportError("the pitch tracker 'crepe' needs torchcrepe: pip install torchcrepe "
                          "(it is in the project's 'music' extra)") from e
    import torch

    with torch.inference_mode():
        f0, per = torchcrepe.predict(torch.as_tensor(np.asarray(y, np.float32))[None], sr, hop, fmin, fmax, model,
                                     decoder=torchcrepe.decode.viterbi, return_periodicity=True, batch_size=256,
                                     device="cpu")
    f0, per = f0[0].numpy().astype(np.float64), per[0].numpy()
    return f0, per >= CREPE_VOICED


PITCH_TRACKERS = {"pyin": _pyin, "crepe": _crepe,
                  "crepe-tiny": lambda y, sr, fmin, fmax, hop: _crepe(y, sr, fmin, fmax, hop, model="tiny")}


GROSS_PITCH_CENTS = 1200 * np.log2(1.2)  # a "gross" pitch error: off by more than 20 %


def f0_metrics(ref: np.ndarray, est: np.ndarray, sr: int, fmin: float = 60.0, fmax: float = 800.0,
               hop: int = 256) -> dict[str, float]:
    """log-F0 RMSE (cents, over frames voiced in both) and V/UV error rate between two signals.

    Also the two halves of that RMSE as pitch-tracking papers report them: the gross pitch error
    rate ``f0_gpe`` (share of frames voiced in both that are off by more than 20 %, ~316 cents:
    octave jumps and the like, which dominate an RMSE) and the fine pitch error ``f0_fpe_cents``
    (RMSE over the other frames).
    """
    n = min(len(ref), len(est))
    f_ref, v_ref = _pyin(ref[:n], sr, fmin, fmax, hop)
    f_est, v_est = _pyin(est[:n], sr, fmin, fmax, hop)
    both = v_ref & v_est & np.isfinite(f_ref) & np.isfinite(f_est)
    cents = 1200 * np.log2(f_est[both] / f_ref[both]) if both.any() else np.array([])
    gross = np.abs(cents) > GROSS_PITCH_CENTS
    fine = cents[~gross]
    nan = float("nan")
    return {"f0_rmse_cents": float(np.sqrt(np.mean(cents ** 2))) if cents.size else nan,
            "f0_gpe": float(np.mean(gross)) if cents.size else nan,
            "f0_fpe_cents": float(np.sqrt(np.mean(fine ** 2))) if fine.size else nan,
            "vuv_error": float(np.mean(v_ref != v_est)), "voiced_frames": int(both.sum())}


def pitch_accuracy(wavs: list[np.ndarray], midi: list[int], sr: int, tolerance: float = 0.5,
                   hop: int = 256, tracker: str = "pyin") -> dict[str, float]:
    """Share of notes whose median pitch (over voiced frames) is within ``tolerance`` semitones of
    the asked MIDI pitch; also octave-tolerant (pitch class) accuracy and the mean absolute error in
    semitones. ``tracker``: ``pyin`` (librosa), ``crepe`` (torchcrepe, full model) or
    ``crepe-tiny``; each searches ±13 semitones around the asked pitch. A note with no voiced frame
    is a miss.
    """
    import librosa

    if tracker not in PITCH_TRACKERS:
        raise ValueError(f"pitch tracker {tracker!r}: expected one of {sorted(PITCH_TRACKERS)}")
    track = PITCH_TRACKERS[tracker]
    errs, classes = [], []
    for y, m in zip(wavs, midi, strict=True):
        f_lo, f_hi = librosa.midi_to_hz(m - 13), librosa.midi_to_hz(m + 13)
        f0, voiced = track(y, sr, max(f_lo, 30.0), min(f_hi, sr / 2 - 1), hop)
        f0 = f0[voiced & np.isfinite(f0)]
        if f0.size == 0:
            errs.append(np.inf)
            classes.append(False)
            continue
        est = float(np.median(librosa.hz_to_midi(f0)))
        errs.append(abs(est - m))
        d = (est - m) % 12
        classes.append(min(d, 12 - d) <= tolerance)
    errs = np.asarray(errs)
    finite = errs[np.isfinite(errs)]
    return {"pitch_accuracy": float(np.mean(errs <= tolerance)), "pitch_class_accuracy": float(np.mean(classes)),
            "mean_abs_error_semitones": float(finite.mean()) if finite.size else float("nan"),
            "unvoiced": int((~np.isfinite(errs)).sum()), "notes": len(errs)}


def pesq_wb(ref: np.ndarray, est: np.ndarray, sr: int = 16000) -> float:
    """Wideband PESQ (ITU-T P.862.2) MOS-LQO, 16 kHz signals; −0.5 ... 4.64."""
    from pesq import pesq

    if sr != 16000:
        raise ValueError(f"wideband PESQ is defined at 16 kHz, got {sr}")
    n = min(len(ref), len(est))
    return float(pesq(sr, np.asarray(ref[:n], np.float64), np.asarray(est[:n], np.float64), "wb"))


SC_RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop), Hann windows of n_fft


def spectral_convergence(ref: np.ndarray, est: np.ndarray, resolutions=SC_RESOLUTIONS) -> float:
    """Spectral convergence ‖|S| − |Ŝ|‖_F / ‖|S|‖_F of the STFT magnitudes, averaged over
    ``resolutions`` (Arık et al. 2019; the full band, loud bins weigh most): 0 for an exact copy, 1
    for silence in place of the reference, phase-blind within each frame but not across frames.
    """
    import scipy.signal

    n = min(len(ref), len(est))
    ref, est = np.asarray(ref[:n], np.float64), np.asarray(est[:n], np.float64)
    out = []
    for n_fft, hop in resolutions:
        if n < n_fft:
            continue
        kw = dict(nperseg=n_fft, noverlap=n_fft - hop, window="hann", boundary=None, padded=False)
        a = np.abs(scipy.signal.stft(ref, **kw)[2])
        b = np.abs(scipy.signal.stft(est, **kw)[2])
        out.append(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12))
    return float(np.mean(out)) if out else float("nan")


def visqol_audio(ref: np.ndarray, est: np.ndarray, sr: int) -> float:
    """ViSQOL v3 audio mode (Chinen et al. 2020; the ``visqol-python`` port, offline), MOS-LQO 1-5:
    a full-band perceptual similarity for music. Both signals are resampled to the 48 kHz the mode
    is defined at (band-limited alike, so the missing top octave costs neither).
    """
    import soxr
    from visqol import VisqolApi

    n = min(len(ref), len(est))
    api = VisqolApi()
    api.create(mode="audio")
    a = soxr.resample(np.asarray(ref[:n], np.float64), sr, 48000)
    b = soxr.resample(np.asarray(est[:n], np.float64), sr, 48000)
    return float(api.measure_from_arrays(a, b, sample_rate=48000).moslqo)


# DNSMOS P.835 (Reddy et al., ICASSP 2022): a non-intrusive MOS predictor for speech, the
# network that Microsoft's ``speechmos`` wheel ships as ONNX. It reads 9.01 s of 16 kHz audio; a
# shorter clip is repeated to exactly that length (the DNS Challenge's scoring also repeats short
# clips), a longer one scored in 9.01-s windows a second apart and averaged. The raw outputs are
# mapped to the P.835 scale by the quadratic polynomials published with the model (not personalised).
DNSMOS_RATE = 16000
DNSMOS_SECONDS = 9.01
_DNSMOS_POLY = {"sig": (-0.08397278, 1.22083953, 0.0052439), "bak": (-0.13166888, 1.60915514, -0.39604546),
                "ovrl": (-0.06766283, 1.11546468, 0.04602535)}


def dnsmos_available() -> str | None:
    """None when DNSMOS can run here, else why not (one line, with the install command)."""
    try:
        _dnsmos_session()
    except (ImportError, FileNotFoundError) as e:
        return str(e)
    return None


@functools.lru_cache(maxsize=1)
def _dnsmos_session():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("DNSMOS needs the speechmos wheel (its ONNX models): pip install -e '.[speech]'")
    model = Path(list(spec.submodule_search_locations)[0]) / "dnsmos_models" / "sig_bak_ovr.onnx"
    if not model.is_file():
        raise FileNotFoundError(f"DNSMOS: {model} not found in the speechmos wheel")
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("DNSMOS needs onnxruntime: pip install -e '.[speech]'") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])


def dnsmos(y: np.ndarray, sr: int) -> dict[str, float]:
    """DNSMOS P.835 of one clip: ``sig`` (speech quality), ``bak`` (background noise), ``ovrl``
    (overall), each on the 1-5 MOS scale. Resampled to 16 kHz when needed; silence gets NaN.

    Args:
        y: Mono audio (samples,), float in [-1, 1].
        sr: Its sample rate.
    """
    y = np.clip(np.asarray(y, np.float32).reshape(-1), -1.0, 1.0)
    if sr != DNSMOS_RATE:
        import soxr

        y = soxr.resample(y, sr, DNSMOS_RATE).astype(np.float32)
    if not y.size or not np.any(y):
        return {k: float("nan") for k in _DNSMOS_POLY}
    need = int(DNSMOS_SECONDS * DNSMOS_RATE)
    if y.size < need:  # tiled to exactly one input
        y = np.tile(y, -(-need // y.size))[:need]
    starts = range(0, y.size - need + 1, DNSMOS_RATE)
    sess = _dnsmos_session()
    name = sess.get_inputs()[0].name
    raw = np.array([sess.run(None, {name: y[None, a : a + need]})[0][0] for a in starts], np.float64)
    return {k: float(np.polyval(_DNSMOS_POLY[k], raw[:, i]).mean()) for i, k in enumerate(("sig", "bak", "ovrl"))}


def dnsmos_set(wavs, sr: int) -> dict:
    """Mean DNSMOS SIG/BAK/OVRL of a set of clips, with its count (clips of silence skipped)."""
    rows = [dnsmos(w, sr) for w in wavs]
    out = {k: float(np.nanmean([r[k] for r in rows])) if rows else float("nan") for k in _DNSMOS_POLY}
    out["clips"] = int(sum(np.isfinite(r["ovrl"]) for r in rows))
    return out


def si_sdr(ref: np.ndarray, est: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio (Le Roux et al. 2019), dB: the estimate projected on
    the (zero-mean) reference is the target, the rest the distortion; higher is better.
    """
    n = min(len(ref), len(est))
    r = np.asarray(ref[:n], np.float64) - np.mean(ref[:n])
    e = np.asarray(est[:n], np.float64) - np.mean(est[:n])
    power = float(r @ r)
    if power == 0:
        return float("nan")
    target = (e @ r) / power * r
    noise = e - target
    return float(10 * np.log10(max(float(target @ target), 1e-20) / max(float(noise @ noise), 1e-20)))


def stoi(ref: np.ndarray, est: np.ndarray, sr: int) -> float:
    """Short-time objective intelligibility (Taal et al. 2011), 0 ... 1; NaN where it is undefined.

    STOI correlates 384-ms stretches (30 frames at 10 kHz) of the reference's active frames (those
    within 40 dB of its loudest). A reference with less active speech than that has no such
    stretch: ``pystoi`` then warns and returns 1e-5, which averaged in reads as a failed copy of a
    short word. Here it is NaN, so a mean over clips (``nanmean``) skips it and the caller counts it.
    """
    import warnings

    from pystoi import stoi as _stoi

    n = min(len(ref), len(est))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(_stoi(np.asarray(ref[:n], np.float64), np.asarray(est[:n], np.float64), sr, extended=False))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return float("nan")
    return value


def periodicity(y: np.ndarray, sr: int, hop: int = 256, fmin: float = 60.0, fmax: float = 500.0,
                frame_length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: (peak normalised autocorrelation over lags 1/fmax … 1/fmin, RMS).

    The normalised autocorrelation ``Σ x[n]x[n+τ] / √(Σ x[n]² · Σ x[n+τ]²)`` (over the frame's
    overlapping part, DC removed) is 1 at the period of a periodic frame and near 0 for noise.
    Frames are ``frame_length`` samples (default: two periods of ``fmin``) every ``hop``.
    """
    y = np.asarray(y, np.float64)
    n = frame_length or int(np.ceil(2 * sr / fmin))
    lo, hi = max(1, int(np.floor(sr / fmax))), int(np.ceil(sr / fmin))
    if hi >= n:
        raise ValueError(f"periodicity: frame_length {n} must exceed the longest lag {hi} (sr / fmin)")
    if len(y) < n:
        y = np.pad(y, (0, n - len(y)))
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop]
    frames = frames - frames.mean(1, keepdims=True)
    size = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(frames, size)
    acf = np.fft.irfft(spec.real ** 2 + spec.imag ** 2, size)[:, : hi + 1]
    c = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames ** 2, 1)], 1)
    lags = np.arange(hi + 1)
    head = c[:, n - lags]                # Σ_{i < n-τ} x[i]²
    tail = c[:, n:n + 1] - c[:, lags]    # Σ_{i >= τ} x[i]²
    r = acf / np.sqrt(np.maximum(head * tail, 1e-20))
    return r[:, lo:].max(1).clip(0, 1), np.sqrt(c[:, -1] / n)


def harmonicity(wavs: list[np.ndarray], sr: int, hop: int = 256, fmin: float = 60.0, fmax: float = 500.0,
                active_db: float = 30.0, voiced: float = 0.5) -> dict[str, float]:
    """How harmonic a set of clips is, over their *active* frames (RMS within ``active_db`` of
    the clip's loudest frame; silence says nothing about a voice).

    Returns:
        ``periodicity``: mean peak normalised autocorrelation of the active frames (a sung vowel
        ~1, a whisper or noise ~0.1); ``voiced_fraction``: share of active frames above
        ``voiced``; ``voiced_periodicity``: the mean over those frames (NaN if none);
        ``frames``: active frames counted.
    """
    peaks = []
    for y in wavs:
        p, rms = periodicity(y, sr, hop, fmin, fmax)
        if rms.max() <= 1e-6:  # digital silence: no active frames
            continue
        active = rms >= rms.max() * 10 ** (-active_db / 20)
        peaks.append(p[active])
    p = np.concatenate(peaks) if peaks else np.zeros(0)
    v = p[p > voiced]
    return {"periodicity": float(p.mean()) if p.size else float("nan"),
            "voiced_fraction": float((p > voiced).mean()) if p.size else float("nan"),
            "voiced_periodicity": float(v.mean()) if v.size else float("nan"), "frames": int(p.size)}
