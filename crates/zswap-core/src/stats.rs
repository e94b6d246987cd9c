//! Statistics (Linux: the debugfs files under `/sys/kernel/debug/zswap/` and
//! the `zswpin`/`zswpout`/`zswpwb` vmstat events).
//!
//! Counters are atomics updated without a lock; the four that every store
//! and load change (`stored_pages`, `stored_incompressible_pages`,
//! `zswpin`, `zswpout`) are kept per CPU
//! ([`PerCpuCounters`]) and summed when read. A snapshot ([`ZswapStats`])
//! reads each one once, so counters of one snapshot may be from slightly
//! different instants while stores run. Every store failure bumps exactly one
//! `reject_*` counter.

use alloc::vec::Vec;

use kbase::sync::{AtomicU64, Ordering};

macro_rules! stats {
    ($( $(#[$doc:meta])* $name:ident, )*) => {
        /// A snapshot of zswap's counters. Field names are Linux's.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct ZswapStats {
            $( $(#[$doc])* pub $name: u64, )*
        }

        impl ZswapStats {
            /// Number of counters.
            pub const LEN: usize = [$(stringify!($name)),*].len();

            /// `(name, value)` pairs, in a fixed order.
            pub fn pairs(&self) -> [(&'static str, u64); Self::LEN] {
                [$((stringify!($name), self.$name)),*]
            }

            /// Iterates `(name, value)` pairs.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                self.pairs().into_iter()
            }

            /// The value of the counter called `name`.
            pub fn get(&self, name: &str) -> Option<u64> {
                self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
            }
        }

        /// The live counters.
        #[derive(Default)]
        pub(crate) struct Counters {
            $( pub(crate) $name: AtomicU64, )*
        }

        impl Counters {
            pub(crate) fn snapshot(&self) -> ZswapStats {
                ZswapStats { $( $name: self.$name.load(Ordering::Relaxed), )* }
            }
        }
    };
}

stats! {
    /// Entries in zswap (compressed and raw). Exact. Zero-filled pages are
    /// not here: the swap core keeps them in its zeromap (`swpout_zero`).
    stored_pages,
    /// Entries stored raw (`length == PAGE_SIZE`) because they did not
    /// compress. Exact.
    stored_incompressible_pages,
    /// Bytes of pool memory: the pools' pages times `PAGE_SIZE`. Exact at
    /// the time of the snapshot.
    pool_total_size,
    /// Times the global limit check found the pool at or above
    /// `max_pool_percent`. Exact.
    pool_limit_hit,
    /// Pages written back to the swap device. Exact.
    written_back_pages,
    /// Writeback attempts from an LRU walk that failed, for any reason
    /// (Linux's meaning since 6.8). Exact.
    reject_reclaim_fail,
    /// Store failures: the pool allocator failed (not `ENOSPC`), or a tree
    /// or LRU allocation failed. Exact.
    reject_alloc_fail,
    /// Store failures: the entry could not be allocated. Exact.
    reject_kmemcache_fail,
    /// Store failures: the page did not compress and could not be stored
    /// raw (cgroup writeback disabled), or the compressor failed. Exact.
    reject_compress_fail,
    /// Store failures: `ENOSPC` from the compressor or the pool (the object
    /// is larger than a pool object can be). Exact.
    reject_compress_poor,
    /// Loads and writebacks whose object did not decompress to exactly one
    /// page. Exact.
    decompress_fail,
    /// Store failures (not in Linux): zswap disabled, or the swap type has no
    /// tree. Exact.
    reject_disabled,
    /// Store failures (not in Linux): the cgroup is at `memory.zswap.max`
    /// and `shrink_memcg` could not write anything back. Exact.
    reject_memcg_limit,
    /// Store failures (not in Linux): the global pool limit or its
    /// hysteresis refused the store. Exact.
    reject_pool_limit,
    /// Successful loads, in pages (vmstat `zswpin`). Exact.
    zswpin,
    /// Successful stores, in pages (vmstat `zswpout`). Exact.
    zswpout,
    /// Successful writebacks, counted when the entry is erased, before the
    /// page is written (vmstat `zswpwb`). Exact.
    zswpwb,
    /// Writebacks skipped because someone else has the slot, in either of
    /// two cases: a folio is already in the swap cache (`EEXIST`: a swap-in
    /// or another shrinker owns it; stops the dynamic shrinker), or the slot
    /// is busy with no folio yet (`SWAP_HAS_CACHE` set between prepare and
    /// insert, the fault-plus-reclaim recursion among others; writeback
    /// gives `ENOMEM` and the walk goes on). A subset of
    /// `reject_reclaim_fail`. Exact.
    writeback_skip_exists,
    /// Pool pages given back by compaction (zsmalloc's `pages_compacted`):
    /// by the pool's compaction shrinker (`Zswap::pool_shrinker_scan`) and
    /// `Zswap::compact_pools`. Exact.
    pages_compacted,
}

impl Counters {
    pub(crate) fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    #[allow(dead_code)] // the fast path's counts are per CPU (PerCpuCounters)
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    #[allow(dead_code)] // as `add`
    pub(crate) fn dec(c: &AtomicU64) {
        c.fetch_sub(1, Ordering::Relaxed);
    }
    pub(crate) fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// The counters store and load change on every call, kept per CPU.
///
/// A single atomic that every CPU increments bounces its cache line between
/// them on each store and load; Linux keeps such event counts per CPU and
/// sums them when read. Here each CPU adds to its own cache-line-sized slot
/// (an entry freed on another CPU subtracts there: slots wrap, their sum is
/// exact), and [`PerCpuCounters::sum`] adds the slots up. A sum read while
/// stores and loads run is as exact as a read of one shared atomic would be
/// at some instant of the read; once they stop, it is exact.
///
/// `stored_pages` is not one slot: [`Hot::StoredPages`] counts stores up and
/// frees down, except the free of a successfully loaded entry, which
/// [`Hot::Zswpin`] (one per such load, and every such load frees its entry)
/// stands for; [`PerCpuCounters::stored_pages`] is their difference. A load
/// so changes one per-CPU counter, not two.
pub(crate) struct PerCpuCounters {
    cpus: Vec<CpuSlot>,
}

/// The per-CPU counters ([`PerCpuCounters`]), by index.
#[derive(Clone, Copy)]
pub(crate) enum Hot {
    StoredPages = 0,
    StoredIncompressiblePages = 1,
    Zswpin = 2,
    Zswpout = 3,
}

const NR_HOT: usize = 4;

/// One CPU's counters, alone in their cache lines (128 bytes: adjacent-line
/// prefetch pairs 64-byte lines on x86).
#[repr(align(128))]
struct CpuSlot([AtomicU64; NR_HOT]);

impl PerCpuCounters {
    /// Counters for `nr_cpus` CPUs (0 is treated as 1). `ENOMEM`.
    pub(crate) fn new(nr_cpus: usize) -> kbase::Result<PerCpuCounters> {
        let nr = nr_cpus.max(1);
        let mut cpus = Vec::new();
        cpus.try_reserve_exact(nr)?;
        for _ in 0..nr {
            cpus.push(CpuSlot(core::array::from_fn(|_| AtomicU64::new(0))));
        }
        Ok(PerCpuCounters { cpus })
    }

    #[inline]
    fn slot(&self, cpu: usize, c: Hot) -> Option<&AtomicU64> {
        // A CPU in range (always, but for a bogus number) costs no division.
        let s = match self.cpus.get(cpu) {
            Some(s) => s,
            None => self.cpus.get(cpu.checked_rem(self.cpus.len())?)?,
        };
        s.0.get(c as usize)
    }

    /// Adds `n` on CPU `cpu` (clamped into range).
    #[inline]
    pub(crate) fn add(&self, cpu: usize, c: Hot, n: u64) {
        if let Some(a) = self.slot(cpu, c) {
            a.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Subtracts `n` on CPU `cpu` (the slot may wrap; the sum does not).
    #[inline]
    pub(crate) fn sub(&self, cpu: usize, c: Hot, n: u64) {
        if let Some(a) = self.slot(cpu, c) {
            a.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// The sum over all CPUs.
    pub(crate) fn sum(&self, c: Hot) -> u64 {
        self.cpus.iter().fold(0u64, |acc, s| {
            acc.wrapping_add(s.0.get(c as usize).map_or(0, |a| a.load(Ordering::Relaxed)))
        })
    }

    /// Entries counted here: stores, less frees, less loads (whose frees
    /// are not in [`Hot::StoredPages`]). The loads are summed first: an
    /// entry's store is counted before its load is (the tree lock orders
    /// them), so a read racing with both sees the store of every load it
    /// sees, on a machine that keeps stores in order.
    pub(crate) fn stored_pages(&self) -> u64 {
        let loaded = self.sum(Hot::Zswpin);
        self.sum(Hot::StoredPages).wrapping_sub(loaded)
    }

    /// Adds the per-CPU sums into a snapshot.
    pub(crate) fn fold_into(&self, s: &mut ZswapStats) {
        s.stored_pages = s.stored_pages.wrapping_add(self.stored_pages());
        s.stored_incompressible_pages = s
            .stored_incompressible_pages
            .wrapping_add(self.sum(Hot::StoredIncompressiblePages));
        s.zswpin = s.zswpin.wrapping_add(self.sum(Hot::Zswpin));
        s.zswpout = s.zswpout.wrapping_add(self.sum(Hot::Zswpout));
    }
}
