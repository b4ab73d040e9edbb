"""Finding a scale bar: a flat-coloured horizontal rectangle near the top or bottom, its label, its length.

:func:`detect_scale_bar` returns a :class:`BarDetection` (boxes, colour, length
in pixels, the label read by :mod:`.label`); :func:`voxel_size` and
:func:`length_between` turn a bar's length into µm per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from .label import read_lines
from .mask import DEFAULT_TOLERANCE, ScaleBarError, _bar_mask255, clip_box, to_255
from .parts import MIN_BAR_LEN, box_union

_ROW = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], bool)


@dataclass
class BarDetection:
    """What :func:`detect_scale_bar` found.

    ``box`` holds the bar, its label and any backing box (what to mask);
    ``label_sure`` is False when the label's reading should be checked by the
    user (the readers disagree, or the value is unusual).
    """

    box: tuple[int, int, int, int]
    colour: list[float]
    bar_box: tuple[int, int, int, int]
    bar_length_px: float
    bar_ends: list[list[int]]
    label_box: tuple[int, int, int, int] | None = None
    label_text: str | None = None
    value_um: float | None = None
    label_score: float = 0.0
    label_reader: str | None = None  # "template", "ocr" or "ocr+template"
    label_sure: bool = False
    corner: str = ""
    backing_box: tuple[int, int, int, int] | None = None
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
            "label_score": round(self.label_score, 3), "label_reader": self.label_reader,
            "label_sure": self.label_sure, "um_per_px": self.um_per_px, "corner": self.corner,
            "backing_box": list(self.backing_box) if self.backing_box else None,
            "label_check": self.extra.get("label_check"),
        }


def _same(a: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return np.abs(a - colour).max(-1) <= 0.5


def _bar_candidates(img: np.ndarray, y_lo: int, y_hi: int, limit: int = 60) -> list[dict]:
    """Flat, filled, thin horizontal rectangles in rows ``y_lo:y_hi``, longest first.

    A run of pixels each equal to its right-hand neighbour seeds a rectangle;
    rows above and below join while 90 % of their pixels along the run have its
    colour. A rectangle at least three times as long as it is thick is a
    candidate; the 1 px ring around it says whether it sits on a flat box.
    """
    h, w, _ = img.shape
    band = img[y_lo:y_hi]
    eq = np.abs(band[:, 1:] - band[:, :-1]).max(-1) <= 0.5
    lab, n = ndi.label(eq, structure=_ROW)
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:] + 1
    objs = ndi.find_objects(lab)
    out: list[dict] = []
    for k in np.argsort(-sizes)[: 4 * limit]:
        if sizes[k] < MIN_BAR_LEN or len(out) >= limit:
            break
        r = y_lo + objs[k][0].start
        c0, c1 = objs[k][1].start, objs[k][1].stop + 1
        colour = img[r, c0]
        if any(o["box"][0] <= c0 and c1 <= o["box"][2] and o["box"][1] <= r < o["box"][3]
               and np.array_equal(o["colour"], colour) for o in out):
            continue  # another row of a rectangle already found
        r0 = r1 = r
        while r0 > 0 and _same(img[r0 - 1, c0:c1], colour).mean() >= 0.9:
            r0 -= 1
        while r1 < h - 1 and _same(img[r1 + 1, c0:c1], colour).mean() >= 0.9:
            r1 += 1
        bt, bw = r1 - r0 + 1, c1 - c0
        if bw < 3 * bt:
            continue
        box = (c0, r0, c1, r1 + 1)
        ring = np.concatenate([img[max(0, r0 - 1), c0:c1], img[min(h - 1, r1 + 1), c0:c1],
                               img[r0: r1 + 1, max(0, c0 - 1)], img[r0: r1 + 1, min(w - 1, c1)]])
        vals, counts = np.unique(np.rint(ring), axis=0, return_counts=True)
        backing = vals[np.argmax(counts)] if counts.max() >= 0.8 * len(ring) else None
        out.append({"box": box, "colour": colour, "length": bw, "backing": backing})
    return out


def detect_scale_bar(image: np.ndarray, read_text: bool = True) -> BarDetection:
    """Find the scale bar (a flat-coloured horizontal rectangle) and its label.

    Searches the top and bottom thirds of the image for the longest flat,
    filled, thin rectangle (one that merely edges a flat backing box does not
    count), then the text lines of its colour beside it (:mod:`.parts`): the
    label is the nearest line that reads as a length (:func:`.label.read_lines`).

    Raises
    ------
    ScaleBarError
        When nothing bar-like is found.
    """
    img = to_255(image)
    h, w, ch = img.shape
    rh = max(32, h // 3)
    cands = _bar_candidates(img, 0, min(h, rh)) + _bar_candidates(img, max(0, h - rh), h)
    # The edge rows of a backing box look like a bar of the box's colour: drop a candidate of the
    # colour that rings another candidate, inside the box of that colour around it.
    boxes = [_backing_extent(img, c) for c in cands]
    keep = [c for c in cands
            if not any(e is not None and o is not c and np.array_equal(o["backing"], np.rint(c["colour"]))
                       and _inside(c["box"], e) for o, e in zip(cands, boxes))]
    if not keep:
        raise ScaleBarError("no scale bar found near the top or bottom of the image")
    best = max(keep, key=lambda c: c["length"])
    colour = np.rint(best["colour"]).astype(np.float32)
    bx0, by0, bx1, by1 = best["box"]
    length, ends = _bar_length(img, colour, (bx0, by0, bx1, by1))
    bw, bt = bx1 - bx0, by1 - by0
    reach_x, reach_y = max(160, bw), max(40, 6 * bt, bw // 2)  # room for a label beside or above
    window = clip_box((bx0 - reach_x, by0 - reach_y, bx1 + reach_x, by1 + reach_y), img.shape)
    _, d = _bar_mask255(img, colour, DEFAULT_TOLERANCE, window, True, bar=(bx0, by0, bx1, by1))
    X0, Y0 = d.window[:2]
    shift = lambda b: (int(b[0] + X0), int(b[1] + Y0), int(b[2] + X0), int(b[3] + Y0))  # noqa: E731
    lines = d.parts.lines if d.parts is not None else []
    backing = shift(d.backing) if d.backing is not None else None
    cy, cx = (by0 + by1) / 2, (bx0 + bx1) / 2
    corner = ("t" if cy < h / 2 else "b") + ("l" if cx < w / 2 else "r")
    det = BarDetection(box=(0, 0, 0, 0), colour=[float(c) for c in colour],
                       bar_box=(int(bx0), int(by0), int(bx1), int(by1)), bar_length_px=float(length),
                       bar_ends=ends, corner=corner, backing_box=backing)
    label = lines[0] if lines else None
    if read_text and lines:
        res = read_lines(d, lines)
        if res is not None:
            label = res.line
            det.label_text, det.value_um, det.label_score = res.text, res.value_um, res.score
            det.label_reader, det.label_sure = res.reader, res.sure
            if not res.sure:
                det.extra["label_check"] = res.why
    det.label_box = shift(label.box) if label is not None else None
    # What to mask: the bar, its label and the backing box (not every line of texture beside the bar).
    u = box_union([det.bar_box] + [b for b in (det.label_box, backing) if b])
    det.box = (max(0, u[0] - 3), max(0, u[1] - 3), min(w, u[2] + 3), min(h, u[3] + 3))
    return det


def _inside(a, b) -> bool:
    """Whether box ``a`` lies within box ``b``."""
    return a[0] >= b[0] and a[1] >= b[1] and a[2] <= b[2] and a[3] <= b[3]


def _backing_extent(img: np.ndarray, cand: dict) -> tuple[int, int, int, int] | None:
    """Bounding box of the flat region of a candidate's backing colour that rings it, or None."""
    if cand["backing"] is None:
        return None
    x0, y0, x1, y1 = cand["box"]
    reach = max(40, 3 * cand["length"])
    X0, Y0, X1, Y1 = clip_box((x0 - reach, y0 - reach, x1 + reach, y1 + reach), img.shape)
    lab, _ = ndi.label(_same(img[Y0:Y1, X0:X1], cand["backing"].astype(np.float32)))
    ring = lab[max(0, y0 - 1 - Y0): y1 + 1 - Y0, max(0, x0 - 1 - X0): x1 + 1 - X0]
    ids = np.unique(ring[ring > 0])
    if ids.size == 0:
        return None
    ys, xs = np.nonzero(np.isin(lab, ids))
    return (X0 + int(xs.min()), Y0 + int(ys.min()), X0 + int(xs.max()) + 1, Y0 + int(ys.max()) + 1)


def _bar_length(img: np.ndarray, colour: np.ndarray, bar_box) -> tuple[float, list[list[int]]]:
    """Bar length in px along its middle row, counting the partly covered end pixels by coverage.

    An end pixel is a blend of the bar colour and what lies under it, taken as
    the median of its neighbours above and below the bar and outward along the
    row (a label right beside the bar spoils one of the three, not the median);
    a coverage under 0.2 is taken for noise.
    """
    h, w = img.shape[:2]
    x0, y0, x1, y1 = bar_box
    yc = (y0 + y1) // 2
    length = float(x1 - x0)
    for x, out in ((x0 - 1, x0 - 2), (x1, x1 + 1)):
        if not (0 <= x < w):
            continue
        samples = [img[max(0, y0 - 2), x], img[min(h - 1, y1 + 1), x], img[yc, min(max(out, 0), w - 1)]]
        bg = np.median(np.stack(samples), axis=0)
        v = colour - bg
        n2 = float((v * v).sum())
        if n2 < 25.0 ** 2:
            continue  # the bar colour hardly differs from what is under it: no partial coverage to see
        a = float(((img[yc, x] - bg) * v).sum() / n2)
        resid = float(np.abs(img[yc, x] - (bg + np.clip(a, 0, 1) * v)).max())
        if resid <= 40 and a >= 0.2:  # below that, micrograph noise (clipped at 0, it only adds)
            length += float(min(a, 1.0))
    return length, [[int(x0), int(yc)], [int(x1 - 1), int(yc)]]


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
