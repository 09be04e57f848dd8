#!/usr/bin/env bash
# ctest hardening.asan_tests: runs the test suite of the ASan+UBSan tree built by hardening.asan_build.
# Every sanitizer report is fatal (-fno-sanitize-recover=all, halt_on_error). What is left out and why
# is in tests/hardening/CMakeLists.txt (the EXCLUDE argument).
# usage: asan-tests.sh BINARY_DIR CTEST SUPPRESSIONS EXCLUDE_REGEX
set -euo pipefail
bin=$1 ctest=$2 suppressions=$3 exclude=$4
if [[ -f "$bin/SKIPPED" ]]; then echo "SKIP: $(cat "$bin/SKIPPED") (see hardening.asan_build)"; exit 77; fi
if [[ ! -f "$bin/CTestTestfile.cmake" ]]; then
  echo "no ASan tree at $bin: hardening.asan_build did not run or failed"
  exit 1
fi
# detect_leaks: LeakSanitizer runs at every test's exit. The suppressions are leaks inside libraries
# that are not ours (see the file). Symbolized stacks need llvm-symbolizer or addr2line (binutils).
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export LSAN_OPTIONS="suppressions=$suppressions:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
start=$(date +%s)
status=0
"$ctest" --test-dir "$bin" --output-on-failure -j2 -LE validation -E "$exclude" || status=$?
echo "asan tests: $(( $(date +%s) - start )) s"
exit $status
