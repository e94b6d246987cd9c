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

const UART: usize = 0x0900_0000;
/// Flag register; bit 5: the transmit FIFO is full.
const UART_FR: usize = UART + 0x18;
const FR_TXFF: u32 = 1 << 5;

/// Writes `bytes` to the PL011 UART (identity-mapped as Device memory once
/// the MMU is on).
pub fn console_write(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: the PL011 registers of QEMU virt: MMIO taking volatile
        // 32-bit accesses; one core drives them.
        unsafe {
            while core::ptr::read_volatile(UART_FR as *const u32) & FR_TXFF != 0 {}
            core::ptr::write_volatile(UART as *mut u32, u32::from(b));
        }
    }
}

/// Ends QEMU with `status` (0 = pass): semihosting `SYS_EXIT` (0x18) with
/// `ADP_Stopped_ApplicationExit` (0x20026); QEMU needs `-semihosting`.
pub fn poweroff(status: u8) -> ! {
    let block: [u64; 2] = [0x20026, u64::from(status)];
    // SAFETY: the semihosting trap reads the two words of `block` (live
    // across the call, identity-mapped); QEMU ends the machine.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("w0") 0x18u32, in("x1") block.as_ptr(), options(nostack));
    }
    loop {
        // SAFETY: `wfe` only waits for an event.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}
