//! QEMU's aarch64 `virt` machine: its console (the PL011 UART at
//! 0x0900_0000) and its power-off (semihosting `SYS_EXIT`; QEMU needs
//! `-semihosting`). Both kernels reach the UART at its physical address:
//! with the MMU off, or identity-mapped as Device memory once bare-paging
//! turns it on.

const UART: usize = 0x0900_0000;
/// Flag register; bit 5: the transmit FIFO is full.
const UART_FR: usize = UART + 0x18;
const FR_TXFF: u32 = 1 << 5;

/// Writes `bytes` to the UART.
pub fn console_write(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: the PL011 registers of QEMU virt, at their physical
        // addresses (MMU off or identity-mapped as Device memory): MMIO
        // taking volatile 32-bit accesses; one core drives them.
        unsafe {
            while core::ptr::read_volatile(UART_FR as *const u32) & FR_TXFF != 0 {}
            core::ptr::write_volatile(UART as *mut u32, u32::from(b));
        }
    }
}

/// Ends QEMU with `status` (0 = pass): semihosting `SYS_EXIT` (0x18) with
/// `ADP_Stopped_ApplicationExit` (0x20026) and the status.
pub fn poweroff(status: u8) -> ! {
    let block: [u64; 2] = [0x20026, u64::from(status)];
    // SAFETY: the semihosting trap (`hlt #0xf000`) reads the two words of
    // `block`, which lives across the call (on the stack, identity-mapped
    // when the MMU is on); QEMU ends the machine.
    unsafe {
        core::arch::asm!("hlt #0xf000", in("w0") 0x18u32, in("x1") block.as_ptr(), options(nostack));
    }
    loop {
        // SAFETY: `wfe` only waits for an event.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}
