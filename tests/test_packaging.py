"""Packaging and setup: what the tests need is installed, pinned, by the setup; never while they run.

``scripts/setup.sh`` is run here against stand-in ``dpkg-query``, ``apt-get`` and ``id``
programs (first on PATH) in a copy of the scripts, so its decisions are checked
without touching this machine's packages or virtual environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_an_spdx_string_setuptools_can_read():
    doc = _pyproject()
    assert doc["project"]["license"] == "MIT"  # the table form is deprecated by setuptools
    req = next(r for r in doc["build-system"]["requires"] if r.startswith("setuptools"))
    assert int(re.search(r">=\s*(\d+)", req).group(1)) >= 77  # the first setuptools that reads it


def test_the_installer_extra_is_pinned():
    extra = _pyproject()["project"]["optional-dependencies"]["installer"]
    assert any(r.startswith("pyinstaller==") for r in extra)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", r) for r in extra), extra


INSTALLS = re.compile(r"pip3?\b[^\n]*\binstall\b|-m\s+pip\b|apt-get\b[^\n]*\binstall\b|\bapt\s+install\b")


def test_no_test_or_script_installs_software_but_the_setup():
    # Downloads while tests run turn a failed install into a skip; the setup does them all.
    offenders = []
    for folder in ("tests", "scripts", ".ci"):
        for path in (REPO / folder).rglob("*"):
            if (not path.is_file() or path.suffix not in ("", ".py", ".sh") or "_artifacts" in path.parts
                    or path.name == Path(__file__).name or path == REPO / "scripts" / "setup.sh"):
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            offenders += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in INSTALLS.finditer(text)]
    assert not offenders, offenders


def test_ci_sets_up_every_test_tool_before_the_tests():
    run = (REPO / ".ci" / "run").read_text()
    assert "MICROLIB_CI=1" in run
    assert run.index("scripts/setup.sh --test --installer") < run.index("scripts/test.sh")


# -- scripts/setup.sh's decisions, with stand-in system programs -----------------------------------
FAKE_DPKG = """#!/bin/sh
# dpkg-query -W -f=... NAME: everything is installed except what $MISSING names;
# SLURM and munge at the versions in $SLURM_VERSION and $MUNGE_VERSION.
name="$3"
for m in $MISSING; do [ "$m" = "$name" ] && exit 1; done
case "$name" in
  slurm*) printf 'install ok installed %s' "$SLURM_VERSION" ;;
  munge) printf 'install ok installed %s' "$MUNGE_VERSION" ;;
  *) printf 'install ok installed 1.0' ;;
esac
"""


@pytest.fixture
def setup_copy(tmp_path):
    """A copy of setup.sh and pyproject.toml with a stand-in .venv already up to date (no pip run)."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    for stamp in ("1", "1-installer", "0"):
        (root / ".venv" / f".microlib-installed-{stamp}").touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt.log"

    def tool(name, body):
        p = bin_dir / name
        p.write_text("#!/bin/sh\n" + body)
        p.chmod(0o755)

    tool("dpkg-query", FAKE_DPKG.split("\n", 1)[1])
    tool("apt-get", f'echo "apt-get $*" >> {log}\n[ "$1" = update ] && exit 0\nexit "${{APT_RC:-0}}"\n')

    def run(*args, uid=0, missing="", slurm="22.05.8-4+deb12u3", munge="0.5.15-2+deb12u1", apt_rc=0, ci=False):
        tool("id", f'[ "$1" = -u ] && echo {uid} && exit 0\nexec /usr/bin/id "$@"\n')
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MISSING": missing,
               "SLURM_VERSION": slurm, "MUNGE_VERSION": munge, "APT_RC": str(apt_rc)}
        env.pop("MICROLIB_CI", None)
        if ci:
            env["MICROLIB_CI"] = "1"
        log.write_text("")
        r = subprocess.run(["bash", str(root / "scripts" / "setup.sh"), *args], capture_output=True, text=True,
                           env=env, timeout=60)
        return r, log.read_text()

    return run


def test_setup_installs_the_pinned_slurm_without_recommends(setup_copy):
    r, apt = setup_copy("--test", slurm="23.11.4-1", munge="0.5.16-1")  # another release's: not the pinned
    assert r.returncode == 0, r.stderr
    install = [ln for ln in apt.splitlines() if " install " in ln]
    assert install == ["apt-get install -y -qq --no-install-recommends slurmctld=22.05.8-* slurmd=22.05.8-* "
                       "slurm-client=22.05.8-* munge=0.5.15-*"], apt
    r, apt = setup_copy("--test")  # the pinned versions are there: nothing to install
    assert r.returncode == 0 and " install " not in apt, (r.stderr, apt)


def test_a_failed_test_tool_install_fails_ci_but_only_skips_elsewhere(setup_copy):
    r, _ = setup_copy("--test", missing="slurmd", apt_rc=100)
    assert r.returncode == 0 and "SLURM build tests will be skipped" in r.stderr, r.stderr
    r, _ = setup_copy("--test", missing="slurmd", apt_rc=100, ci=True)
    assert r.returncode == 1 and "could not be installed (MICROLIB_CI=1)" in r.stderr, r.stderr
    # Not root: the apt-get line to run is printed; under CI that is a failure too.
    r, apt = setup_copy("--test", uid=1000, missing="slurmd")
    assert r.returncode == 0 and "sudo apt-get install --no-install-recommends 'slurmd=22.05.8-*'" in r.stderr
    assert apt == ""
    r, _ = setup_copy("--test", uid=1000, missing="slurmd", ci=True)
    assert r.returncode == 1


def test_a_failed_install_of_what_the_app_needs_stops_the_setup(setup_copy):
    r, apt = setup_copy(missing="libgl1", apt_rc=100)
    assert r.returncode != 0 and "--no-install-recommends libgl1" in apt
    r, apt = setup_copy(missing="libgl1")  # without --test no SLURM is asked for
    assert r.returncode == 0 and "slurm" not in apt, apt
