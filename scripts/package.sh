#!/usr/bin/env bash
# Builds the Debian package vigie_<version>_<arch>.deb (README "Deploy").
#   bash scripts/package.sh                  Release build of the vigie target in
#                                            build-release/ (no tests), then cpack
#   bash scripts/package.sh --from-build DIR package the vigie already built in DIR
#                                            (CI packages its RelWithDebInfo test build:
#                                            cpack strips it, nothing is compiled again)
# Prints the path of the .deb on its last line. The container image runs the first form.
set -euo pipefail
cd "$(dirname "$0")/.."

build=""
if [[ "${1:-}" == "--from-build" ]]; then
  build=${2:?"--from-build needs a build directory"}
  [[ -x "$build/vigie" ]] || { echo "no vigie binary in $build: build it first" >&2; exit 1; }
else
  bash scripts/install-deps.sh --runtime-only
  build=${VIGIE_RELEASE_DIR:-build-release}
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DVIGIE_TESTS=OFF >/dev/null
  cmake --build "$build" -j"$(nproc)" --target vigie
fi
rm -f "$build"/vigie_*.deb
log=$(cd "$build" && cpack -G DEB 2>&1) || { echo "$log" >&2; exit 1; }
deb=$(ls "$build"/vigie_*.deb)
echo "$deb"
