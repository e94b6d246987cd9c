//! The lz4 context: a reusable `lz4_flex` hash table, built in place.
//!
//! `lz4_flex::block::compress_into` builds its 8 KiB hash table on the stack
//! (16.5 KiB frame measured on x86_64-unknown-none), or with `lz4_flex`'s
//! `alloc` feature allocates it on every call, infallibly. We keep one table
//! per CPU and pass it to `compress_into_with_table`, which clears and reuses
//! it. The table is written straight into its heap allocation (see
//! [`small_table`]), so no 8 KiB temporary lands on the stack in optimised
//! builds.
//!
//! When some other crate of the build turns on `lz4_flex/alloc` (host tools
//! and benches do, through `std`), the table is instead a small handle to a
//! heap array that `lz4_flex` allocates itself, infallibly, once per context.

use alloc::boxed::Box;
use core::alloc::Layout;
use core::ptr::NonNull;

use kbase::{Error, Gfp, PAGE_SIZE, Result};
use lz4_flex::block::{CompressTable, compress_into_with_table};

/// One CPU's lz4 compression state.
pub(super) struct Lz4Ctx {
    table: Box<CompressTable>,
}

impl Lz4Ctx {
    /// Allocates the hash table and initialises it in place.
    pub(super) fn try_new(gfp: Gfp) -> Result<Lz4Ctx> {
        let _ = gfp;
        let layout = Layout::new::<CompressTable>();
        if layout.size() == 0 {
            // Not a real configuration of lz4_flex; a zero-sized Box does not
            // allocate.
            return Ok(Lz4Ctx {
                table: Box::new(CompressTable::small()),
            });
        }
        // SAFETY: `layout` has a non-zero size (checked above).
        let raw = unsafe { alloc::alloc::alloc(layout) }.cast::<CompressTable>();
        let ptr = NonNull::new(raw).ok_or(Error::ENOMEM)?;
        // SAFETY: `ptr` is a fresh, exclusively owned allocation with the
        // layout of `CompressTable` from the global allocator. Writing a value
        // into it makes it a valid `CompressTable`, which is exactly what
        // `Box::from_raw` requires; the Box then owns and frees it.
        let table = unsafe {
            ptr.as_ptr().write(small_table());
            Box::from_raw(ptr.as_ptr())
        };
        Ok(Lz4Ctx { table })
    }

    /// Compresses one page into `dst` (at least `get_maximum_output_size`
    /// bytes, which the 2-page scratch is); returns the compressed length.
    pub(super) fn compress(&mut self, src: &[u8; PAGE_SIZE], dst: &mut [u8]) -> Result<usize> {
        compress_into_with_table(src, dst, &mut self.table).map_err(|_| Error::EIO)
    }
}

/// A fresh small table.
///
/// Kept out of line on purpose: a large value returned by a call is built in
/// the caller-provided return slot, and LLVM passes the fresh heap allocation
/// of [`Lz4Ctx::try_new`] as that slot, so the 8 KiB table is zeroed straight
/// into the heap. Inlined, the same code zeroes a stack temporary and copies
/// it (an 8.3 KiB frame, measured). Checked with `objdump` on release builds
/// for x86_64-unknown-none: `small_table` has no frame and `PerCpu::try_new`
/// 32 bytes. Unoptimised builds still use a temporary; kernels build
/// optimised.
#[inline(never)]
fn small_table() -> CompressTable {
    CompressTable::small()
}

/// Decompresses an lz4 block, given as `a ++ b` (`b` empty unless the
/// object spans two pool pages; the parts are decoded where they are, never
/// joined), into `dst`; returns the number of bytes written.
///
/// This crate's own decoder ([`super::lz4_block`]): every token, literal
/// run, match offset and match length is checked against the buffers
/// before it is copied, so corrupt input gives `EIO`, never a panic or an
/// access outside `a`, `b` or `dst`, and a split object decodes exactly as
/// its parts joined would. The fuzz targets `lz4_block` (against
/// `lz4_flex`'s safe decoder, and split against unsplit) and `decompress`
/// (through zswap's load) hold it to that.
pub(super) fn decompress_split(a: &[u8], b: &[u8], dst: &mut [u8; PAGE_SIZE]) -> Result<usize> {
    super::lz4_block::decompress_split(a, b, dst)
}
