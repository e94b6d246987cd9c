//! riscv64 on QEMU's `virt` machine, `-bios none`: the kernel starts in
//! M-mode at 0x8000_0000 with the MMU off (the linker script puts it there).
//!
//! - Boot: hart 0 runs, the others park; stack; FPU on (`mstatus.FS`, the
//!   target is hard-float); a trap vector; `.bss` zeroed (the heap and page
//!   arenas live there); then [`crate::kmain`].
//! - Console: the NS16550 UART at 0x1000_0000.
//! - Exit: the SiFive test device at 0x10_0000 ends QEMU with our status.
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

const UART: usize = 0x1000_0000;
/// Line status register; bit 5: the transmit holding register is empty.
const UART_LSR: usize = UART + 5;
const LSR_THRE: u8 = 1 << 5;

/// Writes `bytes` to the UART.
pub fn console_write(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: the 16550 registers of QEMU's virt machine: MMIO that
        // only takes volatile byte accesses, owned by this one hart.
        unsafe {
            while core::ptr::read_volatile(UART_LSR as *const u8) & LSR_THRE == 0 {}
            core::ptr::write_volatile(UART as *mut u8, b);
        }
    }
}

/// Ends QEMU with `code` (0 = pass) through the SiFive test device:
/// `0x5555` is "pass", `code << 16 | 0x3333` is "fail with code".
pub fn exit(code: u8) -> ! {
    let v: u32 = if code == 0 {
        0x5555
    } else {
        (u32::from(code) << 16) | 0x3333
    };
    // SAFETY: the test device's register; the write ends the machine.
    unsafe { core::ptr::write_volatile(0x10_0000 as *mut u32, v) };
    loop {
        // SAFETY: `wfi` only waits for an interrupt.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

/// Any exception in M-mode: report it and end the run.
extern "C" fn trap(cause: usize, pc: usize, tval: usize) -> ! {
    crate::kprintln!("TRAP: mcause {cause:#x} mepc {pc:#x} mtval {tval:#x}");
    exit(crate::TRAP_STATUS)
}
