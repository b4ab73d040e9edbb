"""File → Export annotations asks before replacing; File → Import annotations takes another library's export.

A real main window under Xvfb: the user exports library A's annotations, is asked
before the same folder is written again, then opens library B, imports A's file
(a local entry B lacks is named in a one-line box that offers the images folder),
adds it from A's folder and sees its crop in the Crop step.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.gui

CROP = [10, 12, 120, 100]


def _answer_next_box(name: str, button, seen: list, artifact=None):
    """Press ``button`` (a standard button or a button's text) in the next modal box named ``name``."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def answer():
        box = QApplication.activeModalWidget()
        if box is None or box.objectName() != name:
            QTimer.singleShot(50, answer)
            return
        seen.append((box.objectName(), box.text()))
        if artifact is not None:
            box.grab().save(str(artifact))
        target = box.button(button) if not isinstance(button, str) else next(
            b for b in box.buttons() if b.text() == button)
        target.click()

    QTimer.singleShot(50, answer)


@pytest.fixture
def source(tmp_path, demo_library):
    """Library A: the demo entries and a local image (entry 10005) with a crop and phases."""
    a = (np.random.default_rng(5).random((128, 128)) * 255).astype(np.uint8)
    Image.fromarray(a).save(tmp_path / "mine.png")
    e = demo_library.add_entry(tmp_path / "mine.png")
    demo_library.set_annotations(e.id, {"crop": CROP, "phases": [40, 210], "vox_size": 0.5})
    demo_library.set_annotations(10002, {"vox_size": 0.1})
    return demo_library


def _window(qtbot, root, tmp_path, monkeypatch):
    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "settings.ini"))
    from microlib_gui.gui.app import create_window, make_settings

    win = create_window(root, make_settings())
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    return win


def test_export_asks_before_overwriting_then_import_adds_the_other_librarys_entry(
        qtbot, source, tmp_path, monkeypatch, artifacts):
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    from microlib_gui.core.demo import ensure_demo_entries
    from microlib_gui.core.library import Library

    win = _window(qtbot, source.root, tmp_path, monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    win.export_annotations(str(out))  # an empty folder: no question
    first = (out / "microlib_anns.json").read_bytes()
    assert json.loads(first)["10005"]["crop"] == CROP
    source.set_annotations(10005, {"vox_size": 0.75})
    seen: list = []
    # No: both files stay as they were
    no, yes, ok = QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes, QMessageBox.StandardButton.Ok
    _answer_next_box("annotationsOverwrite", no, seen, artifacts / "annotations_overwrite.png")
    win.export_annotations(str(out))
    assert seen == [("annotationsOverwrite", f"{out} already holds data_anns.json and microlib_anns.json. "
                                             "Overwrite them with this library's annotations?")]
    assert (out / "microlib_anns.json").read_bytes() == first
    assert "nothing was overwritten" in win.statusBar().currentMessage()
    # Yes: replaced
    _answer_next_box("annotationsOverwrite", yes, seen)
    win.export_annotations(str(out))
    assert len(seen) == 2 and json.loads((out / "microlib_anns.json").read_text())["10005"]["vox_size"] == 0.75

    # library B: the demo entries only; its own import of A's file
    other = Library(tmp_path / "other")
    ensure_demo_entries(other)
    assert win.open_library(other.root)
    qtbot.waitUntil(lambda: win.entry_combo.count() == 4, timeout=5000)
    _answer_next_box("annotationsNotApplied", ok, seen, artifacts / "annotations_not_applied.png")
    win.import_annotations(str(out / "microlib_anns.json"))
    assert seen[2] == ("annotationsNotApplied",
                       "1 record not applied: local entry microstructure10005 is not in this library "
                       "(import with the folder of its image to add it).")
    assert "\n" not in seen[2][1]
    assert other.get_annotations(10002)["vox_size"] == 0.1  # the demo entry B has too: applied
    assert win.entry_combo.count() == 4 and "1 not applied" in win.statusBar().currentMessage()

    # again, this time adding it from A's folder through the box's button
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(source.root))
    _answer_next_box("annotationsNotApplied", "Add from images folder…", seen)
    win.import_annotations(str(out / "microlib_anns.json"))
    assert [name for name, _ in seen[3:]] == ["annotationsNotApplied"]  # the import with the images asks nothing
    qtbot.waitUntil(lambda: win.entry_combo.count() == 5, timeout=5000)
    assert other.get_entry(10005).source == "local"
    assert other.get_annotations(10005)["crop"] == CROP
    # the user picks it and looks at the Crop step: the imported box is what it shows
    win.entry_combo.setCurrentIndex(win.entry_combo.findData(10005))
    win.go(1)
    crop = win.panels["crop"]
    qtbot.waitUntil(lambda: crop.spins["w"].value() == CROP[2] - CROP[0], timeout=5000)
    assert [crop.spins[k].value() for k in "xywh"] == [10, 12, 110, 88]
    win.grab().save(str(artifacts / "annotations_imported_crop.png"))
