"""Crop / Segment / Scale bar panels with real mouse and keyboard input under Xvfb."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402


def _send(widget, kind, pos, buttons):
    ev = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), Qt.MouseButton.LeftButton,
                     buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def drag(qtbot, widget, p0: QPoint, p1: QPoint, steps: int = 8):
    """A left-button drag, with the button held during the moves (QTest.mouseMove drops it)."""
    _send(widget, QEvent.Type.MouseButtonPress, p0, Qt.MouseButton.LeftButton)
    for k in range(1, steps + 1):
        p = p0 + (p1 - p0) * (k / steps)
        _send(widget, QEvent.Type.MouseMove, p, Qt.MouseButton.LeftButton)
        qtbot.wait(5)
    _send(widget, QEvent.Type.MouseButtonRelease, p1, Qt.MouseButton.NoButton)
    qtbot.wait(20)


def click(qtbot, view, x, y):
    """Left click on image pixel (x, y) of an ImageView."""
    pos = view.mapFromScene(view.scene_point(x, y))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.wait(20)


def _panel(qtbot, lib, module, index):
    from microlib_gui.gui.context import AppContext

    ctx = AppContext(lib)
    panel = module.Panel(ctx)
    qtbot.addWidget(panel)
    panel.resize(1100, 700)
    panel.show()
    qtbot.waitExposed(panel)
    panel.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is panel, timeout=3000)
    ctx.set_entry(lib.list_entries()[index].id)
    panel.activated()
    qtbot.wait(50)
    return ctx, panel


def test_segment_panel_drag_threshold_line(qtbot, demo_library, artifacts):
    from microlib_gui.gui.steps import segment

    ctx, panel = _panel(qtbot, demo_library, segment, 0)
    panel.run_auto()
    assert panel.n_spin.value() == 2
    before_t = panel.thresholds()[0]
    before = panel.view.overlay_array().copy()
    vf_before = panel.vf_label.text()
    pi = panel.hist.getPlotItem()
    vb = pi.vb
    y_mid = float(np.mean(vb.viewRange()[1]))
    start = panel.hist.mapFromScene(vb.mapViewToScene(QPointF(before_t, y_mid)))
    end = panel.hist.mapFromScene(vb.mapViewToScene(QPointF(before_t + 40, y_mid)))
    drag(qtbot, panel.hist.viewport(), start, end)
    after_t = panel.thresholds()[0]
    assert after_t > before_t + 20, "the line did not follow the drag"
    after = panel.view.overlay_array()
    # A higher threshold moves pixels from phase 1 (orange) to phase 0 (blue).
    assert (after[..., 2] > before[..., 2]).sum() > 100
    assert panel.vf_label.text() != vf_before
    ann = demo_library.get_annotations(panel.entry_id)
    assert ann["thresholds"][0] == pytest.approx(after_t, abs=0.01) and ann["segment_method"] == "thresholds"
    assert demo_library.entry_file(panel.entry_id, "_segmented.png").exists()
    assert demo_library.get_entry(panel.entry_id).steps["segment"] == "done"
    panel.grab().save(str(artifacts / "segment_panel_after_drag.png"))
    # Ctrl+Z brings the auto thresholds back.
    panel.setFocus()
    qtbot.keyClick(panel, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.wait(20)
    assert panel.thresholds()[0] == pytest.approx(before_t, abs=0.01)


def test_scalebar_panel_pick_and_tolerance(qtbot, demo_library, artifacts):
    from microlib_gui.core.demo import CATALOG, render_micrograph
    from microlib_gui.gui.steps import scalebar

    ctx, panel = _panel(qtbot, demo_library, scalebar, 0)
    _, _, bar = render_micrograph(CATALOG[0])
    x0, y0, x1, y1 = bar["box_xyxy"]
    assert panel.view.overlay_array() is None or not panel.view.overlay_array()[..., 3].any()
    # A box around the bar, then a click on the bar picks its colour and shows the mask.
    panel.view.set_box((x0 - 4, y0 - 4, x1 + 4, y1 + 4))
    click(qtbot, panel.view, (x0 + x1) // 2, y1 - 2)
    assert panel.colour_label.text() == "255"
    n1 = int(panel.count_label.text())
    red = panel.view.overlay_array()[..., 3] > 0
    assert n1 > 200 and red.sum() == n1
    assert red[y1 - 2, (x0 + x1) // 2] and not red[: y0 - 5].any()
    panel.grab().save(str(artifacts / "scalebar_panel_picked.png"))
    # A looser tolerance takes in the bright phase (grey 200) inside the box.
    panel.tolerance.setFocus()
    for _ in range(70):
        qtbot.keyClick(panel.tolerance, Qt.Key.Key_Right)
    assert panel.tolerance.value() == 80
    n2 = int(panel.count_label.text())
    assert n2 > n1
    panel.grab().save(str(artifacts / "scalebar_panel_loose_tolerance.png"))
    ann = demo_library.get_annotations(panel.entry_id)
    assert ann["bar_tolerance"] == 80 and ann["barcol"][0] == 255
    # Auto-detect (in the background: the window stays live), then the bar value: µm per pixel follows.
    panel.run_auto()
    assert not panel.auto_btn.isEnabled()
    qtbot.waitUntil(lambda: not panel.auto_running(), timeout=30000)
    assert panel.auto_btn.isEnabled() and "Found a" in panel.status.text()
    assert abs(panel.bar_length() - bar["bar_length_px"]) <= 1.5
    panel.um.setValue(bar["bar_value_um"])
    panel.um.editingFinished.emit()  # what Enter or leaving the field does
    ann = demo_library.get_annotations(panel.entry_id)
    assert ann["vox_size"] == pytest.approx(CATALOG[0].vox_size, rel=0.03)
    assert demo_library.entry_file(panel.entry_id, "_mask.png").exists()
    panel.grab().save(str(artifacts / "scalebar_panel_auto.png"))


def test_crop_panel_box_rotation_and_reset(qtbot, demo_library, artifacts):
    from microlib_gui.gui.steps import crop

    ctx, panel = _panel(qtbot, demo_library, crop, 1)
    for k, v in zip("xywh", (10, 20, 200, 150)):
        panel.spins[k].setValue(v)
    panel._on_spins()
    assert demo_library.get_annotations(panel.entry_id)["crop"] == [10, 20, 210, 170]
    # Drag the box by its body.
    vb = panel.view.view
    p0 = panel.view.mapFromScene(vb.mapViewToScene(QPointF(100, 100)))
    p1 = panel.view.mapFromScene(vb.mapViewToScene(QPointF(130, 110)))
    drag(qtbot, panel.view.viewport(), p0, p1)
    crop_box = demo_library.get_annotations(panel.entry_id)["crop"]
    assert crop_box[0] > 25 and crop_box[2] - crop_box[0] == 200
    panel.rot_spin.setValue(5)
    panel.rot_spin.editingFinished.emit()
    assert demo_library.get_annotations(panel.entry_id)["rotation"] == 5
    panel.grab().save(str(artifacts / "crop_panel.png"))
    panel.reset()
    ann = demo_library.get_annotations(panel.entry_id)
    assert ann["crop"] is None and ann["rotation"] is None
    panel.history.undo()
    assert demo_library.get_annotations(panel.entry_id)["rotation"] == 5 and panel.rot_spin.value() == 5
