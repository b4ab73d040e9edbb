"""Segment step: thresholds on the working image (rotated, cropped, optionally sharpened) → labels.

The labels are derived from the annotations in one place (:func:`labels_for`):
the Segment panel's save, Undo/Redo, the Inpaint step's input and the build
all call it, so ``_segmented.png`` is always what the annotations say.
"""

from __future__ import annotations

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


def work_image(gray: np.ndarray, deblur_sigma: float) -> np.ndarray:
    """What the thresholds apply to: the working gray image, sharpened when ``deblur_sigma`` > 0."""
    return sg.deblur(gray, deblur_sigma) if deblur_sigma else gray


def auto_thresholds(gray: np.ndarray, n_phases: int | None = None, deblur_sigma: float = sg.DEBLUR_SIGMA) -> list[float]:
    """"Auto": multi-Otsu on the working image (sharpened by default), flat areas (a burnt-in bar) ignored.

    ``n_phases`` None estimates the number of phases.
    """
    flat = sg.flat_pixels(gray)
    return sg.auto_thresholds(work_image(gray, deblur_sigma), n_phases, flat if not flat.all() else None)


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


def labels_for(gray: np.ndarray, ann: dict) -> np.ndarray | None:
    """The label image the annotations describe, or None (kept grayscale/colour, or no thresholds)."""
    if not sg.needs_segmentation(ann.get("data_type")):
        return None
    t = saved_thresholds(ann)
    if t is None:
        return None
    return sg.apply_thresholds(work_image(gray, saved_sigma(ann)), t)


def staged_files(library, entry_id: int, ann: dict, gray: np.ndarray | None = None):
    """(files to write, files to remove) for annotations ``ann``: ``_segmented.png`` or nothing."""
    if gray is None:
        gray = pp.working_gray(original_image(library, entry_id), ann)
    labels = labels_for(gray, ann)
    if labels is None:
        return [], [L.SEGMENTED.suffix]
    params = {"thresholds": saved_thresholds(ann), "deblur_sigma": saved_sigma(ann)}
    return [StagedFile(L.SEGMENTED.suffix, png_bytes(sg.labels_to_png(labels)), inputs=[original_suffix(library, entry_id)],
                       params=params, produced_by=STEP)], []


def save(library, entry_id: int, *, thresholds=None, deblur_sigma: float = 0.0, method: str = "thresholds",
         data_type: str | None = None, gray: np.ndarray | None = None):
    """Save a segmentation (``thresholds``) or keep the entry as it is (``data_type`` grayscale/colour).

    Writes the annotations and ``_segmented.png`` in one transaction.
    """
    if data_type in KEPT_TYPES:
        changes = {"data_type": data_type}
    else:
        t = [round(float(v), 2) for v in sg.check_thresholds(thresholds)]
        n = len(t) + 1
        changes = {"thresholds": t, "n_phases": n, "segment_method": method,
                   "deblur_sigma": float(deblur_sigma or 0), "data_type": sg.data_type_for(n)}
    ann = {**library.get_annotations(entry_id), **changes}
    files, remove = staged_files(library, entry_id, ann, gray)
    return library.complete_step(entry_id, STEP, annotations=changes, files=files, remove=remove)
