//! The encoder's loop: the only `unsafe` code of the encoder.
//!
//! Positions are indices into the page (`ip`, `anchor`, `cand`) and into
//! the output (`op`); every pointer is made from a reference at the point
//! of use, so each `unsafe` block needs only index arithmetic to show that
//! it stays inside its buffer. The hash table is indexed by a hash that is
//! below [`TABLE_LEN`] by construction (safe indexing, no check emitted).
//!
//! # Invariants of the loop
//!
//! - `anchor <= ip`; `dst[..op]` is the block so far, encoding `src[..anchor]`.
//! - While searching, `ip < MF_END`: a match may start at `ip`, and 8
//!   bytes are readable there.
//! - The table invariant: every entry of the table is 0 or a position
//!   this call has already probed or passed, below every position probed
//!   from then on. [`run`] zeroes the table first, and writes only a
//!   position being probed (`ip`, the next probe is past it) or one a match
//!   has just covered (`ip - 2` at a match's end, probed next at `ip`);
//!   positions probed only grow, and 0 is below every probe (`ip >= 1`).
//!   So a candidate from the table is below `ip` with no check (a clamp on
//!   the search's critical path, table load then clamp then the
//!   candidate's load, measured 6-7 % of the encoder's time), and every
//!   match refers back into the page.
//! - A match covers at most `MATCH_LIMIT - ip` bytes, so the last
//!   [`LAST_LITERALS`] bytes of the page are always literals.
//! - The output bound: at the start of every sequence (its token),
//!   `op <= anchor + anchor / 255`. A sequence of `lit` literals and a
//!   match of `4 + len` bytes adds to `op` a token, the literal length's
//!   bytes (none below 15, else `(lit - 15) / 255 + 1`), the literals, 2
//!   offset bytes and the match length's bytes (at most `len`), and
//!   `lit + 4 + len` to `anchor`: `op` gains on `anchor` at most
//!   `lit / 255` (the literal length's bytes less one), and those gains
//!   sum to at most `anchor / 255`. From the bound, every write of a
//!   sequence ends before [`WRITE_END`]: the token, a literal length's
//!   bytes and the literals (a 16-byte copy from at most 2 bytes past the
//!   token, or words at most 7 bytes past the run) end before
//!   `ip + ip / 255 + 18` with `ip < MF_END` the match's start; the offset
//!   and the match length's bytes before `end + end / 255 + 1` with
//!   `end <= MATCH_LIMIT` the match's end. So no write waits for a room
//!   check (two a sequence before, measured 2 % of the encoder's time);
//!   debug builds check the bound at every sequence. Only the last
//!   literals, once a page, are checked against [`DST_LEN`].

use core::ptr;

use kbase::PAGE_SIZE;

use super::{
    DST_LEN, HASH_LOG, LAST_LITERALS, MFLIMIT, MIN_MATCH, SEARCH_MIN, SKIP_TRIGGER, TABLE_LEN,
};

/// A match may start only before this position (the format's end rules:
/// the last match starts at least [`MFLIMIT`] bytes before the end).
const MF_END: usize = PAGE_SIZE - MFLIMIT + 1;
/// A match ends at or before this position: the last [`LAST_LITERALS`]
/// bytes are literals.
const MATCH_LIMIT: usize = PAGE_SIZE - LAST_LITERALS;
/// A candidate matches if the XOR of its word and the current one, shifted
/// left by this, is zero: the low [`SEARCH_MIN`] bytes are equal (the hash
/// covers 5, so most candidates share those too).
const SEARCH_SHIFT: u32 = 64 - 8 * SEARCH_MIN as u32;

/// Every write of a sequence ends before this (the output bound of the
/// module docs): `PAGE_SIZE - 12 + (PAGE_SIZE - 12) / 255 + 18` for a
/// literal run, `PAGE_SIZE - 5 + (PAGE_SIZE - 5) / 255 + 1` for a match.
const WRITE_END: usize = PAGE_SIZE + PAGE_SIZE / 255 + 18;

// Every sequence's writes are inside dst.
const _: () = assert!(DST_LEN >= WRITE_END);

/// Compresses `src` with `table` into `dst`; returns the block's length
/// (`None` only if the last literals' room check failed, which the
/// output bound rules out).
///
/// `table` may hold anything: it is zeroed first (the table invariant of
/// the module docs starts there), so the block depends only on `src`.
pub(super) fn run(
    src: &[u8; PAGE_SIZE],
    table: &mut [u16; TABLE_LEN],
    dst: &mut [u8; DST_LEN],
) -> Option<usize> {
    let s = Page(src);
    let d = dst.as_mut_ptr();
    let mut op = 0usize;
    let mut anchor = 0usize;

    // INVARIANT: the table invariant (module docs) starts here: every
    // entry 0, below the first position probed (1).
    table.fill(0);
    // Position 0 goes into the table; the search starts at 1.
    // SAFETY: 0 + 8 and 1 + 8 are within the page.
    table[hash(unsafe { s.read64(0) })] = 0;
    let mut ip = 1usize;
    // SAFETY: as above.
    let mut fwd_h = hash(unsafe { s.read64(ip) });

    'block: loop {
        // Search: every position from `ip` on, then (after
        // 2^SKIP_TRIGGER misses) with a growing step, until a candidate
        // that matches SEARCH_MIN bytes.
        let mut fwd = ip;
        let mut cand;
        'found: {
            // The first 2^SKIP_TRIGGER positions, step 1: one bound for
            // both the page's end and the step's growth.
            let step1_end = (fwd + (1 << SKIP_TRIGGER)).min(MF_END + 1);
            loop {
                let h = fwd_h;
                ip = fwd;
                fwd += 1;
                if fwd >= step1_end {
                    break;
                }
                cand = candidate(table[h], ip);
                // SAFETY: fwd < step1_end <= MF_END + 1: fwd + 8 <= PAGE_SIZE.
                fwd_h = hash(unsafe { s.read64(fwd) });
                table[h] = ip as u16;
                // SAFETY: cand < ip (the table invariant) < fwd <= MF_END:
                // ip + 8 <= PAGE_SIZE.
                if unsafe { (s.read64(ip) ^ s.read64(cand)) << SEARCH_SHIFT == 0 } {
                    break 'found;
                }
            }
            if fwd > MF_END {
                break 'block;
            }
            // The last position of step 1 (fwd = step1_end <= MF_END), and
            // on with a growing step.
            fwd = ip;
            let mut attempts = (2usize << SKIP_TRIGGER) - 1;
            loop {
                let h = fwd_h;
                ip = fwd;
                fwd += attempts >> SKIP_TRIGGER;
                attempts += 1;
                if fwd > MF_END {
                    break 'block;
                }
                cand = candidate(table[h], ip);
                // SAFETY: fwd <= MF_END (checked above): fwd + 8 <= PAGE_SIZE.
                fwd_h = hash(unsafe { s.read64(fwd) });
                table[h] = ip as u16;
                // SAFETY: cand < ip (the table invariant) < fwd <= MF_END:
                // ip + 8 <= PAGE_SIZE.
                if unsafe { (s.read64(ip) ^ s.read64(cand)) << SEARCH_SHIFT == 0 } {
                    break 'found;
                }
            }
        }

        // The match's end first, counted forwards from the probe; then its
        // start, extended backwards over the pending literals. The end
        // (where the next search starts) so does not wait for the
        // backward extension; only the output positions do.
        let offset = ip - cand;
        let mut len = s.count(ip + MIN_MATCH, cand + MIN_MATCH);
        let end = ip + MIN_MATCH + len;
        let back = s.count_back(ip, cand, (ip - anchor).min(cand));
        ip -= back;
        len += back;

        // The sequence's token and literals (the output bound holds here:
        // all the sequence's writes end before WRITE_END <= DST_LEN).
        let lit = ip - anchor;
        debug_assert!(op <= anchor + anchor / 255, "output bound: {op}, {anchor}");
        let mut token = op;
        // SAFETY: the token and the literal length's bytes end before
        // op + lit / 255 + 2 <= ip + ip / 255 + 2 < WRITE_END (the output
        // bound).
        unsafe {
            if lit < 15 + 255 {
                // One length byte at most: written whether or not it is
                // needed, kept only if it is (no branch on the length).
                d.add(token).write((lit.min(15) as u8) << 4);
                d.add(op + 1).write(lit.wrapping_sub(15) as u8);
                op += 1 + usize::from(lit >= 15);
            } else {
                d.add(token).write(15 << 4);
                op = put_length(d, op + 1, lit - 15);
            }
        }
        if lit <= 16 && anchor + 16 <= PAGE_SIZE {
            // SAFETY: 16 bytes are readable at src[anchor] (checked just
            // above). They are written from op, at most 2 bytes past the
            // token, so they end before token + 18 <= ip + ip / 255 + 18
            // < WRITE_END (the output bound); src and dst do not overlap.
            unsafe { ptr::copy_nonoverlapping(src.as_ptr().add(anchor), d.add(op), 16) };
        } else {
            // SAFETY: the words read end before anchor + lit + 8 = ip + 8
            // <= MF_END + 7 < PAGE_SIZE (ip < MF_END, and the backward
            // extension only lowered it); those written end at most 7 bytes
            // past the run, before op + lit + 7 <= ip + ip / 255 + 9 <
            // WRITE_END (the output bound); src and dst do not overlap.
            unsafe { copy_words(src.as_ptr().add(anchor), d.add(op), lit) };
        }
        op += lit;

        // One or more matches with no literals between them: this one,
        // `offset` back, `len` bytes past the first MIN_MATCH, ending at
        // `end`.
        let mut offset = offset;
        let mut end = end;
        loop {
            // SAFETY: the 2 offset bytes end before WRITE_END (the output
            // bound at this sequence's token).
            unsafe {
                d.add(op)
                    .cast::<[u8; 2]>()
                    .write_unaligned((offset as u16).to_le_bytes())
            };
            op += 2;
            ip = end;
            // SAFETY: token < op, and the match length's bytes end before
            // end + end / 255 + 1 < WRITE_END (the output bound at this
            // sequence's token).
            unsafe {
                if len < 15 {
                    *d.add(token) |= len as u8;
                } else if len < 15 + 255 {
                    *d.add(token) |= 15;
                    d.add(op).write((len - 15) as u8);
                    op += 1;
                } else {
                    *d.add(token) |= 15;
                    op = put_length(d, op, len - 15);
                }
            }
            anchor = ip;
            if ip >= MF_END {
                break 'block;
            }
            // SAFETY: 2 <= ip < MF_END (a match of at least 4 bytes ends
            // at ip), so the words at ip - 2 and ip are inside the page.
            let (at2, at) = unsafe { (s.read64(ip - 2), s.read64(ip)) };
            table[hash(at2)] = (ip - 2) as u16;
            let h = hash(at);
            cand = candidate(table[h], ip);
            table[h] = ip as u16;
            // SAFETY: cand < ip (the table invariant; ip - 2 just written
            // is below it too) < MF_END: ip + 8 <= PAGE_SIZE.
            if unsafe { (s.read64(ip) ^ s.read64(cand)) << SEARCH_SHIFT != 0 } {
                break;
            }
            // Another match right away: a token with no literals.
            token = op;
            debug_assert!(op <= anchor + anchor / 255, "output bound: {op}, {anchor}");
            // SAFETY: op <= anchor + anchor / 255 < WRITE_END (the output
            // bound: a sequence starts here).
            unsafe { d.add(token).write(0) };
            op += 1;
            offset = ip - cand;
            len = s.count(ip + MIN_MATCH, cand + MIN_MATCH);
            end = ip + MIN_MATCH + len;
        }
        ip += 1;
        // SAFETY: ip <= MF_END (it was below before the increment):
        // ip + 8 <= PAGE_SIZE.
        fwd_h = hash(unsafe { s.read64(ip) });
    }

    // The last literals: src[anchor..], copied exactly.
    let lit = PAGE_SIZE - anchor;
    if op + lit + (lit >> 7) + 2 > DST_LEN {
        return None;
    }
    if lit >= 15 {
        dst[op] = 15 << 4;
        // SAFETY: the length bytes fit (checked above).
        op = unsafe { put_length(d, op + 1, lit - 15) };
    } else {
        dst[op] = (lit as u8) << 4;
        op += 1;
    }
    dst.get_mut(op..op + lit)?
        .copy_from_slice(src.get(anchor..)?);
    Some(op + lit)
}

/// The candidate position a table entry names for a match at `ip`: the
/// entry itself, below `ip` by the table invariant (module docs), which
/// debug builds check.
#[inline(always)]
fn candidate(entry: u16, ip: usize) -> usize {
    let c = usize::from(entry);
    debug_assert!(c < ip, "table entry {c} not below the position {ip}");
    c
}

/// The hash of the low 5 bytes of a word (the bytes at a position): a
/// multiplicative hash by the 64-bit golden ratio, the top [`HASH_LOG`]
/// bits (below [`TABLE_LEN`]).
#[inline(always)]
fn hash(seq: u64) -> usize {
    ((seq << 24).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - HASH_LOG)) as usize
}

/// Writes a length's extension bytes (`n` as 255s, then a last byte below
/// 255) from `d` + `op` on; returns the position after them.
///
/// # Safety
///
/// `n / 255 + 1` bytes from `d + op` on are writable.
#[inline(always)]
unsafe fn put_length(d: *mut u8, mut op: usize, mut n: usize) -> usize {
    while n >= 255 {
        // SAFETY: this is one of the n / 255 + 1 bytes the caller vouched for.
        unsafe { d.add(op).write(255) };
        op += 1;
        n -= 255;
    }
    // SAFETY: the last of them.
    unsafe { d.add(op).write(n as u8) };
    op + 1
}

/// Copies `lit` bytes from `s` to `d` in 8-byte words: up to 7 bytes past
/// the run are read and written.
///
/// # Safety
///
/// `lit.next_multiple_of(8)` bytes are readable from `s` and writable from
/// `d`, and the two ranges do not overlap. (In [`run`], `s` is the page at
/// a literal run that ends at or before `MF_END - 1 = PAGE_SIZE - 12`, so
/// the words read end before `PAGE_SIZE - 4`; `d` is the output, whose room
/// was checked.)
#[inline(always)]
unsafe fn copy_words(s: *const u8, d: *mut u8, lit: usize) {
    let mut k = 0;
    while k < lit {
        // SAFETY: k < lit, so k + 8 <= lit.next_multiple_of(8): inside both
        // ranges the caller vouched for, which do not overlap.
        unsafe { ptr::copy_nonoverlapping(s.add(k), d.add(k), 8) };
        k += 8;
    }
}

/// The page being compressed, read in words.
#[derive(Clone, Copy)]
struct Page<'a>(&'a [u8; PAGE_SIZE]);

impl Page<'_> {
    /// `page[i..i + 8]` as a little-endian word.
    ///
    /// # Safety
    ///
    /// `i + 8 <= PAGE_SIZE`.
    #[inline(always)]
    unsafe fn read64(self, i: usize) -> u64 {
        debug_assert!(i + 8 <= PAGE_SIZE);
        // SAFETY: the caller's contract: the 8 bytes are inside the page.
        u64::from_le(unsafe { self.0.as_ptr().add(i).cast::<u64>().read_unaligned() })
    }

    /// `page[i]` for `i < PAGE_SIZE` (masked into the page: no check).
    #[inline(always)]
    fn byte(self, i: usize) -> u8 {
        self.0[i & (PAGE_SIZE - 1)]
    }

    /// The number of bytes before `a` that equal those before `b`
    /// (`b < a`), at most `limit` (`limit <= b`): the 8 bytes before each
    /// compared as one word (the equal bytes counted from the highest byte
    /// of the XOR down, no branch on them), byte by byte past a whole equal
    /// word or when `b < 8`.
    #[inline(always)]
    fn count_back(self, a: usize, b: usize, limit: usize) -> usize {
        debug_assert!(b < a && limit <= b);
        let mut n = 0;
        if b >= 8 {
            // SAFETY: 8 <= b < a < PAGE_SIZE: both words are inside the
            // page.
            let x = unsafe { self.read64(a - 8) ^ self.read64(b - 8) };
            n = ((x.leading_zeros() / 8) as usize).min(limit);
            if n < 8 {
                return n;
            }
        }
        while n < limit && self.byte(a - 1 - n) == self.byte(b - 1 - n) {
            n += 1;
        }
        n
    }

    /// The number of bytes from `a` on that equal those from `b` on
    /// (`b < a`), up to [`MATCH_LIMIT`]: 8 bytes at a time, the first
    /// difference found from the lowest set bit of the words' XOR.
    #[inline(always)]
    fn count(self, a: usize, b: usize) -> usize {
        debug_assert!(b < a);
        let start = a;
        let (mut a, mut b) = (a, b);
        if a + 16 <= MATCH_LIMIT {
            // The first 16 bytes as two words, the count chosen without a
            // branch on which word differs (most matches end in them).
            // SAFETY: b < a and a + 16 <= MATCH_LIMIT < PAGE_SIZE.
            let (x1, x2) = unsafe {
                (
                    self.read64(a) ^ self.read64(b),
                    self.read64(a + 8) ^ self.read64(b + 8),
                )
            };
            let n1 = (x1.trailing_zeros() / 8) as usize;
            let n2 = 8 + (x2.trailing_zeros() / 8) as usize;
            let n = if x1 != 0 { n1 } else { n2 };
            if n < 16 {
                return n;
            }
            a += 16;
            b += 16;
        }
        while a + 8 <= MATCH_LIMIT && b < a {
            // SAFETY: b < a and a + 8 <= MATCH_LIMIT < PAGE_SIZE (the loop
            // condition): both words are inside the page.
            let x = unsafe { self.read64(a) ^ self.read64(b) };
            if x != 0 {
                return a - start + (x.trailing_zeros() / 8) as usize;
            }
            a += 8;
            b += 8;
        }
        while a < MATCH_LIMIT && self.byte(a) == self.byte(b) {
            a += 1;
            b += 1;
        }
        a.saturating_sub(start)
    }
}
