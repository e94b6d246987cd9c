//! Sv39 page tables: three levels of 512 eight-byte entries, 4 KiB pages,
//! 39-bit virtual addresses.
//!
//! Every address space maps the kernel (like Linux's kernel half): two
//! 1 GiB identity "gigapages" without the U bit, the devices
//! (0..0x4000_0000: UART, test device) and RAM (0x8000_0000..). The user
//! task's memory lives in the gigabyte between them (root entry 1), in
//! lower-level tables allocated on first use.
//!
//! A PTE is one of three things (Linux's `pte_none`, `pte_present`, and a
//! swap PTE):
//!
//! - 0: nothing mapped yet (a first touch is a demand-zero fault);
//! - V set: present, the frame's PPN and the permission / A / D bits;
//! - V clear, [`PTE_SWAP`] set: the page is swapped out, and the PTE keeps
//!   its swap entry (type in bits 2..7, offset from bit 10), as Linux keeps
//!   it in a non-present PTE.

use alloc::vec::Vec;

use kbase::sync::UnsafeCell;
use kbase::{Error, Gfp, PageAllocator, PageFrame, Result};
use swapcache::SwpEntry;

use super::frames::FRAMES;

/// Valid.
pub const PTE_V: u64 = 1 << 0;
/// Readable.
pub const PTE_R: u64 = 1 << 1;
/// Writable.
pub const PTE_W: u64 = 1 << 2;
/// Executable.
pub const PTE_X: u64 = 1 << 3;
/// Accessible from U-mode.
pub const PTE_U: u64 = 1 << 4;
/// Global (in every address space).
pub const PTE_G: u64 = 1 << 5;
/// Accessed.
pub const PTE_A: u64 = 1 << 6;
/// Dirty.
pub const PTE_D: u64 = 1 << 7;
/// In a non-present PTE: it holds a swap entry.
pub const PTE_SWAP: u64 = 1 << 1;

const PPN_SHIFT: u32 = 10;
const SWP_TYPE_SHIFT: u32 = 2;
const SWP_TYPE_MASK: u64 = 0x1f;
const SWP_OFFSET_SHIFT: u32 = 10;
/// `satp.MODE` = Sv39.
const SATP_SV39: u64 = 8 << 60;

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
    /// Decodes a raw entry. A non-present entry that is not a valid swap
    /// PTE reads as `None`.
    pub fn decode(raw: u64) -> Pte {
        if raw & PTE_V != 0 {
            let pa = ((raw >> PPN_SHIFT) << 12) as usize;
            return Pte::Present {
                pa,
                flags: raw & 0x3ff,
            };
        }
        if raw & PTE_SWAP == 0 {
            return Pte::None;
        }
        let ty = ((raw >> SWP_TYPE_SHIFT) & SWP_TYPE_MASK) as u32;
        match SwpEntry::new(ty, raw >> SWP_OFFSET_SHIFT) {
            Ok(e) => Pte::Swap(e),
            Err(_) => Pte::None,
        }
    }

    /// Encodes the entry.
    pub fn encode(self) -> u64 {
        match self {
            Pte::None => 0,
            Pte::Present { pa, flags } => ((pa as u64 >> 12) << PPN_SHIFT) | flags | PTE_V,
            Pte::Swap(e) => {
                (e.offset() << SWP_OFFSET_SHIFT)
                    | ((u64::from(e.swp_type()) & SWP_TYPE_MASK) << SWP_TYPE_SHIFT)
                    | PTE_SWAP
            }
        }
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

/// Root entries of the kernel mapping: devices and RAM.
const KERNEL_SLOTS: [usize; 2] = [0, 2];
/// The root entry of user memory (0x4000_0000..0x8000_0000).
const USER_SLOT: usize = 1;

fn kernel_root() -> *mut Table {
    KERNEL_ROOT.0.with_mut(|p| p)
}

/// Builds the kernel's identity mapping and turns the MMU on.
pub fn enable_kernel_mapping() {
    let devices = Pte::Present {
        pa: 0,
        flags: PTE_R | PTE_W | PTE_G | PTE_A | PTE_D,
    };
    let ram = Pte::Present {
        pa: 0x8000_0000,
        flags: PTE_R | PTE_W | PTE_X | PTE_G | PTE_A | PTE_D,
    };
    let root = kernel_root();
    // SAFETY: nothing else uses the kernel root yet (boot, MMU off).
    unsafe {
        (*root).0[0] = devices.encode();
        (*root).0[2] = ram.encode();
    }
    activate(root as usize);
}

/// Loads the root table at `root_pa` into `satp` and flushes the TLB.
pub fn activate(root_pa: usize) {
    let satp = SATP_SV39 | (root_pa as u64 >> 12);
    // SAFETY: `root_pa` is a root table that identity-maps the kernel, so
    // execution continues at the same addresses.
    unsafe { core::arch::asm!("csrw satp, {0}", "sfence.vma", in(reg) satp, options(nostack)) };
}

/// Goes back to the kernel's root table.
pub fn activate_kernel() {
    activate(kernel_root() as usize);
}

/// Flushes the TLB entry of `va` (after a PTE of it changed).
pub fn flush_tlb_page(va: usize) {
    // SAFETY: `sfence.vma` only orders and drops address translations.
    unsafe { core::arch::asm!("sfence.vma {0}, zero", in(reg) va, options(nostack)) };
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
        for slot in KERNEL_SLOTS {
            // SAFETY: both tables are live and page-aligned; the new root
            // is ours alone, the kernel root is read-only after boot.
            unsafe { (*table).0[slot] = (*kernel_root()).0[slot] };
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
            match Pte::decode(*entry) {
                Pte::Present { pa, flags } if flags & (PTE_R | PTE_W | PTE_X) == 0 => {
                    table = pa as *mut Table;
                }
                Pte::Present { .. } | Pte::Swap(_) => return Err(Error::EINVAL),
                Pte::None if !alloc => return Ok(None),
                Pte::None => {
                    self.tables.try_reserve(1)?;
                    let frame = FRAMES.alloc_page(Gfp::KERNEL | Gfp::ZERO)?;
                    let pa = frame.as_ptr() as usize;
                    self.tables.push(frame);
                    // A pointer to the next level: V and no R/W/X.
                    *entry = Pte::Present { pa, flags: 0 }.encode();
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
        flush_tlb_page(va);
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
