//! # bare-selftest: the whole zswap stack in a freestanding kernel
//!
//! A `#![no_std]`, `#![no_main]` binary that plays a minimal kernel and runs
//! zswap on it: proof that a hobby kernel can link and run the crates with
//! nothing but `core` and `alloc`.
//!
//! The kernel brings: a global allocator (`heap`: size-class free lists over
//! a static arena, null on exhaustion), a page allocator (`pages`: a free
//! list of frames over a static arena, counting bad frees), two CPUs, the
//! swap platform, a memory cgroup tree with one cgroup, an in-memory swap
//! device, and zswap's platform (`kernel`). The self-test (`selftest`) then
//! swaps pages out and in, writes some back, frees the rest, switches the
//! compressor from lz4 to C zstd, provokes reclaim from a swap-in charge,
//! and checks data and counters throughout.
//!
//! It prints nothing. On x86_64 it leaves through Linux's exit syscall, so
//! a Linux host runs it directly; elsewhere it halts in a `wfi` loop (built,
//! not run). Exit status: 0 pass, 101 panic, otherwise the number of the
//! failed check (the table in `selftest`).
#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

mod heap;
mod kernel;
mod pages;
mod selftest;

#[global_allocator]
static ALLOCATOR: heap::ArenaAlloc = heap::ArenaAlloc;

/// Ends the program with `code` (Linux `exit`).
#[cfg(target_arch = "x86_64")]
fn exit(code: i32) -> ! {
    // SAFETY: Linux's exit syscall (60) takes the status in rdi and does not
    // return; it touches no memory of ours.
    unsafe { core::arch::asm!("syscall", in("rax") 60, in("rdi") code, options(noreturn)) }
}

/// Halts: no exit call on a bare machine.
#[cfg(not(target_arch = "x86_64"))]
fn exit(code: i32) -> ! {
    let _ = core::hint::black_box(code);
    loop {
        #[cfg(any(target_arch = "aarch64", target_arch = "riscv64"))]
        // SAFETY: `wfi` only waits for an interrupt.
        unsafe {
            core::arch::asm!("wfi", options(nomem, nostack))
        };
        #[cfg(not(any(target_arch = "aarch64", target_arch = "riscv64")))]
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(101)
}

/// The entry point.
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let code = match selftest::run() {
        Ok(()) => 0,
        Err(code) => i32::from(code),
    };
    exit(code)
}
