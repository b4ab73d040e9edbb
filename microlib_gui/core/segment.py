"""Segmentation of a micrograph into phases 0..n-1.

Three ways, as in the wizard:

* from picked phase grey levels: thresholds halfway between neighbours (MicroLib's rule);
* from explicit thresholds;
* automatic: multi-Otsu (scikit-image) on a deblurred image, with the number of
  phases given or estimated from the peaks of the histogram.

Grey levels and thresholds are on MicroLib's 0-255 scale (floats allowed, so
16-bit images keep their precision). Grayscale entries skip segmentation;
colour entries are kept as colour (:func:`needs_segmentation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import MicrolibError

MAX_PHASES = 8
#: Gaussian blur (px) undone before automatic thresholding; micrographs are rarely sharper.
DEBLUR_SIGMA = 1.0
#: Wiener balance (noise-to-signal); larger is smoother.
DEBLUR_BALANCE = 0.03


class SegmentError(MicrolibError):
    """A segmentation request cannot be met (bad levels, too many phases...)."""


@dataclass
class Segmentation:
    """Labels and how they were made."""

    labels: np.ndarray  # uint8 (H, W), 0..n-1
    thresholds: list[float]
    method: str  # "phases" | "thresholds" | "auto"
    phases: list[float] = field(default_factory=list)

    @property
    def n_phases(self) -> int:
        return len(self.thresholds) + 1

    def volume_fractions(self, ignore: np.ndarray | None = None) -> list[float]:
        return volume_fractions(self.labels, self.n_phases, ignore)


def gray255(image: np.ndarray) -> np.ndarray:
    """Float32 ``(H, W)`` luminance on the 0-255 scale from float [0, 1], uint8 or uint16 arrays."""
    a = np.asarray(image)
    if a.ndim == 3:
        if a.shape[-1] not in (3, 4):
            raise SegmentError(f"expected a gray or RGB image, got shape {a.shape}")
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        scale = {np.dtype(np.uint8): 1.0, np.dtype(np.uint16): 1 / 257.0}.get(np.asarray(image).dtype, 255.0)
        return (a * scale).astype(np.float32)
    if a.ndim != 2:
        raise SegmentError(f"expected a 2D image, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float32)
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 257.0
    if np.issubdtype(a.dtype, np.floating) or a.dtype == np.bool_:
        return a.astype(np.float32) * 255.0
    raise SegmentError(f"unsupported pixel type {a.dtype}")


def deblur(gray: np.ndarray, sigma: float = DEBLUR_SIGMA, balance: float = DEBLUR_BALANCE) -> np.ndarray:
    """Wiener deconvolution of a Gaussian blur of ``sigma`` px (FFT; edges mirrored to avoid wrap)."""
    if sigma <= 0:
        return np.asarray(gray, np.float32)
    g = np.asarray(gray, np.float64)
    h, w = g.shape
    pad = int(np.ceil(4 * sigma)) + 2
    gp = np.pad(g, pad, mode="reflect")
    H, W = gp.shape
    fy = np.fft.fftfreq(H)[:, None]
    fx = np.fft.rfftfreq(W)[None, :]
    otf = np.exp(-2 * (np.pi * sigma) ** 2 * (fx * fx + fy * fy))  # Fourier transform of the Gaussian
    mean = gp.mean()
    out = np.fft.irfft2(np.fft.rfft2(gp - mean) * otf / (otf * otf + balance), s=gp.shape) + mean
    return out[pad: pad + h, pad: pad + w].astype(np.float32)


def thresholds_from_phases(levels) -> list[float]:
    """Thresholds halfway between neighbouring phase grey levels (MicroLib's rule)."""
    lv = sorted(float(v) for v in levels)
    if len(lv) < 2:
        raise SegmentError("pick at least two phase grey levels")
    if len(lv) > MAX_PHASES:
        raise SegmentError(f"{len(lv)} phases is more than the {MAX_PHASES} supported")
    if len(set(lv)) != len(lv):
        raise SegmentError(f"phase grey levels must differ, got {lv}")
    return [(a + b) / 2 for a, b in zip(lv, lv[1:])]


def check_thresholds(thresholds) -> list[float]:
    t = [float(v) for v in thresholds]
    if not t:
        raise SegmentError("give at least one threshold")
    if len(t) >= MAX_PHASES:
        raise SegmentError(f"{len(t) + 1} phases is more than the {MAX_PHASES} supported")
    if any(not np.isfinite(v) or v < 0 or v > 255 for v in t):
        raise SegmentError(f"thresholds must lie in 0..255, got {t}")
    return sorted(t)


def apply_thresholds(gray: np.ndarray, thresholds) -> np.ndarray:
    """Labels 0..n-1: the number of thresholds each pixel is at or above. Fast enough for previews."""
    g = np.asarray(gray)
    out = np.zeros(g.shape, np.uint8)
    for t in sorted(float(v) for v in thresholds):
        out += g >= t
    return out


def estimate_n_phases(gray: np.ndarray, ignore: np.ndarray | None = None, max_phases: int = 4) -> int:
    """Number of phases: prominent peaks of the smoothed grey-level histogram (at least 2)."""
    from scipy.ndimage import gaussian_filter1d
    from scipy.signal import find_peaks

    vals = np.asarray(gray)[~ignore] if ignore is not None else np.asarray(gray).ravel()
    # The 0.5-99.5 percentile range: clipped pixels piled at 0 or 255 are not a phase.
    lo, hi = np.percentile(vals, [0.5, 99.5])
    if hi - lo < 1e-6:
        return 2
    hist, _ = np.histogram(vals, bins=128, range=(lo, hi))
    smooth = gaussian_filter1d(hist.astype(float), 2.0)
    peaks, _ = find_peaks(np.concatenate([[0], smooth, [0]]), prominence=0.08 * smooth.max(), distance=6)
    return int(np.clip(len(peaks), 2, max_phases))


def auto_thresholds(gray: np.ndarray, n_phases: int | None = None, ignore: np.ndarray | None = None) -> list[float]:
    """Multi-Otsu thresholds for ``n_phases`` (estimated when None) on the pixels not ignored."""
    from skimage.filters import threshold_multiotsu

    g = np.asarray(gray, np.float32)
    n = estimate_n_phases(g, ignore) if n_phases is None else int(n_phases)
    if not 2 <= n <= MAX_PHASES:
        raise SegmentError(f"number of phases must be 2..{MAX_PHASES}, got {n}")
    vals = g[~ignore] if ignore is not None else g.ravel()
    if vals.size == 0 or float(vals.max() - vals.min()) < 1e-6:
        raise SegmentError("the image is uniform: nothing to segment")
    try:
        t = threshold_multiotsu(np.clip(vals, 0, 255), classes=n, nbins=256)
    except ValueError as exc:  # too few distinct levels for that many classes
        raise SegmentError(f"cannot split the image into {n} phases ({exc})") from None
    return [float(v) for v in t]


def segment(image: np.ndarray, *, phases=None, thresholds=None, n_phases: int | None = None,
            ignore: np.ndarray | None = None, deblur_sigma: float | None = None) -> Segmentation:
    """Segment ``image`` (gray or colour array) into labels 0..n-1.

    Give ``phases`` (grey levels), or ``thresholds``, or neither for automatic
    thresholding (``n_phases`` phases, estimated if None). ``ignore`` (bool
    mask, e.g. the scale bar) is left out of the automatic statistics.
    ``deblur_sigma``: the blur (px) undone first; by default :data:`DEBLUR_SIGMA`
    for automatic thresholds and none for levels/thresholds (MicroLib's way).
    """
    g = gray255(image)
    if phases is not None or thresholds is not None:
        d = deblur(g, deblur_sigma) if deblur_sigma else g
        if phases is not None:
            t = thresholds_from_phases(phases)
            return Segmentation(apply_thresholds(d, t), t, "phases", sorted(float(v) for v in phases))
        t = check_thresholds(thresholds)
        return Segmentation(apply_thresholds(d, t), t, "thresholds")
    d = deblur(g, DEBLUR_SIGMA if deblur_sigma is None else deblur_sigma)
    # Flat areas (padding, burnt-in graphics) are not material: leave them out of the statistics.
    stats_ignore = flat_pixels(g) if ignore is None else (np.asarray(ignore, bool) | flat_pixels(g))
    if stats_ignore.all():
        stats_ignore = ignore
    t = auto_thresholds(d, n_phases, stats_ignore)
    return Segmentation(apply_thresholds(d, t), t, "auto")


def flat_pixels(gray: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood is exactly one grey level (noise-free, so not micrograph)."""
    from scipy import ndimage as ndi

    g = np.asarray(gray, np.float32)
    return (ndi.maximum_filter(g, 3) - ndi.minimum_filter(g, 3)) == 0


def volume_fractions(labels: np.ndarray, n_phases: int, ignore: np.ndarray | None = None) -> list[float]:
    """Share of each phase 0..n-1 among the pixels not ignored."""
    lab = np.asarray(labels)
    vals = lab[~ignore] if ignore is not None else lab.ravel()
    if vals.size == 0:
        return [0.0] * n_phases
    counts = np.bincount(vals.astype(np.int64), minlength=n_phases)[:n_phases]
    return [float(c) / vals.size for c in counts]


def needs_segmentation(data_type: str | None) -> bool:
    """Grayscale and colour entries are kept as they are; n-phase ones are segmented."""
    return data_type not in ("grayscale", "colour")


def data_type_for(n_phases: int) -> str:
    return "twophase" if n_phases == 2 else "nphase"


def labels_to_png(labels: np.ndarray) -> np.ndarray:
    """uint8 image for a label PNG: two phases as 0/255 (MicroLib's training images), else 0..n-1 spread."""
    lab = np.asarray(labels, np.uint8)
    n = int(lab.max()) + 1 if lab.size else 1
    if n <= 1:
        return np.zeros_like(lab)
    return (lab.astype(np.uint16) * 255 // (n - 1)).astype(np.uint8)


class ThresholdPreview:
    """Fast repeated thresholding of one image, for live previews while a line is dragged.

    The image is quantised once to quarter grey levels (uint16); each preview is
    then one lookup-table gather, and volume fractions come from the histogram
    without touching the pixels.
    """

    STEPS = 4  # quantisation steps per grey level

    def __init__(self, gray: np.ndarray):
        q = np.rint(np.clip(np.asarray(gray, np.float32), 0, 255) * self.STEPS)
        self.q = q.astype(np.uint16)
        self.hist = np.bincount(self.q.ravel(), minlength=256 * self.STEPS + 1).astype(np.int64)
        self.size = int(self.q.size)

    def _lut(self, thresholds) -> np.ndarray:
        levels = np.arange(self.hist.size, dtype=np.float32) / self.STEPS
        return apply_thresholds(levels, thresholds)

    def labels(self, thresholds) -> np.ndarray:
        return self._lut(thresholds)[self.q]

    def fractions(self, thresholds) -> list[float]:
        lut = self._lut(thresholds)
        n = len(list(thresholds)) + 1
        counts = np.bincount(lut, weights=self.hist, minlength=n)
        return [float(c) / self.size for c in counts[:n]]

    def rgba(self, thresholds, colours: np.ndarray, opacity: float) -> np.ndarray:
        """``(H, W, 4)`` uint8 overlay: phase colours at ``opacity``, by one 4-byte gather."""
        lut = self._lut(thresholds)
        table = np.zeros((lut.size, 4), np.uint8)
        table[:, :3] = np.asarray(colours, np.uint8)[np.minimum(lut, len(colours) - 1)]
        table[:, 3] = int(round(255 * float(opacity)))
        packed = table.view(np.uint32).ravel()
        return packed[self.q].view(np.uint8).reshape(self.q.shape + (4,))
