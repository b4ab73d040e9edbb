"""The Inpaint step of an entry (core.workflow.inpaint): inputs from annotations or files, results saved."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from microlib_gui.core.inpaint import InpaintError, inpaint
from microlib_gui.core.library.layout import INPAINT_GIF, INPAINTED
from microlib_gui.core.workflow import inpaint as wf
from microlib_gui.core.workflow import segment as seg_step

INPAINTED_SUFFIX, GIF_SUFFIX = INPAINTED.suffix, INPAINT_GIF.suffix
entry_inputs = wf.inputs


@pytest.fixture
def raw612(library, shared_data):
    raw = shared_data / "rawlike"
    man = json.loads((raw / "manifest.json").read_text())["612"]
    e = library.add_entry(raw / "raw612.png")
    return library, e.id, man, raw


def test_inputs_from_microlib_annotations(raw612):
    library, eid, man, raw = raw612
    (x0, y0, x1, y1) = man["bar"]["box_xyxy"]
    library.set_annotations(eid, {"phases": [round(v) for v in man["phase_levels"]],
                                  "barbox": [[x0 - 2, y0 - 2], [x1 + 2, y1 + 2]],
                                  "barcol": [int(np.mean(man["bar"]["colour"])), 200]})
    inp = entry_inputs(library, eid)
    seg = np.array(Image.open(raw / "seg612.png"))
    bar = np.array(Image.open(raw / "bar612.png")) > 0
    assert inp.image.kind == "labels" and inp.inputs == ["_original.png"]
    rank = np.argsort(np.argsort(man["phase_levels"]))  # phase k is the k-th darkest, as in the Segment step
    assert (inp.image.labels == rank[seg]).mean() > 0.95
    assert inp.mask is not None and (inp.mask & bar).sum() / (inp.mask | bar).sum() > 0.5


def test_mask_file_wins_and_must_fit(raw612):
    library, eid, man, raw = raw612
    inp = entry_inputs(library, eid)
    assert inp.image.kind == "gray" and inp.mask is None  # no phases, no bar marked yet
    library.write_file(eid, "_mask.png", (raw / "bar612.png").read_bytes(), produced_by="test")
    inp = entry_inputs(library, eid)
    assert inp.mask.sum() == (np.array(Image.open(raw / "bar612.png")) > 0).sum()
    assert inp.inputs == ["_original.png", "_mask.png"]
    library.set_annotations(eid, {"crop": [0, 0, 300, 300]})  # the mask no longer fits the cropped image
    with pytest.raises(InpaintError, match="mask is 435x384 px but the image is 300x300 px"):
        entry_inputs(library, eid)


def test_save_result_marks_step_and_provenance(raw612):
    library, eid, man, raw = raw612
    library.set_annotations(eid, {"phases": [round(v) for v in man["phase_levels"]]})
    library.write_file(eid, "_mask.png", (raw / "bar612.png").read_bytes(), produced_by="test")
    library.set_step_status(eid, "train", "done")
    inp = entry_inputs(library, eid)
    res = inpaint(inp.image, inp.mask, method="fast")
    change = wf.save(library, eid, res, inp, {"method": "fast"})
    assert change.files_changed == {INPAINTED_SUFFIX, GIF_SUFFIX}
    assert [r["files"] for r in library.runs(eid, kind="inpaint")] == [
        [library.entry_file(eid, INPAINTED_SUFFIX).name, library.entry_file(eid, GIF_SUFFIX).name]]
    out = np.array(Image.open(library.entry_file(eid, INPAINTED_SUFFIX)))
    assert np.array_equal(out[~inp.mask], inp.image.original[~inp.mask])
    e = library.get_entry(eid)
    assert e.steps["inpaint"] == "done" and e.steps["train"] == "stale"
    assert not library.is_stale(eid, INPAINTED_SUFFIX)
    library.write_file(eid, "_mask.png", np.zeros(1, np.uint8).tobytes(), produced_by="test")
    assert library.is_stale(eid, INPAINTED_SUFFIX)  # its mask changed


def test_training_image_is_what_the_segment_step_saved(raw612):
    """The Segment step's save and the Inpaint step's input come from one derivation."""
    library, eid, man, raw = raw612
    library.set_annotations(eid, {"crop": [10, 5, 400, 300]})
    seg_step.save(library, eid, thresholds=[100.0], deblur_sigma=1.0)
    saved = np.array(Image.open(library.entry_file(eid, "_segmented.png"))) > 0
    inp = entry_inputs(library, eid)
    assert inp.image.kind == "labels" and inp.image.shape == (295, 390)
    assert np.array_equal(inp.image.labels.astype(bool), saved)
    assert "_segmented.png" in inp.inputs


def test_entry_without_bar_saves_the_crop(raw612):
    library, eid, man, raw = raw612
    library.set_annotations(eid, {"crop": [0, 0, 200, 150], "data_type": "grayscale"})
    inp = entry_inputs(library, eid)
    assert inp.mask is None
    with pytest.raises(InpaintError, match="nothing to inpaint"):
        wf.job(None, inp)
    wf.save_without_bar(library, eid, inp)
    out = np.array(Image.open(library.entry_file(eid, INPAINTED_SUFFIX)))
    assert out.shape == (150, 200) and np.array_equal(out, inp.image.original)
    assert library.get_entry(eid).steps["inpaint"] == "done"
