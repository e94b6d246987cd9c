//! The zswap platform glue: everything the crates ask of a kernel, in one
//! file.
//!
//! | crate asks for | this kernel gives |
//! |---|---|
//! | `kbase::PageAllocator` | [`FRAMES`](crate::mm::frames::FRAMES), the same frames the task's pages use |
//! | `kbase::CpuInfo` | [`OneCpu`]: one hart |
//! | `swapcache::SwapPlatform` | [`KernelSwap`]: swap-in charges, `slot_freed` -> `zswap_invalidate`, swap-cache waits, zeromap events |
//! | `swapcache::SwapBackend` | [`RamDisk`]: the swap device, a RAM disk outside the frames |
//! | `memcg::ReclaimHook` | [`Reclaim`]: `try_to_free_mem_cgroup_pages` -> `mm::reclaim` |
//! | `zswap_core::ZswapPlatform` | [`KernelZswap`]: the above, plus the shrink worker queued as deferred work |
//!
//! The objects live in statics set once at boot ([`spin::Once`]), so every
//! reference the crates keep is `'static`: [`SWAP`] (swap space and memory
//! cgroups) first, then [`ZSWAP`], whose platform refers to it.
//!
//! Task state (Linux's `current->flags & PF_MEMALLOC`) is one flag: the
//! kernel runs one task. While reclaim runs it is set; a charge made then
//! (zswap writeback's swap-in folio) does not reclaim again and is forced
//! past `memory.max`, as in Linux.

use kbase::sync::{AtomicBool, AtomicUsize, Mutex, Ordering, UnsafeCell};
use kbase::{CpuInfo, Error, Gfp, PAGE_SIZE, PageAllocator, Result};
use memcg::{MemcgEvent, MemcgRef, MemcgTree, ReclaimHook};
use swapcache::{Folio, SwapBackend, SwapEvent, SwapPlatform, SwapSpace, SwpEntry};
use zswap_core::{Zswap, ZswapParams, ZswapPlatform};

use crate::mm::frames::{FRAMES, NR_FRAMES};

/// The swap core and the memory cgroups.
pub struct Swap {
    /// Swap devices and the swap cache.
    pub space: SwapSpace<KernelSwap>,
    /// Memory cgroups.
    pub memcgs: MemcgTree,
    /// The RAM disk's swap type.
    pub swp_type: u32,
}

/// Set once at boot.
pub static SWAP: spin::Once<Swap> = spin::Once::new();
/// zswap, set once at boot after [`SWAP`].
pub static ZSWAP: spin::Once<Zswap<KernelZswap>> = spin::Once::new();

/// `PF_MEMALLOC` of the one task.
static IN_RECLAIM: AtomicBool = AtomicBool::new(false);
/// The shrink worker was queued (`queue_work(shrink_wq, ...)`).
static SHRINK_QUEUED: AtomicBool = AtomicBool::new(false);
/// A swap-in charge is in progress (to count the recursion).
static IN_SWAPIN_CHARGE: AtomicBool = AtomicBool::new(false);

/// Things worth counting that no crate counts.
pub struct Events {
    /// Swap-in charges that ran reclaim: the fault-plus-reclaim recursion.
    pub swapin_charge_reclaims: AtomicUsize,
    /// Charges forced past `memory.max` from inside reclaim.
    pub forced_charges: AtomicUsize,
    /// Swap-cache waits that gave up (one task cannot wait anyone out).
    pub stuck_waits: AtomicUsize,
    /// Shrink worker runs (deferred work).
    pub shrink_worker_runs: AtomicUsize,
}

/// The counters.
pub static EVENTS: Events = Events {
    swapin_charge_reclaims: AtomicUsize::new(0),
    forced_charges: AtomicUsize::new(0),
    stuck_waits: AtomicUsize::new(0),
    shrink_worker_runs: AtomicUsize::new(0),
};

/// Reads a counter.
pub fn get(c: &AtomicUsize) -> usize {
    c.load(Ordering::Relaxed)
}

fn bump(c: &AtomicUsize) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Slots of the swap device: room for all of the task's memory.
pub const SWAP_SLOTS: usize = 8448;

/// Brings up swap, the memory cgroups and zswap: `swapon` of the RAM disk,
/// then zswap on it.
pub fn init(params: ZswapParams) -> Result<()> {
    let memcgs = MemcgTree::new(Gfp::KERNEL)?;
    let space = SwapSpace::new(KernelSwap);
    let swp_type = space.swapon(SWAP_SLOTS as u64, Gfp::KERNEL)?;
    let swap = SWAP.call_once(|| Swap {
        space,
        memcgs,
        swp_type,
    });
    let z = Zswap::new(KernelZswap { swap }, params, Gfp::KERNEL)?;
    ZSWAP.call_once(|| z).swapon(swp_type, SWAP_SLOTS as u64)
}

/// The swap objects (after [`init`]).
pub fn swap() -> Result<&'static Swap> {
    SWAP.get().ok_or(Error::ENOENT)
}

/// zswap (after [`init`]).
pub fn zswap() -> Result<&'static Zswap<KernelZswap>> {
    ZSWAP.get().ok_or(Error::ENOENT)
}

/// Runs reclaim-context code: sets `PF_MEMALLOC` for `f`, unless it is set
/// already (reclaim does not recurse): then `None`.
pub fn as_reclaim<R>(f: impl FnOnce() -> R) -> Option<R> {
    if IN_RECLAIM.swap(true, Ordering::Relaxed) {
        return None;
    }
    let r = f();
    IN_RECLAIM.store(false, Ordering::Relaxed);
    Some(r)
}

/// Runs deferred work: the zswap shrink worker if it was queued. Called by
/// the kernel at a safe point (on the way back to the task), the way a
/// workqueue runs after the interrupted context.
pub fn run_deferred_work() {
    if SHRINK_QUEUED.swap(false, Ordering::Relaxed)
        && let Ok(z) = zswap()
    {
        bump(&EVENTS.shrink_worker_runs);
        z.shrink_worker();
    }
}

/// Uncharges a folio's page from its cgroup (the page is freed or leaves
/// RAM).
pub fn uncharge_folio(folio: &Folio) {
    if let Ok(s) = swap()
        && let Some(m) = s.memcgs.get(folio.memcg_id())
    {
        s.memcgs.uncharge(&m, 1);
        folio.set_memcg_id(0);
    }
}

// ---------------------------------------------------------------------------
// CPUs
// ---------------------------------------------------------------------------

/// One hart.
pub struct OneCpu;

impl CpuInfo for OneCpu {
    fn current_cpu(&self) -> usize {
        0
    }
    fn nr_cpus(&self) -> usize {
        1
    }
}

// ---------------------------------------------------------------------------
// swapcache's platform
// ---------------------------------------------------------------------------

/// `swapcache::SwapPlatform`.
pub struct KernelSwap;

/// Waits of the swap-cache retry loop before giving up with `EDEADLK`.
const MAX_WAITS: u32 = 1000;

impl SwapPlatform for KernelSwap {
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        &FRAMES
    }

    /// `mem_cgroup_swapin_charge_folio`: charges the cgroup recorded for the
    /// slot. Over `memory.max` the charge reclaims through [`Reclaim`]
    /// (which may write back zswap entries, this slot's own among them:
    /// writeback skips it with `EEXIST`). From inside reclaim it is forced.
    fn charge_swapin(&self, folio: &Folio, entry: SwpEntry, gfp: Gfp) -> Result<()> {
        let s = swap()?;
        let id = s.space.lookup_swap_cgroup_id(entry);
        let memcg = s.memcgs.get_online(id).unwrap_or_else(|| s.memcgs.root());
        let r = if IN_RECLAIM.load(Ordering::Relaxed) {
            bump(&EVENTS.forced_charges);
            let gfp = gfp.difference(Gfp::DIRECT_RECLAIM) | Gfp::NOFAIL;
            s.memcgs.try_charge(&memcg, 1, gfp, &Reclaim)
        } else {
            IN_SWAPIN_CHARGE.store(true, Ordering::Relaxed);
            let r = s.memcgs.try_charge(&memcg, 1, gfp, &Reclaim);
            IN_SWAPIN_CHARGE.store(false, Ordering::Relaxed);
            r
        };
        r?;
        folio.set_memcg_id(memcg.id());
        Ok(())
    }

    /// `swap_entry_free`: zswap drops its copy, the device forgets the
    /// slot.
    fn slot_freed(&self, entry: SwpEntry) {
        if let Ok(z) = zswap() {
            z.invalidate(entry);
        }
        RAMDISK.discard(entry);
    }

    /// `count_memcg_folio_events` for the zeromap's `swpin_zero` and
    /// `swpout_zero`.
    fn count_event(&self, folio: &Folio, ev: SwapEvent, nr: u64) {
        let Ok(s) = swap() else { return };
        if let Some(m) = s.memcgs.get_online(folio.memcg_id()) {
            let ev = match ev {
                SwapEvent::SwpinZero => MemcgEvent::SwpinZero,
                SwapEvent::SwpoutZero => MemcgEvent::SwpoutZero,
            };
            m.count_event(ev, nr);
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

/// `try_to_free_mem_cgroup_pages`: the kernel's reclaim for one cgroup
/// ([`crate::mm::reclaim::reclaim_memcg`]). Returns the pages freed.
pub struct Reclaim;

impl ReclaimHook for Reclaim {
    fn reclaim(&self, memcg: &MemcgRef, nr_pages: u64, gfp: Gfp) -> u64 {
        if IN_SWAPIN_CHARGE.load(Ordering::Relaxed) {
            bump(&EVENTS.swapin_charge_reclaims);
        }
        crate::mm::reclaim::reclaim_memcg(memcg, nr_pages, gfp)
    }
}

// ---------------------------------------------------------------------------
// zswap's platform
// ---------------------------------------------------------------------------

/// `zswap_core::ZswapPlatform`.
pub struct KernelZswap {
    swap: &'static Swap,
}

impl ZswapPlatform for KernelZswap {
    type Swap = KernelSwap;

    fn page_allocator(&self) -> &'static dyn PageAllocator {
        &FRAMES
    }
    fn cpu(&self) -> &dyn CpuInfo {
        &OneCpu
    }
    fn totalram_pages(&self) -> u64 {
        NR_FRAMES as u64
    }
    fn swap_space(&self) -> &SwapSpace<KernelSwap> {
        &self.swap.space
    }
    fn backend(&self) -> &dyn SwapBackend {
        &RAMDISK
    }
    fn memcg_tree(&self) -> Option<&MemcgTree> {
        Some(&self.swap.memcgs)
    }
    /// Deferred: [`run_deferred_work`] runs the worker.
    fn queue_shrink_work(&self) {
        SHRINK_QUEUED.store(true, Ordering::Relaxed);
    }
    /// Writeback's folio is freed once written: its swap-in charge goes.
    fn writeback_folio_done(&self, folio: &Folio) {
        uncharge_folio(folio);
    }
}

// ---------------------------------------------------------------------------
// The swap device: a RAM disk
// ---------------------------------------------------------------------------

#[repr(C, align(4096))]
struct Disk(UnsafeCell<[[u8; PAGE_SIZE]; SWAP_SLOTS]>);

// SAFETY: accessed only under `RamDisk::state`'s lock, one slot at a time.
unsafe impl Sync for Disk {}

static DISK: Disk = Disk(UnsafeCell::new([[0; PAGE_SIZE]; SWAP_SLOTS]));

struct DiskState {
    /// Bit `i`: slot `i` holds a written page.
    written: [u64; SWAP_SLOTS.div_ceil(64)],
    pages: usize,
    writes: u64,
    reads: u64,
}

/// A RAM disk of [`SWAP_SLOTS`] pages, one per swap slot: the swap device
/// behind zswap (and what zswap writes back to). Reads of a slot never
/// written fail with `EIO`.
pub struct RamDisk {
    state: Mutex<DiskState>,
}

/// The one RAM disk.
pub static RAMDISK: RamDisk = RamDisk {
    state: Mutex::new(DiskState {
        written: [0; SWAP_SLOTS.div_ceil(64)],
        pages: 0,
        writes: 0,
        reads: 0,
    }),
};

fn slot_ptr(entry: SwpEntry) -> Result<*mut [u8; PAGE_SIZE]> {
    let i = usize::try_from(entry.offset()).map_err(|_| Error::EINVAL)?;
    if i >= SWAP_SLOTS {
        return Err(Error::EINVAL);
    }
    // SAFETY: i < SWAP_SLOTS: inside the disk.
    Ok(DISK
        .0
        .with_mut(|d| unsafe { d.cast::<[u8; PAGE_SIZE]>().add(i) }))
}

impl RamDisk {
    /// Pages held now, pages ever written and read.
    pub fn usage(&self) -> (usize, u64, u64) {
        let s = self.state.lock();
        (s.pages, s.writes, s.reads)
    }
}

impl SwapBackend for RamDisk {
    /// `swap_writepage` to the device; counts `pswpout` for the slot's
    /// cgroup.
    fn write_page(&self, entry: SwpEntry, page: &[u8; PAGE_SIZE]) -> Result<()> {
        let dst = slot_ptr(entry)?;
        let i = entry.offset() as usize;
        {
            let mut s = self.state.lock();
            // SAFETY: the slot's page, written under the disk lock.
            unsafe { (*dst).copy_from_slice(page) };
            if let Some(w) = s.written.get_mut(i / 64)
                && *w & (1 << (i % 64)) == 0
            {
                *w |= 1 << (i % 64);
                s.pages += 1;
            }
            s.writes += 1;
        }
        if let Ok(sw) = swap()
            && let Some(m) = sw.memcgs.get(sw.space.lookup_swap_cgroup_id(entry))
        {
            m.count_event(MemcgEvent::Pswpout, 1);
        }
        Ok(())
    }

    fn read_page(&self, entry: SwpEntry, page: &mut [u8; PAGE_SIZE]) -> Result<()> {
        let src = slot_ptr(entry)?;
        let i = entry.offset() as usize;
        let mut s = self.state.lock();
        if s.written
            .get(i / 64)
            .is_none_or(|w| w & (1 << (i % 64)) == 0)
        {
            return Err(Error::EIO);
        }
        // SAFETY: the slot's page, read under the disk lock.
        page.copy_from_slice(unsafe { &*src });
        s.reads += 1;
        Ok(())
    }

    fn discard(&self, entry: SwpEntry) {
        let i = entry.offset() as usize;
        let mut s = self.state.lock();
        if let Some(w) = s.written.get_mut(i / 64)
            && *w & (1 << (i % 64)) != 0
        {
            *w &= !(1 << (i % 64));
            s.pages -= 1;
        }
    }
}
