#!/bin/bash
# Host packages for the sdei-state arm64 KVM lab (Debian 12 x86_64, as root).
#  - qemu-system-arm : qemu-system-aarch64 (TCG; -M virt,virtualization=on emulates EL2)
#  - python3         : runs the lab and byte-compiles the guest's Python 3.11 on the host
#  - xz-utils, zstd  : kernel modules may be compressed either way
#  - ca-certificates : https apt sources
# and the arm64 foreign architecture, so `apt-get download <pkg>:arm64` works. The arm64
# packages are only unpacked (dpkg-deb -x) into the initramfs, never installed or run here.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "setup-host.sh: needs root (dpkg --add-architecture, apt-get install)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi
apt-get update -q
apt-get install -y -q --no-install-recommends \
  qemu-system-arm python3 xz-utils zstd ca-certificates
qemu-system-aarch64 --version | head -1
