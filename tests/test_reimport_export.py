"""A library's own annotation export imports again: into itself (no change) and into another library.

``microlib library export`` names a local entry's record by the entry's original
(``microstructure10005_original.png``), not by a DoITPoMS id; these tests walk that
file back in, through the store and through the ``microlib`` command, and check
that an export never silently replaces the files of an earlier one.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from microlib_gui.core.errors import AnnotationError

#: What MicroLib's annotation file holds of an entry, as the tests annotate it.
ANNS = {
    12: {"crop": [2, 3, 100, 90], "phases": [0, 255], "vox_size": 0.25, "barbox": [[5, 100], [60, 120]]},
    10002: {"crop": [0, 0, 150, 140], "phases": [0, 128, 255], "vox_size": 0.1, "barbox": [[1, 2], [30, 12]]},
    10005: {"crop": [10, 10, 120, 110], "phases": [30, 200], "vox_size": 1.5, "barbox": [[0, 110], [40, 127]]},
}


def _png(path, seed: int, size: int = 128):
    a = (np.random.default_rng(seed).random((size, size)) * 255).astype(np.uint8)
    Image.fromarray(a).save(path)
    return path


@pytest.fixture
def source(tmp_path, demo_library):
    """Library A: the demo entries, DoITPoMS micrograph 12 and a local image (entry 10005), annotated."""
    lib = demo_library
    lib.add_entry(_png(tmp_path / "dp12.png", 1), source="doitpoms", doitpoms_id=12)
    local = lib.add_entry(_png(tmp_path / "mine.png", 2))
    assert local.id == 10005
    for eid, ann in ANNS.items():
        lib.set_annotations(eid, ann)
    return lib


def _versions(lib) -> dict[int, int]:
    con = sqlite3.connect(lib.root / "library.sqlite")
    try:
        return dict(con.execute("SELECT id, ann_version FROM entries"))
    finally:
        con.close()


def _microlib_part(ann: dict) -> dict:
    return {k: ann[k] for k in ("crop", "phases", "vox_size", "barbox") if k in ann}


# -- the store ----------------------------------------------------------------------------------------
def test_own_export_imports_into_the_same_library_without_a_change(source, tmp_path):
    out = source.export_microlib_anns(tmp_path / "out" / "microlib_anns.json")
    doc = json.loads(out.read_text())
    # what the export writes: the entries' own file names, no DoITPoMS id for a local entry
    assert {r["data_path"] for r in doc.values()} == {"microstructure012_original.png",
                                                      "microstructure10002_original.png",
                                                      "microstructure10005_original.png"}
    before_ann, before_ver = source.current_annotations_many(), _versions(source)
    res = source.import_microlib_anns(out)
    assert sorted(res["applied"]) == [12, 10002, 10005]
    assert res["added"] == res["pending"] == res["not_applied"] == res["renamed"] == []
    assert source.current_annotations_many() == before_ann  # no data_path or key added
    assert _versions(source) == before_ver  # no Undo step either
    # with the library itself as the images folder: the same pictures, so the same entries
    res = source.import_microlib_anns(out, images_dir=source.root)
    assert sorted(res["applied"]) == [12, 10002, 10005] and res["added"] == []
    assert _versions(source) == before_ver
    assert json.loads(source.export_microlib_anns(tmp_path / "again.json").read_text()) == doc


@pytest.mark.parametrize("layout", ["library", "flat"])
def test_own_export_into_a_fresh_library_with_the_images_adds_the_entries(source, library, tmp_path, layout):
    out = source.export_microlib_anns(tmp_path / "microlib_anns.json")
    if layout == "library":  # entry folders microstructureNNN/ (the library's own, or an export's)
        images = source.root
    else:  # the images themselves, under the names the file gives
        images = tmp_path / "images"
        images.mkdir()
        for e in source.list_entries():
            shutil.copy(source.original_path(e.id), images)
    res = library.import_microlib_anns(out, images_dir=images)
    assert sorted(res["added"]) == sorted(res["applied"]) == [12, 10002, 10005] and res["not_applied"] == []
    for eid, ann in ANNS.items():
        assert _microlib_part(library.get_annotations(eid)) == ann
        assert (library.original_path(eid).read_bytes() == source.original_path(eid).read_bytes())
    assert library.get_entry(12).doitpoms_id == 12 and library.get_entry(12).source == "doitpoms"
    assert library.get_entry(10005).source == "local" and library.get_entry(10005).doitpoms_id is None
    assert sorted(e.id for e in library.list_entries()) == [12, 10002, 10005]  # only those annotated
    # and its export is the first library's, record for record
    again = json.loads(library.export_microlib_anns(tmp_path / "again.json").read_text())
    assert again == json.loads(out.read_text())


def test_without_the_images_a_local_entry_of_another_library_is_not_applied(source, library, tmp_path):
    out = source.export_microlib_anns(tmp_path / "microlib_anns.json")
    res = library.import_microlib_anns(out)
    assert res["pending"] == [12]  # a DoITPoMS micrograph waits for its download, as before
    assert [r["entry"] for r in res["not_applied"]] == ["microstructure10002", "microstructure10005"]
    assert res["not_applied"][1]["reason"].startswith("local entry microstructure10005 is not in this library")
    assert library.list_entries() == [] and res["applied"] == res["added"] == []
    # an images folder without its image says so
    empty = tmp_path / "empty"
    empty.mkdir()
    res = library.import_microlib_anns(out, images_dir=empty)
    assert "empty holds no image of it" in res["not_applied"][0]["reason"]


def test_another_picture_under_the_same_number_is_added_beside_it(source, tmp_path):
    """Every library numbers its local entries from 10001: the image tells whose 10005 it is."""
    from microlib_gui.core.demo import ensure_demo_entries
    from microlib_gui.core.library import Library

    out = source.export_microlib_anns(tmp_path / "microlib_anns.json")
    other = Library(tmp_path / "other")
    ensure_demo_entries(other)
    theirs = other.add_entry(_png(tmp_path / "theirs.png", 99))
    assert theirs.id == 10005
    other.set_annotations(10005, {"vox_size": 7.0})
    res = other.import_microlib_anns(out, images_dir=source.root)
    assert res["moved"] == [{"key": "10005", "entry": "microstructure10005", "as": "microstructure10006"}]
    assert sorted(res["added"]) == [12, 10006]  # the demo entry 10002 is the same picture: applied to it
    assert sorted(res["applied"]) == [12, 10002, 10006]
    assert other.get_annotations(10005) == {"vox_size": 7.0}  # theirs untouched
    assert _microlib_part(other.get_annotations(10006)) == ANNS[10005]
    assert other.original_path(10006).read_bytes() == source.original_path(10005).read_bytes()


@pytest.mark.parametrize("data_path", ["mine.png", "microstructure10005.png", "microstructure_original.png",
                                       "microstructure0_original.png", "microstructure99999999_original.png"])
def test_a_data_path_naming_neither_refuses_the_whole_file(source, tmp_path, data_path):
    doc = json.loads(source.export_microlib_anns(tmp_path / "a.json").read_text())
    doc["zz"] = {"data_path": data_path, "vox_size": 3.0}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    before = _versions(source)
    with pytest.raises(AnnotationError, match=r"entry 'zz': cannot read a DoITPoMS micrograph id .* or an entry's "
                                              r"file name"):
        source.import_microlib_anns(bad)
    assert _versions(source) == before


def test_two_records_for_one_entry_and_a_corrupt_image_refuse_everything(source, library, tmp_path):
    f = tmp_path / "two.json"
    f.write_text(json.dumps({"a": {"data_path": "microstructure10005_original.png"},
                             "b": {"data_path": "x/microstructure10005_original.tif"}}))
    with pytest.raises(AnnotationError, match="'a' and 'b' both name entry microstructure10005"):
        source.import_microlib_anns(f)
    out = source.export_microlib_anns(tmp_path / "microlib_anns.json")
    images = tmp_path / "images"
    images.mkdir()
    for e in source.list_entries():
        shutil.copy(source.original_path(e.id), images)
    (images / "microstructure10005_original.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(Exception, match="microstructure10005_original.png"):
        library.import_microlib_anns(out, images_dir=images)
    assert library.list_entries() == [] and not any(library.root.glob("microstructure*"))


# -- the command line -----------------------------------------------------------------------------------
def run(*args):
    return subprocess.run([sys.executable, "-m", "microlib_gui.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_cli_reimports_its_own_export(tmp_path):
    """The user's report: init --demo, set, export, import-anns exited 2 on its own file."""
    lib, lib2, out = tmp_path / "relib", tmp_path / "relib2", tmp_path / "reexp"
    assert run("--library", lib, "library", "init", "--demo").returncode == 0
    assert run("--library", lib, "library", "set", "10001", "brief_descr=my sample").returncode == 0
    r = run("--library", lib, "library", "export", out)
    assert r.returncode == 0, r.stderr
    r = run("--library", lib, "library", "import-anns", out / "microlib_anns.json")
    assert r.returncode == 0 and r.stderr == "" and r.stdout.startswith("1 applied, 0 entries added"), r.stderr
    # another library: the local entry is named, not applied, exit 0
    r = run("--library", lib2, "library", "import-anns", out / "microlib_anns.json")
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "1 not applied:\n  key '10001': local entry microstructure10001 is not in this library" in r.stdout
    # with the images: added as a local entry
    r = run("--library", lib2, "library", "import-anns", out / "microlib_anns.json", "--images", lib, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["added"] == [10001] and json.loads(r.stdout)["not_applied"] == []
    r = run("--library", lib2, "library", "show", "10001", "--json")
    assert json.loads(r.stdout)["source"] == "local"


def test_cli_export_refuses_to_overwrite_without_force(tmp_path):
    lib, out = tmp_path / "lib", tmp_path / "out"
    assert run("--library", lib, "library", "init", "--demo").returncode == 0
    assert run("--library", lib, "library", "export", out).returncode == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert run("--library", lib, "library", "set", "10002", "brief_descr=changed").returncode == 0
    r = run("--library", lib, "library", "export", out)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == (f"microlib: error: {out / 'data_anns.json'} exists (and microlib_anns.json): not "
                                "overwritten; choose another folder or overwrite (microlib library export --force)")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    (out / "data_anns.json").unlink()  # one of the two is enough to stop it
    r = run("--library", lib, "library", "export", out)
    assert r.returncode == 2 and "microlib_anns.json exists: not overwritten" in r.stderr
    assert not (out / "data_anns.json").exists()
    r = run("--library", lib, "library", "export", out, "--force")
    assert r.returncode == 0, r.stderr
    assert "changed" in (out / "data_anns.json").read_text()
