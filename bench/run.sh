#!/usr/bin/env bash
# vigie's benchmark in one command: builds vigie (RelWithDebInfo, -O2, as the .deb
# ships it) in build-release/, then measures every scenario and prints one table.
#   bench/run.sh            quick mode (under 3 minutes)
#   bench/run.sh --full     full mode: 3 runs of 30 s windows, medians (about 20 minutes)
#   bench/run.sh --full --results bench/RESULTS.md   also writes the table there
# Other options (--only sched,limit,hung,probe,serve, --sizes, --runs, --window, --json FILE)
# go to bench/bench.py. Needs nginx and wrk (and prometheus-blackbox-exporter for the
# /probe comparison): sudo apt-get install nginx wrk prometheus-blackbox-exporter
set -euo pipefail
cd "$(dirname "$0")/.."
build=${VIGIE_BENCH_BUILD_DIR:-build-release}
mode=quick
args=()
for a in "$@"; do
  case $a in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --smoke) mode=smoke ;;
    *) args+=("$a") ;;
  esac
done
for tool in nginx wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install nginx wrk util-linux)" >&2; exit 1; }
done
if [[ ${VIGIE_BENCH_NO_BUILD:-} != 1 ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIE_TESTS=OFF >/dev/null
  cmake --build "$build" --target vigie -j"$(nproc)" | tail -n 1
fi
exec python3 bench/bench.py --vigie "$build/vigie" --mode "$mode" ${args[@]+"${args[@]}"}
