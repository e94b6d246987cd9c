//! What differs between the machines: boot code, console and power-off
//! (`boot`), the entry to and exit from the user task (`trap`), and the
//! page-table entry format and TLB maintenance (`mmu`). Everything else in
//! the kernel is the same on both.
//!
//! | | riscv64 | aarch64 |
//! |---|---|---|
//! | machine | QEMU `virt`, `-bios none` | QEMU `virt`, Cortex-A57 |
//! | kernel | S-mode (M-mode boot code delegates traps) | EL1 |
//! | task | U-mode | EL0 |
//! | MMU | Sv39 | 4 KiB granule, 39-bit VA (TTBR0) |
//! | accessed bit | `A`, set by the hardware on QEMU | `AF`, set by the fault handler (access-flag faults) |
//! | console | NS16550 UART | PL011 UART |
//! | power-off | SiFive test device | semihosting `SYS_EXIT` |

#[cfg(target_arch = "aarch64")]
#[path = "aarch64"]
mod imp {
    pub mod boot;
    pub mod mmu;
    pub mod trap;
}

#[cfg(target_arch = "riscv64")]
#[path = "riscv64"]
mod imp {
    pub mod boot;
    pub mod mmu;
    pub mod trap;
}

pub use imp::boot::{MACHINE, console_write, poweroff};
pub use imp::{mmu, trap};
