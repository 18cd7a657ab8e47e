"""The harmonic maths of stage one, in one place: a harmonic comb drawn through a mel filterbank,
the low-band ripple a log-mel carries, and comb read-outs of that ripple (which F0, how harmonic).

Three users share it: the generator's source-filter head draws combs (:mod:`.heads`), the
critic's pitch-salience view correlates against them (:mod:`.critic`), and the evaluation reads
generated mels with them (:func:`fine_structure`, :func:`comb_fit`, :func:`comb_f0_tracks`).
Everything here is a pure function of a :class:`vocoder.mel.MelConfig` and arrays.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from vocoder.mel import mel_filterbank

__all__ = ["COMB_F0_GRID", "COMB_FIT_HARMONIC", "COMB_FLOOR", "COMB_GRID", "COMB_MAX_HZ", "FINE_STRUCTURE_MAX_HZ",
           "FINE_STRUCTURE_WIDTH", "comb_candidates", "comb_contrast", "comb_f0_tracks", "comb_fit", "comb_geometry",
           "comb_track", "despike_f0", "fine_structure", "harmonic_templates", "low_band_ripple", "ripple_bands"]

COMB_FLOOR = 0.05    # a drawn comb's valley floor (linear, relative to a flat band): ~26 dB of contrast


FINE_STRUCTURE_WIDTH = 7  # bands of fine_structure's moving average: wider than a harmonic spacing below 1 kHz
# Harmonic lines are resolved in the mel's low, nearly linear bands (below ~1 kHz at 64 mels and
# 16 kHz: spacing ~46 Hz; voices 100-250 Hz put lines 2-5 bands apart); above ~1.5 kHz they are not.
FINE_STRUCTURE_MAX_HZ = 1500.0


def ripple_bands(mel_cfg) -> int:
    """How many of a mel config's bands (a :class:`vocoder.mel.MelConfig`) :func:`fine_structure`
    and :func:`comb_fit` read: those centred below :data:`FINE_STRUCTURE_MAX_HZ`.
    """
    return int((mel_cfg.band_centres_hz() < FINE_STRUCTURE_MAX_HZ).sum())


def fine_structure(logmels: np.ndarray, bands: int, width: int = FINE_STRUCTURE_WIDTH,
                   active_db: float = 30.0) -> dict[str, float]:
    """The ripple across the lowest ``bands`` mel bands of natural-log mel magnitudes (N, n_mels, T),
    over active frames (loudest band within ``active_db`` of the clip's loudest frame).

    The ripple is each frame's low bands minus their ``width``-band moving average, the edge
    ``width // 2`` bands dropped (the average there is one-sided). In voiced speech it is the
    harmonic lines (2-5 bands apart below ~1 kHz at 64 mels, 16 kHz), which glide with the F0.

    Returns:
        ``contrast``: mean RMS ripple of the active frames, nats (0 for a smooth spectrum);
        ``time_corr``: mean correlation of one active frame's ripple with the next's — a ripple
        fixed in frequency 1, harmonics below 1 by as much as their F0 moves between frames (the
        real digits here: ~0.77), independent noise near 0, a checkerboard (the ripple flipping
        sign every frame, the transposed convolution's artefact) near -1. Read it beside the real
        clips' value: it tells a checkerboard or a frozen pattern from lines that move;
        ``frames``: active frames counted.
    """
    d, active = low_band_ripple(logmels, bands, width, active_db, "fine_structure")
    energy = (d**2).sum(axis=1)
    pair = active[:, 1:] & active[:, :-1]
    denom = np.sqrt(energy[:, 1:] * energy[:, :-1])
    corr = (d[:, :, 1:] * d[:, :, :-1]).sum(axis=1) / np.where(denom > 0, denom, 1.0)
    pair &= denom > 1e-12  # a flat frame has no ripple to correlate
    rms = np.sqrt(energy / d.shape[1])
    return {"contrast": float(rms[active].mean()) if active.any() else float("nan"),
            "time_corr": float(corr[pair].mean()) if pair.any() else float("nan"), "frames": int(active.sum())}


def low_band_ripple(logmels, bands: int, width: int, active_db: float, who: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, n_mels, T) log-mels → each frame's ripple over the lowest ``bands`` bands, around their
    ``width``-band moving average, edges dropped and mean removed (N, bands - 2·(width // 2), T),
    and which frames are active (N, T).
    """
    x = np.asarray(logmels, np.float64)
    if x.ndim != 3 or x.shape[1] < bands:
        raise ValueError(f"{who}: expected (N, n_mels >= {bands}, T) log-mels, got shape {x.shape}")
    if width < 3 or width % 2 == 0 or bands < width + 2:
        raise ValueError(f"{who}: width must be odd, >= 3 and at most bands - 2 (width {width}, bands {bands})")
    h = width // 2
    low = x[:, :bands]
    padded = np.pad(low, ((0, 0), (h, h), (0, 0)), mode="edge")
    smooth = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1).mean(axis=-1)
    d = (low - smooth)[:, h : bands - h]
    d = d - d.mean(axis=1, keepdims=True)
    loud = x.max(axis=1)  # (N, T)
    return d, loud >= loud.max(axis=1, keepdims=True) - active_db / 20 * np.log(10)


COMB_FIT_HARMONIC = 0.7  # comb_fit's threshold for a frame whose ripple is a harmonic comb


def comb_track(logmels: np.ndarray, templates: np.ndarray, f0s: np.ndarray, bands: int,
               width: int = FINE_STRUCTURE_WIDTH, active_db: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of log-mels (N, n_mels, T): the best correlation of its low-band ripple with the
    ripple of one of the candidate F0s' combs (``templates`` (K, >= bands), :func:`comb_fit`'s
    reading), and that F0 (Hz) — both (N, T), NaN for frames that are not active or have no ripple.
    """
    t = np.asarray(templates, np.float64)
    f0s = np.asarray(f0s, np.float64)
    if t.ndim != 2 or t.shape[1] < bands or len(f0s) != len(t):
        raise ValueError(f"comb_fit: expected templates (K, >= {bands}) and K F0s, got {t.shape} and {f0s.shape}")
    d, active = low_band_ripple(logmels, bands, width, active_db, "comb_fit")
    tr, _ = low_band_ripple(t[None, :, :bands].transpose(0, 2, 1), bands, width, np.inf, "comb_fit")
    tr = tr[0].T                                                          # (K, bands')
    tr = tr / np.maximum(np.linalg.norm(tr, axis=1, keepdims=True), 1e-12)
    frames = d.transpose(0, 2, 1)                                         # (N, T, bands')
    norm = np.linalg.norm(frames, axis=2, keepdims=True)
    keep = active & (norm[..., 0] > 1e-12)                                # a flat frame has no ripple
    best = np.full(active.shape, np.nan)
    f0 = np.full(active.shape, np.nan)
    c = (frames[keep] / norm[keep]) @ tr.T                                # (M, K)
    if len(c):
        best[keep] = c.max(axis=1)
        f0[keep] = f0s[c.argmax(axis=1)]
    return best, f0


def comb_fit(logmels: np.ndarray, templates: np.ndarray, f0s: np.ndarray, bands: int,
             width: int = FINE_STRUCTURE_WIDTH, active_db: float = 30.0) -> dict:
    """How much each active frame's low-band ripple looks like the harmonic comb of one F0 — a
    mel-domain harmonicity that needs no vocoder: the best correlation, over the candidate F0s
    ``f0s`` (K,), between the frame's ripple and the ripple of that F0's comb drawn through the
    same mel filterbank (``templates`` (K, >= bands) log contrast per band, e.g.
    :func:`harmonic_templates`), both as :func:`fine_structure` takes them
    (per frame: :func:`comb_track`).

    A ripple of lines at the multiples of one F0 scores near 1 at that F0; a ripple of the right
    depth that is not a harmonic series (a frozen pattern, noise) scores what the best of K random
    alignments gives (~0.4-0.5 here). The real digits here: mean 0.59, 28 % of active frames at or
    above :data:`COMB_FIT_HARMONIC`.

    Returns:
        ``fit``: the mean best correlation of the active frames; ``harmonic_frames``: the share of
        them at or above :data:`COMB_FIT_HARMONIC`; ``f0_hz``: the 10th/50th/90th percentiles of
        those frames' best F0 (NaN when none); ``frames``: active frames counted.
    """
    best, f0 = comb_track(logmels, templates, f0s, bands, width, active_db)
    scored = np.isfinite(best)
    best, f0 = best[scored], f0[scored]
    if not len(best):
        return {"fit": float("nan"), "harmonic_frames": float("nan"), "f0_hz": [float("nan")] * 3, "frames": 0}
    hit = best >= COMB_FIT_HARMONIC
    return {"fit": float(best.mean()), "harmonic_frames": float(hit.mean()),
            "f0_hz": [float(v) for v in np.percentile(f0[hit], [10, 50, 90])] if hit.any() else [float("nan")] * 3,
            "frames": int(len(best))}


COMB_GRID = 1025      # frequency points of the harmonic comb (0 … sr/2: n_fft 2048's bins)
COMB_MAX_HZ = 4000.0  # bands reaching above this are wide (≥ 3 harmonics of 400 Hz): comb ≈ flat there


def comb_geometry(mel) -> dict[str, torch.Tensor]:
    """What drawing a harmonic comb through a mel filterbank needs, from a :class:`vocoder.mel.MelConfig`:
    ``fb`` the filterbank on a :data:`COMB_GRID`-point frequency grid, rows normalised to sum 1
    (n_mels, G); ``hz`` the grid (G,); ``sigma`` the analysis window's main lobe as a Gaussian σ in
    Hz (a Hann window's magnitude is 0.5 one bin off its peak: σ = 0.85 bins); ``bands`` the low
    bands that lie wholly below :data:`COMB_MAX_HZ` (the bands are sorted by frequency; wider ones
    average the comb to flat) and ``points`` the grid points those bands use.
    """
    n_fft = 2 * (COMB_GRID - 1)
    fb = torch.as_tensor(mel_filterbank(dataclasses.replace(mel, n_fft=n_fft, win_length=n_fft)), dtype=torch.float32)
    fb = fb / fb.sum(1, keepdim=True).clamp_min(1e-12)
    hz = torch.linspace(0, mel.sample_rate / 2, COMB_GRID)
    cut = int((hz <= COMB_MAX_HZ).sum())
    bands = int((fb[:, cut:].sum(1) == 0).cumprod(0).sum())  # up to the first band reaching past the cut
    points = int((fb[:bands] > 0).any(0).nonzero().max()) + 1 if bands else 0
    return {"fb": fb, "hz": hz, "sigma": torch.tensor(0.85 * mel.sample_rate / (mel.win_length or mel.n_fft)),
            "bands": torch.tensor(bands), "points": torch.tensor(points)}


def comb_contrast(fb: torch.Tensor, hz: torch.Tensor, sigma: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
    """The harmonic comb of F0 ``f0`` (Hz, any shape S) averaged by each filter of ``fb`` (nb, G)
    on the grid ``hz`` (G,), relative to a flat spectrum of the same mean: (*S, nb); 1 where the
    comb is unresolved, above 1 on a harmonic, below between. Peaks at k·F0 (k ≥ 1) shaped like
    the window's main lobe (Gaussian σ Hz). Differentiable in F0 almost everywhere (the nearest
    harmonic is chosen by rounding).
    """
    f = f0[..., None]
    r = hz / f
    dist = f * (r - torch.round(r))                      # Hz to the nearest multiple of F0
    peaks = torch.exp(-0.5 * (dist / sigma) ** 2) * torch.sigmoid(8.0 * (r - 0.5))  # no peak at k = 0
    flat = sigma * math.sqrt(2 * math.pi) / f0[..., None]  # the comb's mean over a wide band
    return torch.einsum("mg,...g->...m", fb, peaks) / flat


def harmonic_templates(mel, f0s) -> tuple[torch.Tensor, int]:
    """Full-depth harmonic combs through the mel filterbank: for each F0 in ``f0s`` (Hz) the log
    contrast ``log(comb / flat + floor)`` of the low bands (K, bands), and ``bands`` (the low bands
    that can hold a comb, :func:`comb_geometry`).
    """
    g = comb_geometry(mel)
    nb, ng = int(g["bands"]), int(g["points"])
    f0 = torch.as_tensor(f0s, dtype=torch.float32)
    band = comb_contrast(g["fb"][:nb, :ng], g["hz"][:ng], g["sigma"], f0)
    return torch.log(band + COMB_FLOOR), nb


COMB_F0_GRID = (60.0, 400.0, 120)  # the comb read-outs' candidate F0s: lowest, highest (Hz), count (log-spaced)


def comb_candidates(mel, f0_range=COMB_F0_GRID[:2], count: int = COMB_F0_GRID[2],
                    who: str = "comb") -> tuple[np.ndarray, np.ndarray, int]:
    """The comb read-outs' shared setup: ``count`` log-spaced candidate F0s over ``f0_range`` (Hz),
    their :func:`harmonic_templates` (count, comb bands) as numpy, and the ripple bands
    (:func:`ripple_bands`) the read-outs use; a one-line error naming ``who`` when
    the mel has fewer bands that can hold a comb than the ripple reads.
    """
    f0s = np.geomspace(float(f0_range[0]), float(f0_range[1]), int(count))
    templates, nb = harmonic_templates(mel, f0s)
    bands = ripple_bands(mel)
    if nb < bands:
        raise ValueError(f"{who}: the mel has {nb} bands that can hold a comb, the ripple uses {bands}")
    return f0s, templates.numpy(), bands


def comb_f0_tracks(logmels, mel, f0_range=COMB_F0_GRID[:2], count: int = COMB_F0_GRID[2]) -> np.ndarray:
    """Natural-log mels (N, n_mels, T) → each frame's F0 (N, T), Hz, read as the best-fitting of
    ``count`` log-spaced harmonic combs over ``f0_range`` (:func:`comb_track` on
    the bands :func:`ripple_bands` reads), NaN where the fit is below
    :data:`COMB_FIT_HARMONIC` (not a harmonic frame) or the frame is not active.
    """
    f0s, templates, bands = comb_candidates(mel, f0_range, count, "comb_f0_tracks")
    best, f0 = comb_track(np.asarray(logmels), templates, f0s, bands)
    return np.where(np.nan_to_num(best, nan=-1.0) >= COMB_FIT_HARMONIC, f0, np.nan)


def despike_f0(f0, semitones: float, window: int = 9) -> tuple[torch.Tensor, int]:
    """F0 tracks (N, frames), Hz, NaN where a frame is not harmonic → the same with each harmonic
    frame set to NaN whose F0 is more than ``semitones`` from the median of its clip's harmonic
    frames around it (``window`` of them, centred; fewer at the ends), and how many were dropped.
    An octave error of a comb read-out is 12 semitones off; a voice's glide moves the median with
    it. Clips with fewer than 3 harmonic frames are left as they are (no majority to trust).
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"despike_f0: window must be odd and >= 1, got {window}")
    out = torch.as_tensor(f0, dtype=torch.float64).clone()
    h, dropped = window // 2, 0
    for track in out:
        idx = torch.nonzero(torch.isfinite(track) & (track > 0))[:, 0]
        if len(idx) < 3:
            continue
        st = 12 * torch.log2(track[idx])
        med = torch.stack([st[max(0, i - h) : i + h + 1].median() for i in range(len(st))])
        bad = (st - med).abs() > semitones
        track[idx[bad]] = float("nan")
        dropped += int(bad.sum())
    return out, dropped
