"""The step panels keep still: a method or option change never moves their buttons (real window).

One session walks an unevenly lit raw-like micrograph (from ``../shared/data``) through Crop,
Segment, Scale bar and Inpaint. In each panel the user switches through every method / option;
the action buttons' place in the window (``mapTo`` the window) must be the same for each. The
Segment histogram shows only the grey-level range (0-255); Inpaint's "Before" and "After" panes
are equally wide, at two window sizes, whether "After" shows a picture or not.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QScrollArea


pytestmark = [pytest.mark.gui, pytest.mark.shared]

#: The histogram may show at most this much beyond 0-255 (grey levels).
HIST_MARGIN = 2.0


def place(win, widget) -> tuple[int, int, int, int]:
    """``widget``'s rectangle in window coordinates: x, y, width, height."""
    top_left = widget.mapTo(win, widget.rect().topLeft())
    return top_left.x(), top_left.y(), widget.width(), widget.height()


def places(win, widgets: dict) -> dict:
    return {name: place(win, w) for name, w in widgets.items()}


def settle(qtbot, win) -> None:
    """Let queued layout requests run (a layout change is posted, not immediate)."""
    from PySide6.QtWidgets import QApplication

    QApplication.processEvents()
    qtbot.waitUntil(lambda: win.isVisible())
    QApplication.processEvents()


def assert_still(seen: dict[str, dict]) -> None:
    """Every option gave the same button places as the first."""
    first_option, first = next(iter(seen.items()))
    for option, got in seen.items():
        moved = {k: (first[k], v) for k, v in got.items() if v != first[k]}
        assert not moved, f"buttons moved between {first_option!r} and {option!r}: {moved}"


def pick(qtbot, combo, index: int) -> None:
    """Choose item ``index`` of ``combo`` with the keyboard, like a user."""
    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Home)
    for _ in range(index):
        qtbot.keyClick(combo, Qt.Key.Key_Down)
    assert combo.currentIndex() == index


@pytest.fixture
def window(local_entry_window, shared_data):
    return local_entry_window(shared_data / "rawlike-uneven" / "raw233.png")


def hist_x_range(seg) -> tuple[float, float]:
    lo, hi = seg.hist.getViewBox().viewRange()[0]
    return float(lo), float(hi)


def test_buttons_keep_still_and_panes_stay_equal(window, qtbot, artifacts):
    win = window

    # Crop: rotating (the only option) leaves Reset and Undo/Redo where they are.
    win.go_to_step("crop")
    crop = win.panels["crop"]
    buttons = {"reset": crop.reset_btn, "undo": crop.history.undo_btn, "redo": crop.history.redo_btn}
    seen = {}
    for tenths in (0, 150, -300, 0):
        crop.rot_slider.setValue(tenths)
        settle(qtbot, win)
        seen[f"rotation {tenths / 10}"] = places(win, buttons)
    assert_still(seen)

    # Segment: every lighting mode and entry kind; the histogram stays on 0-255.
    win.go_to_step("segment")
    seg = win.panels["segment"]
    seg.auto_btn.click()
    buttons = {"auto": seg.auto_btn, "undo": seg.history.undo_btn, "redo": seg.history.redo_btn,
               "estimate": seg.auto_n}
    seen = {}
    for i in range(seg.lighting.count()):
        pick(qtbot, seg.lighting, i)
        settle(qtbot, win)
        seen[seg.lighting.currentText()] = places(win, buttons)
        qtbot.waitUntil(lambda: hist_x_range(seg)[1] - hist_x_range(seg)[0] > 100)  # the view has its range
        lo, hi = hist_x_range(seg)
        assert -HIST_MARGIN <= lo <= 1 and 254 <= hi <= 255 + HIST_MARGIN, (seg.lighting.currentText(), lo, hi)
        win.grab().save(str(artifacts / f"layout_segment_lighting_{i}.png"))
    for i in (1, 2, 0):
        pick(qtbot, seg.kind, i)
        settle(qtbot, win)
        seen[seg.kind.currentText()] = places(win, buttons)
    assert_still(seen)
    pick(qtbot, seg.lighting, 0)  # auto: the entry goes on corrected
    assert all(0 <= t <= 255 for t in seg.thresholds())

    # Scale bar: auto-detect, then every mode and the no-bar options.
    win.go_to_step("scalebar")
    sb = win.panels["scalebar"]
    sb.auto_btn.click()
    qtbot.waitUntil(lambda: not sb.auto_running(), timeout=60_000)
    buttons = {"auto": sb.auto_btn, "box": sb.box_btn, "undo": sb.history.undo_btn,
               "redo": sb.history.redo_btn}
    seen = {"detected": places(win, buttons)}
    for name, act in (("bar ends", lambda: sb.mode_ends.click()), ("pick colour", lambda: sb.mode_pick.click()),
                      ("no bar", lambda: sb.no_bar.click()), ("scale unknown", lambda: sb.scale_unknown.click()),
                      ("scale known", lambda: sb.scale_unknown.click()), ("bar again", lambda: sb.no_bar.click())):
        act()
        settle(qtbot, win)
        seen[name] = places(win, buttons)
    assert_still(seen)
    assert sb.mask is not None and sb.mask.any()

    # Inpaint: both methods, and Before/After equally wide at two window sizes.
    win.go_to_step("inpaint")
    inp = win.panels["inpaint"]
    qtbot.waitUntil(lambda: inp.before.has_image())
    buttons = {"start": inp.start_btn, "stop": inp.stop_btn, "resample": inp.resample_btn,
               "accept": inp.accept_btn, "no bar": inp.no_bar_btn, "progress": inp.progress}
    seen = {}
    for i in (0, 1, 0):
        pick(qtbot, inp.method, i)
        settle(qtbot, win)
        seen[f"{inp.method.currentText()} ({len(seen)})"] = places(win, buttons)
        win.grab().save(str(artifacts / f"layout_inpaint_method_{len(seen)}.png"))
    assert_still(seen)

    def panes_equal(label: str) -> None:
        settle(qtbot, win)
        b, a = inp.before.width(), inp.after.width()
        assert abs(b - a) <= 2, f"{label}: Before {b} px wide, After {a} px"
        assert abs(inp.before.height() - inp.after.height()) <= 2, label
        # the settings column scrolls only vertically: narrower than its rows, it cut them off
        column = inp.findChild(QScrollArea, "inpaintSettingsScroll")
        need = column.widget().minimumSizeHint().width()
        assert column.viewport().width() >= need, f"{label}: settings {column.viewport().width()} px, need {need}"
        for b in (inp.start_btn, inp.stop_btn, inp.resample_btn, inp.accept_btn, inp.no_bar_btn, inp.method):
            right = b.mapTo(column.viewport(), b.rect().topRight()).x()
            assert right < column.viewport().width(), f"{label}: {b.objectName() or b} cut off at the right"

    # A big window first, then a smaller one: the picture in "Before" must not hold its old size.
    for size in ((1700, 1000), (1280, 820), (1150, 720)):
        win.resize(*size)
        qtbot.waitUntil(lambda: win.width() == size[0])
        panes_equal(f"{size}, After empty")
        win.grab().save(str(artifacts / f"layout_inpaint_{size[0]}_after_empty.png"))
    inp.no_bar_btn.click()  # the image as it is becomes the training image, shown in "After"
    qtbot.waitUntil(lambda: inp.after.has_image())
    for size in ((1700, 1000), (1150, 720)):
        win.resize(*size)
        qtbot.waitUntil(lambda: win.width() == size[0])
        panes_equal(f"{size}, After showing the saved image")
        win.grab().save(str(artifacts / f"layout_inpaint_{size[0]}_after_saved.png"))


def cut_off(win) -> list[str]:
    """Shown buttons, fields and labels partly hidden by a parent: cut on the right (a column
    narrower than its rows, as Inpaint's once was at 1280 px), or at the top or bottom outside a
    scrolling column (where scrolling shows the rest)."""
    from PySide6.QtWidgets import (QAbstractButton, QAbstractSpinBox, QComboBox, QLabel, QLineEdit, QScrollArea,
                                   QWidget)

    kinds = (QAbstractButton, QComboBox, QLabel, QAbstractSpinBox, QLineEdit)
    out = []
    for w in win.findChildren(QWidget):
        if not isinstance(w, kinds) or not w.isVisible() or w.width() < 2 or w.height() < 2:
            continue
        shown = w.visibleRegion().boundingRect()
        if shown.isEmpty():
            continue
        scrolls, p = False, w.parentWidget()
        while p is not None and not scrolls:
            scrolls, p = isinstance(p, QScrollArea), p.parentWidget()
        if shown.width() < w.width() - 1 or (not scrolls and shown.height() < w.height() - 1):
            text = w.text() if hasattr(w, "text") else ""
            out.append(f"{type(w).__name__} {w.objectName()!r} {str(text)[:30]!r}: {shown.width()} × "
                       f"{shown.height()} of {w.width()} × {w.height()} px")
    return out


def test_every_step_fits_a_laptop_screen(window, qtbot, artifacts):
    """Each step, at 1280 × 820 (the first-run size) and 1150 × 720, with the entry segmented, its bar
    found, its training image saved, a generator trained and a volume generated: no button, field
    or label is cut off."""
    win = window
    win.go_to_step("segment")
    win.panels["segment"].auto_btn.click()
    win.go_to_step("scalebar")
    sb = win.panels["scalebar"]
    sb.auto_btn.click()
    qtbot.waitUntil(lambda: not sb.auto_running(), timeout=60_000)
    win.go_to_step("inpaint")
    inp = win.panels["inpaint"]
    inp.no_bar_btn.click()
    qtbot.waitUntil(lambda: inp.after.has_image())
    # a trained generator (tiny network, 2 iterations) and a volume: Train and Inspect at their fullest
    from microlib_gui.core.jobs import DONE
    from microlib_gui.core.workflow import train as wf_train

    lib, eid = win.ctx.library, win.ctx.entry_id
    wf_train.train_inline(lib, eid, wf_train.run_params(wf_train.inputs(lib, eid), preset="tiny", iters=2,
                                                        device="cpu"))
    win.go_to_step("inspect")
    insp = win.panels["inspect"]
    qtbot.waitUntil(insp.gen_btn.isEnabled, timeout=5000)
    insp.size_spin.setValue(32)
    insp.gen_btn.click()
    qtbot.waitUntil(lambda: insp.gen_job.done, timeout=60_000)
    assert insp.gen_job.result.state == DONE, insp.gen_job.result.error
    qtbot.waitUntil(lambda: insp.view.volume_layer is not None, timeout=5000)
    for size in ((1280, 820), (1150, 720)):
        win.resize(*size)
        qtbot.waitUntil(lambda: win.width() == size[0])
        for step in ("browse", "crop", "segment", "scalebar", "inpaint", "train", "inspect", "export"):
            win.go_to_step(step)
            if step == "browse":  # the entry's tile selected: its preview and Details form show
                browse = win.panels["browse"]
                qtbot.waitUntil(lambda: browse.model.rowCount() > 0, timeout=5000)
                browse.view.setCurrentIndex(browse.model.index(0))
                qtbot.waitUntil(lambda: browse.details_form.isVisible(), timeout=5000)
            settle(qtbot, win)
            assert win.height() == size[1], (size, step, win.height())  # the window did not have to grow
            assert not cut_off(win), (size, step, cut_off(win))
            if step in ("inspect", "train"):  # with the Jobs view open (Ctrl+J) too: docked where it fits
                win.toggle_jobs()
                settle(qtbot, win)
                dock = win.jobs_dock
                assert dock.isVisible() and win.height() == size[1], (size, step, win.height())
                assert not cut_off(win) and not cut_off(dock), (size, step, "jobs", cut_off(win), cut_off(dock))
                win.grab().save(str(artifacts / f"layout_fits_{size[0]}_{step}_jobs.png"))
                win.toggle_jobs()
                settle(qtbot, win)
                dock.setFloating(False)  # as a user docks it again; the next check decides afresh
            win.grab().save(str(artifacts / f"layout_fits_{size[0]}_{step}.png"))
    # where the window has room for it, the Jobs view is docked under the step (it floated above)
    win.resize(1400, 1000)
    qtbot.waitUntil(lambda: win.height() == 1000)
    win.toggle_jobs()
    settle(qtbot, win)
    assert win.jobs_dock.isVisible() and not win.jobs_dock.isFloating() and win.height() == 1000
    assert not cut_off(win), cut_off(win)
    win.grab().save(str(artifacts / "layout_fits_1400_jobs_docked.png"))
