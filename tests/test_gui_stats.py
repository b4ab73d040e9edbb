"""The Stats view widget: draws a real compare() result and shows the flag plainly."""

from __future__ import annotations

import numpy as np
import pytest

from microlib_gui.core.stats import compare

pytestmark = pytest.mark.gui


def _blobs(shape, seed, thr=0.5):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    return (ndi.gaussian_filter(rng.random(shape), 2.0) > thr).astype(np.uint8)


@pytest.fixture(scope="module")
def flagged_result():
    # The volume holds clearly more of phase 1 than the image: flagged.
    return compare(_blobs((160, 160), 1), _blobs((32, 32, 32), 2, thr=0.49), r_max=20, tau_side=20)


def test_stats_view_draws_and_flags(qtbot, artifacts, flagged_result):
    from microlib_gui.gui.widgets.stats_view import StatsView

    w = StatsView()
    qtbot.addWidget(w)
    w.resize(1100, 800)
    w.show()
    assert "No statistics" in w.banner.text()
    w.set_results(flagged_result)
    qtbot.wait(200)
    assert w.is_flagged()
    text = w.banner.text()
    assert text.startswith("FLAGGED") and "volume fraction differs" in text and "Likely cause" in text
    # 2D and 3D curves of each phase, bars for both, tortuosity bars.
    assert len(w.p_tpc.listDataItems()) == 4
    assert sum(type(i).__name__ == "BarGraphItem" for i in w.p_vf.items) == 2
    assert any(type(i).__name__ == "BarGraphItem" for i in w.p_tau.items)
    img = w.grab()
    assert img.save(str(artifacts / "stats_view_flagged.png"))


def test_stats_view_ok_grayscale_and_clear(qtbot, artifacts):
    from microlib_gui.gui.widgets.stats_view import StatsView

    rng = np.random.default_rng(0)
    res = compare(rng.random((80, 80)).astype(np.float32), rng.random((20, 20, 20)).astype(np.float32),
                  kind="grayscale", r_max=8)
    w = StatsView()
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    w.set_results(res)
    qtbot.wait(100)
    assert not w.is_flagged() and w.banner.text().startswith("OK")
    assert len(w.p_tpc.listDataItems()) == 2
    assert w.grab().save(str(artifacts / "stats_view_grayscale.png"))
    w.set_results(None)
    assert w.p_tpc.listDataItems() == [] and "No statistics" in w.banner.text()
