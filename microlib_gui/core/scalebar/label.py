"""Reading a scale bar's label (``200 µm``, ``0,5 mm``, ``100 nm``), and saying how sure the reading is.

The label is one of the text lines :mod:`.parts` finds beside the bar (above,
below, left or right). Its ink — the coverage of its glyphs alone, every other
pixel blank — is cut by shape into the number (digits reach the cap height)
and the unit (m, n, u, µ reach the x-height; a µ has a tail below the line):

* the number is read by Tesseract (:mod:`.ocr`) on the digits alone, at two
  heights; a decimal point seen on the baseline is put where it is, since OCR
  often misses it;
* the unit by its shape (a µ's tail), by Tesseract on the unit alone, by
  templates of the units and by the whole line's reading;
* the whole line is read once more by Tesseract, and compared with templates
  (usual labels rendered in sans fonts at the observed height, scored by
  overlap), as cross-checks. Without Tesseract the templates alone read.

A reading is *sure* only when it is consistent with what is seen: the two
readings of the number agree and have as many digits as the line, two readers
agree on the unit, no cross-check reads another value, and the value is a
usual one. Anything else is returned for the user to check (``sure=False``,
with the reason), never silently as the truth.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .mask import DEFAULT_TOLERANCE, MaskDetail, _bar_mask255, _colour_vec, clip_box
from .ocr import LABEL_CHARS
from .parts import TextLine

#: Values a scale bar label usually shows (1-2-2.5-5 series and round tens).
LABEL_VALUES = (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 3, 4, 5, 10, 20, 25, 30, 40, 50, 100, 200, 250, 300, 400,
                500, 1000, 2000, 5000)
LABEL_UNITS = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3}
#: Lowest template score (overlap of rendered and observed ink, 0-1) taken as a reading at all.
LABEL_MIN_SCORE = 0.55
#: Template score above which a template reading alone is sure (when no other template comes close).
LABEL_SURE_SCORE = 0.8
#: Text heights (px, the whole line) the ink is enlarged to for whole-line OCR: the first is the
#: cross-check; the second is read too when the line cannot be cut into number and unit.
OCR_SCALES = (40, 28)
#: Whole-line OCR readings that must agree when the line is read whole.
OCR_MIN_AGREE = 2


@dataclass
class LabelReading:
    """A label read: its text (``"0.5 mm"``), value in µm, score 0-1, reader, and whether it is sure."""

    text: str
    value_um: float
    score: float
    reader: str  # "ocr", "template" or "ocr+template"
    sure: bool
    line: TextLine | None = None
    why: str = ""  # why it is not sure


# -- templates ----------------------------------------------------------------------------------
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


def _draw(text: str, font_path: str, size: int) -> np.ndarray | None:
    from PIL import Image, ImageDraw

    f = _font(font_path, size)
    if f is None:
        return None
    l, t, r, b = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=f)
    im = Image.new("L", (r - l + 4, b - t + 4), 0)
    ImageDraw.Draw(im).text((2 - l, 2 - t), text, fill=255, font=f)
    a = np.asarray(im, np.float32) / 255.0
    ys, xs = np.nonzero(a > 0.3)
    return a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1] if ys.size else None


@functools.lru_cache(maxsize=4096)
def _aspect(text: str, font_path: str) -> float | None:
    """Width over height of ``text``'s ink (rendered once, large)."""
    a = _draw(text, font_path, 64)
    return None if a is None else a.shape[1] / a.shape[0]


@functools.lru_cache(maxsize=4096)
def _render(text: str, font_path: str, height: int) -> np.ndarray | None:
    """``text`` rendered so that its ink is ``height`` px tall; float alpha cropped to the ink."""
    from PIL import Image

    probe = _draw(text, font_path, 64)
    if probe is None:
        return None
    out = _draw(text, font_path, max(4, int(round(64 * height / probe.shape[0]))))
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


def _template_scores(ink: np.ndarray) -> list[tuple[float, str, float]]:
    """``(score, text, value in µm)`` of every usual label whose shape fits the ink, best first."""
    aspect = ink.shape[1] / ink.shape[0]
    best: dict[str, tuple[float, str, float]] = {}
    for value in LABEL_VALUES:
        for unit, factor in LABEL_UNITS.items():
            for sep in (" ", ""):
                text = f"{value:g}{sep}{unit}"
                for font in _fonts():
                    a = _aspect(text, font)
                    if a is None or not (0.7 < a / aspect < 1.45):
                        continue
                    r = _render(text, font, ink.shape[0])
                    if r is None:
                        continue
                    score = _overlap(ink, r)
                    key = f"{value:g} {unit}"
                    if key not in best or score > best[key][0]:
                        best[key] = (score, key, value * factor)
    return sorted(best.values(), reverse=True)


# -- parsing ------------------------------------------------------------------------------------
# A number, then nm, mm, or µm: Tesseract reads µm as "um", "pm", "ym", "un", "pum"..., so any
# short word starting with a µ look-alike counts as µm (agreement between readings guards the rest).
_LABEL_RE = re.compile(r"(\d+(?:[.,]\d+)?)\s*(nm|mm|[µμuyp][a-z]{0,2})(?![a-z])", re.IGNORECASE)


def parse_label_text(text: str, usual_only: bool = True) -> tuple[str, float] | None:
    """``"50 um"`` → ``("50 µm", 50.0)`` (value in µm), else None.

    Accepts µm in both of its code points (U+00B5, U+03BC), ``um``, ``nm``,
    ``mm`` and a decimal comma (``0,5 mm``). With ``usual_only`` only usual
    scale-bar values (:data:`LABEL_VALUES`) are taken.
    """
    m = _LABEL_RE.search(text)
    if not m:
        return None
    value = float(m.group(1).replace(",", "."))
    unit = m.group(2).lower()
    unit = unit if unit in ("nm", "mm") else "µm"
    if value <= 0 or (usual_only and value not in LABEL_VALUES):
        return None
    return f"{value:g} {unit}", value * LABEL_UNITS[unit]


# -- ink ----------------------------------------------------------------------------------------
def _member_boxes(d: MaskDetail, members) -> dict[int, tuple[int, int, int, int]]:
    objs = ndi.find_objects(d.parts.labels)
    return {m: (objs[m - 1][1].start, objs[m - 1][0].start, objs[m - 1][1].stop, objs[m - 1][0].stop)
            for m in members if m - 1 < len(objs) and objs[m - 1] is not None}


def line_ink(d: MaskDetail, line: TextLine, members=None) -> np.ndarray | None:
    """Coverage (0-1) of a text line's glyphs (or of ``members`` of it), every other pixel blank, cropped."""
    members = list(line.members if members is None else members)
    boxes = list(_member_boxes(d, members).values())
    if not boxes:
        return None
    lab = d.parts.labels
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    H, W = lab.shape
    X0, Y0, X1, Y1 = max(0, x0 - 2), max(0, y0 - 2), min(W, x1 + 2), min(H, y1 + 2)
    sel = np.isin(lab[Y0:Y1, X0:X1], members)
    rim = ndi.binary_dilation(sel, np.ones((3, 3), bool))
    a = np.clip(d.alpha[Y0:Y1, X0:X1], 0, 1)
    a = np.where(d.core[Y0:Y1, X0:X1] & sel, 1.0, a) * rim
    # Keep what lies by a stroke as well covered as the glyph's usual: a chain of half-covered
    # pixels hanging off a solid glyph is a light speck of micrograph beside a dark one.
    lab_w = np.where(sel, lab[Y0:Y1, X0:X1], 0)
    p75 = ndi.labeled_comprehension(a, lab_w, members, lambda v: np.percentile(v, 75), float, 0.0)
    usual = np.zeros(int(lab_w.max()) + 1, np.float32)
    usual[np.asarray(members)[np.asarray(members) <= lab_w.max()]] = p75[np.asarray(members) <= lab_w.max()]
    solid = sel & (a >= 0.75 * usual[lab_w])
    a *= ndi.binary_dilation(solid, np.ones((3, 3), bool))
    a[a < 0.15] = 0
    ys, xs = np.nonzero(a > 0.3)
    if ys.size < 8:
        return None
    return a[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1].astype(np.float32)


def _find(img: np.ndarray, colour, label_box, bar_box=None):
    """The mask detail around a label (and bar), and the text line that best covers ``label_box``."""
    img = np.asarray(img, np.float32)
    c = _colour_vec(colour, img.shape[2])
    lh = label_box[3] - label_box[1]
    boxes = [label_box] + ([bar_box] if bar_box is not None else [])
    grow = max(8, lh)
    win = clip_box((min(b[0] for b in boxes) - grow, min(b[1] for b in boxes) - grow,
                    max(b[2] for b in boxes) + grow, max(b[3] for b in boxes) + grow), img.shape)
    _, d = _bar_mask255(img, c, DEFAULT_TOLERANCE, win, True, bar=bar_box)
    if d is None or d.parts is None or not d.parts.lines:
        return d, None
    X0, Y0 = d.window[:2]
    lx0, ly0, lx1, ly1 = label_box[0] - X0, label_box[1] - Y0, label_box[2] - X0, label_box[3] - Y0

    def cover(t):
        ix = max(0, min(lx1, t.box[2]) - max(lx0, t.box[0]))
        iy = max(0, min(ly1, t.box[3]) - max(ly0, t.box[1]))
        return ix * iy

    best = max(d.parts.lines, key=cover)
    return d, (best if cover(best) > 0 else None)


def label_ink(img: np.ndarray, colour, label_box, bar_box=None) -> np.ndarray | None:
    """Coverage (0-1) of the label's strokes in ``label_box``, cropped to the ink.

    ``img`` is a float image in grey levels 0-255, ``(H, W, C)``. The label is
    the text line (:mod:`.parts`) that overlaps ``label_box`` most; only its
    glyphs are kept, so specks of the micrograph inside the box do not count.
    """
    d, line = _find(img, colour, label_box, bar_box)
    return None if line is None else line_ink(d, line)


# -- the line's value and unit ------------------------------------------------------------------
@dataclass
class _Split:
    """A label line cut into its number (digits at full height, points) and its unit (x-height glyphs)."""

    value: list[int]
    unit: list[int]
    digits: int  # full-height glyphs in the number
    point_after: int | None  # digits before a decimal point or comma seen on the baseline
    tail: bool  # the unit's first glyph reaches well below the baseline (a µ)


def _split(d: MaskDetail, line: TextLine) -> _Split | None:
    """Number and unit by glyph shape: digits reach the cap height, the unit's letters (m, n, u, µ) do not.

    None when the line does not look like "digits, then letters".
    """
    boxes = _member_boxes(d, line.members)
    if len(boxes) < 2:
        return None
    tall = {m: b for m, b in boxes.items() if b[3] - b[1] >= 0.45 * line.height}
    if len(tall) < 2:
        return None
    top = min(b[1] for b in tall.values())
    base = float(np.median([b[3] for b in tall.values()]))
    cap = base - top
    if cap < 4:
        return None
    order = sorted(tall, key=lambda m: tall[m][0])
    kinds = ["digit" if tall[m][1] <= top + 0.15 * cap else "letter" for m in order]
    if "letter" not in kinds or kinds[0] != "digit":
        return None
    first_letter = kinds.index("letter")
    if "digit" in kinds[first_letter:]:
        return None  # a digit after a letter: not "number unit"
    value, unit = order[:first_letter], order[first_letter:]
    if any(tall[m][3] > base + max(1.5, 0.15 * cap) for m in value):
        return None  # a digit with a tail: a digit merged with a µ
    x_cut = tall[unit[0]][0]
    smalls = [m for m, b in boxes.items() if m not in tall and b[2] <= x_cut]
    # A decimal point or comma sits on the baseline between two digits (not inside one: the dot
    # of a dotted zero).
    inside = lambda b: any(t[0] <= b[0] and b[2] <= t[2] for t in (tall[m] for m in value))  # noqa: E731
    points = [m for m in smalls if boxes[m][3] >= base - 0.25 * cap and not inside(boxes[m])]
    u0 = tall[unit[0]]
    tail = u0[3] > base + max(1.5, 0.15 * cap)
    point_after = None
    if len(points) == 1:
        px = boxes[points[0]][0]
        k = sum(1 for m in value if tall[m][2] <= px)
        point_after = k if 0 < k < len(value) else None
    return _Split(value + smalls, unit, len(value), point_after, tail)


#: Heights (px) the digits alone are enlarged to for OCR (single digits read best small).
DIGIT_HEIGHTS = (32, 24)


def _place_point(text: str | None, sp: _Split) -> str | None:
    """The number OCR read in the digits, with the decimal point where it is seen.

    When OCR found as many digits as there are digit glyphs, the point (or
    comma, often missed by OCR, it is so small) goes where the line shows it;
    otherwise the text is taken as read.
    """
    if not text:
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        return None
    if len(digits) == sp.digits:
        if sp.point_after is None:
            return digits if not any(ch in ".," for ch in text) else _number(text)
        return f"{digits[: sp.point_after]}.{digits[sp.point_after:]}"
    return _number(text)


_NUMBER_RE = re.compile(r"^\s*(\d+(?:[.,]\d+)?)\s*$")
#: Units as Tesseract reads them alone (µ is often "u" or "p"; a final m is sometimes "n").
_UNITS = {"mm": "mm", "nm": "nm", "um": "µm", "µm": "µm", "μm": "µm", "pm": "µm", "un": "µm", "pn": "µm",
          "µn": "µm", "μn": "µm", "mn": "mm", "nn": "nm"}


def _number(text: str | None) -> str | None:
    m = _NUMBER_RE.match(text or "")
    return m.group(1).replace(",", ".") if m else None


def _unit_templates(ink: np.ndarray) -> list[tuple[float, str]]:
    out = {}
    for text, unit in (("mm", "mm"), ("nm", "nm"), ("um", "µm"), ("µm", "µm")):
        for font in _fonts():
            r = _render(text, font, ink.shape[0])
            if r is not None and 0.6 < r.shape[1] / ink.shape[1] < 1.6:
                out[unit] = max(out.get(unit, 0.0), _overlap(ink, r))
    return sorted(((v, k) for k, v in out.items()), reverse=True)


class _Ocr:
    """Tesseract calls for one detection; after the engine fails once it is not called again."""

    def __init__(self):
        from . import ocr

        self.ocr = ocr
        self.failed = not ocr.available()

    def read(self, ink: np.ndarray | None, height: float, chars: str) -> str | None:
        if self.failed or ink is None:
            return None
        page = np.pad((255 - np.clip(ink, 0, 1) * 255).astype(np.uint8), max(4, ink.shape[0] // 2),
                      constant_values=255)
        text = self.ocr.run_line(page, height / ink.shape[0], chars)
        if text is None:
            self.failed = True
        return text


# -- reading ------------------------------------------------------------------------------------
def read_label(img: np.ndarray, colour, label_box, bar_box=None) -> tuple[str, float, float] | None:
    """Read a label like ``50 µm``: ``(text, value in µm, score)``, or None when it cannot be read.

    The reading may need checking: :func:`read_line` (used by detection) says so.
    """
    d, line = _find(img, colour, label_box, bar_box)
    if line is None:
        return None
    r = read_line(d, line)
    return None if r is None else (r.text, r.value_um, r.score)


def read_lines(d: MaskDetail, lines: list[TextLine], max_lines: int = 3) -> LabelReading | None:
    """The label among the text lines beside a bar (nearest first): the first that reads surely.

    Returns the first sure reading, else the first reading at all (to be
    checked), else None.
    """
    first = None
    engine = _Ocr()
    for line in lines[:max_lines]:
        r = read_line(d, line, engine)
        if r is None:
            continue
        if r.sure:
            return r
        first = first or r
    return first


def read_line(d: MaskDetail, line: TextLine, engine: _Ocr | None = None) -> LabelReading | None:
    """Read one text line as a label, and say how sure the reading is.

    The number is read by OCR on the digits alone (at two heights; digits only),
    the unit from its shape (a µ's tail) and by OCR and templates of the unit
    alone; the whole line is read once more by OCR and by templates as a cross-check.
    """
    engine = engine or _Ocr()
    ink = line_ink(d, line)
    if ink is None or ink.shape[0] < 5:
        return None
    templates = _template_scores(ink)
    t_best = templates[0] if templates and templates[0][0] >= LABEL_MIN_SCORE else None
    t_margin = templates[0][0] - next((t[0] for t in templates[1:] if t[2] != templates[0][2]), 0.0) \
        if templates else 0.0
    full = [parse_label_text(engine.read(ink, h, LABEL_CHARS) or "", usual_only=False) for h in OCR_SCALES[:1]]
    sp = _split(d, line)
    why: list[str] = []
    reading = None
    if sp is not None:
        v_ink, u_ink = line_ink(d, line, sp.value), line_ink(d, line, sp.unit)
        numbers = [_place_point(engine.read(v_ink, h, "0123456789.,"), sp) for h in DIGIT_HEIGHTS]
        u_text = (engine.read(u_ink, OCR_SCALES[0], "mnuµμp") or "").replace(" ", "")
        u_ocr = _UNITS.get(u_text)
        u_tmpl = _unit_templates(u_ink) if u_ink is not None else []
        u_t = u_tmpl[0][1] if u_tmpl and u_tmpl[0][0] >= 0.5 else None
        u_full = next((f[0].split()[-1] for f in full if f), None)
        votes = [u for u in (u_ocr, u_t, u_full) if u is not None]
        if sp.tail:  # only a µ has a tail; one reader must see a µ too
            unit, unit_ok = "µm", "µm" in votes
        else:
            unit = max(set(votes), key=votes.count) if votes else None
            unit_ok = unit is not None and votes.count(unit) >= 2
        number = numbers[0] or numbers[1]
        if number is not None and unit is not None:
            value = float(number)
            reading = (f"{value:g} {unit}", value * LABEL_UNITS[unit])
            if numbers[0] != numbers[1]:
                why.append("OCR readings of the number differ")
            n_digits = sum(ch.isdigit() for ch in number)
            if n_digits != sp.digits:
                why.append(f"{sp.digits} digits seen, {n_digits} read")
            if not unit_ok:
                why.append(f"unit “{unit}” uncertain")
            if sp.tail is False and unit == "µm" and u_text[:1] in ("µ", "μ", "p"):
                why.append("a µ read but no tail seen")
    if reading is None:  # no number-unit split: the whole line, by OCR, then by templates
        more = [parse_label_text(engine.read(ink, h, LABEL_CHARS) or "", usual_only=False) for h in OCR_SCALES[1:2]]
        got = [f for f in full + more if f]
        if got:
            reading = max(set(got), key=got.count)
            if got.count(reading) < OCR_MIN_AGREE:
                why.append("OCR readings differ" if len(got) > 1 else "read once by OCR")
        elif t_best is not None:
            reading = (t_best[1], t_best[2])
            if not (t_best[0] >= LABEL_SURE_SCORE and t_margin >= 0.08):
                why.append(f"template match {t_best[0]:.2f}")
            return _finish(reading, t_best[0], "template", why, line)
        else:
            return None
    # Cross-checks against the independent readers.
    if any(f and abs(f[1] - reading[1]) > 1e-9 * reading[1] for f in full):
        why.append(f"the whole line reads “{next(f for f in full if f)[0]}”")
    if t_best is not None and t_best[0] >= LABEL_SURE_SCORE and t_margin >= 0.08 and t_best[2] != reading[1]:
        why.append(f"template reads “{t_best[1]}”")
    reader = "ocr+template" if t_best is not None and t_best[2] == reading[1] else "ocr"
    return _finish(reading, 1.0 if not why else 0.5, reader, why, line)


def _finish(reading, score, reader, why, line) -> LabelReading:
    text, value = reading
    if parse_label_text(text) is None:
        why = why + ["unusual value"]
    return LabelReading(text, float(value), float(score), reader, not why, line, "; ".join(why))
