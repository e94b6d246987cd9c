//! # kbase: the kernel vocabulary every zswap crate speaks
//!
//! A Rust-for-Linux module or a hobby kernel links the zswap crates by
//! implementing a handful of platform traits; this crate defines them, together
//! with the small set of types that cross crate boundaries:
//!
//! - [`Error`] / [`Result`]: one errno-style error. Each variant documents what
//!   it means in this workspace; narrower errors convert into it.
//! - [`Gfp`]: GFP-like allocation flags. Every allocating call in the workspace
//!   takes them and returns a `Result`; nothing panics on OOM.
//! - [`PAGE_SIZE`], [`PageFrame`] and the [`PageAllocator`] trait: every byte
//!   zswap uses comes from the platform's page allocator, so it is accounted.
//!   [`HeapPageAllocator`] backs it with the global allocator (hosts, tests)
//!   and [`FaultInjector`] makes any allocator fail on command.
//! - [`CpuInfo`]: the current CPU and the number of CPUs, for per-CPU state.
//! - [`KArc`] and [`try_box`]: reference counting and boxing whose allocation
//!   can fail (the `alloc` versions abort the machine instead).
//! - [`sync`]: the sync shim. Code in every crate imports locks, atomics and
//!   `UnsafeCell` from here only; under `--cfg loom` they are loom's, so the
//!   same code runs in the loom models.
//! - `testing` (`std` feature, host tests): a watchdog that aborts a hung
//!   test, and the corpus tests' ran/skipped report.
//!
//! Nothing here allocates without being asked, and nothing here panics.
#![no_std]
#![cfg_attr(not(loom), deny(clippy::undocumented_unsafe_blocks))]

extern crate alloc;
#[cfg(any(feature = "std", loom))]
extern crate std;

mod arc;
mod cpu;
mod error;
mod gfp;
mod page;
pub mod sync;
#[cfg(feature = "std")]
pub mod testing;

pub use arc::{KArc, try_box};
pub use cpu::{CpuInfo, UniCpu};
pub use error::{Error, Result};
pub use gfp::Gfp;
pub use page::{
    FaultInjector, HeapPageAllocator, PAGE_SHIFT, PAGE_SIZE, PageAllocator, PageFrame,
    is_same_filled,
};
