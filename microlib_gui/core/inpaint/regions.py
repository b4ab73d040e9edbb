"""Masks and regions: validation, grouping masked pixels into regions, free windows.

A mask is a boolean ``(H, W)`` array, True where pixels are to be replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..errors import MicrolibError


class InpaintError(MicrolibError):
    """Inpainting cannot run on this input (bad mask, image too small, ...)."""


def mask_from_array(arr: np.ndarray, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """Turn a loaded mask image into a boolean mask and check it against the image.

    Any non-zero pixel is masked (255 in the app's ``_mask.png`` files). Colour
    masks count a pixel as masked if any channel is non-zero.

    Raises
    ------
    InpaintError
        Wrong size, nothing masked, or everything masked.
    """
    a = np.asarray(arr)
    if a.ndim == 3:
        a = a.any(axis=-1)
    if a.ndim != 2:
        raise InpaintError(f"{name}: expected a 2D mask image, got shape {a.shape}")
    if a.shape != tuple(shape[:2]):
        raise InpaintError(
            f"{name}: mask is {a.shape[1]}x{a.shape[0]} px but the image is {shape[1]}x{shape[0]} px"
        )
    mask = a != 0
    if not mask.any():
        raise InpaintError(f"{name}: the mask is empty (no pixel is marked for inpainting)")
    if mask.all():
        raise InpaintError(f"{name}: the mask covers the whole image; nothing is left to learn from")
    return mask


@dataclass(frozen=True)
class Region:
    """A rectangle of the image holding masked pixels plus a border of known ones.

    ``y0:y1, x0:x1`` is the context window (region + border, inside the image).
    """

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0


def find_regions(mask: np.ndarray, border: int = 16) -> list[Region]:
    """Group masked pixels into regions, each with ``border`` px of context around it.

    Components whose bordered boxes overlap are merged (a scale bar's label
    letters become one region with the bar), so every masked pixel lies in
    exactly one region's window and windows never overlap.
    """
    h, w = mask.shape
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    boxes = []
    for sl in ndimage.find_objects(lab):
        if sl is None:
            continue
        boxes.append([max(0, sl[0].start - border), min(h, sl[0].stop + border),
                      max(0, sl[1].start - border), min(w, sl[1].stop + border)])
    merged = True
    while merged:  # few boxes (a bar and its label): quadratic merge is fine
        merged = False
        out: list[list[int]] = []
        for b in boxes:
            for o in out:
                if b[0] < o[1] and o[0] < b[1] and b[2] < o[3] and o[2] < b[3]:
                    o[:] = [min(o[0], b[0]), max(o[1], b[1]), min(o[2], b[2]), max(o[3], b[3])]
                    merged = True
                    break
            else:
                out.append(list(b))
        boxes = out
    return [Region(*b) for b in sorted(boxes)]


def expand_to(region: Region, size: tuple[int, int], shape: tuple[int, int]) -> Region:
    """Grow ``region`` about its centre to ``size`` (clipped to the image, shifted to stay inside)."""
    h, w = shape
    out = []
    for (a, b), s, lim in (((region.y0, region.y1), size[0], h), ((region.x0, region.x1), size[1], w)):
        s = min(max(s, b - a), lim)
        a2 = (a + b) // 2 - s // 2
        a2 = min(max(0, a2), lim - s)
        out += [a2, a2 + s]
    return Region(*out)


def free_window_corners(mask: np.ndarray, size: int) -> np.ndarray:
    """Top-left corners ``(k, 2)`` of every ``size``×``size`` window that holds no masked pixel."""
    h, w = mask.shape
    if h < size or w < size:
        return np.zeros((0, 2), dtype=np.int64)
    c = np.zeros((h + 1, w + 1), dtype=np.int64)
    c[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0), axis=1)
    s = c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]
    return np.argwhere(s == 0)
