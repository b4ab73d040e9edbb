#!/usr/bin/env bash
# Set up (first run) and start MicroLib Studio on its embedded demo library.
# Extra arguments go to microlib-gui (e.g. --library PATH instead of the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ "$#" -eq 0 ]; then set -- --demo; fi
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ -z "${QT_QPA_PLATFORM:-}" ]; then
  echo "No display found (DISPLAY is not set): starting on a virtual screen with xvfb-run." >&2
  MICROLIB_EXTRA_DEB="xvfb xauth" scripts/setup.sh
  exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/microlib-gui "$@"
fi
exec .venv/bin/microlib-gui "$@"
