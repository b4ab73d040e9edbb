"""The workflow layer headless: one transaction per save, staleness along real dependencies only,
Undo/Redo re-deriving the files of the annotations moved to."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from microlib_gui.core.demo import CATALOG, demo_png
from microlib_gui.core.library import layout as L
from microlib_gui.core.library import StagedFile
from microlib_gui.core.workflow import crop, history, scalebar, segment
from microlib_gui.core.workflow.steps import stale_steps


@pytest.fixture
def entry(library):
    """One two-phase micrograph with a white bar, every step done once."""
    e = library.add_entry(demo_png(CATALOG[0]), source="local")
    crop.save(library, e.id, (4, 0, 380, 384), 0)  # the bar (x 288-367, y 344-367) stays in the frame
    segment.save(library, e.id, thresholds=[135.0], deblur_sigma=1.0)
    original = scalebar.inputs(library, e.id).original
    h, w = original.shape
    changes = scalebar.changes_for(colour=[255.0], tol=20, bar_box=(w // 2, h - 60, w, h), length_px=80.0,
                                   value_um=20.0)
    scalebar.save(library, e.id, changes)
    for step in ("inpaint", "train", "inspect", "export"):
        library.set_step_status(e.id, step, "done")
    return e.id


def statuses(library, eid):
    return library.get_entry(eid).steps


def test_resegmenting_leaves_the_scale_bar_alone(library, entry):
    ch = segment.save(library, entry, thresholds=[150.0], deblur_sigma=1.0)
    assert ch.files_changed == {L.SEGMENTED.suffix}
    s = statuses(library, entry)
    assert s["scalebar"] == "done" and s["segment"] == "done"
    assert [k for k in ("inpaint", "train", "inspect", "export") if s[k] == "stale"] == ["inpaint", "train",
                                                                                         "inspect", "export"]


def test_the_same_value_changes_nothing(library, entry):
    sig = library.entry_signature(entry)
    versions = library.get_annotations(entry)
    ch = scalebar.save(library, entry, scalebar.changes_for(length_px=80.0, value_um=20.0))
    assert not ch.changed and ch.ann_changed == set()
    assert library.entry_signature(entry) == sig  # no write at all: the GUI sees no event
    assert library.get_annotations(entry) == versions
    assert all(v == "done" for v in statuses(library, entry).values())
    ch = crop.save(library, entry, (4, 0, 380, 384), 0.0)
    assert not ch.changed and library.entry_signature(entry) == sig


def test_a_new_voxel_size_makes_only_export_stale(library, entry):
    ch = scalebar.save(library, entry, scalebar.changes_for(length_px=80.0, value_um=25.0))
    assert ch.ann_changed == {"bar_value_um", "vox_size"} and ch.files_changed == set()
    s = statuses(library, entry)
    assert s["export"] == "stale"
    assert all(s[k] == "done" for k in ("segment", "scalebar", "inpaint", "train", "inspect"))


def test_a_new_crop_reaches_everything_made_from_it(library, entry):
    crop.save(library, entry, (0, 0, 300, 300), 0)
    s = statuses(library, entry)
    assert [k for k, v in s.items() if v == "stale"] == ["segment", "scalebar", "inpaint", "train", "inspect",
                                                         "export"]


def test_table_follows_outputs_of_stale_steps():
    # nothing reads the bar click position
    assert stale_steps("scalebar", {"bar_pick"}, set()) == []
    # the trained generator reaches Inspect and Export, not the earlier steps
    assert stale_steps("train", set(), {L.GENERATOR.suffix}) == ["inspect", "export"]


def test_undo_redo_rewrite_the_labels_file(library, entry):
    before = np.array(Image.open(library.entry_file(entry, L.SEGMENTED.suffix)))
    segment.save(library, entry, thresholds=[180.0], deblur_sigma=1.0)
    after = np.array(Image.open(library.entry_file(entry, L.SEGMENTED.suffix)))
    assert (after > 0).mean() < (before > 0).mean()
    history.undo(library, entry)
    assert library.get_annotations(entry)["thresholds"] == [135.0]
    undone = np.array(Image.open(library.entry_file(entry, L.SEGMENTED.suffix)))
    assert np.array_equal(undone, before)
    assert not library.is_stale(entry, L.SEGMENTED.suffix)
    history.redo(library, entry)
    assert np.array_equal(np.array(Image.open(library.entry_file(entry, L.SEGMENTED.suffix))), after)


def test_undo_of_a_bar_edit_rewrites_the_mask(library, entry):
    m0 = np.array(Image.open(library.entry_file(entry, L.MASK.suffix)))
    h, w = m0.shape  # a box that leaves out the right end of the bar
    scalebar.save(library, entry, scalebar.changes_for(colour=[255.0], tol=20, bar_box=(w // 2, h - 60, w - 40, h)))
    m1 = np.array(Image.open(library.entry_file(entry, L.MASK.suffix)))
    assert 0 < (m1 > 0).sum() < (m0 > 0).sum()
    history.undo(library, entry)
    assert np.array_equal(np.array(Image.open(library.entry_file(entry, L.MASK.suffix))), m0)


def test_a_refused_save_writes_nothing(library, entry):
    sig = library.entry_signature(entry)
    seg_before = library.entry_file(entry, L.SEGMENTED.suffix).read_bytes()
    with pytest.raises(Exception, match="crop"):
        crop.save(library, entry, (0, 0, 9999, 10), 0)
    bad = StagedFile(L.SEGMENTED.suffix, b"new bytes")
    with pytest.raises(Exception):
        library.complete_step(entry, "segment", annotations={"thresholds": "not numbers"}, files=[bad])
    assert library.entry_file(entry, L.SEGMENTED.suffix).read_bytes() == seg_before
    assert library.entry_signature(entry) == sig
    assert not list(library.entry_dir(entry).glob(".tmp-*"))
