#!/usr/bin/env bash
# Set up (app + test tools) and run the whole test suite, GUI tests included, in a real
# X server (Xvfb) so napari's OpenGL canvas is exercised. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
export QT_QPA_PLATFORM=xcb
export MICROLIB_SETTINGS="${MICROLIB_SETTINGS:-$PWD/tests/_artifacts/settings.ini}"
mkdir -p tests/_artifacts
exec xvfb-run -a -s "-screen 0 1600x1000x24 +extension GLX" .venv/bin/python -m pytest -q -ra "$@"
