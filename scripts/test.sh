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

# The Debian package of this build (cpack strips the RelWithDebInfo binary; no second
# build), installed on this machine and checked from the installed files.
deb=$(bash scripts/package.sh --from-build "$build" | tail -n 1)
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --reinstall "$(realpath "$deb")" >/dev/null
/usr/bin/vigie --version
/usr/bin/vigie check-config /etc/vigie/vigie.yaml
systemd-analyze verify /lib/systemd/system/vigie.service
echo "package: $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB) installed and checked"

ctest --test-dir "$build" --output-on-failure -j"$jobs" --timeout 600 "$@"

# ASan+UBSan, the fuzzers and TSan (README "Fuzzing and sanitizers"), part of every
# run (and so of CI); VIGIE_CI_SANITIZERS=0 skips them (a quick local run).
if [[ ${VIGIE_CI_SANITIZERS:-1} != 0 ]]; then
  bash scripts/sanitizers.sh
fi
