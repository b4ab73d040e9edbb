"""Scale-bar step: the bar's colour, tolerance and box (→ ``_mask.png``) and its length (→ µm per pixel).

The mask is drawn on the original and stored in the cropped frame. It is derived
from the annotations in one place (:func:`mask_full`, :func:`mask_in_frame`):
the panel's save, Undo/Redo, the Inpaint step and the build call it.
MicroLib's own annotations (``barbox`` + ``barcol``) give the same mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import preprocess as pp
from .. import scalebar as sb
from ..library import layout as L
from ..library import StagedFile
from .common import original_image, original_suffix, png_bytes

STEP = "scalebar"


@dataclass
class ScaleBarInputs:
    original: np.ndarray
    annotations: dict


def inputs(library, entry_id: int) -> ScaleBarInputs:
    return ScaleBarInputs(original_image(library, entry_id), library.get_annotations(entry_id))


def bar_colour(ann: dict) -> np.ndarray | None:
    """The bar colour (grey levels, one value or RGB) the annotations give, or None."""
    if ann.get("bar_colour") is not None:
        return np.asarray(ann["bar_colour"], np.float32)
    if ann.get("barcol"):
        return np.asarray([sb.tolerance_from_barcol(ann["barcol"])[0]], np.float32)
    return None


def tolerance(ann: dict) -> float:
    if ann.get("bar_tolerance") is not None:
        return float(ann["bar_tolerance"])
    if ann.get("barcol"):
        return sb.tolerance_from_barcol(ann["barcol"])[1]
    return float(sb.DEFAULT_TOLERANCE)


def box(ann: dict) -> tuple[int, int, int, int] | None:
    b = ann.get("barbox")
    return None if not b else (int(b[0][0]), int(b[0][1]), int(b[1][0]), int(b[1][1]))


def mask_full(original: np.ndarray, ann: dict) -> np.ndarray | None:
    """The bar mask in the original's frame, or None when no bar colour is annotated."""
    colour = bar_colour(ann)
    if colour is None:
        return None
    return sb.bar_mask(original, colour, tolerance(ann), box(ann))


def mask_in_frame(original: np.ndarray, ann: dict) -> np.ndarray | None:
    """The bar mask rotated and cropped like the training image; None when there is no bar there."""
    if has_no_bar(ann):
        return None
    full = mask_full(original, ann)
    if full is None:
        return None
    m = pp.mask_in_working_frame(full, ann)
    return m if m.any() else None


def staged_files(library, entry_id: int, ann: dict, original: np.ndarray | None = None):
    """(files to write, files to remove) for annotations ``ann``: ``_mask.png`` or nothing."""
    if original is None:
        original = original_image(library, entry_id)
    m = mask_in_frame(original, ann)
    if m is None:
        return [], [L.MASK.suffix]
    params = {"colour": ann.get("bar_colour"), "tolerance": tolerance(ann), "box": ann.get("barbox")}
    return [StagedFile(L.MASK.suffix, png_bytes(m.astype(np.uint8) * 255), inputs=[original_suffix(library, entry_id)],
                       params=params, produced_by=STEP)], []


def changes_for(*, colour=None, tol: float | None = None, bar_box=None, pick=None, ends=None,
                length_px: float | None = None, value_um: float | None = None) -> dict:
    """Annotation changes for what the user set (None: not set)."""
    changes: dict = {}
    if tol is not None:
        changes["bar_tolerance"] = float(tol)
    if bar_box is not None:
        changes["barbox"] = [[int(bar_box[0]), int(bar_box[1])], [int(bar_box[2]), int(bar_box[3])]]
    if colour is not None:
        colour = [float(c) for c in np.atleast_1d(colour)]
        changes["bar_colour"] = colour
        changes["barcol"] = sb.microlib_barcol(float(np.mean(colour)), float(tol if tol is not None else
                                                                           sb.DEFAULT_TOLERANCE))
    if pick is not None:
        changes["bar_pick"] = [int(pick[0]), int(pick[1])]
    if length_px:
        length_px = round(float(length_px), 3)  # as stored: the voxel size is derived from the stored length
        if ends is not None:
            changes["bar_ends"] = [[int(p[0]), int(p[1])] for p in ends]
        changes["bar_length_px"] = length_px
    if value_um is not None and value_um > 0:
        changes["bar_value_um"] = float(value_um)
        if length_px:
            changes["vox_size"] = sb.voxel_size(float(length_px), float(value_um))
            changes["scale_source"] = "bar"
    return changes


def scale_changes(*, um_per_px: float | None = None, unknown: bool = False) -> dict:
    """The voxel size typed in (from the microscope or the record's text), or marked unknown.

    Without a bar to measure, MicroLib's training images among them, the scale is
    typed or left unknown; exports then say the voxel size is unknown.
    """
    if unknown:
        return {"vox_size": None, "scale_source": "unknown"}
    if um_per_px is None or not um_per_px > 0:
        raise sb.ScaleBarError("µm per pixel must be a number greater than 0 (or mark the scale unknown)")
    return {"vox_size": float(um_per_px), "scale_source": "typed"}


def no_bar_changes(no_bar: bool) -> dict:
    """Mark the micrograph as having no burnt-in bar: nothing to mask, the Inpaint step keeps the image."""
    return {"no_bar": True if no_bar else None}


def has_no_bar(ann: dict) -> bool:
    return bool(ann.get("no_bar"))


def scale_known_or_waived(ann: dict) -> bool:
    return bool(ann.get("vox_size")) or ann.get("scale_source") == "unknown"


def is_done(ann: dict, has_mask: bool) -> bool:
    """Done when the voxel size is known (or marked unknown) and the bar is masked (or there is none)."""
    return scale_known_or_waived(ann) and (has_mask or has_no_bar(ann))


def save(library, entry_id: int, changes: dict, original: np.ndarray | None = None):
    """Save scale-bar annotations and the mask they give, in one transaction."""
    if original is None:
        original = original_image(library, entry_id)
    ann = {**library.get_annotations(entry_id), **changes}
    files, remove = staged_files(library, entry_id, ann, original)
    return library.complete_step(entry_id, STEP, annotations=changes, files=files, remove=remove,
                                 status="done" if is_done(ann, bool(files)) else None)
