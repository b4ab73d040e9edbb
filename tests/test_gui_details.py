"""The Details editor in the Browse step, as a user walks it in the real window: a library of local
entries, edit the description and keywords of one, save, search finds it (and only it), Ctrl+Z takes
the edit back, Ctrl+Shift+Z brings it again, and File → Open library of another library and back
shows the saved record."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtCore import QItemSelection, Qt

from microlib_gui.core.demo import CATALOG, demo_png
from microlib_gui.core.library import Library
from microlib_gui.core.workflow import details

pytestmark = pytest.mark.gui


def local_library(root, images_dir, names) -> Library:
    """A library of local entries added from files (so each keeps its original file name)."""
    import io

    images_dir.mkdir(exist_ok=True)
    lib = Library(root)
    for spec, name in zip(CATALOG, names):
        path = images_dir / name
        Image.open(io.BytesIO(demo_png(spec))).save(path)
        lib.add_entry(path, source="local")
    return lib


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "settings.ini"))
    from microlib_gui.gui.session import create_window
    from microlib_gui.gui.settings import make_settings

    lib = local_library(tmp_path / "lib", tmp_path / "imgs", ["pearlite scan.png", "other.png"])
    win = create_window(lib.root, make_settings(), add_demo_if_empty=False)
    qtbot.addWidget(win)
    win.resize(1400, 950)
    win.show()
    qtbot.waitExposed(win)
    yield win
    for p in win.panels.values():
        getattr(p, "confirm_close", lambda: True)()


def select(panel, key, qtbot) -> None:
    """Click one tile (what selecting it with the mouse does to the selection model)."""
    sel = panel.view.selectionModel()
    row = next(r for r, it in enumerate(panel.model.items) if it.key == key)
    idx = panel.model.index(row)
    sel.select(QItemSelection(idx, idx), sel.SelectionFlag.ClearAndSelect)
    qtbot.waitUntil(lambda: panel._current is not None and panel._current.key == key, timeout=5000)


def visible(panel) -> set[str]:
    return {it.key for it in panel.model.items}


def test_edit_details_search_undo_and_open_library(window, qtbot, tmp_path, artifacts):
    win = window
    panel = win.panels["browse"]
    win.go_to_step("browse")
    lib = win.ctx.library
    qtbot.waitUntil(lambda: visible(panel) == {"e10001", "e10002"}, timeout=5000)
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)  # the DoITPoMS refresh (offline) ends: no later reload
    select(panel, "e10001", qtbot)
    form = panel.details_form
    assert form.isVisible() and form.labels["original_filename"].text() == "pearlite scan.png"
    assert form.edits["brief_descr"].isReadOnly() and form.edit_btn.isVisible()

    # Edit, type, Save: one edit saved in the store; the form is read-only again and shows it
    qtbot.mouseClick(form.edit_btn, Qt.MouseButton.LeftButton)
    assert not form.edits["brief_descr"].isReadOnly() and form.save_btn.isVisible()
    qtbot.keyClicks(form.edits["brief_descr"], "Pearlitic steel, etched")
    form.edits["keywords"].clear()
    qtbot.keyClicks(form.edits["keywords"], "pearlite, lamellae")
    qtbot.mouseClick(form.save_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not form.editing, timeout=5000)
    saved = details.inputs(lib, 10001).record
    assert saved["brief_descr"] == "Pearlitic steel, etched" and saved["keywords"] == ["pearlite", "lamellae"]
    assert form.edits["brief_descr"].text() == "Pearlitic steel, etched" and form.edits["brief_descr"].isReadOnly()
    assert "Description" in form.note.text()
    assert panel.model.item("e10001").title == "Pearlitic steel, etched"  # the tile shows the new description
    assert lib.get_entry(10001).steps["crop"] == "todo"  # nothing made stale

    # search by the keyword set on the local entry: only it is listed
    panel.search_edit.setText("lamellae")
    qtbot.waitUntil(lambda: visible(panel) == {"e10001"}, timeout=5000)
    qtbot.waitUntil(lambda: not panel.image_label.pixmap().isNull(), timeout=5000)  # the large image shown
    panel.grab().save(str(artifacts / "browse_details_saved_search.png"))

    # Ctrl+Z (focus in the grid): the form shows the old value, the search no longer finds the entry
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)
    panel.view.setFocus()
    qtbot.waitUntil(panel.view.hasFocus, timeout=5000)
    qtbot.keyClick(panel.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: form.edits["brief_descr"].text() == "", timeout=5000)
    assert form.edits["keywords"].text() == "" and details.inputs(lib, 10001).record["keywords"] == []
    qtbot.waitUntil(lambda: visible(panel) == set(), timeout=5000)
    qtbot.keyClick(panel.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.waitUntil(lambda: form.edits["keywords"].text() == "pearlite, lamellae", timeout=5000)
    qtbot.waitUntil(lambda: visible(panel) == {"e10001"}, timeout=5000)
    panel.search_edit.clear()

    # File → Open library of another library (its entry 10001 is another micrograph), then back
    other = local_library(tmp_path / "other", tmp_path / "imgs2", ["ferrite.png"])
    details.save(other, 10001, brief_descr="Ferrite grains")
    assert win.open_library(other.root)
    qtbot.waitUntil(lambda: visible(panel) == {"e10001"}, timeout=5000)
    assert not form.isVisible() or form.edits["brief_descr"].text() != "Pearlitic steel, etched"
    select(panel, "e10001", qtbot)
    assert form.edits["brief_descr"].text() == "Ferrite grains"
    assert form.labels["original_filename"].text() == "ferrite.png"
    assert win.open_library(lib.root)
    qtbot.waitUntil(lambda: visible(panel) == {"e10001", "e10002"}, timeout=5000)
    select(panel, "e10001", qtbot)
    assert form.edits["brief_descr"].text() == "Pearlitic steel, etched"
    assert form.edits["keywords"].text() == "pearlite, lamellae"
    assert form.labels["original_filename"].text() == "pearlite scan.png"
    win.grab().save(str(artifacts / "browse_details_after_reopen.png"))


def test_a_bad_value_is_refused_and_what_was_typed_stays(window, qtbot, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    said = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _parent, _title, text, *a, **k: said.append(text))
    panel = window.panels["browse"]
    window.go_to_step("browse")
    select(panel, "e10002", qtbot)
    form = panel.details_form
    qtbot.mouseClick(form.edit_btn, Qt.MouseButton.LeftButton)
    qtbot.keyClicks(form.edits["technique"], "SEM")
    form.edits["technique"].insert("\x01")  # pasted: a control character typed keys cannot make
    qtbot.mouseClick(form.save_btn, Qt.MouseButton.LeftButton)
    assert len(said) == 1 and "control character" in said[0] and "\n" not in said[0]
    assert form.editing and form.edits["technique"].text() == "SEM\x01"  # kept to be corrected
    assert details.inputs(window.ctx.library, 10002).record["technique"] == ""
    qtbot.mouseClick(form.cancel_btn, Qt.MouseButton.LeftButton)
    assert not form.editing and form.edits["technique"].text() == ""


def test_filters_list_and_find_local_entries_by_their_record(tmp_path):
    from microlib_gui.gui.widgets.browse_model import filter_values, merge_items

    lib = local_library(tmp_path / "lib", tmp_path / "imgs", ["a.png", "b.png"])
    details.save(lib, 10001, category=["Ceramics"], technique="SEM", element=["Zr", "O"])
    items = merge_items([], lib.list_entries(), details.records(lib))
    cats, techs, elems = filter_values(items)
    assert cats == {"Ceramics"} and techs == {"SEM"} and elems == {"Zr", "O"}
    assert [it.key for it in items if it.matches("", "Ceramics", "SEM", "Zr")] == ["e10001"]
    assert [it.key for it in items if it.matches("a.png", None, None, None)] == ["e10001"]  # its file name too
