//! The lz4 context: this crate's page encoder ([`super::lz4_enc`]) with its
//! hash table kept per CPU, and the decoder's entry point.
//!
//! The table (8 KiB of 16-bit positions) is allocated once, fallibly, and
//! zeroed by the encoder per page (see `lz4_enc`'s docs for why not a running
//! base offset). The encoder has no other state and allocates nothing.

use kbase::{Error, Gfp, PAGE_SIZE, Result};

use super::lz4_enc::{self, DST_LEN, Table};

/// One CPU's lz4 compression state.
pub(super) struct Lz4Ctx {
    table: Table,
}

impl Lz4Ctx {
    /// Allocates the hash table (`ENOMEM`).
    pub(super) fn try_new(gfp: Gfp) -> Result<Lz4Ctx> {
        let _ = gfp;
        Ok(Lz4Ctx {
            table: Table::try_new()?,
        })
    }

    /// Compresses one page into `dst` (at least [`DST_LEN`] bytes, which
    /// the lz4 scratch is, else `EINVAL`); returns the compressed length.
    /// Every page compresses (a page that does not shrink gives a block
    /// longer than `PAGE_SIZE`, which zswap stores raw).
    pub(super) fn compress(&mut self, src: &[u8; PAGE_SIZE], dst: &mut [u8]) -> Result<usize> {
        let dst = dst.first_chunk_mut::<DST_LEN>().ok_or(Error::EINVAL)?;
        lz4_enc::compress(src, &mut self.table, dst)
    }
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
#[inline]
pub(super) fn decompress_split(a: &[u8], b: &[u8], dst: &mut [u8; PAGE_SIZE]) -> Result<usize> {
    super::lz4_block::decompress_split(a, b, dst)
}
