//! Shrinking: the LRU walk, `shrink_memcg`, the memory-pressure shrinker and
//! the global shrink worker.

use kbase::sync::{Ordering, cpu_relax};
use kbase::{Error, Gfp, PAGE_SIZE, Result};
use memcg::MemcgRef;

use crate::lru::Isolate;
use crate::stats::Counters;
use crate::{Zswap, ZswapEvent, ZswapPlatform};

/// Entries `shrink_memcg` examines per node list and call (Linux 6.8-6.18:
/// `nr_to_walk = 1`): one call writes back at most one entry per node, and a
/// head entry that only loses its second chance makes the call `EAGAIN`.
pub const SHRINK_BATCH: usize = 1;
/// Failed passes after which the global worker gives up
/// (`MAX_RECLAIM_RETRIES`).
pub const MAX_RECLAIM_RETRIES: u32 = 16;

/// A shrinker call (Linux: `struct shrink_control`).
#[derive(Clone, Debug)]
pub struct ShrinkControl {
    /// The allocation context reclaim runs for.
    pub gfp: Gfp,
    /// The NUMA node being reclaimed.
    pub nid: usize,
    /// The cgroup being reclaimed; `None` with memcg disabled (root lists,
    /// global counters).
    pub memcg: Option<MemcgRef>,
    /// How many entries scan may examine.
    pub nr_to_scan: usize,
    /// Out: how many entries scan examined.
    pub nr_scanned: usize,
}

impl ShrinkControl {
    /// A control for `memcg` on node 0 with `GFP_KERNEL`.
    pub fn new(memcg: Option<MemcgRef>, nr_to_scan: usize) -> ShrinkControl {
        ShrinkControl {
            gfp: Gfp::KERNEL,
            nid: 0,
            memcg,
            nr_to_scan,
            nr_scanned: 0,
        }
    }
}

/// What [`Zswap::shrinker_scan`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShrinkResult {
    /// Entries written back.
    Freed(usize),
    /// `SHRINK_STOP`: nothing more to do now (disabled, nothing freed, or the
    /// walk reached entries already in the swap cache).
    Stop,
}

/// The outcome of an LRU walk.
#[derive(Default)]
struct Walk {
    /// Entries examined (rotations included).
    scanned: usize,
    /// Entries written back.
    written: usize,
    /// A writeback found its slot in the swap cache and the walk stopped.
    hit_exists: bool,
}

impl<P: ZswapPlatform> Zswap<P> {
    /// `list_lru_walk_one` with `shrink_memcg_cb`: examines up to
    /// `nr_to_walk` entries at the head of the (memcg, node) list.
    fn walk_one(&self, memcg_id: u32, nid: usize, nr_to_walk: usize, stop_on_exists: bool) -> Walk {
        let mut w = Walk::default();
        while w.scanned < nr_to_walk {
            let (swp, handle) = match self.lru.isolate_head(&self.entries, memcg_id, nid) {
                Isolate::Empty => break,
                Isolate::Rotated => {
                    w.scanned += 1;
                    continue;
                }
                Isolate::Candidate { swp, handle } => (swp, handle),
            };
            w.scanned += 1;
            // The LRU lock is dropped: the entry may be freed from here on;
            // only its slot and pool handle are used.
            self.platform.trace(ZswapEvent::WritebackPicked(swp));
            match self.writeback_entry(handle, swp) {
                Ok(()) => {
                    Counters::inc(&self.stats.written_back_pages);
                    w.written += 1;
                }
                Err(e) => {
                    Counters::inc(&self.stats.reject_reclaim_fail);
                    // Only a folio found in the swap cache stops the dynamic
                    // shrinker; a busy slot with no folio (ENOMEM) does not.
                    if e == Error::EEXIST && stop_on_exists {
                        w.hit_exists = true;
                        break;
                    }
                }
            }
        }
        w
    }

    /// `shrink_memcg`: examines [`SHRINK_BATCH`] (one) entry at the head of
    /// each node list of `memcg`'s own lists and writes it back unless it is
    /// referenced (then it only loses its second chance and is rotated).
    ///
    /// `Ok` if at least one entry was written back. `ENOENT` if the cgroup
    /// has writeback disabled, is offline, or its lists are empty; `EAGAIN`
    /// if entries were examined but none written back (a second chance
    /// taken away, a busy slot, a failed write).
    pub fn shrink_memcg(&self, memcg: &MemcgRef) -> Result<()> {
        if !memcg.zswap_writeback_enabled() || !memcg.is_online() {
            return Err(Error::ENOENT);
        }
        self.shrink_lists(memcg.id())
    }

    /// `shrink_memcg` for the root / no-memcg lists (memcg disabled).
    pub fn shrink_root(&self) -> Result<()> {
        if let Some(t) = self.platform.memcg_tree() {
            return self.shrink_memcg(&t.root());
        }
        self.shrink_lists(0)
    }

    fn shrink_lists(&self, id: u32) -> Result<()> {
        let mut scanned = 0;
        let mut written = 0;
        for nid in 0..self.lru.nr_nodes() {
            let w = self.walk_one(id, nid, SHRINK_BATCH, false);
            scanned += w.scanned;
            written += w.written;
        }
        if scanned == 0 {
            Err(Error::ENOENT)
        } else if written == 0 {
            Err(Error::EAGAIN)
        } else {
            Ok(())
        }
    }

    /// `zswap_shrinker_count`: how many entries the memory-pressure shrinker
    /// offers for (memcg, node): the list length scaled by the compression
    /// ratio (`nr_freeable * pool_pages / stored_pages`), minus recent disk
    /// swap-ins. 0 when the shrinker is disabled, the cgroup has writeback
    /// disabled, or `gfp` lacks IO|FS.
    pub fn shrinker_count(&self, sc: &ShrinkControl) -> u64 {
        if !self.shrinker_enabled.load(Ordering::Relaxed) || !sc.gfp.has_io_fs() {
            return 0;
        }
        if let Some(m) = sc.memcg.as_ref()
            && !m.zswap_writeback_enabled()
        {
            return 0;
        }
        let (nr_backing, nr_stored) = match (sc.memcg.as_ref(), self.platform.memcg_tree()) {
            (Some(m), Some(_)) => {
                let st = m.stat();
                (st.zswap / PAGE_SIZE as u64, st.zswapped / PAGE_SIZE as u64)
            }
            // memcg disabled: global counters (the 682886ec69d2 fix).
            _ => (self.total_pages() as u64, self.stored_pages()),
        };
        if nr_stored == 0 {
            return 0;
        }
        let id = self.lru_id(sc.memcg.as_ref());
        let nid = sc.nid.min(self.lru.nr_nodes() - 1);
        let mut nr_freeable = self.lru.count_one(id, nid) as u64;
        if nr_freeable == 0 {
            return 0;
        }
        nr_freeable -= self.lru.consume_disk_swapins(id, nid, nr_freeable);
        if nr_freeable == 0 {
            return 0;
        }
        let scaled = u128::from(nr_freeable) * u128::from(nr_backing) / u128::from(nr_stored);
        u64::try_from(scaled).unwrap_or(u64::MAX)
    }

    /// `zswap_shrinker_scan`: writes back up to `sc.nr_to_scan` entries of
    /// the (memcg, node) list; stops early at an entry whose slot is already
    /// in the swap cache (the walk reached warm pages).
    pub fn shrinker_scan(&self, sc: &mut ShrinkControl) -> ShrinkResult {
        let wb_ok = sc
            .memcg
            .as_ref()
            .is_none_or(|m| m.zswap_writeback_enabled());
        if !self.shrinker_enabled.load(Ordering::Relaxed) || !wb_ok {
            sc.nr_scanned = 0;
            return ShrinkResult::Stop;
        }
        let id = self.lru_id(sc.memcg.as_ref());
        let nid = sc.nid.min(self.lru.nr_nodes() - 1);
        let w = self.walk_one(id, nid, sc.nr_to_scan, true);
        sc.nr_scanned = w.scanned;
        if w.hit_exists || w.written == 0 {
            ShrinkResult::Stop
        } else {
            ShrinkResult::Freed(w.written)
        }
    }

    /// `shrink_worker`: the global worker queued when the pool limit is hit.
    /// Shrinks cgroups round-robin, one [`Zswap::shrink_memcg`] call (one
    /// entry per node) per cgroup visited, skipping offline ones and those
    /// with nothing to write back, until the pool is at or below the accept
    /// threshold, giving up after [`MAX_RECLAIM_RETRIES`] failures. As
    /// Linux's `do { .. } while (zswap_total_pages() > thr)`, the first
    /// cgroup is always tried, and the threshold is checked after every
    /// cgroup and at the end of every pass over the hierarchy.
    pub fn shrink_worker(&self) {
        let thr = self.accept_thr_pages();
        let mut failures = 0u32;
        let mut attempts = 0u32;
        loop {
            let ret = match self.platform.memcg_tree() {
                None => self.shrink_root(),
                Some(tree) => match self.cursor.next(tree) {
                    None => {
                        // One full pass done.
                        if attempts == 0 {
                            failures += 1;
                            if failures >= MAX_RECLAIM_RETRIES {
                                break;
                            }
                        }
                        attempts = 0;
                        cpu_relax();
                        // `goto resched`: the loop condition is checked at
                        // the end of a pass too.
                        if self.total_pages() as u64 <= thr {
                            break;
                        }
                        continue;
                    }
                    Some(m) => self.shrink_memcg(&m),
                },
            };
            match ret {
                Err(Error::ENOENT) if self.platform.memcg_tree().is_some() => {}
                r => {
                    attempts += 1;
                    if r.is_err() {
                        failures += 1;
                        if failures >= MAX_RECLAIM_RETRIES {
                            break;
                        }
                    }
                }
            }
            if self.total_pages() as u64 <= thr {
                break;
            }
            cpu_relax();
        }
    }
}
