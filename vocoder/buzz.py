"""The hop-rate buzz metric: how far energy on the comb k·sr/hop stands above the spectrum between
its teeth, in a long-term average spectrum, relative to the same measure on the reference.

A frame-rate vocoder whose phase advance between frames is wrong, or whose frames do not join,
adds a component that repeats every ``hop`` samples: lines at every multiple of the frame rate
sr/hop. (An amplitude modulation of broadband noise at the frame rate does not: modulated white
noise is still white on average; this metric measures lines, which is what is heard as buzz.)

Definition, for a waveform y:

1. Welch power spectrum, Hann window, ``resolution_hz`` bins (zero-padded when the clip is
   shorter than one segment), 50% overlap.
2. Teeth: bins within ``tol_hz`` of f_k = k·sr/hop, k = 1 ... up to ``fmax`` (default
   0.95·Nyquist, above which resampling filters roll off). ``tol_hz`` defaults to the
   Hann main-lobe half width (2 segment bins) so a line at f_k lands wholly in its tooth.
3. Between: bins at least ``2·tol_hz`` from every tooth (the main lobes' skirts belong to neither).
4. Per tooth, the mean power on the tooth over the mean power between it and its neighbours
   (the half-spacing on each side); a local ratio is blind to spectral tilt (pink noise, formants).
5. ``comb_contrast_db`` = 10·log10 of the mean of these ratios over teeth. Averaging ratios, not
   dB, keeps the estimate unbiased for noise (the log of a few noisy bins is biased low).

``buzz_db(y_hat, y_ref) = comb_contrast_db(y_hat) - comb_contrast_db(y_ref)``: 0 for a copy with
no comb of its own; a voice whose harmonics happen to sit on the comb counts in both.
"""

from __future__ import annotations

import numpy as np

__all__ = ["buzz_db", "comb_contrast_db"]


def comb_contrast_db(y: np.ndarray, sr: int, hop: int, fmax: float | None = None, resolution_hz: float = 1.0,
                     tol_hz: float | None = None) -> float:
    """Energy on the k·sr/hop comb over the energy between its teeth, in dB (0 = no comb).

    Args:
        y: (L,) waveform (any extra axes are flattened into one signal).
        sr: sample rate in Hz.
        hop: the vocoder's frame hop in samples (the comb spacing is sr / hop).
        fmax: highest tooth frequency in Hz (default 0.95 · sr / 2).
        resolution_hz: Welch bin spacing in Hz.
        tol_hz: half width of a tooth in Hz (default: the Hann main-lobe half width, at least one bin).

    Returns:
        float: mean over teeth of tooth power / between power, in dB; NaN if there is no tooth
        below ``fmax``, the signal is silent, or it is too short for teeth of the default width to
        leave room between them (an explicit ``tol_hz`` that leaves none raises ValueError).
    """
    from scipy.signal import welch

    y = np.asarray(y, np.float64).ravel()
    spacing = sr / hop
    fmax = 0.95 * sr / 2 if fmax is None else min(float(fmax), sr / 2)
    nfft = int(2 ** np.ceil(np.log2(sr / resolution_hz)))
    nperseg = min(nfft, y.size)
    explicit_tol = tol_hz is not None
    if not explicit_tol:
        tol_hz = max(2.0 * sr / nperseg, sr / nfft)
    if 4 * tol_hz >= spacing:
        if explicit_tol:
            raise ValueError(f"teeth of ±{tol_hz:.1f} Hz leave nothing between lines {spacing:.1f} Hz apart")
        return float("nan")  # too short a clip to resolve the comb
    freqs, psd = welch(y, fs=sr, window="hann", nperseg=nperseg, noverlap=nperseg // 2, nfft=nfft,
                       detrend="constant", scaling="density")
    bin_hz = freqs[1] - freqs[0]
    if not np.any(psd > 0):
        return float("nan")
    psd = psd + 1e-12 * psd.max()  # silent bands: a ratio of zeros reads as 1 (0 dB), not NaN
    k = np.arange(1, int((fmax - tol_hz) // spacing) + 1)
    if k.size == 0:
        return float("nan")
    # distance of every bin to its nearest tooth (k >= 1: DC is not a tooth)
    nearest = np.clip(np.round(freqs / spacing), 1, None)
    dist = np.abs(freqs - nearest * spacing)
    on_tooth = dist <= tol_hz
    between = dist >= 2 * tol_hz
    ratios = []
    for kk in k:
        f = kk * spacing
        local = np.abs(freqs - f) <= spacing / 2 + bin_hz / 2
        tooth, rest = local & on_tooth, local & between & (freqs > 0)
        if tooth.any() and rest.any():
            ratios.append(psd[tooth].mean() / psd[rest].mean())
    if not ratios:
        return float("nan")
    return float(10 * np.log10(np.mean(ratios)))


def buzz_db(y_hat: np.ndarray, y_ref: np.ndarray, sr: int, hop: int, **kwargs) -> float:
    """Comb contrast of ``y_hat`` minus that of the reference ``y_ref``, in dB (≈0 = no added buzz).

    Keyword arguments go to :func:`comb_contrast_db` (the same for both signals).
    """
    return comb_contrast_db(y_hat, sr, hop, **kwargs) - comb_contrast_db(y_ref, sr, hop, **kwargs)
