#!/usr/bin/env bash
# Tries parallax as a hostile or careless user would: bad numbers in scenarios, special and endless files,
# impossible timelines and tables, wrong options, aliased and unwritable outputs, enormous jobs, killed
# parents. Each probe says what a correct program does (refuse with a message, or succeed); the run is
# classified as ok, clear error, accepted-invalid (exit 0 where an error was due), silent-wrong (a check on the
# output failed), internal error (exit 70), crash (a signal) or hang (the time limit), and the totals are
# printed per class. Not a test of the default tier: it takes a few minutes and needs mpirun and protoc.
# The tests in tests/hardening/ pin each fixed behaviour; this script is for finding the next ones.
# usage: scripts/probe-bad-input.sh [BUILD_DIR] (default build); run from the repository root.
set -uo pipefail
B=${1:-build}
P="$B/cli/parallax"
[[ -x $P ]] || { echo "no $P: build first"; exit 2; }
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
S=scenarios/tiny-gpt-cpu.pbtxt
LIMIT=${PROBE_TIMEOUT_S:-30}
declare -A total
rows=()

v() { sed "s|preset: \"cpu-laptop\"|preset: \"cpu-laptop\" $2|" $S > "$W/$1.pbtxt"; }
v2() { sed "s|preset: \"cpu-laptop\"|preset: \"cpu-laptop\" $2|; s|num_nodes: 1 |num_nodes: 2 |; s|dp: 2\$|dp: 4|" $S > "$W/$1.pbtxt"; }
dec() { protoc --decode="parallax.$1" -Itraces parallax.proto; }
enc() { protoc --encode="parallax.$1" -Itraces parallax.proto; }

# probe EXPECT NAME CHECK -- COMMAND...: EXPECT is error, ok or leftover (exit 0: no process left behind); CHECK a shell snippet that must succeed after
# the run ("" for none), run with $rc set.
probe() {
  local expect=$1 name=$2 check=$3
  shift 4
  local start end rc class
  start=$(date +%s.%N)
  (ulimit -v 4194304; timeout -s KILL "$LIMIT" "$@" > "$W/out" 2> "$W/err" < /dev/null)
  rc=$?
  end=$(date +%s.%N)
  if [[ $rc -eq 137 ]] && (($(echo "$end - $start >= $LIMIT - 0.5" | bc))); then class=hang
  elif [[ $rc -ge 128 ]]; then class=crash
  elif [[ $rc -eq 70 ]]; then class=internal
  elif [[ $expect == leftover ]]; then [[ $rc -eq 0 ]] && class=ok || class=leftover-process
  elif [[ $expect == error && $rc -eq 0 ]]; then class=accepted-invalid
  elif [[ $expect == ok && $rc -ne 0 ]]; then class=wrong-error
  elif [[ -n $check ]] && ! (eval "$check") > /dev/null 2>&1; then class=silent-wrong
  elif [[ $expect == error ]]; then class=clear-error
  else class=ok; fi
  total[$class]=$((${total[$class]:-0} + 1))
  rows+=("$(printf '%-16s %-44s exit %3d %6.1f s  %s' "$class" "$name" "$rc" "$(echo "$end - $start" | bc)" \
    "$(head -c 150 "$W/err" | head -1)")")
}

# --- F1, F16: numbers in scenarios ---
for f in "intra_node { bandwidth_efficiency: X }" "intra_node { latency_us: X }" "intra_node { gb_per_s: X }" \
  "gpu { kernel_overhead_us: X }" "gpu { peak_fp32_tflops: X }" "gpu { hbm_gb: X }" "gpu { memory_bound_efficiency: X }"; do
  for x in nan inf -inf 0 -1 1e300; do
    # latency 0 and kernel overhead 0 are valid
    expect=error
    [[ $x == 0 && ($f == *latency_us* || $f == *kernel_overhead_us*) ]] && expect=ok
    n="$(echo "$f" | tr -dc 'a-z_')-$x"
    v "$n" "${f/X/$x}"
    probe $expect "simulate $n" "" -- "$P" simulate "$W/$n.pbtxt"
  done
done
for f in "nic_bandwidth_efficiency: X" "nic_gbit_per_s: X" "nic_latency_us: X" "inter_node { switch_latency_us: X }" \
  "inter_node { oversubscription: X }"; do
  for x in nan inf 0 -1; do
    expect=error
    [[ $x == 0 && $f == *latency_us* ]] && expect=ok
    n="2n-$(echo "$f" | tr -dc 'a-z_')-$x"
    v2 "$n" "${f/X/$x}"
    probe $expect "simulate $n" "" -- "$P" simulate "$W/$n.pbtxt"
  done
done
v bweff0 'intra_node { bandwidth_efficiency: 0 }'
probe error "inspect bweff0" "" -- "$P" inspect "$W/bweff0.pbtxt"
probe error "export-chakra bweff0" "" -- "$P" export-chakra "$W/bweff0.pbtxt" -o "$W/ec"
sed 's/recompute: NO_RECOMPUTE/recompute: NO_RECOMPUTE grad_bucket_mb: inf/' $S > "$W/bucketinf.pbtxt"
probe error "simulate grad_bucket_mb inf" "" -- "$P" simulate "$W/bucketinf.pbtxt"
printf '%s\noptions { token_budget: nan }\n' "$(cat $S)" > "$W/budgetnan.pbtxt"
probe error "simulate token_budget nan" "" -- "$P" simulate "$W/budgetnan.pbtxt"
v longfloat "gpu { peak_fp32_tflops: 1$(printf '0%.0s' $(seq 1 400)) }"
probe error "simulate 400-digit peak" "" -- "$P" simulate "$W/longfloat.pbtxt"
# F4: a dp*tp*pp product that wraps to the GPU count
printf 'name: "wrap4"\nmodel { num_layers: 27905 hidden_size: 384773 num_heads: 384773 seq_length: 8 vocab_size: 1024 precision: FP32 }\ncluster { preset: "cpu-laptop" num_nodes: 1 }\nlayout { dp: 1718039348 tp: 384773 pp: 27905 micro_batch_size: 1 global_batch_size: 1718039348 }\n' > "$W/wrap4.pbtxt"
probe error "inspect wrap4 (dp*tp*pp wraps)" "" -- "$P" inspect "$W/wrap4.pbtxt"
# F18: preset names are names
sed 's|preset: "cpu-laptop"|preset: "../../../../../../etc/passwd"|' $S > "$W/passwd.pbtxt"
probe error "preset ../../etc/passwd" "! grep -q root $W/err" -- "$P" inspect "$W/passwd.pbtxt"
probe error "plan --cluster /etc/passwd" "" -- "$P" plan gpt2-1.5b --gpus 8 --global-batch 64 --cluster /etc/passwd

# --- F2, F17: files ---
mkdir -p "$W/adir.pbtxt" "$W/adir.pb"
probe error "inspect /dev/zero" "" -- "$P" inspect /dev/zero
probe error "calibrate /dev/zero" "" -- "$P" calibrate /dev/zero -o "$W/cal.pbtxt"
probe error "simulate --calibration /dev/zero" "" -- "$P" simulate $S --calibration /dev/zero
probe error "simulate DIR" "grep -qi director $W/err" -- "$P" simulate "$W/adir.pbtxt"
probe error "simulate --calibration DIR" "" -- "$P" simulate $S --calibration "$W/adir.pbtxt"

# --- F3, F7: enormous jobs ---
sed 's/global_batch_size: 16/global_batch_size: 4000000/; s/micro_batch_size: 2/micro_batch_size: 1/' $S > "$W/gbs4m.pbtxt"
probe error "inspect 4M micro-batches" "" -- "$P" inspect "$W/gbs4m.pbtxt"
sed 's/global_batch_size: 16/global_batch_size: 2147483644/' $S > "$W/gbsmax.pbtxt"
probe error "inspect global batch 2^31-4" "" -- "$P" inspect "$W/gbsmax.pbtxt"
sed 's/token_budget: 3e11/token_budget: 3e11 use_symmetry: false/' scenarios/gpt3-175b-1024gpu.pbtxt > "$W/nosym.pbtxt"
probe error "inspect gpt3 without symmetry" "" -- "$P" inspect "$W/nosym.pbtxt"
probe error "export-chakra gpt3-175b-1024gpu" "" -- "$P" export-chakra scenarios/gpt3-175b-1024gpu.pbtxt -o "$W/g3"
probe error "plan with global batch 2^30 (no layout simulable)" "grep -q PARALLAX_MAX_TASKS $W/err" -- "$P" plan gpt2-1.5b --gpus 8 --cluster dgx-a100-80g --global-batch 1073741824 --top 1

# --- F8, F11, F16: gates and tables ---
probe error "validate --only NOPE --max-mape 5" "" -- "$P" validate validation/public.tsv --only NOPE --max-mape 5
head -1 validation/public.tsv > "$W/header.tsv"
probe error "validate header-only table" "" -- "$P" validate "$W/header.tsv" --max-mape 5
(grep '^id' validation/public.tsv; grep '^K1' validation/public.tsv | awk -F'\t' -v OFS='\t' '{$21="inf"; print}') > "$W/inf.tsv"
probe error "validate measured inf" "" -- "$P" validate "$W/inf.tsv" --max-mape 5
(grep '^id' validation/public.tsv; grep '^K1' validation/public.tsv; grep '^K1' validation/public.tsv) > "$W/dup.tsv"
probe error "validate duplicate ids" "" -- "$P" validate "$W/dup.tsv"
v ovhnan 'gpu { kernel_overhead_us: nan }'
probe error "plan on a crashing cluster" "" -- "$P" plan "$W/ovhnan.pbtxt" --top 2
probe error "plan --only without --table" "" -- "$P" plan gpt2-1.5b --gpus 8 --global-batch 64 --cluster dgx-a100-80g --only K1 --top 1

# --- F9, F10: timelines ---
"$P" simulate $S --timeline "$W/p.pb" > /dev/null 2>&1
if command -v mpirun > /dev/null && mpirun --allow-run-as-root --oversubscribe -np 4 "$P" exec $S --warmup 0 --iterations 1 -o "$W/m.pb" > /dev/null 2>&1; then
  dec Timeline < "$W/m.pb" | sed '0,/end_s: [0-9.e-]*/s//end_s: -5/' | enc Timeline > "$W/m-neg.pb"
  probe error "compare: event ends before it starts" "" -- "$P" compare "$W/p.pb" "$W/m-neg.pb" --top 2
  dec Timeline < "$W/m.pb" | sed '0,/end_s: [0-9.e-]*/s//end_s: 1e300/' | enc Timeline > "$W/m-huge.pb"
  probe error "compare: event ends at 1e300 s" "" -- "$P" compare "$W/p.pb" "$W/m-huge.pb" --top 2
  dec Timeline < "$W/m.pb" | python3 -c "import re,sys; sys.stdout.write(re.sub(r'(?s)events \{.*?\n\}\n', '', sys.stdin.read()))" | enc Timeline > "$W/m-empty.pb"
  probe error "compare: no measured events" "" -- "$P" compare "$W/p.pb" "$W/m-empty.pb"
  probe error "calibrate: no measured events" "" -- "$P" calibrate "$W/m-empty.pb" -o "$W/cal.pbtxt"
  dec Timeline < "$W/m.pb" | sed '0,/num_layers: 4/s//num_layers: 6/' | enc Timeline > "$W/m-l6.pb"
  probe error "calibrate: events of another job" "" -- "$P" calibrate "$W/m-l6.pb" -o "$W/cal.pbtxt"
  # F14: output = input
  cp "$W/m.pb" "$W/m2.pb"
  probe error "calibrate m.pb -o m.pb" "cmp -s $W/m.pb $W/m2.pb" -- "$P" calibrate "$W/m2.pb" -o "$W/m2.pb"
  # F5: the watchdog's value
  probe error "exec --watchdog nan" "" -- mpirun --allow-run-as-root --oversubscribe -np 4 "$P" exec $S --warmup 0 --iterations 1 --watchdog nan -o "$W/mw.pb"
  probe error "exec --watchdog 0" "" -- mpirun --allow-run-as-root --oversubscribe -np 4 "$P" exec $S --warmup 0 --iterations 1 --watchdog 0 -o "$W/mw.pb"
else
  echo "(mpirun missing or exec failed: timeline and executor probes skipped)"
fi

# --- F12, F13, F14: outputs ---
cp $S "$W/s.pbtxt"
probe error "inspect s.pbtxt -o s.pbtxt" "cmp -s $S $W/s.pbtxt" -- "$P" inspect "$W/s.pbtxt" -o "$W/s.pbtxt"
probe error "simulate --timeline X --chrome X" "" -- "$P" simulate $S --timeline "$W/same" --chrome "$W/same"
probe error "simulate --timeline ''" "" -- "$P" simulate $S --timeline ''
probe error "plan --csv /dev/full" "" -- "$P" plan gpt2-1.5b --gpus 8 --global-batch 64 --cluster dgx-a100-80g --top 1 --csv /dev/full
"$P" simulate $S --timeline "$W/keep.pb" > /dev/null 2>&1
cp "$W/keep.pb" "$W/keep0.pb"
# The file-size limit kills the writer (SIGXFSZ) or fails its write: either way the old file must survive.
probe error "interrupted write keeps the old file" "cmp -s $W/keep.pb $W/keep0.pb" -- bash -c "ulimit -f 8; $P simulate $S --timeline $W/keep.pb > /dev/null || exit 1"
sed 's/^name: "tiny-gpt-cpu"/name: "\\377\\376"/' $S > "$W/nonutf8.pbtxt"
probe ok "simulate --json of a non-UTF-8 name" "python3 -c 'import json,sys; json.loads(open(\"$W/out\",\"rb\").read().decode())'" -- "$P" simulate "$W/nonutf8.pbtxt" --json
probe ok "export-chakra of a non-UTF-8 name reads back" "$P simulate --chakra $W/nu --cluster cpu-laptop" -- "$P" export-chakra "$W/nonutf8.pbtxt" -o "$W/nu"

# --- F15: a child outlives its parent ---
orphan_check() {
  "$P" validate validation/public.tsv --only N9 > /dev/null 2>&1 &
  local parent=$! child=""
  for _ in $(seq 1 50); do child=$(pgrep -P $parent | head -1); [[ -n $child ]] && break; sleep 0.1; done
  kill -TERM $parent; sleep 2
  if [[ -n $child ]] && kill -0 "$child" 2> /dev/null; then kill -KILL "$child"; return 1; fi
  return 0
}
probe leftover "validate's row worker dies with its parent" "" -- bash -c "$(declare -f orphan_check); P=$P; orphan_check"

echo
printf '%s\n' "${rows[@]}"
echo
all=0
for c in ok clear-error accepted-invalid wrong-error silent-wrong internal crash hang leftover-process; do
  printf '%-17s %4d\n' "$c" "${total[$c]:-0}"
  all=$((all + ${total[$c]:-0}))
done
printf '%-17s %4d\n' all "$all"
