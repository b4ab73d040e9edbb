"""The Inpaint panel in a real X server, on a raw micrograph of the shared set."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.gui


@pytest.fixture
def entry(library, shared_data):
    """raw612 with MicroLib-style annotations (phases) and the true bar mask as ``_mask.png``."""
    raw = shared_data / "rawlike"
    e = library.add_entry(raw / "raw612.png")
    man = json.loads((raw / "manifest.json").read_text())["612"]
    library.set_annotations(e.id, {"phases": [round(v) for v in man["phase_levels"]]})
    library.write_file(e.id, "_mask.png", (raw / "bar612.png").read_bytes(), produced_by="test")
    return e.id


@pytest.fixture
def panel(qtbot, library, entry):
    from microlib_gui.gui.context import AppContext
    from microlib_gui.gui.steps.inpaint import Panel

    ctx = AppContext(library)
    p = Panel(ctx)
    qtbot.addWidget(p)
    p.resize(1100, 650)
    p.show()
    qtbot.waitExposed(p)
    ctx.set_entry(entry)
    yield p
    p.confirm_close()


def test_fast_inpaint_accept(panel, qtbot, library, entry, artifacts):
    from microlib_gui.core.images import load_labels

    assert panel.inputs.image.kind == "labels" and panel.inputs.mask is not None
    assert panel.before.has_image() and panel.start_btn.isEnabled() and not panel.accept_btn.isEnabled()
    panel.method.setCurrentIndex(panel.method.findData("fast"))
    panel.start_btn.click()
    qtbot.waitUntil(lambda: panel.result is not None, timeout=30_000)
    assert panel.after.has_image() and panel.accept_btn.isEnabled()
    assert not panel.resample_btn.isEnabled()  # nothing to re-sample in a deterministic method
    panel.grab().save(str(artifacts / "inpaint_panel_fast.png"))
    panel.accept_btn.click()
    out = library.entry_file(entry, "_inpainted.png")
    assert out.exists() and library.entry_file(entry, "_inpaint.gif").exists()
    got = np.array(Image.open(out))
    m = panel.inputs.mask
    assert np.array_equal(got[~m], panel.inputs.image.original[~m])
    assert load_labels(out).max() == 1
    assert library.get_entry(entry).steps["inpaint"] == "done"
    assert library.provenance(entry)[-1]["produced_by"] == "inpaint-fast"


def test_gan_progress_stop_and_resample(panel, qtbot, library, entry, artifacts):
    panel.method.setCurrentIndex(panel.method.findData("gan"))
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    # the defaults on a CPU: a long job, and the panel says so before it starts
    assert "CPU" in panel.estimate.text() and "fast method" in panel.estimate.text()
    panel.iters.setValue(400)
    panel.batch.setValue(2)  # small: this runs on a 2-core CI machine
    panel.start_btn.click()
    assert panel.stop_btn.isEnabled() and not panel.start_btn.isEnabled()
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=120_000)
    assert "training" in panel.status.text()
    panel.stop_btn.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=60_000)
    assert "Stopped" in panel.status.text() and panel.result is None
    assert not library.entry_file(entry, "_inpainted.png").exists()
    # a short run to the end, then a re-sample with the trained generator
    panel.iters.setValue(1)
    panel.opt_iters.setValue(3)
    panel.start_btn.click()
    qtbot.waitUntil(lambda: panel.result is not None, timeout=120_000)
    assert panel.preview.has_image() and panel.resample_btn.isEnabled()
    first = panel.result
    panel.grab().save(str(artifacts / "inpaint_panel_gan.png"))
    panel.resample_btn.click()
    assert panel.seed.value() == 1
    qtbot.waitUntil(lambda: panel.result is not first and not panel.running, timeout=120_000)
    m = panel.inputs.mask
    assert np.array_equal(panel.result["output"][~m], panel.inputs.image.original[~m])
    panel.accept_btn.click()
    assert library.entry_file(entry, "_inpaint.gif").exists()
    run = library.runs(entry, kind="inpaint")[-1]["params"]
    assert run["seed"] == 1 and run["restarts"] == panel.restarts.value() and run["blend"] == panel.blend.value()


def test_microlib_raw_paste_settings(panel, qtbot):
    """One latent fit and no border join (MicroLib's own paste) reach the job and still keep
    the known pixels; both settings are for the GAN only."""
    panel.method.setCurrentIndex(panel.method.findData("fast"))
    assert not panel.restarts.isEnabled() and not panel.blend.isEnabled()
    panel.method.setCurrentIndex(panel.method.findData("gan"))
    assert panel.restarts.isEnabled() and panel.blend.isEnabled()
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    panel.iters.setValue(1)
    panel.opt_iters.setValue(2)
    panel.batch.setValue(2)
    panel.restarts.setValue(1)
    panel.blend.setValue(0.0)
    assert panel._params()["restarts"] == 1 and panel._params()["blend"] == 0.0
    panel.start_btn.click()
    qtbot.waitUntil(lambda: panel.result is not None and not panel.running, timeout=120_000)
    m = panel.inputs.mask
    assert np.array_equal(panel.result["output"][~m], panel.inputs.image.original[~m])


def test_entry_without_mask(qtbot, library, shared_data):
    from microlib_gui.gui.context import AppContext
    from microlib_gui.gui.steps.inpaint import Panel

    e = library.add_entry(shared_data / "rawlike" / "clean016.png")
    ctx = AppContext(library)
    p = Panel(ctx)
    qtbot.addWidget(p)
    p.show()
    ctx.set_entry(e.id)
    assert p.inputs.image.kind == "gray"
    assert "No scale-bar mask" in p.info.text() and not p.start_btn.isEnabled()
    # a mask written by someone else (another process, a tool): the live entry model sees the commit
    # and the panel re-reads, with nobody telling it
    with qtbot.waitSignal(ctx.entry_changed, timeout=5000):
        library.write_file(e.id, "_mask.png", (shared_data / "rawlike" / "bar016.png").read_bytes(),
                           produced_by="test")
    assert p.inputs.mask is not None and p.start_btn.isEnabled()


def test_gan_inpaint_estimate(monkeypatch):
    from microlib_gui.gui.steps import inpaint

    # the H100 measurement with the defaults, and the 2-core CPU one it is scaled from
    assert inpaint.gan_inpaint_estimate(1000, 32, 300, cuda=True) == pytest.approx(37.0)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert inpaint.gan_inpaint_estimate(300, 8, 300, cuda=False) == pytest.approx(883.0)
    assert inpaint.gan_inpaint_estimate(1000, 32, 300, cuda=False) > 3600
