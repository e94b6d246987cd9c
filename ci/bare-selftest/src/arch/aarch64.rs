//! aarch64 on QEMU's `virt` machine with a Cortex-A57: the kernel starts at
//! EL1 with the MMU off (all accesses are Device memory; the target is
//! `+strict-align`, and QEMU allows the exclusives the locks use).
//!
//! - Boot: core 0 runs, the others park; FP/SIMD on (`CPACR_EL1.FPEN`: the
//!   compiler uses NEON for copies); exception vectors; stack; `.bss`
//!   zeroed (the heap and page arenas live there); then [`crate::kmain`].
//! - Console: the PL011 UART at 0x0900_0000, and power-off: semihosting
//!   `SYS_EXIT` (QEMU needs `-semihosting`) with our status (both
//!   `ci/bare-common/aarch64_virt.rs`, shared with bare-paging).
//! - Traps: any exception prints its syndrome and ends with
//!   [`crate::TRAP_STATUS`].

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
    adr   x19, vectors
    msr   vbar_el1, x19
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

    .balign 0x800
vectors:
    .rept 16
    .balign 0x80
    b     exception
    .endr
exception:
    mrs   x0, esr_el1
    mrs   x1, elr_el1
    mrs   x2, far_el1
    ldr   x3, =__stack_top
    mov   sp, x3
    bl    {trap}
"#,
    kmain = sym crate::kmain,
    trap = sym trap,
);

#[path = "../../../bare-common/aarch64_virt.rs"]
mod virt;
pub use virt::{console_write, poweroff};

/// Any exception at EL1: report it and end the run.
extern "C" fn trap(esr: usize, elr: usize, far: usize) -> ! {
    crate::kprintln!("TRAP: esr {esr:#x} elr {elr:#x} far {far:#x}");
    poweroff(crate::TRAP_STATUS)
}
