"""The wizard as a user walks it, in a real window: a library with ONE entry, several steps in one
session, File → Open library — checking what each panel shows after the previous step changed the
entry. Each test is a bug a user met (issue: "one truth for the wizard")."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from microlib_gui.core.demo import CATALOG, demo_png
from microlib_gui.core.library import layout as L
from microlib_gui.core.library import Library

pytestmark = pytest.mark.gui


def one_entry_library(root, spec=CATALOG[0]) -> Library:
    lib = Library(root)
    lib.add_entry(demo_png(spec), source="local")
    return lib


@pytest.fixture
def window(local_entry_window):
    return local_entry_window(demo_png(CATALOG[0]))


def mark(win, step: str) -> str:
    from microlib_gui.core.steps import STEPS

    return win.step_list.item(STEPS.index(step)).text()[0]


def drop_line(panel, k: int, value: float) -> None:
    """What dragging threshold line ``k`` to ``value`` and releasing it does."""
    ln = panel.lines[k]
    ln.setValue(value)
    ln.sigPositionChangeFinished.emit(ln)


def prepare_entry(win, qtbot) -> int:
    """Crop (keeping the bar), Auto segment, Auto-detect the bar: what a user does first."""
    eid = win.ctx.entry_id
    win.go_to_step("crop")
    crop = win.panels["crop"]
    for k, v in zip("xywh", (4, 0, 376, 384)):
        crop.spins[k].setValue(v)
    crop._on_spins()  # what leaving the spin box does
    win.go_to_step("segment")
    seg = win.panels["segment"]
    seg.auto_btn.click()
    win.go_to_step("scalebar")
    bar = win.panels["scalebar"]
    bar.auto_btn.click()
    qtbot.waitUntil(lambda: not bar.auto_running(), timeout=30000)
    qtbot.waitUntil(lambda: win.ctx.library.get_annotations(eid).get("vox_size") is not None, timeout=5000)
    return eid


def test_segment_undo_restores_the_saved_labels_and_status(window, qtbot, artifacts):
    win, lib = window, window.ctx.library
    eid = prepare_entry(win, qtbot)
    win.go_to_step("segment")
    seg = win.panels["segment"]
    t_auto = lib.get_annotations(eid)["thresholds"]
    labels_auto = lib.entry_file(eid, L.SEGMENTED.suffix).read_bytes()
    drop_line(seg, 0, t_auto[0] + 40)
    assert lib.get_annotations(eid)["thresholds"] == [round(t_auto[0] + 40, 2)]
    assert lib.entry_file(eid, L.SEGMENTED.suffix).read_bytes() != labels_auto
    seg.history.undo_btn.click()
    # the saved file, the status line and the handle all show the threshold undone to
    assert lib.get_annotations(eid)["thresholds"] == t_auto
    assert lib.entry_file(eid, L.SEGMENTED.suffix).read_bytes() == labels_auto
    assert f"{t_auto[0]:.1f}" in seg.status.text() and f"{t_auto[0] + 40:.1f}" not in seg.status.text()
    assert seg.thresholds() == pytest.approx(t_auto)
    win.grab().save(str(artifacts / "wizard_segment_after_undo.png"))
    seg.history.redo_btn.click()
    assert f"{t_auto[0] + 40:.1f}" in seg.status.text()
    assert lib.entry_file(eid, L.SEGMENTED.suffix).read_bytes() != labels_auto


def test_inpaint_follows_a_new_segmentation(window, qtbot, artifacts):
    win, lib = window, window.ctx.library
    eid = prepare_entry(win, qtbot)
    win.go_to_step("inpaint")
    inp = win.panels["inpaint"]
    assert inp.inputs.mask is not None and inp.start_btn.isEnabled()
    inp.method.setCurrentIndex(inp.method.findData("fast"))
    inp.start_btn.click()
    qtbot.waitUntil(lambda: inp.accept_btn.isEnabled(), timeout=30000)
    old_labels = inp.inputs.image.labels.copy()
    # the user goes back and re-segments before accepting
    win.go_to_step("segment")
    seg = win.panels["segment"]
    drop_line(seg, 0, seg.thresholds()[0] + 30)
    win.go_to_step("inpaint")
    assert not inp.accept_btn.isEnabled()  # the old result is not offered any more
    assert "dropped" in inp.status.text()
    assert not np.array_equal(inp.inputs.image.labels, old_labels)  # works on the new labels
    win.grab().save(str(artifacts / "wizard_inpaint_after_resegment.png"))
    inp.start_btn.click()
    qtbot.waitUntil(lambda: inp.accept_btn.isEnabled(), timeout=30000)
    inp.accept_btn.click()
    saved = np.array(Image.open(lib.entry_file(eid, L.INPAINTED.suffix)))
    new_labels = inp.inputs.image.labels
    keep = ~inp.inputs.mask
    assert np.array_equal(saved[keep] > 0, new_labels[keep] > 0)
    assert mark(win, "inpaint") == "✔"


def test_staleness_follows_real_dependencies(window, qtbot, artifacts):
    win, lib = window, window.ctx.library
    eid = prepare_entry(win, qtbot)
    win.go_to_step("inpaint")
    inp = win.panels["inpaint"]
    inp.method.setCurrentIndex(inp.method.findData("fast"))
    inp.start_btn.click()
    qtbot.waitUntil(lambda: inp.accept_btn.isEnabled(), timeout=30000)
    inp.accept_btn.click()
    assert [mark(win, s) for s in ("crop", "segment", "scalebar", "inpaint")] == ["✔"] * 4
    # re-typing the same µm value changes nothing
    win.go_to_step("scalebar")
    bar = win.panels["scalebar"]
    before = lib.entry_signature(eid)
    bar.um.setValue(bar.um.value())
    bar.um.editingFinished.emit()
    assert lib.entry_signature(eid) == before and mark(win, "inpaint") == "✔"
    # re-segmenting makes Inpaint stale, not the Scale bar (which does not read the phases)
    win.go_to_step("segment")
    seg = win.panels["segment"]
    drop_line(seg, 0, seg.thresholds()[0] + 25)
    assert mark(win, "scalebar") == "✔" and mark(win, "inpaint") == "↻"
    win.go_to_step("inpaint")
    assert "out of date" in inp.info.text()
    win.grab().save(str(artifacts / "wizard_stale_inpaint.png"))


def test_open_library_shows_the_new_entry_everywhere(window, qtbot, tmp_path, artifacts):
    win = window
    prepare_entry(win, qtbot)
    other = one_entry_library(tmp_path / "other", CATALOG[3])  # 320 px, bar top right
    win.go_to_step("segment")
    assert win.open_library(other.root)
    eid = other.list_entries()[0].id
    assert win.ctx.entry_id == eid and win.ctx.library.root == other.root
    assert "No entry selected" not in win.entry_info.text()
    seg = win.panels["segment"]
    assert seg.gray.shape == (320, 320)  # the new entry's image, uncropped
    assert "Not segmented yet" in seg.status.text()
    for step in ("crop", "scalebar", "inpaint"):
        win.go_to_step(step)
        win.grab().save(str(artifacts / f"wizard_open_library_{step}.png"))
    assert win.panels["crop"].size_label.text() == "320 × 320 px"
    assert win.panels["scalebar"].count_label.text() == "0"
    assert "320×320" in win.panels["inpaint"].info.text()
    assert all(mark(win, s) == " " for s in ("crop", "segment", "scalebar"))


def test_a_change_made_in_another_process_shows_up(window, qtbot):
    win, lib = window, window.ctx.library
    eid = win.ctx.entry_id
    win.go_to_step("crop")
    code = ("import sys; from microlib_gui.core.library import Library; from microlib_gui.core.workflow import crop; "
            f"crop.save(Library(sys.argv[1]), {eid}, (10, 10, 210, 110), 0)")
    with qtbot.waitSignal(win.ctx.entry_changed, timeout=10000):
        subprocess.run([sys.executable, "-c", code, str(lib.root)], check=True)
    assert win.panels["crop"].size_label.text() == "200 × 100 px"
    assert mark(win, "crop") == "✔"


def test_open_library_on_a_folder_of_other_files_asks_first(window, qtbot, tmp_path):
    from test_gui_train_flow import _answer_next_box

    win = window
    old_root = win.ctx.library.root
    folder = tmp_path / "my photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"not a library")
    seen: list = []
    _answer_next_box("notALibrary", "Cancel", seen)
    assert not win.open_library(folder)
    assert [name for name, _text in seen] == ["notALibrary"] and not (folder / "library.sqlite").exists()
    assert win.ctx.library.root == old_root  # still the library the user had
    _answer_next_box("notALibrary", "Make it a library", seen)
    assert win.open_library(folder)
    assert (folder / "library.sqlite").exists() and win.ctx.library.root == folder.resolve()
    # an empty folder or an existing library opens without a question
    empty = tmp_path / "empty"
    empty.mkdir()
    assert win.open_library(empty) and win.open_library(old_root) and len(seen) == 2


def test_ctrl_j_shows_and_hides_the_jobs_dock(window, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    win = window
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=5000)
    qtbot.keyClick(win.step_list, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: win.jobs_dock is not None and win.jobs_dock.isVisible(), timeout=5000)
    qtbot.keyClick(win.step_list, Qt.Key.Key_J, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not win.jobs_dock.isVisible(), timeout=5000)


def test_a_micrograph_without_a_scale_bar_goes_on_to_training(qtbot, tmp_path, monkeypatch, shared_data, artifacts):
    """MicroLib's own training images have no bar: the scale is typed (or unknown), Inpaint keeps the image."""
    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "settings.ini"))
    from microlib_gui.gui.session import create_window
    from microlib_gui.gui.settings import make_settings

    lib = Library(tmp_path / "lib")
    eid = lib.add_entry(shared_data / "microlib" / "micro237.png", source="local").id
    win = create_window(lib.root, make_settings(), add_demo_if_empty=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    win.go_to_step("segment")
    win.panels["segment"].auto_btn.click()
    win.go_to_step("scalebar")
    bar = win.panels["scalebar"]
    bar.no_bar.setChecked(True)
    bar.typed_vox.setValue(0.5)
    bar.typed_vox.editingFinished.emit()
    ann = lib.get_annotations(eid)
    assert ann["no_bar"] is True and ann["vox_size"] == 0.5 and ann["scale_source"] == "typed"
    assert mark(win, "scalebar") == "✔" and "typed" in bar.status.text()
    win.grab().save(str(artifacts / "wizard_no_scale_bar.png"))
    win.go_to_step("inpaint")
    inp = win.panels["inpaint"]
    assert inp.inputs.mask is None and "No scale bar in this micrograph" in inp.info.text()
    inp.no_bar_btn.click()
    assert mark(win, "inpaint") == "✔"
    saved = np.array(Image.open(lib.entry_file(eid, L.INPAINTED.suffix)))
    assert np.array_equal(saved, inp.inputs.image.original)  # the segmented image as it is
    win.go_to_step("train")
    train = win.panels["train"]
    assert train.start_btn.isEnabled()
    # the scale marked unknown instead: the step stays done, the voxel size is gone
    win.go_to_step("scalebar")
    bar.scale_unknown.setChecked(True)
    ann = lib.get_annotations(eid)
    assert ann.get("vox_size") is None and ann["scale_source"] == "unknown" and mark(win, "scalebar") == "✔"
    assert mark(win, "inpaint") == "✔"  # the training image does not depend on the scale
    for p in win.panels.values():
        getattr(p, "confirm_close", lambda: True)()
