#!/usr/bin/env bash
# GAN inpainting quality and time on one GPU (issue 5), plus the fast method for reference.
# Run from anywhere on a machine whose python3 has torch+CUDA, numpy, scipy, scikit-image
# (the package need not be installed; no Qt needed):
#     OUT=/some/dir bash bench/gpu_inpaint.sh [SHARED_DATA_DIR]
# SHARED_DATA_DIR defaults to ../shared/data beside the repository. Results (JSON + inpaint.md)
# go to $OUT (default bench/_out). Finishes in under 8 minutes: the GAN runs at the default
# settings (1000 training iterations, 300 latent steps per region) and stops starting new
# images after a 6-minute budget; any image skipped for time is listed in the results.
set -euo pipefail
# Paths given relative to where the script was started from are resolved before moving to the repo.
if [ -n "${1:-}" ]; then DATA="$(cd "$1" && pwd)"; fi
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"; fi
cd "$(dirname "$0")/.."
DATA="${DATA:-../shared/data}"
OUT="${OUT:-bench/_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true; } > "$OUT/gpu.txt"
python3 - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("torch", torch.__version__, "on", torch.cuda.get_device_name(0))
PY
start=$(date +%s)
python3 bench/bench_inpaint.py --data "$DATA" --method both --device cuda --budget 360 --out "$OUT" \
    2>&1 | tee "$OUT/log.txt"
echo "total wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/log.txt"
