"""Image loading: every supported format into one normalised form; bad files → one-line reasons."""

from __future__ import annotations

import zlib
import struct

import numpy as np
import pytest
import tifffile
from PIL import Image

from microlib_gui.core.errors import ImageError
from microlib_gui.core.images import MAX_PIXELS, load_image, load_labels, save_png


def _gradient(h=80, w=96):
    y, x = np.mgrid[0:h, 0:w]
    return ((x * 2 + y) % 256).astype(np.uint8)


def _save(tmp_path, name, arr, **kw):
    p = tmp_path / name
    Image.fromarray(arr).save(p, **kw)
    return p


def test_gray_png(tmp_path):
    a = _gradient()
    img = load_image(_save(tmp_path, "g.png", a))
    assert img.kind == "gray" and img.data.shape == a.shape and img.data.dtype == np.float32
    assert np.array_equal(img.as_uint8(), a)


def test_rgb_png_with_equal_channels_is_gray(tmp_path):
    a = _gradient()
    img = load_image(_save(tmp_path, "g.png", np.stack([a, a, a], -1)))
    assert img.kind == "gray" and np.array_equal(img.as_uint8(), a)


def test_colour_png_rgba_jpeg(tmp_path):
    a = _gradient()
    rgb = np.stack([a, 255 - a, a // 2], -1)
    img = load_image(_save(tmp_path, "c.png", rgb))
    assert img.kind == "rgb" and np.array_equal(img.as_uint8(), rgb)
    rgba = np.concatenate([rgb, np.full(a.shape + (1,), 128, np.uint8)], -1)
    img = load_image(_save(tmp_path, "c4.png", rgba))
    assert img.kind == "rgb" and np.array_equal(img.as_uint8(), rgb)  # alpha dropped
    img = load_image(_save(tmp_path, "c.jpg", rgb, quality=95))
    assert img.kind == "rgb" and img.source_format == "jpeg"
    assert np.abs(img.as_uint8().astype(int) - rgb).mean() < 6


def test_palette_png(tmp_path):
    a = (_gradient() // 64).astype(np.uint8)
    im = Image.fromarray(a, mode="L").convert("P")
    p = tmp_path / "p.png"
    im.save(p)
    img = load_image(p)
    assert img.source_mode == "P" and img.kind == "gray"
    assert np.array_equal(img.as_uint8(), a)


def test_16bit_png_and_tiff(tmp_path):
    a16 = (np.arange(80 * 96).reshape(80, 96) * 8).astype(np.uint16)
    p = tmp_path / "a.tif"
    tifffile.imwrite(p, a16)
    img = load_image(p)
    assert img.source_dtype == "uint16" and img.kind == "gray"
    assert np.allclose(img.data, a16 / 65535.0, atol=1e-6)
    p2 = tmp_path / "a16.png"
    Image.fromarray(a16).save(p2)
    img2 = load_image(p2)
    assert np.allclose(img2.data, a16 / 65535.0, atol=1e-6)


def test_float_tiff_rescaled_and_rgb_tiff(tmp_path):
    f = np.linspace(-5, 20, 80 * 96, dtype=np.float32).reshape(80, 96)
    tifffile.imwrite(tmp_path / "f.tif", f)
    img = load_image(tmp_path / "f.tif")
    assert img.data.min() == 0.0 and img.data.max() == 1.0
    rgb = np.stack([_gradient()] * 2 + [255 - _gradient()], -1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert load_image(tmp_path / "rgb.tif").kind == "rgb"


def test_wrong_extension_is_read_by_content(tmp_path):
    p = _save(tmp_path, "x.png", _gradient())
    q = tmp_path / "really_png.jpg"
    q.write_bytes(p.read_bytes())
    assert load_image(q).source_format == "png"


def _bomb_png(w, h) -> bytes:
    """A tiny PNG whose header claims w x h pixels."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("name,content,reason", [
    ("empty.png", b"", "empty"),
    ("text.png", b"hello, I am not an image\n", "not a PNG, JPEG or TIFF"),
    ("trunc.png", None, "corrupt or truncated"),
    ("bomb.png", _bomb_png(50000, 50000), "decompression bomb"),
    ("small.png", "small", "too small"),
    ("stack.tif", "stack", "3D stack"),
    ("nan.tif", "nan", "NaN"),
])
def test_bad_files_give_one_line_reasons(tmp_path, name, content, reason):
    p = tmp_path / name
    if content is None:
        good = _save(tmp_path, "good.png", _gradient(200, 200)).read_bytes()
        p.write_bytes(good[: len(good) // 2])
    elif content == "small":
        _save(tmp_path, name, _gradient(10, 200))
    elif content == "stack":
        tifffile.imwrite(p, np.zeros((5, 80, 80, 3), np.uint8))
    elif content == "nan":
        a = np.ones((80, 80), np.float32)
        a[3, 3] = np.nan
        tifffile.imwrite(p, a)
    else:
        p.write_bytes(content)
    with pytest.raises(ImageError) as ei:
        load_image(p)
    msg = str(ei.value)
    assert reason in msg and "\n" not in msg and msg.startswith(name)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")


def test_bomb_limit_is_sane():
    assert MAX_PIXELS >= 8192 * 8192


def test_labels_from_0_255_png_and_3d_tiff(tmp_path):
    a = (_gradient() > 100).astype(np.uint8) * 255
    p = save_png(tmp_path / "l.png", a)
    lab = load_labels(p)
    assert set(np.unique(lab)) == {0, 1} and np.array_equal(lab, a // 255)
    vol = np.random.default_rng(0).integers(0, 3, (8, 9, 10)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", vol)
    assert np.array_equal(load_labels(tmp_path / "v.tif"), vol)


def test_shared_microlib_images_load(shared_data):
    files = sorted((shared_data / "microlib").glob("micro*.png"))
    assert len(files) == 44
    kinds = {}
    for f in files[:12] + [shared_data / "microlib" / "micro016.png"]:
        img = load_image(f)
        kinds[f.stem] = img.kind
        assert min(img.shape) >= 64
    assert kinds["micro016"] == "gray"
    lab = load_labels(shared_data / "microlib" / "micro001.png")
    assert set(np.unique(lab)) == {0, 1}
