//! The `malloc` family for the freestanding C zstd build (bare-metal only).
//!
//! On `*-none` targets C zstd is compiled by `ci/cc-freestanding.sh` against
//! the shim headers in `ci/zstd-shim/include`, whose `stdlib.h` renames
//! `malloc`, `calloc` and `free` to the functions below. zstd still references
//! its default allocator at link time, but our contexts are static
//! (`ZSTD_initStatic*Ctx` over workspaces allocated in Rust), and a static
//! context never allocates. So these deliberately hand out no memory: a call
//! would mean zstd wanted memory outside its budget, and returning NULL makes
//! it fail with an error code (which becomes `EIO`) instead of allocating
//! behind the page accounting, or with a non-blocking GFP ignored.
//!
//! `memcpy`, `memmove`, `memset` come from Rust's `compiler_builtins`.

use core::ffi::c_void;

/// `malloc` for C zstd: never allocates (see the module docs).
#[unsafe(no_mangle)]
pub extern "C" fn zswap_zstd_malloc(_size: usize) -> *mut c_void {
    core::ptr::null_mut()
}

/// `calloc` for C zstd: never allocates (see the module docs).
#[unsafe(no_mangle)]
pub extern "C" fn zswap_zstd_calloc(_nmemb: usize, _size: usize) -> *mut c_void {
    core::ptr::null_mut()
}

/// `free` for C zstd: only ever sees NULL, since nothing is allocated.
#[unsafe(no_mangle)]
pub extern "C" fn zswap_zstd_free(_ptr: *mut c_void) {}
