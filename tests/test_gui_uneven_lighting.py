"""The Segment step on an unevenly lit micrograph, in a real window: the "Uneven lighting" control.

A library with one entry (a raw-like micrograph lit from one side, from ``../shared/data``):
Auto corrects by default; turning the control off changes the histogram, the overlay and the
volume fractions at once and is saved as one edit (Undo brings the correction back); the Inpaint
step works on the corrected labels; after File → Open library the panel shows what was saved.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from microlib_gui.core.library import layout as L

pytestmark = [pytest.mark.gui, pytest.mark.shared]


@pytest.fixture
def uneven(shared_data):
    folder = shared_data / "rawlike-uneven"
    truth = np.asarray(Image.open(folder / "seg233.png"))
    bar = np.asarray(Image.open(folder / "bar233.png")) > 0
    return folder / "raw233.png", truth, bar


@pytest.fixture
def window(local_entry_window, uneven):
    return local_entry_window(uneven[0])


def accuracy(labels, truth, bar) -> float:
    a = float((labels[~bar] == truth[~bar]).mean())
    return max(a, 1 - a)


def test_uneven_lighting_control(window, qtbot, uneven, artifacts):
    win, lib = window, window.ctx.library
    _, truth, bar = uneven
    eid = win.ctx.entry_id
    win.go_to_step("segment")
    seg = win.panels["segment"]
    # Before anything is saved the control is on auto and says what it found.
    assert seg.lighting_mode() == "auto"
    assert seg.light_label.text().startswith("Corrected (light varies by")
    seg.auto_btn.click()
    ann = lib.get_annotations(eid)
    assert ann["background"] == "divide" and ann["background_mode"] == "auto"
    assert "lighting corrected" in seg.status.text()
    corrected = seg.preview.labels(seg.thresholds())
    assert accuracy(corrected, truth, bar) > 0.97  # the overlay shows the phases, not a bright and a dark side
    vf_on, hist_on = seg.vf_label.text(), seg.hist_curve.getData()[1].copy()
    saved_on = lib.entry_file(eid, L.SEGMENTED.suffix).read_bytes()
    win.grab().save(str(artifacts / "segment_uneven_lighting_corrected.png"))

    # The user picks "off" with the keyboard: histogram, overlay and fractions follow; one edit saved.
    seg.lighting.setFocus()
    qtbot.keyClick(seg.lighting, Qt.Key.Key_End)
    assert seg.lighting_mode() == "off"
    assert seg.light_label.text() == "Not corrected."
    assert seg.vf_label.text() != vf_on and not np.array_equal(seg.hist_curve.getData()[1], hist_on)
    plain = seg.preview.labels(seg.thresholds())
    assert accuracy(plain, truth, bar) < 0.8
    ann = lib.get_annotations(eid)
    assert ann.get("background") is None and ann["background_mode"] == "off"
    assert lib.entry_file(eid, L.SEGMENTED.suffix).read_bytes() != saved_on
    assert "lighting corrected" not in seg.status.text()
    win.grab().save(str(artifacts / "segment_uneven_lighting_off.png"))

    # One Undo brings the correction back: annotations, the labels file and the control.
    seg.history.undo_btn.click()
    ann = lib.get_annotations(eid)
    assert ann["background"] == "divide" and ann["background_mode"] == "auto"
    assert lib.entry_file(eid, L.SEGMENTED.suffix).read_bytes() == saved_on
    assert seg.lighting_mode() == "auto" and "lighting corrected" in seg.status.text()
    assert np.array_equal(seg.preview.labels(seg.thresholds()), corrected)

    # The Inpaint step works on the corrected labels.
    win.go_to_step("inpaint")
    inp = win.panels["inpaint"]
    saved = np.asarray(Image.open(lib.entry_file(eid, L.SEGMENTED.suffix))) > 127
    assert np.array_equal(inp.inputs.image.labels > 0, saved)
    assert accuracy(saved.astype(np.uint8), truth, bar) > 0.97

    # File → Open library (the same folder again): the panel shows what was saved.
    win.go_to_step("segment")
    assert win.open_library(lib.root)
    seg = win.panels["segment"]
    assert win.ctx.entry_id == eid
    assert seg.lighting_mode() == "auto" and "lighting corrected" in seg.status.text()
    assert np.array_equal(seg.preview.labels(seg.thresholds()), corrected)
    win.grab().save(str(artifacts / "segment_uneven_lighting_reopened.png"))
