#!/usr/bin/env bash
# Every GPU measurement of the stacked trainer in one run of at most 8 minutes (issues #8,
# #19): environment, profiles of one step (kernels per block, operator counts), the
# throughput table of every stacked-step variant against the naive loop (ff-CNN and
# ff+sa-CNN at 1, 50 and 300 neurons), the compiled step, the c=375 model at its width and
# padded to a multiple of 8, and the precision check of the lean variant against float64
# on a small simulated site; then table.md (scripts/gpu_check_table.py).
#
#   scripts/gpu_check.sh OUT_DIR [SITE.npz]
#
# SITE.npz: the training arrays of a small simulated site, written by
#   python scripts/precision_check.py --dataset <site>.nc --export SITE.npz
# (a machine without netCDF4 reads the .npz). Without it the precision check is skipped.
# Every step writes under OUT_DIR as it goes and is bounded by `timeout` (the limits sum to
# 480 s; they were sized from the H200 run of 2026-11-27, docs/performance.md), so a cut
# run still leaves what it measured. SMOKE=1 runs everything at toy sizes on any device (to
# test the script itself on a CPU: compile uses the aot_eager backend there, and cuda_graph
# runs its static step eagerly).
set -uo pipefail
OUT="${1:?usage: scripts/gpu_check.sh OUT_DIR [SITE.npz]}"
SITE="${2:-}"
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY="${PYTHON:-python3}"
LOG="$OUT/log.txt"
CACHE="${TMPDIR:-/tmp}/sacnn-compile-cache"  # shared by the compiled steps, not brought back
step() {  # step NAME SECONDS FILE COMMAND...: run bounded, output appended to FILE and LOG
  local name=$1 limit=$2 file=$3; shift 3
  echo "== $name ($(date +%T), limit ${limit}s): $*" | tee -a "$LOG" "$file"
  local t0=$SECONDS
  timeout "$limit" "$@" >>"$file" 2>&1
  echo "== $name: exit $? after $((SECONDS - t0))s" | tee -a "$LOG" "$file"
}

LEAN="first_layer=gemm,conv_layout=channels_last,max_pool=uint8,attention=sdpa"
if [ "${SMOKE:-0}" = 1 ]; then
  ARCHS=(ff-CNN rf+sa-CNN)
  SIZES="--neurons 2 --images 60 --naive-images 30 --rounds 1 --channels 4 --profile-steps 1"
  BIG="--neurons 3 --images 60 --rounds 1 --channels 4 --profile-steps 1"
  ONE="--neurons 1 --images 60 --rounds 1 --channels 4 --profile-steps 1"
  WIDE=(--neurons 2 --images 50 --rounds 1 --skip-naive)
  WIDTHS=(8 9)
  PREC="--neurons 4 --epochs 1 --channels 4 --chunk 2 --precisions bf16 exact"
  PROF="--neurons 3 --steps 2"
  PROF1="--neurons 1 --steps 2"
  COMPILER=aot_eager
  DEV="${DEVICE:-cpu}"
else
  ARCHS=(ff-CNN ff+sa-CNN)
  SIZES="--neurons 1 50 300 --images 1000 --naive-images 200 --rounds 2"
  BIG="--neurons 300 --images 1000 --naive-images 200 --rounds 2"
  ONE="--neurons 1 --images 1000 --naive-images 200 --rounds 2"
  WIDE=(--neurons 32 --images 300 --rounds 2 --skip-naive)
  WIDTHS=(375 376)
  PREC="--epochs 6 --chunk 20 --precisions bf16"
  PROF="--neurons 300 --steps 10"
  PROF1="--neurons 1 --steps 20"
  COMPILER=inductor
  DEV="${DEVICE:-cuda}"
fi
STACKED=""
[ "$DEV" = cpu ] && STACKED="--strategy stacked"
COMPILED="$LEAN,compile=$COMPILER,compile_cache=$CACHE"
BENCH=("$PY" scripts/benchmark_training.py --device "$DEV" $STACKED --top-kernels 5
       --json "$OUT/bench.jsonl")

{
  date; uname -a; nvidia-smi 2>&1 | head -15
  "$PY" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'cudnn', torch.backends.cudnn.version(), 'numpy', numpy.__version__); \
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no cuda')"
  git rev-parse HEAD 2>/dev/null; git status --short 2>/dev/null | head -20
} >"$OUT/env.txt" 2>&1

step "profile ff-CNN, default step" 25 "$OUT/profile.txt" "$PY" \
  scripts/profile_stacked_step.py --device "$DEV" --architecture ff-CNN $PROF
step "profile ff-CNN, one neuron, operator counts" 25 "$OUT/profile.txt" "$PY" \
  scripts/profile_stacked_step.py --device "$DEV" --architecture ff-CNN $PROF1 --count-ops
step "throughput of every variant vs naive" 135 "$OUT/bench.txt" "${BENCH[@]}" $SIZES \
  --architectures "${ARCHS[@]}" --variant "default:" --variant "lean:$LEAN" \
  --variant "benchmark:cudnn_benchmark=true,conv_layout=channels_last" \
  --variant "graph:$LEAN,cuda_graph=true" --variant "graph-tf32:$LEAN,cuda_graph=true,precision=tf32"
step "compiled step, full chunks" 105 "$OUT/bench.txt" "${BENCH[@]}" $BIG \
  --architectures "${ARCHS[@]}" --variant "compiled:$COMPILED"
step "compiled step in a CUDA graph, one neuron" 45 "$OUT/bench.txt" "${BENCH[@]}" $ONE \
  --architectures ff-CNN --variant "compiled-graph:$COMPILED,cuda_graph=true"
for c in "${WIDTHS[@]}"; do
  step "rf+sa-CNN (c=375) at c=$c" 30 "$OUT/bench.txt" "${BENCH[@]}" "${WIDE[@]}" \
    --architectures "rf+sa-CNN (c=375)" --channels "$c"
done
if [ -n "$SITE" ]; then
  OPTS=()
  for o in ${LEAN//,/ }; do OPTS+=(--option "$o"); done
  step "precision of the lean step vs float64" 85 "$OUT/precision.txt" "$PY" \
    scripts/precision_check.py --dataset "$SITE" --device "$DEV" $PREC \
    --architectures "${ARCHS[@]}" "${OPTS[@]}" --json "$OUT/precision.jsonl"
fi
"$PY" scripts/gpu_check_table.py "$OUT" >"$OUT/table.md" 2>>"$LOG"
echo "== table: exit $? ($OUT/table.md)" | tee -a "$LOG"
echo "done $(date +%T)" | tee -a "$LOG"
