//! # zswap-capi: zswap for kernels written in C
//!
//! The zswap crates behind a C ABI. The C kernel describes its platform as a
//! [`zswap_platform`], a struct of function pointers (page allocator, CPUs,
//! swap device, deferred work, optional cgroup hooks), and gets back an opaque
//! `struct zswap *` that owns, on the Rust side, the swap core (slots, swap
//! map, swap cache: the `swapcache` crate), optionally a memory cgroup tree
//! (`memcg`) and zswap itself (`zswap-core`). The header is
//! `include/zswap.h`, generated from this crate by cbindgen; it documents
//! every function and every platform hook with its context rules.
//!
//! ## What the C kernel calls, and where
//!
//! | kernel path | call |
//! |---|---|
//! | boot | [`zswap_create`], then [`zswap_swapon`] per swap device |
//! | swap-out (reclaim), page locked | [`zswap_swap_alloc`], [`zswap_store`]; on an error, write the page to the device yourself |
//! | fork / PTE copy of a swap entry | [`zswap_swap_duplicate`] |
//! | fault on a swap entry | [`zswap_load`]; on `-ENOENT` read the device yourself |
//! | unmap / exit (PTE dropped) | [`zswap_swap_free`] (the last one frees the slot and invalidates zswap's copy) |
//! | shrinker (memory pressure) | [`zswap_shrinker_count`], [`zswap_shrinker_scan`] |
//! | pool compaction shrinker | [`zswap_pool_shrinker_count`], [`zswap_pool_shrinker_scan`], [`zswap_compact`] |
//! | the work item queued through `queue_shrink_work` | [`zswap_shrink_worker`] |
//! | sysfs-like control | [`zswap_param_set`], [`zswap_param_get`], [`zswap_get_stats`] |
//! | cgroups (with `ZSWAP_CREATE_MEMCG`) | [`zswap_memcg_create`], [`zswap_memcg_remove`], [`zswap_memcg_write`], [`zswap_memcg_read`] |
//! | swapoff / shutdown | [`zswap_try_to_unuse`], [`zswap_swapoff`], [`zswap_destroy`] |
//!
//! Every function returns 0 or a negative errno value (`-EINVAL`, `-ENOMEM`,
//! `-ENOENT`, `-ENOSPC`, `-EEXIST`, `-EBUSY`, `-EIO`, `-EAGAIN`,
//! `-EDEADLK`), the values of Linux's `errno.h` (`ZSWAP_E*` in the header).
//!
//! ## Never a panic across the boundary
//!
//! Every entry point checks its arguments before use: a NULL pointer, a
//! handle that [`zswap_create`] did not return (or that was destroyed), a bad
//! swap type or offset, a string that is not UTF-8, a short buffer: all give
//! `-EINVAL` and change nothing. The crates below never panic on bad input
//! or OOM. Should a bug panic anyway, the staticlib is built with
//! `panic = "abort"` (`cargo build -p zswap-capi --profile capi`), so no
//! unwinding ever reaches C; on bare metal the panic goes to the kernel's
//! `zswap_rust_panic`.
//!
//! ## The runtime the staticlib needs
//!
//! On bare metal (`target_os = "none"`, or any target with the `c-runtime`
//! feature) the library has no `std`: small metadata allocations go to the
//! kernel's `zswap_rust_alloc` / `zswap_rust_free` and a panic to
//! `zswap_rust_panic`, three symbols the kernel defines (declared at the end
//! of the header). On a hosted target without `c-runtime` the library links
//! `std` for these only (the test programs), and the symbols are not needed.
//! Pages always come from the platform's `alloc_page`.
//!
//! ## Modules
//!
//! - `platform`: [`zswap_platform`] and the Rust platforms over it.
//! - `api`: the `extern "C"` entry points and the handle registry.
//! - `runtime`: the panic handler and global allocator of the C runtime.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]
// The C names of the ABI types are C's (`struct zswap_platform`).
#![allow(non_camel_case_types)]

extern crate alloc;
#[cfg(not(any(target_os = "none", feature = "c-runtime")))]
extern crate std;

mod api;
mod platform;
#[cfg(any(target_os = "none", feature = "c-runtime"))]
mod runtime;

pub use api::*;
pub use platform::zswap_platform;
