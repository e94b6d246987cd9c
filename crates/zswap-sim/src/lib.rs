//! # zswap-sim: a simulated kernel that runs zswap end to end
//!
//! This crate is two things at once:
//!
//! 1. **The reference integration.** [`kernel`] is a small kernel built the
//!    way a real one would link the zswap crates: it owns RAM (a page budget
//!    enforced by its page allocator), a swap device ([`swapcache::SwapSpace`]
//!    with an in-memory or file backend), the memory cgroups
//!    ([`memcg::MemcgTree`]) and zswap ([`zswap_core`]); it implements every
//!    platform trait ([`platform`]): the page allocator and CPU info of
//!    `kbase`, `swapcache`'s `SwapPlatform` (swap-in charging through
//!    `memcg`, `slot_freed -> zswap invalidate`, the swap-cache wait hook),
//!    `memcg`'s `ReclaimHook` and zswap-core's platform trait (shrink-worker
//!    queueing). Programs are simulated as regions of anonymous pages that
//!    belong to a cgroup; touching a page that is not resident faults it in
//!    through `read_swap_cache_async` and zswap load; reclaim swaps cold pages
//!    out through zswap store, falling back to the swap device.
//! 2. **The `zswap-sim` command line** ([`run`], [`report`], [`capture`]):
//!    scenario files ([`scenario`]) describe a machine, cgroups and steps;
//!    every page read back is verified against content generated from
//!    `(region, page, version)` ([`fill`]); expectations on the counters
//!    ([`expect`]) decide whether a run passes.
//!
//! ## Lifecycle of a run
//!
//! [`run::run_scenario`] boots a [`kernel::Kernel`] from the scenario's
//! `[machine]` and `[zswap]` tables, creates the `[[cgroup]]`s, then executes
//! each `[[step]]`, taking a [`stats::Snapshot`] after each one and checking
//! its expectations. A verification mismatch or a failed expectation fails
//! the run (exit 1); a recursive wait on a swap slot is reported as a
//! deadlock (exit 3); scenario mistakes are reported with file and line
//! (exit 2).
//!
//! ## Re-entrancy and locks
//!
//! The simulated machine has one running task, but its kernel is
//! re-entrant exactly like Linux's: a fault charges its folio, the charge
//! reclaims, reclaim stores into zswap, zswap's shrinker writes back, and
//! writeback faults a slot into the swap cache again. The simulator's own
//! state (page tables, LRUs) lives behind one mutex that is **never** held
//! while calling into swapcache, memcg or zswap-core; every path copies what
//! it needs, drops the lock, calls out, and re-checks afterwards. Per-task
//! context that Linux keeps in `current` (`PF_MEMALLOC`, the slots whose
//! `SWAP_HAS_CACHE` this call chain holds) is thread-local ([`platform`]).
//!
//! ## Module map
//!
//! - [`kernel`]: the simulated kernel: RAM, regions, LRUs, fault, reclaim.
//! - [`platform`]: the platform trait implementations and task context.
//! - [`ram`]: the machine's RAM (page frames and a free list).
//! - [`scenario`], [`size`], [`fill`], [`expect`]: the scenario language.
//! - [`host`]: reading the user's files safely, the host's memory, the
//!   swap folder (checked before boot).
//! - [`run`]: executes a scenario; [`stats`]: snapshots; [`report`]: text
//!   and JSON output; [`capture`]: sampling a live process into a page file.
//! - [`timeline`]: time series sampled during a run (`--trace`); [`plot`]:
//!   their SVG picture (`--plot`).

pub mod capture;
pub mod expect;
pub mod fill;
pub mod host;
pub mod kernel;
pub mod platform;
pub mod plot;
pub mod ram;
pub mod report;
pub mod run;
pub mod scenario;
pub mod size;
pub mod stats;
pub mod timeline;

pub use run::{ExitCode, RunOptions, RunReport, run_scenario};
pub use scenario::{Scenario, ScenarioError};
