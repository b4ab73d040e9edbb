"""Cross-check with PoreSpy on MicroLib's real training images and on volumes built from them."""

from __future__ import annotations

import numpy as np
import pytest

porespy = pytest.importorskip("porespy")

from microlib_gui.core.images import load_labels  # noqa: E402
from microlib_gui.core.stats import two_point_correlation, volume_fraction  # noqa: E402

pytestmark = pytest.mark.shared

IMAGES = ["micro001.png", "micro612.png", "micro160.png", "micro721.png"]


def _porespy_s2(mask: np.ndarray, r_max: int) -> np.ndarray:
    # Bins [r, r+1) for r = 0..r_max: the same radial binning as ours.
    res = porespy.metrics.two_point_correlation(mask, bins=np.arange(0, r_max + 2))
    return np.asarray(res.probability_scaled)


@pytest.mark.parametrize("name", IMAGES)
def test_images_agree_with_porespy(shared_data, name):
    labels = load_labels(shared_data / "microlib" / name)
    ours = two_point_correlation(labels, r_max=100)
    vf = volume_fraction(labels)
    for k in range(int(labels.max()) + 1):
        assert vf[k] == pytest.approx(porespy.metrics.porosity(labels == k), abs=1e-3)
        np.testing.assert_allclose(ours["s2"][k], _porespy_s2(labels == k, 100), atol=1e-3)


def test_volume_agrees_with_porespy(shared_data):
    img = load_labels(shared_data / "microlib" / "micro039.png")
    n = 64
    # A volume of real structure: slices are successive crops of the micrograph.
    vol = np.stack([img[i : i + n, 2 * i : 2 * i + n] for i in range(n)])
    ours = two_point_correlation(vol, r_max=30)
    vf = volume_fraction(vol)
    for k in (0, 1):
        assert vf[k] == pytest.approx(porespy.metrics.porosity(vol == k), abs=1e-3)
        np.testing.assert_allclose(ours["s2"][k], _porespy_s2(vol == k, 30), atol=1e-3)
