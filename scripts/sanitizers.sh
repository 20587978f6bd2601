#!/usr/bin/env bash
# The sanitizer stage, run by scripts/test.sh (CI) after the tests (VIGIE_CI_SANITIZERS=0 skips it):
#  1. build-san: clang, AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer
#     coverage: the whole suite (unit, integration, browser; not the packaging tests
#     and three wall-clock measurements) and the fuzz corpora replayed; any report
#     fails the test (no recovery, leaks included);
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

# ccache hits across checkouts (CI clones into a new folder each time).
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}

stamp() { echo "[sanitizers $(date +%T)] $*"; }
t0=$SECONDS

# The vigie_test() targets of tests/CMakeLists.txt whose labels match the regex $1
# (a test without LABEL is unit).
tests_labelled() {
  local line name labels
  grep -ho 'vigie_test([a-z0-9_]* [^)]*' tests/CMakeLists.txt | while read -r line; do
    name=$(sed 's/vigie_test(\([a-z0-9_]*\).*/\1/' <<<"$line")
    labels=$(sed -n 's/.* LABEL \(.*\)/\1/p' <<<"$line")
    [[ " ${labels:-unit} " =~ \ ($1)\  ]] && echo "$name"
  done
  return 0
}

if [[ " $stages " == *" asan "* || " $stages " == *" fuzz "* ]]; then
  stamp "build-san: configure and build (clang, address+undefined, fuzzers)"
  cmake -S . -B build-san -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIE_FUZZ=ON >/dev/null
  # What the stages run: the fuzzers; with asan every test, vigie (which the
  # integration and browser tests start) and the render smoke test.
  targets=(health_page_fuzz conditions_fuzz config_fuzz http_server_fuzz)
  if [[ " $stages " == *" asan "* ]]; then
    targets+=(vigie vigie_bench_render $(tests_labelled 'unit|integration'))
  fi
  cmake --build build-san -j"$jobs" --target "${targets[@]}"
  stamp "build-san built ($((SECONDS - t0)) s)"
fi
if [[ " $stages " == *" asan "* ]]; then
  t=$SECONDS
  # The whole suite (unit, integration, the browser test), but: wall-clock budgets
  # mean nothing 2 to 10 times slower (two tests, and the wrk flood that measures
  # throughput), and the packaging tests check the installed .deb of the main build.
  skip='Conditions.CatastrophicRegexIsAFailedConditionNotAThrow|Engine.LagIsMeasured'
  skip+='|ServerUnderLoad\.|^packaging_'
  ctest --test-dir build-san --output-on-failure -j"$jobs" --timeout 600 -L 'unit|integration' \
    -LE fuzz -E "$skip"
  stamp "ASan+UBSan tests passed ($((SECONDS - t)) s)"
fi
if [[ " $stages " == *" fuzz "* ]]; then
  t=$SECONDS
  # Every seed, and every input that once found a bug, first (CTest label fuzz).
  ctest --test-dir build-san --output-on-failure -j"$jobs" -L fuzz
  FUZZ_JOBS=$jobs bash scripts/fuzz.sh
  stamp "fuzzers passed ($((SECONDS - t)) s)"
fi
if [[ " $stages " == *" tsan "* ]]; then
  t=$SECONDS
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIE_SANITIZE=thread >/dev/null
  # Only what the tsan tests need (and vigie itself, which the e2e tests run).
  cmake --build build-tsan -j"$jobs" --target vigie $(tests_labelled tsan)
  ctest --test-dir build-tsan --output-on-failure -j"$jobs" --timeout 600 -L tsan
  stamp "TSan tests passed ($((SECONDS - t)) s)"
fi
stamp "all passed in $((SECONDS - t0)) s"
