//! # memcg: the memory cgroup controller zswap talks to
//!
//! The part of a cgroup v2 memory controller that zswap needs: a hierarchy
//! of cgroups, page counters with `memory.max` and the reclaim-and-retry
//! charge, `memory.reclaim`, the zswap controls (`memory.zswap.max`,
//! `memory.zswap.current`, `memory.zswap.writeback`), object cgroups through
//! which zswap charges compressed bytes, the `memory.stat` counters zswap
//! and swap report, and the round-robin iteration of the global shrink
//! worker.
//!
//! ## Lifecycle of a cgroup
//!
//! ```text
//!   create ──> online ──offline──> offline (zombie) ──remove──> unlinked ──last ref/pin──> gone
//!                  └───────────────remove (offlines first)──────┘
//! ```
//!
//! - **online**: [`MemcgTree::create`] links it under an online parent and
//!   gives it the smallest free id (root is [`ROOT_ID`] = 1) and its own
//!   [`ObjCgroup`]. Charges land here.
//! - **offline** ([`MemcgTree::offline`], `css_offline`): refused while a
//!   child is online. Its page counters (`memory.current`,
//!   `memory.swap.current`) and zswap gauges (`zswap`, `zswapped`,
//!   `zswap_incomp`) pass to the parent, its objcgs (its own and those it
//!   inherited) are reparented so objects charged through them now charge
//!   the parent, and any later charge or uncharge that names it lands on its
//!   nearest online ancestor. It stays visible at its path (`lookup`) and by
//!   id (`get`). Its events stay in every ancestor's hierarchical stats.
//!   Offline returns the parent ([`Offlined`]); the caller then runs
//!   zswap-core's own offline hook (LRU reparenting and
//!   [`ShrinkCursor::offline_cleanup`]).
//! - **unlinked** ([`MemcgTree::remove`], `rmdir`): refused while it has
//!   children. Its name can be reused at once.
//! - **gone**: once unlinked, unreferenced, and no page charged through its
//!   id remains (pages charged by [`MemcgTree::try_charge`] and swap charged
//!   by [`MemCgroup::swap_charge`] pin the id, as Linux's
//!   `mem_cgroup_id_get_many` does, because folios and swap slots record ids),
//!   its id is reused by the next `create`.
//!
//! ## Charging protocol
//!
//! Every counter update goes to the *effective* cgroup: the one named if
//! online, else its nearest online ancestor. It is found and updated under
//! that cgroup's `gate` read lock (a per-cgroup RwLock holding the online
//! flag); offline takes the gate for writing, so a charge is either wholly
//! before offline (and moved to the parent by it) or wholly after (and made
//! on the parent): no charge is lost or counted twice. An online cgroup's
//! ancestors are all online, so the walk up from the effective cgroup only
//! meets online levels.
//!
//! - `memory.current` is a hierarchical counter **in bytes**: page charges add
//!   `nr_pages * PAGE_SIZE`, zswap adds the exact compressed size. No per-CPU
//!   stock or batching: every counter is exact at all times. `memory.max` is
//!   page-aligned bytes.
//! - A limited charge ([`MemcgTree::try_charge`]) adds at each level with a
//!   compare-and-swap that succeeds only if the level stays within its
//!   `memory.max`, so `memory.current <= memory.max` holds at every instant
//!   for these charges; a refused level rolls back the levels below it. The
//!   refusing cgroup is handed to the [`ReclaimHook`] with **no lock of this
//!   crate held** (the hook re-enters zswap and this crate), then the charge
//!   is retried: at most [`MAX_RECLAIM_RETRIES`] hook calls, stopping after
//!   [`MAX_NO_PROGRESS`] calls that reclaim nothing, then `ENOMEM`.
//! - zswap's object charge ([`ObjCgroup::charge_zswap`]) is forced, as
//!   Linux's charge from reclaim (`PF_MEMALLOC`) context is: it may take
//!   `memory.current` past `memory.max`. `memory.zswap.max` is enforced
//!   before the store by [`ObjCgroup::may_zswap`], not by the charge.
//! - `memory.reclaim` ([`MemcgTree::memory_reclaim`]) asks the hook in
//!   batches of [`SWAP_CLUSTER_MAX`] pages and returns `EAGAIN` after
//!   [`MAX_RECLAIM_RETRIES`] calls that reclaim nothing, as Linux does.
//! - Lowering `memory.max` ([`MemCgroup::set_memory_max`]) only sets it;
//!   [`MemcgTree::write_memory_max`] also reclaims down to it, like the file.
//! - `memory.stat` keeps, per cgroup, hierarchical counters (updated on the
//!   effective cgroup and every ancestor: what cgroup v2's `memory.stat`
//!   shows, [`MemCgroup::stat`]) and local ones ([`MemCgroup::stat_local`]).
//!   Uncharging more than was charged saturates at zero (a caller bug;
//!   Linux warns). Offline moves gauges (`zswap`, `zswapped`,
//!   `zswap_incomp`) to the parent's local counters; events stay where they
//!   happened (they are already in every ancestor's hierarchical counters).
//!
//! ## Lock order
//!
//! ```text
//! ShrinkCursor lock -> tree lock (RwLock) -> cgroup gate (write, offline only)
//!     -> cgroup objcg / objcg_list locks -> parent objcg_list -> objcg's memcg lock
//! ```
//! Charges take one gate for reading and nothing else; the hook is never
//! called with any lock held. The tree lock is taken for writing only by
//! `create`, `offline` and `remove` (Linux's `cgroup_mutex`), and for reading
//! by `lookup`, `get` and iteration (where Linux uses RCU). It is never held
//! across an allocation: `create` and `offline` reserve memory unlocked, then
//! re-validate and publish under the lock (retrying if the tree changed).
//!
//! ## Module map
//!
//! - `tree`: [`MemcgTree`] (names, ids, create/offline/remove, `iter_next`,
//!   `try_charge`/`uncharge`, `memory_reclaim`, `write_memory_max`),
//!   [`ReclaimHook`], [`NoReclaim`], [`Offlined`].
//! - `memcg`: [`MemCgroup`] (counters, files, stats, swap charge, events),
//!   [`ObjCgroup`] (zswap object charging, `may_zswap`).
//! - `cursor`: [`ShrinkCursor`], the global shrink worker's position.
//! - `parse`: the file value syntax (`max`, bytes, `K/M/G` suffixes).
//!
//! ## Differences from Linux, on purpose
//!
//! - `memory.zswap.writeback` exists on root (as in Linux since it was
//!   merged); `memory.zswap.max` and `memory.max` do not (`EINVAL`).
//! - Offline moves a cgroup's charges to its parent at once, instead of
//!   leaving a zombie holding page counters.
//! - `memory.current` is byte-exact (no per-CPU charge stock).
#![no_std]
#![cfg_attr(not(loom), deny(clippy::undocumented_unsafe_blocks))]
#![forbid(unsafe_code)]

extern crate alloc;

mod cursor;
mod memcg;
mod parse;
mod tree;

pub use cursor::ShrinkCursor;
pub use memcg::{MemCgroup, MemcgEvent, MemcgRef, MemoryStat, ObjCgroup, ObjCgroupRef};
pub use parse::{PAGE_COUNTER_MAX, parse_bool01, parse_bytes, parse_limit_pages};
pub use tree::{
    MAX_NO_PROGRESS, MAX_RECLAIM_RETRIES, MEMCG_ID_MAX, MemcgTree, NAME_MAX, NoReclaim, Offlined,
    ROOT_ID, ReclaimHook, SWAP_CLUSTER_MAX,
};

#[cfg(all(test, not(loom)))]
mod tests;
