//! The decoder's fast loop: whole-word ("wild") copies while both buffers
//! have room for them. The only `unsafe` code of the decoder.
//!
//! Positions are indices (`ip` into `src`, `op` into `dst`) and every
//! pointer is made from a slice at the point of use, so each `unsafe` block
//! needs only index arithmetic to show it stays inside its slice. Each
//! sequence is checked once against both margins at its token (`ip +
//! 1 + IN_MARGIN <= src.len()`, `dst.len() - op >= OUT_MARGIN`); with them
//! a sequence of up to 14 literals and a match of up to 18 bytes (the
//! common one) needs no other check than its offset's; longer runs and
//! lengths check their own bytes. `dst[..op]` is the output so far at every
//! token.
//!
//! # Measured (callgrind Ir of `Zswap::load` over 512 loads of the bench
//! corpus, `loadcg` driver; time from the quick bench's "zswap lz4_block
//! decoder / C lz4 decompress" row, medians of 5 alternated runs, load
//! average 2 to 3)
//!
//! Kept:
//! - Both margin checks at the token, the input one moved from after it:
//!   the long-match path no longer checks `ip < src.len()` after its
//!   length (the next token's check covers it), and the short path has the
//!   same two compares as before. The first extension byte of a match
//!   length is read without a bounds check (the input margin covers it;
//!   a length of 255 or more goes on in `read_length`), and a long match
//!   checks the room for its wild copy first (the error check only on the
//!   rare other way). Decoder 9386 -> 9125 Ir/load (-2.8 %); decoder/C
//!   1.071 [1.068..1.075] -> 1.029 [1.025..1.031], again 1.074 -> 1.030
//!   and 1.074 -> 1.032 in later rounds.
//! - Long matches at offset 32 or more in 32-byte steps at every length
//!   (before: 8-byte words up to 24 bytes, a branch on the length):
//!   decoder 9125 -> 9022 Ir/load, decoder/C 1.029 [1.023..1.031] -> 0.995
//!   [0.990..0.996] and 1.030 [1.029..1.031] -> 0.996 [0.994..0.997] (6
//!   alternated runs each), load/C 1.129 -> 1.086 and 1.118 -> 1.081.
//!
//! Rejected:
//! - The input position as a pointer (`[ip]` addressing instead of
//!   `[src + ip]`): 8965 Ir/load (-1.8 % against the kept loop) but
//!   decoder/C 1.044 against 1.032 (LLVM adds the literal count and the
//!   token's byte separately, a longer chain token -> next token).
//! - Past the token, the literals and the offset in one add (`ip += lit +
//!   3`, the offset read at `ip - 2`; in index and pointer forms, and with
//!   `ip + 3` hidden from LLVM's reassociation so the chain is load -> shift
//!   -> add): 9135 to 9790 Ir/load, decoder/C 1.036 and 1.040 against
//!   1.030: the shorter chain does not pay for the extra address
//!   arithmetic LLVM emits, so that chain is not what bounds the loop.
//! - A long match's wild-copy room as one compare against a precomputed
//!   `n_out - SLACK` (LLVM then also moves the output check to the loop's
//!   bottom): 8890 Ir/load (-2.6 %) but decoder/C 1.041 [1.039..1.046]
//!   against 1.029 [1.028..1.031]; with loops aligned to 64 bytes in both
//!   builds 1.035 against 1.037: no gain in time, a code placement effect.

use core::ptr;

use kbase::{Error, Result};

use super::{MIN_MATCH, copy_match, read_length};

/// Input bytes a sequence with a short literal run (0 to 14 bytes) needs
/// after its token: one 16-byte literal word, and the next token (which
/// also covers the 2-byte offset after up to 14 literals: 14 + 2 < 17).
const IN_MARGIN: usize = 16 + 1;
/// Bytes a short match (length 4 to 18) may write: 8 + 8 + 2 bytes at an
/// offset of 8 or more, up to four 8-byte pattern words below that.
const SHORT_MATCH_WORDS: usize = 32;
/// Output bytes the loop keeps at every token: after up to 14 literals
/// (one 16-byte word) the room a short match writes in. With it the loop
/// checks the output once a sequence, after its match.
const OUT_MARGIN: usize = 14 + SHORT_MATCH_WORDS;
/// Room a long wild copy needs in a buffer past the bytes it must copy: it
/// copies in words, overshooting by up to [`SHORT_MATCH_WORDS`] bytes (a
/// match's first words are written whole).
const SLACK: usize = SHORT_MATCH_WORDS;

/// Where the fast loop stopped: at the token `src[ip]`, with `dst[..op]`
/// decoded; the careful loop goes on from there.
pub(super) struct Tail {
    pub(super) ip: usize,
    pub(super) op: usize,
}

/// Decodes sequences while the margins hold; see the module docs.
///
/// Starts at the token at `src[ip]` with `dst[..op]` decoded (`EIO` if
/// `ip > src.len()` or `op > dst.len()`) and stops at the token of the
/// first sequence it leaves to the careful loop: one too close to the end of
/// `src` or `dst` for its word copies, and the block's last sequence (the
/// loop never decodes the end of a block: a sequence whose literals end the
/// input is always near its end). With `LAST` set the block ends where
/// `src` ends; without it `src` is only the first part of the block's input
/// (an object split over two pages): a sequence that runs past the end of
/// `src` is not decoded at all and the loop stops at its token, with
/// `dst[..op]` as it was there, and every error it returns is one of the
/// sequence's output (offset, room in `dst`), the same whatever follows
/// `src`.
pub(super) fn run<const LAST: bool>(
    src: &[u8],
    dst: &mut [u8],
    mut ip: usize,
    mut op: usize,
) -> Result<Tail> {
    let (n_in, n_out) = (src.len(), dst.len());
    if ip > n_in || op > n_out {
        return Err(Error::EIO);
    }
    // The margins as limits on the positions, one compare each: with ip
    // at a token, ip < in_end means the token and IN_MARGIN bytes after it
    // are there (ip + 1 + IN_MARGIN <= n_in; never true if n_in <=
    // IN_MARGIN), and op < out_end means n_out - op >= OUT_MARGIN.
    let in_end = n_in.saturating_sub(IN_MARGIN);
    let out_end = (n_out + 1).saturating_sub(OUT_MARGIN);
    // INVARIANT: at every token, n_out - op >= OUT_MARGIN (checked here and
    // after each match) and dst[..op] is the output so far.
    loop {
        // Where this sequence starts: a sequence near an end is left to the
        // caller from here. One input check a sequence, at its token: a
        // short literal run needs the IN_MARGIN bytes after the token, a
        // long one at least as many (its run, the offset and SLACK), so a
        // sequence this check stops would stop at its literals anyway.
        let at = Tail { ip, op };
        if unlikely(op >= out_end) {
            return Ok(at);
        }
        if unlikely(ip >= in_end) {
            return Ok(at);
        }
        // SAFETY: ip < in_end <= n_in = src.len() (just checked).
        let token = unsafe { *src.as_ptr().add(ip) };
        ip += 1;
        let lit = usize::from(token >> 4);
        if likely(lit < 15) {
            // SAFETY: ip + 17 <= n_in (ip - 1 < in_end) and op + 16 <= n_out
            // (the invariant: OUT_MARGIN >= 16): 16 bytes are readable at
            // src[ip] and writable at dst[op]; `src` and `dst` are a shared
            // and a mutable borrow, so they do not overlap.
            unsafe { ptr::copy_nonoverlapping(src.as_ptr().add(ip), dst.as_mut_ptr().add(op), 16) };
            // lit <= 14: ip + 3 <= n_in now (the offset and the next token
            // are there, so the block does not end after these literals),
            // and n_out - op >= OUT_MARGIN - 14 = SHORT_MATCH_WORDS.
            ip += lit;
            op += lit;
        } else {
            let lit = match read_length(src, &mut ip) {
                Ok(n) => lit + n,
                Err(_) if !LAST => return Ok(at),
                Err(e) => return Err(e),
            };
            if lit > n_in - ip {
                return if LAST { Err(Error::EIO) } else { Ok(at) };
            }
            if lit > n_out - op {
                return Err(Error::EIO);
            }
            if n_in - ip < lit + SLACK || n_out - op < lit + OUT_MARGIN {
                // The run ends near the end of the input or the output
                // (maybe the block's last literals): the careful loop
                // decodes this sequence.
                return Ok(at);
            }
            // SAFETY: both buffers have lit + SLACK bytes from ip and
            // op (just checked; OUT_MARGIN >= SLACK), and `src` and `dst`
            // do not overlap (see above).
            unsafe { copy_words(src.as_ptr().add(ip), dst.as_mut_ptr().add(op), lit) };
            // n_in - ip >= SLACK and n_out - op >= OUT_MARGIN after them.
            ip += lit;
            op += lit;
        }
        // SAFETY: ip + 3 <= n_in: after short literals and long ones (see
        // above).
        let offset = usize::from(u16::from_le_bytes(unsafe {
            src.as_ptr().add(ip).cast::<[u8; 2]>().read()
        }));
        ip += 2;
        // Offset 0, or one reaching before the output's start.
        if unlikely(offset.wrapping_sub(1) >= op) {
            return Err(Error::EIO);
        }
        let nibble = usize::from(token & 15);
        if likely(nibble < 15) {
            // A short match (4 to 18 bytes); n_out - op >= SHORT_MATCH_WORDS
            // (see above) and ip < n_in (the next token is there).
            let len = nibble + MIN_MATCH;
            if likely(offset >= 8) {
                // SAFETY: 8 <= offset <= op (checked above) and op + 18 <=
                // n_out: `to` is dst[op] and `from` dst[op - offset], both
                // in `dst`; each source ends by its destination's end minus
                // 8, in output already written (the earlier words first),
                // and is disjoint from its destination.
                unsafe {
                    let to = dst.as_mut_ptr().add(op);
                    let from = to.sub(offset);
                    ptr::copy_nonoverlapping(from, to, 8);
                    ptr::copy_nonoverlapping(from.add(8), to.add(8), 8);
                    ptr::copy_nonoverlapping(from.add(16), to.add(16), 2);
                }
            } else {
                // SAFETY: 1 <= offset <= op (checked above), the length
                // is 4 to 18, and op + SHORT_MATCH_WORDS <= n_out =
                // dst.len(); the pointer covers `dst`.
                unsafe { copy_match_wild(dst.as_mut_ptr(), op, offset, len) };
            }
            op += len;
            continue;
        }
        // The length's first extension byte is there (ip < n_in, see
        // above); more of them are rare.
        // SAFETY: ip < n_in = src.len().
        let ext = unsafe { *src.as_ptr().add(ip) };
        ip += 1;
        let mut len = nibble + usize::from(ext) + MIN_MATCH;
        if unlikely(ext == 255) {
            len = match read_length(src, &mut ip) {
                Ok(n) => len + n,
                Err(_) if !LAST => return Ok(at),
                Err(e) => return Err(e),
            };
        }
        if likely(n_out - op >= len + SLACK) {
            // SAFETY: 1 <= offset <= op (checked above), len >= 4
            // and op + len + SLACK <= n_out = dst.len() (both bounds of
            // copy_match_wild, as SLACK = 32); the pointer covers `dst`.
            unsafe { copy_match_wild(dst.as_mut_ptr(), op, offset, len) };
        } else if len > n_out - op {
            return Err(Error::EIO);
        } else {
            copy_match(dst, op, offset, len)?;
        }
        op += len;
    }
}

/// Marks the path that calls it as the rare one, so that the compiler lays
/// the common one out straight (no taken branch); no code of its own.
#[cold]
#[inline]
fn cold() {}

/// `b`, expected true: the other way is laid out of line.
#[inline(always)]
fn likely(b: bool) -> bool {
    if !b {
        cold();
    }
    b
}

/// `b`, expected false: its way is laid out of line.
#[inline(always)]
fn unlikely(b: bool) -> bool {
    if b {
        cold();
    }
    b
}

/// Copies `len` bytes from `from` to `to` in 32-byte steps (so up to
/// `len + 31` bytes).
///
/// # Safety
///
/// `from` must be valid for reads and `to` for writes of `len + 31` bytes
/// (`len.next_multiple_of(32)` suffices), and the two ranges must not
/// overlap.
#[inline(always)]
unsafe fn copy_words(from: *const u8, to: *mut u8, len: usize) {
    let mut i = 0;
    while i < len {
        // SAFETY: i < len, so i + 32 <= len + 31: inside both ranges, which
        // the caller guarantees valid and disjoint.
        unsafe { ptr::copy_nonoverlapping(from.add(i), to.add(i), 32) };
        i += 32;
    }
}

/// Copies the match of `len` bytes at `offset` back to `dst[op..]` in whole
/// words: the bytes `dst[op..op + len]` come out as the format defines them
/// (an overlapping match repeats its `offset`-byte pattern); the bytes
/// after them up to `op + 32` (a match of up to 32 bytes) or `op + len + 31`
/// (a longer one) may be overwritten with unspecified values.
///
/// # Safety
///
/// `dst` must be valid for reads and writes of `n` bytes (one allocation,
/// all initialised) with `1 <= offset <= op`, `len >= 4`, and
/// `op + SHORT_MATCH_WORDS <= n` if `len <= 32`, `op + len + 31 <= n` if
/// `len > 32`. Every write below stays inside that bound: a match of up to
/// 32 bytes is written as at most 32 bytes of whole words (each loop ends
/// by `op + 32` when `end <= op + 32`), a longer one by `end + 31`.
#[inline(always)]
unsafe fn copy_match_wild(dst: *mut u8, op: usize, offset: usize, len: usize) {
    let end = op + len;
    // Matches of offset below 32 go in 8-byte words even when wider ones
    // would do: a match often reads bytes written a moment ago, and a load
    // that spans two earlier stores cannot be forwarded from them (it waits
    // for them to reach the cache); 8-byte loads fall inside one store more
    // often. Measured: 16-byte words for short matches made the decoder 8 %
    // slower. At offset 32 or more every length (19 or more here, the fast
    // loop's short matches at such offsets do not come here) goes in 32-byte
    // steps: sending lengths up to 24 to 8-byte words instead was a branch
    // on the length that cost more than it saved (decoder/C 1.030 -> 0.996
    // without it, 9125 -> 9022 Ir/load).
    if offset >= 32 {
        // The first step unconditionally (len > 0, so d = op < end).
        let mut d = op;
        loop {
            // SAFETY: d < end, so d + 32 <= end + 31, within the bound (n if
            // len > 32; op + 32 otherwise, as then d = op); the source
            // d - offset >= 0 ends by d (offset >= 32): output already,
            // disjoint from [d, d + 32).
            unsafe { ptr::copy_nonoverlapping(dst.add(d - offset), dst.add(d), 32) };
            d += 32;
            if d >= end {
                break;
            }
        }
    } else if offset >= 8 {
        // SAFETY: three 8-byte words end at op + 24 < n; their sources
        // start at op - offset >= 0 and end by op + 16 (offset >= 8), each
        // before its own destination (output already, the earlier words
        // written first) and disjoint from it.
        unsafe {
            let (from, to) = (dst.add(op - offset), dst.add(op));
            ptr::copy_nonoverlapping(from, to, 8);
            ptr::copy_nonoverlapping(from.add(8), to.add(8), 8);
            ptr::copy_nonoverlapping(from.add(16), to.add(16), 8);
        }
        let mut d = op + 24;
        while d < end {
            // SAFETY: d < end: d + 8 <= end + 7, within the bound (n if
            // len > 32; op + 32 otherwise, as d <= op + 24); the source
            // [d - offset, d - offset + 8) ends by d (offset >= 8).
            unsafe { ptr::copy_nonoverlapping(dst.add(d - offset), dst.add(d), 8) };
            d += 8;
        }
    } else {
        // offset 1..=7: the first 8 output bytes as one word, built from the
        // pattern's bytes.
        // SAFETY: op - offset >= 0 and op - offset + 8 <= op + 7 < n: inside
        // `dst`, and initialised (bytes from op on are read but masked off).
        let word = u64::from_le(unsafe { dst.add(op - offset).cast::<u64>().read_unaligned() });
        let pat = word & (u64::MAX >> (64 - 8 * offset));
        let (word, period) = match offset {
            1 => (pat * 0x0101_0101_0101_0101, 8),
            2 => (pat * 0x0001_0001_0001_0001, 8),
            4 => (pat * 0x0000_0001_0000_0001, 8),
            // The smallest multiple of the offset that is at least 8: the
            // output repeats with that period too.
            _ => {
                let mut w = pat;
                let mut shift = 8 * offset;
                while shift < 64 {
                    w |= pat << shift;
                    shift += 8 * offset;
                }
                (w, offset * 8usize.div_ceil(offset))
            }
        };
        let word = word.to_le();
        if period == 8 {
            // SAFETY: two words up to op + 16 < n.
            unsafe {
                dst.add(op).cast::<u64>().write_unaligned(word);
                dst.add(op + 8).cast::<u64>().write_unaligned(word);
            }
            if end > op + 16 {
                // SAFETY: op + 32 is within the bound either way.
                unsafe {
                    dst.add(op + 16).cast::<u64>().write_unaligned(word);
                    dst.add(op + 24).cast::<u64>().write_unaligned(word);
                }
            }
            let mut d = op + 32;
            while d < end {
                // SAFETY: d < end (so len > 32): d + 32 <= end + 31 <= n.
                unsafe {
                    dst.add(d).cast::<u64>().write_unaligned(word);
                    dst.add(d + 8).cast::<u64>().write_unaligned(word);
                    dst.add(d + 16).cast::<u64>().write_unaligned(word);
                    dst.add(d + 24).cast::<u64>().write_unaligned(word);
                }
                d += 32;
            }
        } else {
            // SAFETY: op + 8 < n.
            unsafe { dst.add(op).cast::<u64>().write_unaligned(word) };
            let mut d = op + 8;
            while d < end {
                // SAFETY: d < end: d + 8 <= end + 7, within the bound (n if
                // len > 32; op + 32 otherwise, as d <= op + 24); the source
                // d - period >= op + 8 - (offset + 7) > op - offset >= 0
                // (period < offset + 8) lies in the pattern or in output
                // already written, and is disjoint from [d, d + 8) as
                // period >= 8.
                unsafe { ptr::copy_nonoverlapping(dst.add(d - period), dst.add(d), 8) };
                d += 8;
            }
        }
    }
}
