"""Usage errors of the ``microlib`` command: one line on stderr and exit code 2, at every level."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    ["--bogus"],
    ["entry"],
    ["library", "frobnicate"],
    ["segment", "x.png", "--phases", "auto"],
    ["generate", "--size"],
]


@pytest.mark.parametrize("argv", CASES, ids=lambda a: " ".join(a))
def test_usage_error_is_one_line(argv, tmp_path):
    r = subprocess.run([sys.executable, "-m", "microlib_gui.cli", "--library", str(tmp_path / "lib"), *argv],
                       capture_output=True, text=True)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in r.stderr, r.stderr
