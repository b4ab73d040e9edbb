#!/usr/bin/env bash
# Set up MicroLib Studio in ./.venv: Debian libraries Qt needs (installed when missing and
# running as root), then the package with its dependencies.
#   scripts/setup.sh          app only
#   scripts/setup.sh --test   app + test tools (pytest, Xvfb, ...)
# PyTorch: the CPU build torch==2.13.0 is pinned here; see the README for a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

# Libraries Qt's xcb platform plugin and napari's OpenGL canvas load at run time.
DEB_PKGS="libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0 \
libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xfixes0 libxcb-xkb1 libx11-xcb1 \
libxrender1 libxi6 libsm6 libice6 tesseract-ocr"  # tesseract: reads thin scale-bar labels (optional)
[ "$WITH_TEST" = 1 ] && DEB_PKGS="$DEB_PKGS xvfb xauth"
[ -n "${MICROLIB_EXTRA_DEB:-}" ] && DEB_PKGS="$DEB_PKGS $MICROLIB_EXTRA_DEB"

missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for p in $DEB_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "Installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "Missing Debian packages:$missing"
    echo "Install them with: sudo apt-get install$missing" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Skip the pip run when nothing changed since the last successful install.
stamp=".venv/.microlib-installed-$WITH_TEST"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  extras=""
  [ "$WITH_TEST" = 1 ] && extras="[test]"
  if ! .venv/bin/pip install -q "torch==2.13.0" -e ".${extras}" >.venv/pip-install.log 2>&1; then
    grep -v "is ignored: it is neither" .venv/pip-install.log | tail -30 >&2; exit 1
  fi
  .venv/bin/python -c "import microlib_gui, torch, PySide6, napari" 
  touch "$stamp"
fi
