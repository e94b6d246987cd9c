//! # bare-selftest: the whole zswap stack in a freestanding kernel
//!
//! A `#![no_std]`, `#![no_main]` binary that plays a minimal kernel and runs
//! zswap on it: proof that a hobby kernel can link and run the crates with
//! nothing but `core` and `alloc`.
//!
//! The kernel brings: boot code and a console per machine (`arch`), a
//! global allocator (`heap`: size-class free lists over a static arena,
//! null on exhaustion), a page allocator (`frames`: a free list of frames
//! over a static arena, counting bad frees), two CPUs, the swap platform, a
//! memory cgroup tree with one cgroup, an in-memory swap device, and
//! zswap's platform (`kernel`). The self-test (`selftest`) then swaps pages
//! out and in, writes some back, frees the rest, switches the compressor
//! from lz4 to C zstd, provokes reclaim from a swap-in charge, and checks
//! data and counters throughout.
//!
//! Where it runs:
//!
//! - riscv64: QEMU `virt`, `-bios none` (M-mode, NS16550 console, SiFive
//!   test device for the exit status);
//! - aarch64: QEMU `virt`, Cortex-A57 (EL1, PL011 console, semihosting
//!   exit);
//! - x86_64: a Linux process (standard output, Linux's exit syscall).
//!
//! `ci/qemu-boot.sh ARCH selftest` builds and boots it. It prints each check
//! as it runs and a last line with the counts. Exit status: 0 pass, 101
//! panic, 200 a CPU exception, otherwise the number of the failed check
//! (the table in `selftest`).
#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

#[cfg_attr(target_arch = "aarch64", path = "arch/aarch64.rs")]
#[cfg_attr(target_arch = "riscv64", path = "arch/riscv64.rs")]
#[cfg_attr(target_arch = "x86_64", path = "arch/linux.rs")]
mod arch;
mod checks;
#[path = "../../bare-common/console.rs"]
pub mod console;
#[path = "../../bare-common/frames.rs"]
mod frames;
#[path = "../../bare-common/heap.rs"]
mod heap;
mod kernel;
mod selftest;

#[global_allocator]
static ALLOCATOR: heap::ArenaAlloc = heap::ArenaAlloc;

/// Exit status after a panic.
pub const PANIC_STATUS: u8 = 101;
/// Exit status after a CPU exception.
pub const TRAP_STATUS: u8 = 200;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kprintln!("PANIC: {info}");
    checks::summary(Some(PANIC_STATUS));
    arch::poweroff(PANIC_STATUS)
}

/// Called by the boot code once the machine is set up.
pub extern "C" fn kmain() -> ! {
    kprintln!("bare-selftest: zswap on {}", checks::MACHINE);
    let failed = selftest::run().err();
    checks::summary(failed);
    arch::poweroff(failed.unwrap_or(0))
}
