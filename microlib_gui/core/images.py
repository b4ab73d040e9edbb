"""Read any supported image file into one normalised form.

Supported: PNG, JPEG, TIFF (8/16-bit integer, 32-bit float; gray, RGB, RGBA,
palette). The format is taken from the file's first bytes, not its name.

The normalised form (:class:`Micrograph`) is a float32 array in [0, 1] of shape
(H, W) for grayscale or (H, W, 3) for colour. An RGB file whose three channels
are equal is treated as grayscale (most micrographs are saved that way). The
original file is never modified; callers keep its bytes as
``microstructureNNN_original.png`` or similar.

Every failure raises :class:`~microlib_gui.core.errors.ImageError` with a
one-line reason.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import ImageError

#: Smallest accepted side: SliceGAN trains on 64 px patches.
MIN_SIDE = 64
#: Largest accepted image (pixels); anything bigger is treated as a decompression bomb.
MAX_PIXELS = 16384 * 16384

_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"II+\x00": "tiff",  # BigTIFF
    b"MM\x00+": "tiff",
}


@dataclass
class Micrograph:
    """A 2D image in normalised form.

    Attributes
    ----------
    data : ndarray of float32, (H, W) or (H, W, 3), values in [0, 1]
    kind : {"gray", "rgb"}
    source_format : {"png", "jpeg", "tiff"}
    source_dtype : str
        dtype of the stored pixels, e.g. ``"uint8"``, ``"uint16"``, ``"float32"``.
    source_mode : str
        What the file held: ``"L"``, ``"RGB"``, ``"RGBA"``, ``"P"`` (palette), ...
    """

    data: np.ndarray
    kind: str
    source_format: str
    source_dtype: str
    source_mode: str

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape[:2]

    def as_uint8(self) -> np.ndarray:
        """The image as uint8 0..255 (gray (H, W) or colour (H, W, 3))."""
        return np.clip(np.rint(self.data * 255.0), 0, 255).astype(np.uint8)

    def gray(self) -> np.ndarray:
        """A float32 (H, W) luminance view (colour converted with Rec. 601 weights)."""
        if self.kind == "gray":
            return self.data
        return (self.data @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.float32)


def sniff_format(head: bytes) -> str | None:
    for magic, fmt in _MAGIC.items():
        if head.startswith(magic):
            return fmt
    return None


def load_image(path: str | os.PathLike, min_side: int = MIN_SIDE) -> Micrograph:
    """Load a 2D micrograph from ``path``.

    Parameters
    ----------
    path : path-like
    min_side : int
        Images with a side shorter than this are refused.

    Raises
    ------
    ImageError
        With a one-line reason for anything that cannot be used.
    """
    path = Path(path)
    name = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ImageError(f"{name}: is a folder, not an image") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    return load_image_bytes(raw, name=name, min_side=min_side)


def load_image_bytes(raw: bytes, name: str = "image", min_side: int = MIN_SIDE) -> Micrograph:
    """Like :func:`load_image`, from bytes in memory (downloads, archives)."""
    if len(raw) == 0:
        raise ImageError(f"{name}: the file is empty (0 bytes)")
    fmt = sniff_format(raw[:8])
    if fmt is None:
        raise ImageError(f"{name}: not a PNG, JPEG or TIFF image")
    try:
        if fmt == "tiff":
            arr, mode = _read_tiff(raw, name)
        else:
            arr, mode = _read_pil(raw, name, fmt)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"{name}: too large to load into memory") from None
    except Exception as exc:  # decoder errors come in many types
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ImageError(f"{name}: corrupt or truncated {fmt.upper()} ({reason[:120]})") from None
    return _normalise(arr, mode, fmt, name, min_side)


def _check_size(w: int, h: int, name: str) -> None:
    if w * h > MAX_PIXELS:
        raise ImageError(
            f"{name}: {w}x{h} pixels is over the {MAX_PIXELS // 1_000_000} megapixel limit "
            "(possible decompression bomb)"
        )


def _read_pil(raw: bytes, name: str, fmt: str) -> tuple[np.ndarray, str]:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # we apply our own limit before decoding
    if fmt == "png" and b"IEND" not in raw[-64:]:
        raise ImageError(f"{name}: corrupt or truncated PNG (no end marker)")
    with Image.open(io.BytesIO(raw)) as im:
        w, h = im.size
        _check_size(w, h, name)
        if getattr(im, "n_frames", 1) > 1:
            raise ImageError(f"{name}: animated/multi-frame images are not supported")
        mode = im.mode
        im.load()
        if mode == "P":
            im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
            im = im.convert("L" if mode == "1" else "RGB")
        elif mode == "LA":
            im = im.convert("RGBA")
        elif mode in ("I;16", "I;16B", "I;16L"):
            arr = np.asarray(im).astype(np.uint16)
            return arr, mode
        arr = np.asarray(im)
    return arr, mode


def _read_tiff(raw: bytes, name: str) -> tuple[np.ndarray, str]:
    import tifffile

    with tifffile.TiffFile(io.BytesIO(raw)) as tif:
        if not tif.pages or not tif.series:
            raise ImageError(f"{name}: corrupt or truncated TIFF (holds no image)")
        series = tif.series[0]
        page = tif.pages[0]
        w, h = int(page.imagewidth), int(page.imagelength)
        _check_size(w, h, name)
        samples = int(getattr(page, "samplesperpixel", 1))
        # More than one page, or a series with more dimensions than one page: a volume.
        photometric = getattr(page.photometric, "name", str(page.photometric))
        colour = photometric in ("RGB", "YCBCR") and samples in (3, 4)
        if len(tif.pages) > 1 or len(series.shape) > len(page.shape) or (samples > 1 and not colour):
            raise ImageError(
                f"{name}: a 3D stack of shape {tuple(series.shape)} was given where a 2D image is expected"
            )
        arr = series.asarray()
    if photometric == "PALETTE":
        raise ImageError(f"{name}: palette TIFFs are not supported; save it as RGB")
    if arr.ndim == 3 and samples > 1 and arr.shape[0] == samples and arr.shape[-1] != samples:
        arr = np.moveaxis(arr, 0, -1)  # planar configuration
    mode = "L" if arr.ndim == 2 else ("RGBA" if arr.shape[-1] == 4 else "RGB")
    return arr, mode


def _normalise(arr: np.ndarray, mode: str, fmt: str, name: str, min_side: int) -> Micrograph:
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (1, 3, 4)):
        raise ImageError(f"{name}: unsupported pixel layout {arr.shape}")
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise ImageError(f"{name}: {w}x{h} pixels is too small (each side must be at least {min_side} px)")
    src_dtype = str(arr.dtype)
    if arr.dtype == np.bool_:
        data = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        maxval = float(np.iinfo(arr.dtype).max)
        if arr.dtype.itemsize > 2:  # 32-bit integer TIFFs: scale by their own range
            maxval = float(max(arr.max(), 1))
        data = arr.astype(np.float32) / maxval
    elif np.issubdtype(arr.dtype, np.floating):
        data = arr.astype(np.float32)
        if not np.all(np.isfinite(data)):
            raise ImageError(f"{name}: contains NaN or infinite values")
        lo, hi = float(data.min()), float(data.max())
        if lo < 0.0 or hi > 1.0:  # float data in arbitrary units: rescale to [0, 1]
            data = (data - lo) / (hi - lo) if hi > lo else np.zeros_like(data)
    else:
        raise ImageError(f"{name}: unsupported pixel type {arr.dtype}")
    if data.ndim == 3:
        if data.shape[-1] == 1:
            data = data[..., 0]
        elif data.shape[-1] == 4:
            data = data[..., :3]  # alpha is not part of a micrograph
    kind = "gray"
    if data.ndim == 3:
        if np.array_equal(data[..., 0], data[..., 1]) and np.array_equal(data[..., 0], data[..., 2]):
            data = np.ascontiguousarray(data[..., 0])
        else:
            kind = "rgb"
    return Micrograph(np.ascontiguousarray(data, dtype=np.float32), kind, fmt, src_dtype, mode)


def save_png(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8/uint16/bool array (H, W) or (H, W, 3|4) as PNG, atomically."""
    from PIL import Image

    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"save_png needs uint8/uint16/bool, got {arr.dtype}")
    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(arr).save(tmp, format="PNG")
    return Path(path)


def load_labels(path: str | os.PathLike) -> np.ndarray:
    """Load a label image: phase k = value k, or the sorted distinct values.

    A 0/255 two-phase PNG (MicroLib's training images) gives labels 0/1.
    Works for 2D images and 3D TIFF volumes. Returns uint8.
    """
    path = Path(path)
    name = path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"{name}: cannot be read ({exc.strerror or exc})") from None
    fmt = sniff_format(raw[:8])
    if fmt == "tiff":
        import tifffile

        try:
            arr = tifffile.imread(io.BytesIO(raw))
        except Exception as exc:
            raise ImageError(f"{name}: corrupt TIFF ({' '.join(str(exc).split())[:120]})") from None
        if arr.ndim == 4 and arr.shape[-1] in (3, 4):
            raise ImageError(f"{name}: a colour volume is not a label image")
    else:
        img = load_image_bytes(raw, name=name, min_side=1)
        arr = img.as_uint8() if img.kind == "gray" else None
        if arr is None:
            raise ImageError(f"{name}: a colour image is not a label image")
    return labels_from_values(arr, name)


def labels_from_values(arr: np.ndarray, name: str = "image", max_phases: int = 255) -> np.ndarray:
    """Map the distinct values of ``arr`` to labels 0..n-1 (values already 0..n-1 kept)."""
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ImageError(f"{name}: contains NaN or infinite values")
    values = np.unique(arr)
    if values.size > max_phases:
        raise ImageError(f"{name}: {values.size} distinct values is too many phases for a label image")
    if values.size and values[0] == 0 and values[-1] == values.size - 1 and np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.uint8)
    return np.searchsorted(values, arr).astype(np.uint8)
