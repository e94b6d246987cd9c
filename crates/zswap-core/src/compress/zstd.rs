//! zstd contexts over `zstd-sys`, static and sized for one page.
//!
//! Like Linux's `crypto/zstd.c`, the compression parameters are those of
//! [`ZSTD_LEVEL`](super::ZSTD_LEVEL) for a `PAGE_SIZE` input
//! (`ZSTD_getCParams(level, PAGE_SIZE, 0)`), and each context lives in a
//! workspace we allocate up front (`ZSTD_initStaticCCtx`/`DCtx`). A static
//! context never calls `malloc`: if zstd ever needed more memory it would
//! fail with an error code, which we turn into `EIO`. This is what lets the
//! bare-metal build map `malloc` to a stub (see `zstd_shim`).

use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::NonNull;

use kbase::{Error, Gfp, PAGE_SIZE, Result};
use zstd_safe::zstd_sys as sys;

use super::ZSTD_LEVEL;

/// Allocates a zeroed, 8-byte aligned workspace of at least `bytes` bytes.
fn workspace(bytes: usize) -> Result<Vec<u64>> {
    let words = bytes.div_ceil(core::mem::size_of::<u64>());
    let mut v = Vec::new();
    v.try_reserve_exact(words)?;
    v.resize(words, 0);
    Ok(v)
}

/// One CPU's zstd compression context.
///
/// # Invariants
///
/// `cctx` was returned by `ZSTD_initStaticCCtx` over the heap buffer of
/// `_wksp`. That vector is never resized, read or written after that, so the
/// buffer stays put and is accessed only by zstd through `cctx`, until it is
/// dropped with `self`. A static context needs no `ZSTD_freeCCtx`.
pub(super) struct ZstdCCtx {
    cctx: NonNull<sys::ZSTD_CCtx>,
    /// Owns the context's memory (only freed, never accessed).
    _wksp: Vec<u64>,
}

// SAFETY: the context is plain memory owned by this value (type invariant);
// zstd keeps no thread-local or global state for it, so it may be used from,
// and dropped on, any thread. Use is serialised by the per-CPU Mutex
// (`&mut self`).
unsafe impl Send for ZstdCCtx {}

impl ZstdCCtx {
    pub(super) fn try_new(gfp: Gfp) -> Result<ZstdCCtx> {
        let _ = gfp;
        // SAFETY: pure functions of their arguments; no pointers involved.
        let size = unsafe {
            let cparams = sys::ZSTD_getCParams(ZSTD_LEVEL, PAGE_SIZE as u64, 0);
            sys::ZSTD_estimateCCtxSize_usingCParams(cparams)
        };
        let mut wksp = workspace(size)?;
        let bytes = wksp.len() * core::mem::size_of::<u64>();
        // SAFETY: `wksp` is a live, 8-byte aligned buffer of `bytes` bytes
        // that nothing else uses from here on (it is moved into the context
        // and never touched again, see the type invariant). zstd only checks
        // and writes inside it.
        let cctx = unsafe { sys::ZSTD_initStaticCCtx(wksp.as_mut_ptr().cast::<c_void>(), bytes) };
        let cctx = NonNull::new(cctx).ok_or(Error::ENOMEM)?;
        // INVARIANT: the context lives in the workspace moved in here.
        Ok(ZstdCCtx { cctx, _wksp: wksp })
    }

    /// Compresses one page into `dst`; returns the compressed length.
    pub(super) fn compress(&mut self, src: &[u8; PAGE_SIZE], dst: &mut [u8]) -> Result<usize> {
        // SAFETY: `cctx` is a valid static context (type invariant) used
        // exclusively here (`&mut self`); `src` and `dst` are valid for the
        // lengths passed and do not overlap the workspace (distinct
        // allocations). zstd writes at most `dst.len()` bytes to `dst`.
        let n = unsafe {
            sys::ZSTD_compressCCtx(
                self.cctx.as_ptr(),
                dst.as_mut_ptr().cast::<c_void>(),
                dst.len(),
                src.as_ptr().cast::<c_void>(),
                src.len(),
                ZSTD_LEVEL,
            )
        };
        ok_len(n)
    }

    /// Bytes of workspace this context holds.
    #[cfg(all(test, not(loom)))]
    pub(super) fn workspace_bytes(&self) -> usize {
        self._wksp.capacity() * core::mem::size_of::<u64>()
    }
}

/// One CPU's zstd decompression context.
///
/// # Invariants
///
/// As for [`ZstdCCtx`]: `dctx` was returned by `ZSTD_initStaticDCtx` over the
/// heap buffer of `_wksp`, which nothing else touches until it is dropped
/// with `self`.
pub(super) struct ZstdDCtx {
    dctx: NonNull<sys::ZSTD_DCtx>,
    /// Owns the context's memory (only freed, never accessed).
    _wksp: Vec<u64>,
}

// SAFETY: as for ZstdCCtx: plain owned memory, no thread-bound state, use
// serialised by the per-CPU Mutex.
unsafe impl Send for ZstdDCtx {}

impl ZstdDCtx {
    pub(super) fn try_new(gfp: Gfp) -> Result<ZstdDCtx> {
        let _ = gfp;
        // SAFETY: a pure function.
        let size = unsafe { sys::ZSTD_estimateDCtxSize() };
        let mut wksp = workspace(size)?;
        let bytes = wksp.len() * core::mem::size_of::<u64>();
        // SAFETY: as in `ZstdCCtx::try_new`: a live, aligned buffer of
        // `bytes` bytes, used by nothing but zstd from here on.
        let dctx = unsafe { sys::ZSTD_initStaticDCtx(wksp.as_mut_ptr().cast::<c_void>(), bytes) };
        let dctx = NonNull::new(dctx).ok_or(Error::ENOMEM)?;
        // INVARIANT: the context lives in the workspace moved in here.
        Ok(ZstdDCtx { dctx, _wksp: wksp })
    }

    /// Decompresses `src` into `dst`; returns the decompressed length.
    pub(super) fn decompress(&mut self, src: &[u8], dst: &mut [u8; PAGE_SIZE]) -> Result<usize> {
        // SAFETY: `dctx` is a valid static context (type invariant) used
        // exclusively here (`&mut self`); `src` and `dst` are valid for the
        // lengths passed and distinct from the workspace. zstd validates the
        // input and never writes past `dst.len()`, whatever `src` holds.
        let n = unsafe {
            sys::ZSTD_decompressDCtx(
                self.dctx.as_ptr(),
                dst.as_mut_ptr().cast::<c_void>(),
                dst.len(),
                src.as_ptr().cast::<c_void>(),
                src.len(),
            )
        };
        ok_len(n)
    }

    /// Bytes of workspace this context holds.
    #[cfg(all(test, not(loom)))]
    pub(super) fn workspace_bytes(&self) -> usize {
        self._wksp.capacity() * core::mem::size_of::<u64>()
    }
}

/// Turns a zstd size-or-error return into a `Result` (errors become `EIO`).
fn ok_len(n: usize) -> Result<usize> {
    // SAFETY: a pure function of its argument.
    if unsafe { sys::ZSTD_isError(n) } != 0 {
        Err(Error::EIO)
    } else {
        Ok(n)
    }
}
