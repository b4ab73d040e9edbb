"""A corpus of bad input files, made at test time (issue: reliability).

``make_corpus(folder)`` writes at least 50 files and returns ``{name: expected}`` where
``expected`` is ``"ok"`` for files that must load (odd but valid) or a fragment of the
one-line reason for files that must be refused.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def _png_bytes(arr, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg_bytes(arr) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _tiff_bytes(arr, **kw) -> bytes:
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kw)
    return buf.getvalue()


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def make_corpus(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, (128, 128), dtype=np.uint8)
    rgb = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    png, jpg, tif = _png_bytes(g), _jpeg_bytes(rgb), _tiff_bytes(g)
    files: dict[str, tuple[bytes, str]] = {
        # refused
        "zero.png": (b"", "empty"),
        "zero.jpg": (b"", "empty"),
        "zero.tif": (b"", "empty"),
        "text.png": (b"just some text\n" * 10, "not a PNG, JPEG or TIFF"),
        "html.jpg": (b"<html><body>404</body></html>", "not a PNG, JPEG or TIFF"),
        "script.tif": (b"#!/bin/sh\nrm -rf /\n", "not a PNG, JPEG or TIFF"),
        "trunc10.png": (png[:10], "corrupt or truncated"),
        "trunc_half.png": (png[: len(png) // 2], "corrupt or truncated"),
        "trunc_end.png": (png[:-20], "corrupt or truncated"),
        "trunc_half.jpg": (jpg[: len(jpg) // 3], "corrupt or truncated"),
        "trunc_half.tif": (tif[: len(tif) // 2], "corrupt or truncated"),
        "garbage_after_magic.png": (b"\x89PNG\r\n\x1a\n" + rng.bytes(500), "corrupt or truncated"),
        "garbage_after_magic.jpg": (b"\xff\xd8\xff" + rng.bytes(500), "corrupt or truncated"),
        "garbage_after_magic.tif": (b"II*\x00" + rng.bytes(500), "corrupt or truncated"),
        "bomb.png": (_png_header_only(60000, 60000), "decompression bomb"),
        "bomb_wide.png": (_png_header_only(1_000_000, 300), "decompression bomb"),
        "one_by_one.png": (_png_bytes(np.zeros((1, 1), np.uint8)), "too small"),
        "tall_thin.png": (_png_bytes(np.zeros((100000, 10), np.uint8)), "too small"),
        "wide_thin.tif": (_tiff_bytes(np.zeros((10, 5000), np.uint8)), "too small"),
        "63px.png": (_png_bytes(np.zeros((63, 200), np.uint8)), "too small"),
        "nan.tif": (_tiff_bytes(np.where(rng.random((128, 128)) > 0.99, np.nan, 1.0).astype(np.float32)), "NaN"),
        "inf.tif": (_tiff_bytes(np.full((128, 128), np.inf, np.float32)), "NaN"),
        "stack3d.tif": (_tiff_bytes(rng.integers(0, 255, (6, 128, 128), dtype=np.uint8)), "3D stack"),
        "stack3d_rgb.tif": (_tiff_bytes(rng.integers(0, 255, (4, 128, 128, 3), dtype=np.uint8)), "3D stack"),
        "gif_as_png.png": (b"GIF89a" + rng.bytes(200), "not a PNG, JPEG or TIFF"),
        "bmp.png": (b"BM" + rng.bytes(300), "not a PNG, JPEG or TIFF"),
        "zip.tif": (b"PK\x03\x04" + rng.bytes(300), "not a PNG, JPEG or TIFF"),
        "pickle.png": (b"\x80\x04\x95" + rng.bytes(100), "not a PNG, JPEG or TIFF"),
        # accepted (odd but valid)
        "gray.png": (png, "ok"),
        "rgb.jpg": (jpg, "ok"),
        "gray.tif": (tif, "ok"),
        "u16.tif": (_tiff_bytes((g.astype(np.uint16) * 257)), "ok"),
        "f32.tif": (_tiff_bytes(g.astype(np.float32) / 3.0), "ok"),
        "f32_unit.tif": (_tiff_bytes(g.astype(np.float32) / 255.0), "ok"),
        "palette.png": (_png_bytes(np.asarray(Image.fromarray(rgb).convert("P"))), "ok"),
        "rgba.png": (_png_bytes(np.dstack([rgb, np.full((128, 128), 200, np.uint8)])), "ok"),
        "rgb.tif": (_tiff_bytes(rgb, photometric="rgb"), "ok"),
        "wrong_ext_png.jpg": (png, "ok"),
        "wrong_ext_jpg.tif": (jpg, "ok"),
        "single_phase.png": (_png_bytes(np.full((128, 128), 200, np.uint8)), "ok"),
        "binary_0_255.png": (_png_bytes((g > 128).astype(np.uint8) * 255), "ok"),
        "u16.png": (_png_bytes(g.astype(np.uint16) * 257), "ok"),
        "exactly_64.png": (_png_bytes(g[:64, :64].copy()), "ok"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {**{name: expected for name, (_, expected) in files.items()}, **hostile_tiffs(folder)}


# -- hostile files made fast (tests/test_hostile_files.py) ------------------------------------
# Real files, not headers alone: each decodes to what it declares, but is written in well under
# a second (deflate blocks of zeros are made once and repeated).

def deflate_zeros(n: int, chunk: int = 16 << 20) -> bytes:
    """A raw deflate stream that inflates to ``n`` zero bytes (about 1 KB per MB)."""
    def piece(size):
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(bytes(size)) + c.flush(zlib.Z_FULL_FLUSH)  # byte-aligned, no back-references
    whole, rest = divmod(n, chunk)
    return piece(chunk) * whole + (piece(rest) if rest else b"") + b"\x03\x00"  # final empty block


def crc32_zeros(n: int, chunk: int = 16 << 20) -> int:
    crc, block = 0, bytes(min(n, chunk))
    while n:
        step = min(n, len(block))
        crc = zlib.crc32(block[:step], crc)
        n -= step
    return crc


def png_zeros(w: int, h: int, channels: int = 3) -> bytes:
    """A valid 8-bit PNG of ``w``×``h`` black pixels (gray, RGB or RGBA): a decompression bomb
    of a few hundred kB when large."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    colour = {1: 0, 3: 2, 4: 6}[channels]
    n = h * (1 + w * channels)  # a filter byte (0) before each row
    idat = b"\x78\xda" + deflate_zeros(n) + struct.pack(">I", ((n % 65521) << 16) | 1)  # adler32 of zeros
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _ifd(tags: list[tuple[int, int, list[int]]], at: int, next_at: int) -> tuple[bytes, bytes]:
    """One little-endian classic IFD written at offset ``at``: (IFD bytes, values stored after it)."""
    size = {3: 2, 4: 4}
    head = struct.pack("<H", len(tags))
    extra = b""
    values_at = at + 2 + 12 * len(tags) + 4
    for tag, typ, vals in sorted(tags):
        raw = b"".join(struct.pack("<H" if typ == 3 else "<I", v) for v in vals)
        if len(raw) <= 4:
            field = raw.ljust(4, b"\0")
        else:
            field = struct.pack("<I", values_at + len(extra))
            extra += raw
        head += struct.pack("<HHI", tag, typ, len(vals)) + field
    return head + struct.pack("<I", next_at), extra


def tiff_pages(n: int, shapes=((1, 1),)) -> bytes:
    """A valid TIFF of ``n`` uncompressed 8-bit pages, their (height, width) cycling through ``shapes``."""
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for i in range(n):
        h, w = shapes[i % len(shapes)]
        at = len(out)
        ntags = 8
        data_at = at + 2 + 12 * ntags + 4
        tags = [(256, 4, [w]), (257, 4, [h]), (258, 3, [8]), (259, 3, [1]), (262, 3, [1]),
                (273, 4, [data_at]), (278, 4, [h]), (279, 4, [w * h])]
        nxt = data_at + w * h if i + 1 < n else 0
        ifd, extra = _ifd(tags, at, nxt)
        assert not extra
        out += ifd + bytes(w * h)
    return bytes(out)


def tiff_zeros(w: int, h: int, samples: int = 3, bits: int = 64, float_: bool = True) -> bytes:
    """A valid one-page TIFF of ``w``×``h`` zero pixels (``samples`` × ``bits``-bit, float or unsigned),
    deflate-compressed in one strip: a decompression bomb of a few MB when large."""
    n = w * h * samples * bits // 8
    strip = b"\x78\xda" + deflate_zeros(n) + struct.pack(">I", ((n % 65521) << 16) | 1)
    data_at = 8
    at = data_at + len(strip) + (len(strip) & 1)
    tags = [(256, 4, [w]), (257, 4, [h]), (258, 3, [bits] * samples), (259, 3, [8]),
            (262, 3, [2 if samples >= 3 else 1]), (273, 4, [data_at]), (277, 3, [samples]), (278, 4, [h]),
            (279, 4, [len(strip)]), (284, 3, [1]), (339, 3, [3 if float_ else 1] * samples)]
    ifd, extra = _ifd(tags, at, 0)
    return b"II*\x00" + struct.pack("<I", at) + strip + b"\0" * (len(strip) & 1) + ifd + extra


def zip_with_bomb(src: bytes, member: str, size: int) -> bytes:
    """``src`` (a zip, e.g. a ``_Gen.pt``) rebuilt with ``member`` replaced by ``size`` zero bytes,
    deflated (the other members stored as they were)."""
    import zipfile

    zin = zipfile.ZipFile(io.BytesIO(src))
    assert member in zin.namelist(), member
    body, central = bytearray(), bytearray()
    for info in zin.infolist():
        name = info.filename.encode()
        if info.filename == member:
            data, method, crc, usize = deflate_zeros(size), 8, crc32_zeros(size), size
        else:
            raw = zin.read(info)
            data, method, crc, usize = raw, 0, zlib.crc32(raw), len(raw)
        off = len(body)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), usize,
                            len(name), 0) + name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data),
                               usize, len(name), 0, 0, 0, 0, 0, off) + name
    n = len(zin.infolist())
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), len(body), 0)
    return bytes(body + central + end)


def hostile_tiffs(folder: Path) -> dict[str, str]:
    """TIFFs for the corpus of ``make_corpus``-style checks: ``{name: expected}``."""
    rng = np.random.default_rng(1)
    g = rng.integers(0, 256, (128, 128)).astype(np.float32)
    files = {
        # 20,000 one-pixel pages (2 MB): told at once, before tifffile builds a series over them all
        "pages_20000.tif": (tiff_pages(20000), "3D stack"),
        # pages of alternating sizes: tifffile's series over them are quadratic in the page count
        "pages_mixed.tif": (tiff_pages(3000, ((1, 1), (1, 2))), "3D stack"),
        # float values at the ends of float32's range: their difference overflows float32
        "f32_extreme.tif": (_tiff_bytes(np.where(g > 127, 3.0e38, -3.0e38).astype(np.float32)), "ok"),
        "f32_1e38.tif": (_tiff_bytes((g * 1e36).astype(np.float32)), "ok"),
        "f64_1e300.tif": (_tiff_bytes(np.where(g > 127, 1e300, -1e300)), "ok"),
        "f32_tiny_range.tif": (_tiff_bytes((1.0 + g * 1e-7).astype(np.float32)), "ok"),
        "i16_signed.tif": (_tiff_bytes((g.astype(np.int16) - 128) * 200), "ok"),
        "neg_inf.tif": (_tiff_bytes(np.where(g > 200, -np.inf, g).astype(np.float32)), "NaN"),
        "f64_nan.tif": (_tiff_bytes(np.where(g > 250, np.nan, g).astype(np.float64)), "NaN"),
        # declared 8192×8192 RGB float64 (1.6 GB decoded) in a 2 MB file
        "bomb_f64_rgb.tif": (tiff_zeros(8192, 8192, 3, 64), "once decoded"),
        # declared 9000×9000 RGB: over the pixel limit (a 250 kB file decoding to 243 MB, then 1 GB of floats)
        "bomb_9000_rgb.png": (png_zeros(9000, 9000, 3), "megapixel limit"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: want for name, (_, want) in files.items()}
