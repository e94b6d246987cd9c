#!/usr/bin/env bash
# Builds one of the bare-metal kernels and boots it; exits with its status.
#
#   ci/qemu-boot.sh riscv64 selftest   # ci/bare-selftest on QEMU riscv64 virt (-bios none)
#   ci/qemu-boot.sh aarch64 selftest   # ci/bare-selftest on QEMU aarch64 virt (Cortex-A57)
#   ci/qemu-boot.sh x86_64 selftest    # ci/bare-selftest as a Linux process
#   ci/qemu-boot.sh riscv64 paging     # ci/bare-paging: demand paging through zswap (Sv39, U-mode)
#   ci/qemu-boot.sh aarch64 paging     # the same kernel on aarch64 (EL1, 39-bit VA, EL0 task)
#
# The kernel prints to the console (here: standard output) and ends the
# machine with its verdict (SiFive test device on riscv64, semihosting exit
# on aarch64): 0 pass, otherwise the failed check's number (see the
# kernel's sources). QEMU runs under a timeout (QEMU_BOOT_TIMEOUT seconds,
# default 120), so a hang fails with 124 instead of blocking.
#
# Installs what is missing with apt-get (Debian): qemu-system-misc
# (riscv64), qemu-system-arm (aarch64), clang and llvm (C zstd). The Rust
# targets come from rust-toolchain.toml (`rustup toolchain install`).
set -uo pipefail
cd "$(dirname "$0")/.."

usage() {
    echo "usage: $0 {riscv64|aarch64|x86_64} {selftest|paging}" >&2
    exit 64
}
[ $# -eq 2 ] || usage
arch=$1
mode=$2
timeout_s=${QEMU_BOOT_TIMEOUT:-120}

apt_updated=
need() { # need COMMAND PACKAGE
    command -v "$1" >/dev/null && return 0
    if [ -z "$apt_updated" ]; then
        apt-get update -qq || return 1
        apt_updated=1
    fi
    apt-get install -y -qq --no-install-recommends "$2" >/dev/null || return 1
}

case $arch in
riscv64)
    target=riscv64gc-unknown-none-elf
    qemu=(qemu-system-riscv64 -machine virt -bios none -nographic -m 128M)
    need qemu-system-riscv64 qemu-system-misc || exit 65
    ;;
aarch64)
    target=aarch64-unknown-none
    # -nic none: the default NIC wants an option ROM (ipxe-qemu) we skip.
    qemu=(qemu-system-aarch64 -machine virt -cpu cortex-a57 -nographic -semihosting -nic none -m 128M)
    need qemu-system-aarch64 qemu-system-arm || exit 65
    ;;
x86_64)
    target=x86_64-unknown-none
    qemu=()
    ;;
*) usage ;;
esac

case $mode in
selftest) pkg=ci/bare-selftest bin=bare-selftest ;;
paging)
    [ "$arch" != x86_64 ] || { echo "qemu-boot: paging runs on riscv64 and aarch64" >&2; exit 64; }
    pkg=ci/bare-paging bin=bare-paging
    ;;
*) usage ;;
esac

# C zstd for bare-metal targets: clang and llvm-ar (.cargo/config.toml).
need clang clang || exit 65
need llvm-ar llvm || exit 65

# Run from the repository root, so .cargo/config.toml's C recipe applies.
# `relocation-model=static`: x86_64 runs under Linux without a loader that
# relocates; the other targets link at fixed addresses anyway.
RUSTFLAGS="-C relocation-model=static" cargo build --release --quiet \
    --manifest-path "$pkg/Cargo.toml" --target "$target" --target-dir "target/$bin" || exit 65
kernel=target/$bin/$target/release/$bin

start=$(date +%s%N)
if [ ${#qemu[@]} -eq 0 ]; then
    timeout "$timeout_s" "$kernel"
else
    timeout "$timeout_s" "${qemu[@]}" -kernel "$kernel" </dev/null
fi
status=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
case $status in
0) verdict=pass ;;
124) verdict="hang: killed after ${timeout_s}s" ;;
*) verdict=fail ;;
esac
echo "qemu-boot: $arch $mode: exit status $status ($verdict) in ${ms} ms"
exit "$status"
