"""Headless renderer, rotation movie, rotation/erosion strip and GIF→MP4."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from microlib_gui.core import media
from microlib_gui.core.errors import MicrolibError


def _labels(side=40, n=3, seed=0):
    f = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal((side,) * 3), 2.5)
    return np.digitize(f, np.quantile(f, np.linspace(0, 1, n + 1)[1:-1])).astype(np.uint8)


def _colour_of(phase):
    return media.PHASE_COLOURS[phase].astype(float)


def test_render_view_shows_the_cube_in_phase_colours():
    vol = _labels()
    img = media.render_view(vol, size=128)
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    white = np.all(img == 255, axis=-1)
    # The cube covers the middle, background the corners.
    assert white[0, 0] and white[-1, -1] and not white[64, 64]
    assert 0.3 < (~white).mean() < 0.9
    # Every phase shows on the visible faces: some pixel is a shaded version of its colour.
    px = img[~white].astype(float)
    for p in range(3):
        c = _colour_of(p)
        ratio = px / np.maximum(c, 1)
        close = np.all(np.abs(ratio - ratio[:, :1]) < 0.08, axis=1) & (ratio[:, 0] > 0.3)
        assert close.any(), f"phase {p} not visible"


def test_faces_are_shaded_differently_and_rotation_changes_the_view():
    vol = np.ones((32, 32, 32), np.uint8)  # one colour: only shading differs
    img = media.render_view(vol, size=96)
    shades = {tuple(v) for v in img.reshape(-1, 3) if not np.all(v == 255)}
    assert len(shades) == 3  # top and two sides
    vol2 = _labels(32)
    a = media.render_view(vol2, azimuth=45, size=96)
    b = media.render_view(vol2, azimuth=135, size=96)
    assert np.mean(a != b) > 0.1


def test_hidden_phase_and_cut_reveal_the_inside():
    vol = _labels(32, n=2)
    full = media.render_view(vol, size=96)
    only1 = media.render_view(vol, size=96, hidden=(0,))
    bg_full = np.all(full == 255, axis=-1).mean()
    bg_only = np.all(only1 == 255, axis=-1).mean()
    assert bg_only > bg_full + 0.05  # phase 0 removed: background shows through
    # no pixel of phase 0's colour family remains
    dark = media.PHASE_COLOURS[0].astype(int)
    assert not np.any(np.all(only1.astype(int) == dark, axis=-1))
    cut = media.render_view(vol, size=96, cut=0.5)
    assert np.mean(cut != full) > 0.05
    assert np.all(np.all(cut == 255, axis=-1) == np.all(full == 255, axis=-1))  # same outline


def test_grayscale_volume_renders_in_grey():
    vol = np.linspace(0, 1, 24 ** 3, dtype=np.float32).reshape(24, 24, 24)
    assert media.volume_kind(vol) == "grayscale"
    img = media.render_view(vol, size=64)
    fg = img[~np.all(img == 255, axis=-1)].astype(int)
    assert np.all(np.abs(fg[:, 0] - fg[:, 1]) <= 1) and fg.std() > 5


def test_long_strip_has_rotation_erosion_and_phase_views():
    vol = _labels(32, n=3)
    strip = media.long_strip(vol, size=64)
    assert strip.shape == (64, 64 * (6 + 3 + 3), 3)
    tiles = strip.reshape(64, 12, 64, 3).transpose(1, 0, 2, 3)
    assert all(np.any(t != 255) for t in tiles)


def test_rotation_movie_round_trip(tmp_path):
    vol = _labels(32)
    path = media.write_rotation_movie(vol, tmp_path / "rot.mp4", n_frames=12, size=96, fps=12)
    frames, meta = media.read_mp4(path)
    assert len(frames) == 12
    assert frames[0].shape == (96, 96, 3)
    assert meta["fps"] == pytest.approx(12)
    # the first frame resembles the render (lossy codec), and the movie moves
    ref = media.render_view(vol, azimuth=45.0, elevation=25.0, size=96).astype(float)
    assert np.abs(frames[0].astype(float) - ref).mean() < 12
    assert np.abs(frames[3].astype(float) - frames[0].astype(float)).mean() > 5


def test_gif_to_mp4(tmp_path):
    from PIL import Image

    frames = [Image.fromarray(np.full((50, 70), v, np.uint8)) for v in (0, 128, 255)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=200, loop=0)
    out = media.gif_to_mp4(tmp_path / "a.gif", tmp_path / "a.mp4")
    got, meta = media.read_mp4(out)
    assert len(got) == 3 and meta["fps"] == pytest.approx(5)
    assert [int(round(f[:50, :70].mean())) for f in got] == pytest.approx([0, 128, 255], abs=6)


@pytest.mark.parametrize("bad", [np.zeros((10, 10)), np.zeros((1, 10, 10)), np.full((4, 4, 4), np.nan)])
def test_bad_volumes_are_refused(bad):
    with pytest.raises(MicrolibError):
        media.render_view(bad)


def test_load_volume_errors(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(media.MediaError, match="x.tif"):
        media.load_volume(tmp_path / "x.tif")
    with pytest.raises(media.MediaError, match="no such file"):
        media.load_volume(tmp_path / "missing.tif")
