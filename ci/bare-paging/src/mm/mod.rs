//! Memory management: page frames, page tables, the task's address space,
//! page faults and reclaim.
//!
//! - [`frames`]: the page frame allocator (the RAM everything shares);
//! - [`pagetable`]: three-level tables, PTEs (present / swap / none);
//! - [`fault`]: the page fault handler (demand-zero, swap-in, A/D bits);
//! - [`reclaim`]: the clock sweep, swap-out through zswap, memcg and global
//!   reclaim.
//!
//! This module holds the task's memory map ([`Mm`], Linux's `mm_struct`):
//! its address space, its cgroup and the ring of resident pages the clock
//! sweeps. The one task's `Mm` lives in [`MM`]; every user takes the lock
//! briefly and never across a call that may reclaim (reclaim takes it too).

pub mod fault;
#[path = "../../../bare-common/frames.rs"]
pub mod frames;
pub mod pagetable;
pub mod reclaim;

use alloc::vec::Vec;

use kbase::sync::{AtomicUsize, Mutex, Ordering};
use kbase::{PAGE_SIZE, Result};
use memcg::MemcgRef;
use swapcache::FolioRef;

use crate::zswap_glue::{swap, uncharge_folio};
use pagetable::{AddressSpace, PTE_A, PTE_R, PTE_U, PTE_X, Pte};

/// The user program's code (mapped from the kernel image's `.user` pages),
/// at the start of the gigabyte of user memory.
pub const USER_CODE: usize = crate::arch::mmu::USER_BASE;
/// The user program's data: [`Mm::data_pages`] pages from here.
pub const USER_DATA: usize = USER_CODE + 0x100_0000;
/// The user stack: [`USER_STACK_PAGES`] pages below [`USER_STACK_TOP`].
pub const USER_STACK_TOP: usize = USER_CODE + 0x3000_0000;
/// Pages of user stack.
pub const USER_STACK_PAGES: usize = 4;

/// A resident anonymous page: its address and the folio mapped there.
pub struct Resident {
    /// The page's user address.
    pub va: usize,
    /// The folio (its frame is what the PTE maps; its memcg id is the
    /// charge).
    pub folio: FolioRef,
}

/// The task's memory (`mm_struct`).
pub struct Mm {
    /// Its page table.
    pub aspace: AddressSpace,
    /// The cgroup its pages are charged to.
    pub memcg: MemcgRef,
    /// Pages of data at [`USER_DATA`].
    pub data_pages: usize,
    /// Resident anonymous pages, in the clock's order.
    pub resident: Vec<Resident>,
    /// The clock hand: the next index of `resident` to look at.
    pub hand: usize,
}

/// The one task's memory map.
pub static MM: Mutex<Option<Mm>> = Mutex::new(None);

/// Runs `f` on the task's `Mm`. `None` if there is no task, or if the lock
/// is already held: that would be a reclaim from inside an `Mm` update, a
/// kernel bug this reports instead of spinning forever.
pub fn with_mm<R>(f: impl FnOnce(&mut Mm) -> R) -> Option<R> {
    let Some(mut g) = MM.try_lock() else {
        crate::kprintln!("mm: MM lock taken recursively");
        return None;
    };
    g.as_mut().map(f)
}

/// What a user address is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Vma {
    /// Program code: always mapped, never swapped.
    Code,
    /// Anonymous memory (data, stack): demand-zero, swappable.
    Anon,
}

impl Mm {
    /// The area `va` lies in, if any.
    pub fn vma(&self, va: usize) -> Option<Vma> {
        let (code_start, code_end) = crate::user_code_range();
        let data_end = USER_DATA + self.data_pages * PAGE_SIZE;
        if (USER_CODE..USER_CODE + (code_end - code_start)).contains(&va) {
            Some(Vma::Code)
        } else if (USER_DATA..data_end).contains(&va)
            || (USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE..USER_STACK_TOP).contains(&va)
        {
            Some(Vma::Anon)
        } else {
            None
        }
    }

    /// Maps `folio` at `va` (read-write, user) and puts it on the clock.
    pub fn map_anon(&mut self, va: usize, folio: FolioRef) -> Result<()> {
        let pa = folio.with_page(0, |p| p.as_ptr() as usize)?;
        self.resident.try_reserve(1)?;
        let flags = PTE_R | pagetable::PTE_W | PTE_U | PTE_A | pagetable::PTE_D;
        self.aspace.write(va, Pte::Present { pa, flags })?;
        self.resident.push(Resident { va, folio });
        Ok(())
    }
}

/// `execve`, reduced: a new address space for a task of `data_pages` pages
/// of data, charged to `memcg`, with the program's code mapped.
pub fn exec(memcg: MemcgRef, data_pages: usize) -> Result<()> {
    let mut aspace = AddressSpace::new()?;
    let (start, end) = crate::user_code_range();
    for off in (0..end - start).step_by(PAGE_SIZE) {
        let code = Pte::Present {
            pa: start + off,
            flags: PTE_R | PTE_X | PTE_U | PTE_A,
        };
        aspace.write(USER_CODE + off, code)?;
    }
    let root = aspace.root_pa();
    *MM.lock() = Some(Mm {
        aspace,
        memcg,
        data_pages,
        resident: Vec::new(),
        hand: 0,
    });
    pagetable::activate(root);
    Ok(())
}

/// `exit_mmap`: frees the task's memory. Resident pages are uncharged and
/// freed; swap PTEs give their slots back (`free_swap_and_cache`, which
/// tells zswap and the device); then the page tables go.
pub fn exit_mmap() -> Result<()> {
    pagetable::activate_kernel();
    let Some(mut mm) = MM.lock().take() else {
        return Ok(());
    };
    let s = swap()?;
    for r in mm.resident.drain(..) {
        uncharge_folio(&r.folio);
    }
    let (start, end) = (USER_DATA, USER_DATA + mm.data_pages * PAGE_SIZE);
    let stack = USER_STACK_TOP - USER_STACK_PAGES * PAGE_SIZE..USER_STACK_TOP;
    for va in (start..end).chain(stack).step_by(PAGE_SIZE) {
        if let Pte::Swap(entry) = mm.aspace.read(va) {
            if let Some(m) = s.memcgs.get(s.space.lookup_swap_cgroup_id(entry)) {
                m.swap_uncharge(1);
            }
            s.space.free_swap_and_cache(entry)?;
        }
    }
    drop(mm);
    Ok(())
}

/// Event counters of the mm side (Linux's `/proc/vmstat`, the part this
/// kernel has).
pub struct VmStat {
    /// Page faults taken (all kinds).
    pub faults: AtomicUsize,
    /// First touches: a zeroed page mapped.
    pub demand_zero: AtomicUsize,
    /// Swap-ins of zero pages (the zeromap).
    pub swapin_zero: AtomicUsize,
    /// Swap-ins served by zswap.
    pub swapin_zswap: AtomicUsize,
    /// Swap-ins read from the swap device.
    pub swapin_device: AtomicUsize,
    /// Faults that only set the accessed / dirty bit.
    pub access_faults: AtomicUsize,
    /// Pages the clock looked at.
    pub clock_scanned: AtomicUsize,
    /// Referenced pages given a second chance (A bit cleared).
    pub clock_referenced: AtomicUsize,
    /// Zero pages swapped out (a zeromap bit, nothing written).
    pub pageout_zero: AtomicUsize,
    /// Pages swapped out into zswap.
    pub pageout_zswap: AtomicUsize,
    /// Pages swapped out to the device (zswap refused them).
    pub pageout_device: AtomicUsize,
    /// zswap entries written back by the shrinker from reclaim.
    pub shrinker_written: AtomicUsize,
    /// Reclaim runs for a cgroup over `memory.max`.
    pub memcg_reclaims: AtomicUsize,
    /// Reclaim runs because free frames ran low.
    pub global_reclaims: AtomicUsize,
}

/// The counters.
pub static VMSTAT: VmStat = VmStat {
    faults: AtomicUsize::new(0),
    demand_zero: AtomicUsize::new(0),
    swapin_zero: AtomicUsize::new(0),
    swapin_zswap: AtomicUsize::new(0),
    swapin_device: AtomicUsize::new(0),
    access_faults: AtomicUsize::new(0),
    clock_scanned: AtomicUsize::new(0),
    clock_referenced: AtomicUsize::new(0),
    pageout_zero: AtomicUsize::new(0),
    pageout_zswap: AtomicUsize::new(0),
    pageout_device: AtomicUsize::new(0),
    shrinker_written: AtomicUsize::new(0),
    memcg_reclaims: AtomicUsize::new(0),
    global_reclaims: AtomicUsize::new(0),
};

/// Adds one to a counter.
pub fn count(c: &AtomicUsize) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl VmStat {
    /// Name and value of every counter, in order.
    pub fn pairs(&self) -> [(&'static str, usize); 14] {
        let g = |c: &AtomicUsize| c.load(Ordering::Relaxed);
        [
            ("faults", g(&self.faults)),
            ("demand_zero", g(&self.demand_zero)),
            ("swapin_zero", g(&self.swapin_zero)),
            ("swapin_zswap", g(&self.swapin_zswap)),
            ("swapin_device", g(&self.swapin_device)),
            ("access_faults", g(&self.access_faults)),
            ("clock_scanned", g(&self.clock_scanned)),
            ("clock_referenced", g(&self.clock_referenced)),
            ("pageout_zero", g(&self.pageout_zero)),
            ("pageout_zswap", g(&self.pageout_zswap)),
            ("pageout_device", g(&self.pageout_device)),
            ("shrinker_written", g(&self.shrinker_written)),
            ("memcg_reclaims", g(&self.memcg_reclaims)),
            ("global_reclaims", g(&self.global_reclaims)),
        ]
    }

    /// Sets every counter back to 0 (between runs).
    pub fn reset(&self) {
        for c in [
            &self.faults,
            &self.demand_zero,
            &self.swapin_zero,
            &self.swapin_zswap,
            &self.swapin_device,
            &self.access_faults,
            &self.clock_scanned,
            &self.clock_referenced,
            &self.pageout_zero,
            &self.pageout_zswap,
            &self.pageout_device,
            &self.shrinker_written,
            &self.memcg_reclaims,
            &self.global_reclaims,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}
