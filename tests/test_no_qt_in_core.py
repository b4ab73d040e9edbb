"""core/ must run headless: no Qt import anywhere below it."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "microlib_gui" / "core"
QT = ("PySide6", "PyQt5", "PyQt6", "qtpy", "pyqtgraph", "napari", "vispy")


def test_no_qt_imports_in_core_source():
    offenders = []
    for py in CORE.rglob("*.py"):
        tree = ast.parse(py.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{py.relative_to(CORE)}: {n}" for n in names if n.split(".")[0] in QT]
    assert not offenders, offenders


def test_importing_all_core_modules_loads_no_qt():
    code = (
        "import importlib, pkgutil, sys, microlib_gui.core as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'microlib_gui.core.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {QT!r}]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
