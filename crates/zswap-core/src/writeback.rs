//! Writeback: decompress an entry into a new swap-cache folio and write it to
//! the swap device (Linux: `zswap_writeback_entry`).
//!
//! The folio comes newly allocated (and charged to a cgroup) from
//! `read_swap_cache_async`. Once it has left the swap cache (written, or
//! writeback aborted), zswap hands it back through
//! [`ZswapPlatform::writeback_folio_done`] exactly once before dropping its
//! reference, so the platform can uncharge it as Linux does when the folio is
//! freed after the write. A failed device write leaves the folio in the swap
//! cache, dirty, holding the only copy: it stays charged and is not reported,
//! the platform owns it as any swap-cache folio (as Linux, where it stays
//! charged until it is freed). A slot already in the swap cache (`EEXIST`)
//! is someone else's folio and is not reported either.
//!
//! # Busy slots: two cases, as in Linux 6.8-6.18
//!
//! Writeback asks for the slot's folio with `read_swap_cache_async(slot,
//! gfp, skip_if_exists = true)`, which never waits. Two answers mean
//! "someone else has this slot", and they are told apart:
//!
//! - **Slot busy, no folio yet** (`SWAP_HAS_CACHE` set, nothing in the swap
//!   cache): another task, or our own caller up the stack (the
//!   fault-plus-reclaim recursion), is between `swapcache_prepare` and
//!   inserting its folio. `read_swap_cache_async` fails with `EEXIST`;
//!   writeback returns `ENOMEM`, as Linux's writeback does when
//!   `__read_swap_cache_async` returns NULL. The LRU walk goes on with the
//!   next entry (`LRU_RETRY`), the dynamic shrinker included.
//! - **Folio found in the swap cache** (`read_swap_cache_async` returned an
//!   existing folio): the page was just swapped in, or another shrinker owns
//!   it. Writeback returns `EEXIST`, and only this makes the dynamic
//!   shrinker stop its walk (`LRU_STOP`: it reached warm pages).
//!   `shrink_memcg` goes on either way.
//!
//! Both count once in `writeback_skip_exists` (and in `reject_reclaim_fail`,
//! as every failed writeback).
//!
//! Counters: `zswpwb` (global and the memcg event) and `written_back_pages`
//! count only pages whose device write succeeded; any failure counts once,
//! in `reject_reclaim_fail`.

use kbase::sync::Ordering;
use kbase::{Error, Gfp, Result};
use memcg::MemcgEvent;
use swapcache::{Folio, SwpEntry};

use crate::stats::Counters;
use crate::{Object, Zswap, ZswapEvent, ZswapPlatform};

impl<P: ZswapPlatform> Zswap<P> {
    /// Writes the entry of `swp` back to the swap device now, as the LRU walk
    /// would after picking it (no second chance), for simulators and tests.
    /// Counts `written_back_pages` or `reject_reclaim_fail` (and
    /// `writeback_skip_exists`) like the walk. `ENOENT` if zswap holds no
    /// entry for the slot; otherwise the errors of the writeback itself
    /// (`EEXIST` a folio is in the swap cache, `ENOMEM` the slot is busy with
    /// no folio yet or the entry went, `EIO`, ...).
    pub fn writeback(&self, swp: SwpEntry) -> Result<()> {
        let handle = self
            .with_tree(swp, |t| t.with_entry(swp.offset(), |e| e.identity()))
            .flatten()
            .ok_or(Error::ENOENT)?;
        let r = self.writeback_entry(handle, swp);
        match r {
            Ok(()) => Counters::inc(&self.stats.written_back_pages),
            Err(_) => Counters::inc(&self.stats.reject_reclaim_fail),
        }
        r
    }

    /// Writes back the entry at `swp` whose pool handle was `handle` when
    /// the LRU walk picked it. The handle is the entry's identity: the entry
    /// may have been freed since the LRU lock was dropped, so only the tree,
    /// under its lock, is asked whether its entry for `swp` still has that
    /// handle. (A handle names one live object of one pool, with a
    /// generation per handle-table slot; unlike the entry's heap address it
    /// is the same in every replay of a schedule, so loom can explore it.)
    ///
    /// Errors: `EEXIST` a folio for the slot is already in the swap cache (a
    /// swap-in or another shrinker owns it); `ENOMEM` the slot is busy with
    /// no folio yet (`SWAP_HAS_CACHE` set by a task between prepare and
    /// insert, maybe our own caller), no folio could be allocated, or the
    /// entry is no longer the tree's (invalidated, maybe reused);
    /// `ENOENT`/`EINVAL` the slot or its device is gone; `EIO` decompression
    /// failed (entry kept) or the device write failed (the data stays in the
    /// swap-cache folio, dirty). Both busy cases count in
    /// `writeback_skip_exists` (see the module docs).
    pub(crate) fn writeback_entry(&self, handle: u64, swp: SwpEntry) -> Result<()> {
        let swap = self.platform.swap_space();
        let skip_if_exists = !self.wb_wait_on_exists.load(Ordering::Relaxed);
        // Skipping (EEXIST) rather than waiting is what keeps a fault on this
        // slot, whose memcg charge reclaimed into this very writeback, from
        // waiting on itself forever. It also skips slots merely being swapped
        // in by another task, where waiting would have worked: such pages are
        // about to be hot and are poor writeback choices anyway.
        // No zswap lock is held here: the charge hook may re-enter zswap.
        let (folio, new) = match swap.read_swap_cache_async(swp, Gfp::KERNEL, skip_if_exists) {
            Ok(r) => r,
            Err(Error::EEXIST) => {
                // Busy with no folio yet: Linux's `__read_swap_cache_async`
                // returns NULL here and writeback -ENOMEM, so the walk goes
                // on (LRU_RETRY) instead of stopping.
                Counters::inc(&self.stats.writeback_skip_exists);
                return Err(Error::ENOMEM);
            }
            Err(e) => return Err(e),
        };
        if !new {
            // Already in the swap cache: someone else owns the page. Only
            // this case stops the dynamic shrinker (LRU_STOP).
            Counters::inc(&self.stats.writeback_skip_exists);
            return Err(Error::EEXIST);
        }
        let (r, in_cache) = self.writeback_folio(&folio, handle, swp);
        // Every outcome ends here, with the folio unlocked. A folio that left
        // the swap cache goes back to the platform, which uncharges it
        // (Linux does so when the folio is freed after the write); one left
        // in the swap cache by a failed write keeps its charge.
        if !in_cache {
            self.platform.writeback_folio_done(&folio);
        }
        r
    }

    /// Writeback of `swp` into `folio`, the new swap-cache folio
    /// [`Zswap::writeback_entry`] owns (locked); returns with it unlocked,
    /// and whether it is still in the swap cache (the device write failed).
    fn writeback_folio(&self, folio: &Folio, handle: u64, swp: SwpEntry) -> (Result<()>, bool) {
        let swap = self.platform.swap_space();
        // We own a locked folio in the swap cache for `swp`: no load, store
        // or invalidate of this slot can run until we let go of it, and
        // swapoff cannot free the trees (the slot is in use).
        folio.clear_active();
        self.platform.trace(ZswapEvent::WritebackOwned(swp));
        // The device write must not run under the folio's page lock (a
        // spinlock): it goes from a bounce page, allocated before anything
        // is torn down so that failing here loses nothing.
        let alloc = self.platform.page_allocator();
        let mut bounce = match alloc.alloc_page(Gfp::KERNEL) {
            Ok(p) => p,
            Err(e) => {
                self.writeback_abort(folio);
                return (Err(e), false);
            }
        };
        let Some(owned) = self
            .with_tree(swp, |t| t.erase_if(swp.offset(), handle))
            .flatten()
        else {
            // Invalidated (and maybe reused) after the LRU lock was dropped.
            // SAFETY: `bounce` came from `alloc` just above.
            unsafe { alloc.free_page(bounce) };
            self.writeback_abort(folio);
            return (Err(Error::ENOMEM), false);
        };
        let r = folio
            .with_page_mut(0, |dst| self.decompress(&owned, dst, Object::Live))
            .unwrap_or(Err(Error::EIO));
        if let Err(e) = r {
            self.tree_reinsert(owned);
            // SAFETY: `bounce` came from `alloc` above.
            unsafe { alloc.free_page(bounce) };
            self.writeback_abort(folio);
            return (Err(e), false);
        }
        // Counted once the write succeeded (below).
        let mut memcg = None;
        self.entry_free_with(owned, |m| memcg = Some(m.clone()));
        folio.set_uptodate();
        folio.set_reclaim();
        // The write is synchronous (and runs with no lock held): once it
        // returns, finish the folio the way end-of-writeback would.
        let w = match folio.with_page(0, |page| bounce.as_mut_slice().copy_from_slice(page)) {
            Ok(()) => self.platform.backend().write_page(swp, bounce.as_slice()),
            Err(e) => Err(e),
        };
        // SAFETY: `bounce` came from `alloc` above and is not used again.
        unsafe { alloc.free_page(bounce) };
        match w {
            Ok(()) => {
                Counters::inc(&self.stats.zswpwb);
                if let Some(m) = memcg.as_ref() {
                    m.count_event(MemcgEvent::Zswpwb, 1);
                }
                swap.delete_from_swap_cache(folio);
                folio.unlock();
                (Ok(()), false)
            }
            Err(_) => {
                // Like a failed swap write: the page stays in the swap cache,
                // dirty and charged, for reclaim to try again; nothing is
                // lost.
                folio.set_dirty();
                folio.unlock();
                (Err(Error::EIO), true)
            }
        }
    }

    /// The abort path: take the folio out of the swap cache (clearing
    /// `SWAP_HAS_CACHE`), unlock it, drop our reference (the caller's
    /// `FolioRef` goes when it returns).
    fn writeback_abort(&self, folio: &Folio) {
        self.platform.swap_space().delete_from_swap_cache(folio);
        folio.unlock();
    }
}
