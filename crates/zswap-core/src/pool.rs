//! Pools: a compressor plus a zsmalloc-like pool, with ids 1..=255.
//!
//! Linux keeps `zswap_pools` (an xarray with ids 1..U8_MAX) and a current
//! pool; each entry records the `u8` id of the pool that holds its object.
//! Changing the `compressor` parameter makes a new pool current (or revives a
//! live pool of the same algorithm); entries of older pools still load from
//! their own pool, which is freed when its last entry goes.
//!
//! # Invariants
//!
//! - `refs` of a pool counts its entries, plus one while it is current. It is
//!   only incremented from a non-zero value (`tryget`), so once it reaches
//!   zero the pool is dead: it is removed from the table and dropped, never
//!   revived.
//! - `PoolTable::current` names a live slot once `Pools::new` succeeded.
//! - `PoolTable::live[..nr_live]` lists the ids of the occupied slots, each
//!   once, in no particular order: `total_pages` (run on every store) sums
//!   the few live pools instead of scanning all 256 slots.

use kbase::sync::{AtomicBool, AtomicUsize, Ordering, RwLock, lock_class};
use kbase::{CpuInfo, Error, Gfp, KArc, PageAllocator, Result, try_box};
use zpool::ZsPool;

use crate::compress::{Compressor, CompressorKind};
use crate::shrink::{ShrinkControl, ShrinkResult};
use crate::stats::Counters;
use crate::{Zswap, ZswapPlatform};

/// The most pools alive at once (ids 1..=255; 0 means "no pool").
pub const MAX_POOLS: usize = 255;

/// One pool (Linux: `struct zswap_pool`).
pub(crate) struct ZswapPool {
    pub(crate) id: u8,
    pub(crate) zpool: ZsPool<&'static dyn PageAllocator>,
    pub(crate) compressor: Compressor,
    refs: AtomicUsize,
}

impl ZswapPool {
    /// Takes a reference if the pool is not dead (`percpu_ref_tryget`).
    fn tryget(&self) -> bool {
        let mut cur = self.refs.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return false;
            }
            match self
                .refs
                .compare_exchange(cur, cur + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
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
    /// Puts `pool` in its empty slot. `EBUSY` if the slot is taken or the
    /// id out of range.
    fn insert(&mut self, pool: KArc<ZswapPool>) -> Result<()> {
        let id = pool.id;
        let (Some(slot @ None), Some(l)) = (
            self.slots.get_mut(id as usize),
            self.live.get_mut(self.nr_live),
        ) else {
            return Err(Error::EBUSY);
        };
        *slot = Some(pool);
        *l = id;
        self.nr_live += 1;
        Ok(())
    }

    /// Takes `pool` out of its slot, if that slot still holds it.
    fn remove(&mut self, pool: &ZswapPool) -> Option<KArc<ZswapPool>> {
        let slot = self.slots.get_mut(pool.id as usize)?;
        if !slot
            .as_ref()
            .is_some_and(|p| core::ptr::eq::<ZswapPool>(&**p, pool))
        {
            return None;
        }
        let removed = slot.take();
        let live = self.live.get_mut(..self.nr_live)?;
        if let Some(i) = live.iter().position(|&id| id == pool.id) {
            live.swap(i, live.len() - 1);
            self.nr_live -= 1;
        }
        removed
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
pub(crate) struct Pools {
    table: RwLock<alloc::boxed::Box<PoolTable>>,
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
    // Loom models: two-page zspages, so a handful of raw pages gives
    // compaction a sparse zspage to empty.
    #[cfg(not(loom))]
    let zpool = ZsPool::new(alloc)?;
    #[cfg(loom)]
    let zpool = ZsPool::with_config(
        alloc,
        zpool::ZsConfig {
            max_pages_per_zspage: 2,
        },
    )?;
    KArc::try_new(
        ZswapPool {
            id,
            zpool,
            compressor,
            refs: AtomicUsize::new(1),
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
        let mut table = try_box(
            PoolTable {
                slots: core::array::from_fn(|_| None),
                current: 1,
                live: [0; MAX_POOLS],
                nr_live: 0,
            },
            gfp,
        )?;
        table.insert(pool)?;
        Ok(Pools {
            table: RwLock::new_class(table, &lock_class::ZSWAP_POOLS),
            changing: AtomicBool::new(false),
        })
    }

    /// The current pool, with a reference taken for a new entry
    /// (`zswap_pool_current_get`). The caller gives it back with [`Pools::put`]
    /// if the entry is not stored.
    pub(crate) fn current_get(&self) -> Option<KArc<ZswapPool>> {
        let t = self.table.read();
        let p = t.slots.get(t.current as usize)?.as_ref()?;
        if p.tryget() { Some(p.clone()) } else { None }
    }

    /// The pool with id `idx` (no reference taken: the caller's entry holds one).
    pub(crate) fn get(&self, idx: u8) -> Option<KArc<ZswapPool>> {
        let t = self.table.read();
        t.slots.get(idx as usize)?.clone()
    }

    /// The algorithm of the current pool.
    pub(crate) fn current_kind(&self) -> Option<CompressorKind> {
        let t = self.table.read();
        Some(t.slots.get(t.current as usize)?.as_ref()?.compressor.kind())
    }

    /// Drops one reference; the last one removes the pool from the table and
    /// frees it (outside the lock).
    pub(crate) fn put(&self, pool: &ZswapPool) {
        if pool.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        let removed = self.table.write().remove(pool);
        drop(removed);
    }

    /// Sum of the pools' pages (`zswap_total_pages`).
    /// References to every live pool (CPU hotplug prepares each one's
    /// contexts with no lock held). `ENOMEM`.
    pub(crate) fn live(&self) -> Result<alloc::vec::Vec<KArc<ZswapPool>>> {
        let mut v = alloc::vec::Vec::new();
        v.try_reserve_exact(MAX_POOLS)?;
        let t = self.table.read();
        v.extend(t.live_pools().cloned());
        drop(t);
        Ok(v)
    }

    pub(crate) fn total_pages(&self) -> usize {
        let t = self.table.read();
        t.live_pools().map(|p| p.zpool.total_pages()).sum()
    }

    /// Live pools (diagnostics).
    pub(crate) fn nr_pools(&self) -> usize {
        self.table.read().nr_live
    }

    /// Makes a pool of `kind` current: a live pool of that algorithm is
    /// revived, else a new one is created (with no lock held). `EBUSY` if
    /// another change is in progress or all 255 ids are taken.
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
        let mut old = None;
        let revived = {
            let mut t = self.table.write();
            let found = t
                .live_pools()
                .find(|p| p.compressor.kind() == kind && p.tryget())
                .map(|p| p.id);
            if let Some(id) = found {
                old = t.slots.get(t.current as usize).cloned().flatten();
                t.current = id;
            }
            found.is_some()
        };
        if !revived {
            // Only this function (serialised by `changing`) takes ids, so an id
            // free now is still free after the pool is built with no lock held.
            let id = {
                let t = self.table.read();
                (1..=MAX_POOLS).find(|&i| t.slots.get(i).is_some_and(|s| s.is_none()))
            };
            let Some(id) = id else {
                return Err(Error::EBUSY);
            };
            let pool = create_pool(id as u8, kind, alloc, cpus, gfp)?;
            let mut t = self.table.write();
            t.insert(pool)?;
            old = t.slots.get(t.current as usize).cloned().flatten();
            t.current = id as u8;
        }
        // The old current pool loses its "current" reference.
        if let Some(o) = old {
            self.put(&o);
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
        let mut t = pools.table.write();
        assert_eq!(live_ids(&t), [1]);
        let p2 = pool(2);
        let p255 = pool(255);
        t.insert(p2.clone()).unwrap();
        t.insert(p255.clone()).unwrap();
        // A taken slot is refused.
        assert_eq!(t.insert(pool(2)).err(), Some(Error::EBUSY));
        assert_eq!(live_ids(&t), [1, 2, 255]);
        // Only the very pool in the slot is removed.
        assert!(t.remove(&pool(2)).is_none());
        assert!(t.remove(&p2).is_some());
        assert!(t.remove(&p2).is_none());
        assert_eq!(live_ids(&t), [1, 255]);
        assert_eq!(t.nr_live, 2);
        t.insert(pool(2)).unwrap();
        assert_eq!(live_ids(&t), [1, 2, 255]);
        drop(t);
        assert_eq!(pools.nr_pools(), 3);
        // total_pages sums every live pool, not only the current one.
        let h = p255.zpool.malloc(100, Gfp::KERNEL).unwrap();
        let cur = pools.current_get().unwrap();
        let h1 = cur.zpool.malloc(100, Gfp::KERNEL).unwrap();
        assert_eq!(
            pools.total_pages(),
            p255.zpool.total_pages() + cur.zpool.total_pages()
        );
        assert!(pools.total_pages() >= 2);
        p255.zpool.free(h).unwrap();
        cur.zpool.free(h1).unwrap();
        pools.put(&cur);
    }
}

impl Pools {
    /// Pages compaction could give back, over every live pool
    /// (`zs_shrinker_count` of each).
    pub(crate) fn compaction_count(&self) -> usize {
        let t = self.table.read();
        t.live_pools().map(|p| p.zpool.shrinker_count()).sum()
    }

    /// Compacts live pools until `nr` pages were freed (`zs_shrinker_scan`
    /// of each, in turn); returns the pages freed. Holds the pool table's
    /// read lock while compacting (pool table -> zpool class lock, one
    /// zspage per class-lock hold).
    pub(crate) fn compaction_scan(&self, nr: usize) -> usize {
        let t = self.table.read();
        let mut freed = 0;
        for p in t.live_pools() {
            if freed >= nr {
                break;
            }
            freed += p.zpool.shrinker_scan(nr - freed);
        }
        freed
    }

    /// Compacts every live pool completely (`zs_compact`); returns the
    /// pages freed.
    pub(crate) fn compact(&self) -> usize {
        let t = self.table.read();
        t.live_pools().map(|p| p.zpool.compact()).sum()
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
