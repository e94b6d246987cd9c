//! Swap devices: the per-slot swap map, cluster locks, slot allocation and
//! the cluster's slice of the swap cache.
//!
//! A device's slots are cut into clusters of [`SWAPFILE_CLUSTER`] slots. Each
//! cluster has its own spin lock guarding its slice of the swap map (one byte
//! per slot: swap count plus `SWAP_HAS_CACHE`), its slice of the zeromap
//! (one bit per slot: the slot's page was all zeros and nothing was
//! written), the swap-cgroup ids of its slots and its slice of the swap
//! cache. There is no device-wide lock on any
//! per-slot path; the only device-wide state written at run time is the
//! `inuse_pages` counter and the allocation hint.

use alloc::vec::Vec;

use kbase::sync::{AtomicBool, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use kbase::{Error, Gfp, KArc, Result};

use crate::folio::{Folio, FolioRef};

/// Slots per cluster (and per cluster lock): one PMD-sized folio.
pub const SWAPFILE_CLUSTER: usize = 512;

/// `SWAP_HAS_CACHE`: the slot is in, or being brought into, the swap cache.
pub(crate) const SWAP_HAS_CACHE: u8 = 0x40;
/// The swap-count part of a swap map byte.
pub(crate) const SWAP_COUNT_MASK: u8 = 0x3f;
/// The largest swap count (Linux's `SWAP_MAP_MAX`; no count continuation).
pub const SWAP_MAP_MAX: u8 = 0x3e;

/// Slots freed by one critical section, reported to the platform after the
/// lock is dropped. Bit `i` is slot `i` of the cluster.
#[derive(Default)]
pub(crate) struct FreedSlots {
    bits: [u64; SWAPFILE_CLUSTER / 64],
    count: usize,
}

impl FreedSlots {
    /// Marks slot `idx` (also used as a plain slot set by swapoff).
    pub(crate) fn mark(&mut self, idx: usize) {
        self.set(idx);
    }

    fn set(&mut self, idx: usize) {
        if let Some(w) = self.bits.get_mut(idx / 64) {
            let bit = 1 << (idx % 64);
            if *w & bit == 0 {
                *w |= bit;
                self.count += 1;
            }
        }
    }

    /// How many slots were freed.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// The cluster indices of the freed slots, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let words = if self.count == 0 { 0 } else { self.bits.len() };
        self.bits
            .iter()
            .take(words)
            .enumerate()
            .flat_map(|(w, &bits)| {
                let mut rest = bits;
                core::iter::from_fn(move || {
                    if rest == 0 {
                        return None;
                    }
                    let b = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    Some(w * 64 + b)
                })
            })
    }
}

/// What one cluster lock protects.
///
/// # Invariants
///
/// - `map[i]` is 0 for a free slot; otherwise its low six bits are the swap
///   count and [`SWAP_HAS_CACHE`] may be set. Only `map[..len]` is used.
/// - `inuse` is the number of non-zero `map` bytes.
/// - `cache` is empty or has `len` elements; `cache[i]` is `Some` only if
///   `map[i]` has `SWAP_HAS_CACHE`, and then holds a folio whose
///   `swap()` names the first slot of the folio's run containing `i`.
/// - `memcg[i]` is 0 for a free slot, and so is bit `i` of `zero`.
/// - `freeing` bit `i` is set while slot `i` is free (`map[i] == 0`) but its
///   [`crate::SwapPlatform::slot_freed`] hook has not finished: such a slot
///   still counts in `inuse` and is never handed out by the allocator, so
///   zswap's invalidation of the old slot cannot erase an entry stored for a
///   new owner of the same slot.
pub(crate) struct ClusterInner {
    map: [u8; SWAPFILE_CLUSTER],
    memcg: [u32; SWAPFILE_CLUSTER],
    freeing: [u64; SWAPFILE_CLUSTER / 64],
    /// The zeromap: bit `i` set when slot `i` holds a zero-filled page.
    zero: [u64; SWAPFILE_CLUSTER / 64],
    cache: Vec<Option<FolioRef>>,
    len: usize,
    inuse: usize,
}

/// One cluster: its lock and a lock-free hint of its free slots.
pub(crate) struct Cluster {
    inner: Mutex<ClusterInner>,
    /// `len - inuse`, updated under the lock, read without it to skip full
    /// clusters when allocating.
    nr_free: AtomicUsize,
}

/// One registered swap device (Linux's `swap_info_struct`).
pub(crate) struct SwapDevice {
    nr_pages: u64,
    clusters: Vec<Cluster>,
    inuse_pages: AtomicU64,
    /// Cluster where the next allocation starts looking.
    next_cluster: AtomicUsize,
    /// `SWP_WRITEOK`: slots may be allocated. Cleared while swapoff
    /// empties the device.
    writeok: AtomicBool,
}

impl ClusterInner {
    fn new(len: usize) -> ClusterInner {
        ClusterInner {
            map: [0; SWAPFILE_CLUSTER],
            memcg: [0; SWAPFILE_CLUSTER],
            freeing: [0; SWAPFILE_CLUSTER / 64],
            zero: [0; SWAPFILE_CLUSTER / 64],
            cache: Vec::new(),
            len,
            inuse: 0,
        }
    }

    /// The swap map byte of slot `idx` (0 past the end).
    pub(crate) fn map(&self, idx: usize) -> u8 {
        if idx < self.len {
            self.map.get(idx).copied().unwrap_or(0)
        } else {
            0
        }
    }

    /// The swap count of slot `idx`.
    pub(crate) fn count(&self, idx: usize) -> u32 {
        u32::from(self.map(idx) & SWAP_COUNT_MASK)
    }

    /// The folio cached at slot `idx`.
    pub(crate) fn cached(&self, idx: usize) -> Option<&FolioRef> {
        self.cache.get(idx).and_then(|s| s.as_ref())
    }

    fn set_map(&mut self, idx: usize, v: u8) {
        if let Some(m) = self.map.get_mut(idx) {
            *m = v;
        }
    }

    /// `map[idx]` changed from non-zero to zero: the slot is free, but it is
    /// not reusable until [`ClusterInner::finish_release`] runs after the
    /// platform's `slot_freed` hook.
    fn release(&mut self, idx: usize, freed: &mut FreedSlots) {
        if let Some(id) = self.memcg.get_mut(idx) {
            *id = 0;
        }
        // Freeing the slot clears its zeromap bit (`swap_range_free`).
        if let Some(w) = self.zero.get_mut(idx / 64) {
            *w &= !(1 << (idx % 64));
        }
        if let Some(w) = self.freeing.get_mut(idx / 64) {
            *w |= 1 << (idx % 64);
        }
        freed.set(idx);
    }

    /// The `slot_freed` hook of a slot released by [`ClusterInner::release`]
    /// has returned: the slot may be allocated again.
    pub(crate) fn finish_release(&mut self, idx: usize) {
        let Some(w) = self.freeing.get_mut(idx / 64) else {
            return;
        };
        let bit = 1 << (idx % 64);
        if *w & bit != 0 {
            *w &= !bit;
            self.inuse = self.inuse.saturating_sub(1);
        }
    }

    /// Is slot `idx` free and allocatable (not waiting for its hook)?
    fn allocatable(&self, idx: usize) -> bool {
        self.map(idx) == 0
            && self
                .freeing
                .get(idx / 64)
                .is_some_and(|w| w & (1 << (idx % 64)) == 0)
    }

    /// `swap_duplicate` on one slot.
    pub(crate) fn duplicate(&mut self, idx: usize) -> Result<()> {
        let m = self.map(idx);
        let count = m & SWAP_COUNT_MASK;
        if count == 0 && m & SWAP_HAS_CACHE == 0 {
            return Err(Error::ENOENT);
        }
        if count >= SWAP_MAP_MAX {
            // Linux chains a count-continuation page here; we refuse.
            return Err(Error::ENOMEM);
        }
        self.set_map(idx, m + 1);
        Ok(())
    }

    /// `swap_free` on one slot: drops one count.
    pub(crate) fn put_count(&mut self, idx: usize, freed: &mut FreedSlots) -> Result<()> {
        let m = self.map(idx);
        if m & SWAP_COUNT_MASK == 0 {
            return Err(Error::ENOENT);
        }
        let m = m - 1;
        self.set_map(idx, m);
        if m == 0 {
            self.release(idx, freed);
        }
        Ok(())
    }

    /// `swapcache_prepare` on one slot: sets `SWAP_HAS_CACHE`.
    pub(crate) fn prepare(&mut self, idx: usize) -> Result<()> {
        let m = self.map(idx);
        if m == 0 {
            return Err(Error::ENOENT);
        }
        if m & SWAP_HAS_CACHE != 0 {
            return Err(Error::EEXIST);
        }
        self.set_map(idx, m | SWAP_HAS_CACHE);
        Ok(())
    }

    /// Clears `SWAP_HAS_CACHE` of slot `idx` (`put_swap_folio`), freeing the
    /// slot if its count is 0. A slot that still maps a folio keeps the bit:
    /// the folio leaves through [`ClusterInner::delete_cache`].
    pub(crate) fn clear_cache(&mut self, idx: usize, freed: &mut FreedSlots) {
        let m = self.map(idx);
        if m & SWAP_HAS_CACHE == 0 || self.cached(idx).is_some() {
            return;
        }
        let m = m & !SWAP_HAS_CACHE;
        self.set_map(idx, m);
        if m == 0 {
            self.release(idx, freed);
        }
    }

    /// The number of slots of the cluster.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Has the cache table room, so [`ClusterInner::insert_cache`] cannot
    /// allocate?
    pub(crate) fn cache_ready(&self) -> bool {
        self.cache.len() == self.len
    }

    /// Installs a cache table allocated outside the lock, if none is there;
    /// hands it back otherwise so the caller frees it after unlocking.
    pub(crate) fn install_cache(
        &mut self,
        table: Vec<Option<FolioRef>>,
    ) -> Option<Vec<Option<FolioRef>>> {
        if self.cache_ready() || table.len() != self.len {
            return Some(table);
        }
        self.cache = table;
        None
    }

    /// Checks that `folio` may enter the cache at `idx..idx + nr`.
    pub(crate) fn can_insert(&self, idx: usize, nr: usize) -> Result<()> {
        let end = idx.checked_add(nr).ok_or(Error::EINVAL)?;
        if end > self.len {
            return Err(Error::EINVAL);
        }
        for i in idx..end {
            let m = self.map(i);
            if m == 0 {
                return Err(Error::ENOENT);
            }
            if m & SWAP_HAS_CACHE == 0 {
                return Err(Error::EINVAL);
            }
            if self.cached(i).is_some() {
                return Err(Error::EEXIST);
            }
        }
        if !self.cache_ready() {
            return Err(Error::ENOMEM);
        }
        Ok(())
    }

    /// Maps `idx..idx + nr` to `folio`. Call after [`Self::can_insert`].
    pub(crate) fn insert_cache(&mut self, idx: usize, nr: usize, folio: &FolioRef) {
        for i in idx..idx.saturating_add(nr) {
            if let Some(s) = self.cache.get_mut(i) {
                *s = Some(folio.clone());
            }
        }
    }

    /// Unmaps `folio` from `idx..idx + nr` and clears `SWAP_HAS_CACHE` there,
    /// freeing slots whose count is 0. Slots not mapping `folio` are left
    /// alone.
    pub(crate) fn delete_cache(
        &mut self,
        idx: usize,
        nr: usize,
        folio: &Folio,
        freed: &mut FreedSlots,
    ) {
        for i in idx..idx.saturating_add(nr) {
            let ours = self
                .cached(i)
                .is_some_and(|f| core::ptr::eq(KArc::as_ptr(f), folio));
            if !ours {
                continue;
            }
            if let Some(s) = self.cache.get_mut(i) {
                // Not the last reference: the caller's `&Folio` borrows one.
                *s = None;
            }
            self.clear_cache(i, freed);
        }
    }

    /// Takes the cache table away when the cluster has become entirely free
    /// (to be dropped after unlocking).
    pub(crate) fn take_idle_cache(&mut self) -> Vec<Option<FolioRef>> {
        if self.inuse == 0 {
            core::mem::take(&mut self.cache)
        } else {
            Vec::new()
        }
    }

    /// Finds `nr` free slots starting at a multiple of `align` and gives each
    /// the map byte `initial`. Returns the first index.
    fn alloc_run(&mut self, nr: usize, align: usize, initial: u8) -> Option<usize> {
        if nr == 0 || self.len.saturating_sub(self.inuse) < nr {
            return None;
        }
        let mut start = 0;
        while start + nr <= self.len {
            let free = (start..start + nr).all(|i| self.allocatable(i));
            if free {
                for i in start..start + nr {
                    self.set_map(i, initial);
                    if let Some(id) = self.memcg.get_mut(i) {
                        *id = 0;
                    }
                }
                self.inuse += nr;
                return Some(start);
            }
            start += align;
        }
        None
    }

    /// Records `memcg_id` for `idx..idx + nr`; every slot must be in use.
    pub(crate) fn record_memcg(&mut self, idx: usize, nr: usize, memcg_id: u32) -> Result<()> {
        let end = idx.checked_add(nr).ok_or(Error::EINVAL)?;
        if end > self.len || (idx..end).any(|i| self.map(i) == 0) {
            return Err(Error::ENOENT);
        }
        for i in idx..end {
            if let Some(id) = self.memcg.get_mut(i) {
                *id = memcg_id;
            }
        }
        Ok(())
    }

    /// Sets (`on`) or clears the zeromap bits of `idx..idx + nr`; every slot
    /// must be in use (`ENOENT` otherwise, nothing changed).
    pub(crate) fn set_zero(&mut self, idx: usize, nr: usize, on: bool) -> Result<()> {
        let end = idx.checked_add(nr).ok_or(Error::EINVAL)?;
        if end > self.len || (idx..end).any(|i| self.map(i) == 0) {
            return Err(Error::ENOENT);
        }
        for i in idx..end {
            if let Some(w) = self.zero.get_mut(i / 64) {
                let bit = 1 << (i % 64);
                if on {
                    *w |= bit;
                } else {
                    *w &= !bit;
                }
            }
        }
        Ok(())
    }

    /// How many of `idx..idx + nr` have their zeromap bit set.
    pub(crate) fn zero_count(&self, idx: usize, nr: usize) -> usize {
        let end = idx.saturating_add(nr).min(self.len);
        (idx..end)
            .filter(|&i| {
                self.zero
                    .get(i / 64)
                    .is_some_and(|w| w & (1 << (i % 64)) != 0)
            })
            .count()
    }

    /// The memcg id recorded for slot `idx` (0: none).
    pub(crate) fn memcg(&self, idx: usize) -> u32 {
        if idx < self.len {
            self.memcg.get(idx).copied().unwrap_or(0)
        } else {
            0
        }
    }
}

impl Cluster {
    /// Takes the cluster lock.
    pub(crate) fn lock(&self) -> ClusterGuard<'_> {
        ClusterGuard {
            guard: self.inner.lock(),
            nr_free: &self.nr_free,
        }
    }
}

/// A held cluster lock. Dropping it publishes the free-slot hint.
pub(crate) struct ClusterGuard<'a> {
    guard: MutexGuard<'a, ClusterInner>,
    nr_free: &'a AtomicUsize,
}

impl core::ops::Deref for ClusterGuard<'_> {
    type Target = ClusterInner;
    fn deref(&self) -> &ClusterInner {
        &self.guard
    }
}

impl core::ops::DerefMut for ClusterGuard<'_> {
    fn deref_mut(&mut self) -> &mut ClusterInner {
        &mut self.guard
    }
}

impl Drop for ClusterGuard<'_> {
    fn drop(&mut self) {
        let free = self.guard.len.saturating_sub(self.guard.inuse);
        self.nr_free.store(free, Ordering::Relaxed);
    }
}

impl SwapDevice {
    /// Builds a device of `nr_pages` slots; every array is allocated here,
    /// fallibly.
    pub(crate) fn new(nr_pages: u64, gfp: Gfp) -> Result<SwapDevice> {
        if nr_pages == 0 || nr_pages > crate::entry::MAX_SWAP_OFFSET {
            return Err(Error::EINVAL);
        }
        let nr = usize::try_from(nr_pages).map_err(|_| Error::ENOMEM)?;
        let nr_clusters = nr.div_ceil(SWAPFILE_CLUSTER);
        let mut clusters = Vec::new();
        clusters.try_reserve_exact(nr_clusters)?;
        for c in 0..nr_clusters {
            let len = (nr - c * SWAPFILE_CLUSTER).min(SWAPFILE_CLUSTER);
            clusters.push(Cluster {
                inner: Mutex::new(ClusterInner::new(len)),
                nr_free: AtomicUsize::new(len),
            });
        }
        let _ = gfp;
        Ok(SwapDevice {
            nr_pages,
            clusters,
            inuse_pages: AtomicU64::new(0),
            next_cluster: AtomicUsize::new(0),
            writeok: AtomicBool::new(true),
        })
    }

    pub(crate) fn nr_pages(&self) -> u64 {
        self.nr_pages
    }

    pub(crate) fn inuse_pages(&self) -> u64 {
        self.inuse_pages.load(Ordering::Acquire)
    }

    /// Allows (`true`) or stops new slot allocations on this device.
    pub(crate) fn set_writeok(&self, on: bool) {
        self.writeok.store(on, Ordering::Release);
    }

    /// The clusters (swapoff walks them).
    pub(crate) fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// The cluster holding `offset` and the slot's index in it; `ENOENT`
    /// past the end of the device.
    pub(crate) fn locate(&self, offset: u64) -> Result<(&Cluster, usize)> {
        if offset >= self.nr_pages {
            return Err(Error::ENOENT);
        }
        let off = usize::try_from(offset).map_err(|_| Error::ENOENT)?;
        let cluster = self
            .clusters
            .get(off / SWAPFILE_CLUSTER)
            .ok_or(Error::ENOENT)?;
        Ok((cluster, off % SWAPFILE_CLUSTER))
    }

    /// Accounts slots freed in a critical section that just ended.
    pub(crate) fn account_freed(&self, freed: &FreedSlots) {
        let n = freed.count() as u64;
        if n != 0 {
            self.inuse_pages.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Allocates `nr` contiguous slots (naturally aligned when `nr` is a power
    /// of two), each with map byte `initial`. Returns the first offset.
    pub(crate) fn alloc_slots(&self, nr: usize, initial: u8) -> Option<u64> {
        let n = self.clusters.len();
        if n == 0 || nr == 0 || nr > SWAPFILE_CLUSTER || !self.writeok.load(Ordering::Acquire) {
            return None;
        }
        let align = if nr.is_power_of_two() { nr } else { 1 };
        let hint = self.next_cluster.load(Ordering::Relaxed) % n;
        for step in 0..n {
            let ci = (hint + step) % n;
            let Some(cluster) = self.clusters.get(ci) else {
                continue;
            };
            if cluster.nr_free.load(Ordering::Relaxed) < nr {
                continue;
            }
            let mut c = cluster.lock();
            if let Some(idx) = c.alloc_run(nr, align, initial) {
                if c.len == c.inuse {
                    self.next_cluster.store((ci + 1) % n, Ordering::Relaxed);
                } else if step != 0 {
                    self.next_cluster.store(ci, Ordering::Relaxed);
                }
                drop(c);
                self.inuse_pages.fetch_add(nr as u64, Ordering::AcqRel);
                return Some((ci * SWAPFILE_CLUSTER + idx) as u64);
            }
        }
        None
    }
}
