//! The aarch64 MMU: a 4 KiB granule and a 39-bit virtual address space
//! from TTBR0 (`TCR_EL1.T0SZ` = 25), so the walk has three levels of 512
//! entries, the same shape as Sv39. TTBR1 is unused (`EPD1`).
//!
//! Descriptors: a table or a page has bits `0b11`, a 1 GiB block `0b01`.
//! Attributes: `AttrIndx` (0 Device-nGnRnE, 1 Normal write-back, set in
//! `MAIR_EL1`), `AP[2:1]` (EL0 access, read-only), `SH` inner shareable,
//! `AF` the access flag, `PXN`/`UXN`. The Cortex-A57 does not set `AF` in
//! hardware: an access to a page with `AF` clear is an access-flag fault,
//! which the fault handler answers by setting it (that is the "accessed
//! bit" the clock sweeps). There is no hardware dirty bit: a writable page
//! counts as dirty.
//!
//! A swap PTE: bit 0 clear (invalid to the hardware), bit 1 set, the swap
//! type in bits 2..7 and the offset from bit 12.

use crate::mm::pagetable::{PTE_A, PTE_D, PTE_R, PTE_U, PTE_W, PTE_X, Pte};
use swapcache::SwpEntry;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
const AP_EL0: u64 = 1 << 6;
const AP_RO: u64 = 1 << 7;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;
const SWP_MARK: u64 = 1 << 1;
const SWP_TYPE_SHIFT: u32 = 2;
const SWP_TYPE_MASK: u64 = 0x1f;
const SWP_OFFSET_SHIFT: u32 = 12;

/// The root entry covering user memory (0x8000_0000..0xc000_0000).
pub const USER_SLOT: usize = 2;
/// Where user memory starts.
pub const USER_BASE: usize = 0x8000_0000;

/// The kernel's root entries: devices (0..1 GiB) and RAM (1..2 GiB), EL1
/// only.
pub fn kernel_root_entries() -> [(usize, u64); 2] {
    let devices = ATTR_DEVICE | AF | PXN | UXN | VALID;
    let ram = 0x4000_0000 | ATTR_NORMAL | SH_INNER | AF | UXN | VALID;
    [(0, devices), (1, ram)]
}

/// A pointer to a next-level table.
pub fn encode_table(pa: usize) -> u64 {
    (pa as u64 & ADDR_MASK) | TABLE_OR_PAGE | VALID
}

/// The next-level table an upper-level entry points to; `Err(())` for a
/// block (not a table), `Ok(None)` for an empty entry.
pub fn decode_table(raw: u64) -> Result<Option<usize>, ()> {
    match raw & 3 {
        0b11 => Ok(Some((raw & ADDR_MASK) as usize)),
        0b01 => Err(()),
        _ if raw == 0 => Ok(None),
        _ => Err(()),
    }
}

/// Encodes a level-3 (page) entry.
pub fn encode_leaf(pte: Pte) -> u64 {
    match pte {
        Pte::None => 0,
        Pte::Present { pa, flags } => {
            let mut raw = (pa as u64 & ADDR_MASK) | ATTR_NORMAL | SH_INNER | TABLE_OR_PAGE | VALID;
            if flags & PTE_A != 0 {
                raw |= AF;
            }
            if flags & PTE_W == 0 {
                raw |= AP_RO;
            }
            if flags & PTE_U != 0 {
                raw |= AP_EL0 | PXN;
                if flags & PTE_X == 0 {
                    raw |= UXN;
                }
            } else {
                raw |= UXN;
                if flags & PTE_X == 0 {
                    raw |= PXN;
                }
            }
            raw
        }
        Pte::Swap(e) => {
            (e.offset() << SWP_OFFSET_SHIFT)
                | ((u64::from(e.swp_type()) & SWP_TYPE_MASK) << SWP_TYPE_SHIFT)
                | SWP_MARK
        }
    }
}

/// Decodes a level-3 entry.
pub fn decode_leaf(raw: u64) -> Pte {
    if raw & VALID != 0 {
        let user = raw & AP_EL0 != 0;
        let mut flags = PTE_R;
        if raw & AP_RO == 0 {
            flags |= PTE_W | PTE_D;
        }
        if user {
            flags |= PTE_U;
        }
        if (user && raw & UXN == 0) || (!user && raw & PXN == 0) {
            flags |= PTE_X;
        }
        if raw & AF != 0 {
            flags |= PTE_A;
        }
        return Pte::Present {
            pa: (raw & ADDR_MASK) as usize,
            flags,
        };
    }
    if raw & SWP_MARK == 0 {
        return Pte::None;
    }
    let ty = ((raw >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK) as u32;
    SwpEntry::new(ty, raw >> SWP_OFFSET_SHIFT).map_or(Pte::None, Pte::Swap)
}

/// `MAIR_EL1`: attribute 0 Device-nGnRnE, 1 Normal write-back
/// read/write-allocate.
const MAIR: u64 = 0xff << 8;
/// `TCR_EL1`: T0SZ 25, inner/outer write-back, inner shareable, 4 KiB
/// granule, TTBR1 walks off (EPD1), 36-bit physical addresses.
const TCR: u64 = 25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23) | (1 << 32);

/// Turns the MMU (and the caches) on with `root_pa` in TTBR0.
pub fn enable(root_pa: usize) {
    // SAFETY: the root identity-maps the kernel (code, data, stack,
    // devices), so execution continues at the same addresses once
    // SCTLR_EL1.M is set; the barriers order the table writes and the
    // register changes.
    unsafe {
        core::arch::asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {root}",
            "dsb ish",
            "isb",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            "mrs {t}, sctlr_el1",
            "orr {t}, {t}, #(1 << 0)",
            "orr {t}, {t}, #(1 << 2)",
            "orr {t}, {t}, #(1 << 12)",
            "bic {t}, {t}, #(1 << 1)",
            "msr sctlr_el1, {t}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) TCR,
            root = in(reg) root_pa,
            t = out(reg) _,
            options(nostack),
        )
    };
}

/// Loads the root table at `root_pa` into TTBR0 and flushes the TLB.
pub fn activate(root_pa: usize) {
    // SAFETY: `root_pa` maps the kernel like every root does.
    unsafe {
        core::arch::asm!(
            "dsb ish",
            "msr ttbr0_el1, {0}",
            "isb",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            in(reg) root_pa,
            options(nostack),
        )
    };
}

/// Flushes the TLB entry of `va` (after its PTE changed).
pub fn flush_tlb_page(va: usize) {
    // SAFETY: TLB maintenance and barriers only.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vaae1is, {0}",
            "dsb ish",
            "isb",
            in(reg) va >> 12,
            options(nostack),
        )
    };
}
