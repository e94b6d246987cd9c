//! What the kernel provides to zswap.

use kbase::{CpuInfo, PageAllocator};
use memcg::MemcgTree;
use swapcache::{Folio, SwapBackend, SwapPlatform, SwapSpace, SwpEntry};

/// The platform zswap runs on: memory, CPUs, the swap core, the backing
/// device, the cgroup tree and deferred work.
///
/// # Re-entrancy
///
/// zswap calls [`SwapSpace::read_swap_cache_async`] from writeback with no
/// lock of its own held, because the swap platform's charge hook may reclaim
/// and re-enter zswap (even for the same slot). Likewise the swap platform's
/// `slot_freed` hook is expected to call [`crate::Zswap::invalidate`]; zswap
/// never holds a lock across a call that can free a slot.
///
/// The swap core must report a freed slot *before* the slot can be
/// allocated again (Linux calls `zswap_invalidate` from
/// `swap_entry_range_free` before `swap_range_free`): a late `slot_freed`
/// would invalidate the entry of the slot's next owner.
///
/// # Wiring (a simulated kernel)
///
/// A kernel struct typically owns `SwapSpace<SwapPlat>`, `MemcgTree` and
/// `Zswap<ZswapPlat>`. `ZswapPlat` must hand out references to the swap
/// space and cgroup tree, so it holds them (for example `Arc`s);
/// `SwapPlat::slot_freed` must reach the `Zswap`, so it holds a `Weak` to it
/// (set once the `Zswap` exists) and upgrades it per call. See the test
/// harness `tests/common/mod.rs` of this crate.
pub trait ZswapPlatform: Send + Sync {
    /// The swap core's platform.
    type Swap: SwapPlatform;

    /// The allocator pool pages come from.
    fn page_allocator(&self) -> &'static dyn PageAllocator;

    /// CPUs, for per-CPU compression contexts.
    fn cpu(&self) -> &dyn CpuInfo;

    /// Pages of RAM (`totalram_pages()`), the base of `max_pool_percent`.
    fn totalram_pages(&self) -> u64;

    /// The swap devices and the swap cache.
    fn swap_space(&self) -> &SwapSpace<Self::Swap>;

    /// The device pages are written back to.
    fn backend(&self) -> &dyn SwapBackend;

    /// The cgroup tree, or `None` when memcg is disabled
    /// (`cgroup_disable=memory`): everything goes to the root list and the
    /// shrinker uses global counters.
    fn memcg_tree(&self) -> Option<&MemcgTree>;

    /// Queues the global shrink worker (Linux: `queue_work(shrink_wq, ..)`).
    /// The platform later calls [`crate::Zswap::shrink_worker`] from a context
    /// that holds no zswap lock (a thread, or inline after the store
    /// returned). Must not call it from inside this method.
    fn queue_shrink_work(&self);

    /// Number of NUMA nodes (LRU lists per cgroup). Default 1.
    fn nr_nodes(&self) -> usize {
        1
    }

    /// The NUMA node of the page frame `page` (Linux: `page_to_nid`). An
    /// entry goes on the LRU list of the node of the page it stores (and a
    /// disk swap-in is noted on the node of its folio), not of the CPU that
    /// happens to run the store. Answers past [`ZswapPlatform::nr_nodes`]
    /// are clamped. Default 0.
    fn page_to_nid(&self, page: &[u8; kbase::PAGE_SIZE]) -> usize {
        let _ = page;
        0
    }

    /// Writeback is done with `folio`, a folio it obtained newly allocated
    /// (and charged through the swap platform's `charge_swapin`) from
    /// [`SwapSpace::read_swap_cache_async`], and the folio has left the swap
    /// cache. Called exactly once for such a folio: on success (the page was
    /// written and the folio deleted from the swap cache) or an abort before
    /// the write (no bounce page, the entry was invalidated or replaced,
    /// decompression failed; the folio was deleted from the swap cache).
    ///
    /// Not called when the device write failed: the folio stays in the swap
    /// cache, dirty and uptodate, holding the only copy of the page, and
    /// keeps its charge; the platform owns it as any swap-cache folio (a
    /// later fault finds it there, and it is uncharged when freed). Never
    /// called for a folio that was already in the swap cache (`EEXIST`):
    /// writeback did not allocate it.
    ///
    /// Linux uncharges such a folio from its memory cgroup when the folio is
    /// freed after the writeback I/O; here zswap drops its reference on
    /// return, so a platform that tracks swap-in charges uncharges it now.
    /// Called with the folio unlocked and no zswap lock held. The default
    /// does nothing.
    fn writeback_folio_done(&self, folio: &Folio) {
        let _ = folio;
    }

    /// Trace points, for tests and the simulator to interleave operations at
    /// the exact places races happen. Called with no zswap lock held. The
    /// default does nothing.
    fn trace(&self, ev: ZswapEvent) {
        let _ = ev;
    }
}

/// Trace points reported through [`ZswapPlatform::trace`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZswapEvent {
    /// The LRU walk picked the entry of this slot, rotated it and dropped the
    /// LRU lock; writeback starts next (the window of race 1 in the notes).
    WritebackPicked(SwpEntry),
    /// Writeback owns a new, locked swap-cache folio for the slot and is
    /// about to re-verify the entry against the tree.
    WritebackOwned(SwpEntry),
    /// Load erased the entry and is about to decompress.
    LoadErased(SwpEntry),
    /// Store took a reference on the current pool and is about to compress
    /// the page of this slot (under the page's lock).
    StoreCompressing(SwpEntry),
}
