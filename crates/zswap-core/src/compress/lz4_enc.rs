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
//! [`TABLE_LEN`] 16-bit positions (8 KiB), a candidate per position, a
//! sequence as soon as a candidate's first 4 bytes match, its length
//! counted forwards word by word, the table fed the position 2 bytes before
//! each match's end and a match tried at once at its end. What differs,
//! each measured on the corpus (16,384 pages, against `lz4_flex` and C
//! liblz4 in one process, as `benches/zswap.rs` pairs them):
//!
//! - The hash covers the position's 5 bytes (a multiplicative hash of the
//!   low 5 bytes of the 8-byte word there), not 4: candidates that share
//!   only 4 bytes with the position rarely come up, so fewer, longer
//!   matches are taken. Requiring 5 matching bytes on top made no
//!   difference.
//! - A match's end is counted (forwards from the probe) before its start
//!   is extended backwards over the pending literals, so the next search,
//!   which starts at the end, does not wait for the extension. Extending
//!   first (as C liblz4 does) made the encoder 7 % slower here: every
//!   later position then waited for the candidate's bytes before it.
//!   Blocks over the corpus's 16,384 pages (a page that does not shrink
//!   counted as a page): 21,032,828 bytes with the 12-bit hash kept (see
//!   `HASH_LOG` below; 21,010,992 with 13 bits), against 21,192,595 for
//!   `lz4_flex` (0.75 % fewer) and 21,146,262 for C liblz4.
//! - A table candidate is used unchecked: it is below the current
//!   position by the loop's table invariant (the table zeroed by the loop
//!   itself, then given only positions already probed or covered; see
//!   `fast`). A branchless clamp below the position (compare and
//!   conditional move) was used before: it sits on the search's critical
//!   path (table load, clamp, the candidate's load, compare) and removing
//!   it made the encoder 6-7 % faster on the corpus (3,813-3,899 against
//!   4,081-4,173 ns/page, alternated; 4 % fewer instructions), far more
//!   than its two instructions per probe.
//! - The first `1 << SKIP_TRIGGER` positions of a search are probed by a
//!   loop of step 1 with one bound (the page's end and the step's growth
//!   folded into one compare), then a loop with the growing step: 2-2.5 %
//!   faster than one loop computing the step at every position (the same
//!   positions probed, the same blocks). Together the encoder alone went
//!   from 0.995-0.997 x C liblz4's `LZ4_compress_fast_extState_fastReset`
//!   to 0.902-0.906 x (in one process, `benches/zswap.rs`).
//! - A sequence's writes are bounded by an invariant of the loop (at every
//!   token, output position `<= anchor + anchor / 255`; see `fast`), not by
//!   room checks against the buffer (two a sequence before, each a few
//!   instructions and a branch): 2 % faster (encoder alone / C fastReset
//!   0.897-0.901 against 0.915-0.918, 8 runs alternated; 5.7 % fewer
//!   instructions).
//! - [`HASH_LOG`] 12: an 8 KiB table, where C liblz4 and `lz4_flex` use
//!   16 KiB for a page. Blocks are 0.10 % longer over the corpus
//!   (21,032,828 bytes against 21,010,992 with 13 bits), and the store is
//!   faster: the `memset` per page halves, and the table takes a sixth of
//!   the L1 data cache instead of a third, where a store also touches the
//!   page, the output, the pool's page and the store's metadata. Measured
//!   on an Ice Lake-SP VM (benches/zswap.rs, builds alternated): store /
//!   C lz4 fastReset 0.986-1.038 (mean 1.008, 16 runs) against
//!   1.004-1.062 (mean 1.020, 24 runs) with 13 bits, both with zpool's
//!   24-line write hint; 0.988-1.027 (mean 0.996, 16 runs) against
//!   1.004-1.020 (mean 1.011, 8 runs) without it; the encoder alone /
//!   C 0.900-0.912 against 0.907-0.926. The memory bench's all-in ratio
//!   of lz4 stays 0.955 (its ideal moves from 3.194 to 3.191).
//! - A literal run of up to 16 bytes is one 16-byte copy, a longer one is
//!   copied in 8-byte words; a literal length below 270 is written without
//!   a branch on it (its one extension byte is always stored, kept only if
//!   needed); match lengths are counted 16 bytes at a time first (two
//!   8-byte XORs, the first difference from the lowest set bit), then by
//!   words, and the backward extension from one 8-byte XOR of the words
//!   before (the first difference from the highest set bit).
//!
//! Measured and not kept (encoder alone on the corpus, alternated with the
//! kept version; the machine's noise was 2-4 %, and code placement alone,
//! the same machine code elsewhere in the binary, moved the encoder's
//! ratio to C by 1.5 %):
//!
//! - Loading the next position's table entry (and hashing the position
//!   after it) before the current compare, as a software pipeline: the
//!   one-ahead entry load compiled to the same code; the two-ahead hash
//!   measured the same (medians 3,913 and 3,917 ns/page).
//! - The step-1 loop with the table write before the next position's
//!   hash (one instruction fewer in the loop, the next word's load moved
//!   to the loop's top): encoder / C 0.911-0.913 against 0.895-0.900.
//! - Two positions per step of the step-1 loop with one branch for both
//!   compares (a minimum of the two XORs): 6 % slower; with two tests, 2 %
//!   slower (more instructions, not fewer).
//! - The match length's first 16 bytes without a branch (a mask on the
//!   second word's count) and the match length's token without a branch
//!   (as the literal length's): no faster, although valgrind's branch
//!   simulation counted 14 % fewer mispredictions; the predictor already
//!   gets these.
//! - Long matches counted 16 bytes per step (two XORs, one branch): 2-3 %
//!   slower, although 790 fewer instructions per page. The word loop
//!   without its redundant `b < a` test: 750 fewer instructions per page,
//!   no faster (encoder / C 0.898-0.901 against 0.896-0.898).
//!
//! After `1 << SKIP_TRIGGER` positions without a match the step grows, so
//! a page that does not compress is crossed quickly. Plain integer code
//! with 8-byte words: no SIMD, which kernels build without.
//!
//! # The table is zeroed per page
//!
//! The loop zeroes the 8 KiB table before each page (one `memset`; it
//! starts the table invariant).
//! A running base offset (C liblz4's `currentOffset`: positions stored
//! relative to a base moved on by a page per call, the table zeroed only
//! when the 16-bit base wraps, once per 15 pages) was measured and is
//! slower here: the base costs a register and two operations per probe in
//! the search loop, about 6 % of the encoder's time on the corpus, while
//! the `memset` is within the noise (not clearing at all measured
//! 0.5-1 % faster, about 25 ns a page, although valgrind counts its
//! `rep stosb` as a third of the encoder's instructions).
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
pub const HASH_LOG: u32 = 12;
/// Entries of the hash table (16-bit positions: 8 KiB).
pub const TABLE_LEN: usize = 1 << HASH_LOG;
/// LZ4's worst-case block size for one page (`LZ4_COMPRESSBOUND`).
pub const BOUND: usize = PAGE_SIZE + PAGE_SIZE / 255 + 16;
/// The output buffer [`compress`] takes: [`BOUND`] plus room for the
/// encoder's whole-word copies past the block (the loop's output bound
/// needs `PAGE_SIZE + PAGE_SIZE / 255 + 18`).
pub const DST_LEN: usize = BOUND + 64;
/// Bytes a table candidate must match to start a sequence.
pub const SEARCH_MIN: usize = 4;
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
    /// A zeroed table (8 KiB), allocated fallibly: `ENOMEM`.
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
/// `EIO` would mean a broken size bound (not expected for any page: the
/// sequences are written under the loop's output bound, and the last
/// literals after a check of their room).
pub fn compress(
    src: &[u8; PAGE_SIZE],
    table: &mut Table,
    dst: &mut [u8; DST_LEN],
) -> Result<usize> {
    let slots = table
        .slots
        .first_chunk_mut::<TABLE_LEN>()
        .ok_or(Error::EINVAL)?;
    fast::run(src, slots, dst).ok_or(Error::EIO)
}
