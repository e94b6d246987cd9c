//! Boot, console and power-off on QEMU's aarch64 `virt` machine
//! (Cortex-A57).
//!
//! QEMU starts the kernel at EL1 with the MMU off. `_start`: core 0 runs,
//! the others park; FP/SIMD on for EL1 and EL0 (`CPACR_EL1.FPEN`: the
//! compiler uses NEON registers for copies); the exception vectors
//! (`trap.rs`); a stack; `.bss` zeroed (the heap, the page frames and the
//! RAM disk live there); then [`crate::kmain`], which turns the MMU on
//! (`mmu.rs`).

core::arch::global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    mrs   x19, mpidr_el1
    and   x19, x19, #0xff
    cbnz  x19, 9f
    mrs   x19, cpacr_el1
    orr   x19, x19, #(3 << 20)
    msr   cpacr_el1, x19
    isb
    ldr   x19, =__stack_top
    mov   sp, x19
    ldr   x19, =__bss_start
    ldr   x20, =__bss_end
1:  cmp   x19, x20
    b.hs  2f
    str   xzr, [x19], #8
    b     1b
2:  bl    {kmain}
9:  wfe
    b     9b
"#,
    kmain = sym crate::kmain,
);

/// What the kernel runs on, for the first line.
pub const MACHINE: &str = "aarch64 (QEMU virt, Cortex-A57, EL1, 39-bit VA)";

// Console and power-off: the machine's UART and exit device.
#[path = "../../../../bare-common/aarch64_virt.rs"]
mod virt;
pub use virt::{console_write, poweroff};
