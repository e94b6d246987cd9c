//! An LZ4 block encoder for zswap's store path, specialised for one page.
//!
//! # What it produces
//!
//! A standard LZ4 block (the format [`super::lz4_block`] documents) of one
//! `PAGE_SIZE` page, which any LZ4 block decoder reads, with the format's
//! end rules kept (the last match starts at least 12 bytes before the end,
//! the last 5 bytes are literals). At most [`BOUND`] bytes (LZ4's bound,
//! for a page that does not compress at all). The bytes are not
//! `lz4_flex`'s or C liblz4's: the search differs (see below), and the
//! tests hold the sizes to within a stated margin of `lz4_flex`'s per page
//! and to no more than its total on the corpus. The output depends only on
//! the page (the table is zeroed per page).
//!
//! # How
//!
//! A greedy single-probe search, as C liblz4's fast mode: one hash table of
//! [`TABLE_LEN`] 16-bit positions (16 KiB), indexed by a multiplicative hash
//! of the 4 bytes at a position. Differences:
//!
//! - A candidate must match [`SEARCH_MIN`] = 5 bytes, not the format's 4.
//!   On the corpus (16,384 pages) that gives 0.4 % smaller blocks than
//!   accepting 4-byte matches (a 4-byte match often takes the place of a
//!   longer one a byte later) and 11 % fewer sequences, which is most of
//!   the speed: each sequence costs a few hard-to-predict branches.
//! - A table candidate is clamped below the current position without a
//!   branch (`fast::candidate`), so no entry can make a match refer
//!   forward, whatever the table holds.
//! - Length bytes below 270 are written without a branch on the length
//!   (the byte is always stored and kept only if needed); a literal run of
//!   up to 16 bytes is one 16-byte copy, a longer one 8-byte words; match
//!   lengths are counted 16 bytes at a time first (two 8-byte XORs, the
//!   first difference from the lowest set bit), then by words.
//!
//! After `1 << SKIP_TRIGGER` positions without a match the step grows, so
//! a page that does not compress is crossed quickly. Plain integer code
//! with 8-byte words: no SIMD, which kernels build without.
//!
//! # The table is zeroed per page
//!
//! [`compress`] zeroes the 16 KiB table before each page (one `memset`).
//! A running base offset (C liblz4's `currentOffset`: positions stored
//! relative to a base moved on by a page per call, the table zeroed only
//! when the 16-bit base wraps, once per 15 pages) was measured and is
//! slower here: the base costs a register and two operations per probe in
//! the search loop, about 6 % of the encoder's time on the corpus, while
//! the `memset` is within the noise (not clearing at all measured the
//! same as clearing).
//!
//! # No output limit
//!
//! The encoder always finishes the block: a page that does not shrink
//! below `PAGE_SIZE` gives a block longer than a page, which zswap's store
//! treats as "store raw" (or rejects, with writeback disabled), exactly as
//! before. The search's growing step makes such pages the cheapest ones.
//!
//! # Where the unsafe code is
//!
//! All of it is in `fast` (the loop): unaligned word reads of the page and
//! whole-word copies into the output, each bounded by a check or a loop
//! invariant stated at the block.

mod fast;

#[cfg(all(test, not(loom)))]
mod tests;

use alloc::vec::Vec;

use kbase::{Error, PAGE_SIZE, Result};

/// Bits of the hash: the table has `1 << HASH_LOG` entries.
pub const HASH_LOG: u32 = 13;
/// Entries of the hash table (16-bit positions: 16 KiB).
pub const TABLE_LEN: usize = 1 << HASH_LOG;
/// LZ4's worst-case block size for one page (`LZ4_COMPRESSBOUND`).
pub const BOUND: usize = PAGE_SIZE + PAGE_SIZE / 255 + 16;
/// The output buffer [`compress`] takes: [`BOUND`] plus room for the
/// encoder's whole-word copies and conservative room checks.
pub const DST_LEN: usize = BOUND + 64;
/// Bytes a table candidate must match to start a sequence.
pub const SEARCH_MIN: usize = 5;
/// After `1 << SKIP_TRIGGER` positions without a match the search step
/// grows by one per `1 << SKIP_TRIGGER` further misses.
pub const SKIP_TRIGGER: u32 = 6;

/// The shortest match of the format.
const MIN_MATCH: usize = 4;
/// The block's last literals (format rule).
const LAST_LITERALS: usize = 5;
/// The last match starts at least this many bytes before the end (format
/// rule).
const MFLIMIT: usize = 12;

// 16-bit positions hold every position of a page; the loop's word reads
// need a page of at least a few words; SEARCH_MIN fits in the word compared.
const _: () = assert!(PAGE_SIZE <= 1 << 16 && PAGE_SIZE >= 64);
const _: () = assert!(SEARCH_MIN >= MIN_MATCH && SEARCH_MIN <= 8);

/// One CPU's encoder state: the hash table.
///
/// # Invariants
///
/// `slots` has [`TABLE_LEN`] entries.
pub struct Table {
    slots: Vec<u16>,
}

impl Table {
    /// A zeroed table (16 KiB), allocated fallibly: `ENOMEM`.
    pub fn try_new() -> Result<Table> {
        let mut slots = Vec::new();
        slots.try_reserve_exact(TABLE_LEN)?;
        slots.resize(TABLE_LEN, 0);
        // INVARIANT: TABLE_LEN entries.
        Ok(Table { slots })
    }
}

/// Compresses one page into `dst` with `table`; returns the block's
/// length (at most [`BOUND`]). Every page compresses; one that does not
/// shrink gives a block longer than `PAGE_SIZE`. Allocates nothing.
///
/// `EIO` would mean a broken size bound (not expected for any page; the
/// loop checks its room rather than trusting the bound).
pub fn compress(
    src: &[u8; PAGE_SIZE],
    table: &mut Table,
    dst: &mut [u8; DST_LEN],
) -> Result<usize> {
    let slots = table
        .slots
        .first_chunk_mut::<TABLE_LEN>()
        .ok_or(Error::EINVAL)?;
    slots.fill(0);
    fast::run(src, slots, dst).ok_or(Error::EIO)
}
