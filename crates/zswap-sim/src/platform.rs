//! The platform: what the simulated kernel provides to the zswap crates.
//!
//! | trait | implementation | what it does here |
//! |---|---|---|
//! | `kbase::PageAllocator` | [`SimPageAllocator`] (module `ram`) | page frames of the machine's RAM from a free list; `ENOMEM` when none is left |
//! | `kbase::CpuInfo` | [`SimCpus`] | `nr_cpus` from the scenario; the running task is always on CPU 0 |
//! | `swapcache::SwapPlatform` | [`SimSwap`] | swap-in charge through memcg (may reclaim; forced from inside reclaim), `slot_freed` -> zswap invalidate, the swap-cache wait hook with recursion detection |
//! | `memcg::ReclaimHook` | [`Reclaimer`] | per-cgroup reclaim: swap cold pages out, then run the zswap shrinker |
//! | `zswap_core::ZswapPlatform` | [`SimZswap`] | pool pages, CPUs, RAM size, the swap space, the backend, the cgroups, queueing the shrink worker, and uncharging writeback's folios once zswap is done with them |
//!
//! ## Task context (Linux's `current`)
//!
//! Two pieces of per-task state matter to reclaim, and are thread-local
//! here (the simulated task is the thread running the scenario):
//!
//! - `PF_MEMALLOC`: set while the task runs reclaim. Reclaim does not
//!   recurse into reclaim: a charge made from inside reclaim (zswap
//!   writeback allocating a swap-cache folio) does not reclaim again.
//! - The slots whose `SWAP_HAS_CACHE` this call chain holds while it charges
//!   a swap-in folio (between `swapcache_prepare` and the insertion into the
//!   swap cache). If anything further down the same chain is asked to wait
//!   for one of those slots, the wait can never end: the only party that can
//!   end it is up the stack. [`SimSwap::swapcache_wait`] detects exactly
//!   that, records a deadlock report, and returns `EDEADLK` instead of
//!   hanging. With `skip_if_exists` (zswap writeback's setting) the wait is
//!   never reached.

use std::cell::{Cell, RefCell};
use std::sync::atomic::Ordering;
use std::sync::{OnceLock, Weak};

use kbase::{CpuInfo, Error, Gfp, PageAllocator, Result};
use memcg::{MemcgEvent, MemcgRef, MemcgTree, ReclaimHook};
use swapcache::{Folio, SwapBackend, SwapEvent, SwapPlatform, SwapSpace, SwpEntry};
use zswap_core::ZswapPlatform;

use crate::kernel::{Base, Kernel};
pub use crate::ram::SimPageAllocator;

// ---------------------------------------------------------------------------
// CPUs
// ---------------------------------------------------------------------------

/// The CPUs: the simulated task runs on CPU 0; per-CPU contexts exist for
/// `nr` CPUs as they would on a real machine.
#[derive(Clone, Copy, Debug)]
pub struct SimCpus {
    /// Number of CPUs.
    pub nr: usize,
}

impl CpuInfo for SimCpus {
    fn current_cpu(&self) -> usize {
        0
    }
    fn nr_cpus(&self) -> usize {
        self.nr.max(1)
    }
}

// ---------------------------------------------------------------------------
// Task context
// ---------------------------------------------------------------------------

thread_local! {
    /// PF_MEMALLOC: the task is running reclaim.
    static PF_MEMALLOC: Cell<bool> = const { Cell::new(false) };
    /// Slots whose SWAP_HAS_CACHE this call chain holds while charging.
    static HAS_CACHE_HELD: RefCell<Vec<SwpEntry>> = const { RefCell::new(Vec::new()) };
    /// The cgroup of the task on whose behalf the kernel runs (the faulting
    /// program), for swap-in charges of slots whose cgroup is gone.
    static CURRENT_MEMCG: RefCell<Option<MemcgRef>> = const { RefCell::new(None) };
}

/// Is the task in reclaim (`PF_MEMALLOC`)?
pub fn in_reclaim() -> bool {
    PF_MEMALLOC.with(Cell::get)
}

/// Marks the task as in reclaim until the guard drops
/// (`memalloc_noreclaim_save` / `_restore`).
pub struct MemallocGuard(bool);

impl MemallocGuard {
    /// Sets `PF_MEMALLOC`, remembering the old value.
    pub fn enter() -> MemallocGuard {
        MemallocGuard(PF_MEMALLOC.with(|f| f.replace(true)))
    }
}

impl Drop for MemallocGuard {
    fn drop(&mut self) {
        PF_MEMALLOC.with(|f| f.set(self.0));
    }
}

/// Runs `f` with `memcg` as the current task's cgroup.
pub fn with_current_memcg<R>(memcg: &MemcgRef, f: impl FnOnce() -> R) -> R {
    let old = CURRENT_MEMCG.with(|c| c.replace(Some(memcg.clone())));
    let r = f();
    CURRENT_MEMCG.with(|c| *c.borrow_mut() = old);
    r
}

/// The current task's cgroup, if the kernel runs on behalf of a program.
pub fn current_memcg() -> Option<MemcgRef> {
    CURRENT_MEMCG.with(|c| c.borrow().clone())
}

/// Records that this call chain holds `SWAP_HAS_CACHE` on `entry` while `f`
/// runs.
fn holding_has_cache<R>(entry: SwpEntry, f: impl FnOnce() -> R) -> R {
    HAS_CACHE_HELD.with(|s| s.borrow_mut().push(entry));
    let r = f();
    HAS_CACHE_HELD.with(|s| {
        let mut s = s.borrow_mut();
        if let Some(pos) = s.iter().rposition(|e| *e == entry) {
            s.remove(pos);
        }
    });
    r
}

fn chain_holds(entry: SwpEntry) -> bool {
    HAS_CACHE_HELD.with(|s| s.borrow().contains(&entry))
}

/// How many waits on a slot nobody in this chain holds before the simulator
/// calls it stuck. The machine runs one task: nobody else can ever release
/// the slot, so any wait is hopeless; a few rounds are allowed only so a
/// wait that the platform itself might resolve is not reported early.
const MAX_FOREIGN_WAITS: u32 = 64;

/// Is `ZSWAP_SIM_TRACE` set (trace zswap and swap-cache events to stderr)?
pub fn trace_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("ZSWAP_SIM_TRACE").is_some())
}

// ---------------------------------------------------------------------------
// swapcache's platform
// ---------------------------------------------------------------------------

/// `swapcache::SwapPlatform` for the simulated kernel.
///
/// Holds a weak reference to the kernel, set once the kernel is built (the
/// swap space is created first, as part of the kernel).
pub struct SimSwap {
    pub(crate) alloc: &'static SimPageAllocator,
    pub(crate) kernel: OnceLock<Weak<Kernel>>,
}

impl SimSwap {
    fn kernel(&self) -> Option<std::sync::Arc<Kernel>> {
        self.kernel.get()?.upgrade()
    }
}

impl SwapPlatform for SimSwap {
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.alloc
    }

    /// `mem_cgroup_swapin_charge_folio()`: charge to the cgroup recorded for
    /// the slot at swap-out; if that one is offline or gone, to the current
    /// task's cgroup (Linux: the faulting mm's), else root. From inside
    /// reclaim (zswap writeback allocating its folio) the charge does not
    /// reclaim again and is forced past `memory.max` (`PF_MEMALLOC`).
    ///
    /// Every charge is recorded (`Kernel::note_swapin_charge`) until the
    /// folio's fate is known: the fault path takes it over when it maps the
    /// folio, zswap hands writeback's folios back through
    /// [`ZswapPlatform::writeback_folio_done`], which uncharges them at once.
    fn charge_swapin(&self, folio: &Folio, entry: SwpEntry, gfp: Gfp) -> Result<()> {
        let Some(k) = self.kernel() else {
            return Err(Error::ENOMEM);
        };
        let id = k.swap.lookup_swap_cgroup_id(entry);
        if trace_enabled() {
            eprintln!(
                "swap: charge_swapin {entry:?} memcg {id} in_reclaim {} count {:?} has_cache {:?}",
                in_reclaim(),
                k.swap.swap_count(entry),
                k.swap.has_cache(entry)
            );
        }
        let memcg = k
            .memcgs
            .get_online(id)
            .or_else(current_memcg)
            .unwrap_or_else(|| k.memcgs.root());
        if in_reclaim() {
            // PF_MEMALLOC (zswap writeback from inside reclaim): reclaim must
            // be able to make progress, so the charge does not reclaim again
            // and is forced past memory.max, as Linux does. The folio lives
            // only until its page is written: `writeback_folio_done`
            // uncharges it right after.
            k.memcgs.try_charge(
                &memcg,
                1,
                gfp.difference(Gfp::DIRECT_RECLAIM) | Gfp::NOFAIL,
                &Reclaimer(&k),
            )?;
            if trace_enabled() {
                eprintln!(
                    "swap: forced charge memcg {} current {} max {}",
                    memcg.id(),
                    memcg.memory_current(),
                    memcg.memory_max()
                );
            }
            folio.set_memcg_id(memcg.id());
            k.note_swapin_charge(folio, memcg);
            return Ok(());
        }
        // While the charge runs (and may reclaim), this chain holds the
        // slot's SWAP_HAS_CACHE without a folio in the swap cache.
        holding_has_cache(entry, || {
            k.memcgs.try_charge(&memcg, 1, gfp, &Reclaimer(&k))
        })?;
        folio.set_memcg_id(memcg.id());
        k.note_swapin_charge(folio, memcg);
        Ok(())
    }

    /// `count_memcg_folio_events` for the zeromap's `swpin_zero` and
    /// `swpout_zero`: to the folio's cgroup.
    fn count_event(&self, folio: &Folio, ev: SwapEvent, nr: u64) {
        let Some(k) = self.kernel() else {
            return;
        };
        if let Some(m) = k.memcgs.get(folio.memcg_id()) {
            let ev = match ev {
                SwapEvent::SwpinZero => MemcgEvent::SwpinZero,
                SwapEvent::SwpoutZero => MemcgEvent::SwpoutZero,
            };
            m.count_event(ev, nr);
        }
    }

    /// `swap_entry_free` -> `zswap_invalidate`: the slot is free, drop any
    /// zswap copy and any device copy.
    fn slot_freed(&self, entry: SwpEntry) {
        if let Some(k) = self.kernel() {
            k.slot_freed(entry);
        }
    }

    /// One wait of `read_swap_cache_async`'s retry loop. The simulated
    /// machine has a single task, so a wait can only end if someone on this
    /// very call chain releases the slot, which it cannot do before we
    /// return: if the chain holds the slot, this is the recursion deadlock
    /// that `skip_if_exists` exists to avoid; report it and refuse.
    fn swapcache_wait(&self, entry: SwpEntry, attempt: u32) -> Result<()> {
        let recursive = chain_holds(entry);
        if recursive || attempt >= MAX_FOREIGN_WAITS {
            if let Some(k) = self.kernel() {
                k.report_deadlock(entry, recursive);
            }
            return Err(Error::EDEADLK);
        }
        kbase::sync::cpu_relax();
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// memcg's reclaim hook
// ---------------------------------------------------------------------------

/// `try_to_free_mem_cgroup_pages()`: memcg calls this when a charge passes
/// `memory.max`, and for `memory.reclaim`.
pub struct Reclaimer<'a>(pub &'a Kernel);

impl ReclaimHook for Reclaimer<'_> {
    fn reclaim(&self, memcg: &MemcgRef, nr_pages: u64, gfp: Gfp) -> u64 {
        self.0.reclaim_memcg(memcg, nr_pages, gfp)
    }
}

// ---------------------------------------------------------------------------
// zswap-core's platform
// ---------------------------------------------------------------------------

/// `zswap_core::ZswapPlatform` for the simulated kernel: it shares the
/// kernel's [`Base`] (RAM, CPUs, swap space, backend, cgroups).
pub struct SimZswap {
    base: std::sync::Arc<Base>,
}

impl SimZswap {
    /// The platform over `base`.
    pub fn new(base: std::sync::Arc<Base>) -> SimZswap {
        SimZswap { base }
    }
}

impl ZswapPlatform for SimZswap {
    type Swap = SimSwap;

    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.base.alloc
    }

    fn cpu(&self) -> &dyn CpuInfo {
        &self.base.cpus
    }

    fn totalram_pages(&self) -> u64 {
        self.base.ram_pages
    }

    fn swap_space(&self) -> &SwapSpace<SimSwap> {
        &self.base.swap
    }

    fn backend(&self) -> &dyn SwapBackend {
        &self.base.backend
    }

    fn memcg_tree(&self) -> Option<&MemcgTree> {
        Some(&self.base.memcgs)
    }

    /// `queue_work(shrink_wq, ...)`: the kernel runs the worker at its next
    /// safe point (see `Kernel::safe_point`).
    fn queue_shrink_work(&self) {
        self.base.shrink_work_pending.store(true, Ordering::Release);
    }

    /// Writeback is done with a folio it allocated: the folio is freed (or,
    /// after a failed device write, left in the swap cache for a fault to
    /// find, which charges the mapping anew), so its swap-in charge goes now,
    /// as Linux uncharges a folio when it is freed.
    fn writeback_folio_done(&self, folio: &Folio) {
        if let Some(k) = self.base.swap.platform().kernel() {
            k.uncharge_swapin(folio);
        }
    }

    /// With `ZSWAP_SIM_TRACE` set, zswap's trace points go to stderr.
    fn trace(&self, ev: zswap_core::ZswapEvent) {
        if trace_enabled() {
            eprintln!("zswap: {ev:?}");
        }
    }
}
