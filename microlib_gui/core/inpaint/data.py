"""The image being inpainted, in a form both methods share.

An input is either a *label image* (phases 0..n-1, or any few distinct grey
levels such as 0/255) or a *continuous* image (grayscale, or colour). The
original pixel values are kept so that the output can be written in the same
encoding, and pixels outside the mask come back bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..images import MAX_FILE_BYTES, load_image_bytes
from ..safefile import read_regular_file
from .regions import InpaintError

#: An image with at most this many distinct grey levels is read as labels (``kind="auto"``).
MAX_LABEL_PHASES = 16
KINDS = ("auto", "labels", "gray")


@dataclass
class InpaintImage:
    """An image ready for inpainting.

    Attributes
    ----------
    original : ndarray
        The pixels as stored (uint8/uint16; ``(H, W)`` or ``(H, W, 3)``).
    kind : {"labels", "gray", "rgb"}
    labels : ndarray of uint8 (H, W) or None
        Phase of each pixel (labels only).
    values : ndarray or None
        Stored value of each phase (labels only): ``original == values[labels]``.
    """

    original: np.ndarray
    kind: str
    labels: np.ndarray | None = None
    values: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.original.shape[:2]

    @property
    def n_phases(self) -> int:
        return len(self.values) if self.values is not None else 0

    @property
    def channels(self) -> int:
        """Channels the networks see: one per phase, or the colour channels."""
        if self.kind == "labels":
            return self.n_phases
        return 1 if self.original.ndim == 2 else self.original.shape[2]

    def as_float(self) -> np.ndarray:
        """``(H, W, C)`` float32: one-hot phases, or intensities in [0, 1]."""
        if self.kind == "labels":
            return np.eye(self.n_phases, dtype=np.float32)[self.labels]
        scale = float(np.iinfo(self.original.dtype).max)
        arr = self.original.astype(np.float32) / scale
        return arr[..., None] if arr.ndim == 2 else arr

    def display(self, encoded: np.ndarray) -> np.ndarray:
        """A uint8 picture of an array in the stored encoding (phases spread over 0..255)."""
        a = np.asarray(encoded)
        if self.kind == "labels":
            lab = np.searchsorted(self.values, a)
            return (lab * (255 // max(1, self.n_phases - 1))).astype(np.uint8)
        return (a >> 8).astype(np.uint8) if a.dtype == np.uint16 else a.astype(np.uint8)

    def encode(self, filled: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Write ``filled`` into the masked pixels of a copy of the original.

        ``filled`` is ``(H, W)`` labels for label images, or ``(H, W, C)`` floats
        in [0, 1] otherwise (only its masked pixels are read).
        """
        out = self.original.copy()
        if self.kind == "labels":
            out[mask] = self.values[np.asarray(filled)[mask]]
        else:
            scale = float(np.iinfo(self.original.dtype).max)
            vals = np.clip(np.rint(np.asarray(filled, np.float64) * scale), 0, scale)
            vals = vals[..., 0] if out.ndim == 2 and vals.ndim == 3 else vals
            out[mask] = vals[mask].astype(out.dtype)
        return out


def prepare_image(arr: np.ndarray, kind: str = "auto", name: str = "image") -> InpaintImage:
    """Wrap a uint8/uint16 array as an :class:`InpaintImage`.

    Parameters
    ----------
    arr : ndarray, ``(H, W)`` or ``(H, W, 3)``, uint8 or uint16 (bool and small
        integer label arrays are accepted too).
    kind : {"auto", "labels", "gray"}
        ``auto``: a 2D image with at most :data:`MAX_LABEL_PHASES` distinct values
        is a label image, anything else continuous.
    """
    if kind not in KINDS:
        raise InpaintError(f"unknown image kind {kind!r} (one of {', '.join(KINDS)})")
    a = np.asarray(arr)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise InpaintError(f"{name}: expected a 2D image, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer) or a.dtype.itemsize > 2 or np.issubdtype(a.dtype, np.signedinteger) and a.min() < 0:
        raise InpaintError(f"{name}: expected 8- or 16-bit pixels, got {a.dtype}")
    if a.dtype not in (np.uint8, np.uint16):
        a = a.astype(np.uint16 if a.max() > 255 else np.uint8)
    if a.ndim == 3 and np.array_equal(a[..., 0], a[..., 1]) and np.array_equal(a[..., 0], a[..., 2]):
        a = np.ascontiguousarray(a[..., 0])
    values = np.unique(a) if a.ndim == 2 else None
    if kind == "labels":
        if a.ndim != 2:
            raise InpaintError(f"{name}: a colour image is not a label image")
        if values.size > MAX_LABEL_PHASES:
            raise InpaintError(f"{name}: {values.size} distinct values is too many phases for a label image")
    if a.ndim == 2 and (kind == "labels" or (kind == "auto" and values.size <= MAX_LABEL_PHASES)):
        if values.size < 2:
            raise InpaintError(f"{name}: a label image needs at least two phases, this one has {values.size}")
        labels = np.searchsorted(values, a).astype(np.uint8)
        return InpaintImage(a, "labels", labels, values)
    return InpaintImage(a, "gray" if a.ndim == 2 else "rgb")


def read_pixels(path: str | os.PathLike) -> np.ndarray:
    """The stored pixels of an image file (uint8 or uint16), validated by the app's loader."""
    path = Path(path)
    raw = read_regular_file(path, MAX_FILE_BYTES, "an image", InpaintError)  # no pipe, device, folder
    img = load_image_bytes(raw, name=path.name, min_side=1)
    scale = 65535.0 if img.source_dtype == "uint16" else 255.0
    dtype = np.uint16 if scale > 255 else np.uint8
    # Stored 8/16-bit values survive the float32 round trip exactly.
    return np.clip(np.rint(img.data * scale), 0, scale).astype(dtype)


def load_inpaint_image(path: str | os.PathLike, kind: str = "auto") -> InpaintImage:
    """Read an image file for inpainting (labels or continuous; see :func:`prepare_image`)."""
    return prepare_image(read_pixels(path), kind, Path(path).name)


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask image file as stored pixels (validated later against the image)."""
    return read_pixels(path)
