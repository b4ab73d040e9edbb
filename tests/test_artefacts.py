"""The stripe and tiling detector (core/stats/artefacts.py) on volumes made here: a smooth random
structure passes, the same structure with an 8 px periodic pattern along one axis is flagged, and
the peak is found at that period and axis."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from microlib_gui.core.stats.artefacts import STRIPE_LIMIT, axis_spectra, peak_ratio, stripe_score
from microlib_gui.core.stats.metrics import StatsError


def field(shape, seed, sigma=2.0):
    """A Gaussian random field (white noise blurred with ``sigma`` px), unit variance."""
    f = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma, mode="wrap")
    return f / f.std()


def threshold(f, vf=0.35):
    return (f > np.quantile(f, 1 - vf)).astype(np.uint8)


@pytest.fixture(scope="module")
def image():
    return threshold(field((256, 256), 0))


@pytest.fixture(scope="module")
def smooth():
    return field((96, 96, 96), 1)


def striped(f, period=8, axis=2, amplitude=0.5):
    """``f`` plus a cosine wave of ``period`` px along ``axis``, then thresholded."""
    shape = [1, 1, 1]
    shape[axis] = f.shape[axis]
    wave = amplitude * np.cos(2 * np.pi * np.arange(f.shape[axis]) / period).reshape(shape)
    return threshold(f + wave)


def test_a_smooth_random_structure_passes(image, smooth):
    s = stripe_score(threshold(smooth), image)
    assert not s["flagged"], s
    assert 0.8 < s["score"] < 1.2, s  # as smooth as the image


def test_an_8px_periodic_pattern_is_flagged_at_its_period_and_axis(image, smooth):
    s = stripe_score(striped(smooth, period=8, axis=2), image)
    assert s["flagged"] and s["score"] > STRIPE_LIMIT, s
    assert s["period"] == 8 and s["axis"] == 2, s


# at 16 px the structure itself has more power (features ~5 px), so the pattern must be stronger to stand out
@pytest.mark.parametrize("period, axis, amplitude", [(16, 0, 1.0), (2, 1, 0.5)])
def test_other_tile_periods_are_found(image, smooth, period, axis, amplitude):
    s = stripe_score(striped(smooth, period=period, axis=axis, amplitude=amplitude), image)
    assert s["flagged"] and s["period"] == period and s["axis"] == axis, s


def test_a_smooth_spectrum_has_no_peak_and_a_spike_is_found():
    k = np.arange(33, dtype=float)
    smooth = 1.0 / (1.0 + (k / 5.0) ** 2)
    assert peak_ratio(smooth)[0] == pytest.approx(1.0, abs=0.1)
    spiked = smooth.copy()
    spiked[8] *= 10
    ratio, where = peak_ratio(spiked)
    assert where == 8 and ratio > 5


def test_intensities_and_labels_and_bad_shapes():
    f = field((64, 64, 64), 2)
    freqs, p = axis_spectra((f - f.min()) / (f.max() - f.min()))
    assert p.shape == (3, 33) and freqs[-1] == 0.5
    with pytest.raises(StatsError, match="at least 64"):
        axis_spectra(np.zeros((32, 64, 64), np.uint8))
    with pytest.raises(StatsError, match="2D image or a 3D volume"):
        axis_spectra(np.zeros(64))
