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

Untrusted files are checked before anything large is allocated: only regular
files up to :data:`MAX_FILE_BYTES` are read (:mod:`.safefile`); the declared
width and height (PNG/JPEG header, TIFF tags) must be within
:data:`MAX_PIXELS` before a pixel is decoded; TIFF pages are counted along the
IFD chain, without decoding, before tifffile builds its series (a file of
100,000 tiny pages otherwise takes many minutes); volumes are bounded in pages
(:data:`MAX_VOLUME_PAGES`) and decoded bytes (:data:`MAX_VOLUME_BYTES`).
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import ImageError
from .safefile import fmt_bytes, open_regular_file, read_regular_file

#: Smallest accepted side: SliceGAN trains on 64 px patches.
MIN_SIDE = 64
#: Largest accepted image (pixels), checked on the declared size before decoding; anything
#: bigger is treated as a decompression bomb. Loading colour peaks near 15 bytes a pixel
#: (decoded pixels, their copy, float32 RGB): about 1 GB at this limit (the old limit,
#: 268 MP, let a 200 KB PNG take over 4 GB).
MAX_PIXELS = 8192 * 8192
#: Largest decoded 2D image (bytes): 8192² float32 RGB fits, float64 RGB does not.
MAX_DECODED_BYTES = 1 << 30
#: Largest image file read (bytes): an 8192² 16-bit RGB TIFF, uncompressed, is 400 MB.
MAX_FILE_BYTES = 512 << 20
#: A label/intensity volume (3D TIFF): at most this many pages (slices) ...
MAX_VOLUME_PAGES = 4096
#: ... and this many bytes once decoded (1290³ uint8; MicroLib's volumes are 320³, 33 MB).
MAX_VOLUME_BYTES = 2 << 30
#: Largest volume file read (bytes).
MAX_VOLUME_FILE_BYTES = MAX_VOLUME_BYTES + (64 << 20)

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
    return load_image_bytes(read_image_file(path), name=path.name, min_side=min_side)


def read_image_file(path: str | os.PathLike, what: str = "an image") -> bytes:
    """The bytes of an image file the user named: a regular file of at most :data:`MAX_FILE_BYTES`.

    A named pipe, a device (or a link to one) or a folder is refused before it is read.
    """
    return read_regular_file(path, MAX_FILE_BYTES, what, ImageError)


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

    if fmt == "png" and b"IEND" not in raw[-64:]:
        raise ImageError(f"{name}: corrupt or truncated PNG (no end marker)")
    try:
        im = Image.open(io.BytesIO(raw))  # reads the header only
    except Image.DecompressionBombError:  # Pillow's own limit (above ours) refused the header
        raise ImageError(f"{name}: over the {MAX_PIXELS // 1_000_000} megapixel limit "
                         "(possible decompression bomb)") from None
    with im:
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


def tiff_page_count(fh, limit: int) -> int:
    """Pages of a TIFF, counted along its chain of IFDs without decoding any (stops past ``limit``).

    Reads a few bytes per page. Returns at most ``limit + 1``; a chain that loops or
    points past the end stops the count there (tifffile then says what is wrong).
    """
    fh.seek(0, 2)
    size = fh.tell()
    fh.seek(0)
    head = fh.read(16)
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return 0
    bo = "<" if head[:2] == b"II" else ">"
    version = struct.unpack(bo + "H", head[2:4])[0]
    if version == 42:
        off, cnt, cnt_len, entry, ptr, ptr_len = struct.unpack(bo + "I", head[4:8])[0], "H", 2, 12, "I", 4
    elif version == 43 and len(head) >= 16:  # BigTIFF
        off, cnt, cnt_len, entry, ptr, ptr_len = struct.unpack(bo + "Q", head[8:16])[0], "Q", 8, 20, "Q", 8
    else:
        return 0
    n, seen = 0, set()
    while off and n <= limit and off not in seen and off + cnt_len <= size:
        seen.add(off)
        fh.seek(off)
        tags = struct.unpack(bo + cnt, fh.read(cnt_len))[0]
        fh.seek(off + cnt_len + tags * entry)
        nxt = fh.read(ptr_len)
        n += 1
        if len(nxt) < ptr_len:
            break
        off = struct.unpack(bo + ptr, nxt)[0]
    fh.seek(0)
    return n


def _read_tiff(raw: bytes, name: str) -> tuple[np.ndarray, str]:
    import tifffile

    buf = io.BytesIO(raw)
    pages = tiff_page_count(buf, 1)
    with tifffile.TiffFile(buf) as tif:
        if not tif.pages:
            raise ImageError(f"{name}: corrupt or truncated TIFF (holds no image)")
        page = tif.pages.first
        w, h = int(page.imagewidth), int(page.imagelength)
        _check_size(w, h, name)
        samples = int(getattr(page, "samplesperpixel", 1))
        decoded = w * h * samples * (page.dtype.itemsize if page.dtype is not None else 1)
        if decoded > MAX_DECODED_BYTES:  # wide pixels (float64 RGB, ...) at the largest sizes
            raise ImageError(f"{name}: {w}x{h} pixels of {samples} x {page.dtype} would take {fmt_bytes(decoded)} "
                             f"once decoded, over the {fmt_bytes(MAX_DECODED_BYTES)} limit "
                             "(possible decompression bomb)")
        if pages > 1:  # told before tifffile builds series over every page
            raise ImageError(f"{name}: a 3D stack of several pages of {w}x{h} was given where a 2D image "
                             "is expected")
        if not tif.series:
            raise ImageError(f"{name}: corrupt or truncated TIFF (holds no image)")
        series = tif.series[0]
        # A series with more dimensions than its page, or many samples that are not colour: a volume.
        photometric = getattr(page.photometric, "name", str(page.photometric))
        colour = photometric in ("RGB", "YCBCR") and samples in (3, 4)
        if len(series.shape) > len(page.shape) or (samples > 1 and not colour):
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
    # Channels first, on the stored values: a colour file of equal channels (most
    # micrographs) becomes gray before any float copy is made (a third of the memory).
    if arr.ndim == 3:
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
        else:
            arr = arr[..., :3]  # alpha is not part of a micrograph
            if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
                arr = arr[..., 0]
    kind = "rgb" if arr.ndim == 3 else "gray"
    if arr.dtype == np.bool_:
        data = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.unsignedinteger) and arr.dtype.itemsize <= 2:
        data = arr.astype(np.float32)
        data *= np.float32(1.0 / np.iinfo(arr.dtype).max)  # in place: no second float copy
    elif np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating):
        # 32-bit integers, signed integers and floats in arbitrary units: their own range
        data = to_unit_range(arr, name)
    else:
        raise ImageError(f"{name}: unsupported pixel type {arr.dtype}")
    return Micrograph(np.ascontiguousarray(data, dtype=np.float32), kind, fmt, src_dtype, mode)


def to_unit_range(arr: np.ndarray, name: str = "image") -> np.ndarray:
    """Float32 in [0, 1]: values already in [0, 1] kept, others mapped from their own range.

    Safe at any range a file can hold: float32 values near ±3.4e38 or float64 ones
    near 1e308 (whose difference overflows) are scaled down first, in their own
    precision, so no NaN or infinity is made. NaN or infinite values in the file
    are refused with a one-line :class:`ImageError`.
    """
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ImageError(f"{name}: contains NaN or infinite values")
    if arr.size == 0:
        return np.zeros(arr.shape, np.float32)
    lo, hi = float(arr.min()), float(arr.max())  # Python floats: exact for every stored type
    if np.issubdtype(arr.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        return arr.astype(np.float32)
    if not hi > lo:
        return np.zeros(arr.shape, np.float32)
    if np.issubdtype(arr.dtype, np.integer) and lo >= 0:  # 32-bit counts: 0 stays black
        lo = 0.0
    scale = max(abs(lo), abs(hi))  # finite; scaled values lie in [-1, 1]
    work = np.float64 if arr.dtype == np.float64 or np.issubdtype(arr.dtype, np.integer) else np.float32
    data = arr.astype(work)
    data /= scale
    span = hi / scale - lo / scale  # at most 2: no overflow
    data -= lo / scale
    data /= span
    np.clip(data, 0.0, 1.0, out=data)  # rounding may step a hair outside
    return data.astype(np.float32, copy=False)


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
    with open_regular_file(path, MAX_VOLUME_FILE_BYTES, "an image or a volume", ImageError) as fh:
        fmt = sniff_format(fh.read(8))
        if fmt == "tiff":
            arr = read_tiff_array(fh, name)
        else:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise ImageError(f"{name}: {fmt_bytes(size)} is over the {fmt_bytes(MAX_FILE_BYTES)} limit "
                                 "for an image")
            fh.seek(0)
            raw = fh.read(MAX_FILE_BYTES + 1)
    if fmt == "tiff":
        if arr.ndim == 4 and arr.shape[-1] in (3, 4):
            raise ImageError(f"{name}: a colour volume is not a label image")
    else:
        img = load_image_bytes(raw, name=name, min_side=1)
        arr = img.as_uint8() if img.kind == "gray" else None
        if arr is None:
            raise ImageError(f"{name}: a colour image is not a label image")
    return labels_from_values(arr, name)


def read_tiff_array(fh, name: str, error: type[ImageError] | type = ImageError, max_pages: int = MAX_VOLUME_PAGES,
                    max_bytes: int = MAX_VOLUME_BYTES) -> np.ndarray:
    """The image or volume in a TIFF (its first series), once its declared size is known to fit.

    Pages are counted along the IFD chain (:func:`tiff_page_count`) and each page's
    shape and type read from its tags; nothing is decoded unless there are at most
    ``max_pages`` pages, all of one shape and type (a volume's slices), taking at
    most ``max_bytes`` together.

    Parameters
    ----------
    fh : binary file object (seekable), or bytes
    name : str
        For messages.
    error : MicrolibError subclass
        Raised with the one-line reason.
    """
    import tifffile

    from .errors import MicrolibError

    fh = io.BytesIO(fh) if isinstance(fh, (bytes, bytearray)) else fh
    n = tiff_page_count(fh, max_pages)
    if n > max_pages:
        raise error(f"{name}: more than {max_pages} pages (slices); at most {max_pages} are read")
    try:
        with tifffile.TiffFile(fh, name=name) as tif:
            pages = list(tif.pages)  # tags only
            if not pages:
                raise error(f"{name}: corrupt or truncated TIFF (holds no image)")
            first = pages[0]
            if first.dtype is None:
                raise error(f"{name}: unsupported TIFF pixel type")
            if any(p.shape != first.shape or p.dtype != first.dtype for p in pages[1:]):
                raise error(f"{name}: its {len(pages)} pages differ in size or pixel type; a volume's slices "
                            "must all be alike")
            total = len(pages) * int(np.prod(first.shape, dtype=np.float64)) * first.dtype.itemsize
            if total > max_bytes:
                shape = "x".join(str(v) for v in (len(pages), *first.shape))
                raise error(f"{name}: {shape} {first.dtype} would take {fmt_bytes(total)} in memory, over the "
                            f"{fmt_bytes(max_bytes)} limit (possible decompression bomb)")
            return tif.asarray()
    except MicrolibError:
        raise
    except MemoryError:
        raise error(f"{name}: too large to load into memory") from None
    except Exception as exc:  # tifffile raises many types for bad files
        raise error(f"{name}: corrupt TIFF ({' '.join(str(exc).split())[:120]})") from None


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
