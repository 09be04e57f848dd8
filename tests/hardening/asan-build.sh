#!/usr/bin/env bash
# ctest hardening.asan_build: configures and builds the whole project again under BINARY_DIR with
# AddressSanitizer + UndefinedBehaviorSanitizer on parallax's own code (cmake/Sanitizers.cmake), same
# compiler as the main build, -O1 with assertions on (no NDEBUG), no benchmarks and no GUI (Qt is not
# instrumented and the GUI reads files only through the readers that are).
# usage: asan-build.sh SOURCE_DIR BINARY_DIR CMAKE GENERATOR CXX_COMPILER
set -euo pipefail
src=$1 bin=$2 cmake=$3 generator=$4 cxx=$5

# Skip (exit 77) only when the compiler genuinely cannot sanitize; scripts/install-deps.sh installs
# what it needs, so in CI this runs.
rm -f "$bin/SKIPPED"
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
echo 'int main() { return 0; }' > "$probe/probe.cpp"
if ! "$cxx" -fsanitize=address,undefined "$probe/probe.cpp" -o "$probe/probe" 2> "$probe/err"; then
  echo "SKIP: $cxx cannot link -fsanitize=address,undefined (libasan/libubsan missing?):"
  cat "$probe/err"
  mkdir -p "$bin" && echo "$cxx cannot sanitize" > "$bin/SKIPPED"
  exit 77
fi

start=$(date +%s)
"$cmake" -S "$src" -B "$bin" -G "$generator" -DCMAKE_CXX_COMPILER="$cxx" \
  -DPARALLAX_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" -DPARALLAX_BUILD_BENCHMARKS=OFF -DPARALLAX_BUILD_GUI=OFF
"$cmake" --build "$bin"
echo "asan build: $(( $(date +%s) - start )) s"
