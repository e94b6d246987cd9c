//! Boot, console and power-off on QEMU's riscv64 `virt` machine.
//!
//! `-bios none`: the reset vector jumps to 0x8000_0000 in M-mode with the
//! MMU off and nothing set up. `_start` plays the firmware's part and then
//! becomes the kernel:
//!
//! 1. hart 0 runs, the others park; a stack; `.bss` zeroed (the heap, the
//!    page frames and the RAM disk live there);
//! 2. PMP entry 0 opens all of memory to S- and U-mode (with no entry,
//!    QEMU denies them every access);
//! 3. every exception the kernel handles (page faults, `ecall` from U-mode,
//!    illegal instructions, ...) is delegated to S-mode (`medeleg`); no
//!    interrupts are used;
//! 4. `mret` into [`crate::kmain`] in S-mode, MMU still off (`satp` = 0);
//!    `kmain` turns it on (`mmu.rs`).
//!
//! Anything that still traps to M-mode is a kernel bug: [`m_trap`] prints it
//! and powers off with [`crate::TRAP_STATUS`].

core::arch::global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    bnez  a0, 9f                # a0 = hart id: park all but hart 0
    la    sp, __stack_top
    la    t0, __bss_start
    la    t1, __bss_end
1:  bgeu  t0, t1, 2f
    sd    zero, 0(t0)
    addi  t0, t0, 8
    j     1b
2:  li    t0, -1                # PMP 0: NAPOT over the whole address space,
    srli  t0, t0, 10            #   read, write, execute
    csrw  pmpaddr0, t0
    li    t0, 0x1f
    csrw  pmpcfg0, t0
    li    t0, 0xb1ff            # medeleg: exceptions 0-8, 12, 13, 15 -> S
    csrw  medeleg, t0
    csrw  mideleg, zero
    la    t0, m_trap_entry
    csrw  mtvec, t0
    li    t0, (3 << 11)         # mstatus.MPP = S (01)
    csrc  mstatus, t0
    li    t0, (1 << 11) | (1 << 13)   # MPP = S, FS = Initial (FPU on)
    csrs  mstatus, t0
    csrw  satp, zero
    la    t0, {kmain}
    csrw  mepc, t0
    mret
9:  wfi
    j     9b

    .balign 4
m_trap_entry:
    csrr  a0, mcause
    csrr  a1, mepc
    csrr  a2, mtval
    la    sp, __stack_top
    call  {m_trap}
"#,
    kmain = sym crate::kmain,
    m_trap = sym m_trap,
);

/// A trap that reached M-mode: not delegated, so nothing handles it.
extern "C" fn m_trap(cause: usize, pc: usize, tval: usize) -> ! {
    crate::kprintln!("M-mode trap: mcause {cause:#x} mepc {pc:#x} mtval {tval:#x}");
    poweroff(crate::TRAP_STATUS)
}

/// What the kernel runs on, for the first line.
pub const MACHINE: &str = "riscv64 (QEMU virt, S-mode, Sv39)";

// Console and power-off: the machine's UART and exit device.
#[path = "../../../../bare-common/riscv64_virt.rs"]
mod virt;
pub use virt::{console_write, poweroff};
