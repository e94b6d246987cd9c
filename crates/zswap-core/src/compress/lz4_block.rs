//! An LZ4 block decoder for zswap's load path: memory safe on any input, and
//! fast on valid input.
//!
//! # Format
//!
//! A block is a run of sequences. Each starts with a token byte: its high
//! nibble is the literal count, its low nibble the match length minus
//! 4 (`MIN_MATCH`); a nibble of 15 continues in extension bytes that are added
//! to it, up to and including the first one that is not 255. Then come the
//! literals, a 2-byte little-endian match offset and the match length's
//! extension bytes. The block ends where the input ends right after a
//! sequence's literals (the last sequence has no match).
//!
//! # What is accepted
//!
//! Exactly what `lz4_flex`'s block decoder accepts, with the same output
//! (the differential fuzz target `lz4_block` and this module's tests hold it
//! to that):
//!
//! - an error: empty input; input that ends inside a length, a literal run
//!   or an offset, or right after a match (the final literals-only sequence
//!   is missing); offset 0; an offset reaching before the start of the
//!   output; a literal run or match that would not fit in `dst`;
//! - success with the number of bytes written, which may be below
//!   `dst.len()` (zswap's caller wants exactly one page and treats anything
//!   else as `EIO`). The format's end-of-block rules for encoders (the last
//!   five bytes are literals, the last match starts twelve bytes before the
//!   end) are not checked, as `lz4_flex` does not check them. Bytes after a
//!   complete block turn its last sequence into one with a match (the block
//!   only ended because the input did), so into a full page they are always
//!   an error.
//!
//! Bytes of `dst` past the returned length are unspecified (the fast loop
//! copies in whole words and may write up to 31 bytes past a sequence's
//! end inside `dst`); on error all of `dst` is.
//!
//! # How
//!
//! A fast loop (`fast`, the only `unsafe` code of the decoder) runs while
//! at least `fast::IN_MARGIN` input and `fast::OUT_MARGIN` output bytes
//! are left at a token: literal runs of up to 14 bytes are copied as one
//! 16-byte word, longer ones in 32-byte steps; matches in 32-byte steps
//! (offset 32 or more and longer than 24 bytes), 8-byte words (offset 8 or
//! more) or from an 8-byte pattern word (offset 1 to 7), each only when
//! `dst` has room for the overshoot; longer literals and
//! matches without that room are copied exactly. Every length, offset and
//! position is checked against both buffers before any copy. The last few
//! sequences go through `careful`, an exact, bounds-checked loop in safe
//! code.

mod fast;

#[cfg(all(test, not(loom)))]
mod tests;

use kbase::{Error, Result};

/// The shortest match of the format (a match length nibble of 0).
const MIN_MATCH: usize = 4;

/// Decodes the LZ4 block `src` into `dst`; returns the number of bytes
/// written (`dst[..n]`).
///
/// `EIO` for anything that is not a block whose output fits in `dst` (see
/// the module docs for exactly what is accepted). Never panics and never
/// reads or writes outside `src` and `dst`, whatever `src` holds.
pub fn decompress(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    match fast::run(src, dst)? {
        fast::Step::Done(n) => Ok(n),
        fast::Step::Tail { ip, op } => careful(src, dst, ip, op),
    }
}

/// Decodes the sequences of `src` from `ip` on into `dst` from `op` on,
/// byte-exact: nothing is read or written outside the sequence's own bytes.
/// `dst[..op]` is the output so far.
fn careful(src: &[u8], dst: &mut [u8], mut ip: usize, mut op: usize) -> Result<usize> {
    loop {
        let token = *src.get(ip).ok_or(Error::EIO)?;
        ip += 1;
        let mut lit = usize::from(token >> 4);
        if lit == 15 {
            lit += read_length(src, &mut ip)?;
        }
        let from = src.get(ip..).and_then(|s| s.get(..lit)).ok_or(Error::EIO)?;
        let to = dst
            .get_mut(op..)
            .and_then(|d| d.get_mut(..lit))
            .ok_or(Error::EIO)?;
        to.copy_from_slice(from);
        ip += lit;
        op += lit;
        if ip == src.len() {
            return Ok(op);
        }
        let offset = read_offset(src, &mut ip)?;
        let mut len = usize::from(token & 15);
        if len == 15 {
            len += read_length(src, &mut ip)?;
        }
        len += MIN_MATCH;
        copy_match(dst, op, offset, len)?;
        op += len;
    }
}

/// Reads a length's extension bytes at `ip` (moving it past them) and
/// returns their sum. `EIO` if the input ends first.
fn read_length(src: &[u8], ip: &mut usize) -> Result<usize> {
    let mut sum = 0usize;
    loop {
        let b = *src.get(*ip).ok_or(Error::EIO)?;
        *ip += 1;
        // Cannot overflow: at most 255 per input byte.
        sum += usize::from(b);
        if b != 255 {
            return Ok(sum);
        }
    }
}

/// Reads a match offset at `ip` (moving it past). `EIO` if the input ends
/// first or the offset is 0.
fn read_offset(src: &[u8], ip: &mut usize) -> Result<usize> {
    let b = src
        .get(*ip..)
        .and_then(|s| s.first_chunk::<2>())
        .ok_or(Error::EIO)?;
    *ip += 2;
    match usize::from(u16::from_le_bytes(*b)) {
        0 => Err(Error::EIO),
        offset => Ok(offset),
    }
}

/// Copies a match of `len` bytes from `offset` bytes back to `dst[op..]`,
/// exactly (overlapping matches repeat their pattern). `EIO` if the source
/// starts before `dst` or the match does not fit.
fn copy_match(dst: &mut [u8], op: usize, offset: usize, len: usize) -> Result {
    let start = op.checked_sub(offset).ok_or(Error::EIO)?;
    if offset == 0 || len > dst.len().saturating_sub(op) {
        return Err(Error::EIO);
    }
    // The window [start, op + len): its first `offset` bytes are output so
    // far; the rest repeats them. Each step copies the valid prefix (a whole
    // number of periods) after itself, doubling it.
    let win = dst.get_mut(start..op + len).ok_or(Error::EIO)?;
    let mut valid = offset;
    while valid < win.len() {
        let n = valid.min(win.len() - valid);
        let (head, tail) = win.split_at_mut(valid);
        if let (Some(to), Some(from)) = (tail.get_mut(..n), head.get(..n)) {
            to.copy_from_slice(from);
        }
        valid += n;
    }
    Ok(())
}
