"""The scale bar's colour under a click, and the mask of the bar and its label.

MicroLib masked "pixels within a tolerance of the picked colour inside the box,
dilated by 1 px" (:func:`microlib_mask`). That misses the anti-aliased rim of
the label text (and whole thin strokes, whose pixels never reach the bar
colour) and, with a loose tolerance, spills into a phase of the same colour.
:func:`bar_mask` does better with four observations about burnt-in bars:

* the bar colour is flat (no noise), so a tight tolerance finds its core;
* an anti-aliased edge pixel is a blend ``bg + a * (bar - bg)`` of the local
  background and the bar colour, so its coverage ``a`` can be estimated;
* bar and label pixels are connected to that core (hysteresis, as in edge
  detection), while noise that happens to match the colour is not;
* the bar is a thin rectangle and its label a line of glyphs beside it
  (:mod:`.parts`), so pixels of the colour elsewhere — a phase of the same
  grey, texture near the bar — are left out, and a flat box behind both is
  masked whole.

Images are arrays (see :mod:`microlib_gui.core.scalebar`); colours and
tolerances are in grey levels 0-255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..errors import MicrolibError
from .parts import MIN_BAR_LEN, Parts, backing_box, find_bar, find_parts

#: Half-width (px) of the window used to estimate the background under the bar.
BG_RADIUS = 7
#: Default colour tolerance (grey levels, max over channels).
DEFAULT_TOLERANCE = 10.0
#: Pixels within this distance (px) of the bar's core may join the mask as faint edge pixels.
EDGE_GROW = 2
#: Grey levels from the bar colour within which a pixel has "exactly" the bar colour.
EXACT_TOL = 2.0
#: Room (px) kept around the bar-coloured pixels for a backing box.
BACKING_PAD = 24


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
    """The bar colour under a click.

    The clicked pixel's own colour when it repeats in the 5x5 neighbourhood (a
    flat bar, however thin, even on a flat backing box); otherwise the most
    common colour there, so a click a pixel off the bar, or on its anti-aliased
    rim, still gets the flat colour.
    """
    img = to_255(image)
    h, w = img.shape[:2]
    if not (0 <= x < w and 0 <= y < h):
        raise ScaleBarError(f"pick ({x}, {y}) is outside the {w}x{h} image")
    patch = np.rint(img[max(0, y - 2): y + 3, max(0, x - 2): x + 3]).reshape(-1, img.shape[2])
    here = np.rint(img[y, x])
    if (patch == here).all(-1).sum() >= 3:
        return here.astype(np.float32)
    values, counts = np.unique(patch, axis=0, return_counts=True)
    best = values[np.argmax(counts)]
    if counts.max() < 3:  # no repeated colour: a noisy spot, take the clicked pixel itself
        best = here
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
    """Intermediate maps of :func:`bar_mask` inside its working window (for figures, tests, the label reader)."""

    window: tuple[int, int, int, int]
    core: np.ndarray
    seeds: np.ndarray
    alpha: np.ndarray
    parts: Parts | None = None  # the bar and its text lines (window coordinates)
    backing: tuple[int, int, int, int] | None = None  # a flat box behind bar and label (window coordinates)


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

    Notes
    -----
    When a bar (a thin rectangle of the exact colour) is found, only the bar, the
    text lines beside it and a flat backing box behind both are masked: pixels
    of the bar colour elsewhere in the box belong to the micrograph. Without a
    bar (a box around a label alone) every stroke of the colour in the box is.
    """
    img = to_255(image)
    c = _colour_vec(colour, img.shape[2])
    if not (0 <= tolerance <= 255):
        raise ScaleBarError(f"tolerance {tolerance} is outside 0..255")
    return _bar_mask255(img, c, tolerance, clip_box(box, img.shape), detail)


def _bar_mask255(img: np.ndarray, c: np.ndarray, tolerance: float, box, detail: bool, bar=None):
    h, w, _ = img.shape
    x0, y0, x1, y1 = box
    core_full = np.abs(img[y0:y1, x0:x1] - c).max(-1) <= tolerance
    mask = np.zeros((h, w), bool)
    if not core_full.any():
        return (mask, None) if detail else mask
    # Work only around the core pixels (a small window even without a box), with room for a backing box.
    ys, xs = np.nonzero(core_full)
    pad = max(BG_RADIUS + EDGE_GROW + 2, BACKING_PAD)
    X0, Y0 = max(0, x0 + xs.min() - pad), max(0, y0 + ys.min() - pad)
    X1, Y1 = min(w, x0 + xs.max() + 1 + pad), min(h, y0 + ys.max() + 1 + pad)
    sub = img[Y0:Y1, X0:X1]
    inside = np.zeros(sub.shape[:2], bool)
    inside[max(0, y0 - Y0): y1 - Y0, max(0, x0 - X0): x1 - X0] = True
    dev = np.abs(sub - c).max(-1)
    core = (dev <= tolerance) & inside
    # Burnt-in graphics are flat: their inner pixels have exactly the bar colour, micrograph noise
    # rarely. "Exactly" is as flat as the bar's own inside (0 in a lossless image).
    exact = (dev <= min(tolerance, EXACT_TOL)) & inside
    if exact.sum() < MIN_BAR_LEN:  # a softened or compressed bar: the tolerance is all there is
        exact = core
    if bar is not None:
        bar = (bar[0] - X0, bar[1] - Y0, bar[2] - X0, bar[3] - Y0)
    else:
        bar = find_bar(exact)
    if bar is not None:
        bx0, by0, bx1, by1 = bar
        inner = dev[by0 + (by1 - by0 > 2): by1 - (by1 - by0 > 2), bx0 + 1: bx1 - 1]
        flat = float(np.percentile(inner, 95)) if inner.size else tolerance
        exact = (dev <= min(tolerance, max(0.5, flat + 0.5))) & inside

    alpha, resid, contrast = _coverage(sub, c, exclude=core)
    # Hysteresis: strong (mostly bar-coloured) pixels join when connected to exact ones; but a thick
    # region of them (a micrograph phase near the bar colour) only next to an exact pixel: text
    # strokes are thin or hold exact pixels.
    strong = (alpha >= 0.5) & (alpha <= 1.1) & (contrast >= 60) & (resid <= 40) & inside  # a blend never overshoots
    next_to_exact = ndi.binary_dilation(exact, np.ones((3, 3), bool))
    thin = strong & ~ndi.binary_opening(strong, np.ones((3, 3), bool))
    grow = exact | ((core | strong) & next_to_exact) | thin
    lab, n = ndi.label(grow, np.ones((3, 3), bool))
    if n:
        flat = lab.ravel()  # per-component sums by bincount (ndi.maximum/mean sort: slower)
        sizes = np.bincount(flat, minlength=n + 1)[1:]
        has_core = np.bincount(flat, core.ravel(), n + 1)[1:] > 0
        # A thin stroke of small text may never reach the colour: then it must be mostly covered.
        inked = np.bincount(flat, np.clip(alpha, 0, 1).ravel(), n + 1)[1:] >= 0.7 * sizes
        keep = np.zeros(n + 1, bool)
        keep[1:] = (has_core | inked) & (sizes >= 3)
        seeds = keep[lab]
        inked_px = np.concatenate([[False], inked & (sizes >= 3)])[lab]
    else:
        seeds, inked_px = exact, exact
    anchor = core | inked_px  # what a glyph holds (a piece of micrograph chained to the bar does not)
    parts = find_parts(seeds, exact, anchor, bar)
    backing = None
    if parts.bar is not None:
        backing = backing_box(parts.bar, parts.keep, c, sub, tolerance, (X0 > 0, Y0 > 0, X1 < w, Y1 < h))
    if backing is not None:  # the label is inside the box: what lies outside is micrograph
        bx0, by0, bx1, by1 = backing
        held = np.zeros_like(seeds)
        held[by0:by1, bx0:bx1] = True
        parts = find_parts(seeds & held, exact, anchor, parts.bar)
    if parts.keep is not None:
        seeds = parts.keep
    # Faint anti-aliased rim pixels near the seeds, plus MicroLib's 1 px safety margin.
    near = ndi.binary_dilation(seeds, _disk(EDGE_GROW))
    faint = (alpha >= 0.12) & (alpha <= 1.1) & (contrast >= 25) & (resid <= 40)
    sub_mask = (seeds | (near & faint) | ndi.binary_dilation(seeds, np.ones((3, 3), bool))) & inside
    if backing is not None:
        bx0, by0, bx1, by1 = backing
        sub_mask[max(0, by0 - 1): by1 + 1, max(0, bx0 - 1): bx1 + 1] = True
        sub_mask &= inside
    mask[Y0:Y1, X0:X1] = sub_mask
    if detail:
        return mask, MaskDetail((X0, Y0, X1, Y1), core, seeds, alpha, parts, backing)
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
