#!/usr/bin/env bash
# Installs the Debian 12 packages vigie's build, demo and tests need.
# Idempotent and quiet: does nothing when everything is already there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git curl ca-certificates openssl
  libboost1.81-all-dev libboost-json1.81-dev libboost-url1.81-dev
  libcurl4-openssl-dev prometheus-cpp-dev libpqxx-dev libfmt-dev libyaml-cpp-dev
  libspdlog-dev libcli11-dev libgtest-dev libgmock-dev libssl-dev
  libfuse3-dev fuse3 haproxy wrk
  nginx-light prometheus prometheus-alertmanager prometheus-blackbox-exporter postgresql
  chromium fonts-dejavu-core
  python3 python3-yaml systemd man-db
  clang libclang-rt-14-dev llvm
)
if [[ "${1:-}" == "--runtime-only" ]]; then
  packages=(build-essential cmake ninja-build ccache pkg-config
    libboost1.81-all-dev libboost-json1.81-dev libboost-url1.81-dev
    libcurl4-openssl-dev prometheus-cpp-dev libpqxx-dev libfmt-dev libyaml-cpp-dev
    libspdlog-dev libcli11-dev libssl-dev libgtest-dev libgmock-dev curl ca-certificates)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq >/dev/null
  # nginx/prometheus/postgresql packages would start system services: keep them off.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ "${1:-}" == "--runtime-only" ]] && exit 0

# The browser tests' npm packages (playwright-core, driving Debian's chromium; it
# downloads no browser of its own). Installed again only when package-lock.json
# changed since the last install.
browser="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
if [[ -f "$browser/package-lock.json" ]] &&
   ! cmp -s "$browser/package-lock.json" "$browser/node_modules/.vigie-package-lock.json"; then
  if ! command -v npm >/dev/null; then
    echo "npm not found: the browser tests need Node.js 20 or later with npm" >&2
    exit 1
  fi
  echo "installing the browser tests' npm packages (tests/browser)"
  (cd "$browser" && npm ci --no-audit --no-fund --silent)
  cp "$browser/package-lock.json" "$browser/node_modules/.vigie-package-lock.json"
fi
