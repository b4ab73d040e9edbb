"""Finding a scale bar: a flat-coloured horizontal rectangle near a corner, its label, its length.

:func:`detect_scale_bar` returns a :class:`BarDetection` (boxes, colour, length
in pixels, the label read by :mod:`.label`); :func:`voxel_size` and
:func:`length_between` turn a bar's length into µm per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from .label import _read_label
from .mask import DEFAULT_TOLERANCE, ScaleBarError, _bar_mask255, clip_box, to_255


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
