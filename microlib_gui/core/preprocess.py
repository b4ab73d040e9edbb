"""Crop and rotate micrographs (and label images) on arrays.

Order: rotate the whole image about its centre (same size), then crop. The crop
box is therefore in pixels of the rotated image; with no rotation, that is the
original, as in MicroLib's ``crop`` annotation.
"""

from __future__ import annotations

import numpy as np

from .errors import MicrolibError


class PreprocessError(MicrolibError):
    """A crop or rotation cannot be applied."""


def check_crop(crop, shape) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` as ints inside an image of ``shape``; raises with a reason otherwise."""
    h, w = shape[:2]
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in crop)
    except (TypeError, ValueError):
        raise PreprocessError(f"crop must be four numbers x0,y0,x1,y1, got {crop!r}") from None
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise PreprocessError(f"crop {x0},{y0},{x1},{y1} does not fit inside the {w}x{h} image")
    return x0, y0, x1, y1


def crop_image(image: np.ndarray, crop) -> np.ndarray:
    """The pixels of ``crop`` = (x0, y0, x1, y1), x1/y1 exclusive (a copy)."""
    x0, y0, x1, y1 = check_crop(crop, np.shape(image))
    return np.array(image[y0:y1, x0:x1])


def rotate_image(image: np.ndarray, angle: float, labels: bool = False) -> np.ndarray:
    """Rotate counter-clockwise by ``angle`` degrees about the centre, keeping the size.

    Corners brought in from outside repeat the edge pixels. ``labels=True`` uses
    nearest-neighbour sampling so label values stay labels.
    """
    from skimage.transform import rotate

    a = float(angle)
    if not np.isfinite(a) or abs(a) > 360:
        raise PreprocessError(f"rotation must be a number of degrees in -360..360, got {angle}")
    if a % 360 == 0:
        return np.array(image)
    arr = np.asarray(image)
    if a % 90 == 0:  # exact and lossless for quarter turns of square images
        k = int(a // 90) % 4
        if arr.shape[0] == arr.shape[1] or k == 2:
            return np.ascontiguousarray(np.rot90(arr, k))
    out = rotate(arr, a, resize=False, order=0 if labels else 1, mode="edge", preserve_range=True)
    return out.astype(arr.dtype) if labels or arr.dtype != np.float32 else out.astype(np.float32)


def apply_geometry(image: np.ndarray, crop=None, rotation: float | None = None, labels: bool = False) -> np.ndarray:
    """Rotation then crop, as stored in an entry's annotations."""
    out = np.asarray(image)
    if rotation:
        out = rotate_image(out, rotation, labels=labels)
    if crop is not None:
        out = crop_image(out, crop)
    return out


# -- an entry's working frame ------------------------------------------------------------
def working_gray(image_data: np.ndarray, ann: dict) -> np.ndarray:
    """Gray 0-255 float image after the entry's rotation and crop (what Segment works on)."""
    from .segment import gray255

    return gray255(apply_geometry(image_data, ann.get("crop"), ann.get("rotation")))


def mask_in_working_frame(mask_full: np.ndarray, ann: dict) -> np.ndarray:
    """A mask drawn on the original, rotated and cropped like the image."""
    return apply_geometry(mask_full.astype(np.uint8), ann.get("crop"), ann.get("rotation"), labels=True) > 0
