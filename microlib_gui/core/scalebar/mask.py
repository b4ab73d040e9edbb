"""The scale bar's colour under a click, and the mask of the bar and its label.

MicroLib masked "pixels within a tolerance of the picked colour inside the box,
dilated by 1 px" (:func:`microlib_mask`). That misses the anti-aliased rim of
the label text (and whole thin strokes, whose pixels never reach the bar
colour) and, with a loose tolerance, spills into a phase of the same colour.
:func:`bar_mask` does better with three observations about burnt-in bars:

* the bar colour is flat (no noise), so a tight tolerance finds its core;
* an anti-aliased edge pixel is a blend ``bg + a * (bar - bg)`` of the local
  background and the bar colour, so its coverage ``a`` can be estimated;
* bar and label pixels are connected to that core (hysteresis, as in edge
  detection), while noise that happens to match the colour is not.

Images are arrays (see :mod:`microlib_gui.core.scalebar`); colours and
tolerances are in grey levels 0-255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..errors import MicrolibError

#: Half-width (px) of the window used to estimate the background under the bar.
BG_RADIUS = 7
#: Default colour tolerance (grey levels, max over channels).
DEFAULT_TOLERANCE = 10.0
#: Pixels within this distance (px) of the bar's core may join the mask as faint edge pixels.
EDGE_GROW = 2


class ScaleBarError(MicrolibError):
    """A scale-bar request cannot be met (bad pick, empty box, nothing found...)."""


# -- helpers -------------------------------------------------------------------------
def to_255(image: np.ndarray) -> np.ndarray:
    """Any supported image array as float32 ``(H, W, C)`` in grey levels 0-255."""
    a = np.asarray(image)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
        raise ScaleBarError(f"expected a 2D gray or RGB image, got an array of shape {a.shape}")
    if a.dtype == np.uint8:
        out = a.astype(np.float32)
    elif a.dtype == np.uint16:
        out = a.astype(np.float32) / 257.0
    elif np.issubdtype(a.dtype, np.floating):
        out = a.astype(np.float32) * 255.0
    elif a.dtype == np.bool_:
        out = a.astype(np.float32) * 255.0
    else:
        raise ScaleBarError(f"unsupported pixel type {a.dtype}")
    if out.ndim == 2:
        out = out[..., None]
    return out[..., :3]


def _colour_vec(colour, channels: int) -> np.ndarray:
    c = np.atleast_1d(np.asarray(colour, dtype=np.float32)).ravel()
    if c.size == 1:
        c = np.repeat(c, channels)
    elif channels == 1 and c.size == 3:
        c = c[:1] if np.all(c == c[0]) else np.array([c @ np.array([0.299, 0.587, 0.114], np.float32)])
    if c.size != channels or not np.all(np.isfinite(c)):
        raise ScaleBarError(f"bar colour {np.asarray(colour).tolist()} does not fit an image with {channels} channel(s)")
    return c


def clip_box(box, shape) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` clipped to the image; raises if nothing is left."""
    h, w = shape[:2]
    if box is None:
        return 0, 0, w, h
    if len(box) == 2:  # MicroLib's [[x0, y0], [x1, y1]]
        (x0, y0), (x1, y1) = box
    else:
        x0, y0, x1, y1 = box
    x0, x1 = sorted((int(round(x0)), int(round(x1))))
    y0, y1 = sorted((int(round(y0)), int(round(y1))))
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        raise ScaleBarError(f"the box {list(box)} lies outside the {w}x{h} image")
    return x0, y0, x1, y1


def pick_colour(image: np.ndarray, x: int, y: int) -> np.ndarray:
    """The bar colour under a click: the most common colour of the 5x5 neighbourhood.

    A click a pixel off the bar, or on its anti-aliased rim, still gets the flat colour.
    """
    img = to_255(image)
    h, w = img.shape[:2]
    if not (0 <= x < w and 0 <= y < h):
        raise ScaleBarError(f"pick ({x}, {y}) is outside the {w}x{h} image")
    patch = np.rint(img[max(0, y - 2): y + 3, max(0, x - 2): x + 3]).reshape(-1, img.shape[2])
    values, counts = np.unique(patch, axis=0, return_counts=True)
    best = values[np.argmax(counts)]
    if counts.max() < 3:  # no repeated colour: a noisy spot, take the clicked pixel itself
        best = np.rint(img[y, x])
    return best.astype(np.float32)


def _disk(r: int) -> np.ndarray:
    yy, xx = np.ogrid[-r: r + 1, -r: r + 1]
    return xx * xx + yy * yy <= r * r


# -- masks -----------------------------------------------------------------------------
def microlib_mask(image: np.ndarray, colour, tolerance: float = DEFAULT_TOLERANCE, box=None) -> np.ndarray:
    """MicroLib's rule, kept for comparison: colour within tolerance in the box, dilated 1 px."""
    img = to_255(image)
    x0, y0, x1, y1 = clip_box(box, img.shape)
    c = _colour_vec(colour, img.shape[2])
    core = np.zeros(img.shape[:2], bool)
    core[y0:y1, x0:x1] = np.abs(img[y0:y1, x0:x1] - c).max(-1) <= tolerance
    return ndi.binary_dilation(core, np.ones((3, 3), bool))


@dataclass
class MaskDetail:
    """Intermediate maps of :func:`bar_mask` inside its working window (for figures, tests)."""

    window: tuple[int, int, int, int]
    core: np.ndarray
    seeds: np.ndarray
    alpha: np.ndarray


def bar_mask(image: np.ndarray, colour, tolerance: float = DEFAULT_TOLERANCE, box=None,
             detail: bool = False):
    """Mask of the scale bar and its label.

    Parameters
    ----------
    image : ndarray
        Gray ``(H, W)`` or colour ``(H, W, 3)``; float in [0, 1], uint8 or uint16.
    colour : float or sequence of float
        Bar colour in grey levels 0-255 (one value, or RGB).
    tolerance : float
        Largest difference (grey levels, any channel) of a bar-core pixel from ``colour``.
    box : sequence, optional
        ``(x0, y0, x1, y1)`` or ``[[x0, y0], [x1, y1]]``: only pixels inside count.
        Without it the whole image is searched.
    detail : bool
        Also return a :class:`MaskDetail`.

    Returns
    -------
    mask : ndarray of bool, (H, W)
    """
    img = to_255(image)
    c = _colour_vec(colour, img.shape[2])
    if not (0 <= tolerance <= 255):
        raise ScaleBarError(f"tolerance {tolerance} is outside 0..255")
    return _bar_mask255(img, c, tolerance, clip_box(box, img.shape), detail)


def _bar_mask255(img: np.ndarray, c: np.ndarray, tolerance: float, box, detail: bool):
    h, w, _ = img.shape
    x0, y0, x1, y1 = box
    core_full = np.abs(img[y0:y1, x0:x1] - c).max(-1) <= tolerance
    mask = np.zeros((h, w), bool)
    if not core_full.any():
        return (mask, None) if detail else mask
    # Work only around the core pixels (a small window even without a box).
    ys, xs = np.nonzero(core_full)
    pad = BG_RADIUS + EDGE_GROW + 2
    X0, Y0 = max(0, x0 + xs.min() - pad), max(0, y0 + ys.min() - pad)
    X1, Y1 = min(w, x0 + xs.max() + 1 + pad), min(h, y0 + ys.max() + 1 + pad)
    sub = img[Y0:Y1, X0:X1]
    inside = np.zeros(sub.shape[:2], bool)
    inside[max(0, y0 - Y0): y1 - Y0, max(0, x0 - X0): x1 - X0] = True
    core = np.zeros(sub.shape[:2], bool)
    core[y0 + ys.min() - Y0: y0 + ys.max() + 1 - Y0, x0 + xs.min() - X0: x0 + xs.max() + 1 - X0] = \
        core_full[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]

    alpha, resid, contrast = _coverage(sub, c, exclude=core)
    # Hysteresis: strong (mostly bar-coloured) pixels join when connected to the core.
    strong = (alpha >= 0.5) & (contrast >= 60) & (resid <= 40) & inside
    lab, n = ndi.label(strong | core, np.ones((3, 3), bool))
    if n:
        idx = np.arange(1, n + 1)
        sizes = ndi.sum_labels(np.ones_like(lab), lab, idx)
        has_core = ndi.maximum(core, lab, idx) > 0
        keep = np.zeros(n + 1, bool)
        keep[1:] = has_core & (sizes >= 3)
        seeds = keep[lab]
    else:
        seeds = core
    # Faint anti-aliased rim pixels near the seeds, plus MicroLib's 1 px safety margin.
    near = ndi.binary_dilation(seeds, _disk(EDGE_GROW))
    faint = (alpha >= 0.12) & (contrast >= 25) & (resid <= 40)
    sub_mask = (seeds | (near & faint) | ndi.binary_dilation(seeds, np.ones((3, 3), bool))) & inside
    mask[Y0:Y1, X0:X1] = sub_mask
    if detail:
        return mask, MaskDetail((X0, Y0, X1, Y1), core, seeds, alpha)
    return mask


def _coverage(sub: np.ndarray, colour: np.ndarray, exclude: np.ndarray):
    """Per pixel: bar coverage ``a`` of ``bg + a (colour - bg)``, the off-line residual, the contrast.

    The background is a windowed mean of the pixels that are not bar core
    (normalised convolution: linear time, unlike a median filter).
    """
    size = 2 * BG_RADIUS + 1
    keep = (~exclude).astype(np.float32)
    wsum = ndi.uniform_filter(keep, size, mode="nearest")
    bg = np.empty_like(sub)
    for k in range(sub.shape[2]):
        bg[..., k] = ndi.uniform_filter(sub[..., k] * keep, size, mode="nearest")
    bg /= np.maximum(wsum, 1e-3)[..., None]
    v = colour - bg
    n2 = (v * v).sum(-1)
    alpha = ((sub - bg) * v).sum(-1) / np.maximum(n2, 1.0)
    resid = np.abs(sub - (bg + np.clip(alpha, 0, 1)[..., None] * v)).max(-1)
    return alpha, resid, np.sqrt(n2)


# -- MicroLib's barcol ---------------------------------------------------------------------
def microlib_barcol(grey: float, tolerance: float) -> list:
    """MicroLib's ``barcol``: ``[grey 0-255, tolerance x 2550]`` with tolerance as a 0-1 fraction."""
    return [int(round(grey)), int(round(tolerance / 255.0 * 2550))]


def tolerance_from_barcol(barcol) -> tuple[float, float]:
    """``(grey, tolerance in grey levels)`` from MicroLib's ``barcol``."""
    grey, t = barcol[0], barcol[1] if len(barcol) > 1 else DEFAULT_TOLERANCE * 10
    return float(grey), float(t) / 2550.0 * 255.0
