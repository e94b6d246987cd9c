#!/bin/sh
# C compiler for zstd-sys on bare-metal targets (*-none*), set as CC_<target>
# in .cargo/config.toml. Freestanding clang: no libc headers (the shims in
# zstd-shim/include stand in for them), no stack protector, no zstd tracing,
# no asserts. Override the compiler with ZSWAP_CLANG (e.g. clang-14).
here=$(cd "$(dirname "$0")" && pwd)
exec "${ZSWAP_CLANG:-clang}" -ffreestanding -nostdlibinc -I"$here/zstd-shim/include" \
    -fno-stack-protector -DZSTD_NO_TRACE -DNDEBUG "$@"
