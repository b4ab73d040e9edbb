"""Scale bars: the mask of a bar and its label, automatic detection, voxel size.

MicroLib masked "pixels within a tolerance of the picked colour inside the box,
dilated by 1 px". That misses the anti-aliased rim of the label text (and whole
thin strokes, whose pixels never reach the bar colour) and, with a loose
tolerance, spills into a phase of the same colour. :func:`bar_mask` does better
with three observations about burnt-in bars:

* the bar colour is flat (no noise), so a tight tolerance finds its core;
* an anti-aliased edge pixel is a blend ``bg + a * (bar - bg)`` of the local
  background and the bar colour, so its coverage ``a`` can be estimated;
* bar and label pixels are connected to that core (hysteresis, as in edge
  detection), while noise that happens to match the colour is not.

All functions take images as arrays: a float image in [0, 1] (a
:class:`~.images.Micrograph`'s ``data``, gray ``(H, W)`` or colour ``(H, W, 3)``)
or uint8/uint16 arrays. Colours and tolerances are in grey levels 0-255.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

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


# -- automatic detection -------------------------------------------------------------------
@dataclass
class BarDetection:
    """What :func:`detect_scale_bar` found."""

    box: tuple[int, int, int, int]
    colour: list[float]
    bar_box: tuple[int, int, int, int]
    bar_length_px: float
    bar_ends: list[list[int]]
    label_box: tuple[int, int, int, int] | None = None
    label_text: str | None = None
    value_um: float | None = None
    label_score: float = 0.0
    label_reader: str | None = None  # "template" or "ocr"
    corner: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def um_per_px(self) -> float | None:
        if self.value_um is None or self.bar_length_px <= 0:
            return None
        return self.value_um / self.bar_length_px

    def to_dict(self) -> dict:
        return {
            "box": list(self.box), "colour": [round(float(c), 1) for c in self.colour],
            "bar_box": list(self.bar_box), "bar_length_px": round(self.bar_length_px, 2),
            "bar_ends": self.bar_ends, "label_box": list(self.label_box) if self.label_box else None,
            "label_text": self.label_text, "value_um": self.value_um,
            "label_score": round(self.label_score, 3), "label_reader": self.label_reader, "um_per_px": self.um_per_px, "corner": self.corner,
        }


def _flat(sub: np.ndarray, tol: float = 0.5) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood has one colour (burnt-in graphics; micrographs are noisy)."""
    rng = np.zeros(sub.shape[:2], np.float32)
    for k in range(sub.shape[2]):
        rng = np.maximum(rng, ndi.maximum_filter(sub[..., k], 3) - ndi.minimum_filter(sub[..., k], 3))
    return rng <= tol


def detect_scale_bar(image: np.ndarray, read_text: bool = True) -> BarDetection:
    """Find the scale bar (a flat-coloured horizontal rectangle) and its label near a corner.

    Searches each corner region (half the width, a third of the height), takes
    the longest flat, filled, wide-and-thin component, and groups the same-coloured
    glyphs above or below it into the label.

    Raises
    ------
    ScaleBarError
        When no corner holds anything bar-like.
    """
    img = to_255(image)
    h, w, ch = img.shape
    rw, rh = max(32, w // 2), max(32, h // 3)
    regions = {"tl": (0, 0), "tr": (w - rw, 0), "bl": (0, h - rh), "br": (w - rw, h - rh)}
    best = None
    for corner, (rx, ry) in regions.items():
        sub = img[ry: ry + rh, rx: rx + rw]
        lab, n = ndi.label(_flat(sub))
        for i, sl in enumerate(ndi.find_objects(lab), start=1):
            if sl is None:
                continue
            comp = lab[sl] == i
            if comp.shape[1] < 12:
                continue
            # The bar is the longest straight run of the component (it may touch clipped,
            # same-coloured micrograph pixels, so the component itself need not be a rectangle).
            r = int(np.argmax(comp.sum(1)))
            c0, c1 = _longest_run(comp[r])
            bw = c1 - c0
            rows = comp[:, c0:c1].mean(1) >= 0.95
            r0 = r1 = r
            while r0 > 0 and rows[r0 - 1]:
                r0 -= 1
            while r1 < len(rows) - 1 and rows[r1 + 1]:
                r1 += 1
            bh = r1 - r0 + 1
            # The flat test erodes the bar by 1 px all round: a 3 px bar leaves one flat row.
            if bw < 12 or bw < 3 * (bh + 2):
                continue
            y_a, x_a = sl[0].start + r0, sl[1].start + c0
            colour = np.median(sub[y_a: y_a + bh, x_a: x_a + bw].reshape(-1, sub.shape[2]), axis=0)
            score = bw
            if best is None or score > best[0]:
                best = (score, corner, colour, (rx + x_a, ry + y_a, rx + x_a + bw, ry + y_a + bh))
    if best is None:
        raise ScaleBarError("no scale bar found near the image corners")
    _, corner, colour, (fx0, fy0, fx1, fy1) = best
    colour = np.rint(colour)
    tol = DEFAULT_TOLERANCE
    core = np.abs(img - colour).max(-1) <= tol
    # The whole bar: the core component holding the flat part.
    lab, _ = ndi.label(core[max(0, fy0 - 3): fy1 + 3, max(0, fx0 - 3): fx1 + 3])
    ox, oy = max(0, fx0 - 3), max(0, fy0 - 3)
    cy, cx = (fy0 + fy1) // 2 - oy, (fx0 + fx1) // 2 - ox
    bar_lab = lab == lab[cy, cx] if lab[cy, cx] else lab > 0
    ys, xs = np.nonzero(bar_lab)
    bx0, by0, bx1, by1 = ox + xs.min(), oy + ys.min(), ox + xs.max() + 1, oy + ys.max() + 1
    length, ends = _bar_length(img, colour, (bx0, by0, bx1, by1))
    label_box = _find_label(img, core, colour, (bx0, by0, bx1, by1))
    parts = [(bx0, by0, bx1, by1)] + ([label_box] if label_box else [])
    box = (max(0, min(p[0] for p in parts) - 3), max(0, min(p[1] for p in parts) - 3),
           min(w, max(p[2] for p in parts) + 3), min(h, max(p[3] for p in parts) + 3))
    det = BarDetection(box=tuple(int(v) for v in box), colour=[float(c) for c in colour],
                       bar_box=(int(bx0), int(by0), int(bx1), int(by1)), bar_length_px=float(length),
                       bar_ends=ends, label_box=label_box, corner=corner)
    if read_text and label_box is not None:
        res = _read_label(img, colour, label_box, det.bar_box)
        if res is not None:
            det.label_text, det.value_um, det.label_score, det.label_reader = res
    return det


def _longest_run(row: np.ndarray) -> tuple[int, int]:
    """``(start, stop)`` of the longest run of True in a 1D bool array."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    d = np.diff(padded)
    starts, stops = np.nonzero(d == 1)[0], np.nonzero(d == -1)[0]
    if starts.size == 0:
        return 0, 0
    k = int(np.argmax(stops - starts))
    return int(starts[k]), int(stops[k])


def _bar_length(img: np.ndarray, colour: np.ndarray, bar_box) -> tuple[float, list[list[int]]]:
    """Bar length in px along its middle row, counting partly covered end pixels by coverage."""
    x0, y0, x1, y1 = bar_box
    yc = (y0 + y1) // 2
    lo, hi = max(0, x0 - 2), min(img.shape[1], x1 + 2)
    row = img[yc, lo:hi]
    # Background: the rows just above and below the bar, same columns.
    above = img[max(0, y0 - 3), lo:hi]
    below = img[min(img.shape[0] - 1, y1 + 2), lo:hi]
    bg = (above + below) / 2.0
    v = colour - bg
    a = ((row - bg) * v).sum(-1) / np.maximum((v * v).sum(-1), 1.0)
    inner = np.zeros(hi - lo, bool)
    inner[x0 - lo: x1 - lo] = True
    a = np.where(inner, 1.0, np.clip(a, 0, 1))
    # Only the pixels touching the bar ends count as partial.
    a[: max(0, x0 - lo - 1)] = 0
    a[x1 - lo + 1:] = 0
    return float(a.sum()), [[int(x0), int(yc)], [int(x1 - 1), int(yc)]]


def _find_label(img: np.ndarray, core: np.ndarray, colour, bar_box):
    """Box of the label: the band of bar-coloured strokes just above or below the bar, or None.

    Works on row and column profiles of the bar-coloured pixels (core plus the
    strongly covered pixels connected to it), so thin, broken strokes still count.
    """
    x0, y0, x1, y1 = bar_box
    h, w = core.shape
    bw, bt = x1 - x0, y1 - y0
    reach = max(24, 4 * bt, bw // 3)
    wx0, wx1 = max(0, x0 - bw // 2), min(w, x1 + bw // 2)
    wy0, wy1 = max(0, y0 - reach), min(h, y1 + reach)
    sub = img[wy0:wy1, wx0:wx1]
    _, d = _bar_mask255(sub, np.asarray(colour, np.float32), DEFAULT_TOLERANCE, clip_box(None, sub.shape), True)
    if d is None:
        return None
    cand = np.zeros((wy1 - wy0, wx1 - wx0), bool)
    X0, Y0, X1, Y1 = d.window
    cand[Y0:Y1, X0:X1] = d.seeds
    cand[max(0, y0 - wy0 - 1): y1 - wy0 + 1, x0 - wx0: x1 - wx0] = False  # the bar itself
    best = None
    for side in ("above", "below"):
        rows = range(y0 - wy0 - 2, -1, -1) if side == "above" else range(y1 - wy0 + 1, wy1 - wy0)
        # Runs of rows holding strokes (gaps of up to 2 rows inside); the first tall run is the label.
        limit = max(12, 3 * bt)
        band, run, gap = None, [], 0
        for i, r in enumerate(rows):
            if cand[r].any():
                if not run and i > limit:
                    break
                run.append(r)
                gap = 0
            elif run:
                gap += 1
                if gap > 2:
                    if len(run) >= 4:
                        band = run
                        break
                    run, gap = [], 0
        if band is None and len(run) >= 4:
            band = run
        if band is None:
            continue
        r0, r1 = min(band), max(band) + 1
        cols = cand[r0:r1].any(0)
        xs = np.nonzero(cols)[0]
        centre = (x0 + x1) / 2 - wx0
        # Column clusters separated by gaps wider than the text height; keep the one nearest the bar centre.
        splits = np.nonzero(np.diff(xs) > max(4, 3 * (r1 - r0) // 4))[0]
        clusters = np.split(xs, splits + 1)
        cl = min(clusters, key=lambda c: 0 if c[0] <= centre <= c[-1] else min(abs(c[0] - centre), abs(c[-1] - centre)))
        mass = int(cand[r0:r1, cl[0]: cl[-1] + 1].sum())
        if best is None or mass > best[0]:
            best = (mass, (int(wx0 + cl[0]), int(wy0 + r0), int(wx0 + cl[-1] + 1), int(wy0 + r1)))
    return None if best is None else best[1]


# -- voxel size --------------------------------------------------------------------------
def voxel_size(bar_length_px: float, bar_value_um: float) -> float:
    """µm per pixel from a bar of ``bar_length_px`` pixels representing ``bar_value_um`` µm."""
    if not (np.isfinite(bar_length_px) and bar_length_px > 0):
        raise ScaleBarError(f"bar length must be a positive number of pixels, got {bar_length_px}")
    if not (np.isfinite(bar_value_um) and bar_value_um > 0):
        raise ScaleBarError(f"bar value must be a positive number of µm, got {bar_value_um}")
    return float(bar_value_um) / float(bar_length_px)


def length_between(p0, p1) -> float:
    """Distance in px between two clicked bar ends ``(x, y)`` (inclusive of both end pixels)."""
    d = float(np.hypot(p1[0] - p0[0], p1[1] - p0[1]))
    if d == 0:
        raise ScaleBarError("the two bar ends are the same point")
    return d + 1.0


def microlib_barcol(grey: float, tolerance: float) -> list:
    """MicroLib's ``barcol``: ``[grey 0-255, tolerance x 2550]`` with tolerance as a 0-1 fraction."""
    return [int(round(grey)), int(round(tolerance / 255.0 * 2550))]


def tolerance_from_barcol(barcol) -> tuple[float, float]:
    """``(grey, tolerance in grey levels)`` from MicroLib's ``barcol``."""
    grey, t = barcol[0], barcol[1] if len(barcol) > 1 else DEFAULT_TOLERANCE * 10
    return float(grey), float(t) / 2550.0 * 255.0


# -- reading the label ----------------------------------------------------------------------
#: Values a scale bar label usually shows (1-2-2.5-5 series and round tens).
LABEL_VALUES = (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 3, 4, 5, 10, 20, 25, 30, 40, 50, 100, 200, 250, 300, 400,
                500, 1000, 2000, 5000)
LABEL_UNITS = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}
#: Lowest match score (overlap of rendered and observed ink, 0-1) accepted as a reading.
LABEL_MIN_SCORE = 0.55


@functools.lru_cache(maxsize=1)
def _fonts() -> tuple:
    """Sans fonts to render candidate labels: DejaVu (shipped with matplotlib) and Pillow's own."""
    paths = []
    try:
        import matplotlib

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
        paths = [str(ttf / n) for n in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf") if (ttf / n).exists()]
    except ImportError:  # label reading still works with Pillow's font
        pass
    return tuple(paths) + ("<pillow-default>",)


def _font(path: str, size: int):
    from PIL import ImageFont

    if path == "<pillow-default>":
        try:
            return ImageFont.load_default(size=size)
        except TypeError:  # Pillow < 10.1 has no scalable default font
            return None
    return ImageFont.truetype(path, size)


@functools.lru_cache(maxsize=4096)
def _render(text: str, font_path: str, height: int) -> np.ndarray | None:
    """``text`` rendered so that its ink is ``height`` px tall; float alpha cropped to the ink."""
    from PIL import Image, ImageDraw

    def draw(size):
        f = _font(font_path, size)
        if f is None:
            return None
        l, t, r, b = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=f)
        im = Image.new("L", (r - l + 4, b - t + 4), 0)
        ImageDraw.Draw(im).text((2 - l, 2 - t), text, fill=255, font=f)
        a = np.asarray(im, np.float32) / 255.0
        ys, xs = np.nonzero(a > 0.3)
        return a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1] if ys.size else None

    probe = draw(64)
    if probe is None:
        return None
    size = max(4, int(round(64 * height / probe.shape[0])))
    out = draw(size)
    if out is None:
        return None
    if out.shape[0] != height:  # hinting: rescale to the exact height
        w = max(1, int(round(out.shape[1] * height / out.shape[0])))
        out = np.asarray(Image.fromarray((out * 255).astype(np.uint8)).resize((w, height), Image.BILINEAR),
                         np.float32) / 255.0
    return out


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    h, w = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
    A = np.zeros((h, w), np.float32)
    B = np.zeros((h, w), np.float32)
    A[: a.shape[0], : a.shape[1]] = a
    B[: b.shape[0], : b.shape[1]] = b
    return float(np.minimum(A, B).sum() / max(np.maximum(A, B).sum(), 1e-6))


def label_ink(img: np.ndarray, colour, label_box, bar_box=None) -> np.ndarray | None:
    """Coverage (0-1) of the label's strokes in ``label_box``, cropped to the ink."""
    img = np.asarray(img, np.float32)
    c = _colour_vec(colour, img.shape[2])
    lh = label_box[3] - label_box[1]
    # Room for descenders (the µ's tail) that the stroke band may have cut.
    x0, y0, x1, y1 = clip_box((label_box[0] - 2, label_box[1] - 2, label_box[2] + 2,
                               label_box[3] + 2 + lh // 3), img.shape)
    if bar_box is not None:  # never reach into the bar
        if bar_box[1] >= label_box[3]:
            y1 = min(y1, bar_box[1] - 1)
        elif bar_box[3] <= label_box[1]:
            y0 = max(y0, bar_box[3] + 1)
    X0, Y0, X1, Y1 = clip_box((x0 - BG_RADIUS, y0 - BG_RADIUS, x1 + BG_RADIUS, y1 + BG_RADIUS), img.shape)
    big = img[Y0:Y1, X0:X1]
    inner = (x0 - X0, y0 - Y0, x1 - X0, y1 - Y0)
    mask, det = _bar_mask255(big, c, DEFAULT_TOLERANCE, inner, True)
    if det is None:
        return None
    big_core = np.abs(big - c).max(-1) <= DEFAULT_TOLERANCE
    alpha, resid, contrast = _coverage(big, c, exclude=big_core)
    a = np.where(big_core, 1.0, np.clip(alpha, 0, 1)) * mask
    a = a[inner[1]: inner[3], inner[0]: inner[2]].astype(np.float32)
    a[a < 0.15] = 0
    ys, xs = np.nonzero(a > 0.3)
    if ys.size < 8:
        return None
    return a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def read_label(img: np.ndarray, colour, label_box, bar_box=None) -> tuple[str, float, float] | None:
    """Read a label like ``50 µm``: ``(text, value in µm, score)``, or None (see :func:`_read_label`)."""
    res = _read_label(img, colour, label_box, bar_box)
    return None if res is None else res[:3]


def _read_label(img: np.ndarray, colour, label_box, bar_box=None) -> tuple[str, float, float, str] | None:
    """Read a label like ``50 µm``: ``(text, value in µm, score, reader)``, or None if unsure.

    First renders every usual label (values x units x fonts) at the observed text
    height and keeps the one whose ink overlaps the observed strokes best (score =
    overlap). Thin labels in regular weight overlap poorly; then, when Tesseract is
    installed, the ink is read by OCR at several scales and a reading is taken only
    when most scales agree on a usual value and a unit (score = share agreeing).
    ``reader`` says which: ``"template"`` or ``"ocr"``. ``img`` is a float image in grey levels 0-255, ``(H, W, C)``.
    """
    ink = label_ink(img, colour, label_box, bar_box)
    if ink is None or ink.shape[0] < 5:
        return None
    best = (0.0, None, None)
    for value in LABEL_VALUES:
        for unit, factor in LABEL_UNITS.items():
            for sep in (" ", ""):
                text = f"{value:g}{sep}{unit}"
                for font in _fonts():
                    r = _render(text, font, ink.shape[0])
                    if r is None or not (0.6 < r.shape[1] / ink.shape[1] < 1.6):
                        continue
                    score = _overlap(ink, r)
                    if score > best[0]:
                        best = (score, text, value * factor)
    if best[1] is not None and best[0] >= LABEL_MIN_SCORE:
        return best[1], float(best[2]), best[0], "template"
    res = _read_label_ocr(ink)
    return None if res is None else (*res, "ocr")


#: OCR scales tried on each version of the ink (as extracted, and its strokes thickened by 1 px:
#: thin regular-weight text reads better thickened); a reading needs OCR_MIN_AGREE of these
#: votes and at least twice the votes of any other reading.
OCR_SCALES = (3, 4, 5, 6)
OCR_MIN_AGREE = 4
# A number, then nm, mm, or µm: Tesseract reads µm as "um", "pm", "ym", "un", "pum"..., so any
# short word starting with a µ look-alike counts as µm (agreement across scales guards the rest).
_LABEL_RE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(nm|mm|[µμuyp][a-z]{0,2})(?![a-z])", re.IGNORECASE)


def parse_label_text(text: str) -> tuple[str, float] | None:
    """``"50 um"`` → ``("50 µm", 50.0)`` (value in µm) for usual scale-bar values, else None."""
    m = _LABEL_RE.search(text)
    if not m:
        return None
    value = float(m.group(1).replace(",", "."))
    unit = m.group(2).lower()
    unit = unit if unit in ("nm", "mm") else "µm"
    if value not in LABEL_VALUES:
        return None
    return f"{value:g} {unit}", value * LABEL_UNITS[unit]


def _read_label_ocr(ink: np.ndarray) -> tuple[str, float, float] | None:
    from . import ocr

    if not ocr.available():
        return None
    votes: dict[tuple[str, float], int] = {}
    n = 0
    for version in (ink, ndi.grey_dilation(ink, size=(2, 2))):
        page = np.pad((255 - np.clip(version, 0, 1) * 255).astype(np.uint8), 6, constant_values=255)
        for scale in OCR_SCALES:
            n += 1
            r = parse_label_text(ocr.read_line(page, scale))
            if r is not None:
                votes[r] = votes.get(r, 0) + 1
    if not votes:
        return None
    ranked = sorted(votes.items(), key=lambda kv: -kv[1])
    (text, value), best = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else 0
    if best < OCR_MIN_AGREE or best < 2 * second:
        return None
    return text, float(value), best / n
