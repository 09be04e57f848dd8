#!/usr/bin/env bash
# ctest hardening.fuzz_build: configures and builds the libFuzzer targets (fuzz/) with clang under
# BINARY_DIR, with ASan + UBSan, building only the libraries they need (traces, model).
# usage: fuzz-build.sh SOURCE_DIR BINARY_DIR CMAKE GENERATOR
set -euo pipefail
src=$1 bin=$2 cmake=$3 generator=$4
# Skip (exit 77) only when clang or libFuzzer is genuinely absent; scripts/install-deps.sh installs
# both (clang, libclang-rt-14-dev), so in CI this runs.
if ! command -v clang++ > /dev/null; then
  echo "SKIP: clang++ not found; scripts/install-deps.sh installs it (package clang)"
  exit 77
fi
fuzzer_lib="$(clang++ -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"
if [[ ! -f "$fuzzer_lib" ]]; then
  echo "SKIP: libFuzzer ($fuzzer_lib) not found; scripts/install-deps.sh installs it (package libclang-rt-14-dev)"
  exit 77
fi
start=$(date +%s)
"$cmake" -S "$src" -B "$bin" -G "$generator" -DCMAKE_CXX_COMPILER=clang++ -DPARALLAX_BUILD_FUZZERS=ON \
  -DPARALLAX_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo
"$cmake" --build "$bin"
echo "fuzz build: $(( $(date +%s) - start )) s"
