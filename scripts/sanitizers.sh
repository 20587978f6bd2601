#!/usr/bin/env bash
# The sanitizer stage of CI (scripts/test.sh; VIGIE_CI_SANITIZERS=0 skips it):
#  1. build-san: clang, AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer
#     coverage: every unit test, the fuzz corpora replayed, and the integration tests
#     labelled asan; any report fails the test (no recovery, leaks included);
#  2. the fuzzers, FUZZ_SECONDS (60) each, two at a time (scripts/fuzz.sh);
#  3. build-tsan: clang, ThreadSanitizer: the tests labelled tsan (worker pools, the
#     disk and PostgreSQL probes, the history store's writer, reload).
# Builds go through ccache like the main build. Env: VIGIE_SAN_STAGES (default
# "asan fuzz tsan") to run only some.
set -euo pipefail
cd "$(dirname "$0")/.."

stages=${VIGIE_SAN_STAGES:-asan fuzz tsan}
jobs=$(nproc)
export CC=clang CXX=clang++
# Sanitizer reports name the source line; every report is an error.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}

stamp() { echo "[sanitizers $(date +%T)] $*"; }
t0=$SECONDS

if [[ " $stages " == *" asan "* || " $stages " == *" fuzz "* ]]; then
  stamp "build-san: configure and build (clang, address+undefined, fuzzers)"
  cmake -S . -B build-san -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIE_FUZZ=ON >/dev/null
  cmake --build build-san -j"$jobs"
  stamp "build-san built ($((SECONDS - t0)) s)"
fi
if [[ " $stages " == *" asan "* ]]; then
  t=$SECONDS
  ctest --test-dir build-san --output-on-failure -j"$jobs" --timeout 600 -L 'unit|asan'
  stamp "ASan+UBSan tests passed ($((SECONDS - t)) s)"
fi
if [[ " $stages " == *" fuzz "* ]]; then
  t=$SECONDS
  FUZZ_JOBS=$jobs bash scripts/fuzz.sh
  stamp "fuzzers passed ($((SECONDS - t)) s)"
fi
if [[ " $stages " == *" tsan "* ]]; then
  t=$SECONDS
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIE_SANITIZE=thread >/dev/null
  # Only what the tsan tests need (and vigie itself, which the e2e tests run).
  targets=$(grep -ho 'vigie_test([a-z_]* [^)]*LABEL[^)]*tsan' tests/CMakeLists.txt |
            sed 's/vigie_test(\([a-z_]*\).*/\1/' | sort -u)
  cmake --build build-tsan -j"$jobs" --target vigie $targets
  ctest --test-dir build-tsan --output-on-failure -j"$jobs" --timeout 600 -L tsan
  stamp "TSan tests passed ($((SECONDS - t)) s)"
fi
stamp "all passed in $((SECONDS - t0)) s"
