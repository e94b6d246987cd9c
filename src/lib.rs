//! Umbrella crate of the workspace: re-exports every library crate so the
//! cross-crate tests in `tests/` and the benchmarks in `benches/` can name them
//! through one path. It adds no code of its own.
#![no_std]

pub use kbase;
pub use memcg;
pub use swapcache;
pub use zpool;
pub use zswap_core;
