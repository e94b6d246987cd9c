//! riscv64 on QEMU's `virt` machine, `-bios none`: the kernel starts in
//! M-mode at 0x8000_0000 with the MMU off (the linker script puts it there).
//!
//! - Boot: hart 0 runs, the others park; stack; FPU on (`mstatus.FS`, the
//!   target is hard-float); a trap vector; `.bss` zeroed (the heap and page
//!   arenas live there); then [`crate::kmain`].
//! - Console: the NS16550 UART at 0x1000_0000, and power-off: the SiFive
//!   test device at 0x10_0000 ends QEMU with our status (both
//!   `ci/bare-common/riscv64_virt.rs`, shared with bare-paging).
//! - Traps: any exception prints its cause and ends with [`crate::TRAP_STATUS`].

core::arch::global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    # a0 = hart id (QEMU's reset vector passes it). Park all harts but 0.
    bnez  a0, 9f
    la    sp, __stack_top
    li    t0, (1 << 13)         # mstatus.FS = Initial: FPU on
    csrs  mstatus, t0
    la    t0, trap_entry
    csrw  mtvec, t0
    la    t0, __bss_start       # zero .bss
    la    t1, __bss_end
1:  bgeu  t0, t1, 2f
    sd    zero, 0(t0)
    addi  t0, t0, 8
    j     1b
2:  call  {kmain}
9:  wfi
    j     9b

    .balign 4
trap_entry:
    csrr  a0, mcause
    csrr  a1, mepc
    csrr  a2, mtval
    la    sp, __stack_top
    call  {trap}
"#,
    kmain = sym crate::kmain,
    trap = sym trap,
);

#[path = "../../../bare-common/riscv64_virt.rs"]
mod virt;
pub use virt::{console_write, poweroff};

/// Any exception in M-mode: report it and end the run.
extern "C" fn trap(cause: usize, pc: usize, tval: usize) -> ! {
    crate::kprintln!("TRAP: mcause {cause:#x} mepc {pc:#x} mtval {tval:#x}");
    poweroff(crate::TRAP_STATUS)
}
