"""The layers hold: `lint-imports` keeps the contracts in pyproject.toml, and they catch the cycles they forbid."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, config: Path | None = None) -> subprocess.CompletedProcess:
    if not LINT.exists():
        pytest.fail(f"{LINT} is missing: install the test extra (scripts/setup.sh --test)")
    cmd = [str(LINT), "--no-cache"] + (["--config", str(config)] if config else [])
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)


def _contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_the_import_contracts_are_kept():
    r = _lint(REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_every_step_panel_is_in_the_independence_contract():
    # A new panel must not slip past the contract that keeps panels from importing each other.
    (independent,) = [c for c in _contracts() if c["type"] == "independence"]
    panels = {f"microlib_gui.gui.steps.{p.stem}" for p in (REPO / "microlib_gui" / "gui" / "steps").glob("*.py")
              if p.stem not in ("__init__", "base")}
    assert set(independent["modules"]) == panels


@pytest.mark.parametrize("module, line, contract", [
    # the three cycles of issue 18, put back into a copy of the package
    ("gui/steps/inpaint.py", "from . import train", "Step panels never import each other"),
    ("gui/self_test.py", "from . import app", "GUI layers"),
    ("gui/steps/browse.py", "from .. import app", "GUI layers"),
    # and a core module reaching up into a front end
    ("core/library/db.py", "from ...gui import context", "Front ends over core"),
    ("core/segment.py", "from .library import entries", "Engines:"),
])
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, line, contract):
    # The installed package always resolves to the source tree, so the copy gets its own name.
    copy = tmp_path / "mlcopy"
    shutil.copytree(REPO / "microlib_gui", copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}  # noqa: E402\n")
    config = tmp_path / "contracts.toml"
    config.write_text((REPO / "pyproject.toml").read_text().replace("microlib_gui", "mlcopy"))
    r = _lint(tmp_path, config)
    assert r.returncode != 0, r.stdout
    broken = [ln for ln in r.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), r.stdout
    # the report names the offending import
    assert f"mlcopy.{module[:-3].replace('/', '.')}" in r.stdout
