//! zstd contexts over `zstd-sys`, static and sized for one page.
//!
//! Like Linux's `crypto/zstd.c`, the compression parameters are those of
//! [`ZSTD_LEVEL`](super::ZSTD_LEVEL) for a `PAGE_SIZE` input
//! (`ZSTD_getCParams(level, PAGE_SIZE, 0)`), and both contexts live in
//! workspaces we allocate up front (`ZSTD_initStaticCCtx`/`DCtx`). A static
//! context never calls `malloc`: if zstd ever needed more memory it would
//! fail with an error code, which we turn into `EIO`. This is what lets the
//! bare-metal build map `malloc` to a stub (see `zstd_shim`).

use alloc::vec::Vec;
use core::ffi::c_void;
use core::ptr::NonNull;

use kbase::{Error, Gfp, PAGE_SIZE, Result};
use zstd_safe::zstd_sys as sys;

use super::ZSTD_LEVEL;

/// One CPU's zstd compression and decompression contexts.
///
/// # Invariants
///
/// `cctx` (`dctx`) was returned by `ZSTD_initStaticCCtx` (`DCtx`) over the
/// heap buffer of `_cwksp` (`_dwksp`). Those vectors are never resized, read or
/// written after that, so the buffers stay put and are accessed only by zstd
/// through the context pointers, until the vectors are dropped with `self`.
/// Static contexts need no `ZSTD_free*`.
pub(super) struct ZstdCtx {
    cctx: NonNull<sys::ZSTD_CCtx>,
    dctx: NonNull<sys::ZSTD_DCtx>,
    /// Owns the compression context's memory (only freed, never accessed).
    _cwksp: Vec<u64>,
    /// Owns the decompression context's memory (only freed, never accessed).
    _dwksp: Vec<u64>,
}

// SAFETY: the contexts are plain memory owned by this value (see the type
// invariant); zstd keeps no thread-local or global state for them, so they
// may be used from, and dropped on, any thread. Access is serialised by the
// per-CPU Mutex (`&mut self` for every use).
unsafe impl Send for ZstdCtx {}

/// Allocates a zeroed, 8-byte aligned workspace of at least `bytes` bytes.
fn workspace(bytes: usize) -> Result<Vec<u64>> {
    let words = bytes.div_ceil(core::mem::size_of::<u64>());
    let mut v = Vec::new();
    v.try_reserve_exact(words)?;
    v.resize(words, 0);
    Ok(v)
}

impl ZstdCtx {
    pub(super) fn try_new(gfp: Gfp) -> Result<ZstdCtx> {
        let _ = gfp;
        // SAFETY: pure functions of their arguments; no pointers involved.
        let (csize, dsize) = unsafe {
            let cparams = sys::ZSTD_getCParams(ZSTD_LEVEL, PAGE_SIZE as u64, 0);
            (
                sys::ZSTD_estimateCCtxSize_usingCParams(cparams),
                sys::ZSTD_estimateDCtxSize(),
            )
        };
        let mut cwksp = workspace(csize)?;
        let mut dwksp = workspace(dsize)?;
        let cbytes = cwksp.len() * core::mem::size_of::<u64>();
        let dbytes = dwksp.len() * core::mem::size_of::<u64>();
        // SAFETY: each workspace is a live, 8-byte aligned buffer of the
        // given size that nothing else uses from here on (the vectors are
        // moved into the context and never touched again, see the type
        // invariant). zstd only checks and writes inside it.
        let (cctx, dctx) = unsafe {
            (
                sys::ZSTD_initStaticCCtx(cwksp.as_mut_ptr().cast::<c_void>(), cbytes),
                sys::ZSTD_initStaticDCtx(dwksp.as_mut_ptr().cast::<c_void>(), dbytes),
            )
        };
        let cctx = NonNull::new(cctx).ok_or(Error::ENOMEM)?;
        let dctx = NonNull::new(dctx).ok_or(Error::ENOMEM)?;
        // INVARIANT: both contexts live in the workspaces moved in here.
        Ok(ZstdCtx {
            cctx,
            dctx,
            _cwksp: cwksp,
            _dwksp: dwksp,
        })
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

    /// Bytes of workspace this context holds (compression + decompression).
    #[cfg(test)]
    pub(super) fn workspace_bytes(&self) -> usize {
        (self._cwksp.capacity() + self._dwksp.capacity()) * core::mem::size_of::<u64>()
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
