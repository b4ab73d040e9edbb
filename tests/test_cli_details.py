"""``microlib library set ENTRY FIELD=VALUE ...``: the CLI twin of the Browse step's Details editor."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image


def cli(*args):
    return subprocess.run([sys.executable, "-m", "microlib_gui.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def lib(tmp_path):
    img = tmp_path / "bainite sample.png"
    Image.fromarray((np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8)).save(img)
    root = tmp_path / "lib"
    r = cli("--library", root, "library", "add", img)
    assert r.returncode == 0, r.stderr
    return root


def test_set_then_show_and_export_have_it(lib, tmp_path):
    r = cli("--library", lib, "library", "set", "microstructure10001", "brief_descr=Bainite, etched",
            "keywords=bainite, steel", "long desc=Nital etch", "element=Fe,C")
    assert r.returncode == 0, r.stderr
    assert "changed brief_descr, element, keywords, long_desc" in r.stdout
    r = cli("--library", lib, "library", "show", "10001")
    assert r.returncode == 0, r.stderr
    assert "brief_descr: Bainite, etched  (edited)" in r.stdout and "keywords: bainite, steel" in r.stdout
    assert "original_filename: bainite sample.png" in r.stdout
    shown = json.loads(cli("--library", lib, "library", "show", "10001", "--json").stdout)
    assert shown["details"]["element"] == ["Fe", "C"] and "element" in shown["edited"]
    r = cli("--library", lib, "library", "export", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "out" / "data_anns.json").read_text())["1"]
    assert rec["brief_descr"] == "Bainite, etched" and rec["keywords"] == "bainite, steel"
    assert rec["long desc"] == "Nital etch" and rec["element"] == "Fe, C"
    assert rec["original_filename"] == "bainite sample.png"
    # one undoable edit
    r = cli("--library", lib, "entry", "undo", "10001")
    assert r.returncode == 0, r.stderr
    shown = json.loads(cli("--library", lib, "library", "show", "10001", "--json").stdout)
    assert shown["details"]["keywords"] == [] and shown["edited"] == []


@pytest.mark.parametrize("args,needle", [
    (["colour=red"], "unknown field 'colour'"),
    (["name=x"], "cannot be set"),
    (["keywords"], "expected FIELD=VALUE"),
    (["technique=SEM", "technique=TEM"], "given twice"),
    (["brief_descr=a\x01b"], "control character"),
])
def test_a_bad_field_or_value_is_one_line_exit_2(lib, args, needle):
    r = cli("--library", lib, "library", "set", "10001", *args)
    assert r.returncode == 2, r.stdout
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    shown = json.loads(cli("--library", lib, "library", "show", "10001", "--json").stdout)
    assert shown["edited"] == []


def test_an_unknown_entry_is_one_line_exit_2(lib):
    r = cli("--library", lib, "library", "set", "99999", "technique=SEM")
    assert r.returncode == 2 and "no entry 99999" in r.stderr and len(r.stderr.strip().splitlines()) == 1
