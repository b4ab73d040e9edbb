"""What the CLI says about what it guessed: the scale-bar label and the background correction.

Real raw-like micrographs from ``../shared/data``: ``rawlike/raw001.png``'s label is read as
“5 µm” but flagged to check (the unit), ``rawlike-uneven/raw010.png``'s as “1 µm” (really 10 µm:
the reader says it differs), ``rawlike-uneven/raw051.png``'s is not read, and ``raw006``'s is
read for sure. ``rawlike-uneven`` is unevenly lit, ``rawlike`` evenly.
"""

from __future__ import annotations

import json

import pytest

from microlib_gui.cli import main
from microlib_gui.core.library import Library

pytestmark = pytest.mark.shared


def run(*args) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code)


@pytest.fixture
def entries(shared_data, tmp_path):
    """A library with the four micrographs, and their entry ids by name."""
    lib = Library(tmp_path / "lib")
    ids = {}
    for name in ("rawlike/raw001", "rawlike-uneven/raw010", "rawlike-uneven/raw051", "rawlike/raw006"):
        ids[name] = lib.add_entry(shared_data / f"{name}.png", source="local").id
    return lib, ids


def entry(lib, *args) -> int:
    return run("--library", lib.root, "entry", *args)


def test_entry_scalebar_says_when_the_label_must_be_checked(entries, capsys):
    lib, ids = entries
    assert entry(lib, "scalebar", ids["rawlike/raw001"], "--auto") == 0
    out = capsys.readouterr().out
    assert "label read as “5 µm” but unsure" in out and "check it" in out
    assert "pass --um 5 to confirm" in out and "--um VALUE" in out
    # A misread (10 µm read as 1 µm): the reading and the fix are both named.
    assert entry(lib, "scalebar", ids["rawlike-uneven/raw010"], "--auto") == 0
    out = capsys.readouterr().out
    assert "label read as “1 µm” but unsure" in out and "pass --um 1 to confirm" in out
    # Giving the value: the label no longer matters, nothing to check.
    assert entry(lib, "scalebar", ids["rawlike-uneven/raw010"], "--auto", "--um", "10") == 0
    out = capsys.readouterr().out
    assert "unsure" not in out and "= 10 µm →" in out
    assert lib.get_annotations(ids["rawlike-uneven/raw010"])["bar_value_um"] == 10
    # Not read: how to give it; read for sure: said plainly.
    assert entry(lib, "scalebar", ids["rawlike-uneven/raw051"], "--auto") == 0
    out = capsys.readouterr().out
    assert "label not read: pass its value as --um VALUE" in out and "give --um" not in out
    assert entry(lib, "scalebar", ids["rawlike/raw006"], "--auto") == 0
    out = capsys.readouterr().out
    assert "label read as “10 µm”" in out and "unsure" not in out and "--um" not in out


def test_scalebar_says_when_the_label_must_be_checked(shared_data, tmp_path, capsys):
    mask = tmp_path / "mask.png"
    assert run("scalebar", shared_data / "rawlike" / "raw001.png", "--auto", "--out", mask) == 0
    out = capsys.readouterr().out
    assert "label read as “5 µm” but unsure (unit" in out and "pass --um 5 to confirm" in out
    assert run("scalebar", shared_data / "rawlike" / "raw001.png", "--auto", "--um", "5", "--out", mask) == 0
    assert "unsure" not in capsys.readouterr().out
    assert run("scalebar", shared_data / "rawlike-uneven" / "raw051.png", "--auto", "--out", mask) == 0
    assert "label not read: pass its value as --um VALUE" in capsys.readouterr().out


def test_entry_segment_reports_the_background_correction(entries, capsys):
    lib, ids = entries
    uneven, even = ids["rawlike-uneven/raw010"], ids["rawlike/raw001"]
    assert entry(lib, "segment", uneven, "--auto") == 0
    out = capsys.readouterr().out
    assert "lighting corrected (divide, unevenness " in out
    assert entry(lib, "segment", uneven, "--auto", "--json") == 0  # the same again: nothing changes
    doc = json.loads(capsys.readouterr().out)
    assert doc["background"] == "divide" and doc["unevenness"] > 0.2 and doc["background_mode"] == "auto"
    assert lib.get_annotations(uneven)["background"] == "divide"
    # Asked off: none, and saved so.
    assert entry(lib, "segment", uneven, "--auto", "--background", "off") == 0
    assert "lighting not corrected (background correction off)" in capsys.readouterr().out
    assert lib.get_annotations(uneven)["background"] is None
    assert entry(lib, "segment", uneven, "--thresholds", "120", "--background", "subtract") == 0
    assert "lighting corrected (subtract, unevenness " in capsys.readouterr().out
    # An evenly lit micrograph: none, because the light is even.
    assert entry(lib, "segment", even, "--auto") == 0
    out = capsys.readouterr().out
    assert "lighting even enough, not corrected (unevenness " in out
    assert run("--library", lib.root, "entry", "segment", even, "--auto", "--background", "sideways") == 2


def test_segment_reports_the_background_correction(shared_data, tmp_path, capsys):
    out_png = tmp_path / "seg.png"
    assert run("segment", shared_data / "rawlike-uneven" / "raw010.png", "--out", out_png) == 0
    assert "lighting corrected (divide, unevenness " in capsys.readouterr().out
    assert run("segment", shared_data / "rawlike-uneven" / "raw010.png", "--background", "subtract",
               "--out", out_png) == 0
    assert "lighting corrected (subtract, unevenness " in capsys.readouterr().out
    assert run("segment", shared_data / "rawlike-uneven" / "raw010.png", "--background", "off", "--out", out_png) == 0
    assert "lighting not corrected (background correction off)" in capsys.readouterr().out
    assert run("segment", shared_data / "rawlike" / "raw001.png", "--out", out_png) == 0
    assert "lighting even enough, not corrected (unevenness " in capsys.readouterr().out
