"""Scale bars: the mask of a bar and its label, automatic detection, reading the label, voxel size.

One module per concern:

* :mod:`.mask` — the bar colour under a click and the mask of bar and label
  (MicroLib's rule and a better one), MicroLib's ``barcol``;
* :mod:`.parts` — the bar, the text lines beside it and a backing box, as geometry;
* :mod:`.detect` — finding the bar near the top or bottom, its length, µm per pixel;
* :mod:`.label` — reading the label (``50 µm``) by OCR checked by templates, and how sure it is;
* :mod:`.ocr` — the optional Tesseract engine.

All functions take images as arrays: a float image in [0, 1] (a
:class:`~microlib_gui.core.images.Micrograph`'s ``data``, gray ``(H, W)`` or
colour ``(H, W, 3)``) or uint8/uint16 arrays. Colours and tolerances are in grey
levels 0-255. Callers use the names below (``from ..core import scalebar as sb;
sb.bar_mask(...)``); the submodules are how the code is kept, not an interface.
"""

from .detect import BarDetection, detect_scale_bar, length_between, voxel_size
from .label import (
    LABEL_MIN_SCORE,
    LABEL_SURE_SCORE,
    LABEL_UNITS,
    LABEL_VALUES,
    OCR_MIN_AGREE,
    OCR_SCALES,
    LabelReading,
    label_ink,
    parse_label_text,
    read_label,
)
from .mask import (
    BG_RADIUS,
    DEFAULT_TOLERANCE,
    EDGE_GROW,
    MaskDetail,
    ScaleBarError,
    bar_mask,
    clip_box,
    microlib_barcol,
    microlib_mask,
    pick_colour,
    to_255,
    tolerance_from_barcol,
)

__all__ = [
    "BG_RADIUS", "DEFAULT_TOLERANCE", "EDGE_GROW", "LABEL_MIN_SCORE", "LABEL_SURE_SCORE", "LABEL_UNITS",
    "LABEL_VALUES", "OCR_MIN_AGREE", "OCR_SCALES", "BarDetection", "LabelReading", "MaskDetail", "ScaleBarError", "bar_mask", "clip_box",
    "detect_scale_bar", "label_ink", "length_between", "microlib_barcol", "microlib_mask", "parse_label_text",
    "pick_colour", "read_label", "to_255", "tolerance_from_barcol", "voxel_size",
]
