//! # swapcache: swap slots, the swap cache and `read_swap_cache_async`
//!
//! The part of Linux's swap core that zswap sits on (`mm/swapfile.c`,
//! `mm/swap_state.c`): swap devices and their slots, the per-slot swap map
//! with `SWAP_HAS_CACHE`, the swap cache mapping slots to folios, and
//! `__read_swap_cache_async` with its `skip_if_exists` mode. Everything the
//! kernel provides comes through [`SwapPlatform`]: the page allocator that
//! folio pages come from, the memcg swap-in charge (which may reclaim and
//! re-enter this crate), the "slot freed" notification zswap invalidates on,
//! and the wait of the `EEXIST` retry loop.
//!
//! ## Slots and their lifecycle
//!
//! A slot is named by a [`SwpEntry`] (swap type and offset). Each slot has
//! one swap map byte: a swap count (references from page-table entries, up
//! to [`SWAP_MAP_MAX`]) and the `SWAP_HAS_CACHE` bit (the slot is in, or
//! being brought into, the swap cache).
//!
//! ```text
//!  free (0) --get_swap_pages--> count 1 --swap_duplicate--> count n
//!     ^                          |  ^                          |
//!     |                 swapcache_prepare                  swap_free
//!     |                          v  | swapcache_clear          |
//!     |                  count n + HAS_CACHE  <----------------+
//!     |                          | add_to_swap_cache
//!     |                          v
//!     |                  count n + HAS_CACHE + folio in cache
//!     |                          | delete_from_swap_cache (clears HAS_CACHE)
//!     +---- count and HAS_CACHE both 0: slot_freed(entry), exactly once
//! ```
//!
//! Swap-out ([`SwapSpace::add_to_swap`]) goes straight to "count 1 +
//! HAS_CACHE + folio". Swap-in ([`SwapSpace::read_swap_cache_async`]) goes
//! from "count n" through `swapcache_prepare` (which makes the caller the one
//! task allowed to insert a folio for the slot), the memcg charge, and
//! `add_to_swap_cache`. A slot whose count drops to 0 while `SWAP_HAS_CACHE`
//! is set stays allocated until the cache lets go of it; only then is it free
//! and [`SwapPlatform::slot_freed`] called. Swapoff empties a device with
//! [`SwapSpace::try_to_unuse`] (every slot faulted back into its owners by
//! the platform) and then unregisters it with [`SwapSpace::swapoff`], which
//! refuses (`EBUSY`) while any slot is in use.
//!
//! ## The zeromap
//!
//! As in Linux 6.12+, zero-filled pages never reach zswap or the device:
//! [`SwapSpace::zeromap_folio_store`] (the first step of `swap_writeout`)
//! sets one bit per slot and the swap-out is done;
//! [`SwapSpace::zeromap_folio_read`] (the first step of `swap_read_folio`)
//! fills zeros; freeing a slot clears its bit. `swpout_zero` and
//! `swpin_zero` are counted in [`SwapSpace::stats`] and per folio through
//! [`SwapPlatform::count_event`].
//!
//! ## Folios
//!
//! A [`Folio`] is 1 to [`MAX_FOLIO_PAGES`] pages from the platform page
//! allocator plus `PG_*` flags (`locked`, `uptodate`, `dirty`, `writeback`,
//! `active`, `reclaim`, `referenced`, `swapcache`), the swap entry of its first
//! page while cached, and its memcg id. [`FolioRef`] counts references; the
//! pages go back to the allocator when the last one drops. `PG_locked` is a
//! protocol bit handed across calls, as in Linux.
//!
//! ## Scaling
//!
//! Per-device state is one swap map byte and one swap-cgroup id per slot,
//! allocated (fallibly) at swapon, sharded into clusters of
//! [`SWAPFILE_CLUSTER`] slots with one spin lock each. The swap cache lives
//! in the clusters too: a cluster's table of folio references is allocated
//! (outside its lock) when the first folio enters it and freed when the
//! cluster becomes entirely free. Slot allocation keeps a lock-free hint of
//! free slots per cluster, so full clusters are skipped without locking.
//! Large folios get naturally aligned contiguous runs inside one cluster.
//!
//! ## Lock order
//!
//! ```text
//! PG_locked (folio, a protocol bit)
//!   -> device table (RwLock; write only in swapon/swapoff)
//!     -> cluster lock (one per SWAPFILE_CLUSTER slots)
//!       -> folio page locks (leaf), KArc counts
//! ```
//!
//! No lock of this crate is held while calling the platform:
//! [`SwapPlatform::charge_swapin`] may reclaim and re-enter this crate for
//! the same slot, [`SwapPlatform::swapcache_wait`] may sleep, and
//! [`SwapPlatform::slot_freed`] lets zswap take its own locks. No allocation
//! is made under a cluster lock: cache tables are allocated before it is
//! taken and published under it. The backends follow the same rule.
//!
//! ## Errors
//!
//! `EINVAL`: an unknown swap type or a malformed request. `ENOENT`: a free
//! slot or an offset past the device end. `EEXIST`: `SWAP_HAS_CACHE` already
//! set (or a folio already cached). `EBUSY`: swapoff with slots in use.
//! `ENOSPC`: no free slots or swap types. `ENOMEM`: an allocation or a charge
//! failed. Bad input never panics and never changes stored state.
//!
//! ## Modules
//!
//! - `entry`: [`SwpEntry`] packing.
//! - `folio`: [`Folio`], [`FolioRef`].
//! - `swapfile`: devices, clusters, the swap map and slot allocation.
//! - `space`: [`SwapSpace`] (the API above) and [`SwapPlatform`].
//! - `backend`: [`SwapBackend`] and [`MemBackend`]; `file` (feature `std`):
//!   `FileBackend`.
#![no_std]
#![cfg_attr(not(loom), deny(clippy::undocumented_unsafe_blocks))]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

mod backend;
mod entry;
#[cfg(all(feature = "std", unix))]
mod file;
mod folio;
mod space;
mod swapfile;

pub use backend::{MemBackend, SwapBackend};
pub use entry::{MAX_SWAP_OFFSET, MAX_SWAPFILES, SwpEntry};
#[cfg(all(feature = "std", unix))]
pub use file::FileBackend;
pub use folio::{Folio, FolioRef, MAX_FOLIO_PAGES};
pub use space::{SwapEvent, SwapPlatform, SwapSpace, SwapStats};
pub use swapfile::{SWAP_MAP_MAX, SWAPFILE_CLUSTER};

#[cfg(all(test, not(loom)))]
mod tests;
