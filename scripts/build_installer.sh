#!/usr/bin/env bash
# Build the one-folder desktop app from a fresh clone: dist/MicroLibStudio/microlib-studio
# Then run its self-test. Usage: scripts/build_installer.sh [--no-self-test]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/pip install -q "pyinstaller>=6" 2>&1 | grep -v "is ignored: it is neither" || true
start=$(date +%s)
.venv/bin/pyinstaller --noconfirm --log-level WARN build_installer.spec
echo "built dist/MicroLibStudio in $(( $(date +%s) - start )) s, $(du -sh dist/MicroLibStudio | cut -f1)"
if [ "${1:-}" != "--no-self-test" ]; then
  dist/MicroLibStudio/microlib-studio --self-test
fi
