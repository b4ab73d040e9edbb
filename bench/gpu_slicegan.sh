#!/usr/bin/env bash
# SliceGAN on one GPU: speed benchmark, then full-length quality trainings.
#
#   bash bench/gpu_slicegan.sh speed             # ~3 min: data prep, s/iter + TFLOP/s, generation, 2048^3 to disk
#     env: SLICEGAN_SECTIONS=train, SLICEGAN_MODES=bf16-graphs,bf16-graphs-nos2d (an A/B on one machine)
#   bash bench/gpu_slicegan.sh profile           # ~2 min: graph-timed pieces of an iteration (generator
#                                                  step parts too), kernels of graph replay and of an eager
#                                                  iteration, then the stages and kernels of a 512^3 generation
#   bash bench/gpu_slicegan.sh quality-start     # 3 x 5000-iteration trainings, one after another in the
#                                                  background (~4.5 min each on an H100; one at a time is
#                                                  faster than all at once, with or without MPS); the
#                                                  generator is kept every 1000 iterations and scored too
#     env: SLICEGAN_IMAGES="A.png B.png@joint", SLICEGAN_SEEDS=0,1, SLICEGAN_AUGMENT=1, SLICEGAN_ITERS=N
#   bash bench/gpu_slicegan.sh quality-wait SECS # wait up to SECS, then evaluate vf / surface-area errors
#   bash bench/gpu_slicegan.sh all               # speed, start the trainings, wait what is left of 9 minutes
#                                                  (then quality-wait again in a later call)
# Results go to $OUT (default bench/_out). Data: $MICROLIB_SHARED_DATA or ../shared/data.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/_out}
mkdir -p "$OUT"
DATA=${MICROLIB_SHARED_DATA:-../shared/data}
export PYTHONPATH=. PYTHONUNBUFFERED=1
WORK=${SLICEGAN_QUALITY_DIR:-/tmp/slicegan_quality}
IMAGES=${SLICEGAN_IMAGES:-"$DATA/microlib/micro006.png $DATA/microlib/micro010.png $DATA/microlib/micro054.png"}
SECTIONS=${SLICEGAN_SECTIONS:-train,generate,disk}
EMA=${SLICEGAN_EMA:-0.999}
SEEDS=${SLICEGAN_SEEDS:-0}  # e.g. 0,1: one run per image and seed
CRITIC_AXES=${SLICEGAN_CRITIC_AXES:-sequential}  # one run per image and variant; joint: one critic update for the three axes
AUG=${SLICEGAN_AUGMENT:+--augment}  # set: real patches under random flips and transposes
T0=$(date +%s)

speed() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
  python3 bench/bench_slicegan.py speed --device cuda --image "$DATA/microlib/micro006.png" \
    --sections "$SECTIONS" ${SLICEGAN_MODES:+--modes "$SLICEGAN_MODES"} --json-out "$OUT/speed.json" 2>&1 \
    | tee "$OUT/speed.log"
}

quality_start() {
  # fall back to eager iterations if graph capture failed or diverged in the speed run
  local extra=""
  if [ -f "$OUT/speed.json" ] && ! python3 -c "
import json,math,sys; r=json.load(open('$OUT/speed.json'))
row=[x for x in r.get('train',[]) if x['mode']=='bf16-graphs']
sys.exit(0 if row and 'error' not in row[0] and row[0]['graphs_used'] and math.isfinite(row[0]['critic_loss']) else 1)"; then
    extra="--no-graphs"; echo "quality: CUDA graphs off" | tee -a "$OUT/quality.log"
  fi
  SLICEGAN_TRAIN_EXTRA="$extra" python3 bench/bench_slicegan.py quality $IMAGES --workdir "$WORK" --iters "${SLICEGAN_ITERS:-5000}" \
    --device cuda --detach --ema "$EMA" --critic-axes "$CRITIC_AXES" --seeds "$SEEDS" $AUG 2>&1 | tee -a "$OUT/quality.log"
}

quality_wait() {
  python3 bench/bench_slicegan.py quality $IMAGES --workdir "$WORK" --iters "${SLICEGAN_ITERS:-5000}" --device cuda --evaluate-only \
    --wait "${1:-540}" --seeds "$SEEDS" --critic-axes "$CRITIC_AXES" $AUG --json-out "$OUT/quality.json" 2>&1 \
    | tee -a "$OUT/quality.log"
  for f in "$WORK"/*.log; do tail -n 30 "$f"; done > "$OUT/train_tails.log" 2>/dev/null
  tar -C "$WORK" -czf "$OUT/slices.tgz" $(cd "$WORK" && ls *_slice.tif 2>/dev/null) 2>/dev/null || true
}

profile() {
  python3 bench/profile_slicegan.py --device cuda --image "$DATA/microlib/micro006.png" \
    --json-out "$OUT/profile.json" 2>&1 | tee "$OUT/profile.log"
  python3 bench/profile_slicegan.py --device cuda --generate 512 \
    --json-out "$OUT/profile_generate.json" 2>&1 | tee "$OUT/profile_generate.log"
}

case "${1:-all}" in
  speed) speed ;;
  profile) profile ;;
  quality-start) quality_start ;;
  quality-wait) quality_wait "${2:-540}" ;;
  all)
    speed
    quality_start
    quality_wait $(( 540 - ($(date +%s) - T0) ))
    ;;
  *) echo "usage: $0 speed|profile|quality-start|quality-wait SECS|all" >&2; exit 2 ;;
esac
