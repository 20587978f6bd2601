#!/usr/bin/env bash
# Builds vigie and runs every test. Installs what is missing first (Debian 12).
# The tests start the servers they use (nginx, ...) themselves, on loopback and
# free ports, and stop them after.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
build=${VIGIE_BUILD_DIR:-build}
jobs=$(nproc)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVIGIE_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs"
ctest --test-dir "$build" --output-on-failure -j"$jobs" --timeout 600 "$@"
