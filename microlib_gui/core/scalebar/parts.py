"""The parts of a burnt-in scale bar: the bar itself, the text lines beside it, a backing box.

Plain geometry on boolean maps and boxes, shared by :mod:`.mask` (what to mask),
:mod:`.label` (which text to read) and :mod:`.detect`. Boxes are
``(x0, y0, x1, y1)`` with exclusive ends.

A bar is a filled horizontal rectangle of one exact colour. Its label is a line
of glyphs of the same colour beside it — above, below, left or right, centred
or at one end — so glyph components (connected pixels of the bar colour, the
bar removed) are grouped into lines by height, vertical overlap and spacing,
and a line counts as the bar's when it lies close to the bar. Micrograph
pixels that happen to match the bar colour form blobs that are neither a
rectangle nor part of such a line, which is how a mask leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

#: Shortest bar (px) looked for.
MIN_BAR_LEN = 12
#: Shortest glyph (px) that can start a text line; smaller parts ('.', ',') join a line.
MIN_GLYPH_H = 5
#: Largest gap between two glyphs of one line, in glyph heights (a monospaced space is ~1).
GLYPH_GAP = 1.6
#: Largest ratio of the heights of two glyphs of one line (a digit to an "m" is about 1.35).
GLYPH_RATIO = 1.6
#: Largest gap between a label line and the bar, in line heights (plus 3 px).
LINE_GAP = 1.5

_ROW = np.array([[0, 0, 0], [1, 1, 1], [0, 0, 0]], bool)


@dataclass
class TextLine:
    """A line of glyph components near the bar."""

    box: tuple[int, int, int, int]
    members: list[int]  # component labels (1-based) in the labelled map it came from
    height: int  # tallest glyph (px)
    side: str  # "above", "below", "left", "right" of the bar, or "chained" (next to another line)
    gap: float  # px from the bar (or from the line it is chained to)
    glyphs: int = 0  # glyph components at least MIN_GLYPH_H tall


@dataclass
class Parts:
    """What :func:`find_parts` found in a boolean map of bar-coloured pixels."""

    bar: tuple[int, int, int, int] | None
    lines: list[TextLine] = field(default_factory=list)
    labels: np.ndarray | None = None  # labelled glyph components (bar removed)
    keep: np.ndarray | None = None  # pixels of the bar and its lines


def box_union(boxes) -> tuple[int, int, int, int]:
    boxes = list(boxes)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def find_bar(solid: np.ndarray, min_len: int = MIN_BAR_LEN, tries: int = 20) -> tuple[int, int, int, int] | None:
    """The bar in a map of exact bar-colour pixels: the longest horizontal run that is a thin filled rectangle.

    Runs are tried from the longest; the rectangle grows up and down over rows
    filled to 90 % along the run, and must be at least three times as long as
    it is thick.
    """
    lab, n = ndi.label(solid, structure=_ROW)
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    objs = ndi.find_objects(lab)
    for k in np.argsort(-sizes)[:tries]:
        if sizes[k] < min_len:
            break
        r, cs = objs[k][0].start, objs[k][1]
        rows = solid[:, cs].mean(1) >= 0.9
        r0 = r1 = r
        while r0 > 0 and rows[r0 - 1]:
            r0 -= 1
        while r1 < len(rows) - 1 and rows[r1 + 1]:
            r1 += 1
        if cs.stop - cs.start >= 3 * (r1 - r0 + 1):
            return (cs.start, r0, cs.stop, r1 + 1)
    return None


def _glyph_boxes(lab: np.ndarray) -> list[tuple[int, int, int, int] | None]:
    return [None if sl is None else (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop) for sl in ndi.find_objects(lab)]


def group_lines(boxes: list, min_h: int = MIN_GLYPH_H, max_h: int = 200) -> list[tuple[list[int], tuple, int, int]]:
    """Glyph boxes grouped into text lines: ``(member indices, box, height, glyphs)`` per line.

    Glyphs are taken from left to right; each joins the line it continues: its
    height within :data:`GLYPH_RATIO` of the line's median, overlapping the
    line's median band by half the smaller height, at most :data:`GLYPH_GAP`
    heights to the right of it. Medians keep a line whole when one glyph is
    swollen by a touching speck. Smaller parts inside the line's box (a
    decimal point, a comma, a piece of a broken stroke) then join it. Lines of fewer than two
    glyphs are dropped (a label has a value and a unit).
    """
    idx = [i for i, b in enumerate(boxes) if b is not None]
    hs = {i: boxes[i][3] - boxes[i][1] for i in idx}
    ws = {i: boxes[i][2] - boxes[i][0] for i in idx}
    main = sorted((i for i in idx if min_h <= hs[i] <= max_h and ws[i] <= 4 * hs[i]), key=lambda i: boxes[i][0])
    lines: list[dict] = []
    for g in main:
        gx0, gy0, gx1, gy1 = boxes[g]
        best = None
        for line in lines:
            H, (t, b) = line["H"], line["band"]
            gap = gx0 - line["x1"]
            if gap > GLYPH_GAP * max(H, hs[g]) + 1 or max(H, hs[g]) > GLYPH_RATIO * min(H, hs[g]):
                continue
            if min(gy1, b) - max(gy0, t) < 0.5 * min(H, hs[g]):
                continue
            if best is None or gap < best[0]:
                best = (gap, line)
        if best is None:
            lines.append({"members": [g], "x1": gx1, "H": hs[g], "band": (gy0, gy1)})
            continue
        line = best[1]
        line["members"].append(g)
        line["x1"] = max(line["x1"], gx1)
        m = line["members"]
        line["H"] = float(np.median([hs[i] for i in m]))
        line["band"] = (float(np.median([boxes[i][1] for i in m])), float(np.median([boxes[i][3] for i in m])))
    used = {i for line in lines for i in line["members"] if len(line["members"]) > 1}
    out = []
    for line in lines:
        members = line["members"]
        glyphs = len(members)
        box = box_union(boxes[i] for i in members)
        lh = max(hs[i] for i in members)
        for j in idx:  # pieces inside the line: points, commas (a little below it), broken strokes
            if j in used or j in members:
                continue
            x0, y0, x1, y1 = boxes[j]
            below = max(2, line["H"] / 4) if ws[j] <= 0.4 * line["H"] else 1
            if x0 >= box[0] - 1 and x1 <= box[2] + 1 and y0 >= box[1] - 1 and y1 <= box[3] + below:
                members.append(j)
        if glyphs >= 2:
            used.update(members)
            out.append((members, box_union(boxes[i] for i in members), lh, glyphs))
    return out


def attach_lines(lines, bar: tuple[int, int, int, int]) -> list[TextLine]:
    """The lines that belong to the bar, nearest first.

    A line is the bar's when it lies above or below it, overlapping its span,
    within :data:`LINE_GAP` line heights; or level with it on the left or right,
    within twice that. Further lines stacked on an attached one (a label on two
    lines) are added as ``"chained"``.
    """
    bx0, by0, bx1, by1 = bar
    cy = (by0 + by1) / 2
    out, rest = [], []
    for members, box, lh, glyphs in lines:
        x0, y0, x1, y1 = box
        reach = LINE_GAP * lh + 3
        side, gap = None, None
        if min(x1, bx1) - max(x0, bx0) > 0:
            if y1 <= by0 + 1:
                side, gap = "above", by0 - y1
            elif y0 >= by1 - 1:
                side, gap = "below", y0 - by1
        if side is None and y0 - lh / 2 <= cy <= y1 + lh / 2:
            if x1 <= bx0 + 1:
                side, gap, reach = "left", bx0 - x1, 2 * reach
            elif x0 >= bx1 - 1:
                side, gap, reach = "right", x0 - bx1, 2 * reach
        if side is not None and gap <= reach:
            out.append(TextLine(box, members, lh, side, float(max(gap, 0)), glyphs))
        else:
            rest.append(TextLine(box, members, lh, "chained", 0.0, glyphs))
    out.sort(key=lambda t: (t.gap / max(t.height, 1), t.gap))
    # One label per side: a further line on the same side is micrograph texture that looks like text.
    sides: set[str] = set()
    out = [t for t in out if not (t.side in sides or sides.add(t.side))]
    # Lines stacked on an attached line (same column span, one line height apart).
    frontier = list(out)
    while frontier and rest:
        base = frontier.pop(0)
        for t in list(rest):
            x0, y0, x1, y1 = t.box
            if min(x1, base.box[2]) - max(x0, base.box[0]) <= 0:
                continue
            gap = max(base.box[1] - y1, y0 - base.box[3])
            if -1 <= gap <= base.height and 0.5 <= t.height / base.height <= 2:
                t.gap = float(max(gap, 0))
                out.append(t)
                frontier.append(t)
                rest.remove(t)
    return out


def find_parts(seeds: np.ndarray, solid: np.ndarray, core: np.ndarray, bar: tuple | None = None) -> Parts:
    """The bar, its text lines and the pixels of both, in a map of bar-coloured pixels.

    Parameters
    ----------
    seeds : ndarray of bool
        Pixels taken as bar colour (the exact colour and the strokes grown from it).
    solid : ndarray of bool
        Pixels of exactly the bar colour (where the bar is looked for).
    core : ndarray of bool
        Pixels within the tolerance of the bar colour, or of a mostly covered
        thin stroke: a glyph holds some (a piece of micrograph chained to the
        bar by its rim does not).
    bar : box, optional
        The bar when already known.

    Returns
    -------
    Parts
        ``keep`` is None when no bar is found (nothing to anchor a selection on).
    """
    if bar is None:
        bar = find_bar(solid & seeds)
    if bar is None:
        return Parts(None)
    x0, y0, x1, y1 = bar
    h, w = seeds.shape
    cut = np.zeros_like(seeds)
    cut[max(0, y0 - 1): y1 + 1, max(0, x0 - 1): x1 + 1] = True
    lab, n = ndi.label(seeds & ~cut, np.ones((3, 3), bool))
    if n:
        cored = np.zeros(n + 1, bool)
        cored[1:] = np.bincount(lab.ravel(), core.ravel(), n + 1)[1:] > 0
        lab = np.where(cored[lab], lab, 0)
    boxes = _glyph_boxes(lab)
    lines = attach_lines(group_lines(boxes), bar)
    keep_ids = np.zeros(n + 1, bool)
    for t in lines:
        keep_ids[np.asarray(t.members) + 1] = True
    # Small attachments at the bar itself (end ticks, its anti-aliased rim): parts touching the bar
    # that stay within its span and a few px of it.
    bt = y1 - y0
    near = ndi.binary_dilation(cut, np.ones((3, 3), bool))
    touching = np.unique(lab[near & (lab > 0)])
    for k in touching:
        bx = boxes[k - 1]
        if bx is None or keep_ids[k]:
            continue
        piece = lab[bx[1]:bx[3], bx[0]:bx[2]] == k
        if solid[bx[1]:bx[3], bx[0]:bx[2]][piece].mean() < 0.5:  # ticks are as flat as the bar
            continue
        if bx[0] >= x0 - 3 and bx[2] <= x1 + 3 and bx[1] >= y0 - max(12, 3 * bt) and bx[3] <= y1 + max(12, 3 * bt):
            keep_ids[k] = True
    keep = keep_ids[lab] | (seeds & cut)
    for t in lines:
        t.members = [m + 1 for m in t.members]
    return Parts(bar, lines, lab, keep)


def backing_box(bar: tuple, keep: np.ndarray, colour: np.ndarray, sub: np.ndarray,
                tolerance: float, open_edges: tuple[bool, bool, bool, bool]) -> tuple[int, int, int, int] | None:
    """A flat box of another colour behind the bar and its label, or None.

    The ring just around the bar must be one exact colour (not the bar's); the
    box is the region of that colour holding the ring, and it must be a filled
    rectangle (with the bar and label inside) not much larger than what it
    holds. ``open_edges`` (left, top, right, bottom) says which sides of ``sub``
    are cut from a larger image: a box reaching one of those is not trusted.
    """
    h, w = keep.shape
    x0, y0, x1, y1 = bar
    ring = np.zeros((h, w), bool)
    ring[max(0, y0 - 1): y1 + 1, max(0, x0 - 1): x1 + 1] = True
    ring[y0:y1, x0:x1] = False
    ring &= ~keep
    if ring.sum() < 8:
        return None
    vals = np.rint(sub[ring]).astype(np.int32)
    uniq, counts = np.unique(vals, axis=0, return_counts=True)
    mode = uniq[np.argmax(counts)].astype(np.float32)
    if counts.max() < 0.8 * len(vals) or np.abs(mode - colour).max() <= tolerance:
        return None
    region = np.abs(sub - mode).max(-1) <= 1.0
    lab, _ = ndi.label(region)
    ids = np.unique(lab[ring & region])
    ids = ids[ids > 0]
    if ids.size == 0:
        return None
    comp = np.isin(lab, ids)
    ys, xs = np.nonzero(comp)
    bx0, by0, bx1, by1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    if not (bx0 <= x0 and by0 <= y0 and bx1 >= x1 and by1 >= y1):
        return None
    if (open_edges[0] and bx0 == 0) or (open_edges[1] and by0 == 0) or (open_edges[2] and bx1 == w) \
            or (open_edges[3] and by1 == h):
        return None
    ky, kx = np.nonzero(keep)
    kx0, ky0, kx1, ky1 = kx.min(), ky.min(), kx.max() + 1, ky.max() + 1
    pad = max(24, ky1 - ky0, (x1 - x0) // 2)  # room for a label that was not recognised
    if bx0 < kx0 - pad or by0 < ky0 - pad or bx1 > kx1 + pad or by1 > ky1 + pad:
        return None
    # Filled: the bar and the glyphs are holes in the box's colour.
    fill = ndi.binary_fill_holes(comp[by0:by1, bx0:bx1]).mean()
    if fill < 0.97:
        return None
    return bx0, by0, bx1, by1
