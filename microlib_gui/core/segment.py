"""Segmentation of a micrograph into phases 0..n-1.

Three ways, as in the wizard:

* from picked phase grey levels: thresholds halfway between neighbours (MicroLib's rule);
* from explicit thresholds;
* automatic: multi-Otsu (scikit-image) on a deblurred image, with the number of
  phases given or estimated from the peaks of the histogram.

Unevenly lit micrographs are corrected first (:func:`estimate_background`,
:func:`correct_background`): a smooth light field is fitted together with the
phases' grey levels and divided out (or subtracted), when
:func:`illumination_unevenness` says the light varies enough to matter.

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

#: ``background=`` choices: "auto" corrects when uneven lighting is detected.
BACKGROUND_MODES = ("auto", "off", "divide", "subtract")
BACKGROUND_METHODS = ("divide", "subtract")
#: The light field is a polynomial surface of this total degree over the image: smooth at the
#: scale of the field of view (a tilted ramp plus an off-centre vignette), too stiff to follow
#: the microstructure, which is always much smaller than the image.
BACKGROUND_DEGREE = 3
#: Larger images are reduced by block means to at most this many pixels along the longer side
#: for the fit (the light is smooth); the surface is fitted to block means of each phase's
#: pixels, at most BACKGROUND_GRID blocks a side.
BACKGROUND_SIZE = 1024
BACKGROUND_GRID = 64
#: Rounds of (split the corrected image into phases, refit levels and field to them), until
#: the field changes by less than BACKGROUND_TOL (log units: 0.2 %) anywhere.
BACKGROUND_ROUNDS = 10
BACKGROUND_TOL = 2e-3
#: "auto" corrects when the fitted light varies by more than this share of the mean brightness
#: (5th to 95th percentile over the image). Below it a global threshold barely moves.
UNEVEN_LIMIT = 0.15


class SegmentError(MicrolibError):
    """A segmentation request cannot be met (bad levels, too many phases...)."""


@dataclass
class Background:
    """A fitted light field: the image is ``levels[phase] x field`` (divide) or ``+ field`` (subtract)."""

    field: np.ndarray  #: float32 (H, W): geometric mean 1 (divide) or mean 0 (subtract)
    method: str  #: "divide" | "subtract"
    levels: list[float]  #: each phase's grey level once corrected, ascending
    unevenness: float  #: 5th-95th percentile spread of the light, as a share of the mean brightness
    misfit: float = 0.0  #: of the corrected image to the phases' levels (:func:`level_misfit`)
    misfit_even: float = 0.0  #: of the image as lit (no correction)

    @property
    def detected(self) -> bool:
        """Uneven enough to matter, and the corrected image fits its phases' levels better than the image as lit."""
        return self.unevenness >= UNEVEN_LIMIT and self.misfit < self.misfit_even

    def noise_gain(self) -> np.ndarray | None:
        """Per-pixel factor by which correcting multiplies the noise power (None: unchanged)."""
        return (1.0 / self.field) ** 2 if self.method == "divide" else None


@dataclass
class Segmentation:
    """Labels and how they were made."""

    labels: np.ndarray  # uint8 (H, W), 0..n-1
    thresholds: list[float]
    method: str  # "phases" | "thresholds" | "auto"
    phases: list[float] = field(default_factory=list)
    background: str = "off"  #: the correction applied: "off" | "divide" | "subtract"
    unevenness: float | None = None  #: of the fitted light field (None: not estimated)

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


def deblur(gray: np.ndarray, sigma: float = DEBLUR_SIGMA, balance: float = DEBLUR_BALANCE,
           noise_gain: np.ndarray | None = None) -> np.ndarray:
    """Wiener deconvolution of a Gaussian blur of ``sigma`` px (FFT; edges mirrored to avoid wrap).

    ``noise_gain`` (per pixel, >= 1 where the noise was amplified, e.g. by a
    background correction) raises the balance there in proportion: the image
    is deconvolved at balances ``balance x 1, 2, 4...`` and each pixel blends
    the two that bracket its own.
    """
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
    spec = np.fft.rfft2(gp - mean)

    def at(b: float) -> np.ndarray:
        out = np.fft.irfft2(spec * otf / (otf * otf + b), s=gp.shape) + mean
        return out[pad: pad + h, pad: pad + w]

    if noise_gain is None:
        return at(balance).astype(np.float32)
    steps = np.log2(np.clip(np.asarray(noise_gain, np.float64), 1.0, 2.0 ** 8))
    top = int(np.ceil(steps.max()))
    if top == 0:
        return at(balance).astype(np.float32)
    out = np.zeros((h, w))
    for k in range(top + 1):  # hat weights: each pixel takes its two neighbouring balances
        wk = np.clip(1 - np.abs(steps - k), 0, 1)
        if wk.any():
            out += wk * at(balance * 2.0 ** k)
    return out.astype(np.float32)


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
            ignore: np.ndarray | None = None, deblur_sigma: float | None = None,
            background: str = "auto") -> Segmentation:
    """Segment ``image`` (gray or colour array) into labels 0..n-1.

    Give ``phases`` (grey levels), or ``thresholds``, or neither for automatic
    thresholding (``n_phases`` phases, estimated if None). ``ignore`` (bool
    mask, e.g. the scale bar) is left out of the automatic statistics.
    ``deblur_sigma``: the blur (px) undone first; by default :data:`DEBLUR_SIGMA`
    for automatic thresholds and none for levels/thresholds (MicroLib's way).
    ``background``: uneven lighting corrected first: "auto" (when
    :func:`illumination_unevenness` detects it), "off", "divide" or
    "subtract"; levels and thresholds then refer to the corrected image.
    """
    g = gray255(image)
    # Flat areas (padding, burnt-in graphics) are not material: leave them out of the statistics.
    stats_ignore = flat_pixels(g) if ignore is None else (np.asarray(ignore, bool) | flat_pixels(g))
    if stats_ignore.all():
        stats_ignore = ignore
    if phases is not None or thresholds is not None:
        t = thresholds_from_phases(phases) if phases is not None else check_thresholds(thresholds)
        bg, uneven = resolve_background(g, background, len(t) + 1, stats_ignore)
        d = work_image(g, deblur_sigma or 0.0, bg)
        how = {"background": bg.method if bg else "off", "unevenness": uneven}
        if phases is not None:
            return Segmentation(apply_thresholds(d, t), t, "phases", sorted(float(v) for v in phases), **how)
        return Segmentation(apply_thresholds(d, t), t, "thresholds", **how)
    sigma = DEBLUR_SIGMA if deblur_sigma is None else deblur_sigma
    t, bg, uneven, d = _auto(g, n_phases, stats_ignore, sigma, background)
    return Segmentation(apply_thresholds(d, t), t, "auto", background=bg.method if bg else "off", unevenness=uneven)


def auto_thresholds_corrected(gray: np.ndarray, n_phases: int | None = None, ignore: np.ndarray | None = None,
                              deblur_sigma: float = DEBLUR_SIGMA, background: str = "auto", resolve=None
                              ) -> tuple[list[float], Background | None, float | None]:
    """Automatic thresholds of ``gray`` after the ``background`` correction: (thresholds, correction, unevenness).

    Without a correction: multi-Otsu on the sharpened image (:func:`auto_thresholds`).
    With one: halfway between the phases' grey levels (:func:`level_thresholds`),
    the model the light field was fitted with. ``n_phases`` None: estimated,
    again after the correction (the light no longer smears the histogram).
    ``resolve``: the fitting function, :func:`resolve_background` by default
    (a caller may pass a caching one with the same arguments).
    """
    return _auto(gray, n_phases, ignore, deblur_sigma, background, resolve)[:3]


def _auto(gray, n_phases, ignore, deblur_sigma, background, resolve=None):
    """:func:`auto_thresholds_corrected` and the work image the thresholds apply to."""
    check_background_mode(background)
    fit = resolve or resolve_background
    plain = None
    if n_phases is None:
        plain = work_image(gray, deblur_sigma)
        n = estimate_n_phases(plain, ignore)
    else:
        n = int(n_phases)
    if not 2 <= n <= MAX_PHASES:
        raise SegmentError(f"number of phases must be 2..{MAX_PHASES}, got {n}")
    bg, uneven = fit(gray, background, n, ignore)
    if bg is None:
        plain = work_image(gray, deblur_sigma) if plain is None else plain
        return auto_thresholds(plain, n, ignore), None, uneven, plain
    d = work_image(gray, deblur_sigma, bg)
    if n_phases is None:
        n2 = estimate_n_phases(d, ignore)
        if n2 != n:
            bg2, uneven2 = fit(gray, background, n2, ignore)
            if bg2 is not None:
                n, bg, uneven, d = n2, bg2, uneven2, work_image(gray, deblur_sigma, bg2)
    return level_thresholds(d, n, ignore), bg, uneven, d


def level_thresholds(work: np.ndarray, n_phases: int, ignore: np.ndarray | None = None, rounds: int = 5) -> list[float]:
    """Thresholds halfway between the phases' grey levels (MicroLib's rule), the levels found from the image.

    Starts from multi-Otsu; each round takes each phase's level as the median of
    its interior (the phase eroded by 1 px, so blurred edges do not pull it)
    and puts the thresholds halfway between. Unlike Otsu's, these thresholds do
    not drift toward the larger phase.
    """
    from scipy import ndimage as ndi

    g = np.asarray(work, np.float32)
    valid = np.ones(g.shape, bool) if ignore is None else ~np.asarray(ignore, bool)
    t = auto_thresholds(g, n_phases, ignore)
    for _ in range(rounds):
        lab = apply_thresholds(g, t)
        levels = []
        for k in range(n_phases):
            inner = ndi.binary_erosion(lab == k) & valid
            if inner.sum() < 16:  # a phase too thin to have an interior: keep Otsu's split
                return t
            levels.append(float(np.median(g[inner])))
        new = [(a + b) / 2 for a, b in zip(levels, levels[1:])]
        if new != sorted(new) or np.allclose(new, t, atol=0.01):
            break
        t = new
    return [float(v) for v in t]


# -- uneven lighting -------------------------------------------------------------------------
def check_background_mode(mode: str) -> str:
    if mode not in BACKGROUND_MODES:
        raise SegmentError(f"background correction {mode!r} is not one of {', '.join(BACKGROUND_MODES)}")
    return mode


class _Frame:
    """Pixel centres of an image of ``shape`` in coordinates centred on it, the longer side spanning -1..1.

    The light field is a polynomial in these coordinates, so one fit evaluates
    at any resolution: on the reduced image while fitting, on the full one at
    the end. ``blocks`` numbers the fitting blocks (:data:`BACKGROUND_GRID` a side).
    """

    def __init__(self, shape, factor: int = 1, full_shape=None):
        H, W = full_shape or shape
        self.scale = max(H, W) / 2.0
        h, w = shape
        self.x = ((np.arange(w) + 0.5) * factor - W / 2) / self.scale
        self.y = ((np.arange(h) + 0.5) * factor - H / 2) / self.scale
        f = max(1, int(np.ceil(max(h, w) / BACKGROUND_GRID)))
        bx, by = np.arange(w) // f, np.arange(h) // f
        self.n_blocks = int((bx[-1] + 1) * (by[-1] + 1))
        self.blocks = (by[:, None] * (bx[-1] + 1) + bx[None, :]).astype(np.int64)


def _terms(degree: int) -> np.ndarray:
    ii, jj = np.meshgrid(np.arange(degree + 1), np.arange(degree + 1), indexing="ij")
    return (ii + jj <= degree).ravel()  # monomials x^i y^j of total degree <= degree


def _fit_surface(z: np.ndarray, labels: np.ndarray | None, weights: np.ndarray, frame: _Frame, n_classes: int,
                 degree: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Least-squares fit of ``z = level[label] + surface(x, y)`` to the pixels where ``weights``.

    ``labels`` None: one level (a phase-blind fit). The data are block means of
    each phase's pixels, each at the mean position of its pixels and counted
    by their number. Returns (surface coefficients in ``polygrid2d`` layout,
    without a constant term; levels, NaN for a phase with no pixels), or None
    when too few blocks have pixels.
    """
    from numpy.polynomial import polynomial as P

    n = 1 if labels is None else n_classes
    sel = np.asarray(weights, bool)
    cell = frame.blocks[sel] * n + (0 if labels is None else labels[sel])
    size = frame.n_blocks * n
    count = np.bincount(cell, minlength=size).astype(np.float64)
    ok = count > 0
    keep = _terms(degree)
    keep[0] = False  # the levels are the constant terms
    if ok.sum() < 2 * (keep.sum() + n):
        return None
    yy, xx = np.nonzero(sel)
    mean = lambda v: np.bincount(cell, weights=v, minlength=size)[ok] / count[ok]  # noqa: E731
    xs, ys, zs = mean(frame.x[xx]), mean(frame.y[yy]), mean(z[sel])
    cls = np.nonzero(ok)[0] % n
    A = np.hstack([np.eye(n)[cls], P.polyvander2d(xs, ys, [degree, degree])[:, keep]])
    Aw = A * count[ok][:, None]
    # Normal equations: a dozen unknowns, coordinates within -1..1.
    sol, *_ = np.linalg.lstsq(A.T @ Aw, Aw.T @ zs, rcond=None)
    levels = sol[:n]
    levels[np.bincount(cls, minlength=n) == 0] = np.nan
    c = np.zeros(keep.size)
    c[keep] = sol[n:]
    return c.reshape(degree + 1, degree + 1), levels


def _eval_surface(coef: np.ndarray | None, frame: _Frame) -> np.ndarray:
    from numpy.polynomial import polynomial as P

    if coef is None:
        return np.zeros((frame.y.size, frame.x.size), np.float32)
    return P.polygrid2d(frame.x, frame.y, coef).T.astype(np.float32)


def _split_bins(n_classes: int) -> int:
    """Histogram bins for multi-Otsu inside the fit: its exhaustive search grows as bins ** (classes - 1),
    and a rough split is enough there (the levels are fitted afterwards)."""
    return 256 if n_classes <= 3 else 64 if n_classes <= 5 else 32


def level_misfit(values: np.ndarray, n_classes: int = 2) -> float:
    """How far ``values`` lie from ``n_classes`` grey levels: the mean distance of each value to the nearest
    median of the multi-Otsu classes (small = tight phases, large = a continuum between them)."""
    from skimage.filters import threshold_multiotsu

    v = np.asarray(values, np.float64).ravel()
    if v.size < n_classes or np.ptp(v) <= 0:
        return 0.0
    try:
        lab = np.digitize(v, threshold_multiotsu(v, classes=n_classes, nbins=_split_bins(n_classes)))
    except ValueError:
        return 0.0
    levels = np.array([np.median(v[lab == k]) for k in range(n_classes) if np.any(lab == k)])
    nearest = np.digitize(v, (levels[1:] + levels[:-1]) / 2)  # levels ascend: midpoints split them
    return float(np.mean(np.abs(v - levels[nearest])))


def _fit_field(z: np.ndarray, valid: np.ndarray, frame: _Frame, n_classes: int, degree: int, blind_start: bool):
    """Alternate: split ``z - field`` into phases; fit the levels and the field to the phases' interiors.

    Returns (surface coefficients, phase levels in ``z`` units), the field
    centred on 0 over the valid pixels; (None, levels) when no field could be fitted.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_multiotsu

    start = _fit_surface(z, None, valid, frame, 1, degree) if blind_start else None
    coef = start[0] if start else None
    field = _eval_surface(coef, frame)
    step = max(1, int(valid.sum() // 200_000))  # thresholds from a sample: plenty for a histogram
    levels = None
    for _ in range(BACKGROUND_ROUNDS):
        c = z - field
        try:
            t = threshold_multiotsu(c[valid][::step], classes=n_classes, nbins=_split_bins(n_classes))
        except ValueError as exc:
            raise SegmentError(f"cannot split the image into {n_classes} phases ({exc})") from None
        lab = np.digitize(c, t).astype(np.uint8)
        # Interiors: pixels whose 3x3 neighbourhood is one phase (blurred edges are neither).
        inner = valid & (ndi.morphological_gradient(lab, size=3) == 0)
        fit = _fit_surface(z, lab, inner, frame, n_classes, degree)
        if fit is None:
            break
        coef, levels = fit
        old, field = field, _eval_surface(coef, frame)
        if np.max(np.abs(field - old)[valid]) < BACKGROUND_TOL:
            break
    if levels is None:
        return None, np.zeros(n_classes)
    centre = float(np.mean(field[valid]))
    coef = coef.copy()
    coef[0, 0] -= centre
    return coef, levels + centre


def estimate_background(gray: np.ndarray, n_classes: int = 2, ignore: np.ndarray | None = None, *,
                        method: str = "divide", degree: int | None = None) -> Background:
    """Fit a smooth light field and the phases' grey levels to ``gray`` (0-255).

    The model is ``gray = level[phase] x field`` ("divide": the light of an
    optical microscope multiplies what the sample reflects; fitted on the log
    of the image) or ``level[phase] + field`` ("subtract": an additive
    background); the field is a polynomial surface of total degree
    ``degree`` over the image. In rounds, the corrected (and sharpened) image
    is split by multi-Otsu into ``n_classes`` phases, and the phases' levels
    and the field are fitted together, by least squares, to the interiors of
    the phases (pixels whose 3x3 neighbourhood is one phase: blurred edges are
    neither), until the field settles. So a region rich in one phase does not
    pass for brighter light, as it would for a plain large-scale blur of the
    image.

    The rounds start twice, from even light and from a phase-blind fit of the
    image (which helps when the light varies more than the phases differ);
    the start whose corrected image lies closer to its phases' levels
    (:func:`level_misfit`) wins. ``ignore`` (bool): pixels left out (a burnt-in
    scale bar); clipped pixels (0 or 255) are left out too. Images larger than
    :data:`BACKGROUND_SIZE` px are reduced by block means for the fit.

    Raises :class:`SegmentError` when the image cannot be split into
    ``n_classes`` phases.
    """
    from skimage.measure import block_reduce

    degree = BACKGROUND_DEGREE if degree is None else int(degree)
    if method not in BACKGROUND_METHODS:
        raise SegmentError(f"background method {method!r} is not one of {', '.join(BACKGROUND_METHODS)}")
    g = np.asarray(gray, np.float32)
    H, W = g.shape
    valid = np.isfinite(g) & (g > 1) & (g < 254)
    if ignore is not None:
        valid &= ~np.asarray(ignore, bool)
    f = max(1, int(np.ceil(max(H, W) / BACKGROUND_SIZE)))
    if H < 16 * f or W < 16 * f:
        raise SegmentError("the image is too small to fit a light field")
    if f == 1:
        gs, vs = g, valid
    else:
        h, w = H // f * f, W // f * f  # whole blocks only
        gs = block_reduce(g[:h, :w], (f, f), np.mean)
        vs = block_reduce(valid[:h, :w], (f, f), np.all)
    if vs.sum() < 64 or float(np.ptp(gs[vs])) < 1e-6:
        raise SegmentError("the image is uniform: no light field to fit")
    frame = _Frame(gs.shape, f, (H, W))
    # Split phases as the segmentation will, on the sharpened image: fewer blurred edges pass for a phase.
    gs = deblur(gs, DEBLUR_SIGMA / f)
    vs &= (gs > 1) & (gs < 254)
    divide = method == "divide"
    z = np.log(np.maximum(gs, 1.0)) if divide else gs  # log: the field becomes additive
    gv = gs[vs].astype(np.float64)
    best = None
    for blind in (False, True):
        coef, mu = _fit_field(z, vs, frame, n_classes, degree, blind)
        field = _eval_surface(coef, frame)[vs]
        # judged on grey levels, where the noise is the same everywhere (the log would magnify the dark phase's)
        misfit = level_misfit(gv / np.exp(field) if divide else gv - field, n_classes)
        if best is None or misfit < best[0]:
            best = (misfit, coef, mu, field)
    misfit, coef, mu, field = best
    mu = mu[np.isfinite(mu)]
    lo, hi = np.percentile(field, [5, 95])
    full = _eval_surface(coef, _Frame((H, W)))
    if divide:
        bg = Background(np.exp(full), method, sorted(float(v) for v in np.exp(mu)), float(np.exp(hi) - np.exp(lo)))
    else:
        bg = Background(full, method, sorted(float(v) for v in mu), float((hi - lo) / max(float(gv.mean()), 1e-6)))
    bg.misfit, bg.misfit_even = misfit, level_misfit(gv, n_classes)
    return bg


def illumination_unevenness(gray: np.ndarray, n_classes: int = 2, ignore: np.ndarray | None = None) -> float:
    """How unevenly ``gray`` is lit: the 5th-95th percentile spread of its fitted light field,
    as a share of the mean brightness (0 = even). :data:`UNEVEN_LIMIT` and above counts as uneven."""
    return estimate_background(gray, n_classes, ignore).unevenness


def correct_background(gray: np.ndarray, background: Background | None) -> np.ndarray:
    """``gray`` with the light field divided out (or subtracted), on the same 0-255 scale."""
    g = np.asarray(gray, np.float32)
    if background is None:
        return g
    out = g / background.field if background.method == "divide" else g - background.field
    return np.clip(out, 0, 255).astype(np.float32)


def resolve_background(gray: np.ndarray, mode: str, n_classes: int = 2,
                       ignore: np.ndarray | None = None) -> tuple[Background | None, float | None]:
    """The correction ``mode`` gives for ``gray``, and the unevenness measured (None: not measured).

    "off": none. "auto": the "divide" fit when it is :attr:`~Background.detected`
    (none when the lighting is even or the image cannot be fitted). "divide",
    "subtract": that fit, whatever the unevenness.
    """
    check_background_mode(mode)
    if mode == "off":
        return None, None
    if mode == "auto":
        try:
            bg = estimate_background(gray, n_classes, ignore)
        except SegmentError:
            return None, None
        return (bg if bg.detected else None), bg.unevenness
    bg = estimate_background(gray, n_classes, ignore, method=mode)
    return bg, bg.unevenness


def work_image(gray: np.ndarray, deblur_sigma: float = DEBLUR_SIGMA, background: Background | None = None) -> np.ndarray:
    """What thresholds apply to: ``gray`` corrected for the light field, then sharpened when ``deblur_sigma`` > 0.

    Dividing by the field amplifies the noise where the light was dim; the
    sharpening is gentler there in proportion (:func:`deblur`'s ``noise_gain``).
    """
    g = correct_background(gray, background)
    if not deblur_sigma:
        return g
    return deblur(g, deblur_sigma, noise_gain=None if background is None else background.noise_gain())


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
