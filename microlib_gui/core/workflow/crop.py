"""Crop step: rotation (degrees, about the centre) then a box in the rotated image.

The whole image with no rotation is stored as no crop, so Reset and an untouched
entry are the same state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import preprocess as pp
from .common import original_image

STEP = "crop"


@dataclass
class CropInputs:
    original: np.ndarray  #: the original micrograph, float [0, 1]
    crop: tuple[int, int, int, int] | None
    rotation: float


def inputs(library, entry_id: int) -> CropInputs:
    ann = library.get_annotations(entry_id)
    crop = tuple(int(v) for v in ann["crop"]) if ann.get("crop") else None
    return CropInputs(original_image(library, entry_id), crop, float(ann.get("rotation") or 0.0))


def rotated(inp: CropInputs, rotation: float | None = None) -> np.ndarray:
    """The original rotated by ``rotation`` (default: the saved one); the crop box's frame."""
    rot = inp.rotation if rotation is None else float(rotation)
    return pp.rotate_image(inp.original, rot) if rot else inp.original


def save(library, entry_id: int, crop, rotation: float | None, shape=None):
    """Save the crop box ``(x0, y0, x1, y1)`` (None: whole image) and the rotation.

    ``shape`` is the image's (H, W); read from the original when not given.
    """
    if shape is None:
        shape = original_image(library, entry_id).shape
    h, w = shape[:2]
    box = None if crop is None else pp.check_crop(crop, (h, w))
    if box == (0, 0, w, h):
        box = None
    rot = float(rotation or 0.0)
    if not np.isfinite(rot) or abs(rot) > 360:
        raise pp.PreprocessError(f"rotation must be a number of degrees in -360..360, got {rotation}")
    return library.complete_step(entry_id, STEP, annotations={"crop": None if box is None else list(box),
                                                              "rotation": rot or None})
