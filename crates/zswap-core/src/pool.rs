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

use kbase::sync::{AtomicBool, AtomicUsize, Ordering, RwLock};
use kbase::{Error, Gfp, KArc, PageAllocator, Result, try_box};
use zpool::ZsPool;

use crate::compress::{Compressor, CompressorKind};

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
    nr_cpus: usize,
    gfp: Gfp,
) -> Result<KArc<ZswapPool>> {
    let compressor = Compressor::new(kind, nr_cpus, gfp)?;
    let zpool = ZsPool::new(alloc)?;
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
        nr_cpus: usize,
        gfp: Gfp,
    ) -> Result<Pools> {
        let pool = create_pool(1, kind, alloc, nr_cpus, gfp)?;
        let mut table = try_box(
            PoolTable {
                slots: core::array::from_fn(|_| None),
                current: 1,
            },
            gfp,
        )?;
        table.slots[1] = Some(pool);
        Ok(Pools {
            table: RwLock::new(table),
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
        let removed = {
            let mut t = self.table.write();
            match t.slots.get_mut(pool.id as usize) {
                Some(slot)
                    if slot
                        .as_ref()
                        .is_some_and(|p| core::ptr::eq::<ZswapPool>(&**p, pool)) =>
                {
                    slot.take()
                }
                _ => None,
            }
        };
        drop(removed);
    }

    /// Sum of the pools' pages (`zswap_total_pages`).
    pub(crate) fn total_pages(&self) -> usize {
        let t = self.table.read();
        t.slots
            .iter()
            .flatten()
            .map(|p| p.zpool.total_pages())
            .sum()
    }

    /// Live pools (diagnostics).
    pub(crate) fn nr_pools(&self) -> usize {
        self.table.read().slots.iter().flatten().count()
    }

    /// Makes a pool of `kind` current: a live pool of that algorithm is
    /// revived, else a new one is created (with no lock held). `EBUSY` if
    /// another change is in progress or all 255 ids are taken.
    pub(crate) fn set_compressor(
        &self,
        kind: CompressorKind,
        alloc: &'static dyn PageAllocator,
        nr_cpus: usize,
        gfp: Gfp,
    ) -> Result<()> {
        if self
            .changing
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(Error::EBUSY);
        }
        let r = self.set_compressor_locked(kind, alloc, nr_cpus, gfp);
        self.changing.store(false, Ordering::Release);
        r
    }

    fn set_compressor_locked(
        &self,
        kind: CompressorKind,
        alloc: &'static dyn PageAllocator,
        nr_cpus: usize,
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
                .slots
                .iter()
                .flatten()
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
            let pool = create_pool(id as u8, kind, alloc, nr_cpus, gfp)?;
            let mut t = self.table.write();
            match t.slots.get_mut(id) {
                Some(slot @ None) => *slot = Some(pool),
                _ => return Err(Error::EBUSY),
            }
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
