#!/usr/bin/env bash
# Build the one-folder desktop app from a fresh clone: dist/MicroLibStudio/microlib-studio
# Then run its self-test. Usage: scripts/build_installer.sh [--no-self-test]
# PyInstaller comes from scripts/setup.sh --installer (pinned in pyproject.toml's "installer" extra).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --installer
start=$(date +%s)
.venv/bin/pyinstaller --noconfirm --log-level WARN build_installer.spec
echo "built dist/MicroLibStudio in $(( $(date +%s) - start )) s, $(du -sh dist/MicroLibStudio | cut -f1)"
if [ "${1:-}" != "--no-self-test" ]; then
  dist/MicroLibStudio/microlib-studio --self-test
fi
