//! Page tables: three levels of 512 eight-byte entries, 4 KiB pages,
//! 39-bit virtual addresses (Sv39 on riscv64, a 39-bit TTBR0 space on
//! aarch64; `arch/*/mmu.rs` has each machine's entry format).
//!
//! Every address space maps the kernel (like Linux's kernel half): two
//! 1 GiB identity blocks without user access, the devices and RAM. The
//! user task's memory lives in another gigabyte (root entry
//! [`USER_SLOT`]), in lower-level tables allocated on first use.
//!
//! A PTE is one of three things (Linux's `pte_none`, `pte_present`, and a
//! swap PTE), [`Pte`]:
//!
//! - nothing mapped yet (a first touch is a demand-zero fault);
//! - present: the frame's address and the logical permission / accessed /
//!   dirty bits below;
//! - swapped out: the PTE is not valid to the hardware and keeps the swap
//!   entry, as Linux keeps it in a non-present PTE.

use alloc::vec::Vec;

use kbase::sync::UnsafeCell;
use kbase::{Error, Gfp, PageAllocator, PageFrame, Result};
use swapcache::SwpEntry;

use super::frames::FRAMES;
use crate::arch::mmu;

/// Readable.
pub const PTE_R: u64 = 1 << 1;
/// Writable.
pub const PTE_W: u64 = 1 << 2;
/// Executable.
pub const PTE_X: u64 = 1 << 3;
/// Accessible from the user task.
pub const PTE_U: u64 = 1 << 4;
/// Accessed (young).
pub const PTE_A: u64 = 1 << 6;
/// Dirty.
pub const PTE_D: u64 = 1 << 7;

/// What a PTE says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pte {
    /// Nothing mapped.
    None,
    /// Mapped: the frame's physical address and the flag bits.
    Present { pa: usize, flags: u64 },
    /// Swapped out to this entry.
    Swap(SwpEntry),
}

impl Pte {
    /// Decodes a raw level-0 entry.
    pub fn decode(raw: u64) -> Pte {
        mmu::decode_leaf(raw)
    }

    /// Encodes the entry.
    pub fn encode(self) -> u64 {
        mmu::encode_leaf(self)
    }
}

/// A page table page.
#[repr(C, align(4096))]
struct Table([u64; 512]);

/// The kernel's own root table (used until the task's table is loaded, and
/// copied into it).
struct KernelRoot(UnsafeCell<Table>);

// SAFETY: written once by `enable_kernel_mapping` before anything else
// runs, read-only afterwards.
unsafe impl Sync for KernelRoot {}

static KERNEL_ROOT: KernelRoot = KernelRoot(UnsafeCell::new(Table([0; 512])));

pub use mmu::USER_SLOT;

fn kernel_root() -> *mut Table {
    KERNEL_ROOT.0.with_mut(|p| p)
}

/// Builds the kernel's identity mapping and turns the MMU on.
pub fn enable_kernel_mapping() {
    let root = kernel_root();
    for (slot, raw) in mmu::kernel_root_entries() {
        // SAFETY: nothing else uses the kernel root yet (boot, MMU off).
        unsafe { (*root).0[slot] = raw };
    }
    mmu::enable(root as usize);
}

/// Loads the root table at `root_pa` and flushes the TLB.
pub fn activate(root_pa: usize) {
    mmu::activate(root_pa);
}

/// Goes back to the kernel's root table.
pub fn activate_kernel() {
    activate(kernel_root() as usize);
}

fn index(va: usize, level: u32) -> usize {
    (va >> (12 + 9 * level)) & 0x1ff
}

/// One address space: a root table and the lower-level tables it
/// allocated (all from [`FRAMES`], freed on drop).
pub struct AddressSpace {
    /// The root table (`None` only inside `drop`).
    root: Option<PageFrame>,
    /// Its address.
    root_pa: usize,
    tables: Vec<PageFrame>,
}

impl AddressSpace {
    /// A new address space with the kernel mapped and no user memory.
    pub fn new() -> Result<AddressSpace> {
        let root = FRAMES.alloc_page(Gfp::KERNEL | Gfp::ZERO)?;
        let table = root.as_ptr().cast::<Table>();
        for (slot, raw) in mmu::kernel_root_entries() {
            // SAFETY: the new root is live, page-aligned and ours alone.
            unsafe { (*table).0[slot] = raw };
        }
        Ok(AddressSpace {
            root_pa: root.as_ptr() as usize,
            root: Some(root),
            tables: Vec::new(),
        })
    }

    /// The root table's physical address (for [`activate`]).
    pub fn root_pa(&self) -> usize {
        self.root_pa
    }

    /// The level-0 entry of user address `va`, allocating the tables on the
    /// way if `alloc` (else `None` where one is missing).
    fn leaf(&mut self, va: usize, alloc: bool) -> Result<Option<*mut u64>> {
        if index(va, 2) != USER_SLOT {
            return Err(Error::EINVAL);
        }
        let mut table = self.root_pa as *mut Table;
        for level in [2, 1] {
            // SAFETY: `table` is one of this address space's tables.
            let entry = unsafe { &mut (*table).0[index(va, level)] };
            match mmu::decode_table(*entry) {
                Ok(Some(pa)) => table = pa as *mut Table,
                Err(()) => return Err(Error::EINVAL),
                Ok(None) if !alloc => return Ok(None),
                Ok(None) => {
                    self.tables.try_reserve(1)?;
                    let frame = FRAMES.alloc_page(Gfp::KERNEL | Gfp::ZERO)?;
                    let pa = frame.as_ptr() as usize;
                    self.tables.push(frame);
                    *entry = mmu::encode_table(pa);
                    table = pa as *mut Table;
                }
            }
        }
        // SAFETY: `table` is a level-0 table of this address space.
        Ok(Some(unsafe { &raw mut (*table).0[index(va, 0)] }))
    }

    /// Reads the PTE of `va` (`None` if no table covers it).
    pub fn read(&mut self, va: usize) -> Pte {
        match self.leaf(va, false) {
            // SAFETY: a live entry of one of our tables.
            Ok(Some(p)) => Pte::decode(unsafe { p.read_volatile() }),
            _ => Pte::None,
        }
    }

    /// Writes the PTE of `va` (allocating tables) and flushes its TLB
    /// entry.
    pub fn write(&mut self, va: usize, pte: Pte) -> Result<()> {
        let p = self.leaf(va, true)?.ok_or(Error::ENOMEM)?;
        // SAFETY: a live entry of one of our tables; the hardware walker
        // reads it (and sets A/D) only while the task runs.
        unsafe { p.write_volatile(pte.encode()) };
        mmu::flush_tlb_page(va);
        Ok(())
    }
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // The caller has switched to another root table first.
        for frame in self.tables.drain(..) {
            // SAFETY: allocated from FRAMES by `leaf`, no longer referenced
            // by any live table (the whole address space goes).
            unsafe { FRAMES.free_page(frame) };
        }
        if let Some(root) = self.root.take() {
            // SAFETY: allocated from FRAMES by `new`; not loaded in satp.
            unsafe { FRAMES.free_page(root) };
        }
    }
}
