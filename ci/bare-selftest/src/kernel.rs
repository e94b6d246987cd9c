//! The kernel: its platform objects and how they are wired together.
//!
//! A kernel without `Arc`: everything lives in statics set once at boot
//! ([`spin::Once`]), so every reference the crates ask for is `'static`.
//!
//! - [`BASE`]: the swap space (with [`BareSwap`] as its platform), the memory
//!   cgroup tree and the in-memory swap device.
//! - [`ZSWAP`]: zswap, with [`BareZswap`] as its platform, created after
//!   `BASE` because its platform hands out references into it.
//!
//! The swap platform reaches zswap through `ZSWAP` (`slot_freed` ->
//! `Zswap::invalidate`, reclaim from the swap-in charge -> `shrink_memcg`),
//! which is how a kernel's swap core calls zswap without owning it.
//!
//! Task state (Linux's `current`): the kernel runs one task, so
//! `PF_MEMALLOC` is a global flag, set while reclaim runs; a swap-in charge
//! made from inside reclaim (zswap writeback allocating its folio) does not
//! reclaim again and is forced past `memory.max`, as in Linux.

use kbase::sync::{AtomicBool, AtomicUsize, Ordering};
use kbase::{CpuInfo, Error, Gfp, PAGE_SIZE, PageAllocator, Result};
use memcg::{MemcgRef, MemcgTree, ReclaimHook};
use swapcache::{Folio, MemBackend, SwapBackend, SwapEvent, SwapPlatform, SwapSpace, SwpEntry};
use zswap_core::{Zswap, ZswapPlatform};

use crate::frames::{FRAMES, NR_FRAMES};

/// What exists before zswap.
pub struct Base {
    /// Swap devices and the swap cache.
    pub swap: SwapSpace<BareSwap>,
    /// Memory cgroups.
    pub memcgs: MemcgTree,
    /// The swap device's storage.
    pub backend: MemBackend,
}

/// The kernel's objects, set once at boot.
pub static BASE: spin::Once<Base> = spin::Once::new();
/// zswap, set once at boot after [`BASE`].
pub static ZSWAP: spin::Once<Zswap<BareZswap>> = spin::Once::new();

/// `PF_MEMALLOC` of the one task.
static IN_RECLAIM: AtomicBool = AtomicBool::new(false);

/// Events the checks look at.
pub struct Events {
    /// Swap-in charges forced from inside reclaim.
    pub forced_charges: AtomicUsize,
    /// Reclaim hook calls (a charge hit `memory.max`).
    pub reclaims: AtomicUsize,
    /// `writeback_folio_done` calls.
    pub wb_done: AtomicUsize,
    /// `slot_freed` calls.
    pub slots_freed: AtomicUsize,
    /// Swap-cache waits that gave up (a single task cannot wait anyone out).
    pub stuck_waits: AtomicUsize,
}

/// The event counters.
pub static EVENTS: Events = Events {
    forced_charges: AtomicUsize::new(0),
    reclaims: AtomicUsize::new(0),
    wb_done: AtomicUsize::new(0),
    slots_freed: AtomicUsize::new(0),
    stuck_waits: AtomicUsize::new(0),
};

impl Events {
    /// Reads one counter.
    pub fn get(c: &AtomicUsize) -> usize {
        c.load(Ordering::Relaxed)
    }
}

fn bump(c: &AtomicUsize) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Waits of the swap-cache retry loop before giving up with `EDEADLK`.
const MAX_WAITS: u32 = 1000;

// ---------------------------------------------------------------------------
// CPUs
// ---------------------------------------------------------------------------

/// Two CPUs; the task "migrates" on every question, so both per-CPU
/// compression contexts are used (a stale answer is allowed by `CpuInfo`).
pub struct BareCpus {
    next: AtomicUsize,
}

/// Number of CPUs.
pub const NR_CPUS: usize = 2;

impl CpuInfo for BareCpus {
    fn current_cpu(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % NR_CPUS
    }
    fn nr_cpus(&self) -> usize {
        NR_CPUS
    }
}

// ---------------------------------------------------------------------------
// swapcache's platform
// ---------------------------------------------------------------------------

/// `swapcache::SwapPlatform`.
pub struct BareSwap;

/// The cgroup a folio's charge is on (`None`: not charged).
fn folio_memcg(folio: &Folio) -> Option<MemcgRef> {
    BASE.get()?.memcgs.get(folio.memcg_id())
}

/// Uncharges a swap-in folio (the page it became was freed).
pub fn uncharge_folio(folio: &Folio) {
    if let (Some(b), Some(m)) = (BASE.get(), folio_memcg(folio)) {
        b.memcgs.uncharge(&m, 1);
        folio.set_memcg_id(0);
    }
}

impl SwapPlatform for BareSwap {
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        &FRAMES
    }

    /// `mem_cgroup_swapin_charge_folio`: charges the cgroup recorded for the
    /// slot (root if none); over `memory.max` the charge reclaims through
    /// [`Reclaim`], which re-enters zswap. From inside reclaim it is forced.
    fn charge_swapin(&self, folio: &Folio, entry: SwpEntry, gfp: Gfp) -> Result<()> {
        let b = BASE.get().ok_or(Error::ENOMEM)?;
        let id = b.swap.lookup_swap_cgroup_id(entry);
        let memcg = b.memcgs.get_online(id).unwrap_or_else(|| b.memcgs.root());
        let gfp = if IN_RECLAIM.load(Ordering::Relaxed) {
            bump(&EVENTS.forced_charges);
            gfp.difference(Gfp::DIRECT_RECLAIM) | Gfp::NOFAIL
        } else {
            gfp
        };
        b.memcgs.try_charge(&memcg, 1, gfp, &Reclaim)?;
        folio.set_memcg_id(memcg.id());
        Ok(())
    }

    /// `count_memcg_folio_events` for the zeromap's `swpin_zero` and
    /// `swpout_zero`.
    fn count_event(&self, folio: &Folio, ev: SwapEvent, nr: u64) {
        let Some(b) = BASE.get() else {
            return;
        };
        if let Some(m) = b.memcgs.get_online(folio.memcg_id()) {
            let ev = match ev {
                SwapEvent::SwpinZero => memcg::MemcgEvent::SwpinZero,
                SwapEvent::SwpoutZero => memcg::MemcgEvent::SwpoutZero,
            };
            m.count_event(ev, nr);
        }
    }

    /// `swap_entry_free` -> `zswap_invalidate`, then the device forgets it.
    fn slot_freed(&self, entry: SwpEntry) {
        bump(&EVENTS.slots_freed);
        if let Some(z) = ZSWAP.get() {
            z.invalidate(entry);
        }
        if let Some(b) = BASE.get() {
            b.backend.discard(entry);
        }
    }

    fn swapcache_wait(&self, _entry: SwpEntry, attempt: u32) -> Result<()> {
        if attempt >= MAX_WAITS {
            bump(&EVENTS.stuck_waits);
            return Err(Error::EDEADLK);
        }
        kbase::sync::cpu_relax();
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// memcg's reclaim hook
// ---------------------------------------------------------------------------

/// `try_to_free_mem_cgroup_pages`: this kernel's only reclaimable memory is
/// zswap's, so reclaim is zswap writeback of the cgroup's entries. Returns
/// the pages' worth of charge it freed.
pub struct Reclaim;

impl ReclaimHook for Reclaim {
    fn reclaim(&self, memcg: &MemcgRef, _nr_pages: u64, _gfp: Gfp) -> u64 {
        bump(&EVENTS.reclaims);
        let Some(z) = ZSWAP.get() else {
            return 0;
        };
        if IN_RECLAIM.swap(true, Ordering::Relaxed) {
            // No reclaim from inside reclaim.
            return 0;
        }
        let before = memcg.memory_current();
        // `shrink_memcg` examines one entry per call (Linux's `nr_to_walk =
        // 1`): a referenced entry only loses its second chance (EAGAIN), a
        // busy slot is skipped. Walk until one entry is written back, at
        // most twice around the list (every second chance, then every entry).
        let bound = 2 * z.lru_count(Some(memcg)) + 2;
        for _ in 0..bound {
            match z.shrink_memcg(memcg) {
                Err(Error::EAGAIN) => {}
                _ => break,
            }
        }
        IN_RECLAIM.store(false, Ordering::Relaxed);
        before
            .saturating_sub(memcg.memory_current())
            .div_ceil(PAGE_SIZE as u64)
    }
}

// ---------------------------------------------------------------------------
// zswap's platform
// ---------------------------------------------------------------------------

/// `zswap_core::ZswapPlatform`.
pub struct BareZswap {
    base: &'static Base,
    cpus: BareCpus,
    /// Times the shrink worker was queued.
    pub shrink_queued: AtomicUsize,
}

impl BareZswap {
    /// The platform over `base`.
    pub fn new(base: &'static Base) -> BareZswap {
        BareZswap {
            base,
            cpus: BareCpus {
                next: AtomicUsize::new(0),
            },
            shrink_queued: AtomicUsize::new(0),
        }
    }
}

impl ZswapPlatform for BareZswap {
    type Swap = BareSwap;

    fn page_allocator(&self) -> &'static dyn PageAllocator {
        &FRAMES
    }
    fn cpu(&self) -> &dyn CpuInfo {
        &self.cpus
    }
    fn totalram_pages(&self) -> u64 {
        NR_FRAMES as u64
    }
    fn swap_space(&self) -> &SwapSpace<BareSwap> {
        &self.base.swap
    }
    fn backend(&self) -> &dyn SwapBackend {
        &self.base.backend
    }
    fn memcg_tree(&self) -> Option<&MemcgTree> {
        Some(&self.base.memcgs)
    }
    fn queue_shrink_work(&self) {
        bump(&self.shrink_queued);
    }
    /// Writeback's folio is freed once written: its swap-in charge goes.
    fn writeback_folio_done(&self, folio: &Folio) {
        bump(&EVENTS.wb_done);
        uncharge_folio(folio);
    }
}
