"""The Train step's convergence plot, its presets and a layout that stays put (issues 20-22), in the main
window as a user walks it: real window under Xvfb, real store, real training of the `check` network on
the CPU with the convergence check on."""

from __future__ import annotations

import math
import re

import pytest

from test_gui_train_flow import _one_entry_library, _train_until

pytestmark = pytest.mark.gui

NO_GPU = (False, "CPU only (2 cores; no CUDA GPU found)")


@pytest.fixture
def make_window(library_window, monkeypatch):
    def make(lib, no_gpu: bool = True):
        if no_gpu:  # what a laptop without CUDA sees, whatever this machine has
            monkeypatch.setattr("microlib_gui.gui.steps.train.detect_devices", lambda: NO_GPU)
        return library_window(lib)

    return make


def _settle():
    from PySide6.QtWidgets import QApplication

    for _ in range(3):  # layout requests are posted events
        QApplication.processEvents()


def _geometry(win, widget):
    from PySide6.QtCore import QPoint

    p = widget.mapTo(win, QPoint(0, 0))
    return (p.x(), p.y(), widget.width(), widget.height())


def _presets(train):
    combo = train.preset_combo
    return [combo.itemData(i) for i in range(combo.count()) if combo.itemData(i) is not None]


def _train_panel(make_window, qtbot, tmp_path):
    from microlib_gui.core.workflow import inpaint as wf_inpaint

    lib, eid = _one_entry_library(tmp_path / "lib")
    wf_inpaint.save_without_bar(lib, eid)
    win = make_window(lib)
    win.go_to_step("train")
    train = win.panels["train"]
    qtbot.waitUntil(train.start_btn.isEnabled, timeout=5_000)
    return win, train


def test_presets_without_a_gpu(make_window, qtbot, tmp_path, artifacts):
    from microlib_gui.core.jobs import fmt_duration
    from microlib_gui.core.slicegan.presets import PRESET_NOTES, get_preset
    from microlib_gui.core.workflow.train import estimate_seconds

    win, train = _train_panel(make_window, qtbot, tmp_path)

    # no GPU: the draft network is preselected, with its measured time and quality, and what the full
    # MicroLib network would take on this CPU and give on a GPU
    assert not train.cuda and train.preset_combo.currentData() == "draft"
    note = train.preset_note.text()
    draft = PRESET_NOTES.get("draft") or {}
    assert draft.get("cpu_minutes") is not None and draft.get("sa_error_max") is not None  # measured
    assert f"About {draft['cpu_minutes']:g} min on 2 CPU cores" in note, note
    vf, sa = (math.ceil(100 * draft[k] - 1e-9) for k in ("vf_error_max", "sa_error_max"))
    assert f"vf error ≤ {vf} %, surface area ≤ {sa} % on {len(draft['images'])} MicroLib images" in note, note
    est = fmt_duration(estimate_seconds("microlib", get_preset("microlib").iters, False))
    assert re.search(rf"The full MicroLib network: about {re.escape(est)} on this CPU \(\d+ iterations\); "
                     r"errors ≤ \d+ % on average on a GPU", note), note
    assert train.iters_spin.value() == get_preset("draft").iters
    assert train.layers_combo.currentData() == "resize"  # the draft's layers, and MicroLib's (below)
    assert train.converge_check.isChecked() == bool(get_preset("draft").converge)
    train.grab().save(str(artifacts / "train_convergence_1_draft.png"))

    # the test networks come last, labelled so
    names = _presets(train)
    assert names[:2] == ["draft", "microlib"] and names[-2:] == ["tiny", "check"]
    for n in ("tiny", "check"):
        assert "for tests" in train.preset_combo.itemText(train.preset_combo.findData(n))
    train.preset_combo.setCurrentIndex(train.preset_combo.findData("tiny"))
    assert "For tests" in train.preset_note.text()
    assert train.layers_combo.currentData() == "transpose"
    # MicroLib's network follows its preset: stop when converged on
    train.preset_combo.setCurrentIndex(train.preset_combo.findData("microlib"))
    assert train.converge_check.isChecked() and get_preset("microlib").converge
    assert train.layers_combo.currentData() == "resize"


def test_a_layout_that_stays_put(make_window, qtbot, tmp_path, artifacts):
    win, train = _train_panel(make_window, qtbot, tmp_path)
    names = _presets(train)
    assert {"microlib", "tiny", "check"} <= set(names)
    # Start and the buttons under the settings stay where they are for every network and option
    _settle()
    where = {b: _geometry(win, b) for b in (train.start_btn, train.queue_btn, train.stop_btn)}
    seen = set()
    for name in names:
        train.preset_combo.setCurrentIndex(train.preset_combo.findData(name))
        for aniso in (False, True):
            train.aniso_check.setChecked(aniso)
            for converge in (False, True):
                train.converge_check.setChecked(converge)
                for dev in ("auto", "cpu"):
                    train.device_combo.setCurrentIndex(train.device_combo.findData(dev))
                    _settle()
                    seen.add(train.estimate_label.text())
                    for b, g in where.items():
                        assert _geometry(win, b) == g, (name, aniso, converge, dev, b.text())
    assert len(seen) > 2  # the texts did change (e.g. the CPU advice for MicroLib's network)
    train.aniso_check.setChecked(False)
    train.preset_combo.setCurrentIndex(train.preset_combo.findData("microlib"))
    _settle()
    train.grab().save(str(artifacts / "train_convergence_2_microlib.png"))

    # the legends have rows of their own: they never cover the plots
    for plot in (train.loss_plot, train.conv_plot):
        view = plot.plot_item.vb.sceneBoundingRect()
        legend = plot.legend.sceneBoundingRect()
        assert legend.height() > 0 and not view.intersects(legend)


def test_plot_names_and_ticks_are_not_cut_off(make_window, qtbot, tmp_path, artifacts):
    """A user's bug: on a 1280 px screen the legends read "Wasserstei", "surface are", "best iteratio"
    and the last iteration tick was cut in half at the plot's right edge. The window is made narrow,
    wide and narrow again: the legends put fewer names in a row when they must, and more again."""
    win, train = _train_panel(make_window, qtbot, tmp_path)
    train.conv_plot.set_tolerance(0.05)  # a label that changes after layout
    for k in range(1, 11):
        train.loss_plot.add_point(100 * k, {"critic_loss": -k, "wasserstein": k, "gradient_penalty": 0.5})
        train.conv_plot.add_point(100 * k, {"vf_error": 0.3 / k, "sa_error": 0.2 / k})
    per_row = {}
    for size in ((1280, 800), (1700, 1000), (1280, 800)):
        win.resize(*size)
        _settle()
        for plot in (train.loss_plot, train.conv_plot):
            shown = plot.plot.rect()  # the plot widget's own area; what lies outside is not drawn
            for _, label in plot.legend.items:
                text = plot.plot.mapFromScene(label.item.sceneBoundingRect()).boundingRect()
                assert shown.contains(text), (size, label.text, text, shown)
            bottom = plot.plot.mapFromScene(plot.plot_item.getAxis("bottom").sceneBoundingRect()).boundingRect()
            # the last tick label is centred on the axis end: half of "1000" must fit right of it
            assert shown.right() - bottom.right() >= 10, (size, bottom, shown)
            per_row.setdefault(plot.objectName() or id(plot), []).append(plot.legend.columnCount)
        train.grab().save(str(artifacts / f"train_plots_{size[0]}.png"))
    for counts in per_row.values():  # two names a row when there is room, one when narrow
        assert counts == [1, 2, 1], per_row


def _last_check(run_out):
    from microlib_gui.core.workflow import train as wf

    return [(it, sc) for it, sc in wf.curves_of(run_out) if "vf_error" in sc][-1]


def test_convergence_plot_live_and_after_reopening(make_window, qtbot, tmp_path, artifacts, one_torch_thread):
    from microlib_gui.core.jobs import DONE
    from microlib_gui.core.slicegan.train import read_run
    from microlib_gui.core.workflow import inpaint as wf_inpaint

    lib, eid = _one_entry_library(tmp_path / "a")
    wf_inpaint.save_without_bar(lib, eid)
    other, _ = _one_entry_library(tmp_path / "b")
    win = make_window(lib)
    win.go_to_step("train")
    train = win.panels["train"]
    qtbot.waitUntil(train.start_btn.isEnabled, timeout=5_000)
    train.preset_combo.setCurrentIndex(train.preset_combo.findData("check"))
    train.device_combo.setCurrentIndex(train.device_combo.findData("cpu"))
    train.converge_check.setChecked(True)
    assert train.conv_plot.n_points() == 0

    # run 1: a target no network reaches: checks every 10 iterations, shown live, never converged
    every = {"log_every": 5, "checkpoint_every": 10, "converge_every": 10, "converge_min_iters": 10,
             "converge_patience": 1}
    train.overrides = {**every, "converge_tol": 1e-6}
    train.iters_spin.setValue(30)
    train.last_finished = None
    qtbot.mouseClick(train.start_btn, _left())
    qtbot.waitUntil(lambda: train.conv_plot.n_points() >= 1, timeout=180_000)
    if train.running:  # seen while training
        assert train.conv_status.text().startswith("Not converged yet: vf "), train.conv_status.text()
    qtbot.waitUntil(lambda: train.last_finished is not None and not train.running, timeout=180_000)
    assert train.last_finished.state == DONE
    run1 = train.selected_run()
    assert run1.iteration == 30 and train.conv_plot.n_points() == 3  # iterations 10, 20, 30
    it, sc = _last_check(run1.out)
    best = read_run(run1.out)["best_iteration"]
    assert train.conv_status.text().startswith(f"Not converged: vf {sc['vf_error'] * 100:.1f} %, surface area "
                                               f"{sc['sa_error'] * 100:.1f} % (target 0.0001 %), iteration {it}")
    assert train.conv_plot.best == best and (best == it or f"best check's, iteration {best}" in
                                             train.conv_status.text())
    assert train.conv_plot.tol_line.isVisible() and train.conv_plot.best_line.isVisible()
    train.grab().save(str(artifacts / "train_convergence_3_not_converged.png"))

    # run 2: a target met at once: it stops at the first check after the minimum, and says so
    train.overrides = {**every, "converge_tol": 50.0, "converge_s2_tol": 1.0}
    train.iters_spin.setValue(60)
    assert _train_until(qtbot, train, train.start_btn, None).state == DONE
    qtbot.waitUntil(lambda: train.runs_list.count() == 2, timeout=5_000)
    run2 = train.selected_run()
    assert run2.number == 2 and run2.iteration < 60
    assert train.conv_status.text() == f"Converged at iteration {run2.iteration}."
    assert train.iter_label.text() == f"Run 2: done, {run2.iteration} iterations (converged; 60 asked for)."
    assert train.progress.value() == train.progress.maximum()
    state = read_run(run2.out)
    assert state["converged_at"] == run2.iteration and train.conv_plot.best == state["best_iteration"]
    assert [it for it, _ in train.conv_plot.checks()] == [c["iteration"] for c in state["convergence"]]
    assert f"converged at iteration {run2.iteration}" in train.log_view.toPlainText()
    shown = (train.conv_plot.checks(), train.conv_plot.best, train.conv_status.text())
    train.grab().save(str(artifacts / "train_convergence_4_converged.png"))

    # File → Open library of another library and back: the same curve, re-read from the run's files
    win.open_library(other.root)
    qtbot.waitUntil(lambda: win.ctx.library.root == other.root, timeout=5_000)
    assert train.conv_plot.n_points() == 0 and train.conv_status.text() == ""
    win.open_library(lib.root)
    qtbot.waitUntil(lambda: win.ctx.library.root == lib.root and train.runs_list.count() == 2, timeout=5_000)
    assert (train.conv_plot.checks(), train.conv_plot.best, train.conv_status.text()) == shown
    train.runs_list.setCurrentRow(0)
    assert train.conv_plot.n_points() == 3 and train.conv_status.text().startswith("Not converged: vf ")
    train.grab().save(str(artifacts / "train_convergence_5_reopened.png"))

    # the app restarted (a new window knows nothing of the runs it did not train): run 1's sample
    # slices come back from its folder, the same as the first window shows
    seen = {k: lab.pixmap().toImage() for k, lab in train.slice_labels.items()}
    assert all(not im.isNull() for im in seen.values())
    win2 = make_window(lib)
    win2.go_to_step("train")
    train2 = win2.panels["train"]
    qtbot.waitUntil(lambda: train2.runs_list.count() == 2, timeout=5_000)
    train2.runs_list.setCurrentRow(0)
    for k, lab in train2.slice_labels.items():
        assert lab.pixmap() is not None and not lab.pixmap().isNull(), (k, lab.text())
        assert lab.pixmap().toImage() == seen[k], k
    train2.grab().save(str(artifacts / "train_convergence_6_restarted.png"))


def _left():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton
