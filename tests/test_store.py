"""The library store: entries, annotations with undo, provenance, import/export, atomicity."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from microlib_gui.core.errors import AnnotationError, ImageError, StoreError
from microlib_gui.core.library import LOCAL_ID_START, SCHEMA_VERSION, Library


def _png(tmp_path, name="m.png", size=96, seed=0):
    a = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)
    p = tmp_path / name
    Image.fromarray(a).save(p)
    return p


def test_new_library_schema_wal(library):
    assert library.schema_version == SCHEMA_VERSION
    con = sqlite3.connect(library.root / "library.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert library.integrity_check() == "ok"


def test_add_entry_keeps_original_bytes(library, tmp_path):
    p = _png(tmp_path)
    e = library.add_entry(p)
    assert e.id == LOCAL_ID_START and e.name == f"microstructure{LOCAL_ID_START}"
    stored = library.original_path(e.id)
    assert stored.name == f"microstructure{LOCAL_ID_START}_original.png"
    assert stored.read_bytes() == p.read_bytes()
    assert e.steps["browse"] == "done" and e.steps["crop"] == "todo"
    e2 = library.add_entry(_png(tmp_path, "n.png", seed=1), source="doitpoms", doitpoms_id=7)
    assert e2.name == "microstructure007" and library.find_entry("doitpoms:7").id == 7
    with pytest.raises(StoreError, match="already entry"):
        library.add_entry(p, source="doitpoms", doitpoms_id=7)


def test_bad_image_adds_nothing(library, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(ImageError):
        library.add_entry(bad)
    assert library.list_entries() == []
    assert [p.name for p in library.root.iterdir()] == [p.name for p in library.root.iterdir() if p.name.startswith("library.sqlite")]


def test_annotations_validate_undo_redo(library, tmp_path):
    e = library.add_entry(_png(tmp_path))
    library.set_annotations(e.id, {"phases": [50, 200]})
    library.set_annotations(e.id, {"vox_size": 0.5})
    assert library.get_annotations(e.id) == {"phases": [50, 200], "vox_size": 0.5}
    assert library.undo_annotations(e.id) == {"phases": [50, 200]}
    assert library.redo_annotations(e.id) == {"phases": [50, 200], "vox_size": 0.5}
    assert library.redo_annotations(e.id) is None
    library.undo_annotations(e.id)
    library.set_annotations(e.id, {"crop": [0, 0, 80, 80]})  # drops the redo branch
    assert library.redo_annotations(e.id) is None
    assert library.get_annotations(e.id) == {"phases": [50, 200], "crop": [0, 0, 80, 80]}
    for bad in ({"vox_size": "big"}, {"crop": [10, 10, 5, 5]}, {"phases": [1e12]},
                {"data_type": "fourphase"}, {"notes": "x" * 20000}, {"vox_size": float("nan")}):
        with pytest.raises(AnnotationError):
            library.set_annotations(e.id, bad)
    assert library.get_annotations(e.id) == {"phases": [50, 200], "crop": [0, 0, 80, 80]}


def test_exclusion_and_steps(library, tmp_path):
    e = library.add_entry(_png(tmp_path))
    library.set_excluded(e.id, "anisotropic", "grains elongated")
    e = library.get_entry(e.id)
    assert e.excluded and e.exclusion_reason == "anisotropic" and e.exclusion_note == "grains elongated"
    assert library.list_entries(include_excluded=False) == []
    with pytest.raises(StoreError, match="unknown exclusion reason"):
        library.set_excluded(e.id, "ugly")
    library.set_step_status(e.id, "segment", "done")
    assert library.get_entry(e.id).steps["segment"] == "done"
    with pytest.raises(StoreError, match="invalid step status"):
        library.set_step_status(e.id, "segment", "finished")


def test_write_file_provenance_and_staleness(library, tmp_path):
    e = library.add_entry(_png(tmp_path))
    library.write_file(e.id, "_mask.png", b"mask-bytes", produced_by="scalebar", inputs=["_original.png"])
    assert not library.is_stale(e.id, "_mask.png")
    prov = {p["file"]: p for p in library.provenance(e.id)}
    assert prov[f"{e.name}_mask.png"]["inputs"][0]["file"] == f"{e.name}_original.png"
    # change the input: the derived file is stale
    library.original_path(e.id).write_bytes(_png(tmp_path, "o.png", seed=5).read_bytes())
    assert library.is_stale(e.id, "_mask.png")
    with pytest.raises(StoreError):
        library.entry_file(e.id, "/../../etc/passwd")


def test_runs(library, tmp_path):
    e = library.add_entry(_png(tmp_path))
    rid = library.start_run(e.id, "train", {"iters": 10}, seed=3)
    library.finish_run(rid, "done", {"total_s": 1.5}, [f"{e.name}_Gen.pt"])
    (run,) = library.runs(e.id)
    assert run["status"] == "done" and run["params"] == {"iters": 10} and run["seed"] == 3


def test_reopen_and_not_a_library(tmp_path):
    lib = Library(tmp_path / "l")
    lib.add_entry(_png(tmp_path))
    assert len(Library(tmp_path / "l", create=False).list_entries()) == 1
    with pytest.raises(StoreError, match="not a MicroLib Studio library"):
        Library(tmp_path / "empty", create=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file"):
        Library(tmp_path / "file")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "library.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError):
        Library(junk)


def test_microlib_annotation_file_round_trip(shared_data, tmp_path):
    src = shared_data / "microlib-prelabelled_anns.json"
    original = json.loads(src.read_text())
    assert len(original) == 79
    # Raw images for three of the entries, named as the file's data_path names them.
    images = tmp_path / "imgs"
    images.mkdir()
    for did, raw in ((1, "raw001.png"), (6, "raw006.png"), (429, "raw429.png")):
        (images / f"{did:06d}.png").write_bytes((shared_data / "rawlike" / raw).read_bytes())
    lib = Library(tmp_path / "lib")
    res = lib.import_microlib_anns(src, images_dir=images)
    assert sorted(res["added"]) == [1, 6, 429] and sorted(res["applied"]) == [1, 6, 429]
    assert len(res["pending"]) == 76
    ann = lib.get_annotations(1)
    assert ann["barbox"] == original["0"]["barbox"] and ann["vox_size"] == original["0"]["vox_size"]
    out = lib.export_microlib_anns(tmp_path / "out.json")
    again = json.loads(out.read_text())
    assert again == original  # every field of all 79 entries round-trips
    # A pending annotation is applied when that micrograph is added later.
    raw = (shared_data / "rawlike" / "raw016.png").read_bytes()
    lib.add_entry(raw, source="doitpoms", doitpoms_id=16)
    assert lib.get_annotations(16)["data_type"] == "grayscale"
    assert 16 not in lib.pending_annotations()


def test_malformed_annotation_file_is_refused_whole(library, tmp_path):
    p = tmp_path / "a.json"
    p.write_text(json.dumps({"0": {"data_path": "x/000001.png", "vox_size": 0.1},
                             "1": {"data_path": "x/000002.png", "vox_size": "huge"}}))
    with pytest.raises(AnnotationError, match="entry '1'"):
        library.import_microlib_anns(p)
    assert library.pending_annotations() == {}
    p.write_text("{not json")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        library.import_microlib_anns(p)


def test_data_anns_export_import(demo_library, tmp_path):
    out = demo_library.export_data_anns(tmp_path / "data_anns.json")
    doc = json.loads(out.read_text())
    assert len(doc) == 4
    rec = doc["1"]
    assert list(rec) == ["name", "data_type", "brief_descr", "keywords", "category", "element",
                         "technique", "long desc", "contributor", "organisation"]
    assert rec["name"] == "microstructure10001" and rec["data_type"] == "two-phase"
    rec["brief_descr"] = "renamed"
    out.write_text(json.dumps(doc))
    assert demo_library.import_data_anns(out) == 4
    assert demo_library.get_entry(10001).metadata["brief_descr"] == "renamed"


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from microlib_gui.core.library import Library
    lib = Library(sys.argv[1])
    eid = int(sys.argv[2])
    big = np.random.default_rng(0).bytes(4_000_000)
    i = 0
    while True:
        i += 1
        lib.set_annotations(eid, {"n_phases": (i % 15) + 1, "counter_note": i})
        lib.write_file(eid, "_blob.bin", big[: 1_000_000 + (i % 7) * 400_000], produced_by="test")
        print(i, flush=True)
""")


@pytest.mark.parametrize("delay", [0.6, 1.1, 1.7])
def test_kill_writer_mid_write_leaves_library_consistent(tmp_path, delay):
    lib = Library(tmp_path / "lib")
    e = lib.add_entry(_png(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(lib.root), str(e.id)],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(delay + 1.0)  # interpreter start-up + some writes
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate()
    committed = [int(x) for x in out.split()]
    assert committed, "writer committed nothing before the kill"
    lib2 = Library(tmp_path / "lib")
    assert lib2.integrity_check() == "ok"
    ann = lib2.get_annotations(e.id)
    assert ann["counter_note"] >= committed[-1]  # nothing committed is lost
    blob = lib2.entry_file(e.id, "_blob.bin")
    size = blob.stat().st_size
    assert (size - 1_000_000) % 400_000 == 0  # a complete version, never a partial file
    # An unfinished temporary may remain (it is removed once old, as another process could
    # still be writing it) but it never carries a finished file's name.
    from microlib_gui.core.atomic import clean_stale_temps

    leftovers = list(lib2.entry_dir(e.id).glob(".tmp-*"))
    assert clean_stale_temps(lib2.root, older_than_s=0) == len(leftovers)
    assert not list(lib2.entry_dir(e.id).glob(".tmp-*"))
