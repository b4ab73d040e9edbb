"""View → Library report: the Figure 4 comparison built in the background and shown in a dialog."""

from __future__ import annotations

import csv

import pytest
from PySide6.QtCore import Qt

from test_stats_cli import _entry_with_files, _png_bytes

pytestmark = pytest.mark.gui


def test_library_report_dialog(qtbot, library, tmp_path, artifacts):
    from microlib_gui.gui.jobrunner import JobRunner
    from microlib_gui.gui.widgets.report_dialog import LibraryReportDialog

    a = _entry_with_files(library, 4)
    b = _entry_with_files(library, 5, vf_thr=0.52)
    c = library.add_entry(_png_bytes(6))  # nothing generated yet: skipped, named
    dlg = LibraryReportDialog(library, JobRunner())
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    out = tmp_path / "report"
    dlg.out_edit.setText(str(out))
    qtbot.mouseClick(dlg.run_btn, Qt.MouseButton.LeftButton)
    assert dlg.running() and not dlg.run_btn.isEnabled()  # in the background: the dialog stays live
    qtbot.waitUntil(lambda: not dlg.running() and dlg.result is not None, timeout=240000)
    r = dlg.result
    assert sorted(r["computed"]) == sorted([a.name, b.name])
    assert [s["name"] for s in r["skipped"]] == [c.name]
    text = dlg.status.text()
    assert "2 entries compared" in text and c.name in text
    assert (out / "library_stats.png").read_bytes()[:4] == b"\x89PNG"
    rows = {row["name"]: row for row in csv.DictReader((out / "library_stats.csv").open())}
    assert rows[a.name]["status"] == "ok" and rows[c.name]["status"].startswith("skipped")
    pix = dlg.figure.pixmap()
    assert pix is not None and not pix.isNull() and pix.width() > 300
    assert dlg.open_btn.isEnabled() and dlg.run_btn.isEnabled()
    dlg.grab().save(str(artifacts / "library_report_dialog.png"))


def test_report_menu_opens_the_dialog(qtbot, demo_library):
    from microlib_gui.gui.app import make_settings
    from microlib_gui.gui.main_window import MainWindow

    win = MainWindow(demo_library, make_settings())
    qtbot.addWidget(win)
    acts = {a.text(): a for m in win.menuBar().actions() for a in m.menu().actions()}
    act = acts["Library &report (2D vs 3D)…"]
    assert act.shortcut().toString() == "Ctrl+R"
    act.trigger()
    assert win.report_dialog.isVisible()
    assert win.report_dialog.out_edit.text().endswith("reports")
    win.report_dialog.close()
