"""The Inspect step stays responsive (issue: "Inspect and Segment that respond"), walked as a user:
statistics show their stage on a progress bar and can be cancelled (nothing saved, the old figures
stay), then run to the end; the isosurface is computed while the window keeps running, in a colour
that shows on the black canvas; napari's axes are named."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from test_workflow_generate_export import curated, gen, publish

from microlib_gui.core.jobs import CANCELLED, DONE
from microlib_gui.core.library import layout as L
from microlib_gui.core.stats import stage_names
from microlib_gui.core.workflow import stats

pytestmark = pytest.mark.gui


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "settings.ini"))


def open_inspect(qtbot, root):
    from microlib_gui.gui.session import create_window
    from microlib_gui.gui.settings import make_settings

    win = create_window(root, make_settings(), add_demo_if_empty=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    win.go_to_step("inspect")
    return win, win.panels["inspect"]


def shot(widget, path) -> None:
    QApplication.processEvents()
    widget.grab().save(str(path))


def make_entry(tmp_path, size: int = 32):
    """A library entry with a published (tiny, 2-iteration) generator and a ``size``³ volume from it."""
    lib, eid = curated(tmp_path / "lib", tmp_path)
    publish(lib, eid, seed=1)
    gen(lib, eid, size=size)
    return lib, eid


@pytest.fixture
def entry(tmp_path, one_torch_thread):
    return make_entry(tmp_path)


def test_generation_cancel_keeps_the_saved_volume(qtbot, entry, settings_file, artifacts):
    """Generate a large volume, then Cancel it mid-way (after its first block): nothing is saved, the
    volume saved before stays and is still shown, and Generate is offered again."""
    lib, eid = entry
    vol = lib.entry_file(eid, L.VOLUME.suffix)
    old_bytes = vol.read_bytes()
    win, insp = open_inspect(qtbot, lib.root)
    assert not insp.cancel_btn.isEnabled()  # nothing to cancel yet
    insp.size_spin.setValue(512)
    blocks = []
    qtbot.mouseClick(insp.gen_btn, qtbot_button())
    handle = insp.gen_job
    handle.progress.connect(lambda ev: blocks.append((ev.step, ev.total)))
    assert insp.cancel_btn.isEnabled() and not insp.stats_btn.isEnabled()
    qtbot.waitUntil(lambda: bool(blocks), timeout=120_000)
    done, total = blocks[0]
    assert total > 1 and done < total, blocks  # the cancel lands between blocks, mid-way
    with qtbot.waitSignal(handle.finished, timeout=120_000) as fin:
        qtbot.mouseClick(insp.cancel_btn, qtbot_button())
    assert fin.args[0].state == CANCELLED
    assert max(d for d, _ in blocks) < total  # it did stop before the last block
    assert "Generation cancelled: nothing was saved" in insp.job_status.text()
    assert vol.read_bytes() == old_bytes
    assert not list(vol.parent.glob(".tmp-*"))  # the part-written file is gone too (core/atomic.py names it)
    assert insp.gen_btn.isEnabled() and not insp.cancel_btn.isEnabled()
    assert insp.view.volume_layer is not None and insp.view.volume_layer.data.shape == (32, 32, 32)
    shot(win, artifacts / "inspect_generation_cancelled.png")


class Ticker:
    """A QTimer counting its ticks: while the GUI thread is blocked it does not tick."""

    def __init__(self, ms: int = 20):
        self.ticks = 0
        self.timer = QTimer()
        self.timer.setInterval(ms)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        self.ticks += 1


def test_statistics_progress_cancel_and_finish(qtbot, entry, settings_file, artifacts, monkeypatch):
    from microlib_gui.gui.steps import inspect as inspect_step

    lib, eid = entry
    old = stats.compute(lib, eid, r_max=8, tortuosity=False, device="cpu")  # statistics saved before
    path = lib.entry_file(eid, L.STATS_JSON.suffix)
    old_bytes, old_prov = path.read_bytes(), lib.provenance(eid)

    win, insp = open_inspect(qtbot, lib.root)
    assert insp.stats_view.result["volume3d"] == old["volume3d"]  # the saved statistics are shown
    assert insp.stats_btn.isEnabled() and not insp.stats_cancel_btn.isEnabled()
    assert not insp.stats_progress.isVisible()

    # Compute: the bar appears and moves stage by stage (a 32³ noise volume: tortuosity takes a while).
    values = []
    insp.stats_progress.valueChanged.connect(values.append)
    qtbot.mouseClick(insp.stats_btn, qtbot_button())
    assert insp.computing and insp.stats_progress.isVisible() and insp.stats_cancel_btn.isEnabled()
    assert not insp.stats_btn.isEnabled()
    assert not insp.cancel_btn.isEnabled()  # only the statistics' own Cancel: nothing is generating
    # nor can a new volume replace the one being measured (its statistics would not be saved)
    assert not insp.gen_btn.isEnabled()
    qtbot.waitUntil(lambda: "tortuosity" in insp.stats_progress.format(), timeout=120_000)
    assert len(set(values)) >= 3 and values == sorted(values)  # it moved, forwards
    assert insp.stats_progress.maximum() == 1 + len(stage_names()) + 1  # reading … saving
    assert "Statistics: tortuosity" in insp.job_status.text()
    shot(win, artifacts / "inspect_stats_progress.png")

    # Cancel: the job ends (its process too), nothing new is saved, the old figures stay.
    handle = insp.stats_job
    with qtbot.waitSignal(handle.finished, timeout=60_000) as fin:
        qtbot.mouseClick(insp.stats_cancel_btn, qtbot_button())
        assert "Cancelling" in insp.job_status.text() and not insp.stats_cancel_btn.isEnabled()
    assert fin.args[0].state == CANCELLED
    qtbot.waitUntil(lambda: not handle.job._proc.is_alive(), timeout=30_000)
    assert "cancelled: nothing was saved" in insp.job_status.text()
    assert "saved before are still shown" in insp.job_status.text()
    assert path.read_bytes() == old_bytes and lib.provenance(eid) == old_prov
    assert insp.stats_view.result["volume3d"] == old["volume3d"]
    assert not insp.stats_progress.isVisible() and insp.stats_btn.isEnabled() and insp.gen_btn.isEnabled()
    shot(win, artifacts / "inspect_stats_cancelled.png")

    # Again, to the end (without the slow tortuosity solve): saved, shown, with the cause in words.
    monkeypatch.setattr(inspect_step, "TORTUOSITY_MAX_BYTES", 0)
    qtbot.mouseClick(insp.stats_btn, qtbot_button())
    handle = insp.stats_job
    qtbot.waitUntil(lambda: handle.done, timeout=120_000)
    assert handle.result.state == DONE
    qtbot.waitUntil(lambda: path.read_bytes() != old_bytes, timeout=10_000)
    # the panel shows the new result (the default r_max of 100 against the 8 of the old one)
    qtbot.waitUntil(lambda: len(insp.stats_view.result["image2d"]["r"]) != len(old["image2d"]["r"]),
                    timeout=10_000)
    assert insp.tabs.currentIndex() == 1 and "saved with the entry" in insp.job_status.text()
    assert "trained with the tiny preset" in insp.stats_view.banner.text()
    shot(win, artifacts / "inspect_stats_done.png")


def qtbot_button():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton


def test_isosurface_off_the_gui_thread_in_a_visible_colour(qtbot, entry, settings_file, artifacts):
    from microlib_gui.gui.widgets.napari_view import surface_colour

    lib, eid = entry
    win, insp = open_inspect(qtbot, lib.root)
    view = insp.view
    assert view.volume_layer is not None
    view.set_ndisplay(3)
    ticker = Ticker()
    ticks_while = []
    view.iso_combo.setCurrentIndex(view.iso_combo.findData(1))
    with qtbot.waitSignal(view.surface_changed, timeout=120_000) as sig:
        view.iso_check.setChecked(True)  # returns at once: the surface is computed in a worker
        assert view.iso_computing and "Computing the isosurface" in view.iso_status.text()
        start = ticker.ticks
        qtbot.waitUntil(lambda: not view.iso_computing, timeout=120_000)
        ticks_while.append(ticker.ticks - start)
    ticker.timer.stop()
    # (at least one tick: a loaded machine may run the small worker in a few ticks' time)
    assert ticks_while[0] >= 1, "the event loop stood still while the surface was computed"
    assert sig.args == [1]
    layer = view.surface_layer
    assert layer is not None and layer.metadata["phase"] == 1 and layer.shading == "smooth"
    rgb = np.asarray(layer.colormap.colors)[-1, :3]
    assert np.allclose(rgb, surface_colour(view.colours[1]), atol=1e-3)
    assert "faces" in view.iso_status.text()

    # Phase 0's display colour is a dark grey: its surface is lightened enough to see on black.
    with qtbot.waitSignal(view.surface_changed, timeout=120_000, check_params_cb=lambda p: p == 0):
        view.iso_combo.setCurrentIndex(view.iso_combo.findData(0))
    rgb0 = np.asarray(view.surface_layer.colormap.colors)[-1, :3]
    assert rgb0 @ (0.2126, 0.7152, 0.0722) >= 0.7 - 1e-6
    assert [lay.name for lay in view.viewer.layers].count("isosurface phase 0") == 1
    assert not view.volume_layer.visible  # the opaque volume would hide the surface inside it
    qtbot.wait(300)
    frame = view.grab_canvas()[..., :3].astype(int)
    lit = frame.max(axis=-1) > 110
    assert lit.mean() > 0.05, "the surface hardly shows on the canvas"
    assert np.median(frame[lit][:, 0] - frame[lit][:, 2]) < 30  # its grey-blue, not phase 1's yellow
    assert frame[lit].std(axis=0).max() > 5  # shaded: not one flat colour
    from PIL import Image

    Image.fromarray(view.grab_canvas()).save(artifacts / "inspect_isosurface_phase0.png")
    shot(win, artifacts / "inspect_isosurface_window.png")


def test_a_newer_isosurface_request_supersedes_an_older_one(qtbot, entry, settings_file):
    lib, eid = entry
    win, insp = open_inspect(qtbot, lib.root)
    view = insp.view
    view.set_ndisplay(3)
    view.show_isosurface(0)
    first = view.iso_job
    view.show_isosurface(1)  # asked before the first arrived
    assert first.done or first.job is None or first._cancel_requested
    with qtbot.waitSignal(view.surface_changed, timeout=120_000) as sig:
        pass
    assert sig.args == [1]
    qtbot.waitUntil(lambda: first.done, timeout=30_000)
    qtbot.wait(300)  # let a late result of the first job arrive, were it not dropped
    names = [lay.name for lay in view.viewer.layers if lay.name.startswith("isosurface")]
    assert names == ["isosurface phase 1"]
    view.iso_check.setChecked(False)
    assert view.surface_layer is None and not view.iso_computing
    assert view.volume_layer.visible  # the volume is back


def test_napari_names_the_axes_and_slice_numbers_fit(qtbot, tmp_path, settings_file, artifacts, one_torch_thread):
    lib, eid = make_entry(tmp_path, size=128)  # three-digit slice numbers: "127" came out clipped
    win, insp = open_inspect(qtbot, lib.root)
    view = insp.view
    assert tuple(view.viewer.dims.axis_labels) == ("x", "y", "z")
    sliders = [w for w in view.qt_viewer.dims.slider_widgets if w.isVisible()]
    assert [w.axis_label.text() for w in sliders] == ["x"]  # napari's default said "-3"
    view.viewer.dims.set_current_step(0, 127)  # the user drags the slider to the last slice
    qtbot.waitUntil(lambda: view.qt_viewer.dims.slider_widgets[0].curslice_label.text() == "127")
    labels = [sliders[0].curslice_label, sliders[0].totslice_label]
    assert [lab.text() for lab in labels] == ["127", "127"]  # this slice, and the last
    for lab in labels:
        # the text and half a digit to spare: a slightly wider font or style than here still fits
        need = lab.fontMetrics().horizontalAdvance(lab.text()) + lab.fontMetrics().horizontalAdvance("8") // 2
        assert text_room(lab) >= need, f"{lab.text()!r} has {text_room(lab)} px for {need}"
    shot(win, artifacts / "inspect_napari_2d_sliders.png")


def text_room(widget) -> int:
    """Pixels a label or a line edit has for its text (a line edit loses its frame and Qt's 2-pixel
    margins each side: wider text scrolls out of sight)."""
    from PySide6.QtWidgets import QLineEdit, QStyle, QStyleOptionFrame

    room = widget.contentsRect().width()
    if isinstance(widget, QLineEdit):
        opt = QStyleOptionFrame()
        widget.initStyleOption(opt)
        frame = widget.style().pixelMetric(QStyle.PixelMetric.PM_DefaultFrameWidth, opt, widget)
        m = widget.textMargins()
        room -= 2 * frame + 2 * 2 + m.left() + m.right()
    return room


def test_stats_legends_do_not_cover_the_plots(qtbot, artifacts):
    from scipy import ndimage as ndi

    from microlib_gui.core.stats import compare
    from microlib_gui.gui.widgets.stats_view import StatsView

    def three(shape, seed):  # three phases: six curves in the 2PC legend
        f = ndi.gaussian_filter(np.random.default_rng(seed).random(shape), 2)
        return np.digitize(f, np.quantile(f, [0.3, 0.7])).astype(np.uint8)

    res = compare(three((120, 120), 1), three((24, 24, 24), 2), r_max=12, tau_side=16, device="cpu")
    w = StatsView()
    qtbot.addWidget(w)
    w.resize(1000, 700)
    w.show()
    w.set_results(res)
    qtbot.wait(200)
    for plot, entries in ((w.p_vf, 2), (w.p_sa, 2), (w.p_tpc, 6), (w.p_tau, 3)):
        legend = plot.legend
        assert len(legend.items) == entries
        shown = legend.mapRectToScene(legend.boundingRect())
        data = plot.vb.mapRectToScene(plot.vb.boundingRect())
        assert not shown.intersects(data), f"the legend of {plot.titleLabel.text!r} covers its plot"
    w.grab().save(str(artifacts / "stats_view_legends.png"))
