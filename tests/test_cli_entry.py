"""``microlib entry ...``: the wizard's steps on a library entry from the command line; one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from microlib_gui.cli import main
from microlib_gui.core.library import layout as L


def run(lib, *args) -> int:
    """``microlib --library LIB ARGS`` in this process; usage errors exit through SystemExit."""
    try:
        return main(["--library", str(lib.root), *[str(a) for a in args]])
    except SystemExit as exc:
        return int(exc.code)


def out_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_an_entry_curated_step_by_step(demo_library, capsys):
    lib = demo_library
    eid = lib.list_entries()[0].id
    assert run(lib, "entry", "status", eid, "--json") == 0
    st = out_json(capsys)
    assert st["steps"]["crop"] == "todo" and st["stale"] == [] and not st["can_undo"]
    # Crop: saved; the same box again changes nothing (no write, nothing made stale).
    assert run(lib, "entry", "crop", eid, "--box", "4,0,380,384", "--json") == 0
    assert out_json(capsys)["steps"]["crop"] == "done"
    before = lib.entry_signature(eid)
    assert run(lib, "entry", "crop", eid, "--box", "4,0,380,384") == 0
    assert "nothing changed" in capsys.readouterr().out and lib.entry_signature(eid) == before
    # Segment: typed thresholds, then Auto with 3 phases; Undo brings the labels file back too.
    assert run(lib, "entry", "segment", eid, "--thresholds", "120", "--json") == 0
    doc = out_json(capsys)
    assert doc["n_phases"] == 2 and doc["files_written"] == [L.SEGMENTED.suffix] and doc["deblur_sigma"] == 0
    two = lib.entry_file(eid, L.SEGMENTED.suffix).read_bytes()
    assert np.asarray(Image.open(lib.entry_file(eid, L.SEGMENTED.suffix))).shape == (384, 376)
    assert run(lib, "entry", "segment", eid, "--auto", "3", "--json") == 0
    doc = out_json(capsys)
    assert doc["n_phases"] == 3 and doc["deblur_sigma"] > 0  # Auto sharpens, as the panel's does
    assert run(lib, "entry", "undo", eid) == 0
    assert lib.get_annotations(eid)["thresholds"] == [120.0]
    assert lib.entry_file(eid, L.SEGMENTED.suffix).read_bytes() == two
    assert run(lib, "entry", "redo", eid) == 0 and lib.get_annotations(eid)["n_phases"] == 3
    assert run(lib, "entry", "undo", eid) == 0
    capsys.readouterr()
    # Scale bar found automatically; µm per pixel from its label.
    assert run(lib, "entry", "scalebar", eid, "--auto", "--json") == 0
    doc = out_json(capsys)
    assert doc["mask"] and doc["vox_size"] > 0 and doc["steps"]["scalebar"] == "done"
    # Inpaint: the segmented crop without its bar.
    assert run(lib, "entry", "inpaint", eid, "--json") == 0
    doc = out_json(capsys)
    assert doc["method"] == "fast" and doc["steps"]["inpaint"] == "done"
    out = np.asarray(Image.open(lib.entry_file(eid, L.INPAINTED.suffix)))
    assert out.shape == (384, 376) and len(np.unique(out)) == 2
    # Train: run 1 of the entry, in train/run-001 like the Train step's and the build's, published.
    assert run(lib, "entry", "train", eid, "--resume") == 2 and "no stopped run" in capsys.readouterr().err
    assert run(lib, "entry", "train", eid, "--preset", "tiny", "--iters", "2", "--device", "cpu",
               "--g-layers", "resize", "--json") == 0
    doc = out_json(capsys)
    assert doc["run"] == 1 and doc["folder"] == str(lib.entry_dir(eid) / "train" / "run-001")
    assert doc["steps"]["train"] == "done" and lib.entry_file(eid, L.GENERATOR.suffix).exists()
    # the layers asked for (tiny's own are transposed), recorded in the run and the published generator
    assert json.loads((Path(doc["folder"]) / "run.json").read_text())["preset"]["g_layers"] == ["resize"] * 4
    assert json.loads(lib.entry_file(eid, L.GEN_META.suffix).read_text())["trained_layers"] == ["resize"] * 4
    # the draft network, as the README lists it, is run 2 of the entry (one iteration: the CLI path, not quality)
    assert run(lib, "entry", "train", eid, "--preset", "draft", "--iters", "1", "--device", "cpu", "--json") == 0
    doc = out_json(capsys)
    assert doc["run"] == 2 and json.loads((Path(doc["folder"]) / "run.json").read_text())["preset"]["name"] == "draft"
    # A new crop: what reads the crop is stale, and status says so.
    assert run(lib, "entry", "crop", eid, "--box", "0,0,300,300") == 0
    assert "now stale: segment, scalebar, inpaint" in capsys.readouterr().out
    assert run(lib, "entry", "status", eid) == 0
    text = capsys.readouterr().out
    assert "↻ Segment" in text and "stale: segment, scalebar, inpaint" in text
    # Reset: the whole image again.
    assert run(lib, "entry", "crop", eid, "--reset", "--json") == 0
    assert out_json(capsys)["crop"] is None


def test_keep_grayscale_pick_and_measure_the_bar(demo_library, capsys):
    lib = demo_library
    eid = lib.list_entries()[2].id  # grayscale textured steel
    assert run(lib, "entry", "segment", eid, "--keep", "grayscale") == 0
    assert lib.get_annotations(eid)["data_type"] == "grayscale"
    capsys.readouterr()
    assert run(lib, "entry", "scalebar", eid, "--auto", "--json") == 0
    det = out_json(capsys)["detected"]
    (x0, y0), (x1, y1) = det["bar_ends"]
    # The same bar by hand: a click on it, the box, both ends, the length typed.
    assert run(lib, "entry", "undo", eid) == 0
    capsys.readouterr()
    box = ",".join(str(v) for v in det["box"])
    assert run(lib, "entry", "scalebar", eid, "--pick", f"{(x0 + x1) // 2},{y0}", "--box", box,
               "--ends", f"{x0},{y0},{x1},{y1}", "--um", "50", "--json") == 0
    doc = out_json(capsys)
    assert doc["mask"] and doc["bar_value_um"] == 50 and doc["vox_size"] == pytest.approx(50 / doc["bar_length_px"])
    assert run(lib, "entry", "scalebar", eid, "--um", "100", "--json") == 0  # the length is kept
    assert out_json(capsys)["vox_size"] == pytest.approx(2 * doc["vox_size"])
    assert run(lib, "entry", "inpaint", eid, "--quiet") == 0
    out = np.asarray(Image.open(lib.entry_file(eid, L.INPAINTED.suffix)))
    assert out.ndim == 2 and len(np.unique(out)) > 50  # the grayscale image, not labels


@pytest.mark.parametrize("args,needle", [
    (["crop", "{e}"], "give --box"),
    (["crop", "{e}", "--box", "1,2,3"], "expected x0,y0,x1,y1"),
    (["crop", "{e}", "--box", "10,10,5,50"], "x1 > x0"),
    (["crop", "{e}", "--reset", "--box", "0,0,10,10"], "--reset"),
    (["crop", "{e}", "--rotate", "abc"], "--rotate 'abc'"),
    (["crop", "{e}", "--rotate", "400"], "-360..360"),
    (["crop", "{e}", "--box", "0,0,9000,9000"], "crop"),
    (["segment", "{e}"], "give one of --thresholds | --auto | --keep"),
    (["segment", "{e}", "--auto", "--keep", "colour"], "not --auto and --keep"),
    (["segment", "{e}", "--thresholds", "300"], "0-255"),
    (["segment", "{e}", "--auto", "1"], "2..8"),
    (["segment", "{e}", "--auto", "x"], "number of phases"),
    (["segment", "{e}", "--keep", "grayscale", "--sharpen"], "--sharpen"),
    (["segment", "{e}", "--keep", "sepia"], "invalid choice"),
    (["scalebar", "{e}"], "give --pick"),
    (["scalebar", "{e}", "--auto", "--pick", "1,2"], "without --pick"),
    (["scalebar", "{e}", "--pick", "a,b"], "expected X,Y"),
    (["scalebar", "{e}", "--box", "0,0,10,10"], "no bar colour yet"),
    (["scalebar", "{e}", "--um", "-1"], "--um"),
    (["scalebar", "{e}", "--ends", "5,5,5,5"], "same point"),
    (["scalebar", "{e}", "--tolerance", "999"], "--tolerance"),
    (["inpaint", "{e}", "--iters", "0"], "at least 1"),
    (["inpaint", "{e}", "--method", "magic"], "invalid choice"),
    (["train", "{e}"], "Inpaint step must be done first"),
    (["train", "{e}", "--preset", "huge"], "invalid choice"),
    (["undo", "{e}"], "nothing to undo"),
    (["redo", "{e}"], "nothing to redo"),
    (["status", "99999"], "no entry 99999"),
    (["status"], "required: ENTRY"),
])
def test_bad_input_is_one_line_exit_2(demo_library, capsys, args, needle):
    eid = demo_library.list_entries()[0].id
    sig = demo_library.entry_signature(eid)
    assert run(demo_library, "entry", *[a.format(e=eid) for a in args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert demo_library.entry_signature(eid) == sig  # nothing was saved


def test_one_line_errors_from_the_real_command(demo_library):
    eid = demo_library.list_entries()[0].id
    for args in (["entry", "crop", str(eid), "--box", "oops"], ["entry", "segment", str(eid), "--auto", "--keep"]):
        r = subprocess.run([sys.executable, "-m", "microlib_gui.cli", "--library", str(demo_library.root), *args],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and r.stderr.startswith("microlib: error: "), r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
