#!/usr/bin/env bash
# ctest hardening.fuzz.<target>: runs one libFuzzer target (built by hardening.fuzz_build) for SECONDS on
# a fresh copy of its corpus in the repo (the repo's corpus is never written to). Fails on any crash,
# sanitizer report, timeout (10 s per input) or out-of-memory (2 GiB), printing the input.
# usage: fuzz-run.sh TARGET FUZZ_BINARY_DIR CORPUS_DIR SECONDS
set -uo pipefail
target=$1 bin=$2 corpus=$3 seconds=$4
fuzzer="$bin/fuzz/$target"
if [[ ! -x "$fuzzer" ]]; then
  if ! command -v clang++ > /dev/null; then
    echo "SKIP: clang++ not found, so no fuzzers were built; scripts/install-deps.sh installs clang"
    exit 77
  fi
  echo "no fuzzer at $fuzzer: hardening.fuzz_build failed or did not run"
  exit 1
fi
work="$bin/corpus-run/$target"
artifacts="$bin/artifacts/$target"
rm -rf "$work" "$artifacts"
mkdir -p "$work" "$artifacts"
cp -R "$corpus/." "$work/"
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$work"
status=$?
if [[ $status -ne 0 ]]; then
  echo "FAILED: $target found an input that crashes, hangs or exhausts memory (exit $status)."
  for f in "$artifacts"/*; do
    [[ -f "$f" ]] || continue
    echo "input $f ($(stat -c %s "$f") bytes), base64:"
    head -c 65536 "$f" | base64 -w 0
    echo
  done
  echo "Reproduce: $fuzzer INPUT. Fix the reader, add the input to tests/hardening/regressions/$target/ and a test."
  exit 1
fi
echo "corpus after the run: $(find "$work" -type f | wc -l) inputs"
