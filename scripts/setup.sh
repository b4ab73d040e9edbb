#!/usr/bin/env bash
# Set up MicroLib Studio in ./.venv: Debian libraries Qt needs (installed when missing and
# running as root), then the package with its dependencies.
#   scripts/setup.sh                      app only
#   scripts/setup.sh --test               app + test tools (pytest, Xvfb, a single-node SLURM)
#   scripts/setup.sh --installer          app + PyInstaller (scripts/build_installer.sh)
#   scripts/setup.sh --test --installer   both (what .ci/run uses)
# PyTorch: the CPU build torch==2.13.0 is pinned here; see the README for a CUDA build.
# Test tools are pinned (PyInstaller in pyproject.toml's "installer" extra, SLURM and munge to
# Debian 12's versions below) and installed here, never by the tests. With MICROLIB_CI=1 (set by
# .ci/run) a tool that cannot be installed fails the setup, so CI fails rather than skipping the
# tests that need it; elsewhere those tests are skipped with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
WITH_INSTALLER=0
for arg in "$@"; do
  case "$arg" in
    --test) WITH_TEST=1 ;;
    --installer) WITH_INSTALLER=1 ;;
    *) echo "usage: scripts/setup.sh [--test] [--installer]" >&2; exit 2 ;;
  esac
done
CI_STRICT=${MICROLIB_CI:-0}

# Libraries Qt's xcb platform plugin and napari's OpenGL canvas load at run time.
DEB_PKGS="libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0 \
libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libxcb-xkb1 libx11-xcb1 \
libxrender1 libxi6 libsm6 libice6 tesseract-ocr"  # tesseract: reads thin scale-bar labels (optional)
[ "$WITH_TEST" = 1 ] && DEB_PKGS="$DEB_PKGS xvfb xauth"
[ -n "${MICROLIB_EXTRA_DEB:-}" ] && DEB_PKGS="$DEB_PKGS $MICROLIB_EXTRA_DEB"
# The SLURM build tests run a real single-node cluster (tests/slurm_cluster.py): Debian 12's SLURM
# 22.05 and munge 0.5.15 (security updates of those versions accepted), without recommends.
SLURM_PKGS=("slurmctld=22.05.8-*" "slurmd=22.05.8-*" "slurm-client=22.05.8-*" "munge=0.5.15-*")

# NAME or NAME=VERSION-GLOB: installed (at a matching version)?
installed() {
  local name=${1%%=*} want=${1#*=} st
  st=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null) || return 1
  case "$st" in "install ok installed "*) ;; *) return 1 ;; esac
  [ "$name" = "$1" ] && return 0
  # shellcheck disable=SC2053  # a glob on purpose
  [[ ${st#install ok installed } == $want ]]
}

missing_of() {
  local out="" p
  for p in "$@"; do installed "$p" || out="$out $p"; done
  echo "$out"
}

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

# apt-get install PKGS... (names, or NAME=VERSION-GLOB) without recommends.
apt_install() {
  echo "Installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${_APT_UPDATED:-}" ]; then
    apt-get update -qq || true
    _APT_UPDATED=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

say_missing() {
  echo "Missing Debian packages: $*"
  echo "Install them with: sudo apt-get install --no-install-recommends$(printf " '%s'" "$@")" >&2
}

if command -v dpkg-query >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  read -r -a missing <<<"$(missing_of $DEB_PKGS)"
  if [ ${#missing[@]} -gt 0 ]; then
    if can_apt; then
      apt_install "${missing[@]}"  # the app needs these: a failure stops the setup
    else
      say_missing "${missing[@]}"
      [ "$CI_STRICT" = 1 ] && { echo "setup: Debian packages missing (MICROLIB_CI=1)" >&2; exit 1; }
    fi
  fi
  if [ "$WITH_TEST" = 1 ]; then
    read -r -a missing <<<"$(missing_of "${SLURM_PKGS[@]}")"
    if [ ${#missing[@]} -gt 0 ]; then
      if ! { can_apt && apt_install "${missing[@]}"; }; then
        can_apt || say_missing "${missing[@]}"
        if [ "$CI_STRICT" = 1 ]; then
          echo "setup: the SLURM test cluster could not be installed (MICROLIB_CI=1)" >&2; exit 1
        fi
        echo "setup: SLURM is not installed: the SLURM build tests will be skipped" >&2
      fi
    fi
  fi
elif [ "$CI_STRICT" = 1 ]; then
  echo "setup: no dpkg here: cannot check or install the Debian packages (MICROLIB_CI=1)" >&2; exit 1
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras=()
[ "$WITH_TEST" = 1 ] && extras+=(test)
[ "$WITH_INSTALLER" = 1 ] && extras+=(installer)
spec="."
[ ${#extras[@]} -gt 0 ] && spec=".[$(IFS=,; echo "${extras[*]}")]"
# Skip the pip run when nothing changed since the last successful install of these extras.
stamp=".venv/.microlib-installed-$WITH_TEST"
[ "$WITH_INSTALLER" = 1 ] && stamp="$stamp-installer"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! .venv/bin/pip install -q "torch==2.13.0" -e "$spec" >.venv/pip-install.log 2>&1; then
    grep -v "is ignored: it is neither" .venv/pip-install.log | tail -30 >&2; exit 1
  fi
  .venv/bin/python -c "import microlib_gui, torch, PySide6, napari"
  [ "$WITH_INSTALLER" = 1 ] && .venv/bin/python -c "import PyInstaller"
  touch "$stamp"
fi
