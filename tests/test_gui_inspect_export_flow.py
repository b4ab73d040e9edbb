"""Inspect and Export as a user walks them in a real window: a one-entry library where a generator
is published while Inspect is open, a second library opened with File → Open library whose entry
has the same number, and a restart. Each test is a bug a user met (issue: "one truth for the wizard")."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from test_workflow_generate_export import curated, gen, publish

from microlib_gui.core.jobs import DONE
from microlib_gui.core.library import layout as L
from microlib_gui.core.steps import STEPS
from microlib_gui.core.workflow import export as wf_export
from microlib_gui.core.workflow import stats

pytestmark = pytest.mark.gui


def open_window(qtbot, root):
    from microlib_gui.gui.session import create_window
    from microlib_gui.gui.settings import make_settings

    win = create_window(root, make_settings(), add_demo_if_empty=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MICROLIB_SETTINGS", str(tmp_path / "settings.ini"))


def mark(win, step: str) -> str:
    return win.step_list.item(STEPS.index(step)).text()[0]


def shot(widget, path) -> None:
    """A screenshot once the layout has caught up with the last text changes."""
    QApplication.processEvents()
    widget.grab().save(str(path))


def answer_dialog(button, seen: list) -> None:
    """Answer the next modal dialog with ``button`` (recording its name), as a user would."""
    tries = [50]

    def answer():
        box = QApplication.activeModalWidget()
        if box is None:
            tries[0] -= 1
            if tries[0] > 0:
                QTimer.singleShot(100, answer)  # not up yet
            return
        seen.append(box.objectName())
        box.button(button).click()

    QTimer.singleShot(200, answer)


def test_inspect_and_export_follow_the_published_generator(qtbot, tmp_path, settings_file, artifacts,
                                                           one_torch_thread):
    from microlib_gui.core.workflow import train

    lib, eid = curated(tmp_path / "lib", tmp_path)
    win = open_window(qtbot, lib.root)
    win.go_to_step("inspect")
    insp, exp = win.panels["inspect"], win.panels["export"]
    assert win.ctx.entry_id == eid and "No generator" in insp.gen_info.text()
    assert not insp.gen_btn.isEnabled()

    # Training finishes (here through the Train step's workflow, tiny network, 2 iterations):
    # Inspect offers Generate at once, without switching entries (a one-entry library has no other).
    run = train.train_inline(lib, eid, train.run_params(train.inputs(lib, eid), preset="tiny", iters=2,
                                                        device="cpu"))
    assert run.status == "done"
    qtbot.waitUntil(lambda: insp.gen_btn.isEnabled(), timeout=5000)
    assert "run 1, 2 iterations" in insp.gen_info.text()
    assert "No volume yet" in insp.status.text()

    insp.size_spin.setValue(32)
    insp.gen_btn.click()
    qtbot.waitUntil(lambda: insp.gen_job.done, timeout=60_000)
    assert insp.gen_job.result.state == DONE, insp.gen_job.result.error
    qtbot.waitUntil(lambda: insp.status.text().startswith("✔ Volume"), timeout=5000)
    assert "from run 1, 2 iterations" in insp.status.text() and insp.view.volume_layer is not None
    assert mark(win, "inspect") == "✔" and insp.stats_btn.isEnabled()

    win.go_to_step("export")
    assert exp.out_edit.text() == str(lib.root / "export")  # the library's own folder
    exp.entry_btn.click()
    qtbot.waitUntil(lambda: exp.job.done, timeout=60_000)
    assert exp.job.result.state == DONE, exp.job.result.error
    assert exp.state.text().startswith("✔ Exported to") and mark(win, "export") == "✔"
    assert exp.table.item(0, 0).text() == "microstructure10001.tif" and exp.table.item(0, 1).text() == "✔ written"

    # A new generator is published (another run): the volume and the export are from the old one.
    win.go_to_step("inspect")
    publish(lib, eid, seed=7)
    qtbot.waitUntil(lambda: insp.status.text().startswith("↻"), timeout=5000)
    assert "run 1" in insp.status.text() and "run 2" in insp.status.text()
    assert "run 2, 2 iterations" in insp.gen_info.text()
    assert insp.view.volume_layer is None and "out of date" in insp.view.info.text()  # not shown as current
    assert insp.gen_btn.isEnabled() and not insp.stats_btn.isEnabled()
    assert mark(win, "inspect") == "↻" and mark(win, "export") == "↻"
    shot(insp, artifacts / "inspect_stale_volume.png")
    win.go_to_step("export")
    assert exp.state.text().startswith("↻ Exported to") and "volume is out of date" in exp.state.text()
    shot(exp, artifacts / "export_stale_volume.png")

    # Generated again: current again, from run 2.
    win.go_to_step("inspect")
    insp.gen_btn.click()
    qtbot.waitUntil(lambda: insp.status.text().startswith("✔ Volume"), timeout=60_000)
    assert "from run 2" in insp.status.text() and insp.view.volume_layer is not None
    insp.view.close_viewer()


def test_open_library_shows_nothing_of_the_old_one_and_export_asks_before_overwriting(
        qtbot, tmp_path, settings_file, artifacts):
    a, ea = curated(tmp_path / "A", tmp_path, name="demo-like.png")
    b, eb = curated(tmp_path / "B", tmp_path, name="my real micrograph.png")
    assert ea == eb == 10001
    win = open_window(qtbot, a.root)
    win.go_to_step("export")
    exp = win.panels["export"]
    out_a = a.root / "export"
    assert exp.out_edit.text() == str(out_a)
    exp.media_check.setChecked(False)
    exp.entry_btn.click()
    qtbot.waitUntil(lambda: exp.job.done, timeout=60_000)
    assert exp.job.result.state == DONE and exp.table.rowCount() == 11 and exp.state.text().startswith("✔")
    folder = out_a / "microstructure10001"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    anns_before = (out_a / "data_anns.json").read_bytes()

    # File → Open library B: nothing of A's export is shown, and B exports to its own folder.
    assert win.open_library(b.root)
    qtbot.waitUntil(lambda: win.ctx.entry_id == eb, timeout=5000)
    assert exp.table.rowCount() == 0 and exp.status.text() == ""
    assert exp.state.text().startswith("Not exported yet")
    assert exp.out_edit.text() == str(b.root / "export")
    shot(exp, artifacts / "export_after_open_library.png")

    # Exporting B's 10001 into A's folder: asked first; No writes nothing.
    exp.out_edit.setText(str(out_a))
    seen: list = []
    answer_dialog(QMessageBox.StandardButton.No, seen)
    exp.entry_btn.click()
    assert seen == ["exportOverwrite"] and exp.job is None
    assert "Nothing exported" in exp.status.text()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert (out_a / "data_anns.json").read_bytes() == anns_before
    assert b.get_entry(eb).steps["export"] == "todo"

    # Yes overwrites: the folder and data_anns.json are B's now, and say so.
    answer_dialog(QMessageBox.StandardButton.Yes, seen)
    exp.entry_btn.click()
    assert seen == ["exportOverwrite", "exportOverwrite"]
    qtbot.waitUntil(lambda: exp.job.done, timeout=60_000)
    assert exp.job.result.state == DONE
    manifest = wf_export.folder_manifest(folder, "microstructure10001")
    assert manifest["library"]["uuid"] == b.uuid
    assert manifest["entry"]["original_filename"] == "my real micrograph.png"
    anns = json.loads((out_a / "data_anns.json").read_text())
    assert [(r["library"], r["original_filename"]) for r in anns.values()] == [(b.uuid, "my real micrograph.png")]
    assert exp.state.text().startswith(f"✔ Exported to {folder}")

    # Back to A: its own folder again (B's choice is B's), and A's export is shown as A left it.
    assert win.open_library(a.root)
    qtbot.waitUntil(lambda: win.ctx.entry_id == ea, timeout=5000)
    assert exp.out_edit.text() == str(out_a)
    assert exp.state.text().startswith("✔ Exported to")


def test_saved_statistics_are_shown_after_a_restart(qtbot, tmp_path, settings_file, artifacts, one_torch_thread):
    lib, eid = curated(tmp_path / "lib", tmp_path)
    publish(lib, eid, seed=1)
    gen(lib, eid)
    win = open_window(qtbot, lib.root)
    win.go_to_step("inspect")
    insp = win.panels["inspect"]
    assert insp.stats_view.result is None and "No statistics" in insp.stats_view.banner.text()
    qtbot.waitUntil(lambda: insp.stats_btn.isEnabled(), timeout=5000)
    insp.stats_btn.click()
    qtbot.waitUntil(lambda: insp.stats_job.done, timeout=120_000)
    assert insp.stats_job.result.state == DONE, insp.stats_job.result.error
    assert stats.saved(lib, eid).current and insp.stats_view.result is not None
    errors = insp.stats_view.result["errors"]
    insp.view.close_viewer()
    win.close()

    # A restart: the new window shows the saved statistics when the entry is opened.
    win2 = open_window(qtbot, lib.root)
    win2.go_to_step("inspect")
    insp2 = win2.panels["inspect"]
    insp2.tabs.setCurrentIndex(1)
    assert insp2.stats_view.result is not None and insp2.stats_view.result["errors"] == errors
    assert "No statistics" not in insp2.stats_view.banner.text() and insp2.stats_view.note == ""
    shot(insp2, artifacts / "inspect_stats_after_restart.png")

    # A new volume: the saved statistics are shown as out of date.
    insp2.seed_spin.setValue(9)
    insp2.size_spin.setValue(32)
    insp2.gen_btn.click()
    qtbot.waitUntil(lambda: "earlier volume" in insp2.stats_view.note, timeout=60_000)
    assert insp2.stats_view.banner.text().startswith("↻ Out of date")
    assert lib.entry_file(eid, L.STATS_JSON.suffix).exists()
    shot(insp2, artifacts / "inspect_stats_out_of_date.png")
    insp2.view.close_viewer()
