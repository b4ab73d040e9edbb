"""Statistics core: analytic cases, an independent brute-force S2, the 2D-vs-3D flag."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from microlib_gui.core.errors import MicrolibError
from microlib_gui.core.stats import (compare, intensity_two_point, percolating_fraction, surface_area,
                                     tortuosity, two_point_correlation, volume_fraction)
from microlib_gui.core.stats.metrics import _autocorrelation, _autocorrelation_torch


def brute_s2(ind: np.ndarray, R: int) -> np.ndarray:
    """S2(r) by direct shifted products over every lag |d_i| <= R (no FFT)."""
    ind = ind.astype(np.float64)
    sums, counts = np.zeros(R + 2), np.zeros(R + 2)
    for d in np.ndindex(*(2 * R + 1,) * ind.ndim):
        d = np.array(d) - R
        a = tuple(slice(max(0, -k), n - max(0, k)) for k, n in zip(d, ind.shape))
        b = tuple(slice(max(0, k), n - max(0, -k)) for k, n in zip(d, ind.shape))
        b_ = int(min(np.floor(np.sqrt((d * d).sum())), R + 1))
        sums[b_] += (ind[a] * ind[b]).mean()
        counts[b_] += 1
    return sums[: R + 1] / counts[: R + 1]


def checkerboard(shape):
    return (np.indices(shape).sum(axis=0) % 2).astype(np.uint8)


@pytest.mark.parametrize("shape", [(32, 40), (16, 18, 20)])
def test_checkerboard(shape):
    cb = checkerboard(shape)
    assert volume_fraction(cb) == pytest.approx([0.5, 0.5])
    sa = surface_area(cb)
    assert sa["total"] == 1.0 and sa["axes"] == [1.0] * len(shape)
    R = 4
    s2 = two_point_correlation(cb, r_max=R)
    for k in (0, 1):
        assert s2["s2"][k][0] == pytest.approx(0.5)
        np.testing.assert_allclose(s2["s2"][k], brute_s2(cb == k, R), atol=1e-9)
    # A single axial step always changes phase: S2 along an axis at distance 1 is 0.
    C = _autocorrelation(cb == 1, R)
    assert abs(C[(1,) + (0,) * (cb.ndim - 1)]) < 1e-3


@pytest.mark.parametrize("shape,R", [((37, 50), 9), ((13, 17, 21), 5)])
def test_fft_matches_brute_force(shape, R):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=shape).astype(np.uint8)
    res = two_point_correlation(labels, r_max=R)
    assert res["r"] == list(range(R + 1))
    for k in range(3):
        np.testing.assert_allclose(res["s2"][k], brute_s2(labels == k, R), atol=1e-9)


@pytest.mark.parametrize("shape,R", [((37, 50), 9), ((13, 17, 21), 5)])
def test_float32_path_matches_brute_force(shape, R, monkeypatch):
    """Large inputs are transformed in float32: same algorithm, float32 rounding."""
    from microlib_gui.core.stats import metrics

    monkeypatch.setattr(metrics, "_FLOAT64_MAX_SIZE", 0)
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, size=shape).astype(np.uint8)
    res = two_point_correlation(labels, r_max=R)  # phase 0 from the window sums, phase 1 by FFT
    for k in range(2):
        np.testing.assert_allclose(res["s2"][k], brute_s2(labels == k, R), atol=2e-6)


def test_two_phase_shortcut_equals_direct_fft():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(5)
    labels = (ndi.gaussian_filter(rng.random((30, 34, 38)), 2) > 0.55).astype(np.uint8)
    both = two_point_correlation(labels, r_max=12)  # phase 0 derived from phase 1's FFT
    only0 = two_point_correlation(labels, r_max=12, phases=[0])  # phase 0 by its own FFT
    np.testing.assert_allclose(both["s2"][0], only0["s2"][0], atol=1e-9)
    assert only0["s2"][1] is None


def test_single_sphere():
    n, rad = 48, 12.0
    z = np.indices((n, n, n)) - (n - 1) / 2
    ball = ((z ** 2).sum(axis=0) <= rad ** 2).astype(np.uint8)
    vf = volume_fraction(ball)[1]
    assert vf == pytest.approx(4 / 3 * math.pi * rad ** 3 / n ** 3, rel=0.02)
    # Face crossings of a digital sphere: its projected area, twice, along each axis: 6 pi r^2.
    pairs = 3 * n * n * (n - 1)
    assert surface_area(ball)["total"] == pytest.approx(6 * math.pi * rad ** 2 / pairs, rel=0.03)
    # S2 of a ball: lens volume of two balls |d| apart over the number of valid pairs.
    R = 20
    s2 = two_point_correlation(ball, r_max=R)["s2"][1]
    lens = lambda t: 4 / 3 * math.pi * rad ** 3 * (1 - 3 * t / (4 * rad) + t ** 3 / (16 * rad ** 3))  # noqa: E731
    d = np.indices((2 * R + 1,) * 3).reshape(3, -1) - R
    dist = np.sqrt((d ** 2).sum(axis=0))
    expected = np.clip(lens(dist), 0, None) / np.prod(n - np.abs(d), axis=0)
    for r in (0, 5, 10, 15):
        in_bin = np.floor(dist) == r
        assert s2[r] == pytest.approx(expected[in_bin].mean(), rel=0.03), r


def test_random_field_known_vf():
    rng = np.random.default_rng(11)
    p = 0.3
    field = (rng.random((64, 64, 64)) < p).astype(np.uint8)
    vf = volume_fraction(field)[1]
    assert abs(vf - p) < 4 * math.sqrt(p * (1 - p) / field.size)
    s2 = two_point_correlation(field, r_max=10)["s2"][1]
    assert s2[0] == pytest.approx(vf)
    np.testing.assert_allclose(s2[1:], vf * vf, atol=2e-3)  # independent voxels
    assert surface_area(field)["total"] == pytest.approx(2 * p * (1 - p), abs=5e-3)


def test_torch_backend_matches_scipy():
    rng = np.random.default_rng(2)
    ind = rng.random((20, 24, 28)) < 0.4
    np.testing.assert_allclose(_autocorrelation_torch(ind, 6, "cpu"), _autocorrelation(ind, 6), rtol=1e-4, atol=1e-2)


def test_intensity_two_point_constant_and_r_cap():
    res = intensity_two_point(np.full((40, 50), 0.5, np.float32), r_max=100)
    assert res["r"][-1] == 20  # capped at half the shortest side
    np.testing.assert_allclose(res["s2"], 0.25, atol=1e-6)


def test_bad_inputs_raise_one_line_errors():
    with pytest.raises(MicrolibError):
        volume_fraction(np.zeros(5, np.uint8))
    with pytest.raises(MicrolibError):
        two_point_correlation(np.zeros((4, 4), np.float32))
    with pytest.raises(MicrolibError):
        compare(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    with pytest.raises(MicrolibError, match="single phase"):
        compare(np.zeros((8, 8), np.uint8), np.zeros((8, 8, 8), np.uint8), tortuosity=False)


def test_tortuosity_straight_channels_and_blocked():
    vol = np.zeros((16, 16, 16), np.uint8)
    vol[:, :, :] = 1
    vol[::4, :, :] = 0  # planes across axis 0 block phase 1 along x only
    vol[:, 7:9, 7:9] = 1  # ... except one straight rod along x
    res = tortuosity(vol, max_side=None)
    p1 = next(p for p in res["phases"] if p["phase"] == 1)
    assert p1["y"] == pytest.approx(1.0, abs=0.02) and p1["z"] == pytest.approx(1.0, abs=0.02)
    assert p1["x"] > 1.5  # the flux has to funnel into the rod
    p0 = next(p for p in res["phases"] if p["phase"] == 0)
    assert p0["x"] is None  # separated planes: no path along x
    perc = percolating_fraction(vol)
    assert perc[0]["x"] == 0.0 and perc[0]["y"] == pytest.approx(1.0)


def test_tortuosity_isotropic_directions_agree():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(4)
    vol = (ndi.gaussian_filter(rng.random((40, 40, 40)), 1.5) > 0.5).astype(np.uint8)
    res = tortuosity(vol, phases=[1], max_side=32)
    p = res["phases"][0]
    assert res["side"] == 32 and p["converged"]
    assert all(1.0 < p[d] < 5.0 for d in "xyz")
    assert p["spread"] < 0.25


def _stacked_volume(img, n):
    """A 3D volume whose slices are shifted crops of a 2D image (same statistics roughly)."""
    return np.stack([img[i : i + n, :n] for i in range(n)])


def test_compare_agreeing_pair_is_not_flagged():
    rng = np.random.default_rng(8)
    img = (rng.random((200, 200)) < 0.4).astype(np.uint8)
    vol = (rng.random((40, 40, 40)) < 0.4).astype(np.uint8)
    res = compare(img, vol, r_max=10, tortuosity=False)
    assert set(res) >= {"image2d", "volume3d", "errors", "flag"}
    for part in ("image2d", "volume3d"):
        assert len(res[part]["volume_fraction"]) == 2 and isinstance(res[part]["surface_area"], float)
        assert len(res[part]["two_point"]) == 2 and len(res[part]["two_point"][1]) == 11
    assert len(res["errors"]["volume_fraction"]) == 2
    assert max(res["errors"]["volume_fraction"]) < 0.05 and res["errors"]["surface_area"] < 0.05
    assert res["flag"]["flagged"] is False and res["flag"]["reasons"] == []
    json.dumps(res)  # JSON-ready


def test_compare_flags_a_volume_fraction_mismatch_with_causes():
    rng = np.random.default_rng(9)
    img = (rng.random((128, 128)) < 0.30).astype(np.uint8)
    vol = (rng.random((32, 32, 32)) < 0.36).astype(np.uint8)
    res = compare(img, vol, r_max=8, tortuosity=False)
    fl = res["flag"]
    assert fl["flagged"] and res["errors"]["volume_fraction"][1] > 0.15
    assert any("phase 1 volume fraction" in r for r in fl["reasons"])
    text = " ".join(fl["likely_causes"])
    for word in ("non-representative", "anisotropic", "segmentation", "exposure"):
        assert word in text


def test_compare_grayscale():
    rng = np.random.default_rng(1)
    img = rng.random((100, 100)).astype(np.float32)
    vol = (rng.random((30, 30, 30)) * 0.5).astype(np.float32)
    res = compare(img, vol, kind="grayscale", r_max=5)
    assert res["kind"] == "grayscale"
    assert res["image2d"]["mean"] == pytest.approx(0.5, abs=0.02)
    assert res["errors"]["mean"] == pytest.approx(0.5, abs=0.05)
    assert res["flag"]["flagged"] and "mean intensity" in res["flag"]["reasons"][0]
    assert len(res["image2d"]["histogram"]) == 64


def test_compare_names_a_volume_rougher_along_one_axis():
    from scipy import ndimage

    rng = np.random.default_rng(4)
    base = ndimage.gaussian_filter(rng.random((48, 48, 48)), 2.0, mode="wrap") > 0.5
    img = base[:, :, 0].astype(np.uint8)
    vol = base.copy()
    vol[:, ::6] ^= True  # flipping whole x-z planes adds interface along y only
    res = compare(img, vol.astype(np.uint8), r_max=6, tortuosity=False)
    axes = res["volume3d"]["surface_area_axes"]
    assert axes[1] > 1.2 * max(axes[0], axes[2])
    assert res["flag"]["flagged"]
    text = " ".join(res["flag"]["likely_causes"])
    assert "more interface along y" in text and "rows of one family" in text
    # an agreeing, isotropic pair names no such cause
    ok = compare(base[:, :, 0].astype(np.uint8), base.astype(np.uint8), r_max=6, tortuosity=False)
    assert "more interface along" not in " ".join(ok["flag"]["likely_causes"])
