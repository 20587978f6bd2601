#!/usr/bin/env bash
# Builds vigie and runs it on its demo configuration (examples/demo.yaml), whose
# targets are sample health pages served by vigie itself: no outside server needed.
# Then open http://127.0.0.1:9877/ (or the address given as first argument).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh --runtime-only
build=${VIGIE_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target vigie
listen=${1:-127.0.0.1:9877}
echo "vigie demo on http://$listen/  (metrics: /metrics, API: /api/v1/checks; Ctrl-C stops)"
exec "$build/vigie" demo --listen "$listen"
