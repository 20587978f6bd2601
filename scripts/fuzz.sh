#!/usr/bin/env bash
# Runs vigie's libFuzzer targets (tests/fuzz) for a bounded time each and fails on a
# crash, a leak, a hang (-timeout), too much memory (-rss_limit_mb) or a broken
# invariant. The targets must be built first (scripts/test.sh does it):
#   CC=clang CXX=clang++ cmake -S . -B build-san -G Ninja -DVIGIE_FUZZ=ON
#   cmake --build build-san --target health_page_fuzz conditions_fuzz config_fuzz http_server_fuzz
# Usage: scripts/fuzz.sh [target...]   (default: all)
# Env: FUZZ_SECONDS (60 per target), FUZZ_JOBS (targets at once, default: the cores),
#      VIGIE_FUZZ_BUILD_DIR (build-san).
# The seed corpora (tests/fuzz/corpus/<target>) are only read; what the run finds
# goes to $build/fuzz/<target>/corpus, crashes to $build/fuzz/<target>/, with the
# command that replays them.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc)}
build=${VIGIE_FUZZ_BUILD_DIR:-build-san}
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(health_page conditions config http_server)

declare -A max_len=([health_page]=8192 [conditions]=4096 [config]=8192 [http_server]=16384)

run_one() {
  local t=$1 bin="$build/tests/fuzz/${1}_fuzz" out="$build/fuzz/$1"
  if [[ ! -x $bin ]]; then
    echo "$t: $bin not built (configure with -DVIGIE_FUZZ=ON and build ${t}_fuzz)" >&2
    return 2
  fi
  mkdir -p "$out/corpus"
  local dict=()
  [[ -f tests/fuzz/$t.dict ]] && dict=(-dict="tests/fuzz/$t.dict")
  local start=$SECONDS rc=0
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -max_len="${max_len[$t]:-8192}" -print_final_stats=1 -artifact_prefix="$out/" \
    "${dict[@]}" "$out/corpus" "tests/fuzz/corpus/$t" >"$out/log" 2>&1 || rc=$?
  local runs cov
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/log" | grep -o '[0-9]*$' || true)
  cov=$(grep -oE '(DONE|pulse|NEW) +cov: [0-9]+' "$out/log" | tail -1 | grep -oE '[0-9]+$' || true)
  if [[ $rc -ne 0 ]]; then
    echo "FAIL $t (exit $rc after $((SECONDS - start)) s): last lines of $out/log:"
    grep -v '^#' "$out/log" | tail -n 40
    for a in "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* "$out"/slow-unit-*; do
      [[ -e $a ]] && echo "  replay: $bin $a"
    done
    return 1
  fi
  echo "ok   $t: ${runs:-?} inputs in $((SECONDS - start)) s, coverage ${cov:-?} edges," \
       "corpus $(ls "$out/corpus" | wc -l) + $(ls "tests/fuzz/corpus/$t" | wc -l) seeds"
}

status=0
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [[ $running -ge $jobs ]]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [[ $running -gt 0 ]]; do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
