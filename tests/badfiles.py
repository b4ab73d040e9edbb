"""A corpus of bad input files, made at test time (issue: reliability).

``make_corpus(folder)`` writes at least 40 files and returns ``{name: expected}`` where
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
    return {name: expected for name, (_, expected) in files.items()}
