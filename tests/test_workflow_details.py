"""An entry's record (MicroLib's data_anns fields): save, Undo/Redo, validation, export, re-import."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from microlib_gui.core.library import Library
from microlib_gui.core.workflow import details, history
from microlib_gui.core.workflow.details import DetailsError

DOITPOMS_META = {"brief_descr": "Pearlite in a hypoeutectoid steel", "long_desc": "Etched in nital.",
                 "keywords": ["pearlite", "steel"], "category": ["Metals and alloys"], "element": ["Fe", "C"],
                 "technique": "Optical microscopy", "contributor": "A. Person", "organisation": "DoITPoMS",
                 "licence": "CC BY-NC-SA", "doitpoms_url": "https://example.invalid/12"}


def _png(path, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((64, 80)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture
def lib(tmp_path):
    """A local entry added from a file (10001) and a DoITPoMS entry with its record (12)."""
    lib = Library(tmp_path / "lib")
    lib.add_entry(_png(tmp_path / "my scan.png"))
    lib.add_entry(_png(tmp_path / "000012.png", 1), source="doitpoms", doitpoms_id=12, metadata=DOITPOMS_META)
    return lib


def test_a_local_entry_starts_empty_with_its_file_name(lib):
    d = details.inputs(lib, 10001)
    assert d.record["name"] == "microstructure10001" and d.record["original_filename"] == "my scan.png"
    assert d.record["keywords"] == [] and d.record["brief_descr"] == "" and d.edited == frozenset()
    assert list(d.record) == list(details.FIELDS)


def test_a_doitpoms_entry_is_prefilled_and_an_edit_goes_over_it(lib):
    d = details.inputs(lib, 12)
    assert d.record["keywords"] == ["pearlite", "steel"] and d.record["technique"] == "Optical microscopy"
    details.save(lib, 12, technique="SEM", keywords=["pearlite", "steel", "lamellar"])
    d = details.inputs(lib, 12)
    assert d.record["technique"] == "SEM" and d.prefill["technique"] == "Optical microscopy"
    assert d.edited == {"technique", "keywords"} and d.record["contributor"] == "A. Person"
    # the DoITPoMS value again: the edit goes, the prefill shows
    details.save(lib, 12, technique="Optical microscopy")
    assert details.inputs(lib, 12).edited == {"keywords"}


def test_save_is_one_undoable_edit_that_makes_nothing_stale(lib):
    for step in ("crop", "segment", "train", "export"):
        lib.set_step_status(10001, step, "done")
    change = details.save(lib, 10001, brief_descr="Ferrite", keywords=["ferrite", "grains"],
                          long_desc="Two lines\nof notes")
    assert change.ann_changed == {"brief_descr", "keywords", "long_desc"} and change.stale == []
    assert all(lib.get_entry(10001).steps[s] == "done" for s in ("crop", "segment", "train", "export"))
    again = details.save(lib, 10001, brief_descr="Ferrite")  # the same value: no new Undo step
    assert not again.changed
    history.undo(lib, 10001)
    assert details.inputs(lib, 10001).record["brief_descr"] == "" and details.inputs(lib, 10001).record["keywords"] == []
    assert not history.can_move(lib, 10001, -1)
    history.redo(lib, 10001)
    rec = details.inputs(lib, 10001).record
    assert rec["brief_descr"] == "Ferrite" and rec["long_desc"] == "Two lines\nof notes"


@pytest.mark.parametrize("fields,needle", [
    ({"colour": "red"}, "unknown field 'colour'"),
    ({"name": "x"}, "folder name"),
    ({"data_type": "colour"}, "Segment step"),
    ({"original_filename": "x.png"}, "file the entry was added from"),
    ({"keywords": "a, b"}, "takes a list"),
    ({"keywords": ["ok", 3]}, "takes text"),
    ({"technique": "SEM\nTEM"}, "one line"),
    ({"brief_descr": "bad\x00"}, "control character"),
    ({"brief_descr": "x\udc80"}, "lone surrogate"),
    ({"long_desc": "x" * 20_001}, "at most 20000"),
    ({}, "nothing to save"),
])
def test_bad_fields_and_values_are_refused_in_one_line(lib, fields, needle):
    before = lib.get_annotations(10001)
    with pytest.raises(DetailsError, match=needle) as info:
        details.save(lib, 10001, **fields)
    assert "\n" not in str(info.value)
    assert lib.get_annotations(10001) == before


def test_export_writes_the_record_for_local_and_doitpoms_entries(lib, tmp_path):
    from microlib_gui.core.workflow.export import write_data_anns

    details.save(lib, 10001, brief_descr="Ferrite", keywords=["ferrite", "grains"], element=["Fe"],
                 contributor="Me", organisation="My lab", long_desc="notes")
    details.save(lib, 12, technique="SEM")
    for path in (lib.export_data_anns(tmp_path / "a" / "data_anns.json"),
                 write_data_anns(lib, [10001, 12], tmp_path / "b")):
        doc = {r["name"]: r for r in json.loads(path.read_text()).values()}
        local, dp = doc["microstructure10001"], doc["microstructure012"]
        assert local["brief_descr"] == "Ferrite" and local["keywords"] == "ferrite, grains"
        assert local["element"] == "Fe" and local["long desc"] == "notes" and local["organisation"] == "My lab"
        assert local["original_filename"] == "my scan.png"
        assert dp["technique"] == "SEM" and dp["keywords"] == "pearlite, steel" and dp["element"] == "Fe, C"
        assert dp["long desc"] == "Etched in nital." and dp["contributor"] == "A. Person"


def test_round_trip_export_then_import_into_another_library(lib, tmp_path):
    details.save(lib, 10001, brief_descr="Ferrite", keywords=["ferrite", "grains"], category=["Metals"],
                 long_desc="Line one\nline two")
    details.save(lib, 12, technique="SEM")
    out = lib.export_data_anns(tmp_path / "data_anns.json")
    other = Library(tmp_path / "other")
    other.add_entry(_png(tmp_path / "copy.png"))  # the same entry id, from a file of another name
    other.add_entry(_png(tmp_path / "000012.png", 1), source="doitpoms", doitpoms_id=12)
    details.save(other, 10001, brief_descr="to be replaced", contributor="kept")
    assert other.import_data_anns(out) == 2
    for eid in (10001, 12):
        got, want = details.inputs(other, eid).record, details.inputs(lib, eid).record
        assert {k: v for k, v in got.items() if k != "contributor"} == \
               {k: v for k, v in want.items() if k != "contributor"}
    # the file's values replace the edit (undoably); the file names every field, so the contributor too
    assert details.inputs(other, 10001).record["contributor"] == ""
    history.undo(other, 10001)
    assert details.inputs(other, 10001).record["brief_descr"] == "to be replaced"


def test_import_leaves_fields_the_file_does_not_name(lib, tmp_path):
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"1": {"name": "microstructure012", "brief_descr": "Renamed",
                                   "keywords": ["a", "b"]}}))
    assert lib.import_data_anns(f) == 1
    rec = details.inputs(lib, 12).record
    assert rec["brief_descr"] == "Renamed" and rec["keywords"] == ["a", "b"]
    assert rec["technique"] == "Optical microscopy" and rec["element"] == ["Fe", "C"]


def test_records_of_every_entry_in_one_read(lib):
    details.save(lib, 10001, keywords=["ferrite"])
    recs = details.records(lib)
    assert set(recs) == {10001, 12} and recs[10001]["keywords"] == ["ferrite"]
    assert recs[12]["technique"] == "Optical microscopy"
