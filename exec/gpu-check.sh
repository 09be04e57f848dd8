#!/usr/bin/env bash
# gpu-check.sh: the real-GPU check of parallax-exec's CUDA backend (cuBLAS + NCCL).
#
# Where it runs: a GPU node that has the NVIDIA driver (and perhaps the CUDA toolkit, cmake and ninja)
# but none of parallax's build dependencies: no MPI, protobuf, Boost or SimGrid packages. Building from
# the repository there is not realistic, so this script runs a PREBUILT x86-64 bundle:
#
#   bundle/bin/parallax-exec    (required; built with the CUDA backend, its MPI/protobuf/NCCL libs inside)
#   bundle/bin/parallax         (optional; `parallax simulate` + `parallax compare` for the prediction)
#   bundle/bin/mpirun           (optional; else mpirun from PATH, for the 2-rank runs)
#
# Make the bundle on a build machine with `scripts/make-exec-bundle.sh` and copy it here as ./bundle.
#
# What it does, from the repository root, writing into $OUT (default ./gpu-check-out):
#   1. one GPU: GPT-2 124M and GPT-2 1.5B (scenarios/gpt2-*-1gpu.pbtxt), 2 warm-up + 5 measured iterations;
#   2. with 2+ GPUs and an mpirun: 2-rank GPT-2 124M variants (tp 2 + sequence parallel, pp 2, dp 2 + ZeRO-1)
#      with --verify, which checks the data of every NCCL collective and pipeline transfer;
#   3. with bundle/bin/parallax: predicted vs measured for each 1-GPU run;
#   4. with bundle/bin/parallax-flash-check: the CUDA flash attention kernels (forward and backward,
#      causal, grouped-query) against the FP64 host reference, in BF16 and FP16, with their TFLOP/s
#      (written to $OUT/flash-check.txt).
# Exit status: 0 all runs passed, 2 no bundle / no GPU, otherwise the failing command's status.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-check-out}"
BUNDLE="${PARALLAX_BUNDLE:-bundle}"
mkdir -p "$OUT"
export PARALLAX_DATA_DIR="${PARALLAX_DATA_DIR:-$PWD/scenarios}"  # cluster/GPU presets for generated scenarios

EXEC="$BUNDLE/bin/parallax-exec"
if [[ ! -x "$EXEC" ]]; then
  echo "gpu-check: no $EXEC. On a build machine with parallax's dependencies run" >&2
  echo "  scripts/make-exec-bundle.sh" >&2
  echo "and copy the bundle to ./bundle here (or set PARALLAX_BUNDLE)." >&2
  exit 2
fi
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: nvidia-smi sees no GPU; the cuda backend needs one GPU per rank" >&2
  exit 2
fi
GPUS=$(nvidia-smi -L | grep -c '^GPU ')
echo "== $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1), $GPUS GPU(s)"

# 1. One GPU.
for name in gpt2-124m gpt2-1.5b; do
  echo "== $name on 1 GPU"
  timeout 600 "$EXEC" "scenarios/$name-1gpu.pbtxt" --backend cuda --warmup 2 --iterations 5 --watchdog 120 \
    -o "$OUT/$name.measured.pb"
done

# 2. Two ranks, one GPU each, results verified.
MPIRUN=""
if [[ -x "$BUNDLE/bin/mpirun" ]]; then MPIRUN="$BUNDLE/bin/mpirun"; elif command -v mpirun >/dev/null; then MPIRUN=mpirun; fi
if (( GPUS >= 2 )) && [[ -n "$MPIRUN" ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1  # containers often run as root
  # variant name, then sed edits of the 1-GPU scenario
  variants=(
    "tp2-sp|s/^  tp: 1$/  tp: 2\n  sequence_parallel: true/"
    "pp2|s/^  pp: 1$/  pp: 2/;s/global_batch_size: 8/global_batch_size: 16/"
    "dp2-zero1|s/^  dp: 1$/  dp: 2\n  zero_stage: 1/;s/global_batch_size: 8/global_batch_size: 16/"
  )
  for v in "${variants[@]}"; do
    name="gpt2-124m-${v%%|*}"
    sed -e "${v#*|}" -e "s/gpus_per_node: 1/gpus_per_node: 2/" -e "s/^name: .*/name: \"$name\"/" \
      scenarios/gpt2-124m-1gpu.pbtxt >"$OUT/$name.pbtxt"
    echo "== $name on 2 GPUs (--verify)"
    timeout 600 "$MPIRUN" -np 2 "$EXEC" "$OUT/$name.pbtxt" --backend cuda --verify --warmup 1 --iterations 2 \
      --watchdog 120 -o "$OUT/$name.measured.pb"
  done
else
  echo "== 2-rank runs skipped ($GPUS GPU(s), mpirun: ${MPIRUN:-none})"
fi

# 3. Predicted vs measured.
PARALLAX="$BUNDLE/bin/parallax"
if [[ -x "$PARALLAX" ]] && "$PARALLAX" compare --help >/dev/null 2>&1; then
  for name in gpt2-124m gpt2-1.5b; do
    echo "== $name: predicted vs measured"
    "$PARALLAX" simulate "scenarios/$name-1gpu.pbtxt" --timeline "$OUT/$name.predicted.pb" >/dev/null
    "$PARALLAX" compare "$OUT/$name.predicted.pb" "$OUT/$name.measured.pb"
  done
else
  echo "== no $PARALLAX with a compare command: measured timelines are in $OUT, compare them elsewhere with"
  echo "   parallax simulate SCENARIO --timeline P.pb && parallax compare P.pb $OUT/<name>.measured.pb"
fi
# 4. Flash attention kernels vs the FP64 reference, and their speed.
FLASH="$BUNDLE/bin/parallax-flash-check"
if [[ -x "$FLASH" ]]; then
  : >"$OUT/flash-check.txt"
  # Llama-3-8B-like heads on one rank (32 query heads, 8 kv heads, head_dim 128) at 2k tokens; a 64
  # head_dim with groups of 2; odd sizes that are no multiple of the tiles.
  for args in "--heads 32 --kv-heads 8 --seq 2048 --head-dim 128 --dtype bf16" \
              "--heads 32 --kv-heads 8 --seq 2048 --head-dim 128 --dtype fp16" \
              "--batch 2 --heads 16 --kv-heads 8 --seq 1024 --head-dim 64 --dtype bf16" \
              "--batch 3 --heads 6 --kv-heads 2 --seq 333 --head-dim 80 --dtype bf16" \
              "--heads 4 --kv-heads 4 --seq 200 --head-dim 96 --dtype fp32 --no-causal"; do
    echo "== flash attention: $args"
    # shellcheck disable=SC2086
    timeout 600 "$FLASH" $args --iterations 10 | tee -a "$OUT/flash-check.txt"
  done
else
  echo "== no $FLASH: flash attention check skipped (build with the CUDA backend and rerun make-exec-bundle.sh)"
fi
echo "== gpu-check passed; results in $OUT"
