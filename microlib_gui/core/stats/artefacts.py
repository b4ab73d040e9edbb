"""Stripe and tiling artefacts of a generated volume, found in its line power spectra.

A generator built from strided transposed convolutions repeats itself with the period of its
stride (2, 4, 8, 16 or 32 voxels): a badly trained one shows stripes or a tiled look. Along an
axis, such a pattern is a sharp peak in the power spectrum of the lines parallel to that axis
at the frequency of the period, a peak that the training image does not have (a real
microstructure's spectrum falls smoothly with frequency).

:func:`axis_spectra` averages the power spectra of all lines parallel to each axis (Welch's
method: segments of ``segment`` pixels, no window, mean removed), :func:`peak_ratio` measures
the sharpest peak (each bin's power over the geometric mean of its two neighbours), and
:func:`stripe_score` divides the volume's sharpest peak by the image's: about 1 for a volume
whose spectra are as smooth as the image's, several times that for stripes. The default
segment (64 px) puts the periods 2-32 on exact frequency bins, so a periodic pattern's power
stays in one bin.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from .metrics import StatsError

#: Segment length (pixels) of the spectra: periods 2, 4, 8, 16 and 32 fall on exact bins.
DEFAULT_SEGMENT = 64
#: Stripe scores above this flag a volume (a sharp peak 1.5x the image's sharpest).
STRIPE_LIMIT = 1.5


def _indicators(a: np.ndarray) -> list[np.ndarray]:
    """Float fields whose spectra are summed: each phase's indicator (labels) or the values."""
    if np.issubdtype(a.dtype, np.floating):
        return [a.astype(np.float32)]
    phases = np.unique(a)
    # with two phases one indicator is 1 minus the other: the same spectrum, once is enough
    return [(a == k).astype(np.float32) for k in (phases[1:] if len(phases) == 2 else phases)]


def axis_spectra(a: np.ndarray, segment: int = DEFAULT_SEGMENT) -> tuple[np.ndarray, np.ndarray]:
    """Mean power spectrum of the lines parallel to each axis of an image or volume.

    Parameters
    ----------
    a : ndarray
        2D image or 3D volume: integer labels (the spectra of the phases' indicators are
        summed) or float intensities.
    segment : int
        Segment length of Welch's method (no window, each segment's mean removed); every
        axis must be at least this long.

    Returns
    -------
    freqs : ndarray (segment // 2 + 1,)
        Frequencies in cycles per pixel (period = 1 / freq).
    spectra : ndarray (a.ndim, segment // 2 + 1)
        Row ``i``: the mean spectrum of the lines along axis ``i``.

    Raises
    ------
    StatsError
        Not 2D or 3D, or an axis shorter than ``segment``.
    """
    a = np.asarray(a)
    if a.ndim not in (2, 3):
        raise StatsError(f"expected a 2D image or a 3D volume, got shape {a.shape}")
    if min(a.shape) < segment:
        raise StatsError(f"every side must be at least {segment} px for the spectra (shape {a.shape})")
    out = np.zeros((a.ndim, segment // 2 + 1))
    freqs = None
    for f in _indicators(a):
        for ax in range(a.ndim):
            freqs, p = signal.welch(f, nperseg=segment, noverlap=segment // 2, window="boxcar",
                                    detrend="constant", axis=ax, scaling="spectrum")
            out[ax] += np.moveaxis(p, ax, -1).reshape(-1, p.shape[ax]).mean(0)
    if segment % 2 == 0:
        out[:, -1] *= 2.0  # the one-sided spectrum doubles every bin but the mean and Nyquist: alike here
    return freqs, out


def peak_ratio(spectrum: np.ndarray) -> tuple[float, int]:
    """The sharpest peak of a spectrum and its bin.

    Each bin from 2 to the Nyquist bin is compared with its neighbours: its power over the
    geometric mean of the two (the Nyquist bin: over the one below). Bins 0 (the mean,
    removed) and 1 (next to it) are left out.

    Parameters
    ----------
    spectrum : ndarray (n,)
        One row of :func:`axis_spectra`.

    Returns
    -------
    ratio : float
        About 1 for a smooth spectrum; a periodic pattern makes it large.
    bin : int
        Where the peak is (period = segment / bin pixels).
    """
    p = np.maximum(np.asarray(spectrum, dtype=float), 1e-30)
    ratios = np.empty(len(p))
    ratios[:2] = 0.0
    ratios[2:-1] = p[2:-1] / np.sqrt(p[1:-2] * p[3:])
    ratios[-1] = p[-1] / p[-2]
    k = int(np.argmax(ratios))
    return float(ratios[k]), k


def stripe_score(volume: np.ndarray, image: np.ndarray, segment: int = DEFAULT_SEGMENT) -> dict:
    """How much sharper the volume's sharpest spectral peak is than the training image's.

    Parameters
    ----------
    volume : ndarray
        Generated 3D volume (labels or intensities).
    image : ndarray
        The 2D training image (or a reference volume), same kind as ``volume``.
    segment : int
        See :func:`axis_spectra`.

    Returns
    -------
    dict
        ``score`` (volume's peak ratio / image's; above :data:`STRIPE_LIMIT`: flagged),
        ``flagged``, ``period`` (pixels, of the volume's peak), ``axis`` (of that peak),
        ``volume_peaks`` and ``image_peaks`` (peak ratio per axis), ``segment``.
    """
    _, pv = axis_spectra(volume, segment)
    _, pi = axis_spectra(image, segment)
    vol = [peak_ratio(s) for s in pv]
    img = [peak_ratio(s) for s in pi]
    axis = int(np.argmax([r for r, _ in vol]))
    ratio, k = vol[axis]
    score = ratio / max(r for r, _ in img)
    return {"score": float(score), "flagged": bool(score > STRIPE_LIMIT), "period": segment / k, "axis": axis,
            "volume_peaks": [r for r, _ in vol], "image_peaks": [r for r, _ in img], "segment": segment}
