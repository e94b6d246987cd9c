//! Folios: one or more pages with `PG_*` style flags.
//!
//! A folio here is what the swap core needs of Linux's `struct folio`: its
//! pages (taken from the platform page allocator and given back when the last
//! [`FolioRef`] drops), the flag bits the swap and zswap paths test and set,
//! the swap entry of its first page while it sits in the swap cache, and the
//! id of the memory cgroup it is charged to.
//!
//! `PG_locked` is a protocol bit, not a Rust guard: like in Linux it is taken
//! by one function and released by another (read_swap_cache_async returns a
//! new folio locked; the caller unlocks it once the read is done).

use alloc::vec::Vec;

use kbase::sync::{AtomicU32, AtomicU64, Mutex, Ordering, cpu_relax, lock_class};
use kbase::{Error, Gfp, KArc, PAGE_SIZE, PageAllocator, PageFrame, Result};

use crate::entry::SwpEntry;

/// A shared reference to a [`Folio`]; the pages are freed when the last one
/// drops.
pub type FolioRef = KArc<Folio>;

/// The largest folio: one PMD's worth of pages (and one swap cluster).
pub const MAX_FOLIO_PAGES: usize = 512;

const PG_LOCKED: u32 = 1 << 0;
const PG_UPTODATE: u32 = 1 << 1;
const PG_DIRTY: u32 = 1 << 2;
const PG_WRITEBACK: u32 = 1 << 3;
const PG_ACTIVE: u32 = 1 << 4;
const PG_RECLAIM: u32 = 1 << 5;
const PG_SWAPCACHE: u32 = 1 << 6;
const PG_REFERENCED: u32 = 1 << 7;

/// Marks a valid value in [`Folio::swap`]'s atomic: entries never set bit 63.
const SWAP_VALID: u64 = 1 << 63;

/// One or more pages with `PG_*` flags, a swap entry and a memcg id.
///
/// # Invariants
///
/// - `pages` holds `nr_pages` (1 to [`MAX_FOLIO_PAGES`]) frames, each
///   allocated from `alloc`, each `Some` until the folio drops.
/// - `swap` is 0 or `SWAP_VALID | entry.to_raw()`; it is non-zero exactly
///   while `PG_SWAPCACHE` is set (both change together under the swap cache
///   cluster lock that maps the folio).
pub struct Folio {
    flags: AtomicU32,
    swap: AtomicU64,
    memcg_id: AtomicU32,
    alloc: &'static dyn PageAllocator,
    pages: Vec<Mutex<Option<PageFrame>>>,
}

macro_rules! flag_ops {
    ($(#[$doc:meta] $bit:ident: $test:ident, $set:ident, $clear:ident;)*) => {
        $(
            #[$doc]
            pub fn $test(&self) -> bool {
                self.flags.load(Ordering::Acquire) & $bit != 0
            }
            #[doc = concat!("Sets the bit tested by [`Folio::", stringify!($test), "`].")]
            pub fn $set(&self) {
                self.flags.fetch_or($bit, Ordering::AcqRel);
            }
            #[doc = concat!("Clears the bit tested by [`Folio::", stringify!($test), "`].")]
            pub fn $clear(&self) {
                self.flags.fetch_and(!$bit, Ordering::AcqRel);
            }
        )*
    };
}

impl Folio {
    /// Allocates a folio of `nr_pages` pages from `alloc` (`folio_alloc`).
    ///
    /// `EINVAL` if `nr_pages` is 0 or above [`MAX_FOLIO_PAGES`]; `ENOMEM` if
    /// any page (or the bookkeeping) cannot be allocated, in which case every
    /// page already taken is given back.
    pub fn alloc(alloc: &'static dyn PageAllocator, nr_pages: usize, gfp: Gfp) -> Result<FolioRef> {
        if nr_pages == 0 || nr_pages > MAX_FOLIO_PAGES {
            return Err(Error::EINVAL);
        }
        let mut folio = Folio {
            flags: AtomicU32::new(0),
            swap: AtomicU64::new(0),
            memcg_id: AtomicU32::new(0),
            alloc,
            pages: Vec::new(),
        };
        folio.pages.try_reserve_exact(nr_pages)?;
        for _ in 0..nr_pages {
            // On failure `folio` drops here and frees the pages taken so far.
            let page = alloc.alloc_page(gfp)?;
            folio
                .pages
                .push(Mutex::new_class(Some(page), &lock_class::FOLIO_PAGE));
        }
        // INVARIANT: nr_pages frames from `alloc`; not in the swap cache.
        KArc::try_new(folio, gfp)
    }

    /// The number of pages.
    #[inline]
    pub fn nr_pages(&self) -> usize {
        self.pages.len()
    }

    /// Takes `PG_locked`, spinning (with [`cpu_relax`]) until it is free.
    pub fn lock(&self) {
        while !self.trylock() {
            cpu_relax();
        }
    }

    /// Takes `PG_locked` if it is free.
    pub fn trylock(&self) -> bool {
        self.flags.fetch_or(PG_LOCKED, Ordering::Acquire) & PG_LOCKED == 0
    }

    /// Releases `PG_locked` (whoever took it; the bit is handed across calls).
    pub fn unlock(&self) {
        self.flags.fetch_and(!PG_LOCKED, Ordering::Release);
    }

    /// Is `PG_locked` held?
    pub fn is_locked(&self) -> bool {
        self.flags.load(Ordering::Acquire) & PG_LOCKED != 0
    }

    flag_ops! {
        /// `PG_uptodate`: the contents are valid (read in or written by a task).
        PG_UPTODATE: test_uptodate, set_uptodate, clear_uptodate;
        /// `PG_dirty`: the contents differ from the copy on the swap device.
        PG_DIRTY: test_dirty, set_dirty, clear_dirty;
        /// `PG_writeback`: a write to the swap device is in flight.
        PG_WRITEBACK: test_writeback, set_writeback, clear_writeback;
        /// `PG_active`: on the active LRU list.
        PG_ACTIVE: test_active, set_active, clear_active;
        /// `PG_reclaim`: reclaim wants the folio freed as soon as writeback ends.
        PG_RECLAIM: test_reclaim, set_reclaim, clear_reclaim;
        /// `PG_referenced`: accessed since reclaim last looked.
        PG_REFERENCED: test_referenced, set_referenced, clear_referenced;
    }

    /// `PG_swapcache`: the folio is in the swap cache ([`Folio::swap`] is
    /// `Some`). Set and cleared only by the swap cache.
    pub fn test_swapcache(&self) -> bool {
        self.flags.load(Ordering::Acquire) & PG_SWAPCACHE != 0
    }

    /// The swap entry of the first page while the folio is in the swap cache.
    #[inline]
    pub fn swap(&self) -> Option<SwpEntry> {
        let v = self.swap.load(Ordering::Acquire);
        if v & SWAP_VALID == 0 {
            return None;
        }
        SwpEntry::from_raw(v & !SWAP_VALID).ok()
    }

    /// The id of the memory cgroup the folio is charged to (0: none).
    #[inline]
    pub fn memcg_id(&self) -> u32 {
        self.memcg_id.load(Ordering::Acquire)
    }

    /// Records the memory cgroup the folio is charged to (the charge hook
    /// does this).
    pub fn set_memcg_id(&self, id: u32) {
        self.memcg_id.store(id, Ordering::Release);
    }

    /// Runs `f` on page `index`'s bytes (under that page's own lock).
    /// `EINVAL` for an index past the end.
    #[inline]
    pub fn with_page<R>(&self, index: usize, f: impl FnOnce(&[u8; PAGE_SIZE]) -> R) -> Result<R> {
        let slot = self.pages.get(index).ok_or(Error::EINVAL)?;
        let guard = slot.lock();
        let page = guard.as_ref().ok_or(Error::EINVAL)?;
        Ok(f(page.as_slice()))
    }

    /// Runs `f` on page `index`'s bytes, mutably (under that page's own lock).
    /// `EINVAL` for an index past the end.
    #[inline]
    pub fn with_page_mut<R>(
        &self,
        index: usize,
        f: impl FnOnce(&mut [u8; PAGE_SIZE]) -> R,
    ) -> Result<R> {
        let slot = self.pages.get(index).ok_or(Error::EINVAL)?;
        let mut guard = slot.lock();
        let page = guard.as_mut().ok_or(Error::EINVAL)?;
        Ok(f(page.as_mut_slice()))
    }

    /// Sets `PG_uptodate` and `PG_dirty` together, in one atomic operation
    /// (a swap-in that leaves the slot's copy stale, as zswap's exclusive
    /// load does: Linux's `folio_mark_uptodate` then `folio_mark_dirty`).
    /// Release, as [`Folio::set_uptodate`]: the contents written before are
    /// seen by whoever sees the bit.
    #[inline]
    pub fn set_uptodate_dirty(&self) {
        self.flags
            .fetch_or(PG_UPTODATE | PG_DIRTY, Ordering::AcqRel);
    }

    /// Enters the swap cache at `entry` (called under the cluster lock).
    pub(crate) fn set_swapcache(&self, entry: SwpEntry) {
        self.swap
            .store(SWAP_VALID | entry.to_raw(), Ordering::Release);
        self.flags.fetch_or(PG_SWAPCACHE, Ordering::AcqRel);
    }

    /// Leaves the swap cache (called under the cluster lock).
    pub(crate) fn clear_swapcache(&self) {
        self.flags.fetch_and(!PG_SWAPCACHE, Ordering::AcqRel);
        self.swap.store(0, Ordering::Release);
    }
}

impl Drop for Folio {
    fn drop(&mut self) {
        for slot in self.pages.iter_mut() {
            if let Some(page) = slot.get_mut().take() {
                // SAFETY: by the type invariant every frame came from
                // `self.alloc`, and `take` makes this its only release.
                unsafe { self.alloc.free_page(page) };
            }
        }
    }
}

impl core::fmt::Debug for Folio {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Folio")
            .field("nr_pages", &self.nr_pages())
            .field("flags", &self.flags.load(Ordering::Relaxed))
            .field("swap", &self.swap())
            .field("memcg_id", &self.memcg_id())
            .finish()
    }
}
