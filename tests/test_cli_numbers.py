"""Bad numbers and absurdly nested JSON on the command line: exit 2 and one clear line, never an internal error.

Each row is ``argv → exit 2``, one line on stderr naming what was wrong, no traceback,
and nothing saved. The rows cover every kind of number the CLI reads: comma lists
(``--crop``, ``--pick``, ``--box``, ``--ends``), single numbers (``--tolerance``,
``--um``, ``--rotate``, ``--fps``, ``--mem-gb``...), counts and seeds, entry ids and
DoITPoMS ids, and JSON values (``--param``, annotation files).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from PIL import Image

from microlib_gui.cli import main

DEEP = 200_000  # far past Python's recursion limit


def _run(argv: list[str]) -> int:
    try:
        return int(main([str(a) for a in argv]))
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code)


@pytest.fixture
def files(tmp_path):
    img = tmp_path / "img.png"
    Image.fromarray((np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)).save(img)
    vol = tmp_path / "vol.tif"
    tifffile.imwrite(vol, (np.indices((16, 16, 16)).sum(0) // 4 % 2 * 255).astype(np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "deep_array.json").write_text("[" * DEEP + "]" * DEEP)
    (tmp_path / "deep_object.json").write_text('{"a":' * DEEP + "1" + "}" * DEEP)
    # A MicroLib annotation file whose one record carries a value nested 5,000 deep.
    rec = '{"data_path": "micrographs/large/000001.jpg", "extra": ' + "[" * 5000 + "]" * 5000 + "}"
    (tmp_path / "deep_record.json").write_text('{"micrograph1": ' + rec + "}")
    # A data_anns.json that parses (200 levels) but is deeper than anything the library keeps.
    deep_descr = "[" * 200 + '"x"' + "]" * 200
    (tmp_path / "deep_data_anns.json").write_text(
        '{"0": {"name": "microstructure001", "brief_descr": ' + deep_descr + "}}")
    return {"img": img, "vol": vol, "out": out, "dir": tmp_path}


# {img} {vol} {out} {dir}: the files above; {e}: the demo library's first entry.
CASES = [
    # -- comma lists of pixels: infinite, NaN, overflowing, negative, non-ASCII ------------------------
    (["segment", "{img}", "--crop", "0,0,inf,50", "--out", "{out}/s.png"], "--crop"),
    (["segment", "{img}", "--crop", "0,0,nan,50", "--out", "{out}/s.png"], "--crop"),
    (["segment", "{img}", "--crop", "0,0,1e400,50", "--out", "{out}/s.png"], "finite"),
    (["segment", "{img}", "--crop", "0,0,40,٥٠", "--out", "{out}/s.png"], "ASCII"),
    (["scalebar", "{img}", "--pick", "inf,3", "--out", "{out}/m.png"], "--pick"),
    (["scalebar", "{img}", "--pick", "nan,nan", "--out", "{out}/m.png"], "--pick"),
    (["scalebar", "{img}", "--pick=-5,3", "--out", "{out}/m.png"], "at least 0"),
    (["scalebar", "{img}", "--pick", "5,3", "--box", "0,0,-inf,9", "--out", "{out}/m.png"], "--box"),
    (["entry", "crop", "{e}", "--box", "0,0,nan,4"], "--box"),
    (["entry", "crop", "{e}", "--box", "0,0,1e30,4"], "at most"),
    (["entry", "scalebar", "{e}", "--pick", "1e999,5"], "--pick"),
    (["entry", "scalebar", "{e}", "--pick", "5,5", "--ends", "1,2,3,nan"], "--ends"),
    (["entry", "segment", "{e}", "--thresholds", "120,nan"], "--thresholds"),
    (["segment", "{img}", "--phases", "70,inf", "--out", "{out}/s.png"], "--phases"),
    (["segment", "{img}", "--phases", "auto:1e400", "--out", "{out}/s.png"], "--phases"),
    # -- single numbers --------------------------------------------------------------------------------
    (["segment", "{img}", "--rotate", "inf", "--out", "{out}/s.png"], "--rotate"),
    (["scalebar", "{img}", "--pick", "5,5", "--tolerance", "inf", "--out", "{out}/m.png"], "--tolerance"),
    (["scalebar", "{img}", "--auto", "--um", "nan", "--out", "{out}/m.png"], "--um"),
    (["entry", "scalebar", "{e}", "--pick", "5,5", "--um", "inf"], "--um"),
    (["entry", "crop", "{e}", "--rotate", "nan"], "--rotate"),
    (["inpaint", "{img}", "--mask", "{img}", "--method", "fast", "--blend", "nan", "--out", "{out}/i.png"],
     "--blend"),
    (["entry", "inpaint", "{e}", "--blend", "inf"], "--blend"),
    (["export", "media", "{vol}", "--mp4", "{out}/v.mp4", "--fps", "nan"], "--fps"),
    (["export", "media", "{vol}", "--mp4", "{out}/v.mp4", "--fps", "inf"], "--fps"),
    (["train", "{img}", "--out", "{out}/run", "--ema", "inf"], "--ema"),
    (["build", "--entries", "{e}", "--mem-gb", "inf"], "--mem-gb"),
    (["build", "--entries", "{e}", "--param", "train.iters=NaN"], "finite"),
    (["build", "--entries", "{e}", "--param", "train.iters=1e999"], "finite"),
    # -- counts and seeds: out of every integer type -----------------------------------------------------
    (["entry", "inpaint", "{e}", "--seed", "99999999999999999999999"], "--seed"),
    (["entry", "inpaint", "{e}", "--seed", "-1"], "--seed"),
    (["entry", "train", "{e}", "--seed", "4294967296"], "--seed"),
    (["inpaint", "{img}", "--mask", "{img}", "--seed", "1e3", "--out", "{out}/i.png"], "--seed"),
    (["generate", "{dir}/none_Gen.pt", "--size", "32", "--seed", "99999999999999999999", "--out", "{out}/v.tif"],
     "--seed"),
    (["generate", "{dir}/none_Gen.pt", "--size", "٣٢", "--out", "{out}/v.tif"], "ASCII"),
    (["generate", "{dir}/none_Gen.pt", "--size", "32,32,99999999999999999999", "--out", "{out}/v.tif"], "--size"),
    (["stats", "{img}", "{vol}", "--r-max", "99999999999999999999"], "--r-max"),
    (["export", "media", "{vol}", "--mp4", "{out}/v.mp4", "--frames", "99999999999999"], "--frames"),
    (["train", "{img}", "--out", "{out}/run", "--iters", "10000000000000"], "--iters"),
    (["build", "--entries", "{e}", "--max-parallel", "0"], "--max-parallel"),
    (["build", "--entries", "{e}", "99999999999999999999999"], "at most"),
    # -- ids: beyond SQLite's integer, non-ASCII digits, DoITPoMS range ----------------------------------
    (["library", "show", "99999999999999999999999"], "99999999999999999999999"),
    (["library", "show", "²"], "ASCII"),
    (["library", "show", "doitpoms:99999999999999999999"], "10000"),
    (["library", "show", "microstructure99999999999999999999"], "microstructure"),
    (["library", "exclude", "99999999999999999999", "other"], "at most"),
    (["entry", "status", "99999999999999999999999"], "ENTRY"),
    (["export", "99999999999999999999999", "--out", "{out}/x"], "at most"),
    (["generate", "99999999999999999999", "--size", "32"], "ENTRY"),
    (["doitpoms", "show", "99999999999999999999999", "--offline"], "10000"),
    (["doitpoms", "show", "١٢", "--offline"], "ASCII"),
    (["doitpoms", "import", "1", "0", "--offline"], "at least 1"),
    (["library", "add", "{img}", "--doitpoms-id", "99999999999999999999"], "--doitpoms-id"),
    # -- JSON nested too deep ------------------------------------------------------------------------------
    (["library", "import-anns", "{dir}/deep_array.json"], "deep_array.json"),
    (["library", "import-anns", "{dir}/deep_object.json"], "nested"),
    (["library", "import-anns", "{dir}/deep_record.json"], "nested"),
    (["library", "import-anns", "{dir}/deep_data_anns.json"], "nested"),
    (["build", "--entries", "{e}", "--param", "train.iters=" + "[" * DEEP + "]" * DEEP], "nested"),
    (["build", "--entries", "{e}", "--param", "train.iters=" + "[" * 50 + "]" * 50], "nested"),
]


@pytest.mark.parametrize("args,needle", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_numbers_and_deep_json_exit_2_in_one_line(demo_library, files, capsys, args, needle):
    lib = demo_library
    eid = lib.list_entries()[0].id
    before = {e.id: lib.entry_signature(e.id) for e in lib.list_entries()}
    argv = ["--library", str(lib.root)] + [a.format(e=eid, **files) for a in args]
    rc = _run(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("microlib"), err
    assert "Traceback" not in err and "internal error" not in err, err
    assert needle in lines[0], err
    # Nothing was saved: the same entries, each unchanged; nothing written under out/.
    assert {e.id: lib.entry_signature(e.id) for e in lib.list_entries()} == before
    assert not list(files["out"].iterdir())


def test_deep_generator_metadata_is_one_line(tmp_path):
    """A model folder's metadata JSON nested absurdly deep: refused, not an internal error."""
    import torch

    from microlib_gui.core.slicegan.fileformat import META_SUFFIX, save_generator
    from microlib_gui.core.slicegan.nets import Generator
    from microlib_gui.core.slicegan.presets import get_preset

    torch.manual_seed(0)
    gen = save_generator(tmp_path / "tiny_Gen.pt", Generator(get_preset("tiny").net_params(2)))
    meta = gen.with_name("tiny" + META_SUFFIX)
    meta.write_text("[" * DEEP + "]" * DEEP)
    r = subprocess.run([sys.executable, "-m", "microlib_gui.cli", "generate", str(gen), "--size", "32",
                        "--out", str(tmp_path / "v.tif"), "--device", "cpu"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [f"microlib: error: {meta.name}: not a valid JSON object"]
    assert not (tmp_path / "v.tif").exists()


def test_gui_import_of_a_deep_annotation_file_is_one_line(library, files):
    """The File menu's and Browse panel's import go through the same check (core.workflow.browse)."""
    from microlib_gui.core.errors import AnnotationError
    from microlib_gui.core.workflow import browse

    for name in ("deep_array.json", "deep_record.json", "deep_data_anns.json"):
        with pytest.raises(AnnotationError) as ei:
            browse.import_annotations(library, files["dir"] / name)
        assert str(ei.value) == f"{name}: not accepted: JSON nested more than 64 levels deep"
    assert library.list_entries() == [] and len(library.pending_annotations()) == 0


def test_the_real_command_prints_one_line(demo_library, files):
    """Through the installed entry point's module, as a user runs it (stderr as a terminal shows it)."""
    eid = demo_library.list_entries()[0].id
    for args in (["segment", str(files["img"]), "--crop", "0,0,inf,50", "--out", str(files["out"] / "s.png")],
                 ["entry", "scalebar", str(eid), "--pick", "nan,5"],
                 ["library", "show", "99999999999999999999999"],
                 ["library", "import-anns", str(files["dir"] / "deep_object.json")]):
        r = subprocess.run([sys.executable, "-m", "microlib_gui.cli", "--library", str(demo_library.root), *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, (args, r.stderr)


def test_good_numbers_still_read():
    from microlib_gui.commands._args import (DOITPOMS_ID_MAX, check_entry_key, parse_box, parse_phases_arg,
                                             parse_point, parse_thresholds, read_number)
    from microlib_gui.core.library import LOCAL_ID_START

    assert DOITPOMS_ID_MAX == LOCAL_ID_START - 1  # the CLI's range is the library's
    assert parse_box("0,0,40,30") == (0, 0, 40, 30) and parse_box(" 1, 2 ,30.9,40") == (1, 2, 30, 40)
    assert parse_point("5,7") == (5, 7)
    assert parse_thresholds("80,170.5") == [80.0, 170.5]
    assert parse_phases_arg("auto:3") == {"n_phases": 3}
    assert read_number("-2.5", "--rotate", -360, 360) == -2.5
    assert read_number("1e3", "--um", 0, 1e6, lo_open=True) == 1000.0
    assert check_entry_key("microstructure001") == "microstructure001"
    assert check_entry_key("doitpoms:12") == "doitpoms:12" and check_entry_key("9223372036854775807")
    assert check_entry_key("my entry") == "my entry"  # not a number: the library answers
