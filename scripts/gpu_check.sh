#!/usr/bin/env bash
# Every GPU measurement of the stacked trainer in one run of about 8 minutes (issue #8):
# environment, a profile of one step, the throughput table (5 architectures x 1/32/300
# neurons against the naive loop), the precision/chunk check against float64 on a small
# simulated site, then precision and convolution variants and other chunk sizes.
#
#   scripts/gpu_check.sh OUT_DIR [SITE.npz]
#
# SITE.npz: the training arrays of a small simulated site, written by
#   python scripts/precision_check.py --dataset <site>.nc --export SITE.npz
# (a machine without netCDF4 reads the .npz). Without it the precision check is skipped.
# Every step writes under OUT_DIR as it goes and is bounded by `timeout`, so a cut run still
# leaves what it measured. SMOKE=1 runs everything at toy sizes on any device (to test the
# script itself on a CPU).
set -uo pipefail
OUT="${1:?usage: scripts/gpu_check.sh OUT_DIR [SITE.npz]}"
SITE="${2:-}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
LOG="$OUT/log.txt"
step() {  # step NAME SECONDS FILE COMMAND...: run bounded, output appended to FILE and LOG
  local name=$1 limit=$2 file=$3; shift 3
  echo "== $name ($(date +%T), limit ${limit}s): $*" | tee -a "$LOG" "$file"
  local t0=$SECONDS
  timeout "$limit" "$@" >>"$file" 2>&1
  echo "== $name: exit $? after $((SECONDS - t0))s" | tee -a "$LOG" "$file"
}

if [ "${SMOKE:-0}" = 1 ]; then
  BIG="--neurons 1 3 --images 100 --rounds 1 --architectures ff-CNN rf+sa-CNN"
  VAR="--neurons 3 --images 100 --rounds 1 --architectures ff-CNN"
  LARGE="--neurons 4 --images 100 --rounds 1 --architectures ff-CNN"
  PREC="--neurons 4 --epochs 1 --channels 4 --architectures ff-CNN --chunk 2 --precisions bf16 exact"
  WIDE=(--neurons 2 --images 50 --rounds 1)
  PROF="--neurons 3 --steps 2"
  DEV="${DEVICE:-cpu}"
else
  BIG="--neurons 1 32 300 --images 1000 --naive-images 200 --rounds 2"
  VAR="--neurons 300 --images 1000 --rounds 2 --skip-naive --architectures ff-CNN ff+sa-CNN"
  LARGE="--neurons 100 600 --images 1000 --rounds 2 --skip-naive --architectures ff-CNN"
  PREC="--epochs 6 --chunk 20"
  PROF="--neurons 300 --steps 10"
  WIDE=(--neurons 64 128 --images 300 --rounds 2)
  DEV="${DEVICE:-cuda}"
fi
STACKED=""
[ "$DEV" = cpu ] && STACKED="--strategy stacked"

{
  date; uname -a; nvidia-smi 2>&1 | head -15
  "$PY" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'cudnn', torch.backends.cudnn.version(), 'numpy', numpy.__version__); \
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda')"
  git rev-parse HEAD 2>/dev/null; git status --short 2>/dev/null | head -20
} >"$OUT/env.txt" 2>&1

step "profile ff-CNN" 60 "$OUT/profile.txt" "$PY" scripts/profile_stacked_step.py \
  --device "$DEV" --architecture ff-CNN $PROF
step "profile ff-CNN, gemm first layer" 60 "$OUT/profile.txt" "$PY" \
  scripts/profile_stacked_step.py --device "$DEV" --architecture ff-CNN $PROF --first-layer gemm
step "throughput vs naive" 180 "$OUT/bench.txt" "$PY" scripts/benchmark_training.py \
  --device "$DEV" $STACKED $BIG --json "$OUT/bench.jsonl"
if [ -n "$SITE" ]; then
  step "precision and chunks vs float64" 170 "$OUT/precision.txt" "$PY" \
    scripts/precision_check.py --dataset "$SITE" --device "$DEV" $PREC \
    --json "$OUT/precision.jsonl"
fi
for variant in "--first-layer gemm" "--precision tf32" "--precision exact" "--conv gemm"; do
  step "variant $variant" 40 "$OUT/bench.txt" "$PY" scripts/benchmark_training.py \
    --device "$DEV" $STACKED $VAR $variant --json "$OUT/bench.jsonl"
done
step "c=375 at larger chunks" 60 "$OUT/bench.txt" "$PY" scripts/benchmark_training.py \
  --device "$DEV" $STACKED "${WIDE[@]}" --skip-naive --architectures "rf+sa-CNN (c=375)" \
  --json "$OUT/bench.jsonl"
step "larger chunks" 60 "$OUT/bench.txt" "$PY" scripts/benchmark_training.py \
  --device "$DEV" $STACKED $LARGE --json "$OUT/bench.jsonl"
echo "done $(date +%T)" | tee -a "$LOG"
