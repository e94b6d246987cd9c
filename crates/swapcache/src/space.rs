//! `SwapSpace`: the registered swap devices, their slots and the swap cache,
//! and `read_swap_cache_async`.

use alloc::vec::Vec;

use kbase::sync::{AtomicU64, Ordering, RwLock};
use kbase::{Error, Gfp, KArc, PAGE_SIZE, PageAllocator, Result, is_same_filled};

use crate::entry::{MAX_SWAPFILES, SwpEntry};
use crate::folio::{Folio, FolioRef};
use crate::swapfile::{
    ClusterGuard, FreedSlots, SWAP_COUNT_MASK, SWAP_HAS_CACHE, SWAPFILE_CLUSTER, SwapDevice,
};

/// What the platform (kernel) provides to the swap core.
pub trait SwapPlatform: Send + Sync {
    /// Where folio pages come from (kept by each folio to free its pages).
    fn page_allocator(&self) -> &'static dyn PageAllocator;

    /// `mem_cgroup_swapin_charge_folio()`: charges a newly allocated swap-in
    /// folio for `entry` (to the memcg recorded for the slot, see
    /// [`SwapSpace::lookup_swap_cgroup_id`]; the implementation calls
    /// [`Folio::set_memcg_id`]).
    ///
    /// May run reclaim, and reclaim may re-enter zswap writeback and this
    /// crate, even for the same `entry`. Called with no lock of this crate
    /// held, while `entry` has `SWAP_HAS_CACHE` set by the caller.
    fn charge_swapin(&self, folio: &Folio, entry: SwpEntry, gfp: Gfp) -> Result<()>;

    /// The slot's swap count and `SWAP_HAS_CACHE` both reached zero: the
    /// slot is free (zswap invalidates its entry here; Linux:
    /// `zswap_invalidate` from `swap_entry_free`). Called exactly once per
    /// freeing, with no lock of this crate held.
    fn slot_freed(&self, entry: SwpEntry);

    /// One wait of [`SwapSpace::read_swap_cache_async`]'s `EEXIST` retry
    /// loop (Linux: `schedule_timeout_uninterruptible(1)`); `attempt` counts
    /// from 0. A plain implementation relaxes the CPU
    /// ([`kbase::sync::cpu_relax`]) and returns `Ok`. A platform that detects
    /// a recursive wait returns `Err(EDEADLK)`, which is handed back to the
    /// caller. Called with no lock of this crate held.
    fn swapcache_wait(&self, entry: SwpEntry, attempt: u32) -> Result<()>;

    /// `count_memcg_folio_events()` for the swap core's own events: `nr`
    /// pages of `folio` (its memcg id is set) were swapped out to, or in
    /// from, the zeromap. The platform adds them to the folio's cgroup
    /// (`memory.stat` `swpout_zero` / `swpin_zero`). Called with no lock of
    /// this crate held. The default does nothing.
    fn count_event(&self, folio: &Folio, ev: SwapEvent, nr: u64) {
        let _ = (folio, ev, nr);
    }
}

/// The swap core's vmstat events, reported per folio through
/// [`SwapPlatform::count_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwapEvent {
    /// `SWPIN_ZERO`: a zero-filled page read back from the zeromap.
    SwpinZero,
    /// `SWPOUT_ZERO`: a zero-filled page swapped out to the zeromap.
    SwpoutZero,
}

/// A snapshot of the swap core's global counters (Linux's `/proc/vmstat`
/// `swpin_zero` and `swpout_zero`). Exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwapStats {
    /// Zero-filled pages swapped in from the zeromap.
    pub swpin_zero: u64,
    /// Zero-filled pages swapped out to the zeromap (never reaching zswap
    /// or the device).
    pub swpout_zero: u64,
}

/// Does every page of `folio` hold only zero bytes (`is_folio_zero_filled`)?
fn folio_zero_filled(folio: &Folio) -> bool {
    (0..folio.nr_pages()).all(|i| {
        folio
            .with_page(i, |p: &[u8; PAGE_SIZE]| is_same_filled(p) == Some(0))
            .unwrap_or(false)
    })
}

/// The device table: index = swap type.
type DeviceTable = [Option<KArc<SwapDevice>>; MAX_SWAPFILES as usize];

/// All swap devices and the swap cache.
///
/// # Invariants
///
/// A device leaves the table only while none of its slots is in use, and
/// slots are allocated only under the table's read lock, so an entry handed
/// out by [`SwapSpace::get_swap_pages`] names a registered device until its
/// last reference is gone.
pub struct SwapSpace<P: SwapPlatform> {
    platform: P,
    devices: RwLock<DeviceTable>,
    swpin_zero: AtomicU64,
    swpout_zero: AtomicU64,
}

impl<P: SwapPlatform> SwapSpace<P> {
    /// An empty swap space (no device).
    pub fn new(platform: P) -> SwapSpace<P> {
        SwapSpace {
            platform,
            devices: RwLock::new(core::array::from_fn(|_| None)),
            swpin_zero: AtomicU64::new(0),
            swpout_zero: AtomicU64::new(0),
        }
    }

    /// The platform this space was built with.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    // ---------------------------------------------------------------------
    // Devices
    // ---------------------------------------------------------------------

    /// Registers a swap device of `nr_pages` slots and returns its type.
    ///
    /// Every per-device array is allocated here, fallibly, before the device
    /// table is locked. `EINVAL` for 0 pages or more than an entry can
    /// address, `ENOMEM` if the arrays cannot be allocated, `ENOSPC` if all
    /// [`MAX_SWAPFILES`] types are taken.
    pub fn swapon(&self, nr_pages: u64, gfp: Gfp) -> Result<u32> {
        let dev = KArc::try_new(SwapDevice::new(nr_pages, gfp)?, gfp)?;
        let mut devs = self.devices.write();
        let (t, slot) = devs
            .iter_mut()
            .enumerate()
            .find(|(_, d)| d.is_none())
            .ok_or(Error::ENOSPC)?;
        *slot = Some(dev);
        // t < MAX_SWAPFILES = 32.
        Ok(t as u32)
    }

    /// `try_to_unuse`, the heart of swapoff: empties device `swp_type`.
    ///
    /// Stops new allocations on the device (`SWP_WRITEOK` cleared), then
    /// calls `unuse` for every slot with a swap count: the platform faults
    /// the page back into each owner that references the slot (from the
    /// swap cache, zswap, the zeromap or the device, as a fault does) and
    /// drops those references ([`SwapSpace::swap_free`]). Folios left in the
    /// swap cache for slots whose count reached zero are then deleted from
    /// it (`folio_free_swap`; a folio locked or under writeback is retried).
    /// Every freed slot runs [`SwapPlatform::slot_freed`], so zswap's trees
    /// are empty once this returns `Ok`: then `Zswap::swapoff` and
    /// [`SwapSpace::swapoff`] finish the job.
    ///
    /// `unuse` runs with no lock of this crate held and may call anything
    /// here. An error from it stops the walk and is returned; `EBUSY` if
    /// slots are still in use after a few passes (an owner `unuse` did not
    /// release, or a slot held by another task). On any error the device
    /// takes allocations again and nothing stored is lost. `EINVAL` for an
    /// unknown type.
    pub fn try_to_unuse(
        &self,
        swp_type: u32,
        unuse: &mut dyn FnMut(SwpEntry) -> Result<()>,
    ) -> Result<()> {
        let dev = self.device(swp_type)?;
        dev.set_writeok(false);
        let r = self.unuse_device(&dev, swp_type, unuse);
        if r.is_err() {
            dev.set_writeok(true);
        }
        r
    }

    fn unuse_device(
        &self,
        dev: &SwapDevice,
        swp_type: u32,
        unuse: &mut dyn FnMut(SwpEntry) -> Result<()>,
    ) -> Result<()> {
        const PASSES: usize = 4;
        for _ in 0..PASSES {
            if dev.inuse_pages() == 0 {
                return Ok(());
            }
            for (ci, cluster) in dev.clusters().iter().enumerate() {
                // Snapshot the cluster's busy slots; work on them unlocked.
                let mut counted = FreedSlots::default();
                let mut busy = FreedSlots::default();
                {
                    let c = cluster.lock();
                    for i in 0..c.len() {
                        let m = c.map(i);
                        if m & SWAP_COUNT_MASK != 0 {
                            counted.mark(i);
                        }
                        if m != 0 {
                            busy.mark(i);
                        }
                    }
                }
                let base = (ci * SWAPFILE_CLUSTER) as u64;
                for i in counted.iter() {
                    let e = SwpEntry::new(swp_type, base + i as u64)?;
                    if self.swap_count(e).unwrap_or(0) != 0 {
                        unuse(e)?;
                    }
                }
                for i in busy.iter() {
                    let e = SwpEntry::new(swp_type, base + i as u64)?;
                    self.free_unused_cache(e);
                }
            }
            kbase::sync::cpu_relax();
        }
        if dev.inuse_pages() == 0 {
            Ok(())
        } else {
            Err(Error::EBUSY)
        }
    }

    /// `folio_free_swap` for the folio cached at `entry`, if every slot of it
    /// has a zero swap count and the folio can be locked at once and is not
    /// under writeback.
    fn free_unused_cache(&self, entry: SwpEntry) {
        if self.swap_count(entry).unwrap_or(1) != 0 {
            return;
        }
        let Some(folio) = self.lookup(entry) else {
            return;
        };
        if !folio.trylock() {
            return;
        }
        let unused = folio.swap().is_some_and(|first| {
            (0..folio.nr_pages() as u64).all(|i| {
                first
                    .checked_add(i)
                    .is_ok_and(|e| self.swap_count(e) == Ok(0))
            })
        });
        if unused && !folio.test_writeback() {
            self.delete_from_swap_cache(&folio);
        }
        folio.unlock();
    }

    /// Unregisters swap device `swp_type` and frees its arrays.
    ///
    /// `EINVAL` for an unknown type; `EBUSY` while any slot is in use (a
    /// swap count or `SWAP_HAS_CACHE`): swapoff never drops stored data.
    /// Empty the device with [`SwapSpace::try_to_unuse`] first.
    pub fn swapoff(&self, swp_type: u32) -> Result<()> {
        let dev = {
            let mut devs = self.devices.write();
            let slot = devs.get_mut(swp_type as usize).ok_or(Error::EINVAL)?;
            let dev = slot.as_ref().ok_or(Error::EINVAL)?;
            if dev.inuse_pages() != 0 {
                return Err(Error::EBUSY);
            }
            slot.take()
        };
        // Freed outside the table lock (or later, by a racing reader's ref).
        drop(dev);
        Ok(())
    }

    /// The size of device `swp_type` in slots; `EINVAL` if unknown.
    pub fn nr_pages(&self, swp_type: u32) -> Result<u64> {
        Ok(self.device(swp_type)?.nr_pages())
    }

    /// Slots of device `swp_type` in use (count or `SWAP_HAS_CACHE`);
    /// `EINVAL` if unknown.
    pub fn inuse_pages(&self, swp_type: u32) -> Result<u64> {
        Ok(self.device(swp_type)?.inuse_pages())
    }

    // ---------------------------------------------------------------------
    // Slots
    // ---------------------------------------------------------------------

    /// Allocates `nr` contiguous slots on one device (naturally aligned when
    /// `nr` is a power of two, always inside one cluster), each with swap
    /// count 1, and returns the first.
    ///
    /// Devices are tried in type order. `EINVAL` if `nr` is 0 or above
    /// [`SWAPFILE_CLUSTER`]; `ENOSPC` if no device has such a run free.
    pub fn get_swap_pages(&self, nr: usize, gfp: Gfp) -> Result<SwpEntry> {
        let _ = gfp;
        self.alloc_entry(nr, 1)
    }

    /// `swap_duplicate`: one more reference (page-table entry) to the slot.
    ///
    /// `ENOENT` for a free slot or past the device end, `EINVAL` for an
    /// unknown type, `ENOMEM` at [`crate::SWAP_MAP_MAX`] references (Linux
    /// would chain a count-continuation page).
    pub fn swap_duplicate(&self, entry: SwpEntry) -> Result<()> {
        self.with_slot(entry, |c, idx, _| c.duplicate(idx))
    }

    /// `swap_free`: drops one reference. When the count reaches zero and
    /// `SWAP_HAS_CACHE` is clear, the slot is freed and
    /// [`SwapPlatform::slot_freed`] runs (after the locks are dropped).
    ///
    /// `ENOENT` if the count is already zero (a double free changes
    /// nothing), `EINVAL` for an unknown type.
    pub fn swap_free(&self, entry: SwpEntry) -> Result<()> {
        self.with_slot(entry, |c, idx, freed| c.put_count(idx, freed))
    }

    /// `free_swap_and_cache`: [`SwapSpace::swap_free`], then, if that was the
    /// last reference and a folio sits in the swap cache for the slot, drops
    /// it from the cache when it can be locked at once and is not under
    /// writeback (Linux's `__try_to_reclaim_swap`).
    pub fn free_swap_and_cache(&self, entry: SwpEntry) -> Result<()> {
        self.swap_free(entry)?;
        self.free_unused_cache(entry);
        Ok(())
    }

    /// The slot's swap count (without `SWAP_HAS_CACHE`). `ENOENT` past the
    /// device end, `EINVAL` for an unknown type.
    pub fn swap_count(&self, entry: SwpEntry) -> Result<u32> {
        self.with_slot(entry, |c, idx, _| Ok(c.count(idx)))
    }

    /// Is `SWAP_HAS_CACHE` set for the slot?
    pub fn has_cache(&self, entry: SwpEntry) -> Result<bool> {
        self.with_slot(entry, |c, idx, _| Ok(c.map(idx) & SWAP_HAS_CACHE != 0))
    }

    /// `swapcache_prepare`: sets `SWAP_HAS_CACHE`, making the caller the one
    /// task that may bring the slot into the swap cache.
    ///
    /// `EEXIST` if the bit is already set (someone else owns the slot's cache
    /// state), `ENOENT` if the slot is free or past the device end, `EINVAL`
    /// for an unknown type.
    pub fn swapcache_prepare(&self, entry: SwpEntry) -> Result<()> {
        self.with_slot(entry, |c, idx, _| c.prepare(idx))
    }

    /// `put_swap_folio` for one slot: clears `SWAP_HAS_CACHE` set by
    /// [`SwapSpace::swapcache_prepare`], freeing the slot (and running
    /// [`SwapPlatform::slot_freed`]) if its count is zero.
    ///
    /// A slot that still maps a folio in the swap cache is left alone: that
    /// folio leaves through [`SwapSpace::delete_from_swap_cache`]. Bad input
    /// is ignored.
    pub fn swapcache_clear(&self, entry: SwpEntry) {
        let _ = self.with_slot(entry, |c, idx, freed| {
            c.clear_cache(idx, freed);
            Ok(())
        });
    }

    // ---------------------------------------------------------------------
    // Swap cache
    // ---------------------------------------------------------------------

    /// The folio in the swap cache for `entry` (any page of it), if any.
    /// Bad input gives `None`.
    pub fn lookup(&self, entry: SwpEntry) -> Option<FolioRef> {
        self.with_slot(entry, |c, idx, _| Ok(c.cached(idx).cloned()))
            .ok()
            .flatten()
    }

    /// `add_to_swap_cache`: maps the folio's `nr_pages` slots starting at
    /// `entry` to it and sets `PG_swapcache`.
    ///
    /// The caller holds `SWAP_HAS_CACHE` on every slot (from
    /// [`SwapSpace::swapcache_prepare`] or [`SwapSpace::add_to_swap`]) and
    /// normally the folio lock. The cluster's cache table is allocated, if
    /// needed, with `gfp` before the cluster lock is taken.
    ///
    /// `EINVAL`: unknown type, the folio is already in the swap cache, the
    /// run leaves its cluster, or a slot lacks `SWAP_HAS_CACHE`. `ENOENT`:
    /// past the device end or a free slot. `EEXIST`: a slot already maps a
    /// folio. `ENOMEM`: the table could not be allocated.
    pub fn add_to_swap_cache(&self, folio: &FolioRef, entry: SwpEntry, gfp: Gfp) -> Result<()> {
        if folio.test_swapcache() {
            return Err(Error::EINVAL);
        }
        let nr = folio.nr_pages();
        let dev = self.device(entry.swp_type())?;
        let (cluster, idx) = dev.locate(entry.offset())?;
        if idx.saturating_add(nr) > SWAPFILE_CLUSTER {
            return Err(Error::EINVAL);
        }
        let mut c = cluster.lock();
        let mut spare = None;
        if !c.cache_ready() {
            // Allocate the cluster's table with the lock dropped, then
            // install it unless someone else did meanwhile (xas_nomem style).
            let len = c.len();
            drop(c);
            let table = alloc_cache_table(len, gfp)?;
            c = cluster.lock();
            spare = c.install_cache(table);
        }
        let r = c.can_insert(idx, nr);
        if r.is_ok() {
            c.insert_cache(idx, nr, folio);
            folio.set_swapcache(entry);
        }
        drop(c);
        drop(spare);
        r
    }

    /// `delete_from_swap_cache`: unmaps the folio from the swap cache,
    /// clears `PG_swapcache` and then `SWAP_HAS_CACHE` of its slots, in one
    /// critical section. Slots whose count is zero are freed
    /// ([`SwapPlatform::slot_freed`] runs for each, after the lock is
    /// dropped). A folio not in the swap cache is left alone.
    pub fn delete_from_swap_cache(&self, folio: &Folio) {
        let Some(entry) = folio.swap() else {
            return;
        };
        let nr = folio.nr_pages();
        let _ = self.with_slot(entry, |c, idx, freed| {
            c.delete_cache(idx, nr, folio, freed);
            folio.clear_swapcache();
            Ok(())
        });
    }

    /// `add_to_swap` (swap-out): allocates `nr_pages` contiguous slots for
    /// the folio with swap count 1 and `SWAP_HAS_CACHE`, and inserts the
    /// folio into the swap cache. Returns the first slot.
    ///
    /// The count of 1 is the reference the caller's page-table entry will
    /// hold (Linux takes it in `try_to_unmap`): the caller drops it with
    /// [`SwapSpace::swap_free`]. `EINVAL` if the folio is already in the swap
    /// cache, `ENOSPC` if no device has room, `ENOMEM` if the cache table
    /// cannot be allocated (the slots are freed again).
    pub fn add_to_swap(&self, folio: &FolioRef, gfp: Gfp) -> Result<SwpEntry> {
        if folio.test_swapcache() {
            return Err(Error::EINVAL);
        }
        let nr = folio.nr_pages();
        let entry = self.alloc_entry(nr, 1 | SWAP_HAS_CACHE)?;
        if let Err(e) = self.add_to_swap_cache(folio, entry, gfp) {
            for i in 0..nr as u64 {
                if let Ok(e) = entry.checked_add(i) {
                    let _ = self.with_slot(e, |c, idx, freed| {
                        c.clear_cache(idx, freed);
                        c.put_count(idx, freed)
                    });
                }
            }
            return Err(e);
        }
        Ok(entry)
    }

    /// `__read_swap_cache_async`: the swap-cache folio for `entry`, bringing
    /// one into the cache if needed.
    ///
    /// Returns `(folio, false)` on a swap cache hit (a new reference; not
    /// locked by this call), or `(folio, true)` for a newly allocated folio,
    /// already charged and inserted, **locked** and not uptodate: the caller
    /// fills it (zswap load or a device read) and unlocks it.
    ///
    /// Errors: `EEXIST` with `skip_if_exists` when another task holds
    /// `SWAP_HAS_CACHE` without a folio in the cache yet; `ENOENT` when the
    /// slot is free or past the device end; `EINVAL` for an unknown type;
    /// `ENOMEM` when the folio allocation or the charge failed
    /// (`SWAP_HAS_CACHE` is cleared again, freeing the slot if its count
    /// dropped to zero meanwhile); whatever [`SwapPlatform::swapcache_wait`]
    /// returns (`EDEADLK`).
    ///
    /// # Why `skip_if_exists` exists
    ///
    /// Setting `SWAP_HAS_CACHE` and inserting the folio are two steps, with
    /// the memcg charge between them, and no lock is held across the charge
    /// (it may reclaim). Picture a fault on slot X: it sets X's
    /// `SWAP_HAS_CACHE`, then charges its new folio; the charge pushes the
    /// memcg over `memory.max` and runs reclaim; reclaim runs the zswap
    /// shrinker; the shrinker picks X's zswap entry (it is still on the LRU)
    /// and writes it back, which calls `read_swap_cache_async(X)`. That
    /// inner call finds no folio in the cache and `SWAP_HAS_CACHE` set, so it
    /// would wait for the owner to insert its folio, but the owner is its
    /// own caller, further up the same stack, and can only continue once the
    /// inner call returns: it would wait forever. Writeback therefore passes
    /// `skip_if_exists = true` and gets `EEXIST` at once; the shrinker
    /// skips X and the fault completes.
    ///
    /// The inner call cannot tell its own caller's bit from another task's,
    /// so it skips *every* slot that is busy this way, including one merely
    /// being swapped in by another task, where waiting would have worked.
    /// That is fine: a page being swapped in right now is about to be hot,
    /// a poor writeback choice anyway, and the shrinker moves on to colder
    /// entries.
    pub fn read_swap_cache_async(
        &self,
        entry: SwpEntry,
        gfp: Gfp,
        skip_if_exists: bool,
    ) -> Result<(FolioRef, bool)> {
        // Keep the device alive across the hooks (no table lock held there).
        let dev = self.device(entry.swp_type())?;
        let (cluster, idx) = dev.locate(entry.offset())?;
        let mut new_folio: Option<FolioRef> = None;
        let mut attempt: u32 = 0;
        let folio = loop {
            {
                let c = cluster.lock();
                if let Some(f) = c.cached(idx) {
                    return Ok((f.clone(), false));
                }
                // A free slot (or one with only SWAP_HAS_CACHE left, about to
                // be freed) has nothing to read: readahead skips it.
                if c.count(idx) == 0 {
                    return Err(Error::ENOENT);
                }
            }
            // Allocate before taking SWAP_HAS_CACHE, so the bit is never
            // held across an allocation that may reclaim.
            if new_folio.is_none() {
                let f = Folio::alloc(self.platform.page_allocator(), 1, gfp)
                    .map_err(|_| Error::ENOMEM)?;
                new_folio = Some(f);
            }
            match cluster.lock().prepare(idx) {
                Ok(()) => {
                    if let Some(f) = new_folio.take() {
                        break f;
                    }
                    // Unreachable: allocated above. Undo and fail cleanly.
                    self.swapcache_clear(entry);
                    return Err(Error::ENOMEM);
                }
                // Busy: another task is between swapcache_prepare and
                // add_to_swap_cache (or deleting its folio). See above for
                // why writeback must not wait here.
                Err(Error::EEXIST) if skip_if_exists => return Err(Error::EEXIST),
                Err(Error::EEXIST) => {}
                Err(e) => return Err(e),
            }
            self.platform.swapcache_wait(entry, attempt)?;
            attempt = attempt.saturating_add(1);
        };
        // We own SWAP_HAS_CACHE. The folio is private: lock it before anyone
        // can find it.
        folio.lock();
        // No lock of this crate is held: the charge may reclaim and re-enter
        // read_swap_cache_async, for this very entry too (it gets EEXIST with
        // skip_if_exists).
        if self.platform.charge_swapin(&folio, entry, gfp).is_err() {
            folio.unlock();
            self.swapcache_clear(entry);
            return Err(Error::ENOMEM);
        }
        if let Err(e) = self.add_to_swap_cache(&folio, entry, gfp) {
            folio.unlock();
            self.swapcache_clear(entry);
            return Err(e);
        }
        Ok((folio, true))
    }

    // ---------------------------------------------------------------------
    // The zeromap (Linux 6.12+: zero pages never reach zswap or the device)
    // ---------------------------------------------------------------------

    /// The zero-page step of `swap_writeout`: if every page of `folio` is
    /// zero-filled, sets the zeromap bits of its slots, counts
    /// `swpout_zero` (globally and, through [`SwapPlatform::count_event`],
    /// for the folio's cgroup) and returns `Ok(true)`: the swap-out is done,
    /// nothing is written, zswap never sees the folio. Otherwise clears the
    /// bits (so zeros from an earlier swap-out of the same slots are never
    /// read back) and returns `Ok(false)`: store it in zswap or write it.
    ///
    /// The folio is locked by the caller and in the swap cache (`EINVAL`
    /// otherwise); `ENOENT` if its slots are not in use.
    pub fn zeromap_folio_store(&self, folio: &Folio) -> Result<bool> {
        let entry = folio.swap().ok_or(Error::EINVAL)?;
        let nr = folio.nr_pages();
        let zero = folio_zero_filled(folio);
        self.with_slot(entry, |c, idx, _| {
            if idx.saturating_add(nr) > SWAPFILE_CLUSTER {
                return Err(Error::EINVAL);
            }
            c.set_zero(idx, nr, zero)
        })?;
        if zero {
            self.swpout_zero.fetch_add(nr as u64, Ordering::Relaxed);
            self.platform
                .count_event(folio, SwapEvent::SwpoutZero, nr as u64);
        }
        Ok(zero)
    }

    /// `swap_read_folio_zeromap`, the first step of a swap-in read: if every
    /// slot of `folio` is in the zeromap, fills the folio with zeros, marks
    /// it uptodate, counts `swpin_zero` and returns `Ok(true)` (no zswap
    /// load, no device read). `Ok(false)` if none is: read from zswap or the
    /// device. `EIO` if only some are (a large folio over mixed slots; the
    /// folio is left not uptodate, as Linux does). The folio is locked by
    /// the caller and in the swap cache (`EINVAL` otherwise).
    pub fn zeromap_folio_read(&self, folio: &Folio) -> Result<bool> {
        let entry = folio.swap().ok_or(Error::EINVAL)?;
        let nr = folio.nr_pages();
        let zeros = self.with_slot(entry, |c, idx, _| Ok(c.zero_count(idx, nr)))?;
        if zeros == 0 {
            return Ok(false);
        }
        if zeros != nr {
            return Err(Error::EIO);
        }
        for i in 0..nr {
            folio.with_page_mut(i, |p| p.fill(0))?;
        }
        folio.set_uptodate();
        self.swpin_zero.fetch_add(nr as u64, Ordering::Relaxed);
        self.platform
            .count_event(folio, SwapEvent::SwpinZero, nr as u64);
        Ok(true)
    }

    /// Is the slot's zeromap bit set? Bad input gives `false`.
    pub fn zeromap_test(&self, entry: SwpEntry) -> bool {
        self.with_slot(entry, |c, idx, _| Ok(c.zero_count(idx, 1) == 1))
            .unwrap_or(false)
    }

    /// The swap core's global counters.
    pub fn stats(&self) -> SwapStats {
        SwapStats {
            swpin_zero: self.swpin_zero.load(Ordering::Relaxed),
            swpout_zero: self.swpout_zero.load(Ordering::Relaxed),
        }
    }

    // ---------------------------------------------------------------------
    // swap_cgroup
    // ---------------------------------------------------------------------

    /// `swap_cgroup_record`: records which memcg the `nr` slots from `entry`
    /// (inside one cluster, all in use) belong to. `ENOENT` for free slots or
    /// past the end, `EINVAL` for an unknown type or a run leaving its
    /// cluster. Freeing a slot clears its record.
    pub fn swap_cgroup_record(&self, entry: SwpEntry, nr: usize, memcg_id: u32) -> Result<()> {
        self.with_slot(entry, |c, idx, _| {
            if idx.saturating_add(nr) > SWAPFILE_CLUSTER {
                return Err(Error::EINVAL);
            }
            c.record_memcg(idx, nr, memcg_id)
        })
    }

    /// `lookup_swap_cgroup_id`: the memcg recorded for the slot; 0 for none
    /// or bad input.
    pub fn lookup_swap_cgroup_id(&self, entry: SwpEntry) -> u32 {
        self.with_slot(entry, |c, idx, _| Ok(c.memcg(idx)))
            .unwrap_or(0)
    }

    // ---------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------

    /// A reference to device `swp_type`; `EINVAL` if none.
    fn device(&self, swp_type: u32) -> Result<KArc<SwapDevice>> {
        let devs = self.devices.read();
        devs.get(swp_type as usize)
            .and_then(Option::as_ref)
            .cloned()
            .ok_or(Error::EINVAL)
    }

    /// Runs `f` on the slot's cluster under its lock (and the device table's
    /// read lock), then accounts freed slots, drops the locks and reports
    /// the freed slots to the platform.
    fn with_slot<R>(
        &self,
        entry: SwpEntry,
        f: impl FnOnce(&mut ClusterGuard<'_>, usize, &mut FreedSlots) -> Result<R>,
    ) -> Result<R> {
        let mut freed = FreedSlots::default();
        let base;
        let (r, idle) = {
            let devs = self.devices.read();
            let dev = devs
                .get(entry.swp_type() as usize)
                .and_then(Option::as_ref)
                .ok_or(Error::EINVAL)?;
            let (cluster, idx) = dev.locate(entry.offset())?;
            base = entry.offset() - idx as u64;
            let (r, idle) = {
                let mut c = cluster.lock();
                let r = f(&mut c, idx, &mut freed);
                (r, c.take_idle_cache())
            };
            (r, idle)
        };
        // The idle cache table is freed with no lock held.
        drop(idle);
        if freed.count() == 0 {
            return r;
        }
        // The hooks run with no lock held (zswap takes its own), and before
        // the slots become allocatable again: otherwise a new owner could
        // store into a slot whose old zswap entry is still being
        // invalidated, and lose its entry to that invalidation.
        for i in freed.iter() {
            if let Ok(e) = SwpEntry::new(entry.swp_type(), base + i as u64) {
                self.platform.slot_freed(e);
            }
        }
        self.finish_free(entry, &freed);
        r
    }

    /// Makes slots released in one critical section allocatable again, after
    /// their `slot_freed` hooks ran, and accounts them in `inuse_pages`.
    /// Until then the device counts them as in use, so `swapoff` cannot
    /// tear it down while a hook still runs.
    fn finish_free(&self, entry: SwpEntry, freed: &FreedSlots) {
        let idle = {
            let devs = self.devices.read();
            // The device is still there: swapoff refuses while inuse_pages
            // counts these slots.
            let Some(dev) = devs.get(entry.swp_type() as usize).and_then(Option::as_ref) else {
                return;
            };
            let Ok((cluster, _)) = dev.locate(entry.offset()) else {
                return;
            };
            let mut c = cluster.lock();
            for i in freed.iter() {
                c.finish_release(i);
            }
            dev.account_freed(freed);
            c.take_idle_cache()
        };
        drop(idle);
    }

    /// Allocates `nr` slots with map byte `initial` under the table's read
    /// lock (so swapoff cannot race the allocation).
    fn alloc_entry(&self, nr: usize, initial: u8) -> Result<SwpEntry> {
        if nr == 0 || nr > SWAPFILE_CLUSTER {
            return Err(Error::EINVAL);
        }
        let devs = self.devices.read();
        for (t, dev) in devs.iter().enumerate() {
            let Some(dev) = dev else { continue };
            if let Some(off) = dev.alloc_slots(nr, initial) {
                return SwpEntry::new(t as u32, off);
            }
        }
        Err(Error::ENOSPC)
    }
}

/// A cluster's swap cache table, all empty.
fn alloc_cache_table(len: usize, gfp: Gfp) -> Result<Vec<Option<FolioRef>>> {
    let _ = gfp;
    let mut v = Vec::new();
    v.try_reserve_exact(len)?;
    // Within the reserved capacity: no allocation.
    v.resize_with(len, || None);
    Ok(v)
}
