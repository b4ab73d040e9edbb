"""Train → Inspect → Export from the GUI panels (real window under Xvfb, real training on the CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _labels_png(lib, entry_id):
    from microlib_gui.core.demo import CATALOG, render_micrograph
    from microlib_gui.core.images import save_png

    _, labels, _ = render_micrograph(CATALOG[0])
    lib.write_file(entry_id, "_inpainted.png", writer=lambda p: save_png(p, (labels * 255).astype(np.uint8)),
                   produced_by="test")


def test_train_stop_resume_generate_view_export(qtbot, demo_library, artifacts, tmp_path):
    import tifffile
    from PIL import Image

    from microlib_gui.core import media
    from microlib_gui.core.export import read_voxel_size
    from microlib_gui.core.jobs import CANCELLED, DONE
    from microlib_gui.core.slicegan.fileformat import load_generator
    from microlib_gui.gui.context import AppContext
    from microlib_gui.gui.steps.export import Panel as ExportPanel
    from microlib_gui.gui.steps.inspect import Panel as InspectPanel
    from microlib_gui.gui.steps.train import Panel as TrainPanel
    from PySide6.QtCore import QTimer, Qt
    from PySide6.QtWidgets import QApplication, QMessageBox

    lib = demo_library
    entries = lib.list_entries()
    e, other = entries[0], entries[1]
    _labels_png(lib, e.id)
    lib.set_annotations(e.id, {"vox_size": 0.25})
    ctx = AppContext(lib)

    # -- Train -------------------------------------------------------------------------
    train = TrainPanel(ctx)
    qtbot.addWidget(train)
    train.resize(1300, 850)
    train.show()
    ctx.set_entry(other.id)
    assert "Inpaint step must be done first" in train.image_info.text()
    assert not train.start_btn.isEnabled()
    ctx.set_entry(e.id)
    assert "_inpainted.png" in train.image_info.text() and train.start_btn.isEnabled()
    # MicroLib's network (without a GPU the Draft network is preselected: test_gui_train_convergence.py)
    train.preset_combo.setCurrentIndex(train.preset_combo.findData("microlib"))
    assert "about" in train.estimate_label.text()
    if not train.cuda:  # MicroLib's network for 5000 iterations on a CPU: days, and the panel says what helps
        assert "GPU machine" in train.estimate_label.text()
        # ... and asks before starting such a run; Cancel starts nothing
        seen = []

        def answer():
            box = QApplication.activeModalWidget()
            seen.append(box.objectName() if box else None)
            if box:
                box.button(QMessageBox.StandardButton.Cancel).click()

        QTimer.singleShot(300, answer)
        assert train.start() is None
        assert seen == ["longCpuRun"] and not train.active and not train.running
    # the augmentation box follows the network's default, and is off for three images
    assert train.augment_check.isChecked() and train.augment_check.isEnabled()
    train.preset_combo.setCurrentIndex(train.preset_combo.findData("tiny"))
    assert not train.augment_check.isChecked()
    train.aniso_check.setChecked(True)
    assert not train.augment_check.isEnabled()
    train.aniso_check.setChecked(False)
    train.augment_check.setChecked(True)
    train.device_combo.setCurrentIndex(train.device_combo.findData("cpu"))
    train.iters_spin.setValue(4)
    train.overrides = {"log_every": 1, "checkpoint_every": 1}
    qtbot.mouseClick(train.start_btn, Qt.MouseButton.LeftButton)
    assert train.running and train.stop_btn.isEnabled()
    qtbot.waitUntil(lambda: train.loss_plot.n_points() >= 1, timeout=150_000)
    assert "iteration 1 / 4" in train.iter_label.text() or "iteration 2 / 4" in train.iter_label.text()
    assert train.progress.value() >= 1 and "ETA" in train.eta_label.text()
    assert not train.slice_labels["slice_x"].pixmap().isNull()
    qtbot.mouseClick(train.stop_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: train.last_finished is not None, timeout=60_000)
    assert train.last_finished.state == CANCELLED
    # a stopped run is not published: it keeps its checkpoint for Resume
    assert not lib.entry_file(e.id, "_Gen.pt").exists() and not lib.entry_file(e.id, "_Disc.pt").exists()
    runs = lib.runs(e.id, kind="train")
    assert runs[-1]["status"] == "stopped" and train.runs_list.item(0).text().startswith("run 1 · stopped")
    assert train.eta_label.text() == ""
    run_json = json.loads((Path(runs[-1]["params"]["out"]) / "run.json").read_text())
    assert 1 <= run_json["iteration"] < 4
    assert run_json["preset"]["augment"] is True  # the box reached the training job
    assert "started run" in train.log_view.toPlainText()

    n_before = train.loss_plot.n_points()
    assert train.resume_btn.isEnabled()
    qtbot.mouseClick(train.resume_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: train.last_finished is not None and not train.running, timeout=150_000)
    assert train.last_finished.state == DONE, train.last_finished.error
    assert train.last_finished.result["iteration"] == 4
    assert train.loss_plot.n_points() == 4 and n_before < 4  # the same run's curves, continued
    assert lib.get_entry(e.id).steps["train"] == "done"
    assert [r["status"] for r in lib.runs(e.id, kind="train")] == ["done"]  # Resume continued run 1
    assert train.runs_list.count() == 1 and train.runs_list.item(0).text() == "run 1 · done · 4 it"
    assert "run 1, 4 iterations" in train.generator_info.text()
    assert train.confirm_close()  # nothing running: no question
    G, meta = load_generator(lib.entry_file(e.id, "_Gen.pt"))
    assert meta["imtype"] == "nphase"
    train.grab().save(str(artifacts / "train_panel.png"))

    # -- Inspect -------------------------------------------------------------------------
    ctx.set_entry(None)
    insp = InspectPanel(ctx)
    qtbot.addWidget(insp)
    insp.resize(1300, 850)
    insp.show()
    ctx.set_entry(e.id)
    assert insp.gen_btn.isEnabled()
    insp.size_spin.setValue(48)
    qtbot.mouseClick(insp.gen_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: insp.gen_job.done, timeout=60_000)
    assert insp.gen_job.result.state == DONE, insp.gen_job.result.error
    assert insp.status.text().startswith("✔ Volume") and "run 1, 4 iterations" in insp.status.text()
    assert insp.view.volume_layer is not None and insp.view.phases == [0, 1]
    assert "48 × 48 × 48" in insp.view.info.text() and "0.25 µm" in insp.view.info.text()
    insp.view.set_ndisplay(3)
    assert insp.view.viewer.dims.ndisplay == 3
    qtbot.wait(300)
    shot = insp.view.grab_canvas()
    Image.fromarray(shot).save(artifacts / "inspect_napari_3d.png")
    rgb = shot[..., :3].astype(int)
    background = np.all(rgb == rgb[0, 0], axis=-1)
    assert 0.1 < (~background).mean() < 0.98, "3D canvas is blank"
    # the volume's phase colours are on screen (shaded): hue of phase 1 (yellow) present
    yellow = (rgb[..., 0] > 90) & (rgb[..., 1] > 70) & (rgb[..., 2] < 0.6 * rgb[..., 0])
    assert yellow.mean() > 0.02
    # hiding phase 1 changes the picture; the isosurface adds a layer
    insp.view.set_phase_visible(1, False)
    qtbot.wait(200)
    hidden = insp.view.grab_canvas()[..., :3].astype(int)
    assert np.abs(hidden - rgb).mean() > 2
    insp.view.set_phase_visible(1, True)
    with qtbot.waitSignal(insp.view.surface_changed, timeout=120_000):
        insp.view.show_isosurface(1)  # computed in a worker process; the layer comes when it is done
    assert insp.view.surface_layer is not None and len(insp.view.viewer.layers) == 2
    insp.view.set_rendering("translucent")
    assert insp.view.volume_layer.rendering == "translucent"
    insp.view.set_ndisplay(2)
    insp.grab().save(str(artifacts / "inspect_panel.png"))

    # -- Export --------------------------------------------------------------------------
    exp = ExportPanel(ctx)
    qtbot.addWidget(exp)
    exp.show()
    out = tmp_path / "export"
    exp.out_edit.setText(str(out))
    qtbot.mouseClick(exp.entry_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: exp.job.done, timeout=120_000)
    assert exp.job.result.state == DONE, exp.job.result.error
    assert exp.state.text().startswith(f"✔ Exported to {out}")
    assert exp.table.rowCount() == 11
    statuses = {exp.table.item(i, 0).text(): exp.table.item(i, 1).text() for i in range(exp.table.rowCount())}
    folder = out / e.name
    for suffix in (".tif", ".mp4", "_long.png", "_inpainted.png", "_original.png", "_Gen.pt", "_Disc.pt",
                   "_params.data", "_meta.json"):
        assert statuses[e.name + suffix].startswith("✔"), (suffix, statuses[e.name + suffix])
    vol = tifffile.imread(folder / f"{e.name}.tif")
    assert vol.shape == (48, 48, 48)
    assert read_voxel_size(folder / f"{e.name}.tif") == pytest.approx(0.25)
    frames, _ = media.read_mp4(folder / f"{e.name}.mp4", max_frames=3)
    assert len(frames) == 3 and frames[0].std() > 10
    assert Image.open(folder / f"{e.name}_long.png").size[0] > 1000
    Image.open(folder / f"{e.name}_inpainted.png").load()
    Image.open(folder / f"{e.name}_original.png").load()
    load_generator(folder / f"{e.name}_Gen.pt")
    assert json.loads((out / "data_anns.json").read_text())["1"]["name"] == e.name
    assert lib.get_entry(e.id).steps["export"] == "done"
    assert exp.open_btn.isEnabled()
    exp.grab().save(str(artifacts / "export_panel.png"))
    exp.table.scrollToBottom()  # the generator's files, last in the table
    exp.grab().save(str(artifacts / "export_panel_generator_rows.png"))
    insp.view.close_viewer()


def test_training_time_estimate(monkeypatch):
    from microlib_gui.core.workflow import train as train_step

    monkeypatch.setattr(train_step.os, "cpu_count", lambda: 2)
    # our measurements: 0.047 s per iteration on an H100 (checkpoints included), 240 core-seconds on a CPU
    assert train_step.estimate_seconds("microlib", 5000, cuda=True) == pytest.approx(235)
    two = train_step.estimate_seconds("microlib", 5000, cuda=False)
    monkeypatch.setattr(train_step.os, "cpu_count", lambda: 8)
    assert train_step.estimate_seconds("microlib", 5000, cuda=False) == pytest.approx(two / 4)
    # a speed measured on this entry wins
    assert train_step.estimate_seconds("microlib", 100, cuda=False, measured_s_per_iter=2.0) == 200
    from microlib_gui.core.jobs import fmt_duration
    assert fmt_duration(two) == "166 h 40 min"
    # the draft preset: measured on 2 cores (9.75 min for 1500 iterations with resize layers: 0.78
    # core-seconds each); on the GPU from its FLOPs
    monkeypatch.setattr(train_step.os, "cpu_count", lambda: 2)
    assert train_step.estimate_seconds("draft", 1500, cuda=False) == pytest.approx(585)
    assert 0 < train_step.estimate_seconds("draft", 1500, cuda=True) < 60
