//! QEMU's riscv64 `virt` machine: its console (the NS16550 UART at
//! 0x1000_0000) and its power-off (the SiFive test device at 0x10_0000).
//! Both kernels reach them at their physical addresses: with the MMU off,
//! or identity-mapped once bare-paging turns it on.

const UART: usize = 0x1000_0000;
/// Line status register; bit 5: the transmit holding register is empty.
const UART_LSR: usize = UART + 5;
const LSR_THRE: u8 = 1 << 5;

/// Writes `bytes` to the UART.
pub fn console_write(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: the 16550's registers on QEMU virt, at their physical
        // addresses (MMU off or identity-mapped): MMIO that takes volatile
        // byte accesses; one hart, so no one else drives it.
        unsafe {
            while core::ptr::read_volatile(UART_LSR as *const u8) & LSR_THRE == 0 {}
            core::ptr::write_volatile(UART as *mut u8, b);
        }
    }
}

/// Ends QEMU with `status` (0 = pass) through the SiFive test device:
/// `0x5555` is "pass", `code << 16 | 0x3333` is "fail with code".
pub fn poweroff(status: u8) -> ! {
    let v: u32 = if status == 0 {
        0x5555
    } else {
        (u32::from(status) << 16) | 0x3333
    };
    // SAFETY: the test device's register (MMU off or identity-mapped); the
    // write ends the machine.
    unsafe { core::ptr::write_volatile(0x10_0000 as *mut u32, v) };
    loop {
        // SAFETY: `wfi` only waits for an interrupt.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}
