"""Data integrity of what enters and leaves a library: text, key clashes, all-or-nothing imports,
ids, unreadable rows, read-only disks, file modes and long names.

Each case is a hostile or odd input of a class the store must handle in general, not only the
example that was reported.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from microlib_gui.core.errors import AnnotationError, StoreError
from microlib_gui.core.library import Library


def _png(path: Path, seed: int = 0, size: int = 96) -> Path:
    a = np.random.default_rng(seed).integers(0, 255, (size, size), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return path


def _write(path: Path, text: str) -> Path:
    """Write JSON text as it is (escapes such as \\udc80 stay escapes in the file)."""
    path.write_text(text, encoding="utf-8")
    return path


def cli(*args, cwd=None, umask=None):
    env = dict(os.environ)
    pre = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([sys.executable, "-m", "microlib_gui.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=env, cwd=cwd, preexec_fn=pre)


def one_line_exit_2(r, needle: str):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert needle in r.stderr, r.stderr


def strict_json(path: Path):
    """Parse as a strict reader would: UTF-8, no NaN/Infinity."""
    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(path.read_bytes().decode("utf-8"), parse_constant=no_constants)


# -- text: everything accepted can be exported again ------------------------------------------------
@pytest.mark.parametrize("doc, needle", [
    ('{"\\udc80k": {"data_path": "x/000001.png", "vox_size": 0.1}}', "lone surrogate"),  # the record key
    ('{"0": {"data_path": "x/000001.png", "\\udc80k": 1}}', "lone surrogate"),  # an annotation key
    ('{"0": {"data_path": "x/000001.png", "note": "ok\\ud800"}}', "lone surrogate"),  # a value
    ('{"0": {"data_path": "x/\\udcff000001.png"}}', "lone surrogate"),  # the data_path itself
    ('{"0": {"data_path": "x/000001.png", "bar\\u0007": 1}}', "control character"),
    ('{"0": {"data_path": "x/000001.png", "note": "a\\u0000b"}}', "control character"),
    ('{"0": {"data_path": "x/000001.png", "caf\\u00e9": 1, "cafe\\u0301": 2}}', "same text"),
    ('{"0": {"data_path": "x/000001.png", "note": NaN}}', "not a finite number"),
    ('{"0": {"data_path": "x/000001.png", "n_phases": 1' + "0" * 400 + '}}', "n_phases"),
    ('{"0": {"data_path": "x/000001.png", "note": ' + "[" * 70 + "]" * 70 + '}}', "nested"),
])
def test_text_that_could_not_be_exported_is_refused_and_export_still_works(tmp_path, doc, needle):
    lib = tmp_path / "lib"
    f = _write(tmp_path / "anns.json", doc)
    r = cli("--library", lib, "library", "import-anns", f)
    one_line_exit_2(r, needle)
    assert Library(lib).pending_annotations() == {}
    r = cli("--library", lib, "library", "export", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert strict_json(tmp_path / "out" / "microlib_anns.json") == {}


def test_text_is_normalised_to_nfc_on_the_way_in(library, tmp_path):
    e = library.add_entry(_png(tmp_path / "m.png"))
    library.set_annotations(e.id, {"cafe\u0301": "ne\u0301e"})  # decomposed
    assert library.get_annotations(e.id) == {"caf\u00e9": "n\u00e9e"}
    library.update_metadata(e.id, {"brief_descr": "Ferrite\u0301"})
    assert library.get_entry(e.id).metadata["brief_descr"] == "Ferrit\u00e9"
    with pytest.raises(StoreError, match="control character"):
        library.set_excluded(e.id, "anisotropic", "bad\x1bnote")
    with pytest.raises(StoreError, match="lone surrogate"):
        library.update_metadata(e.id, {"brief_descr": "x\udc80"})
    assert not library.get_entry(e.id).excluded


def test_a_file_name_with_undecodable_bytes_is_kept_printable(tmp_path):
    lib = tmp_path / "lib"
    src = tmp_path / os.fsdecode(b"scan-\xff\xfe.png")  # not UTF-8: the name holds surrogate escapes
    _png(src)
    r = cli("--library", lib, "library", "add", src)
    assert r.returncode == 0, r.stderr
    r = cli("--library", lib, "library", "show", "10001")
    assert r.returncode == 0, r.stderr
    assert "scan-\ufffd\ufffd.png" in Library(lib).get_entry(10001).metadata["original_filename"]
    r = cli("--library", lib, "library", "export", tmp_path / "out")
    assert r.returncode == 0, r.stderr


def test_a_data_anns_record_with_bad_text_refuses_the_file(demo_library, tmp_path):
    before = demo_library.get_entry(10001).metadata
    f = _write(tmp_path / "data_anns.json", json.dumps(
        {"1": {"name": "microstructure10001", "brief_descr": "fine"},
         "2": {"name": "microstructure10002", "brief_descr": "bad"}}).replace('"bad"', '"b\\udc80ad"'))
    with pytest.raises(AnnotationError, match="lone surrogate"):
        demo_library.import_data_anns(f)
    assert demo_library.get_entry(10001).metadata == before


def test_a_library_holding_bad_text_from_an_older_version_still_exports(tmp_path):
    # A pending row stored before text was checked (as the reported "\udc80k" case left it).
    lib = Library(tmp_path / "lib")
    con = sqlite3.connect(lib.root / "library.sqlite")
    con.execute("INSERT INTO pending_annotations (doitpoms_id, data, source_file, created) VALUES (?, ?, ?, ?)",
                (1, json.dumps({"data_path": "x/000001.png", "microlib_key": "\udc80k", "vox_size": 0.1}), "a.json", 0))
    con.commit()
    con.close()
    r = cli("--library", lib.root, "library", "export", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert strict_json(tmp_path / "out" / "microlib_anns.json") == {
        "\ufffdk": {"data_path": "x/000001.png", "vox_size": 0.1}}
    # and a command removes it
    r = cli("--library", lib.root, "library", "pending", "--drop", "1")
    assert r.returncode == 0, r.stderr
    assert lib.pending_annotations() == {}


# -- two records under one key: both kept, never dropped silently ------------------------------------
def test_one_key_in_two_files_for_different_micrographs_keeps_both(library, tmp_path):
    a = _write(tmp_path / "a.json", json.dumps({"0": {"data_path": "x/000001.png", "vox_size": 0.1},
                                                "1": {"data_path": "x/000003.png", "vox_size": 0.3}}))
    b = _write(tmp_path / "b.json", json.dumps({"0": {"data_path": "x/000002.png", "vox_size": 0.2}}))
    library.import_microlib_anns(a)
    res = library.import_microlib_anns(b)
    assert res["renamed"] == [{"key": "0", "micrograph": 2, "as": "2", "held_by": 1}]
    doc = strict_json(library.export_microlib_anns(tmp_path / "out.json"))
    assert {v["data_path"]: (k, v["vox_size"]) for k, v in doc.items()} == {
        "x/000001.png": ("0", 0.1), "x/000003.png": ("1", 0.3), "x/000002.png": ("2", 0.2)}
    # importing b again updates micrograph 2 under the key it was given; nothing else moves
    again = library.import_microlib_anns(b)
    assert again["renamed"][0]["as"] == "2"
    assert strict_json(library.export_microlib_anns(tmp_path / "out2.json")) == doc


def test_the_cli_says_which_key_was_renamed(tmp_path):
    lib = tmp_path / "lib"
    a = _write(tmp_path / "a.json", json.dumps({"0": {"data_path": "x/000001.png"}}))
    b = _write(tmp_path / "b.json", json.dumps({"0": {"data_path": "x/000002.png"}}))
    assert cli("--library", lib, "library", "import-anns", a).returncode == 0
    r = cli("--library", lib, "library", "import-anns", b)
    assert r.returncode == 0, r.stderr
    assert "key '0' of micrograph 2 kept as '1'" in r.stdout


def test_an_entry_keyed_by_its_id_does_not_hide_an_imported_key(library, tmp_path):
    # Micrograph 5 annotated here (no MicroLib key: exported under "5") and an imported record
    # whose key is "5" for micrograph 6: two records, two keys.
    library.add_entry(_png(tmp_path / "m.png"), source="doitpoms", doitpoms_id=5)
    library.set_annotations(5, {"vox_size": 0.5})
    library.import_microlib_anns(_write(tmp_path / "a.json", json.dumps({"5": {"data_path": "x/000006.png"}})))
    doc = strict_json(library.export_microlib_anns(tmp_path / "out.json"))
    assert sorted(v["data_path"] for v in doc.values()) == ["microstructure005_original.png", "x/000006.png"]


@pytest.mark.parametrize("doc, needle", [
    ('{"0": {"data_path": "x/000001.png", "vox_size": 0.1}, "0": {"data_path": "x/000002.png"}}',
     "appears twice"),  # a JSON parser would keep only the last
    ('{"0": {"data_path": "a/000001.png", "vox_size": 0.1}, "1": {"data_path": "b/000001.png"}}',
     "both name micrograph 1"),
])
def test_one_file_naming_one_thing_twice_is_refused(library, tmp_path, doc, needle):
    with pytest.raises(AnnotationError, match=needle):
        library.import_microlib_anns(_write(tmp_path / "a.json", doc))
    assert library.pending_annotations() == {}


def test_a_data_anns_naming_one_entry_twice_is_refused(demo_library, tmp_path):
    f = _write(tmp_path / "d.json", json.dumps({"1": {"name": "microstructure10001", "brief_descr": "one"},
                                                "2": {"name": "microstructure10001", "brief_descr": "two"}}))
    with pytest.raises(AnnotationError, match="both name 'microstructure10001'"):
        demo_library.import_data_anns(f)
    # two names of one entry: the second would replace the first without a word
    f = _write(tmp_path / "d2.json", json.dumps({"1": {"name": "10001", "brief_descr": "one"},
                                                 "2": {"name": "microstructure10001", "brief_descr": "two"}}))
    with pytest.raises(AnnotationError, match="both name entry microstructure10001"):
        demo_library.import_data_anns(f)
    assert demo_library.get_entry(10001).metadata["brief_descr"] not in ("one", "two")


# -- all or nothing ------------------------------------------------------------------------------------
def test_a_data_anns_with_a_bad_second_record_changes_nothing(demo_library, tmp_path):
    before = [e.metadata for e in demo_library.list_entries()]
    anns_before = demo_library.get_annotations(10001)
    f = _write(tmp_path / "d.json", json.dumps({
        "1": {"name": "microstructure10001", "brief_descr": "renamed"},
        "2": {"name": "microstructure10002", "brief_descr": 42}}))
    r = cli("--library", demo_library.root, "library", "import-anns", f)
    one_line_exit_2(r, "record '2'")
    assert [e.metadata for e in demo_library.list_entries()] == before
    f = _write(tmp_path / "d2.json", json.dumps({
        "1": {"name": "microstructure10001", "data_type": "two-phase"},
        "2": {"name": "microstructure10002", "data_type": "fourphase"}}))
    with pytest.raises(AnnotationError, match="record '2'"):
        demo_library.import_data_anns(f)
    assert demo_library.get_annotations(10001) == anns_before
    assert [e.metadata for e in demo_library.list_entries()] == before


def test_import_with_images_adds_nothing_when_one_image_is_corrupt(tmp_path):
    lib = tmp_path / "lib"
    images = tmp_path / "imgs"
    images.mkdir()
    _png(images / "000001.png", seed=1)
    (images / "000002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 60)  # corrupt
    _png(images / "000003.png", seed=3)
    f = _write(tmp_path / "a.json", json.dumps({str(i): {"data_path": f"x/{i + 1:06d}.png", "vox_size": 0.1}
                                                for i in range(4)}))
    r = cli("--library", lib, "library", "import-anns", f, "--images", images)
    one_line_exit_2(r, "000002.png")
    library = Library(lib)
    assert library.list_entries() == [] and library.pending_annotations() == {}
    assert sorted(p.name for p in library.root.iterdir() if not p.name.startswith("library.sqlite")) == []
    # fixed, the same command adds the three images and keeps the fourth record pending
    _png(images / "000002.png", seed=2)
    r = cli("--library", lib, "library", "import-anns", f, "--images", images, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert sorted(res["added"]) == [1, 2, 3] and res["pending"] == [4]
    assert library.get_annotations(2)["vox_size"] == 0.1


def test_annotations_imported_onto_done_steps_make_them_stale(library, tmp_path):
    e = library.add_entry(_png(tmp_path / "m.png"), source="doitpoms", doitpoms_id=1)
    library.set_annotations(e.id, {"phases": [40, 200]})
    library.set_step_status(e.id, "segment", "done")
    library.set_step_status(e.id, "inpaint", "done")
    f = _write(tmp_path / "a.json", json.dumps({"0": {"data_path": "x/000001.png", "phases": [60, 180]}}))
    library.import_microlib_anns(f)
    steps = library.get_entry(e.id).steps
    assert steps["segment"] == "stale" and steps["inpaint"] == "stale"
    # Undo goes back to before the import; the same file again adds no Undo step
    assert library.annotations_at(e.id, -1) == {"phases": [40, 200]}
    library.import_microlib_anns(f)
    assert library.annotations_at(e.id, -1) == {"phases": [40, 200]}


def test_bulk_import_is_one_transaction_fast(library, tmp_path):
    n = 5000
    doc = {str(i): {"data_path": f"x/{i + 1:06d}.png", "vox_size": 0.1 + i * 1e-6, "data_type": "twophase",
                    "phases": [0, 255]} for i in range(n)}
    f = _write(tmp_path / "big.json", json.dumps(doc))
    t = time.perf_counter()
    res = library.import_microlib_anns(f)
    dt = time.perf_counter() - t
    assert len(res["pending"]) == len(doc)
    # One transaction per record ran at ~220 records/s here (23 s); bench/bulk_import.py measures
    # the real rate. The bound leaves room for a busy machine.
    assert dt < 5.0, f"{len(doc)} records took {dt:.1f} s"


# -- ids and unreadable rows ------------------------------------------------------------------------------
@pytest.mark.parametrize("key, needle", [
    ("99999999999999999999", "no entry"),  # beyond SQLite's integers
    ("²", "²"),  # a digit to str.isdigit
    ("٣", "٣"),  # an Arabic-Indic digit: int() would read it as 3
    ("doitpoms:99999999999999999999", "99999999999999999999"),
    ("microstructure99999999999999999999", "no entry"),
])
def test_ids_the_database_cannot_hold_are_one_clear_error(demo_library, key, needle):
    with pytest.raises(StoreError, match=needle):
        demo_library.find_entry(key)
    with pytest.raises(StoreError, match="no entry"):
        demo_library.get_entry(10**20)
    with pytest.raises(StoreError, match="no entry"):
        demo_library.get_annotations(-1)


@pytest.mark.parametrize("data_path", ["x/99999999999999999999.png", "x/0.png", "x/10001.png", "x/٣.png"])
def test_a_data_path_naming_no_doitpoms_id_refuses_the_file(library, tmp_path, data_path):
    f = _write(tmp_path / "a.json", json.dumps({"0": {"data_path": data_path}}, ensure_ascii=False))
    with pytest.raises(AnnotationError, match="DoITPoMS micrograph id"):
        library.import_microlib_anns(f)
    assert library.pending_annotations() == {}


@pytest.mark.parametrize("column, value", [("metadata", "{not json"), ("metadata", "[1, 2]")])
def test_a_row_that_is_not_json_names_the_entry(demo_library, column, value):
    con = sqlite3.connect(demo_library.root / "library.sqlite")
    con.execute(f"UPDATE entries SET {column} = ? WHERE id = 10002", (value,))
    con.commit()
    con.close()
    for args in (["library", "list"], ["library", "show", "10002"], ["library", "export", demo_library.root / "x"]):
        r = cli("--library", demo_library.root, *args)
        one_line_exit_2(r, "microstructure10002")
    assert demo_library.get_entry(10001).name == "microstructure10001"  # the others still read


def test_annotations_that_are_not_json_name_the_entry(demo_library):
    demo_library.set_annotations(10003, {"vox_size": 1.0})
    con = sqlite3.connect(demo_library.root / "library.sqlite")
    con.execute("UPDATE annotations SET data = 'garbage' WHERE entry_id = 10003")
    con.commit()
    con.close()
    r = cli("--library", demo_library.root, "entry", "status", "10003")
    one_line_exit_2(r, "entry 10003")


# -- a library on a read-only disk can still be read -----------------------------------------------------
def _read_only_runner(folder: Path):
    """A function running a command with ``folder`` read-only, or None if this machine can't."""
    if os.geteuid() != 0:
        def run(*args):
            mode = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
            for p in mode:
                p.chmod(mode[p] & ~0o222)
            try:
                return cli(*args)
            finally:
                for p, m in mode.items():
                    p.chmod(m)
        return run
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        return None

    def run(*args):
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", script, str(folder), sys.executable, "-m", "microlib_gui.cli",
               *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return run


def test_a_library_on_a_read_only_disk_can_be_listed_shown_and_exported(tmp_path):
    lib = tmp_path / "lib"
    assert cli("--library", lib, "library", "init", "--demo").returncode == 0
    Library(lib).set_annotations(10001, {"vox_size": 0.25})
    run = _read_only_runner(lib)
    if run is None:
        pytest.skip("no way to make a read-only folder here (not root, no mount namespace)")
    before = sorted(p.name for p in lib.iterdir())
    r = run("--library", lib, "library", "list")
    assert r.returncode == 0 and "microstructure10004" in r.stdout, r.stderr
    r = run("--library", lib, "library", "show", "10001", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["annotations"] == {"vox_size": 0.25}, r.stderr
    r = run("--library", lib, "entry", "status", "10001")
    assert r.returncode == 0 and "microstructure10001" in r.stdout, r.stderr
    r = run("--library", lib, "library", "export", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert strict_json(tmp_path / "out" / "microlib_anns.json")["10001"]["vox_size"] == 0.25
    r = run("--library", lib, "library", "check")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    # a command that writes says why it cannot, in one line
    r = run("--library", lib, "library", "exclude", "10001", "anisotropic")
    one_line_exit_2(r, "read-only" if os.geteuid() == 0 else "not writable")
    assert sorted(p.name for p in lib.iterdir()) == before


# -- written files follow the umask; long names work --------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    lib = tmp_path / "lib"
    _png(tmp_path / "m.png")
    assert cli("--library", lib, "library", "add", tmp_path / "m.png", umask=umask).returncode == 0
    r = cli("--library", lib, "entry", "crop", "10001", "--box", "0,0,80,80", umask=umask)
    assert r.returncode == 0, r.stderr
    assert cli("--library", lib, "library", "export", tmp_path / "out", umask=umask).returncode == 0
    files = [lib / "microstructure10001" / "microstructure10001_original.png",
             tmp_path / "out" / "data_anns.json", tmp_path / "out" / "microlib_anns.json"]
    files += [p for p in (lib / "microstructure10001").iterdir() if p.is_file()]
    r = cli("--library", lib, "export", "10001", "--out", tmp_path / "ds", umask=umask)  # the dataset layout
    assert r.returncode == 0, r.stderr
    exported = [p for p in (tmp_path / "ds").rglob("*") if p.is_file()]
    assert len(exported) >= 3  # data_anns.json, the entry's manifest and its original at least
    files += exported
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == mode, f


def test_a_long_valid_file_name_can_be_written(tmp_path):
    from microlib_gui.core.atomic import atomic_path, atomic_write_bytes

    target = tmp_path / ("v" * 250 + ".tif")  # 254 characters: valid on every common file system
    seen = []
    with atomic_path(target) as tmp:
        seen.append(tmp.name)
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"
    assert seen[0].startswith(".tmp-") and seen[0].endswith(".tif") and len(seen[0]) <= 64
    # a name that is all suffix still works (the suffix is dropped from the temporary name)
    odd = tmp_path / ("x." + "s" * 240)
    atomic_write_bytes(odd, b"y")
    assert odd.read_bytes() == b"y" and not list(tmp_path.glob(".tmp-*"))

