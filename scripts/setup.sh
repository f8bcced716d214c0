#!/usr/bin/env bash
# Installs what building and testing dualchain needs, idempotently:
# - Debian packages: clang/libclang (bindgen for RocksDB), a C++ toolchain, pkg-config,
#   fonts-dejavu-core (text in the devnet report plots), iproute2 (the e2e suite runs in
#   a private network namespace); containerd, runc, the CNI plugins, iptables, busybox-static,
#   file and binutils for the real-pod e2e tier (e2e/pods.sh: pods run in containers,
#   the validator image is written from the built binary);
# - a Rust toolchain with rustfmt and clippy (rustup, if cargo is missing).
# Build caches live outside the clone, under ${DUALCHAIN_CACHE:-~/.cache/dualchain}.
set -euo pipefail

need_pkgs=()
for pkg in clang libclang-dev g++ make pkg-config fonts-dejavu-core iproute2 \
  containerd runc containernetworking-plugins busybox-static iptables file binutils; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$pkg")
done
if ((${#need_pkgs[@]})); then
  echo "setup: installing ${need_pkgs[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

mkdir -p "${DUALCHAIN_CACHE:-$HOME/.cache/dualchain}"
echo "setup: ok (cache: ${DUALCHAIN_CACHE:-$HOME/.cache/dualchain})"
