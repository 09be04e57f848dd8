#!/usr/bin/env bash
# Install parallax's build and test dependencies on Debian 12 (bookworm), only those that are missing.
# Uses sudo only when not run as root; runs apt-get update only if something has to be installed.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libsimgrid-dev libboost-graph-dev
  libprotobuf-dev protobuf-compiler
  qt6-base-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  libopenmpi-dev openmpi-bin
  libopenblas-dev
  zlib1g-dev
  clang libclang-rt-14-dev llvm-14  # hardening: libFuzzer targets; llvm-symbolizer for sanitizer stacks
)

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
echo "install-deps: done"
