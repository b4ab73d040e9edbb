"""The Train step in the main window, as a user walks it: a one-entry library, Inpaint done while
Train is shown, two runs, Stop, Resume, using a stopped run's generator, and File → Open library
(real window under Xvfb, real training of the tiny network on the CPU)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_entry_library(root):
    """A fresh library with one local entry: a two-phase micrograph, thresholds chosen."""
    from microlib_gui.core.demo import CATALOG, render_micrograph
    from microlib_gui.core.images import save_png
    from microlib_gui.core.library import Library

    lib = Library(root)
    raw, _, _ = render_micrograph(CATALOG[0])
    src = root.parent / f"{root.name}-micrograph.png"
    save_png(src, raw)
    e = lib.add_entry(src, source="local")
    lib.set_annotations(e.id, {"data_type": "twophase", "thresholds": [float(np.median(raw))]})
    return lib, e.id


@pytest.fixture
def make_window(library_window):
    return library_window


def _answer_next_box(name: str, button: str, seen: list):
    """Click ``button`` in the next modal box (recording its object name and text)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    def answer():
        box = QApplication.activeModalWidget()
        if box is None:
            QTimer.singleShot(50, answer)
            return
        seen.append((box.objectName(), box.text()))
        for b in box.buttons():
            if b.text() == button:
                b.click()

    QTimer.singleShot(50, answer)


def _train_until(qtbot, train, start_click, stop_at: int | None):
    """Click ``start_click``; stop at iteration ``stop_at`` (None: let it finish); wait for the end."""
    from PySide6.QtCore import Qt

    train.last_finished = None
    qtbot.mouseClick(start_click, Qt.MouseButton.LeftButton)
    if stop_at is not None:
        qtbot.waitUntil(lambda: "ETA" in train.eta_label.text() and any(
            j.last is not None and j.last.step >= stop_at for j in train.active), timeout=180_000)
        qtbot.mouseClick(train.stop_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: train.last_finished is not None and not train.running, timeout=180_000)
    return train.last_finished


def test_train_in_a_one_entry_library_stop_resume_publish(make_window, qtbot, tmp_path, artifacts):
    from PySide6.QtCore import Qt

    from microlib_gui.core.jobs import CANCELLED, DONE
    from microlib_gui.core.library import layout as L
    from microlib_gui.core.workflow import inpaint as wf_inpaint

    lib, eid = _one_entry_library(tmp_path / "lib")
    win = make_window(lib)
    win.go_to_step("train")
    train = win.panels["train"]
    assert win.ctx.entry_id == eid
    assert "The Inpaint step must be done first" in train.image_info.text() and not train.start_btn.isEnabled()

    # (a) Inpaint is accepted (what the Inpaint panel's Accept calls) while Train is on screen: Start comes on
    inp = wf_inpaint.inputs(lib, eid)
    wf_inpaint.save(lib, eid, {"output": inp.image.original, "method": "fast"}, inp, {"method": "fast"})
    assert [r["kind"] for r in lib.runs(eid)] == ["inpaint"]  # the library's first run is not a training run
    qtbot.waitUntil(train.start_btn.isEnabled, timeout=5_000)
    assert f"{lib.get_entry(eid).name}_inpainted.png" in train.image_info.text()
    assert "no trained generator yet" in train.generator_info.text()
    train.grab().save(str(artifacts / "train_flow_1_ready.png"))

    # the first run of a fresh library is run 1, and it finishes: published
    train.preset_combo.setCurrentIndex(train.preset_combo.findData("tiny"))
    train.device_combo.setCurrentIndex(train.device_combo.findData("cpu"))
    train.overrides = {"log_every": 1, "checkpoint_every": 1}
    train.iters_spin.setValue(2)
    assert train.layers_combo.currentData() == "transpose"  # the tiny preset's own layers
    train.layers_combo.setCurrentIndex(train.layers_combo.findData("resize"))
    assert _train_until(qtbot, train, train.start_btn, None).state == DONE
    qtbot.waitUntil(lambda: train.runs_list.count() == 1, timeout=5_000)
    assert train.runs_list.item(0).text() == "run 1 · done · 2 it"
    assert json.loads((train.selected_run().out / "run.json").read_text())["preset"]["g_layers"] == ["resize"] * 4
    train.layers_combo.setCurrentIndex(train.layers_combo.findData("transpose"))  # back to tiny's own
    gen = lib.entry_file(eid, L.GENERATOR.suffix)
    sha = _sha(gen)
    assert "run 1, 2 iterations" in train.generator_info.text()
    lib.set_step_status(eid, "inspect", "done")  # as after generating a volume from it

    # (b) a second, longer run stopped part-way: the entry's finished generator is untouched
    train.iters_spin.setValue(60)
    assert _train_until(qtbot, train, train.start_btn, 2).state == CANCELLED
    assert train.eta_label.text() == ""  # no ETA left on screen after Stop
    qtbot.waitUntil(lambda: train.runs_list.count() == 2, timeout=5_000)
    stopped_at = train.selected_run().iteration
    assert 2 <= stopped_at < 60
    assert train.runs_list.item(1).text() == f"run 2 · stopped · {stopped_at} it of 60"
    assert _sha(gen) == sha and "run 1, 2 iterations" in train.generator_info.text()
    assert lib.get_entry(eid).steps["inspect"] == "done"
    assert "Resume continues it" in train.iter_label.text()
    assert train.resume_btn.isEnabled() and train.publish_btn.isEnabled()
    train.grab().save(str(artifacts / "train_flow_2_stopped.png"))

    # (c) each run shows its own curves and log
    train.runs_list.setCurrentRow(0)
    assert train.loss_plot.n_points() == 2
    assert "started run 1" in train.log_view.toPlainText() and "run 2" not in train.log_view.toPlainText()
    assert train.iter_label.text() == "Run 1: done, 2 iterations."
    assert not train.resume_btn.isEnabled()
    train.grab().save(str(artifacts / "train_flow_3_run1.png"))
    train.runs_list.setCurrentRow(1)
    assert train.loss_plot.n_points() == stopped_at
    assert "started run 2" in train.log_view.toPlainText() and "run 1" not in train.log_view.toPlainText()

    # Resume continues run 2: the same number, folder and curves, no new run
    out = train.selected_run().out
    assert _train_until(qtbot, train, train.resume_btn, stopped_at + 2).state == CANCELLED
    qtbot.waitUntil(lambda: train.selected_run().iteration > stopped_at, timeout=5_000)
    again = train.selected_run()
    assert train.runs_list.count() == 2 and (again.number, again.out, again.status) == (2, out, "stopped")
    assert train.loss_plot.n_points() == again.iteration
    assert f"resumed run 2 at iteration {stopped_at} of 60" in train.log_view.toPlainText()
    assert [r["number"] for r in lib.runs(eid, kind="train")] == [1, 2]
    assert _sha(gen) == sha

    # more Iterations in the form than the run's total: Resume takes the run on to them
    at = again.iteration
    train.iters_spin.setValue(80)
    assert _train_until(qtbot, train, train.resume_btn, at + 2).state == CANCELLED
    qtbot.waitUntil(lambda: train.selected_run().iteration > at, timeout=5_000)
    again = train.selected_run()
    assert (again.number, again.total) == (2, 80)
    assert f"resumed run 2 at iteration {at} of 80" in train.log_view.toPlainText()
    assert train.runs_list.item(1).text() == f"run 2 · stopped · {again.iteration} it of 80"

    # "Use this run's generator" asks first, naming both, then publishes the partial generator
    seen = []
    _answer_next_box("replaceGenerator", "Cancel", seen)
    qtbot.mouseClick(train.publish_btn, Qt.MouseButton.LeftButton)
    assert seen and seen[0][0] == "replaceGenerator" and _sha(gen) == sha
    assert "run 1, 2 iterations" in seen[0][1] and f"stopped at iteration {again.iteration} of 80" in seen[0][1]
    _answer_next_box("replaceGenerator", "Replace", seen)
    assert train.publish_selected()
    assert _sha(gen) != sha
    qtbot.waitUntil(lambda: f"run 2, stopped at iteration {again.iteration} of 80" in train.generator_info.text(),
                    timeout=5_000)
    assert lib.get_entry(eid).steps["inspect"] == "stale"  # Inspect is redone from the new generator
    assert not train.publish_btn.isEnabled()  # it is the entry's generator now
    train.grab().save(str(artifacts / "train_flow_4_published.png"))
    assert train.confirm_close()  # nothing running: no question


def test_open_library_shows_the_new_librarys_entry(make_window, qtbot, tmp_path, artifacts, one_torch_thread):
    from microlib_gui.core.workflow import inpaint as wf_inpaint
    from microlib_gui.core.workflow import train as wf

    lib_a, a = _one_entry_library(tmp_path / "a")
    wf_inpaint.save_without_bar(lib_a, a)
    wf.train_inline(lib_a, a, wf.run_params(wf.inputs(lib_a, a), preset="tiny", iters=3, device="cpu",
                                            log_every=1))
    lib_b, b = _one_entry_library(tmp_path / "b")
    win = make_window(lib_a)
    win.go_to_step("train")
    train = win.panels["train"]
    assert train.loss_plot.n_points() == 3 and train.runs_list.count() == 1
    assert "started run 1" in train.log_view.toPlainText()

    # (d) File → Open library: the new library's entry, not "No entry selected.", not the old curves
    win.open_library(lib_b.root)
    qtbot.waitUntil(lambda: win.ctx.entry_id == b and win.ctx.library.root == lib_b.root, timeout=5_000)
    assert train.image_info.text() != "No entry selected."
    assert "The Inpaint step must be done first" in train.image_info.text()
    assert train.runs_list.count() == 0 and train.loss_plot.n_points() == 0
    assert train.log_view.toPlainText() == "" and "no trained generator yet" in train.generator_info.text()
    train.grab().save(str(artifacts / "train_flow_5_open_library.png"))
    # ... and Inpaint done there, Start comes on for that entry
    wf_inpaint.save_without_bar(lib_b, b)
    qtbot.waitUntil(train.start_btn.isEnabled, timeout=5_000)
    assert f"{lib_b.get_entry(b).name}_inpainted.png" in train.image_info.text()
    assert str(lib_b.root) in wf.inputs(lib_b, b).images[0]
