//! Pools: a compressor plus a zsmalloc-like pool, with ids 1..=127.
//!
//! Linux keeps `zswap_pools` (an xarray with ids 1..U8_MAX) and a current
//! pool; each entry records the `u8` id of the pool that holds its object.
//! Changing the `compressor` parameter makes a new pool current (or revives a
//! live pool of the same algorithm); entries of older pools still load from
//! their own pool, which is freed when its last entry goes.
//!
//! # Invariants
//!
//! - A pool's reference count is `refs` (1 while it is current, else 0;
//!   changed only under the table's write lock) plus the sum of its per-CPU
//!   counts `pcpu` (entry references, taken on one CPU and given back on
//!   any: each count wraps, their sum does not). Entry references are taken
//!   only on the current pool (under the table lock) or from a reference
//!   already held, so once a pool that is not current has a count of zero
//!   it is dead: it is removed from the table and dropped, never revived.
//! - `PoolTable::current` names a live slot once `Pools::new` succeeded.
//! - `PoolTable::live[..nr_live]` lists the ids of the occupied slots, each
//!   once, in no particular order: `total_pages` (run on every store) sums
//!   the few live pools instead of scanning all 256 slots.
//! - `Pools::by_id[id]` points at the pool in table slot `id` (null for an
//!   empty slot); it is written only under the table's write lock, together
//!   with the slot. A holder of a reference on pool `id` (an entry of it)
//!   reads it with no lock: the pool cannot leave the table before that
//!   reference is given back ([`Pools::entry_ref`]).
//!
//! # The hot path
//!
//! An entry's reference is a per-CPU count (Linux: a `percpu_ref`), not a
//! `KArc` clone: store takes it under the table's read lock (together with
//! the pool-page sum of the limit check, one lock hold per store); load and
//! free find the pool of an entry they own through `by_id` with no lock, and
//! free gives the reference back on its CPU's count, so no cache line of
//! the pool is written by two CPUs. Only a reference given back to a pool
//! that is no longer current takes the write lock (and frees the pool if it
//! was the last). A pool that stops being current while such a put is past
//! its "current?" check and before its decrement may reach zero unseen;
//! the next store (or `nr_pools`) reaps it.

use core::ptr::NonNull;

use alloc::vec::Vec;
use kbase::sync::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, RwLock, lock_class};

use crate::brlock::BrLock;
use kbase::{CpuInfo, Error, Gfp, KArc, PageAllocator, Result, try_box};
use zpool::ZsPool;

use crate::compress::{Compressor, CompressorKind};
use crate::shrink::{ShrinkControl, ShrinkResult};
use crate::stats::Counters;
use crate::{Zswap, ZswapPlatform};

/// The most pools alive at once (ids 1..=127; 0 means "no pool"): an entry
/// keeps its pool's id in 7 bits.
pub const MAX_POOLS: usize = 127;

/// One pool (Linux: `struct zswap_pool`).
pub(crate) struct ZswapPool {
    pub(crate) id: u8,
    pub(crate) zpool: ZsPool<&'static dyn PageAllocator>,
    pub(crate) compressor: Compressor,
    /// The "current" reference: 1 while current, else 0 (table write lock).
    refs: AtomicUsize,
    /// Per-CPU entry reference counts (wrapping; see the module invariants).
    pcpu: Vec<PcpuCount>,
}

/// One CPU's entry reference count of a pool, alone in its cache lines.
#[repr(align(128))]
struct PcpuCount(AtomicUsize);

/// One counted reference on a pool (one of its `refs`), as a pointer.
///
/// While the reference is held the pool stays in the table, so it is alive.
/// There is no `Drop`: a reference is given back with [`Pools::put`], or
/// stays with the entry that owns it (an entry of the pool holds one).
///
/// # Invariants
///
/// `ptr` points at a pool whose `refs` include the one this value stands
/// for, or (from [`Pools::entry_ref`]) the one of an entry its creator owns
/// for as long as the value is used.
pub(crate) struct PoolRef {
    ptr: NonNull<ZswapPool>,
}

impl core::ops::Deref for PoolRef {
    type Target = ZswapPool;
    fn deref(&self) -> &ZswapPool {
        // SAFETY: by the type invariant a reference is held, so the table
        // still holds the pool's `KArc` and the pool is alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl ZswapPool {
    /// CPU `cpu`'s count (clamped into range).
    #[inline]
    fn pcpu(&self, cpu: usize) -> Option<&AtomicUsize> {
        let c = match self.pcpu.get(cpu) {
            Some(c) => c,
            None => self.pcpu.get(cpu.checked_rem(self.pcpu.len())?)?,
        };
        Some(&c.0)
    }

    /// Takes an entry reference on CPU `cpu`. The caller holds a reference,
    /// or the table lock with the pool current, so the pool is not dead.
    fn get(&self, cpu: usize) {
        // Relaxed, as a `KArc` clone: taken from a live count.
        if let Some(c) = self.pcpu(cpu) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The reference count (racy unless the pool is not current: then it
    /// only goes down, and a zero is final). Acquire: a zero read here
    /// follows every holder's last use of the pool.
    fn count(&self) -> usize {
        self.pcpu
            .iter()
            .fold(self.refs.load(Ordering::Acquire), |acc, c| {
                acc.wrapping_add(c.0.load(Ordering::Acquire))
            })
    }

    /// Not current and no reference left (call under the table lock).
    fn dead(&self) -> bool {
        self.refs.load(Ordering::Relaxed) == 0 && self.count() == 0
    }
}

struct PoolTable {
    slots: [Option<KArc<ZswapPool>>; MAX_POOLS + 1],
    current: u8,
    /// Ids of the occupied slots (see the module invariants).
    live: [u8; MAX_POOLS],
    nr_live: usize,
}

impl PoolTable {
    /// Puts `pool` in its empty slot and publishes it in `by_id` (the
    /// caller holds the table's write lock). `EBUSY` if the slot is taken or
    /// the id out of range.
    fn insert(&mut self, pool: KArc<ZswapPool>, by_id: &[AtomicPtr<ZswapPool>]) -> Result<()> {
        let id = pool.id;
        let (Some(slot @ None), Some(l), Some(b)) = (
            self.slots.get_mut(id as usize),
            self.live.get_mut(self.nr_live),
            by_id.get(id as usize),
        ) else {
            return Err(Error::EBUSY);
        };
        b.store(KArc::as_ptr(&pool).cast_mut(), Ordering::Release);
        *slot = Some(pool);
        *l = id;
        self.nr_live += 1;
        Ok(())
    }

    /// Takes the pool at `pool` out of its slot (slot `id`), if that slot
    /// still holds it, and clears its `by_id` pointer.
    fn remove(
        &mut self,
        id: u8,
        pool: *const ZswapPool,
        by_id: &[AtomicPtr<ZswapPool>],
    ) -> Option<KArc<ZswapPool>> {
        let slot = self.slots.get_mut(id as usize)?;
        if !slot
            .as_ref()
            .is_some_and(|p| core::ptr::eq(KArc::as_ptr(p), pool))
        {
            return None;
        }
        if let Some(b) = by_id.get(id as usize) {
            b.store(core::ptr::null_mut(), Ordering::Relaxed);
        }
        let removed = slot.take();
        let live = self.live.get_mut(..self.nr_live)?;
        if let Some(i) = live.iter().position(|&x| x == id) {
            live.swap(i, live.len() - 1);
            self.nr_live -= 1;
        }
        removed
    }

    /// Sum of the live pools' pages.
    fn total_pages(&self) -> usize {
        self.live_pools().map(|p| p.zpool.total_pages()).sum()
    }

    /// A reference on the current pool, taken on CPU `cpu` (the caller
    /// holds the table lock: the current pool holds its "current" reference,
    /// so it is not dead).
    fn current_get(&self, cpu: usize) -> Option<PoolRef> {
        let p = self.slots.get(self.current as usize)?.as_ref()?;
        let ptr = NonNull::new(KArc::as_ptr(p).cast_mut())?;
        p.get(cpu);
        // INVARIANT: the reference just taken.
        Some(PoolRef { ptr })
    }

    /// Makes pool `id` current; the old current pool loses its "current"
    /// reference and is returned, taken out of the table, if that left it
    /// dead (the caller drops it with the lock released). `false` with
    /// nothing changed if `id` names no live pool.
    fn make_current(
        &mut self,
        id: u8,
        by_id: &[AtomicPtr<ZswapPool>],
    ) -> (bool, Option<KArc<ZswapPool>>) {
        let Some(Some(new)) = self.slots.get(id as usize) else {
            return (false, None);
        };
        if id == self.current {
            return (true, None);
        }
        if new.dead() {
            return (false, None);
        }
        new.refs.store(1, Ordering::Relaxed);
        let old = self.current;
        self.current = id;
        let Some(Some(o)) = self.slots.get(old as usize) else {
            return (true, None);
        };
        o.refs.store(0, Ordering::Relaxed);
        if !o.dead() {
            return (true, None);
        }
        let ptr = KArc::as_ptr(o);
        (true, self.remove(old, ptr, by_id))
    }

    /// Is there a dead pool to reap (see the module docs)?
    fn any_dead(&self) -> bool {
        self.nr_live > 1 && self.live_pools().any(|p| p.dead())
    }

    /// The live pools.
    fn live_pools(&self) -> impl Iterator<Item = &KArc<ZswapPool>> {
        self.live
            .get(..self.nr_live)
            .unwrap_or(&[])
            .iter()
            .filter_map(|&id| self.slots.get(id as usize)?.as_ref())
    }
}

/// The pool registry.
///
/// The table has two locks. Store, which reads it on every call, holds its
/// CPU's lock of `table` (a big-reader lock: no cache line written by two
/// CPUs' stores, one atomic per hold); everything else that reads it
/// (diagnostics, the compaction shrinker, which holds it while compacting)
/// holds `guard` for reading. A writer holds `guard` for writing and then
/// every CPU lock of `table`, so either lock alone keeps writers out.
pub(crate) struct Pools {
    table: BrLock<alloc::boxed::Box<PoolTable>>,
    /// The table's lock for readers other than store, and writers' first.
    guard: RwLock<()>,
    /// The pool of each table slot, for lock-free lookups by reference
    /// holders (see the module invariants); `MAX_POOLS + 1` pointers.
    by_id: Vec<AtomicPtr<ZswapPool>>,
    /// Serialises compressor changes (Linux: the kernel param lock) without
    /// holding a spinlock across pool creation.
    changing: AtomicBool,
}

fn create_pool(
    id: u8,
    kind: CompressorKind,
    alloc: &'static dyn PageAllocator,
    cpus: &dyn CpuInfo,
    gfp: Gfp,
) -> Result<KArc<ZswapPool>> {
    // Contexts for the CPUs online now; later ones come with `cpu_up`.
    let compressor = Compressor::new_online(kind, cpus.nr_cpus(), &|c| cpus.is_online(c), gfp)?;
    let mut pcpu = Vec::new();
    pcpu.try_reserve_exact(cpus.nr_cpus().max(1))?;
    pcpu.extend((0..cpus.nr_cpus().max(1)).map(|_| PcpuCount(AtomicUsize::new(0))));
    // One class shard per CPU (up to zpool's maximum): a store allocates in
    // its CPU's shard, so CPUs storing and loading their own pages share no
    // class lock.
    let shards = cpus.nr_cpus().clamp(1, zpool::MAX_SHARDS);
    #[cfg_attr(not(loom), allow(unused_mut))]
    let mut cfg = zpool::ZsConfig {
        shards,
        ..zpool::ZsConfig::default()
    };
    // Loom models: two-page zspages, so a handful of raw pages gives
    // compaction a sparse zspage to empty.
    #[cfg(loom)]
    {
        cfg.max_pages_per_zspage = 2;
    }
    let zpool = ZsPool::with_config(alloc, cfg)?;
    KArc::try_new(
        ZswapPool {
            id,
            zpool,
            compressor,
            refs: AtomicUsize::new(1),
            pcpu,
        },
        gfp,
    )
}

impl Pools {
    /// A registry whose current pool (id 1) uses `kind`.
    pub(crate) fn new(
        kind: CompressorKind,
        alloc: &'static dyn PageAllocator,
        cpus: &dyn CpuInfo,
        gfp: Gfp,
    ) -> Result<Pools> {
        let pool = create_pool(1, kind, alloc, cpus, gfp)?;
        let mut by_id = Vec::new();
        by_id.try_reserve_exact(MAX_POOLS + 1)?;
        by_id.extend((0..=MAX_POOLS).map(|_| AtomicPtr::new(core::ptr::null_mut())));
        let mut table = try_box(
            PoolTable {
                slots: core::array::from_fn(|_| None),
                current: 1,
                live: [0; MAX_POOLS],
                nr_live: 0,
            },
            gfp,
        )?;
        table.insert(pool, &by_id)?;
        Ok(Pools {
            table: BrLock::new(cpus.nr_cpus(), &lock_class::ZSWAP_POOLS_PCPU, table)?,
            guard: RwLock::new_class((), &lock_class::ZSWAP_POOLS),
            by_id,
            changing: AtomicBool::new(false),
        })
    }

    /// The current pool, with a reference taken for a new entry
    /// (`zswap_pool_current_get`). The caller gives it back with [`Pools::put`]
    /// if no entry keeps it.
    pub(crate) fn current_get(&self, cpu: usize) -> Option<PoolRef> {
        self.table.read(cpu, |t| t.current_get(cpu))
    }

    /// Runs `f` on the table under `guard`'s read lock (readers other than
    /// store).
    fn read<R>(&self, f: impl FnOnce(&PoolTable) -> R) -> R {
        let _g = self.guard.read();
        // SAFETY: `guard` is held: every writer holds it (for writing)
        // around its `table.write`.
        unsafe { self.table.read_unlocked(|t| f(t)) }
    }

    /// Runs `f` on the table with both its locks held for writing.
    fn write<R>(&self, f: impl FnOnce(&mut PoolTable) -> R) -> R {
        let _g = self.guard.write();
        self.table.write(|t| f(t))
    }

    /// [`Pools::total_pages`] and [`Pools::current_get`] under one hold of
    /// the table lock (store's limit check, then its pool reference). Reaps
    /// a pool that died unseen (module docs) first.
    pub(crate) fn total_pages_and_current_get(&self, cpu: usize) -> (usize, Option<PoolRef>) {
        let r = self.table.read(cpu, |t| {
            if t.any_dead() {
                return None;
            }
            Some((t.total_pages(), t.current_get(cpu)))
        });
        if let Some(r) = r {
            return r;
        }
        self.reap();
        self.table
            .read(cpu, |t| (t.total_pages(), t.current_get(cpu)))
    }

    /// Removes and frees every dead pool, one per write-lock hold.
    fn reap(&self) {
        loop {
            let removed = self.write(|t| {
                let dead = t
                    .live_pools()
                    .find(|p| p.dead())
                    .map(|p| (p.id, KArc::as_ptr(p)));
                match dead {
                    Some((id, ptr)) => t.remove(id, ptr, &self.by_id),
                    None => None,
                }
            });
            if removed.is_none() {
                return;
            }
            drop(removed);
        }
    }

    /// One more reference on a pool the caller holds one on
    /// (`zswap_pool_get`), taken on CPU `cpu`.
    pub(crate) fn get_more(&self, pool: &PoolRef, cpu: usize) -> PoolRef {
        pool.get(cpu);
        // INVARIANT: the reference just taken.
        PoolRef { ptr: pool.ptr }
    }

    /// The pool of an entry the caller owns, as that entry's reference, with
    /// no lock and no count change. `None` only if no pool has id `idx`
    /// (impossible for an entry of a live zswap).
    ///
    /// # Safety
    ///
    /// The caller owns an entry of pool `idx` (so holds the reference it
    /// carries) and uses the result only while it does: it gives the
    /// reference back with [`Pools::put`] when the entry is freed, or just
    /// lets the value go while the entry keeps its reference.
    #[inline]
    pub(crate) unsafe fn entry_ref(&self, idx: u8) -> Option<PoolRef> {
        // Acquire pairs with `insert`'s Release store (the entry's reference
        // was taken after it, under the table lock, so the pointer is the
        // pool's, never a stale null or an older pool of the id).
        let p = self.by_id.get(idx as usize)?.load(Ordering::Acquire);
        // INVARIANT: the caller's entry holds a reference on this pool.
        NonNull::new(p).map(|ptr| PoolRef { ptr })
    }

    /// The pool with id `idx`, as a `KArc` clone (diagnostics and test
    /// hooks; the hot paths use [`Pools::entry_ref`]).
    pub(crate) fn get(&self, idx: u8) -> Option<KArc<ZswapPool>> {
        self.read(|t| t.slots.get(idx as usize)?.clone())
    }

    /// The algorithm of the current pool.
    pub(crate) fn current_kind(&self) -> Option<CompressorKind> {
        self.read(|t| Some(t.slots.get(t.current as usize)?.as_ref()?.compressor.kind()))
    }

    /// Gives one reference back on CPU `cpu` (`zswap_pool_put`); the last
    /// one of a pool that is not current removes it from the table and frees
    /// it (outside the lock).
    #[inline]
    pub(crate) fn put(&self, pool: PoolRef, cpu: usize) {
        let ptr = pool.ptr;
        // SAFETY: we hold a reference, so the pool is alive until our
        // decrement; nothing touches it after that but under the write lock
        // (which whoever frees it holds).
        let p = unsafe { ptr.as_ref() };
        if p.refs.load(Ordering::Relaxed) != 0 {
            // Current (or it was a moment ago): our reference keeps it from
            // being dead until this decrement, our last use of it. Release:
            // our uses happen before a reaper's Acquire read of the zero.
            if let Some(c) = p.pcpu(cpu) {
                c.fetch_sub(1, Ordering::Release);
            }
            return;
        }
        // Not current: under the write lock no one frees it meanwhile, and
        // a zero seen here is final.
        let removed = self.write(|t| {
            if let Some(c) = p.pcpu(cpu) {
                c.fetch_sub(1, Ordering::Release);
            }
            if p.dead() {
                t.remove(p.id, ptr.as_ptr(), &self.by_id)
            } else {
                None
            }
        });
        drop(removed);
    }

    /// References to every live pool (CPU hotplug prepares each one's
    /// contexts with no lock held). `ENOMEM`.
    pub(crate) fn live(&self) -> Result<alloc::vec::Vec<KArc<ZswapPool>>> {
        let mut v = alloc::vec::Vec::new();
        v.try_reserve_exact(MAX_POOLS)?;
        self.read(|t| v.extend(t.live_pools().cloned()));
        Ok(v)
    }

    /// Sum of the pools' pages (`zswap_total_pages`).
    pub(crate) fn total_pages(&self) -> usize {
        self.read(|t| t.total_pages())
    }

    /// The live pools' heap metadata by component, summed (diagnostics).
    /// Each pool's stats are read with no lock of the pool table held (its
    /// classes' locks are taken one at a time). `ENOMEM`.
    pub(crate) fn metadata(&self) -> Result<zpool::MetadataBytes> {
        let mut sum = zpool::MetadataBytes::default();
        for p in self.live()? {
            sum += p.zpool.stats().metadata;
        }
        Ok(sum)
    }

    /// Live pools (diagnostics; reaps a pool that died unseen first).
    pub(crate) fn nr_pools(&self) -> usize {
        if self.read(|t| t.any_dead()) {
            self.reap();
        }
        self.read(|t| t.nr_live)
    }

    /// Makes a pool of `kind` current: a live pool of that algorithm is
    /// revived, else a new one is created (with no lock held). `EBUSY` if
    /// another change is in progress or all 127 ids are taken.
    pub(crate) fn set_compressor(
        &self,
        kind: CompressorKind,
        alloc: &'static dyn PageAllocator,
        cpus: &dyn CpuInfo,
        gfp: Gfp,
    ) -> Result<()> {
        if self
            .changing
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(Error::EBUSY);
        }
        let r = self.set_compressor_locked(kind, alloc, cpus, gfp);
        self.changing.store(false, Ordering::Release);
        r
    }

    fn set_compressor_locked(
        &self,
        kind: CompressorKind,
        alloc: &'static dyn PageAllocator,
        cpus: &dyn CpuInfo,
        gfp: Gfp,
    ) -> Result<()> {
        if self.current_kind() == Some(kind) {
            return Ok(());
        }
        // Revive a live pool of the same algorithm (zswap_pool_find_get).
        let (revived, removed) = self.write(|t| {
            let found = t
                .live_pools()
                .find(|p| p.compressor.kind() == kind && !p.dead())
                .map(|p| p.id);
            match found {
                Some(id) => t.make_current(id, &self.by_id),
                None => (false, None),
            }
        });
        // The old current pool, dead without its "current" reference.
        drop(removed);
        if !revived {
            // Only this function (serialised by `changing`) takes ids, so an id
            // free now is still free after the pool is built with no lock held.
            let id = self
                .read(|t| (1..=MAX_POOLS).find(|&i| t.slots.get(i).is_some_and(|s| s.is_none())));
            let Some(id) = id else {
                return Err(Error::EBUSY);
            };
            let pool = create_pool(id as u8, kind, alloc, cpus, gfp)?;
            let removed = self.write(|t| {
                t.insert(pool, &self.by_id)?;
                Ok::<_, Error>(t.make_current(id as u8, &self.by_id).1)
            })?;
            drop(removed);
        }
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use kbase::HeapPageAllocator;

    fn alloc() -> &'static dyn PageAllocator {
        alloc::boxed::Box::leak(alloc::boxed::Box::new(HeapPageAllocator::new()))
    }

    fn live_ids(t: &PoolTable) -> Vec<u8> {
        let mut v: Vec<u8> = t.live_pools().map(|p| p.id).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn live_list_follows_inserts_and_removals() {
        let a = alloc();
        let pool =
            |id| create_pool(id, CompressorKind::Lz4, a, &kbase::UniCpu, Gfp::KERNEL).unwrap();
        let pools = Pools::new(CompressorKind::Lz4, a, &kbase::UniCpu, Gfp::KERNEL).unwrap();
        let p2 = pool(2);
        let p127 = pool(127);
        let (p2b, other, p2c) = (pool(2), pool(2), pool(2));
        pools.write(|t| {
            assert_eq!(live_ids(t), [1]);
            let by_id = &pools.by_id;
            t.insert(p2.clone(), by_id).unwrap();
            t.insert(p127.clone(), by_id).unwrap();
            // A taken slot is refused.
            assert_eq!(t.insert(p2b, by_id).err(), Some(Error::EBUSY));
            assert_eq!(live_ids(t), [1, 2, 127]);
            // by_id follows the slots.
            // SAFETY: the test holds the pools (nothing frees them meanwhile).
            let at = |id: u8| unsafe { pools.entry_ref(id) }.map(|r| r.ptr.as_ptr() as *const _);
            assert_eq!(at(2), Some(KArc::as_ptr(&p2)));
            assert_eq!(at(127), Some(KArc::as_ptr(&p127)));
            assert!(at(3).is_none());
            // Only the very pool in the slot is removed.
            assert!(t.remove(2, KArc::as_ptr(&other), by_id).is_none());
            assert_eq!(at(2), Some(KArc::as_ptr(&p2)));
            assert!(t.remove(2, KArc::as_ptr(&p2), by_id).is_some());
            assert!(t.remove(2, KArc::as_ptr(&p2), by_id).is_none());
            assert!(at(2).is_none());
            assert_eq!(live_ids(t), [1, 127]);
            assert_eq!(t.nr_live, 2);
            t.insert(p2c, by_id).unwrap();
            assert_eq!(live_ids(t), [1, 2, 127]);
        });
        drop(other);
        assert_eq!(pools.nr_pools(), 3);
        // total_pages sums every live pool, not only the current one.
        let h = p127.zpool.malloc(100, Gfp::KERNEL).unwrap();
        let cur = pools.current_get(0).unwrap();
        let h1 = cur.zpool.malloc(100, Gfp::KERNEL).unwrap();
        assert_eq!(
            pools.total_pages(),
            p127.zpool.total_pages() + cur.zpool.total_pages()
        );
        assert!(pools.total_pages() >= 2);
        p127.zpool.free(h).unwrap();
        cur.zpool.free(h1).unwrap();
        pools.put(cur, 0);
    }

    /// Two CPUs.
    struct TwoCpus;
    impl CpuInfo for TwoCpus {
        fn current_cpu(&self) -> usize {
            0
        }
        fn nr_cpus(&self) -> usize {
            2
        }
    }

    #[test]
    fn the_last_reference_of_an_old_pool_frees_it() {
        let a = alloc();
        let pools = Pools::new(CompressorKind::Lz4, a, &TwoCpus, Gfp::KERNEL).unwrap();
        let (pages, r1) = pools.total_pages_and_current_get(0);
        assert_eq!(pages, 0);
        let r1 = r1.unwrap();
        // Taken on CPU 1, given back on CPU 0 below: counts wrap, sums do not.
        let r2 = pools.get_more(&r1, 1);
        assert_eq!(r1.count(), 3, "current + two entries");
        // Another pool becomes current: pool 1 lives on through its entries.
        let p2 = create_pool(2, CompressorKind::Lz4, a, &TwoCpus, Gfp::KERNEL).unwrap();
        pools.write(|t| {
            t.insert(p2, &pools.by_id).unwrap();
            let (ok, removed) = t.make_current(2, &pools.by_id);
            assert!(ok && removed.is_none(), "pool 1 still has entries");
        });
        assert_eq!(r1.count(), 2);
        // SAFETY: r1 holds a reference on pool 1 until the put below.
        let again = unsafe { pools.entry_ref(1) }.unwrap();
        assert_eq!(again.ptr, r1.ptr);
        pools.put(r1, 0);
        assert_eq!(pools.nr_pools(), 2);
        pools.put(r2, 0);
        assert_eq!(pools.nr_pools(), 1, "the last reference removed pool 1");
        // SAFETY: no reference on pool 1 is used; only the lookup is checked.
        assert!(unsafe { pools.entry_ref(1) }.is_none());
        let cur = pools.current_get(1).unwrap();
        assert_eq!(cur.id, 2);
        pools.put(cur, 1);
    }

    #[test]
    fn a_pool_that_died_unseen_is_reaped_by_the_next_store() {
        let a = alloc();
        let pools = Pools::new(CompressorKind::Lz4, a, &TwoCpus, Gfp::KERNEL).unwrap();
        let r1 = pools.current_get(0).unwrap();
        let p2 = create_pool(2, CompressorKind::Lz4, a, &TwoCpus, Gfp::KERNEL).unwrap();
        pools.write(|t| {
            t.insert(p2, &pools.by_id).unwrap();
            assert!(t.make_current(2, &pools.by_id).1.is_none());
        });
        // A put that saw pool 1 current decrements after the switch (the
        // race of the module docs): nothing frees the pool then.
        let c = r1.pcpu(1).unwrap();
        c.fetch_sub(1, Ordering::Release);
        assert_eq!(pools.read(|t| t.nr_live), 2);
        // Reviving it is refused: it is dead.
        let (ok, _) = pools.write(|t| t.make_current(1, &pools.by_id));
        assert!(!ok);
        let (_, cur) = pools.total_pages_and_current_get(0);
        assert_eq!(pools.read(|t| t.nr_live), 1, "reaped");
        let cur = cur.unwrap();
        assert_eq!(cur.id, 2);
        pools.put(cur, 0);
    }
}

impl Pools {
    /// Pages compaction could give back, over every live pool
    /// (`zs_shrinker_count` of each).
    pub(crate) fn compaction_count(&self) -> usize {
        self.read(|t| t.live_pools().map(|p| p.zpool.shrinker_count()).sum())
    }

    /// Compacts live pools until `nr` pages were freed (`zs_shrinker_scan`
    /// of each, in turn); returns the pages freed. Holds the pool table's
    /// read lock while compacting (pool table -> zpool class lock, one
    /// zspage per class-lock hold).
    pub(crate) fn compaction_scan(&self, nr: usize) -> usize {
        self.read(|t| {
            let mut freed = 0;
            for p in t.live_pools() {
                if freed >= nr {
                    break;
                }
                freed += p.zpool.shrinker_scan(nr - freed);
            }
            freed
        })
    }

    /// Compacts every live pool completely (`zs_compact`); returns the
    /// pages freed.
    pub(crate) fn compact(&self) -> usize {
        self.read(|t| t.live_pools().map(|p| p.zpool.compact()).sum())
    }
}

impl<P: ZswapPlatform> Zswap<P> {
    /// The pool's compaction shrinker, count half (Linux: `zs_shrinker_count`,
    /// the shrinker zsmalloc registers for each pool): pages that compacting
    /// zswap's pools could give back. Not memcg aware (`sc.memcg` and
    /// `sc.nid` are ignored): pool pages are shared by every cgroup.
    ///
    /// A kernel registers this pair next to zswap's own
    /// ([`shrinker_count`](Self::shrinker_count) /
    /// [`shrinker_scan`](Self::shrinker_scan)), as Linux has one shrinker
    /// for zswap's LRU and one per zsmalloc pool; both are zswap's to
    /// forward, so the kernel sees no pool type. The LRU shrinker writes
    /// entries back (I/O, frees whole entries); this one only moves objects
    /// inside the pool, never blocks and never does I/O, so it also runs for
    /// callers without `__GFP_IO | __GFP_FS`. Independent of the
    /// `shrinker_enabled` parameter, like zsmalloc's.
    pub fn pool_shrinker_count(&self, sc: &ShrinkControl) -> u64 {
        let _ = sc;
        self.pools.compaction_count() as u64
    }

    /// The pool's compaction shrinker, scan half (`zs_shrinker_scan`):
    /// compacts the pools until `sc.nr_to_scan` pages were given back, one
    /// zspage per pool-lock hold; `Freed(pages)`, or `Stop` if nothing could
    /// be freed. Freed pages are counted in `pages_compacted`.
    pub fn pool_shrinker_scan(&self, sc: &mut ShrinkControl) -> ShrinkResult {
        let freed = self.pools.compaction_scan(sc.nr_to_scan);
        sc.nr_scanned = freed;
        if freed == 0 {
            return ShrinkResult::Stop;
        }
        Counters::add(&self.stats.pages_compacted, freed as u64);
        ShrinkResult::Freed(freed)
    }

    /// Compacts every pool completely (`zs_compact`, the pool's `compact`
    /// sysfs knob); returns the pages given back, also counted in
    /// `pages_compacted`.
    pub fn compact_pools(&self) -> usize {
        let freed = self.pools.compact();
        Counters::add(&self.stats.pages_compacted, freed as u64);
        freed
    }
}
