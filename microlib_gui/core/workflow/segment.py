"""Segment step: thresholds on the working image (rotated, cropped, corrected for uneven light,
optionally sharpened) → labels.

The labels are derived from the annotations in one place (:func:`labels_for`):
the Segment panel's save, Undo/Redo, the Inpaint step's input and the build
all call it, so ``_segmented.png`` is always what the annotations say.

Uneven lighting: the annotation ``background`` records the correction applied
("divide", "subtract", or none) and ``background_mode`` what was asked
("auto" corrects when it is detected, "off", or a method). The light field is
fitted for the thresholds' number of phases, so the same annotations always give
the same corrected image (:func:`work_image`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .. import preprocess as pp
from .. import segment as sg
from ..library import layout as L
from ..library import StagedFile
from .common import original_image, original_suffix, png_bytes

STEP = "segment"
KEPT_TYPES = ("grayscale", "colour")  # entries kept as they are, not segmented


@dataclass
class SegmentInputs:
    original: np.ndarray
    annotations: dict
    gray: np.ndarray  #: working image, gray 0-255 float (after rotation and crop)


def inputs(library, entry_id: int) -> SegmentInputs:
    ann = library.get_annotations(entry_id)
    img = original_image(library, entry_id)
    return SegmentInputs(img, ann, pp.working_gray(img, ann))


_FIELDS: OrderedDict = OrderedDict()  # (image digest, method, phases) -> Background: the fit is the slow part
_FIELDS_LOCK = threading.Lock()


def _ignore(gray: np.ndarray) -> np.ndarray | None:
    flat = sg.flat_pixels(gray)  # flat areas (a burnt-in bar) are not micrograph
    return None if flat.all() else flat


def _cached_fit(gray: np.ndarray, mode: str, n_phases: int, ignore) -> tuple[sg.Background | None, float | None]:
    """:func:`~microlib_gui.core.segment.resolve_background`, remembered for the last few images."""
    g = np.ascontiguousarray(gray, np.float32)
    key = (hashlib.blake2b(g.tobytes(), digest_size=16).hexdigest(), g.shape, mode, int(n_phases))
    with _FIELDS_LOCK:
        if key in _FIELDS:
            _FIELDS.move_to_end(key)
            return _FIELDS[key]
    out = sg.resolve_background(g, mode, int(n_phases), ignore)
    with _FIELDS_LOCK:
        _FIELDS[key] = out
        while len(_FIELDS) > 6:
            _FIELDS.popitem(last=False)
    return out


def background_fit(gray: np.ndarray, mode: str | None, n_phases: int) -> tuple[sg.Background | None, float | None]:
    """The correction ``mode`` ("auto", "off"/None, "divide", "subtract") gives for ``gray`` with
    ``n_phases`` phases, and the unevenness measured (None when not measured)."""
    mode = sg.check_background_mode(mode or "off")
    if mode == "off":
        return None, None
    return _cached_fit(gray, mode, n_phases, _ignore(np.asarray(gray, np.float32)))


def applied_background(gray: np.ndarray, mode: str | None, n_phases: int) -> tuple[str | None, float | None]:
    """(the method ``mode`` applies to ``gray`` — None for none —, the unevenness measured)."""
    bg, uneven = background_fit(gray, mode, n_phases)
    return (bg.method if bg is not None else None), uneven


def work_image(gray: np.ndarray, deblur_sigma: float, background: str | None = None, n_phases: int = 2) -> np.ndarray:
    """What the thresholds apply to: the working gray image corrected by ``background`` (a method,
    "auto", or None) for ``n_phases`` phases, then sharpened when ``deblur_sigma`` > 0."""
    bg, _ = background_fit(gray, background, n_phases)
    if bg is None:
        return sg.deblur(gray, deblur_sigma) if deblur_sigma else gray
    return sg.work_image(gray, deblur_sigma, bg)


def auto_thresholds(gray: np.ndarray, n_phases: int | None = None, deblur_sigma: float = sg.DEBLUR_SIGMA,
                    background: str = "auto") -> list[float]:
    """"Auto": multi-Otsu on the working image (corrected for uneven light when ``background`` asks,
    sharpened by default), flat areas (a burnt-in bar) ignored.

    ``n_phases`` None estimates the number of phases. With a correction the
    thresholds lie halfway between the fitted phase levels
    (:func:`~microlib_gui.core.segment.auto_thresholds_corrected`); :func:`save`
    with the same ``background`` applies the same correction.
    """
    g = np.asarray(gray, np.float32)
    t, _bg, _u = sg.auto_thresholds_corrected(g, n_phases, _ignore(g), deblur_sigma, background or "off",
                                              resolve=_cached_fit)
    return t


def saved_thresholds(ann: dict) -> list[float] | None:
    """The thresholds the annotations give (thresholds, or MicroLib's phase levels), or None."""
    if ann.get("thresholds"):
        return [float(t) for t in ann["thresholds"]]
    if ann.get("phases") and len(ann["phases"]) >= 2:
        return sg.thresholds_from_phases(ann["phases"])
    return None


def saved_sigma(ann: dict) -> float:
    """The deblur sigma of the saved segmentation (MicroLib's phase levels: none)."""
    if "deblur_sigma" in ann and ann["deblur_sigma"] is not None:
        return float(ann["deblur_sigma"])
    return 0.0


def saved_background(ann: dict) -> str | None:
    """The correction for uneven lighting the saved segmentation applied ("divide", "subtract"), or None."""
    b = ann.get("background")
    return b if b in sg.BACKGROUND_METHODS else None


def labels_for(gray: np.ndarray, ann: dict) -> np.ndarray | None:
    """The label image the annotations describe, or None (kept grayscale/colour, or no thresholds)."""
    if not sg.needs_segmentation(ann.get("data_type")):
        return None
    t = saved_thresholds(ann)
    if t is None:
        return None
    return sg.apply_thresholds(work_image(gray, saved_sigma(ann), saved_background(ann), len(t) + 1), t)


def staged_files(library, entry_id: int, ann: dict, gray: np.ndarray | None = None):
    """(files to write, files to remove) for annotations ``ann``: ``_segmented.png`` or nothing."""
    if gray is None:
        gray = pp.working_gray(original_image(library, entry_id), ann)
    labels = labels_for(gray, ann)
    if labels is None:
        return [], [L.SEGMENTED.suffix]
    params = {"thresholds": saved_thresholds(ann), "deblur_sigma": saved_sigma(ann),
              "background": saved_background(ann)}
    return [StagedFile(L.SEGMENTED.suffix, png_bytes(sg.labels_to_png(labels)), inputs=[original_suffix(library, entry_id)],
                       params=params, produced_by=STEP)], []


def save(library, entry_id: int, *, thresholds=None, deblur_sigma: float = 0.0, method: str = "thresholds",
         data_type: str | None = None, gray: np.ndarray | None = None, background: str = "auto"):
    """Save a segmentation (``thresholds``) or keep the entry as it is (``data_type`` grayscale/colour).

    ``background``: the uneven-lighting correction asked for ("auto": when it is
    detected; "off"; "divide" or "subtract"), resolved here for the thresholds'
    number of phases; the thresholds apply to the corrected image. Writes the
    annotations and ``_segmented.png`` in one transaction.
    """
    if data_type in KEPT_TYPES:
        changes = {"data_type": data_type}
    else:
        t = [round(float(v), 2) for v in sg.check_thresholds(thresholds)]
        n = len(t) + 1
        mode = sg.check_background_mode(background or "off")
        if gray is None:
            gray = pp.working_gray(original_image(library, entry_id), library.get_annotations(entry_id))
        applied, _ = applied_background(gray, mode, n)
        changes = {"thresholds": t, "n_phases": n, "segment_method": method,
                   "deblur_sigma": float(deblur_sigma or 0), "data_type": sg.data_type_for(n),
                   "background": applied, "background_mode": mode}
    ann = {**library.get_annotations(entry_id), **changes}
    files, remove = staged_files(library, entry_id, ann, gray)
    return library.complete_step(entry_id, STEP, annotations=changes, files=files, remove=remove)
