//! The riscv64 MMU: Sv39, three levels of 512 eight-byte entries, 4 KiB
//! pages, 39-bit virtual addresses.
//!
//! An entry with V set and R/W/X clear points to a next-level table; with
//! any of R/W/X set it is a leaf (a page, or a 1 GiB "gigapage" at the
//! root). The hardware sets A and D itself on QEMU (cores that trap
//! instead are handled by the fault handler). A swap PTE: V clear, bit 1
//! set, the swap type in bits 2..7 and the offset from bit 10.

use crate::mm::pagetable::{PTE_A, PTE_D, PTE_R, PTE_U, PTE_W, PTE_X, Pte};
use swapcache::SwpEntry;

const V: u64 = 1 << 0;
const R: u64 = 1 << 1;
const W: u64 = 1 << 2;
const X: u64 = 1 << 3;
const U: u64 = 1 << 4;
const G: u64 = 1 << 5;
const A: u64 = 1 << 6;
const D: u64 = 1 << 7;
const PPN_SHIFT: u32 = 10;
const SWP_MARK: u64 = 1 << 1;
const SWP_TYPE_SHIFT: u32 = 2;
const SWP_TYPE_MASK: u64 = 0x1f;
const SWP_OFFSET_SHIFT: u32 = 10;
/// `satp.MODE` = Sv39.
const SATP_SV39: u64 = 8 << 60;

/// The root entry covering user memory (0x4000_0000..0x8000_0000).
pub const USER_SLOT: usize = 1;
/// Where user memory starts.
pub const USER_BASE: usize = 0x4000_0000;

fn ppn(pa: usize) -> u64 {
    (pa as u64 >> 12) << PPN_SHIFT
}

fn pa_of(raw: u64) -> usize {
    ((raw >> PPN_SHIFT) << 12) as usize
}

/// The kernel's root entries: two global gigapages mapping devices
/// (0..1 GiB) and RAM (2..3 GiB) to themselves, kernel only.
pub fn kernel_root_entries() -> [(usize, u64); 2] {
    let devices = ppn(0) | R | W | G | A | D | V;
    let ram = ppn(0x8000_0000) | R | W | X | G | A | D | V;
    [(0, devices), (2, ram)]
}

/// A pointer to a next-level table.
pub fn encode_table(pa: usize) -> u64 {
    ppn(pa) | V
}

/// The next-level table an upper-level entry points to; `Err(())` for a
/// leaf (a gigapage), `Ok(None)` for an empty entry.
pub fn decode_table(raw: u64) -> Result<Option<usize>, ()> {
    if raw & V == 0 {
        return if raw == 0 { Ok(None) } else { Err(()) };
    }
    if raw & (R | W | X) != 0 {
        return Err(());
    }
    Ok(Some(pa_of(raw)))
}

/// Encodes a leaf entry.
pub fn encode_leaf(pte: Pte) -> u64 {
    match pte {
        Pte::None => 0,
        Pte::Present { pa, flags } => {
            let mut raw = ppn(pa) | V;
            for (logical, bit) in [
                (PTE_R, R),
                (PTE_W, W),
                (PTE_X, X),
                (PTE_U, U),
                (PTE_A, A),
                (PTE_D, D),
            ] {
                if flags & logical != 0 {
                    raw |= bit;
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

/// Decodes a leaf entry.
pub fn decode_leaf(raw: u64) -> Pte {
    if raw & V != 0 {
        let mut flags = 0;
        for (logical, bit) in [
            (PTE_R, R),
            (PTE_W, W),
            (PTE_X, X),
            (PTE_U, U),
            (PTE_A, A),
            (PTE_D, D),
        ] {
            if raw & bit != 0 {
                flags |= logical;
            }
        }
        return Pte::Present {
            pa: pa_of(raw),
            flags,
        };
    }
    if raw & SWP_MARK == 0 {
        return Pte::None;
    }
    let ty = ((raw >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK) as u32;
    SwpEntry::new(ty, raw >> SWP_OFFSET_SHIFT).map_or(Pte::None, Pte::Swap)
}

/// Turns the MMU on with the root table at `root_pa`.
pub fn enable(root_pa: usize) {
    activate(root_pa);
}

/// Loads the root table at `root_pa` into `satp` and flushes the TLB.
pub fn activate(root_pa: usize) {
    let satp = SATP_SV39 | (root_pa as u64 >> 12);
    // SAFETY: `root_pa` is a root table that identity-maps the kernel, so
    // execution continues at the same addresses.
    unsafe { core::arch::asm!("csrw satp, {0}", "sfence.vma", in(reg) satp, options(nostack)) };
}

/// Flushes the TLB entry of `va` (after its PTE changed).
pub fn flush_tlb_page(va: usize) {
    // SAFETY: `sfence.vma` only orders and drops address translations.
    unsafe { core::arch::asm!("sfence.vma {0}, zero", in(reg) va, options(nostack)) };
}
