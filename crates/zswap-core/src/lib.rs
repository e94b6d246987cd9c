//! # zswap-core: a compressed cache for swap pages
//!
//! Linux's `mm/zswap.c` (v6.8 to v6.18 behaviour) as a `#![no_std]` crate,
//! generic over a [`ZswapPlatform`]. When reclaim swaps a page out, the
//! kernel calls [`Zswap::store`]: the page is compressed into a RAM pool
//! instead of being written to the swap device. A later fault calls
//! [`Zswap::load`], which decompresses it. When the pool is full, a cgroup is
//! over `memory.zswap.max`, or memory is tight, the oldest entries are
//! decompressed and written to the real device ([`Zswap::shrink_memcg`],
//! [`Zswap::shrinker_scan`], [`Zswap::shrink_worker`]).
//!
//! ## LRU order: per-CPU sub-lists
//!
//! As Linux, zswap keeps one LRU list per (memory cgroup, NUMA node), but
//! each is split into per-CPU sub-lists (`min(nr_cpus, 4)` of them, fixed
//! when zswap is made): an entry goes on the sub-list of the CPU that
//! stored it and is deleted from that sub-list by whichever CPU loads or
//! invalidates it, so loads on different CPUs do not write one shared list
//! head and lock. Writeback (the shrinkers, the global worker,
//! [`Zswap::shrink_memcg`]) therefore writes back oldest first *within a
//! CPU's sub-list* and takes the sub-lists' heads *in turn* (round-robin),
//! where Linux goes strictly oldest first across the whole (memcg, node)
//! list; second chance and reparenting (a dead cgroup's entries first) act
//! per sub-list. With one CPU the order is exactly Linux's. Why: with one
//! list, the two-thread load bench's scaling (2T/1T, lz4) had a median of
//! 1.81-1.84 against the decoder alone's 1.85; with per-CPU sub-lists
//! 1.92-1.94 (the `lru` module's docs give the ranges), for 3 instructions
//! more per load on one CPU.
//!
//! ## Entry lifecycle
//!
//! ```text
//!  store(folio) ----> [tree] ----> [tree + LRU tail] --+--> load: erased, freed
//!   alloc entry,      published     referenced = true  +--> invalidate: erased, freed
//!   compress, pool    (old entry at                    +--> writeback: re-verified,
//!   object, charge     the slot freed)                 |    erased, freed, written
//!                                                      +--> LRU walk: second chance
//!                                                           (referenced cleared)
//! ```
//!
//! Everything an entry needs (entry memory from the entry cache,
//! compression, pool object, LRU lists) is allocated *before* the tree lock
//! is taken; the entry is charged and counted, then published in the tree
//! and put on the LRU tail under the same tree lock (one tree walk), and an
//! older entry at the slot is freed. Any failed store invalidates whatever
//! the slot held, so writeback can never write stale data over newer data on
//! the device. Freeing goes LRU delete, pool free, uncharge, then the cgroup
//! reference is dropped (the LRU delete needs the entry's cgroup key).
//!
//! A large folio is stored as one entry per page, all or nothing: if any
//! page fails, every offset of the folio is invalidated. Large folios are
//! never loaded from zswap (`EIO` if zswap holds any of their slots, else
//! `ENOENT`).
//!
//! Zero-filled pages never reach zswap: as in Linux 6.12+, the swap core
//! records them in its zeromap on swap-out (`swapcache`'s
//! `zeromap_folio_store`) and skips the store. Every page zswap sees is
//! compressed, a page of one repeated non-zero value like any other: it is
//! on the LRU and can be written back (`same_filled_pages` went, as in
//! Linux). Pages that do not shrink are stored raw (`length == PAGE_SIZE`) unless
//! their cgroup has writeback disabled (Linux 6.18); then they are rejected.
//!
//! ## Ownership rule
//!
//! Entries are owned by the tree; there is no per-entry reference count.
//! Store, load and invalidate of a slot are serialised by the caller's folio
//! lock (or, for invalidate, by the slot being free: no folio can be in the
//! swap cache for it). Writeback gets its exclusion differently: it owns a
//! *new* swap-cache folio for the slot (`read_swap_cache_async` with
//! `skip_if_exists`), and only then re-verifies, under the tree lock, that
//! the tree's entry for the slot still has the pool id and pool handle of
//! the entry it picked from the LRU (they are the entry's identity: they
//! name one live object, the handle carries a generation, and unlike a heap
//! address they are the same in every replay of a schedule, so loom can
//! explore them). (If the entry was
//! freed and a new entry for the same slot got the same handle, the tree's
//! entry is the slot's current data and writing it back is still right: the
//! swap-cache folio excludes every other user of the slot.)
//! Whoever erases an entry from the tree owns it; load and writeback
//! erase before they decompress and put the entry back on a decompression
//! failure, so even a caller that breaks the folio-lock protocol cannot make
//! two threads free the same entry.
//!
//! ## Lock order (the only one in this crate)
//!
//! ```text
//! folio lock (PG_locked, the caller's)
//!   -> tree table (big-reader lock: a reader takes its CPU's lock, a
//!      writer, only swapon/swapoff, every CPU's in CPU order)
//!     -> tree lock (one per swap cluster of a tree's slots; never two
//!        held together)
//!       -> LRU map lock (big-reader lock, as the tree table's) -> LRU list
//!          lock (one per per-CPU sub-list of each cgroup and node; never
//!          two of one cgroup held together; an add to or a delete from
//!          root's lists, whose record the LRU keeps for good, takes it
//!          with no map lock)
//!       -> pool table -> pool class lock             (the debug_corrupt, debug_mutate_object test hooks)
//!   -> pool table per-CPU lock (big-reader lock, takes nothing: store
//!      holds its CPU's for the pool-page sum and the current pool's
//!      reference)
//!   -> pool table (RwLock: other readers; a writer, i.e. a free that gives
//!      a reference back to a pool no longer current, a reaper of a dead
//!      pool, a compressor change, takes it for writing and then every
//!      per-CPU lock of the table, in CPU order)
//!   -> folio page lock (swapcache's, held while a page is read or written)
//!     -> compression lock (per CPU) -> pool class lock (zpool's)     (store)
//!     -> pool class lock (find + pin; released)                    (load, writeback)
//!        then decompression lock (per CPU, leaf; zstd only),
//!        no pool lock held
//!        then pool class lock (unpin, and for load the free; released)
//! pool table (read) -> pool class lock, one zspage per hold   (pool compaction shrinker)
//! LRU map lock (read; no tree, list or pool lock) -> the memcg crate's
//!   locks (an entry free uncharges through its LRU record's cgroup; the
//!   memcg crate calls no zswap code under its locks)
//! entry cache lock (per CPU and node, leaf: entry alloc at the start of a store,
//!   entry free after the tree, LRU and pool locks were dropped)
//! ```
//!
//! Load, writeback and free find the pool of an entry they own with no lock
//! (the entry's pool reference keeps the pool in the table); a free gives
//! the reference back on its CPU's count of the current pool (Linux's
//! `percpu_ref`), with no lock.
//!
//! The compressor has separate per-CPU locks for compression and
//! decompression. Store holds the compression lock while it allocates and
//! writes the pool object from the compression buffer: compression lock ->
//! pool class lock (each pool has one class shard per CPU, up to
//! `zpool::MAX_SHARDS`, and a store allocates in its CPU's shard; a load
//! takes the lock of the shard its handle names). Load and writeback decompress straight from the pool:
//! zpool's `read_with` pins the object under the class lock, drops the lock,
//! runs its closure (which takes the decompression lock), then takes the
//! class lock again to unpin; load uses `read_and_free`, whose unpinning
//! hold also frees the object (so the entry free that follows skips the
//! pool), two class-lock holds per load in all. The class lock and the decompression lock are
//! therefore never held together, loads of one size class decompress in
//! parallel, and the decompression lock is a leaf (lz4 takes none at all).
//! Counters are atomics and nest anywhere.
//!
//! A CPU's contexts are found with no lock: [`Zswap::cpu_up`] publishes
//! them once (an atomic pointer, null until then) and they stay until the
//! pool goes.
//!
//! The entry cache's per-(CPU, node) slab lock (`cache`) is a leaf: nothing
//! is taken under it and no page is allocated or freed under it. Store takes
//! it before any other zswap lock (after a brief, unnested look at the
//! page's node under the folio page lock); freeing an entry takes it last.
//!
//! All are spinlocks. None is held across an allocation that may block,
//! across I/O (backend writes), or across a call that may re-enter zswap
//! (`read_swap_cache_async` and its charge hook, `delete_from_swap_cache`
//! and its `slot_freed` hook, cgroup reclaim). The only nesting of tree and
//! LRU locks is store's final LRU add; the LRU walker never takes a tree lock.
//!
//! Each lock above is created with its class from
//! [`kbase::sync::lock_class`], whose ranks follow this order (a total order
//! consistent with it: tree table 10, tree 20, LRU map 30, LRU list 40,
//! folio page 50, pool table 60, pool table per-CPU 65, compression 70, pool class 80,
//! decompression 90, entry cache 100). A build with kbase's `lockdep` feature (every test of
//! the workspace, debug simulator builds, loom models) checks each
//! acquisition against it and panics with both lock names on an inversion.
//! A new lock that nests with these gets a class there, and this diagram and
//! the ranks change together.
//!
//! ## Errors
//!
//! `ENOENT`: zswap holds no copy (load), is disabled (store), or a cgroup has
//! nothing to write back (`shrink_memcg`). `ENOSPC`: a limit refused the
//! store (`memory.zswap.max`, the global pool limit) or the object does not
//! fit. `ENOMEM`: an allocation failed, writeback found its entry
//! invalidated, or writeback found the slot busy with no folio yet (Linux's
//! NULL folio: the LRU walk goes on). `EIO`: an object did not decompress
//! to exactly one page. `EEXIST`: writeback found a folio for the slot
//! already in the swap cache (the dynamic shrinker stops there). `EAGAIN`:
//! `shrink_memcg` examined entries but wrote none back. `EBUSY`: swapoff
//! with entries left, swapon twice, a compressor change already running.
//! `EINVAL`: bad parameters or a folio not in the swap cache. Bad input never
//! panics and never loses stored data.
//!
//! ## Counters
//!
//! [`ZswapStats`] documents each counter. Every store failure bumps exactly
//! one `reject_*` counter (Linux's, plus `reject_disabled`,
//! `reject_memcg_limit` and `reject_pool_limit` for the early rejections
//! Linux does not count).
//!
//! ## Module map (after `zswap.c`'s banner sections)
//!
//! - `stats`: statistics ([`ZswapStats`]).
//! - `params`: tunables ([`ZswapParams`], [`Zswap::set_param`]).
//! - `pool`: pools (compressor + zpool, ids 1..=127, refcounted).
//! - `lru`: the memcg- and NUMA-aware `list_lru`, in per-CPU sub-lists.
//! - `entry`: `struct zswap_entry` and its ownership handles.
//! - `cache`: `zswap_entry_cache`, per-CPU slabs of entries carved from
//!   pages of the platform's page allocator.
//! - `tree`: the per-64 MiB entry trees, locked per swap cluster.
//! - [`compress`]: per-CPU compressors (lz4, zstd).
//! - `writeback`: writing entries back to the swap device.
//! - `shrink`: `shrink_memcg`, the dynamic shrinker and the global worker.
//! - this file: the main API (store, load, invalidate, swapon, swapoff).
//! - `platform`: [`ZswapPlatform`], what the kernel provides.
#![no_std]
#![cfg_attr(not(loom), deny(clippy::undocumented_unsafe_blocks))]

extern crate alloc;

mod brlock;
mod cache;
pub mod compress;
mod entry;
mod lru;
mod params;
mod platform;
mod pool;
mod shrink;
mod stats;
mod tree;
mod writeback;

use alloc::vec::Vec;

use kbase::sync::{AtomicBool, AtomicU32, AtomicUsize, Ordering, lock_class};
use kbase::{Error, Gfp, PAGE_SIZE, Result};
use memcg::{MemcgEvent, MemcgRef, ObjCgroupRef, ShrinkCursor};
use swapcache::{Folio, MAX_SWAPFILES, SwpEntry};

pub use compress::{Compressor, CompressorKind};
pub use params::{PARAM_NAMES, ZswapParams, parse_bool, parse_uint};
pub use platform::{ZswapEvent, ZswapPlatform};
pub use pool::MAX_POOLS;
pub use shrink::{MAX_RECLAIM_RETRIES, SHRINK_BATCH, ShrinkControl, ShrinkResult};
pub use stats::ZswapStats;
pub use tree::{LEAF_SLOTS, TREE_PAGES};

use brlock::BrLock;
use cache::EntryCache;
use entry::{EntryPtr, OwnedEntry, ZswapEntry};
use lru::Lru;
use pool::Pools;
use stats::{Counters, Hot, PerCpuCounters};
use tree::{Leaf, TreeRef, ZswapTree};

/// Bytes of zswap metadata per stored page, besides the pool's own
/// per-object overhead: the entry (24, a slot of the entry cache: 169 to a
/// page, 24.2 bytes with the slab header) plus its tree slot (a 4-byte
/// entry id of a 516-byte leaf of 128 slots, when leaves are full).
pub const METADATA_BYTES_PER_PAGE: usize =
    core::mem::size_of::<ZswapEntry>() + core::mem::size_of::<Option<cache::EntryId>>();

/// The size of one tree leaf ([`LEAF_SLOTS`] entry ids and a count: 516
/// bytes), as allocated.
pub const LEAF_SIZE: usize = core::mem::size_of::<Leaf>();

/// The size of one entry (24 bytes on 64-bit targets).
pub const ENTRY_SIZE: usize = core::mem::size_of::<ZswapEntry>();

/// All metadata per compressed page: [`METADATA_BYTES_PER_PAGE`] plus the
/// pool's per-object metadata (`zpool::METADATA_BYTES_PER_OBJECT`: handle
/// table entry 8 and reverse-map entry 4 bytes: the price of byte-granular
/// packing, which saves about 2 % of the payload), 40 bytes on 64-bit
/// targets (1.0 % of a 4 KiB page). Not counted: the pool's per-zspage descriptors (amortised over the
/// zspage's objects), partially filled tree leaves, and the 2 KiB top array
/// of lock groups per 64 MiB of swap (32 KiB per GiB, allocated at swapon).
pub const METADATA_BYTES_PER_STORED_PAGE: usize =
    METADATA_BYTES_PER_PAGE + zpool::METADATA_BYTES_PER_OBJECT;

/// `n * pct / 100` without overflow (saturating at `u64::MAX`).
fn percent_of(n: u64, pct: u32) -> u64 {
    // Run on every store: 64-bit arithmetic whenever the product fits (a
    // 128-bit division is a library call).
    if let Some(p) = n.checked_mul(u64::from(pct)) {
        return p / 100;
    }
    let v = u128::from(n) * u128::from(pct) / 100;
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// Cache lines of a page [`prefetch_page_head`] asks for: enough for the
/// hardware prefetcher to take over the page's sequential read from there,
/// and fewer than a core has line-fill buffers (10-12 on Intel's
/// Skylake to Ice Lake cores), so that no prefetch waits for a free buffer:
/// a prefetch that finds them all taken stalls the core until a line
/// arrives. Measured on an Ice Lake-SP VM (benches/zswap.rs, `--quick`,
/// builds alternated, 6 runs each): 16 lines, store / C lz4 1.039-1.077 and
/// load / C lz4 1.189-1.242, the prefetch instructions taking two thirds
/// of store's and load's own samples under perf; 8 lines, 1.019-1.048 and
/// 1.140-1.193; 6 lines no better than 8 (1.001-1.046, 1.135-1.196). On
/// the AMD EPYC VM where load's prefetch was first measured (16 lines,
/// see [`Zswap::load`]) 8 lines have not been measured.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const PREFETCH_LINES: usize = 8;

/// Starts bringing the first [`PREFETCH_LINES`] cache lines of `page` into the cache
/// (`prefetcht0` on x86-64; nothing elsewhere and under Miri). A
/// hint only: it reads nothing the program sees and never faults.
///
/// Store compresses a page that reclaim picked because nobody touched it for
/// a while, so its first lines usually come from memory; asked for at the
/// start of the store, they arrive while the limit check, the pool
/// reference and the entry allocation run instead of stalling the
/// encoder's first reads.
///
/// Load asks for the first lines of the page it decompresses into, for the
/// decoder's first writes (see [`Zswap::load`]).
#[inline(always)]
fn prefetch_page_head(page: &[u8; PAGE_SIZE]) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    for k in 0..PREFETCH_LINES {
        let p = page.as_ptr().wrapping_add(k * 64);
        // SAFETY: `prefetcht0` only hints the cache: it never faults, writes
        // nothing and changes no register or flag; `p` is inside `page`.
        unsafe {
            core::arch::asm!(
                "prefetcht0 [{p}]",
                p = in(reg) p,
                options(nostack, preserves_flags, readonly)
            )
        };
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = page;
}

/// Whether an entry's pool object is still there when the entry is read or
/// freed (see [`Zswap::decompress`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Object {
    /// It is: freeing the entry frees it.
    Live,
    /// A load freed it as it read it.
    Freed,
}

/// The trees of one swap type.
struct SwapTrees {
    trees: Vec<ZswapTree>,
}

/// The tree table of every swap type (Linux: `zswap_trees[]`).
type TreeSlots = [Option<SwapTrees>; MAX_SWAPFILES as usize];

/// The tree table behind a big-reader lock: a reader (every store, load,
/// invalidate and writeback) holds its CPU's lock; a writer (swapon,
/// swapoff) holds every CPU's lock (class `ZSWAP_TREES`).
type TreeTable = BrLock<TreeSlots>;

/// zswap: the compressed swap cache. See the crate documentation.
pub struct Zswap<P: ZswapPlatform> {
    platform: P,
    trees: TreeTable,
    /// The number of trees of each swap type (0: none), written with the
    /// table under its write lock: store's "does the slot have a tree"
    /// check reads it with no lock.
    nr_trees: [AtomicUsize; MAX_SWAPFILES as usize],
    lru: Lru,
    /// Set once the LRU record of entries charged to no cgroup (the root
    /// cgroup's, or id 0 without cgroups) holds a pin for zswap's
    /// lifetime: that record is never reparented (root has no parent), so
    /// stores charged to no cgroup take no pin of their own.
    lru_root_pinned: AtomicBool,
    pools: Pools,
    stats: Counters,
    /// `zswap_entry_cache`: the slabs every entry lives in.
    entries: EntryCache,
    /// The per-CPU counters of the store/load fast path.
    hot: PerCpuCounters,
    enabled: AtomicBool,
    max_pool_percent: AtomicU32,
    accept_thr_percent: AtomicU32,
    shrinker_enabled: AtomicBool,
    /// `zswap_pool_reached_full`: the hysteresis flag.
    reached_full: AtomicBool,
    /// The global worker's round-robin position (`zswap_next_shrink`).
    cursor: ShrinkCursor,
    /// Test-only parameter ([`Zswap::test_only_writeback_waits_on_busy_slots`]):
    /// writeback waits on busy slots instead of skipping them.
    wb_wait_on_exists: AtomicBool,
}

impl<P: ZswapPlatform> Zswap<P> {
    /// Sets zswap up with `params`: creates the first pool (id 1).
    ///
    /// `ENOENT` if the compressor is not built in, `ENOMEM`.
    pub fn new(platform: P, params: ZswapParams, gfp: Gfp) -> Result<Zswap<P>> {
        let pools = Pools::new(
            params.compressor,
            platform.page_allocator(),
            platform.cpu(),
            gfp,
        )?;
        let lru = Lru::new(platform.nr_nodes(), platform.cpu().nr_cpus())?;
        let entries = EntryCache::new(
            platform.page_allocator(),
            platform.cpu().nr_cpus(),
            lru.nr_nodes(),
        )?;
        Ok(Zswap {
            trees: BrLock::new(
                platform.cpu().nr_cpus(),
                &lock_class::ZSWAP_TREES,
                core::array::from_fn(|_| None),
            )?,
            nr_trees: core::array::from_fn(|_| AtomicUsize::new(0)),
            lru,
            lru_root_pinned: AtomicBool::new(false),
            pools,
            stats: Counters::default(),
            entries,
            hot: PerCpuCounters::new(platform.cpu().nr_cpus())?,
            enabled: AtomicBool::new(params.enabled),
            max_pool_percent: AtomicU32::new(params.max_pool_percent),
            accept_thr_percent: AtomicU32::new(params.accept_threshold_percent),
            shrinker_enabled: AtomicBool::new(params.shrinker_enabled),
            reached_full: AtomicBool::new(false),
            cursor: ShrinkCursor::new(),
            wb_wait_on_exists: AtomicBool::new(false),
            platform,
        })
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    // ------------------------------------------------------------------
    // swapon / swapoff
    // ------------------------------------------------------------------

    /// `zswap_swapon`: creates the trees of swap type `swp_type` (one per
    /// [`TREE_PAGES`] slots). `EINVAL` for a bad type, 0 pages or more
    /// than 2^32 (an entry records a 32-bit offset: 16 TiB of swap per
    /// device), `EBUSY` if the type already has trees, `ENOMEM`.
    pub fn swapon(&self, swp_type: u32, nr_pages: u64) -> Result<()> {
        if swp_type >= MAX_SWAPFILES || nr_pages == 0 || nr_pages > entry::MAX_ENTRY_OFFSET + 1 {
            return Err(Error::EINVAL);
        }
        let nr = nr_pages.div_ceil(TREE_PAGES);
        let nr = usize::try_from(nr).map_err(|_| Error::EINVAL)?;
        let mut trees = Vec::new();
        trees.try_reserve_exact(nr)?;
        for _ in 0..nr {
            trees.push(ZswapTree::try_new(Gfp::KERNEL)?);
        }
        let mut trees = Some(SwapTrees { trees });
        let r = self.trees.write(|table| {
            let slot = table.get_mut(swp_type as usize).ok_or(Error::EINVAL)?;
            if slot.is_some() {
                return Err(Error::EBUSY);
            }
            if let Some(n) = self.nr_trees.get(swp_type as usize) {
                n.store(
                    trees.as_ref().map_or(0, |t| t.trees.len()),
                    Ordering::Release,
                );
            }
            *slot = trees.take();
            Ok(())
        });
        // A refused set of trees is freed here, with no lock held.
        drop(trees);
        r
    }

    /// `zswap_swapoff`: frees the trees of `swp_type`. `EBUSY` (nothing
    /// changed) while any entry remains: swapoff must first swap everything
    /// in, which invalidates every entry. `EINVAL` for a type without trees.
    pub fn swapoff(&self, swp_type: u32) -> Result<()> {
        let removed = self.trees.write(|table| {
            let slot = table.get_mut(swp_type as usize).ok_or(Error::EINVAL)?;
            let Some(t) = slot.as_ref() else {
                return Err(Error::EINVAL);
            };
            if t.trees.iter().any(|t| t.len() != 0) {
                return Err(Error::EBUSY);
            }
            if let Some(n) = self.nr_trees.get(swp_type as usize) {
                n.store(0, Ordering::Relaxed);
            }
            Ok(slot.take())
        })?;
        drop(removed);
        Ok(())
    }

    /// Does `swp` have a tree (its type is swapped on and the offset within
    /// its trees)? Read with no lock: as racy against swapoff as a look
    /// under the table lock that is dropped before the tree is used.
    fn has_tree(&self, swp: SwpEntry) -> bool {
        let nr = self
            .nr_trees
            .get(swp.swp_type() as usize)
            .map_or(0, |n| n.load(Ordering::Acquire));
        usize::try_from(swp.offset() >> tree::TREE_SHIFT).is_ok_and(|idx| idx < nr)
    }

    /// Runs `f` on the tree of `swp` (`None`: no trees for its type, or an
    /// offset past them).
    fn with_tree<R>(&self, swp: SwpEntry, f: impl FnOnce(TreeRef<'_>) -> R) -> Option<R> {
        self.with_tree_on(self.platform.cpu().current_cpu(), swp, f)
    }

    /// [`Self::with_tree`] for a caller that knows its CPU (`cpu`: any CPU
    /// number is right, a stale one too; it picks the big-reader lock's
    /// CPU lock).
    fn with_tree_on<R>(
        &self,
        cpu: usize,
        swp: SwpEntry,
        f: impl FnOnce(TreeRef<'_>) -> R,
    ) -> Option<R> {
        self.trees.read(cpu, |table| {
            let t = table.get(swp.swp_type() as usize)?.as_ref()?;
            let idx = usize::try_from(swp.offset() >> tree::TREE_SHIFT).ok()?;
            Some(f(t.trees.get(idx)?.with_cache(&self.entries)))
        })
    }

    /// Publishes `entry` in its tree; returns the replaced entry. Leaves are
    /// allocated with no lock held. On failure the entry is handed back.
    ///
    /// With `lru_add` (the node of the entry's slab), the entry also goes on
    /// its LRU list's tail under the same tree lock, once it is published
    /// (order: tree -> LRU).
    fn tree_store(
        &self,
        cpu: usize,
        swp: SwpEntry,
        entry: EntryPtr,
        lru_add: Option<usize>,
    ) -> core::result::Result<Option<OwnedEntry>, (Error, EntryPtr)> {
        let mut spare: Option<alloc::boxed::Box<Leaf>> = None;
        let mut entry = entry;
        let mut publish = |e: &ZswapEntry, id: cache::EntryId| {
            if let Some(nid) = lru_add {
                self.lru.add(cpu, &self.entries, e, id, nid);
            }
        };
        for _ in 0..3 {
            let r = self.with_tree_on(cpu, swp, |t| {
                t.store(swp.offset(), entry, &mut spare, &mut publish)
            });
            match r {
                None => return Err((Error::EINVAL, entry)),
                Some(Ok(old)) => return Ok(old),
                Some(Err(e)) if e.error == Error::EAGAIN => {
                    entry = e.entry;
                    match Leaf::try_new(Gfp::KERNEL) {
                        Ok(l) => spare = Some(l),
                        Err(err) => return Err((err, entry)),
                    }
                }
                Some(Err(e)) => return Err((e.error, e.entry)),
            }
        }
        Err((Error::ENOMEM, entry))
    }

    /// Puts back an entry that load or writeback erased but could not
    /// decompress. If the slot was refilled meanwhile (only possible if a
    /// caller broke the folio-lock protocol) or no leaf can be allocated, the
    /// unreadable entry is freed instead.
    fn tree_reinsert(&self, owned: OwnedEntry) {
        let swp = owned.swpentry();
        match self.with_tree(swp, |t| t.load(swp.offset())) {
            Some(None) => {}
            _ => return self.entry_free(owned),
        }
        // Still on its LRU list (only entry_free unlinks): no LRU add.
        let cpu = self.platform.cpu().current_cpu();
        match self.tree_store(cpu, swp, owned.into_ptr(), None) {
            Ok(None) => {}
            Ok(Some(other)) => self.entry_free(other),
            Err((_, p)) => {
                // SAFETY: `p` was handed back by a failed store: it is in no
                // tree and we still own it.
                self.entry_free(unsafe { OwnedEntry::from_erased(p) })
            }
        }
    }

    /// Does zswap hold an entry for `swp`?
    pub fn is_present(&self, swp: SwpEntry) -> bool {
        self.with_tree(swp, |t| t.load(swp.offset()).is_some())
            .unwrap_or(false)
    }

    // ------------------------------------------------------------------
    // entry free, decompression
    // ------------------------------------------------------------------

    /// `zswap_entry_free`: LRU delete and uncharge, pool free, entry free.
    fn entry_free(&self, e: OwnedEntry) {
        self.entry_free_on(self.platform.cpu().current_cpu(), e);
    }

    /// [`Self::entry_free`] on CPU `cpu` (the caller's, perhaps stale: it
    /// only picks per-CPU slots and locks).
    fn entry_free_on(&self, cpu: usize, e: OwnedEntry) {
        self.hot.sub(cpu, Hot::StoredPages, 1);
        self.entry_release(cpu, e, Object::Live, |_| {});
    }

    /// [`Self::entry_free`], and `charged` runs on the cgroup a charged
    /// entry is uncharged through (see [`ZswapEntry`]), for the caller's
    /// event counts.
    fn entry_free_with(&self, e: OwnedEntry, charged: impl FnOnce(&MemcgRef)) {
        let cpu = self.platform.cpu().current_cpu();
        self.hot.sub(cpu, Hot::StoredPages, 1);
        self.entry_release(cpu, e, Object::Live, charged);
    }

    /// [`Self::entry_free_on`] but for the `stored_pages` count, which a
    /// successful load takes off with the `zswpin` it counts (see
    /// [`PerCpuCounters`]): one per-CPU atomic less per load. `object`:
    /// whether the entry's pool object is still there (a load frees it as
    /// it reads it: [`Object::Freed`]). `charged`: as for
    /// [`Self::entry_free_with`].
    fn entry_release(
        &self,
        cpu: usize,
        e: OwnedEntry,
        object: Object,
        charged: impl FnOnce(&MemcgRef),
    ) {
        // Uncharged through the entry's LRU record's cgroup while the entry
        // still keys the record (the last entry keyed by an offline
        // cgroup's record frees it), with no cgroup reference taken.
        let length = e.length();
        self.lru
            .del_with(cpu, &self.entries, &e, e.nid(&self.entries), |m| {
                m.uncharge_zswap(length);
                charged(m);
            });
        // SAFETY: we own `e`, an entry of pool `e.pool_idx()`; its reference
        // is given back here, as the entry goes.
        if let Some(pool) = unsafe { self.pools.entry_ref(e.pool_idx()) } {
            if object == Object::Live {
                let _ = pool.zpool.free(e.handle_in(&pool.zpool));
            }
            self.pools.put(pool, cpu);
        }
        if length == PAGE_SIZE {
            self.hot.sub(cpu, Hot::StoredIncompressiblePages, 1);
        }
        // SAFETY: the entry was unlinked from the LRU above; its slot came
        // from `self.entries`.
        unsafe { e.free_memory(&self.entries) };
    }

    /// `zswap_decompress`: the entry's page into `dst`. `EIO` (and
    /// `decompress_fail`) unless exactly one page came out. With
    /// [`Object::Freed`] the pool object is freed once it decompressed (in
    /// the class-lock hold that ends the read: zswap's load, which frees the
    /// entry next); on `EIO` it is kept.
    fn decompress(&self, e: &OwnedEntry, dst: &mut [u8; PAGE_SIZE], after: Object) -> Result<()> {
        self.decompress_on(self.platform.cpu().current_cpu(), e, dst, after)
    }

    /// [`Self::decompress`] with CPU `cpu`'s decompression context.
    fn decompress_on(
        &self,
        cpu: usize,
        e: &OwnedEntry,
        dst: &mut [u8; PAGE_SIZE],
        after: Object,
    ) -> Result<()> {
        let r = self.decompress_inner(cpu, e, dst, after);
        if r.is_err() {
            Counters::inc(&self.stats.decompress_fail);
        }
        r
    }

    fn decompress_inner(
        &self,
        cpu: usize,
        e: &OwnedEntry,
        dst: &mut [u8; PAGE_SIZE],
        after: Object,
    ) -> Result<()> {
        // SAFETY: the caller owns `e` (erased from its tree), an entry of
        // pool `e.pool_idx()`; the entry keeps its reference, and the value
        // is let go before this function returns.
        let pool = unsafe { self.pools.entry_ref(e.pool_idx()) }.ok_or(Error::EIO)?;
        let h = e.handle_in(&pool.zpool);
        let read = |a: &[u8], b: &[u8]| {
            if a.len() + b.len() != e.length() {
                return Err(Error::EIO);
            }
            if e.length() == PAGE_SIZE {
                let (d1, d2) = dst.split_at_mut(a.len());
                d1.copy_from_slice(a);
                d2.copy_from_slice(b);
                Ok(())
            } else {
                pool.compressor.decompress(cpu, a, b, dst)
            }
        };
        let r = match after {
            Object::Live => pool.zpool.read_with(h, read),
            Object::Freed => pool.zpool.read_and_free(h, read),
        };
        r.map_err(|_| Error::EIO)?.map_err(|_| Error::EIO)
    }

    // ------------------------------------------------------------------
    // limits
    // ------------------------------------------------------------------

    /// The pool limit in pages (`zswap_max_pages`).
    pub fn max_pool_pages(&self) -> u64 {
        percent_of(
            self.platform.totalram_pages(),
            self.max_pool_percent.load(Ordering::Relaxed),
        )
    }

    /// The accept threshold in pages (`zswap_accept_thr_pages`). Above the
    /// limit when `accept_threshold_percent` is over 100: no hysteresis.
    pub fn accept_thr_pages(&self) -> u64 {
        percent_of(
            self.max_pool_pages(),
            self.accept_thr_percent.load(Ordering::Relaxed),
        )
    }

    /// `zswap_check_limits` for a pool of `cur` pages and a limit of `max`
    /// ([`Zswap::max_pool_pages`]): true means "refuse". Counts
    /// `pool_limit_hit` whenever the pool is at or above the limit.
    fn check_limits(&self, cur: u64, max: u64) -> bool {
        if cur >= max {
            Counters::inc(&self.stats.pool_limit_hit);
            self.reached_full.store(true, Ordering::Relaxed);
        } else if self.reached_full.load(Ordering::Relaxed)
            && cur <= percent_of(max, self.accept_thr_percent.load(Ordering::Relaxed))
        {
            self.reached_full.store(false, Ordering::Relaxed);
        }
        self.reached_full.load(Ordering::Relaxed)
    }

    /// Pages used by all pools (`zswap_total_pages`).
    pub fn total_pages(&self) -> usize {
        self.pools.total_pages()
    }

    // ------------------------------------------------------------------
    // cgroups
    // ------------------------------------------------------------------

    /// The folio's cgroup (`None` without a memcg tree or for id 0).
    fn folio_memcg(&self, folio: &Folio) -> Option<MemcgRef> {
        self.platform.memcg_tree()?.get(folio.memcg_id())
    }

    /// The LRU memcg id for an entry charged to `objcg`.
    fn lru_memcg_of(&self, objcg: Option<&ObjCgroupRef>) -> (u32, Option<MemcgRef>) {
        match (objcg, self.platform.memcg_tree()) {
            (Some(o), _) => {
                let m = o.memcg();
                (m.id(), Some(m))
            }
            (None, Some(t)) => {
                let r = t.root();
                (r.id(), Some(r))
            }
            (None, None) => (0, None),
        }
    }

    /// Pins the LRU record the entries of `objcg` go on and returns its id.
    /// A cgroup that went offline since `objcg.memcg()` was read gets no new
    /// record (its reparenting may be over); its entries go to the nearest
    /// online ancestor, as its objcg's do after offline. Bounded: the parent
    /// chain ends at root, which is never offline.
    ///
    /// The second value says whether the caller drops the pin
    /// ([`Lru::unpin`]) when done: not for entries charged to no cgroup
    /// once their record holds its lifetime pin (`lru_root_pinned`), which
    /// the first such store leaves in place.
    fn lru_pin(&self, cpu: usize, objcg: Option<&ObjCgroupRef>) -> Result<(u32, bool)> {
        let (mut id, mut memcg) = self.lru_memcg_of(objcg);
        let root = objcg.is_none();
        if root && self.lru_root_pinned.load(Ordering::Acquire) {
            // The record exists and stays (the pin below is never dropped).
            return Ok((id, false));
        }
        loop {
            match self.lru.pin(cpu, id, memcg.as_ref(), Gfp::KERNEL) {
                Ok(()) => {
                    // The first store charged to no cgroup keeps its pin for
                    // good; a racing one drops its own as usual.
                    let keep = root
                        && self
                            .lru_root_pinned
                            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                            .is_ok();
                    if keep {
                        // Pinned for good and never reparented: the LRU's
                        // adds reach its lists with no map lookup.
                        self.lru.keep(cpu, id);
                    }
                    return Ok((id, !keep));
                }
                Err(Error::EAGAIN) => {
                    let parent = memcg.as_ref().and_then(|m| m.parent());
                    let Some(p) = parent else {
                        return Err(Error::EAGAIN);
                    };
                    id = p.id();
                    memcg = Some(p);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The LRU id lists of a cgroup are kept under (`None`: the root /
    /// no-memcg lists).
    fn lru_id(&self, memcg: Option<&MemcgRef>) -> u32 {
        match (memcg, self.platform.memcg_tree()) {
            (Some(m), _) => m.id(),
            (None, Some(t)) => t.root().id(),
            (None, None) => 0,
        }
    }

    /// `zswap_memcg_offline_cleanup` plus the zswap part of
    /// `memcg_reparent_list_lrus`: moves the cgroup's LRU entries to its
    /// parent and moves the global shrink cursor off it. Call right after
    /// `MemcgTree::offline` (or `remove`) returned. `ENOMEM` if the parent's
    /// lists cannot be allocated (the cgroup's entries then stay where they
    /// are and are still freed correctly).
    pub fn memcg_offline(&self, memcg: &MemcgRef) -> Result<()> {
        let Some(tree) = self.platform.memcg_tree() else {
            return Ok(());
        };
        self.cursor.offline_cleanup(tree, memcg);
        let parent = memcg.parent().unwrap_or_else(|| tree.root());
        self.lru
            .reparent(&self.entries, memcg.id(), &parent, Gfp::KERNEL)
    }

    /// CPU hotplug, CPU coming up (Linux's `zswap_cpu_comp_prepare`,
    /// `CPUHP_MM_ZSWP_POOL_PREPARE`): prepares `cpu`'s compression contexts
    /// in every live pool, with no lock held; a pool that already has them
    /// (the CPU was up before) is left alone, so up/down cycles are
    /// harmless. Call before the CPU runs tasks. `ENOMEM` (the CPU must not
    /// come up then; contexts already made stay).
    pub fn cpu_up(&self, cpu: usize) -> Result<()> {
        for pool in self.pools.live()? {
            pool.compressor.prepare(cpu, Gfp::KERNEL)?;
        }
        Ok(())
    }

    /// CPU hotplug, CPU gone (Linux's `zswap_cpu_comp_dead` until 6.14).
    /// Frees nothing: a task that took `cpu`'s context may still be
    /// compressing with it after migrating (the 2024-25 acomp_ctx races:
    /// use-after-free, then the `crypto_free_acomp` deadlock). As Linux
    /// since 6.15, contexts live until their pool is destroyed, and the
    /// next `cpu_up` of the CPU finds them ready.
    pub fn cpu_down(&self, cpu: usize) {
        let _ = cpu;
    }

    /// Per-CPU compression contexts prepared in the current pool
    /// (diagnostics, tests).
    pub fn nr_compression_contexts(&self) -> usize {
        let cpu = self.platform.cpu().current_cpu();
        let Some(p) = self.pools.current_get(cpu) else {
            return 0;
        };
        let n = p.compressor.nr_prepared();
        self.pools.put(p, cpu);
        n
    }

    /// `zswap_folio_swapin`: a page of `folio` was read from the swap device
    /// (not from zswap); the dynamic shrinker backs off by that much.
    pub fn folio_swapin(&self, folio: &Folio) {
        let memcg = self.folio_memcg(folio);
        let id = self.lru_id(memcg.as_ref());
        let nid = folio.with_page(0, |p| self.page_nid(p)).unwrap_or(0);
        self.lru.note_disk_swapin(id, nid);
    }

    /// The LRU node of `page` (`page_to_nid`, clamped to the LRU's nodes).
    fn page_nid(&self, page: &[u8; PAGE_SIZE]) -> usize {
        self.platform.page_to_nid(page).min(self.lru.nr_nodes() - 1)
    }

    // ------------------------------------------------------------------
    // store
    // ------------------------------------------------------------------

    /// `zswap_store`: stores every page of `folio`, all or nothing.
    ///
    /// The folio must be locked by the caller and in the swap cache, with its
    /// memcg id set; the lock stays with the caller. On `Ok` the pages are in
    /// zswap and `zswpout` counts them. On failure every offset of the folio
    /// is invalidated (so no stale entry survives), exactly one `reject_*`
    /// counter was bumped (none for `EINVAL`: folio not in the swap cache),
    /// and the caller writes the folio to the device (unless the cgroup has
    /// writeback disabled; then Linux keeps the page in memory).
    ///
    /// Errors: `EINVAL` the folio is not in the swap cache (no counter), or
    /// a page did not shrink in a cgroup with `memory.zswap.writeback = 0`,
    /// which cannot store it raw (`reject_compress_fail`; Linux 6.18);
    /// `ENOENT` zswap disabled or no trees for the swap type; `ENOSPC`
    /// cgroup `zswap.max` reached and `shrink_memcg` wrote nothing back, the
    /// global pool limit reached, or the page could not be stored compactly
    /// enough (`reject_compress_poor`); `ENOMEM` an allocation failed; `EIO`
    /// the compressor failed in a cgroup with writeback disabled (with
    /// writeback on, such a page is stored raw).
    pub fn store(&self, folio: &Folio) -> Result<()> {
        let swp = folio.swap().ok_or(Error::EINVAL)?;
        let nr = folio.nr_pages();
        let r = self.store_folio(folio, swp, nr);
        if r.is_err() {
            // check_old: no entry of this folio's slots may survive.
            self.invalidate_range(swp, nr);
            if self.reached_full.load(Ordering::Relaxed) {
                self.platform.queue_shrink_work();
            }
        }
        r
    }

    fn store_folio(&self, folio: &Folio, swp: SwpEntry, nr: usize) -> Result<()> {
        if !self.enabled.load(Ordering::Relaxed) || !self.has_tree(swp) {
            Counters::inc(&self.stats.reject_disabled);
            return Err(Error::ENOENT);
        }
        // The first page's head is on its way while the checks, the pool
        // reference, the LRU pin and the entry allocation run.
        let _ = folio.with_page(0, prefetch_page_head);
        let memcg = self.folio_memcg(folio);
        let objcg = match memcg.as_ref() {
            Some(m) => m.obj_cgroup().ok(),
            None => None,
        };
        if let Some(o) = objcg.as_ref()
            && !o.may_zswap()
        {
            // As Linux 6.8+: whatever the limit (0 included), write back
            // once (one entry per node) and go ahead if that made room; the
            // cgroup may overshoot its limit by what this store adds. With
            // an empty LRU nothing is written and the store is refused.
            if self.shrink_memcg(&o.memcg()).is_err() {
                Counters::inc(&self.stats.reject_memcg_limit);
                return Err(Error::ENOSPC);
            }
        }
        // The limit check's pool-page sum and the folio's reference on the
        // current pool (`zswap_pool_current_get`, right after the check as
        // in Linux) under one hold of the pool table's lock.
        let max = self.max_pool_pages();
        let cpu = self.platform.cpu().current_cpu();
        let (cur, pool) = self.pools.total_pages_and_current_get(cpu);
        if self.check_limits(cur as u64, max) {
            if let Some(p) = pool {
                self.pools.put(p, cpu);
            }
            Counters::inc(&self.stats.reject_pool_limit);
            return Err(Error::ENOSPC);
        }
        let Some(pool) = pool else {
            Counters::inc(&self.stats.reject_alloc_fail);
            return Err(Error::ENOMEM);
        };
        let (lru_memcg, unpin) = match self.lru_pin(cpu, objcg.as_ref()) {
            Ok(pinned) => pinned,
            Err(e) => {
                self.pools.put(pool, cpu);
                Counters::inc(&self.stats.reject_alloc_fail);
                return Err(e);
            }
        };
        let wb_enabled = memcg.as_ref().is_none_or(|m| m.zswap_writeback_enabled());
        // Each stored page's entry holds a pool reference: the last page's
        // is the folio's, the others take one more each.
        let mut folio_ref = Some(pool);
        let mut r = Ok(());
        for i in 0..nr {
            let page_swp = match swp.checked_add(i as u64) {
                Ok(s) => s,
                Err(e) => {
                    r = Err(e);
                    break;
                }
            };
            let entry_ref = if i + 1 == nr {
                folio_ref.take()
            } else {
                folio_ref.as_ref().map(|p| self.pools.get_more(p, cpu))
            };
            let Some(entry_ref) = entry_ref else {
                r = Err(Error::EINVAL);
                break;
            };
            if i + 1 < nr {
                // The next page's head comes in while this one compresses.
                let _ = folio.with_page(i + 1, prefetch_page_head);
            }
            r = self.store_page(
                cpu,
                folio,
                i,
                page_swp,
                objcg.as_ref(),
                lru_memcg,
                wb_enabled,
                entry_ref,
            );
            if r.is_err() {
                break;
            }
        }
        if let Some(p) = folio_ref {
            self.pools.put(p, cpu);
        }
        if unpin {
            self.lru.unpin(cpu, lru_memcg);
        }
        r?;
        self.hot.add(cpu, Hot::Zswpout, nr as u64);
        if let Some(o) = objcg.as_ref() {
            o.memcg().count_event(MemcgEvent::Zswpout, nr as u64);
        }
        Ok(())
    }

    /// `zswap_store_page`: one page, into `pool`, whose reference
    /// `pool_ref` the new entry keeps (given back here on failure, with no
    /// page lock held). Bumps exactly one reject counter on failure. `cpu`
    /// is the store's CPU (perhaps stale: it picks per-CPU slabs, contexts
    /// and locks, all right from any CPU).
    #[allow(clippy::too_many_arguments)]
    fn store_page(
        &self,
        cpu: usize,
        folio: &Folio,
        index: usize,
        swp: SwpEntry,
        objcg: Option<&ObjCgroupRef>,
        lru_memcg: u32,
        wb_enabled: bool,
        pool_ref: pool::PoolRef,
    ) -> Result<()> {
        // zswap_entry_cache_alloc(gfp, page_to_nid(page)): a slot of this
        // CPU's entry slabs of the page's node, whose LRU the entry joins.
        // With one node every page is node 0's: no look at the page (and
        // no hold of its lock) for it.
        let nid = if self.lru.nr_nodes() == 1 {
            0
        } else {
            folio
                .with_page(index, |page| self.page_nid(page))
                .unwrap_or(0)
        };
        let mut entry = match ZswapEntry::new(swp, lru_memcg) {
            Ok(e) => e,
            Err(e) => {
                // Past what an entry records (swapon refuses such devices).
                self.pools.put(pool_ref, cpu);
                Counters::inc(&self.stats.reject_alloc_fail);
                return Err(e);
            }
        };
        let slot = match self.entries.alloc(cpu, nid, Gfp::KERNEL) {
            Ok(s) => s,
            Err(e) => {
                self.pools.put(pool_ref, cpu);
                Counters::inc(&self.stats.reject_kmemcache_fail);
                return Err(e);
            }
        };
        // Compress into a pool object.
        let filled = folio.with_page(index, |page| {
            self.fill_entry(cpu, &mut entry, page, wb_enabled, &pool_ref)
        });
        match filled {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                // SAFETY: the slot is from our cache and was never written.
                unsafe { self.entries.free_slot(slot) };
                self.pools.put(pool_ref, cpu);
                return Err(e);
            }
            Err(e) => {
                // SAFETY: as above.
                unsafe { self.entries.free_slot(slot) };
                self.pools.put(pool_ref, cpu);
                Counters::inc(&self.stats.reject_compress_fail);
                return Err(e);
            }
        }
        // The entry keeps the pool reference (given back by `entry_free`).
        let _ = pool_ref;
        entry.set_charged(objcg.is_some());
        entry.set_referenced(true);
        // The sub-list of this CPU: loads and invalidates on any CPU delete
        // the entry from it.
        entry.set_lru_sublist(self.lru.sublist_of(cpu));
        let length = entry.length();
        // Charged and counted before it is published: from then on, the
        // path that frees it (entry_free) uncharges and uncounts it.
        if let Some(o) = objcg {
            o.charge_zswap(length);
        }
        self.hot.add(cpu, Hot::StoredPages, 1);
        if length == PAGE_SIZE {
            self.hot.add(cpu, Hot::StoredIncompressiblePages, 1);
        }
        let ptr = EntryPtr::new_in(slot, entry);
        // One tree walk: published and added to the LRU tail under the
        // same tree lock (order: tree -> LRU).
        match self.tree_store(cpu, swp, ptr, Some(nid)) {
            Ok(old) => {
                if let Some(old) = old {
                    self.entry_free_on(cpu, old);
                }
                Ok(())
            }
            Err((e, p)) => {
                Counters::inc(&self.stats.reject_alloc_fail);
                // SAFETY: handed back by a failed store: in no tree, never on
                // an LRU, ours.
                self.entry_free_on(cpu, unsafe { OwnedEntry::from_erased(p) });
                Err(e)
            }
        }
    }

    /// Fills `entry` for `page`: a compressed object, or a raw one, in
    /// `pool` (the caller holds a reference on it). Runs under the page's
    /// lock, so it never gives a pool reference back: the caller does, on
    /// failure, once the lock is dropped.
    fn fill_entry(
        &self,
        cpu: usize,
        entry: &mut ZswapEntry,
        page: &[u8; PAGE_SIZE],
        wb_enabled: bool,
        pool: &pool::ZswapPool,
    ) -> Result<()> {
        self.platform
            .trace(ZswapEvent::StoreCompressing(entry.swpentry()));
        let r = pool.compressor.compress(cpu, page, |res| {
            let (src, comp_err): (&[u8], Option<Error>) = match res {
                Ok(buf) if !buf.is_empty() && buf.len() < PAGE_SIZE => (buf, None),
                Ok(_) => (&page[..], None),
                Err(e) => (&page[..], Some(e)),
            };
            let raw = src.len() == PAGE_SIZE;
            if raw && !wb_enabled {
                // Could not be stored compactly and cannot be stored raw.
                if comp_err == Some(Error::ENOSPC) {
                    Counters::inc(&self.stats.reject_compress_poor);
                    return Err(Error::ENOSPC);
                }
                Counters::inc(&self.stats.reject_compress_fail);
                return Err(comp_err.unwrap_or(Error::EINVAL));
            }
            // zs_malloc + zs_obj_write, in one hold of the lock of this
            // CPU's class shard.
            match pool.zpool.malloc_write_on(cpu, src, Gfp::ZSWAP_POOL) {
                Ok(h) => Ok((h, src.len())),
                Err(Error::ENOSPC) => {
                    Counters::inc(&self.stats.reject_compress_poor);
                    Err(Error::ENOSPC)
                }
                Err(e) => {
                    Counters::inc(&self.stats.reject_alloc_fail);
                    Err(e)
                }
            }
        });
        let (h, len) = r?;
        if let Err(e) = entry.set_object(h, len, pool.id) {
            // Not a length an entry records (1..=PAGE_SIZE).
            let _ = pool.zpool.free(h);
            Counters::inc(&self.stats.reject_alloc_fail);
            return Err(e);
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // load, invalidate
    // ------------------------------------------------------------------

    /// `zswap_load`: reads the folio's page from zswap.
    ///
    /// The folio must be locked by the caller and in the swap cache; the lock
    /// stays with the caller in every case. `Ok`: the folio is uptodate and
    /// dirty (the swap slot no longer holds valid data) and the entry is gone
    /// (exclusive load); `zswpin` counted. `ENOENT`: zswap has no copy, read
    /// the device. `EIO`: the object did not decompress (`decompress_fail`
    /// counted, entry kept, folio not uptodate), or a large folio covers a
    /// slot zswap holds (large folios are never loaded from zswap).
    /// `EINVAL`: the folio is not in the swap cache.
    pub fn load(&self, folio: &Folio) -> Result<()> {
        let swp = folio.swap().ok_or(Error::EINVAL)?;
        let nr = folio.nr_pages();
        if nr > 1 {
            let any = (0..nr as u64).any(|i| swp.checked_add(i).is_ok_and(|s| self.is_present(s)));
            return Err(if any { Error::EIO } else { Error::ENOENT });
        }
        // One CPU number for the whole load: it only picks per-CPU locks,
        // slots and contexts, so a stale one after a migration is right too.
        let cpu = self.platform.cpu().current_cpu();
        // The folio's page is the decoder's destination and usually not in
        // the cache (a page just allocated for the swap-in): its first lines
        // come in while the tree erase and the object lookup run. Measured
        // on the corpus (benches/zswap.rs, the same build with and without
        // this line alternated): load 1,661-1,982 -> 1,513-1,551 ns/page,
        // load / C lz4 1.221-1.309 -> 1.135-1.140; in the load-only mode
        // load beyond the decoder alone 324-352 -> 232-239 ns/page (16
        // lines, AMD EPYC; more lines, 32 or 64, or `prefetchw` measured no
        // better there; on Ice Lake 8 beat 16: see `PREFETCH_LINES`). Only
        // where the hint exists (not under loom, whose models would only gain
        // the page lock's interleavings from it).
        #[cfg(all(target_arch = "x86_64", not(miri), not(loom)))]
        let _ = folio.with_page(0, prefetch_page_head);
        let owned = self
            .with_tree_on(cpu, swp, |t| t.erase(swp.offset()))
            .flatten()
            .ok_or(Error::ENOENT)?;
        self.platform.trace(ZswapEvent::LoadErased(swp));
        let r = folio
            .with_page_mut(0, |dst| self.decompress_on(cpu, &owned, dst, Object::Freed))
            .unwrap_or(Err(Error::EIO));
        if let Err(e) = r {
            self.tree_reinsert(owned);
            return Err(e);
        }
        // Uptodate and dirty in one atomic (the slot's copy is stale now).
        folio.set_uptodate_dirty();
        // Also the entry's free in `stored_pages` (see entry_release).
        self.hot.add(cpu, Hot::Zswpin, 1);
        self.entry_release(cpu, owned, Object::Freed, |m| {
            m.count_event(MemcgEvent::Zswpin, 1)
        });
        Ok(())
    }

    /// `zswap_invalidate`: the slot was freed; drops its entry, if any.
    pub fn invalidate(&self, swp: SwpEntry) {
        if let Some(Some(e)) = self.with_tree(swp, |t| t.erase(swp.offset())) {
            self.entry_free(e);
        }
    }

    /// Invalidates `nr` consecutive slots from `swp`.
    pub fn invalidate_range(&self, swp: SwpEntry, nr: usize) {
        for i in 0..nr as u64 {
            if let Ok(s) = swp.checked_add(i) {
                self.invalidate(s);
            }
        }
    }

    // ------------------------------------------------------------------
    // parameters, stats
    // ------------------------------------------------------------------

    /// Sets a runtime parameter (names in [`PARAM_NAMES`]). A bad value
    /// changes nothing and gets `EINVAL`; an unknown name `EINVAL`.
    /// `max_pool_percent` and `accept_threshold_percent` are plain unsigned
    /// ints ([`parse_uint`]; 150 is accepted, as in Linux). For
    /// `compressor`: `ENOENT` for an unknown algorithm or one not built in
    /// (Linux's `crypto_has_acomp` failure), `EBUSY` while another change
    /// runs or all pool ids are taken, `ENOMEM`.
    pub fn set_param(&self, name: &str, value: &str) -> Result<()> {
        match name.trim_ascii() {
            "enabled" => self.enabled.store(parse_bool(value)?, Ordering::Relaxed),
            "shrinker_enabled" => self
                .shrinker_enabled
                .store(parse_bool(value)?, Ordering::Relaxed),
            "max_pool_percent" => self
                .max_pool_percent
                .store(parse_uint(value)?, Ordering::Relaxed),
            "accept_threshold_percent" => self
                .accept_thr_percent
                .store(parse_uint(value)?, Ordering::Relaxed),
            "compressor" => {
                let kind = CompressorKind::from_name(value)?;
                self.pools.set_compressor(
                    kind,
                    self.platform.page_allocator(),
                    self.platform.cpu(),
                    Gfp::KERNEL,
                )?;
            }
            _ => return Err(Error::EINVAL),
        }
        Ok(())
    }

    /// The current parameters.
    pub fn params(&self) -> ZswapParams {
        ZswapParams {
            enabled: self.enabled.load(Ordering::Relaxed),
            compressor: self.pools.current_kind().unwrap_or_default(),
            max_pool_percent: self.max_pool_percent.load(Ordering::Relaxed),
            accept_threshold_percent: self.accept_thr_percent.load(Ordering::Relaxed),
            shrinker_enabled: self.shrinker_enabled.load(Ordering::Relaxed),
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> ZswapStats {
        let mut s = self.stats.snapshot();
        self.hot.fold_into(&mut s);
        s.pool_total_size = (self.total_pages() * PAGE_SIZE) as u64;
        s
    }

    /// Entries in zswap (`stored_pages`, summed over the CPUs).
    pub(crate) fn stored_pages(&self) -> u64 {
        let s = Counters::get(&self.stats.stored_pages);
        s.wrapping_add(self.hot.stored_pages())
    }

    /// Pages held by the entry cache (`zswap_entry_cache`'s slabs, from the
    /// platform's page allocator; not part of [`Zswap::total_pages`]).
    pub fn entry_cache_pages(&self) -> usize {
        self.entries.pages()
    }

    /// The heap metadata of the live pools by component (handle tables,
    /// reverse maps, zspage descriptors, page vectors, class arrays), as
    /// requested of the allocator, summed over the pools: what the pool
    /// keeps besides its pages (`zs_pool_stats` has no such figure; for
    /// benches and diagnostics). `ENOMEM`.
    pub fn pool_metadata(&self) -> Result<zpool::MetadataBytes> {
        self.pools.metadata()
    }

    /// Live pools (1 normally; more while entries of an old compressor remain).
    pub fn nr_pools(&self) -> usize {
        self.pools.nr_pools()
    }

    /// Entries on the LRU lists (compressed and raw entries; diagnostics).
    pub fn lru_entries(&self) -> usize {
        self.lru.total()
    }

    /// Entries on `memcg`'s own LRU lists (`None`: root / no-memcg lists).
    pub fn lru_count(&self, memcg: Option<&MemcgRef>) -> usize {
        self.lru.count_memcg(self.lru_id(memcg))
    }

    /// LRU records (live cgroup lists plus redirects of offline cgroups that
    /// still have entries; diagnostics).
    pub fn lru_records(&self) -> usize {
        self.lru.nr_records()
    }

    /// Corrupts the stored object of `swp` (fault injection for tests and
    /// the simulator): overwrites it with bytes that do not decompress.
    /// `ENOENT` if zswap has no compressed object for the slot, `EINVAL` for
    /// a raw entry (nothing to corrupt detectably).
    pub fn debug_corrupt(&self, swp: SwpEntry) -> Result<()> {
        self.with_tree(swp, |t| {
            t.with_entry(swp.offset(), |e| {
                if e.length() == PAGE_SIZE {
                    return Err(Error::EINVAL);
                }
                let pool = self.pools.get(e.pool_idx()).ok_or(Error::ENOENT)?;
                let junk = [0xffu8; PAGE_SIZE];
                let len = e.length().min(PAGE_SIZE);
                pool.zpool.write(e.handle_in(&pool.zpool), &junk[..len])
            })
            .unwrap_or(Err(Error::ENOENT))
        })
        .unwrap_or(Err(Error::ENOENT))
    }

    /// Changes the stored object of `swp` in place (fault injection for the
    /// decompression fuzz target): `f` gets the object's bytes, whatever it
    /// leaves there is written back. `ENOENT` if zswap holds no object for
    /// the slot.
    #[doc(hidden)]
    pub fn debug_mutate_object(&self, swp: SwpEntry, f: impl FnOnce(&mut [u8])) -> Result<()> {
        self.with_tree(swp, |t| {
            t.with_entry(swp.offset(), |e| {
                let pool = self.pools.get(e.pool_idx()).ok_or(Error::ENOENT)?;
                let h = e.handle_in(&pool.zpool);
                let mut buf = [0u8; PAGE_SIZE];
                let obj = buf
                    .get_mut(..e.length().min(PAGE_SIZE))
                    .ok_or(Error::EINVAL)?;
                pool.zpool.read(h, obj)?;
                f(obj);
                pool.zpool.write(h, obj)
            })
            .unwrap_or(Err(Error::ENOENT))
        })
        .unwrap_or(Err(Error::ENOENT))
    }

    /// A test-only parameter: makes writeback wait on a busy slot
    /// (`skip_if_exists = false`) instead of skipping it. It exists only so
    /// tests, loom models and the simulator's `--no-skip-if-exists` can show
    /// that the fault-plus-reclaim recursion really hangs without the skip;
    /// a kernel never calls it (with it on, a fault whose charge reclaims
    /// into writeback of its own slot waits forever).
    #[doc(hidden)]
    pub fn test_only_writeback_waits_on_busy_slots(&self, on: bool) {
        self.wb_wait_on_exists.store(on, Ordering::Relaxed);
    }
}

impl<P: ZswapPlatform> Drop for Zswap<P> {
    fn drop(&mut self) {
        // Free every remaining entry so pool pages and cgroup charges go back.
        self.trees.read(0, |table| {
            for t in table.iter().flatten() {
                for tree in t.trees.iter() {
                    while let Some(e) = tree.with_cache(&self.entries).erase_any() {
                        self.entry_free(e);
                    }
                }
            }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::percent_of;

    #[test]
    fn percent_of_is_exact_in_both_widths() {
        let wide =
            |n: u64, p: u32| u64::try_from(u128::from(n) * u128::from(p) / 100).unwrap_or(u64::MAX);
        for n in [
            0,
            1,
            99,
            100,
            1 << 24,
            u64::MAX / 150,
            u64::MAX / 100,
            u64::MAX,
        ] {
            for p in [0, 1, 20, 90, 100, 150, u32::MAX] {
                assert_eq!(percent_of(n, p), wide(n, p), "{n} * {p}%");
            }
        }
        assert_eq!(percent_of(u64::MAX, 150), u64::MAX, "saturates");
        assert_eq!(percent_of(1 << 24, 20), 3_355_443);
    }
}
