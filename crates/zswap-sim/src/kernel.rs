//! The simulated kernel.
//!
//! ## Objects
//!
//! - **RAM**: [`SimPageAllocator`], a page budget. Resident program pages,
//!   swap-cache folios and zswap's pool pages all come from it.
//! - **Swap**: one device of the scenario's size ([`SwapSpace`] with an
//!   in-memory or file [`SwapBackend`]), with zswap in front of it.
//! - **Cgroups**: a [`MemcgTree`]; every resident page is charged to one
//!   cgroup (`memory.current`), every swapped-out page to its swap counter
//!   (`memory.swap.current`), every zswap entry's compressed bytes through
//!   its objcg.
//! - **Regions**: the simulated programs' anonymous memory. A region is an
//!   array of page-table entries ([`Pte`]): not yet touched, present (a
//!   folio in RAM, on its cgroup's LRU), or swapped out (a swap entry).
//! - **LRUs**: one list of resident pages per cgroup, oldest first. Reclaim
//!   takes pages from the cold end; touching a page moves it to the hot end.
//!
//! ## Paths
//!
//! - **Fault** (`Kernel::fault`, Linux's `do_swap_page`):
//!   `read_swap_cache_async(entry, skip_if_exists = false)` (which charges
//!   the folio and may reclaim), then zswap load, or a device read if zswap
//!   holds no copy; verify the content; map the folio; free the swap slot
//!   (the page is exclusive now, so the swap-cache copy is dropped).
//! - **Pageout** (`Kernel::pageout`, `shrink_folio_list` +
//!   `swap_writeout`): `add_to_swap` (slot + swap cache), unmap, zswap
//!   store; if that fails, write to the device, unless the cgroup disabled
//!   zswap writeback, in which case the page stays resident (Linux:
//!   `AOP_WRITEPAGE_ACTIVATE`); drop the folio from the swap cache and free
//!   the page.
//! - **Reclaim**: per cgroup ([`Kernel::reclaim_memcg`], called by memcg when
//!   a charge passes `memory.max` and for `memory.reclaim`) and global
//!   (when free RAM falls below the low watermark, before an allocation, as
//!   kswapd/direct reclaim would). Both pageout cold pages and then run
//!   zswap's shrinker on the cgroups concerned and the pool's compaction
//!   shrinker, like `shrink_node` runs `shrink_slab`.
//! - **Deferred work**: zswap queues its global shrink worker when the pool
//!   is full; the simulator runs it at the next safe point (between two page
//!   operations of the program, with no lock held), like a workqueue.
//!
//! ## Locking
//!
//! The kernel's own state is behind `mm` (one mutex). It is never held while
//! calling swapcache, memcg or zswap-core, since all of them may re-enter
//! the kernel (charge -> reclaim -> pageout -> store -> writeback -> charge).
//! A page being worked on is marked [`Pte::Busy`] and is off the LRU, so a
//! re-entrant path never picks it.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use kbase::{Error, Gfp, KArc, PAGE_SIZE, Result};
use memcg::{MemcgEvent, MemcgRef, MemcgTree};
use swapcache::{FileBackend, Folio, FolioRef, MemBackend, SwapBackend, SwapSpace, SwpEntry};

use zswap_core::ShrinkControl;

use crate::fill::Fill;
use crate::platform::{
    MemallocGuard, Reclaimer, SimCpus, SimPageAllocator, SimSwap, SimZswap, in_reclaim,
    with_current_memcg,
};

/// zswap as the simulator instantiates it.
pub type SimZswapCore = zswap_core::Zswap<SimZswap>;

/// Boot parameters.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// RAM in pages.
    pub ram_pages: u64,
    /// Swap device size in pages.
    pub swap_pages: u64,
    /// Keep the swap device's pages in files in this directory.
    pub swap_dir: Option<std::path::PathBuf>,
    /// CPUs.
    pub cpus: usize,
    /// Content seed.
    pub seed: u64,
    /// zswap runtime parameters to apply at boot, `(name, value)`.
    pub zswap_params: Vec<(String, String)>,
    /// zswap writeback's `skip_if_exists` (false shows the deadlock).
    pub skip_if_exists: bool,
}

/// The swap device's storage.
pub enum Backend {
    /// Pages kept in memory.
    Mem(Box<MemBackend>),
    /// Pages kept in files.
    File(Box<FileBackend>),
}

impl SwapBackend for Backend {
    fn write_page(&self, entry: SwpEntry, page: &[u8; PAGE_SIZE]) -> Result<()> {
        match self {
            Backend::Mem(b) => b.write_page(entry, page),
            Backend::File(b) => b.write_page(entry, page),
        }
    }
    fn read_page(&self, entry: SwpEntry, page: &mut [u8; PAGE_SIZE]) -> Result<()> {
        match self {
            Backend::Mem(b) => b.read_page(entry, page),
            Backend::File(b) => b.read_page(entry, page),
        }
    }
    fn discard(&self, entry: SwpEntry) {
        match self {
            Backend::Mem(b) => b.discard(entry),
            Backend::File(b) => b.discard(entry),
        }
    }
}

/// What the platform shares with zswap-core: everything but zswap itself.
pub struct Base {
    /// RAM.
    pub alloc: &'static SimPageAllocator,
    /// CPUs.
    pub cpus: SimCpus,
    /// RAM size in pages (`totalram_pages`).
    pub ram_pages: u64,
    /// The cgroups.
    pub memcgs: MemcgTree,
    /// Swap devices and the swap cache.
    pub swap: SwapSpace<SimSwap>,
    /// The swap device's storage.
    pub backend: Backend,
    /// zswap queued its shrink worker.
    pub shrink_work_pending: AtomicBool,
}

/// A page-table entry of a simulated program.
pub enum Pte {
    /// Never touched (or freed): reads as zero, not verified.
    None,
    /// In RAM: the folio, the cgroup it is charged to, and its LRU key.
    Present {
        /// The page.
        folio: FolioRef,
        /// Charged to.
        memcg: MemcgRef,
        /// LRU position (larger = more recently used).
        seq: u64,
    },
    /// Swapped out: the PTE holds one reference on the slot.
    Swap(SwpEntry),
    /// Being faulted in or paged out right now (off the LRU).
    Busy,
}

/// A page of a region.
pub struct PageSlot {
    /// Where the page is.
    pub pte: Pte,
    /// Content version (bumped by `write`).
    pub version: u32,
}

/// A region of anonymous memory of a simulated program.
pub struct Region {
    /// Numeric id (part of the content key).
    pub id: u32,
    /// The cgroup of the program that owns it.
    pub memcg: MemcgRef,
    /// Its content.
    pub fill: Fill,
    /// Its pages.
    pub pages: Vec<PageSlot>,
}

/// A page's identity: (region id, page index).
type PageId = (u32, u32);

/// One cgroup's LRU of resident pages.
struct Lru {
    memcg: MemcgRef,
    /// seq -> page, oldest first.
    pages: BTreeMap<u64, PageId>,
}

/// The kernel's own state (behind `Kernel::mm`).
#[derive(Default)]
struct Mm {
    regions: HashMap<String, u32>,
    by_id: HashMap<u32, Region>,
    next_region: u32,
    /// LRUs by memcg id.
    lrus: HashMap<u32, Lru>,
    next_seq: u64,
    /// Resident pages per memcg id (the `anon` stat).
    anon: HashMap<u32, u64>,
}

impl Mm {
    fn lru_add(&mut self, memcg: &MemcgRef, page: PageId) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.lrus
            .entry(memcg.id())
            .or_insert_with(|| Lru {
                memcg: memcg.clone(),
                pages: BTreeMap::new(),
            })
            .pages
            .insert(seq, page);
        seq
    }

    fn lru_del(&mut self, memcg: &MemcgRef, seq: u64) {
        if let Some(l) = self.lrus.get_mut(&memcg.id()) {
            l.pages.remove(&seq);
        }
    }

    fn anon_sub(&mut self, memcg_id: u32) {
        let n = self.anon.entry(memcg_id).or_default();
        *n = n.saturating_sub(1);
    }

    fn slot(&mut self, (r, i): PageId) -> Option<&mut PageSlot> {
        self.by_id.get_mut(&r)?.pages.get_mut(i as usize)
    }
}

/// Counters of the simulated machine (beyond zswap's and memcg's).
#[derive(Default)]
pub struct SimCounters {
    /// Pages read from the swap device (vmstat `pswpin`).
    pub pswpin: AtomicU64,
    /// Pages written to the swap device by reclaim (vmstat `pswpout`).
    pub pswpout: AtomicU64,
    /// Major faults (swap-ins).
    pub faults: AtomicU64,
    /// Pages whose content was verified.
    pub pages_checked: AtomicU64,
    /// Pages whose content was wrong.
    pub mismatches: AtomicU64,
    /// Pages paged out by reclaim (to zswap or the device).
    pub pgsteal: AtomicU64,
    /// Pages reclaim kept resident because their store failed with
    /// writeback disabled.
    pub pgactivate_wb_disabled: AtomicU64,
    /// Global (watermark) reclaim runs.
    pub global_reclaims: AtomicU64,
    /// Runs of zswap's shrink worker.
    pub shrink_worker_runs: AtomicU64,
    /// Swap-out failures for lack of a swap slot.
    pub swap_full: AtomicU64,
    /// Allocations that failed for good (OOM).
    pub oom: AtomicU64,
}

/// A detected deadlock.
#[derive(Clone, Debug)]
pub struct DeadlockReport {
    /// The slot waited on.
    pub entry: SwpEntry,
    /// True if the wait was on a slot this very call chain holds.
    pub recursive: bool,
}

impl std::fmt::Display for DeadlockReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.recursive {
            write!(
                f,
                "recursive wait on swap slot {}:{}: read_swap_cache_async was asked to wait for SWAP_HAS_CACHE \
                 that its own call chain holds (a fault on the slot is charging its folio; the charge reclaimed; \
                 zswap writeback picked the same slot). Without skip_if_exists this waits forever.",
                self.entry.swp_type(),
                self.entry.offset()
            )
        } else {
            write!(
                f,
                "endless wait on swap slot {}:{}: SWAP_HAS_CACHE is held and no task can release it",
                self.entry.swp_type(),
                self.entry.offset()
            )
        }
    }
}

/// The simulated kernel.
pub struct Kernel {
    /// Shared with zswap-core's platform.
    pub base: Arc<Base>,
    /// zswap.
    pub zswap: SimZswapCore,
    /// Swap type of the one device.
    pub swap_type: u32,
    seed: u64,
    /// Low watermark (pages): below it, reclaim before allocating.
    pub watermark_low: u64,
    /// High watermark: global reclaim stops above it.
    pub watermark_high: u64,
    mm: Mutex<Mm>,
    /// Machine counters.
    pub counters: SimCounters,
    deadlock: Mutex<Option<DeadlockReport>>,
    /// Swap-in charges made by `charge_swapin`: (folio address, memcg).
    /// Folios the fault path maps are claimed from here; those it drops, and
    /// zswap writeback's (`writeback_folio_done`), are uncharged at once, as
    /// Linux uncharges a folio when it is freed. Whatever is left at a safe
    /// point belongs to a folio `read_swap_cache_async` charged and then
    /// freed itself (inserting it into the swap cache failed; swapcache has
    /// no uncharge hook) and is uncharged there.
    swapin_charges: Mutex<Vec<(usize, MemcgRef)>>,
    /// Live cgroups by path, and every cgroup ever created by id.
    cgroups: Mutex<BTreeMap<String, MemcgRef>>,
    /// The zswap shrinker's deferred scan work per memcg id, and the pool
    /// compaction shrinker's under [`POOL_SHRINKER_ID`].
    nr_deferred: Mutex<HashMap<u32, u64>>,
}

/// The `nr_deferred` key of the pool compaction shrinker (no memcg has it).
const POOL_SHRINKER_ID: u32 = u32::MAX;

impl std::ops::Deref for Kernel {
    type Target = Base;
    fn deref(&self) -> &Base {
        &self.base
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Allocation flags of a program's page fault (`GFP_HIGHUSER_MOVABLE`).
const GFP_USER: Gfp = Gfp::KERNEL.union(Gfp::MOVABLE).union(Gfp::HIGHMEM);

/// Pages scanned per reclaim batch (`SWAP_CLUSTER_MAX`).
const SWAP_CLUSTER_MAX: u64 = 32;

impl Kernel {
    /// Boots: RAM, cgroup root, swap device, zswap.
    pub fn boot(cfg: &KernelConfig) -> std::result::Result<Arc<Kernel>, String> {
        let alloc = SimPageAllocator::leak(cfg.ram_pages as usize)?;
        let memcgs = MemcgTree::new(Gfp::KERNEL).map_err(|e| format!("memcg tree: {e}"))?;
        let backend = match &cfg.swap_dir {
            None => Backend::Mem(Box::new(MemBackend::new())),
            // The folder must exist: nothing is created outside it.
            Some(dir) => Backend::File(Box::new(
                FileBackend::new(dir).map_err(|e| format!("swap_file: {}: {e}", dir.display()))?,
            )),
        };
        let swap = SwapSpace::new(SimSwap {
            alloc,
            kernel: OnceLock::new(),
        });
        let swap_type = swap
            .swapon(cfg.swap_pages, Gfp::KERNEL)
            .map_err(|e| format!("swapon: {e}"))?;
        let base = Arc::new(Base {
            alloc,
            cpus: SimCpus { nr: cfg.cpus },
            ram_pages: cfg.ram_pages,
            memcgs,
            swap,
            backend,
            shrink_work_pending: AtomicBool::new(false),
        });
        let zswap =
            zswap_core::Zswap::new(SimZswap::new(base.clone()), Default::default(), Gfp::KERNEL)
                .map_err(|e| format!("zswap: {e}"))?;
        // --no-skip-if-exists: writeback waits on busy slots (the setting
        // exists only to show the recursion deadlock it prevents).
        zswap.test_only_writeback_waits_on_busy_slots(!cfg.skip_if_exists);
        zswap
            .swapon(swap_type, cfg.swap_pages)
            .map_err(|e| format!("zswap swapon: {e}"))?;
        for (k, v) in &cfg.zswap_params {
            zswap
                .set_param(k, v)
                .map_err(|e| format!("zswap parameter {k} = {v}: {e}"))?;
        }
        // Watermarks: like min_free_kbytes scaled for a small machine.
        let low = (cfg.ram_pages / 64).clamp(16, 4096);
        let kernel = Arc::new(Kernel {
            base,
            zswap,
            swap_type,
            seed: cfg.seed,
            watermark_low: low,
            watermark_high: low * 2,
            mm: Mutex::new(Mm::default()),
            counters: SimCounters::default(),
            deadlock: Mutex::new(None),
            swapin_charges: Mutex::new(Vec::new()),
            cgroups: Mutex::new(BTreeMap::new()),
            nr_deferred: Mutex::new(HashMap::new()),
        });
        let _ = kernel
            .base
            .swap
            .platform()
            .kernel
            .set(Arc::downgrade(&kernel));
        Ok(kernel)
    }

    // -----------------------------------------------------------------
    // Cgroups
    // -----------------------------------------------------------------

    /// `mkdir`: creates a cgroup and applies `(memcg file, value)` settings.
    pub fn create_cgroup(&self, path: &str, settings: &[(String, String)]) -> Result<()> {
        let m = self.memcgs.create(path, Gfp::KERNEL)?;
        lock(&self.cgroups).insert(path.to_string(), m.clone());
        for (k, v) in settings {
            self.set_cgroup_file(path, k, v)?;
        }
        Ok(())
    }

    /// Writes a cgroup file (`memory.max`, `memory.zswap.max`,
    /// `memory.zswap.writeback`).
    pub fn set_cgroup_file(&self, path: &str, file: &str, value: &str) -> Result<()> {
        let m = self.cgroup(path)?;
        match file {
            "memory.max" => {
                m.set_memory_max(value)?;
                // Linux reclaims down to a lowered limit right away.
                let max = m.memory_max();
                let mut tries = 0;
                while m.memory_current() > max && tries < 16 {
                    let over = (m.memory_current() - max).div_ceil(PAGE_SIZE as u64);
                    if self.reclaim_memcg(&m, over, Gfp::KERNEL) == 0 {
                        tries += 1;
                    }
                }
                Ok(())
            }
            "memory.zswap.max" => m.set_zswap_max(value),
            "memory.zswap.writeback" => m.set_zswap_writeback(value),
            _ => Err(Error::EINVAL),
        }
    }

    /// A live cgroup by path (`root` is the root).
    pub fn cgroup(&self, path: &str) -> Result<MemcgRef> {
        if path == "root" {
            return Ok(self.memcgs.root());
        }
        lock(&self.cgroups).get(path).cloned().ok_or(Error::ENOENT)
    }

    /// Live cgroups by path.
    pub fn cgroups(&self) -> Vec<(String, MemcgRef)> {
        lock(&self.cgroups)
            .iter()
            .map(|(p, m)| (p.clone(), m.clone()))
            .collect()
    }

    /// `rmdir`: the cgroup goes offline (its charges and zswap entries pass
    /// to the parent) and is removed; programs in it move to the parent.
    pub fn remove_cgroup(&self, path: &str) -> Result<()> {
        let off = self.memcgs.remove(path)?;
        // ENOMEM here leaves the cgroup's zswap entries on its own list;
        // they are still freed correctly, only not reclaimed as the parent's.
        let _ = self.zswap.memcg_offline(&off.memcg);
        lock(&self.cgroups).remove(path);
        let mut mm = lock(&self.mm);
        for r in mm.by_id.values_mut() {
            if KArc::ptr_eq(&r.memcg, &off.memcg) {
                r.memcg = off.parent.clone();
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------
    // Regions (the simulated programs)
    // -----------------------------------------------------------------

    /// Maps a region of `pages` pages for a program in `cgroup` and writes
    /// every page (each page fault allocates and charges a page).
    pub fn alloc_region(
        &self,
        cgroup: &str,
        name: &str,
        pages: u64,
        fill: Fill,
        tick: &mut dyn FnMut(),
    ) -> Result<()> {
        let memcg = self.cgroup(cgroup)?;
        let id = {
            let mut mm = lock(&self.mm);
            let id = mm.next_region;
            mm.next_region += 1;
            let mut v = Vec::new();
            v.try_reserve_exact(pages as usize)?;
            v.extend((0..pages).map(|_| PageSlot {
                pte: Pte::None,
                version: 0,
            }));
            mm.regions.insert(name.to_string(), id);
            mm.by_id.insert(
                id,
                Region {
                    id,
                    memcg: memcg.clone(),
                    fill,
                    pages: v,
                },
            );
            id
        };
        for i in 0..pages as u32 {
            self.touch_new(id, i)?;
            self.safe_point();
            tick();
        }
        Ok(())
    }

    fn region_id(&self, name: &str) -> Result<(u32, usize)> {
        let mm = lock(&self.mm);
        let id = *mm.regions.get(name).ok_or(Error::ENOENT)?;
        let n = mm.by_id.get(&id).map_or(0, |r| r.pages.len());
        Ok((id, n))
    }

    /// Reads every page of a region, faulting in what is swapped out and
    /// verifying every page's content.
    pub fn read_region(&self, name: &str, tick: &mut dyn FnMut()) -> Result<()> {
        let (id, n) = self.region_id(name)?;
        for i in 0..n as u32 {
            self.access(id, i, false)?;
            self.safe_point();
            tick();
        }
        Ok(())
    }

    /// Rewrites every page of a region with new content (its next version),
    /// optionally switching the region's fill.
    pub fn write_region(
        &self,
        name: &str,
        fill: Option<Fill>,
        tick: &mut dyn FnMut(),
    ) -> Result<()> {
        let (id, n) = self.region_id(name)?;
        for i in 0..n as u32 {
            self.access(id, i, true)?;
            if i == 0
                && let Some(f) = &fill
                && let Some(r) = lock(&self.mm).by_id.get_mut(&id)
            {
                r.fill = f.clone();
            }
            self.safe_point();
            tick();
        }
        if let Some(f) = fill
            && let Some(r) = lock(&self.mm).by_id.get_mut(&id)
        {
            r.fill = f;
        }
        Ok(())
    }

    /// Unmaps a region: resident pages are freed and uncharged, swap slots
    /// are freed (which invalidates their zswap entries).
    pub fn free_region(&self, name: &str) -> Result<()> {
        let region = {
            let mut mm = lock(&self.mm);
            let id = mm.regions.remove(name).ok_or(Error::ENOENT)?;
            let r = mm.by_id.remove(&id).ok_or(Error::ENOENT)?;
            for p in &r.pages {
                if let Pte::Present { memcg, seq, .. } = &p.pte {
                    mm.lru_del(memcg, *seq);
                    mm.anon_sub(memcg.id());
                }
            }
            r
        };
        for p in region.pages {
            match p.pte {
                Pte::Present { folio, memcg, .. } => {
                    drop(folio);
                    self.memcgs.uncharge(&memcg, 1);
                }
                Pte::Swap(entry) => {
                    self.swap_uncharge(entry);
                    // zap_pte_range -> free_swap_and_cache: the last
                    // reference frees the slot; slot_freed invalidates zswap.
                    let _ = self.swap.free_swap_and_cache(entry);
                }
                Pte::None | Pte::Busy => {}
            }
        }
        self.safe_point();
        Ok(())
    }

    /// First touch of a page: allocate, charge, write its content, map it.
    fn touch_new(&self, region: u32, index: u32) -> Result<()> {
        let (memcg, fill, version) = {
            let mut mm = lock(&self.mm);
            let r = mm.by_id.get_mut(&region).ok_or(Error::ENOENT)?;
            let (memcg, fill) = (r.memcg.clone(), r.fill.clone());
            let slot = r.pages.get_mut(index as usize).ok_or(Error::EINVAL)?;
            slot.pte = Pte::Busy;
            (memcg, fill, slot.version)
        };
        let res = with_current_memcg(&memcg, || -> Result<FolioRef> {
            self.memcgs
                .try_charge(&memcg, 1, GFP_USER, &Reclaimer(self))?;
            let folio = match self.alloc_folio() {
                Ok(f) => f,
                Err(e) => {
                    self.memcgs.uncharge(&memcg, 1);
                    return Err(e);
                }
            };
            folio.set_memcg_id(memcg.id());
            folio.with_page_mut(0, |p| {
                fill.generate(self.seed, region, index as u64, version, p)
            })?;
            Ok(folio)
        });
        let mut mm = lock(&self.mm);
        match res {
            Ok(folio) => {
                let seq = mm.lru_add(&memcg, (region, index));
                *mm.anon.entry(memcg.id()).or_default() += 1;
                if let Some(s) = mm.slot((region, index)) {
                    s.pte = Pte::Present { folio, memcg, seq };
                }
                Ok(())
            }
            Err(e) => {
                if let Some(s) = mm.slot((region, index)) {
                    s.pte = Pte::None;
                }
                Err(e)
            }
        }
    }

    /// Allocates a page for a program, reclaiming globally first if free
    /// RAM is below the low watermark, and again if the allocation fails
    /// (direct reclaim), then giving up (OOM).
    fn alloc_folio(&self) -> Result<FolioRef> {
        self.balance_ram();
        for _ in 0..4 {
            match Folio::alloc(self.alloc, 1, GFP_USER) {
                Ok(f) => return Ok(f),
                Err(_) => {
                    if self.reclaim_global(SWAP_CLUSTER_MAX) == 0 && !in_reclaim() {
                        self.run_shrink_worker();
                    }
                }
            }
        }
        self.counters.oom.fetch_add(1, Ordering::Relaxed);
        Err(Error::ENOMEM)
    }

    /// A program touches page `index` of `region`: fault it in if needed,
    /// verify it, and for a write, store the next version.
    fn access(&self, region: u32, index: u32, write: bool) -> Result<()> {
        enum State {
            Present(FolioRef, MemcgRef, u64),
            Swapped(SwpEntry),
            Untouched,
        }
        let (state, fill, version, owner) = {
            let mut mm = lock(&self.mm);
            let r = mm.by_id.get_mut(&region).ok_or(Error::ENOENT)?;
            let (fill, owner) = (r.fill.clone(), r.memcg.clone());
            let slot = r.pages.get_mut(index as usize).ok_or(Error::EINVAL)?;
            let version = slot.version;
            let st = match std::mem::replace(&mut slot.pte, Pte::Busy) {
                Pte::Present { folio, memcg, seq } => State::Present(folio, memcg, seq),
                Pte::Swap(e) => State::Swapped(e),
                Pte::None => State::Untouched,
                Pte::Busy => return Err(Error::EBUSY),
            };
            if let State::Present(_, m, seq) = &st {
                mm.lru_del(m, *seq);
            }
            (st, fill, version, owner)
        };
        let faulted = matches!(state, State::Swapped(_));
        let (folio, memcg) = match state {
            State::Untouched => {
                if let Some(s) = lock(&self.mm).slot((region, index)) {
                    s.pte = Pte::None;
                }
                return self.touch_new(region, index);
            }
            State::Present(f, m, _) => (f, m),
            State::Swapped(entry) => match with_current_memcg(&owner, || self.fault(entry)) {
                Ok(x) => x,
                Err(e) => {
                    if let Some(s) = lock(&self.mm).slot((region, index)) {
                        s.pte = Pte::Swap(entry);
                    }
                    return Err(e);
                }
            },
        };
        // Verify what the program reads.
        let ok = folio
            .with_page(0, |p| {
                fill.verify(self.seed, region, index as u64, version, p)
            })
            .unwrap_or(false);
        self.counters.pages_checked.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.counters.mismatches.fetch_add(1, Ordering::Relaxed);
        }
        let new_version = if write {
            version.wrapping_add(1)
        } else {
            version
        };
        if write {
            let _ = folio.with_page_mut(0, |p| {
                fill.generate(self.seed, region, index as u64, new_version, p)
            });
        }
        let mut mm = lock(&self.mm);
        if faulted {
            *mm.anon.entry(memcg.id()).or_default() += 1;
        }
        let seq = mm.lru_add(&memcg, (region, index));
        if let Some(s) = mm.slot((region, index)) {
            s.version = new_version;
            s.pte = Pte::Present { folio, memcg, seq };
        }
        Ok(())
    }

    /// `swapoff`: Linux's `try_to_unuse` faults every page still on the
    /// device back into its region (from the zeromap, zswap or the device,
    /// through the fault path: each page is verified and charged to its
    /// cgroup, which may reclaim; with the device refusing new slots, such
    /// reclaim can only keep pages in RAM), then `zswap_swapoff` frees the
    /// trees, which must be empty (`EBUSY` otherwise), and the device goes.
    /// A failed fault (`ENOMEM`: the pages do not fit) stops it and leaves
    /// the device on, nothing lost.
    pub fn swapoff(&self) -> Result<()> {
        let t = self.swap_type;
        // The owners of every slot: page-table entries are the only ones
        // here, and no new slot is handed out while try_to_unuse runs.
        let owners: HashMap<SwpEntry, Vec<PageId>> = {
            let mm = lock(&self.mm);
            let mut o: HashMap<SwpEntry, Vec<PageId>> = HashMap::new();
            for (id, r) in &mm.by_id {
                for (i, p) in r.pages.iter().enumerate() {
                    if let Pte::Swap(e) = p.pte {
                        o.entry(e).or_default().push((*id, i as u32));
                    }
                }
            }
            o
        };
        self.swap.try_to_unuse(t, &mut |entry| {
            for &(r, i) in owners.get(&entry).into_iter().flatten() {
                self.access(r, i, false)?;
            }
            Ok(())
        })?;
        self.zswap.swapoff(t)?;
        self.swap.swapoff(t)
    }

    /// `do_swap_page`: brings the page at `entry` back into RAM and frees its
    /// swap slot. Returns the folio (unlocked, not in the swap cache) and
    /// the cgroup it is charged to. The caller verifies and maps it.
    fn fault(&self, entry: SwpEntry) -> Result<(FolioRef, MemcgRef)> {
        self.counters.faults.fetch_add(1, Ordering::Relaxed);
        self.balance_ram();
        // A program's swap-in never skips: it must wait for a slot that is
        // busy (readahead and do_swap_page pass skip_if_exists = false).
        let mut tries = 0;
        let mut stale = 0;
        let (folio, new) = loop {
            match self.swap.read_swap_cache_async(entry, GFP_USER, false) {
                // do_swap_page: a folio found in the swap cache must still be
                // the cache's folio for this entry once it is locked (it may
                // have left, and another been cached); else retry.
                Ok((f, false)) if f.trylock() => {
                    if f.test_swapcache() && f.swap() == Some(entry) {
                        f.unlock();
                        break (f, false);
                    }
                    f.unlock();
                    stale += 1;
                    if stale > 8 {
                        return Err(Error::EAGAIN);
                    }
                }
                Ok(x) => break x,
                // The folio allocation failed: reclaim and retry, as the
                // page allocator would before giving up.
                Err(Error::ENOMEM) if self.alloc.free_pages() == 0 && tries < 8 => {
                    tries += 1;
                    if self.reclaim_global(SWAP_CLUSTER_MAX) == 0 {
                        self.counters.oom.fetch_add(1, Ordering::Relaxed);
                        return Err(Error::ENOMEM);
                    }
                }
                Err(e) => return Err(e),
            }
        };
        if new {
            // swap_read_folio: the zeromap first, then zswap, then the device.
            let from_zswap = match self.swap.zeromap_folio_read(&folio) {
                Ok(true) => Ok(()),
                Ok(false) => self.zswap.load(&folio),
                Err(e) => Err(e),
            };
            let r = match from_zswap {
                Ok(()) => Ok(()),
                Err(Error::ENOENT) => {
                    let r = folio
                        .with_page_mut(0, |p| self.backend.read_page(entry, p))
                        .and_then(|r| r);
                    if r.is_ok() {
                        self.counters.pswpin.fetch_add(1, Ordering::Relaxed);
                        if let Some(m) = self.memcgs.get(folio.memcg_id()) {
                            m.count_event(MemcgEvent::Pswpin, 1);
                        }
                        // zswap_folio_swapin: the dynamic shrinker backs off
                        // by the pages that had to come from the device.
                        self.zswap.folio_swapin(&folio);
                    }
                    r
                }
                Err(e) => Err(e),
            };
            if let Err(e) = r {
                // Leave the slot as it was: drop our folio from the cache.
                self.swap.delete_from_swap_cache(&folio);
                folio.unlock();
                self.uncharge_swapin(&folio);
                drop(folio);
                return Err(e);
            }
            folio.set_uptodate();
        } else {
            // A folio already in the swap cache: one left there by a failed
            // writeback I/O. Nobody else runs, so it is unlocked unless this
            // very call chain holds it, which would be a recursion.
            if !folio.trylock() {
                self.report_deadlock(entry, true);
                return Err(Error::EDEADLK);
            }
            // Re-checked under the lock we now hold for good (nothing else
            // runs between the check above and this lock in this machine).
            if !folio.test_swapcache() || folio.swap() != Some(entry) {
                folio.unlock();
                return Err(Error::EAGAIN);
            }
            if !folio.test_uptodate() {
                folio.unlock();
                return Err(Error::EIO);
            }
        }
        // The page is ours alone now: free the slot (swap_free + folio_free_swap).
        let memcg = if new {
            self.claim_swapin_charge(&folio)
        } else if let Some(memcg) = self.take_swapin_charge(&folio) {
            // A folio left in the swap cache charged (a writeback whose
            // device write failed): the mapping takes its charge over.
            memcg
        } else {
            // The cached folio's own charge went with its writeback; charge
            // the mapping to the faulting program's cgroup.
            let owner = crate::platform::current_memcg().unwrap_or_else(|| self.memcgs.root());
            if let Err(e) = self
                .memcgs
                .try_charge(&owner, 1, GFP_USER, &Reclaimer(self))
            {
                folio.unlock();
                return Err(e);
            }
            owner
        };
        self.swap_uncharge(entry);
        let _ = self.swap.swap_free(entry);
        self.swap.delete_from_swap_cache(&folio);
        folio.unlock();
        Ok((folio, memcg))
    }

    /// Uncharges `memory.swap.current` of the cgroup recorded for a slot
    /// about to be freed (`mem_cgroup_uncharge_swap`).
    fn swap_uncharge(&self, entry: SwpEntry) {
        let id = self.swap.lookup_swap_cgroup_id(entry);
        if let Some(m) = self.memcgs.get(id) {
            m.swap_uncharge(1);
        }
    }

    // -----------------------------------------------------------------
    // Reclaim
    // -----------------------------------------------------------------

    /// `try_to_free_mem_cgroup_pages`: reclaims up to `nr_pages` from
    /// `memcg`'s subtree. Returns the pages freed.
    pub fn reclaim_memcg(&self, memcg: &MemcgRef, nr_pages: u64, gfp: Gfp) -> u64 {
        if in_reclaim() {
            // PF_MEMALLOC: reclaim does not recurse.
            return 0;
        }
        let _memalloc = MemallocGuard::enter();
        // Reclaim works in SWAP_CLUSTER_MAX batches, whatever was asked.
        let nr = nr_pages.max(SWAP_CLUSTER_MAX);
        let (reclaimed, scanned, lru_pages) = self.shrink_lru(Some(memcg), nr, gfp);
        self.shrink_slab(Some(memcg), scanned, lru_pages, gfp);
        reclaimed
    }

    /// Global reclaim (kswapd / direct reclaim): from every cgroup's LRU,
    /// oldest pages first. Returns the pages freed.
    pub fn reclaim_global(&self, nr_pages: u64) -> u64 {
        if in_reclaim() {
            return 0;
        }
        let _memalloc = MemallocGuard::enter();
        self.counters
            .global_reclaims
            .fetch_add(1, Ordering::Relaxed);
        let (reclaimed, scanned, lru_pages) = self.shrink_lru(None, nr_pages, Gfp::KERNEL);
        self.shrink_slab(None, scanned, lru_pages, Gfp::KERNEL);
        reclaimed
    }

    /// Keeps free RAM above the low watermark (what kswapd does in the
    /// background): reclaim up to the high watermark.
    fn balance_ram(&self) {
        if in_reclaim() || self.alloc.free_pages() >= self.watermark_low {
            return;
        }
        let mut stalls = 0;
        while self.alloc.free_pages() < self.watermark_high && stalls < 4 {
            let want = self.watermark_high - self.alloc.free_pages();
            if self.reclaim_global(want.min(4 * SWAP_CLUSTER_MAX)) == 0 {
                stalls += 1;
                self.run_shrink_worker();
            }
        }
    }

    /// `shrink_lruvec`: pages out cold pages of `target`'s subtree (all
    /// cgroups if None) until `nr` are freed or a scan budget runs out.
    /// Returns (freed, scanned, LRU pages before the scan).
    fn shrink_lru(&self, target: Option<&MemcgRef>, nr: u64, gfp: Gfp) -> (u64, u64, u64) {
        let lru_pages = {
            let mm = lock(&self.mm);
            mm.lrus
                .values()
                .filter(|l| target.is_none_or(|t| l.memcg.is_descendant_of(t)))
                .map(|l| l.pages.len() as u64)
                .sum::<u64>()
        };
        let budget = nr.saturating_mul(4).saturating_add(SWAP_CLUSTER_MAX);
        let (mut freed, mut scanned) = (0, 0);
        while freed < nr && scanned < budget {
            let Some((page, folio, memcg)) = self.isolate_oldest(target) else {
                break;
            };
            scanned += 1;
            if self.pageout(page, folio, memcg, gfp) {
                freed += 1;
            }
        }
        (freed, scanned, lru_pages)
    }

    /// Takes the oldest resident page of `target`'s subtree off its LRU and
    /// marks its PTE busy.
    fn isolate_oldest(&self, target: Option<&MemcgRef>) -> Option<(PageId, FolioRef, MemcgRef)> {
        let mut mm = lock(&self.mm);
        let (mid, seq, page) = mm
            .lrus
            .iter()
            .filter(|(_, l)| target.is_none_or(|t| l.memcg.is_descendant_of(t)))
            .filter_map(|(id, l)| l.pages.first_key_value().map(|(s, p)| (*id, *s, *p)))
            .min_by_key(|(_, s, _)| *s)?;
        if let Some(l) = mm.lrus.get_mut(&mid) {
            l.pages.remove(&seq);
        }
        let slot = mm.slot(page)?;
        match std::mem::replace(&mut slot.pte, Pte::Busy) {
            Pte::Present { folio, memcg, .. } => Some((page, folio, memcg)),
            other => {
                slot.pte = other;
                None
            }
        }
    }

    /// `shrink_folio_list` for one page + `swap_writeout`. Returns true if
    /// the page left RAM.
    fn pageout(&self, page: PageId, folio: FolioRef, memcg: MemcgRef, gfp: Gfp) -> bool {
        let _ = gfp;
        let remap = |folio: FolioRef, memcg: MemcgRef| {
            let mut mm = lock(&self.mm);
            let seq = mm.lru_add(&memcg, page);
            if let Some(s) = mm.slot(page) {
                s.pte = Pte::Present { folio, memcg, seq };
            }
        };
        if !folio.trylock() {
            remap(folio, memcg);
            return false;
        }
        // add_to_swap: a slot (count 1: the PTE's reference) + swap cache.
        let entry = match self.swap.add_to_swap(&folio, Gfp::NOWAIT) {
            Ok(e) => e,
            Err(_) => {
                self.counters.swap_full.fetch_add(1, Ordering::Relaxed);
                folio.unlock();
                remap(folio, memcg);
                return false;
            }
        };
        let _ = self.swap.swap_cgroup_record(entry, 1, memcg.id());
        memcg.swap_charge(1);
        folio.set_dirty();
        // try_to_unmap: the PTE now holds the swap entry.
        if let Some(s) = lock(&self.mm).slot(page) {
            s.pte = Pte::Swap(entry);
        }
        // swap_writeout: a zero page goes to the swap core's zeromap and is
        // done (6.12+: zswap never sees it); else zswap first.
        let stored = match self.swap.zeromap_folio_store(&folio) {
            Ok(true) => true,
            _ => self.zswap.store(&folio).is_ok(),
        };
        if !stored {
            // The page stays in RAM: give the slot back (this frees it:
            // slot_freed runs) and map the page again.
            let keep_page = |folio: FolioRef, memcg: MemcgRef| {
                memcg.swap_uncharge(1);
                let _ = self.swap.swap_free(entry);
                self.swap.delete_from_swap_cache(&folio);
                folio.unlock();
                remap(folio, memcg);
                false
            };
            if self.zswap_enabled() && !memcg.zswap_writeback_enabled() {
                // memory.zswap.writeback = 0: do not write to the device
                // (AOP_WRITEPAGE_ACTIVATE).
                self.counters
                    .pgactivate_wb_disabled
                    .fetch_add(1, Ordering::Relaxed);
                return keep_page(folio, memcg);
            }
            let w = folio
                .with_page(0, |p| self.backend.write_page(entry, p))
                .and_then(|r| r);
            if w.is_err() {
                // Device error: keep the page.
                return keep_page(folio, memcg);
            }
            self.counters.pswpout.fetch_add(1, Ordering::Relaxed);
            memcg.count_event(MemcgEvent::Pswpout, 1);
        }
        // Written: the page is clean; drop it from the swap cache and free it.
        folio.clear_dirty();
        self.swap.delete_from_swap_cache(&folio);
        folio.unlock();
        drop(folio);
        {
            let mut mm = lock(&self.mm);
            mm.anon_sub(memcg.id());
        }
        self.memcgs.uncharge(&memcg, 1);
        self.counters.pgsteal.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// `shrink_slab` for zswap's shrinker: on `target`'s subtree (every
    /// cgroup if None), scan a share of each cgroup's freeable entries equal
    /// to twice the share of the LRU just scanned (`DEFAULT_SEEKS` = 2:
    /// `delta = 2 * scanned * freeable / lru_pages`). Small deltas are
    /// deferred until they make a batch, as Linux's `nr_deferred` does.
    fn shrink_slab(&self, target: Option<&MemcgRef>, nr_scanned: u64, lru_pages: u64, gfp: Gfp) {
        let mut memcgs = vec![self.memcgs.root()];
        memcgs.extend(self.cgroups().into_iter().map(|(_, m)| m));
        for m in memcgs {
            if target.is_some_and(|t| !m.is_descendant_of(t)) {
                continue;
            }
            let id = m.id();
            let mut sc = ShrinkControl::new(Some(m), 0);
            sc.gfp = gfp;
            let count = self.zswap.shrinker_count(&sc);
            if crate::platform::trace_enabled() {
                eprintln!(
                    "shrink_slab: memcg {id} count {count} lru scanned {nr_scanned} of {lru_pages}"
                );
            }
            if count == 0 {
                continue;
            }
            let delta = (2 * nr_scanned as u128 * count as u128 / (lru_pages as u128 + 1)) as u64;
            let total = {
                let mut d = lock(&self.nr_deferred);
                let t = d.remove(&id).unwrap_or(0) + delta.max(1);
                if t < SWAP_CLUSTER_MAX && t < count {
                    d.insert(id, t);
                    continue;
                }
                t.min(count)
            };
            sc.nr_to_scan = total as usize;
            let _r = self.zswap.shrinker_scan(&mut sc);
            if crate::platform::trace_enabled() {
                eprintln!(
                    "shrink_slab: memcg {id} scan {} -> {_r:?}, examined {}",
                    sc.nr_to_scan, sc.nr_scanned
                );
            }
        }
        self.shrink_pool(nr_scanned, lru_pages, gfp);
    }

    /// `do_shrink_slab` for the pool's compaction shrinker (zsmalloc's
    /// `zs_shrinker_count` / `zs_shrinker_scan`, forwarded by zswap): not
    /// memcg aware, so one call per reclaim pass, with the same share of
    /// what it offers as the LRU shrinker gets and the same deferral of
    /// small deltas. Linux runs non-memcg-aware shrinkers in global reclaim;
    /// the simulator runs it in cgroup reclaim too (the pool's pages are
    /// every cgroup's), and says so in its README.
    fn shrink_pool(&self, nr_scanned: u64, lru_pages: u64, gfp: Gfp) {
        let mut sc = ShrinkControl::new(None, 0);
        sc.gfp = gfp;
        let count = self.zswap.pool_shrinker_count(&sc);
        if count == 0 {
            return;
        }
        let delta = (2 * nr_scanned as u128 * count as u128 / (lru_pages as u128 + 1)) as u64;
        let total = {
            let mut d = lock(&self.nr_deferred);
            let t = d.remove(&POOL_SHRINKER_ID).unwrap_or(0) + delta.max(1);
            if t < SWAP_CLUSTER_MAX && t < count {
                d.insert(POOL_SHRINKER_ID, t);
                return;
            }
            t.min(count)
        };
        sc.nr_to_scan = total as usize;
        let _r = self.zswap.pool_shrinker_scan(&mut sc);
        if crate::platform::trace_enabled() {
            eprintln!("shrink_slab: pool compaction count {count} scan {total} -> {_r:?}");
        }
    }

    // -----------------------------------------------------------------
    // Safe points, deferred work, hooks
    // -----------------------------------------------------------------

    /// Between two page operations of the program, with nothing locked:
    /// run queued work and settle swap-in charges of folios freed without
    /// notice (see `swapin_charges`).
    pub fn safe_point(&self) {
        if in_reclaim() {
            return;
        }
        if self.shrink_work_pending.swap(false, Ordering::AcqRel) {
            self.run_shrink_worker();
        }
        self.safe_point_charges();
    }

    /// Runs zswap's global shrink worker now.
    pub fn run_shrink_worker(&self) {
        if in_reclaim() {
            return;
        }
        // A kworker: not in reclaim, its writeback charges may reclaim.
        self.counters
            .shrink_worker_runs
            .fetch_add(1, Ordering::Relaxed);
        self.zswap.shrink_worker();
        self.safe_point_charges();
    }

    /// Uncharges swap-in charges whose folio was freed without notice: a
    /// folio `read_swap_cache_async` charged, then failed to insert into the
    /// swap cache and freed. Outside reclaim, between page operations, no
    /// charged folio is in flight, so whatever is recorded is such a charge.
    fn safe_point_charges(&self) {
        let pending: Vec<_> = std::mem::take(&mut *lock(&self.swapin_charges));
        if crate::platform::trace_enabled() && !pending.is_empty() {
            eprintln!("swap: settled {} unclaimed swap-in charges", pending.len());
        }
        for (_, m) in pending {
            self.memcgs.uncharge(&m, 1);
        }
    }

    /// Called by `charge_swapin` once a swap-in folio is charged.
    pub(crate) fn note_swapin_charge(&self, folio: &Folio, memcg: MemcgRef) {
        lock(&self.swapin_charges).push((folio as *const Folio as usize, memcg));
    }

    /// Uncharges the swap-in charge of `folio`, freed (or handed back by
    /// zswap writeback) without being mapped: the last charge recorded for
    /// its address. Nothing if none is recorded.
    pub(crate) fn uncharge_swapin(&self, folio: &Folio) {
        let addr = folio as *const Folio as usize;
        let m = {
            let mut v = lock(&self.swapin_charges);
            v.iter()
                .rposition(|(a, _)| *a == addr)
                .map(|pos| v.remove(pos).1)
        };
        if let Some(m) = m {
            self.memcgs.uncharge(&m, 1);
        }
    }

    /// The fault path takes over the charge of the folio it maps: the last
    /// charge recorded for this folio's address (an earlier one at the same
    /// address would belong to a folio freed without notice, settled at the
    /// next safe point).
    fn claim_swapin_charge(&self, folio: &FolioRef) -> MemcgRef {
        self.take_swapin_charge(folio).unwrap_or_else(|| {
            self.memcgs
                .get(folio.memcg_id())
                .unwrap_or_else(|| self.memcgs.root())
        })
    }

    /// Removes and returns the recorded swap-in charge of `folio`, if any.
    fn take_swapin_charge(&self, folio: &FolioRef) -> Option<MemcgRef> {
        let addr = KArc::as_ptr(folio) as usize;
        let mut v = lock(&self.swapin_charges);
        let pos = v.iter().rposition(|(a, _)| *a == addr)?;
        Some(v.remove(pos).1)
    }

    /// `swap_entry_free`: the slot is free; zswap drops its copy, the device
    /// forgets the page.
    pub(crate) fn slot_freed(&self, entry: SwpEntry) {
        self.zswap.invalidate(entry);
        self.backend.discard(entry);
    }

    /// Records a detected deadlock (the first one wins).
    pub(crate) fn report_deadlock(&self, entry: SwpEntry, recursive: bool) {
        let mut d = lock(&self.deadlock);
        if d.is_none() {
            *d = Some(DeadlockReport { entry, recursive });
        }
    }

    /// The deadlock detected, if any.
    pub fn deadlock(&self) -> Option<DeadlockReport> {
        lock(&self.deadlock).clone()
    }

    /// Is zswap enabled?
    pub fn zswap_enabled(&self) -> bool {
        self.zswap.params().enabled
    }

    /// Resident pages charged to each memcg id.
    pub fn anon_pages(&self) -> HashMap<u32, u64> {
        lock(&self.mm).anon.clone()
    }

    /// Pages resident (mapped by programs).
    pub fn resident_pages(&self) -> u64 {
        lock(&self.mm).anon.values().sum()
    }

    /// Number of pages in a region.
    pub fn region_pages(&self, name: &str) -> Option<u64> {
        let mm = lock(&self.mm);
        let id = mm.regions.get(name)?;
        mm.by_id.get(id).map(|r| r.pages.len() as u64)
    }

    /// Unmaps everything (end of run), so every page goes back.
    pub fn teardown(&self) {
        let names: Vec<String> = lock(&self.mm).regions.keys().cloned().collect();
        for n in names {
            let _ = self.free_region(&n);
        }
    }
}
