"""Reading a scale bar's label (``50 µm``): template matching first, then OCR when installed.

Every usual label (values x units x fonts) is rendered at the observed text
height and compared with the label's strokes; thin labels that no template
matches well are read by Tesseract (:mod:`.ocr`) at several scales, and a
reading counts only when most scales agree.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .mask import BG_RADIUS, DEFAULT_TOLERANCE, _bar_mask255, _colour_vec, _coverage, clip_box

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
    from . import ocr  # optional engine: imported only when templates fail

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
