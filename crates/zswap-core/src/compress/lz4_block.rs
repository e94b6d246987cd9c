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
//! the output has `fast::OUT_MARGIN` (46) bytes left and the input 17 after
//! the token, both checked once a sequence, at its token (as C lz4's fast
//! loop checks its margins once a sequence; `fast`'s docs give what was
//! measured): literal runs of up to 14 bytes are copied as one 16-byte word
//! (the 17 input bytes also cover the offset and the next
//! token), longer ones in 32-byte steps when both buffers have room past
//! them; short matches (4 to 18 bytes) as 8 + 8 + 2 bytes (offset 8 or
//! more) or from an 8-byte pattern word (offset 1 to 7), longer ones in
//! 32-byte steps (offset 32 or more), 8-byte words
//! or pattern words, each only when `dst` has room for the overshoot; long
//! matches without that room are copied exactly. Every length, offset and
//! position is checked against both buffers before any copy. A sequence
//! too close to the end of either buffer for its words (so one of the
//! block's last few) stops the loop at its token, and `careful`, an exact,
//! bounds-checked loop in safe code whose short copies need no `memcpy`
//! call, decodes the rest.
//!
//! # Split objects
//!
//! zpool packs objects byte by byte, so an object may span two pages and
//! its input comes in two parts. [`decompress_split`] decodes them without
//! joining them: the fast loop runs over the first part (in its "first
//! part" mode it stops at the token of any sequence that would read past
//! the part's end, before writing anything of it); the few bytes left of
//! the first part and the start of the second are copied into a small
//! window on the stack, joined, and the fast loop (again in its first part
//! mode, or to the block's end if the window holds all of the rest) decodes
//! the sequences that cross the split from there; once a token is in the
//! second part the fast loop and `careful` finish there. Where the window
//! does not reach (a literal run or length longer than it around the
//! split), `careful` reads the crossing sequences through an input of two
//! parts (each byte and each literal run's pieces from the part they are
//! in). Every sequence is decoded by exactly one of these, with the same
//! checks against the output, so the result is the one-part decoder's of
//! the joined input, bytes or `EIO`, for every split point (the tests and
//! the fuzz target `lz4_block` compare the two).

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
    let fast::Tail { ip, op } = fast::run::<true>(src, dst, 0, 0)?;
    match careful(src, dst, ip, op, usize::MAX)? {
        Careful::Done(n) => Ok(n),
        // Not reached: the loop only stops at `usize::MAX`.
        Careful::At { .. } => Err(Error::EIO),
    }
}

/// Decodes the LZ4 block whose input is `a` followed by `b` (an object split
/// over two pages) into `dst`, without joining the parts: exactly what
/// [`decompress`] of `a ++ b` does, the same bytes or `EIO`, for every split.
///
/// The fast loop runs over `a` while it has its margin, the few sequences
/// that cross from `a` into `b` are decoded exactly by the careful loop,
/// reading each byte from the part it is in (a literal run copied in at
/// most two pieces), and the fast loop goes on over `b`. Matches refer to the
/// output, which is not split. Never panics and never reads or writes
/// outside `a`, `b` and `dst`.
pub fn decompress_split(a: &[u8], b: &[u8], dst: &mut [u8]) -> Result<usize> {
    if b.is_empty() {
        return decompress(a, dst);
    }
    let fast::Tail { ip, op } = fast::run::<false>(a, dst, 0, 0)?;
    // The sequences that cross the split, from a window joining the rest of
    // `a` and the start of `b`.
    let rest = a.len().saturating_sub(ip);
    let (mut ip, mut op) = (ip, op);
    if rest <= WINDOW_A {
        // The window: the last WINDOW_A bytes of `a` (fewer if `a` is
        // shorter) and the first WINDOW_B of `b` (or all of it), each copied
        // as one fixed-size word when the part is long enough; the joined
        // input from `ip` on is `buf[WINDOW_A - rest..WINDOW_A + nb]`.
        let nb = b.len().min(WINDOW_B);
        let mut buf = [0u8; WINDOW_A + WINDOW_B];
        let (wa, wb) = buf.split_at_mut(WINDOW_A);
        match (a.last_chunk::<WINDOW_A>(), wa.last_chunk_mut::<WINDOW_A>()) {
            (Some(from), Some(to)) => *to = *from,
            _ => copy_exact(
                wa.get_mut(WINDOW_A - rest..).ok_or(Error::EIO)?,
                a.get(ip..).ok_or(Error::EIO)?,
            ),
        }
        match (
            b.first_chunk::<WINDOW_B>(),
            wb.first_chunk_mut::<WINDOW_B>(),
        ) {
            (Some(from), Some(to)) => *to = *from,
            _ => copy_exact(wb, b),
        }
        let win = buf.get(WINDOW_A - rest..WINDOW_A + nb).ok_or(Error::EIO)?;
        if nb == b.len() {
            // All the rest of the block is in the window.
            let fast::Tail { ip, op } = fast::run::<true>(win, dst, 0, op)?;
            return match careful(win, dst, ip, op, usize::MAX)? {
                Careful::Done(n) => Ok(n),
                Careful::At { .. } => Err(Error::EIO),
            };
        }
        let fast::Tail { ip: wi, op: wo } = fast::run::<false>(win, dst, 0, op)?;
        // The window's token `wi` is the joined input's `ip + wi`.
        ip += wi;
        op = wo;
    }
    let (ip, op) = match careful(&Split { a, b }, dst, ip, op, a.len())? {
        Careful::Done(n) => return Ok(n),
        Careful::At { ip, op } => (ip, op),
    };
    // The next token is in `b`: the rest of the block is there.
    let ip = ip.checked_sub(a.len()).ok_or(Error::EIO)?;
    let fast::Tail { ip, op } = fast::run::<true>(b, dst, ip, op)?;
    match careful(b, dst, ip, op, usize::MAX)? {
        Careful::Done(n) => Ok(n),
        Careful::At { .. } => Err(Error::EIO),
    }
}

/// The most bytes left of a split object's first part that
/// [`decompress_split`] joins with the second part's start in a window
/// (the fast loop stops 17 bytes before a part's end unless a long literal
/// run or length is in the way).
const WINDOW_A: usize = 48;
/// The bytes of the second part in that window: past the 17 the fast loop
/// needs at a token, so that it stops in the second part.
const WINDOW_B: usize = 64;

/// A block's input as the careful loop reads it: one slice, or the two parts
/// of a split object ([`Split`]). Positions count from the start of the
/// whole input.
trait Input {
    /// The whole input's length.
    fn len(&self) -> usize;
    /// The byte at `i`, if the input has one.
    fn byte(&self, i: usize) -> Option<u8>;
    /// Copies `to.len()` bytes from `i` on into `to`; `None` (nothing
    /// copied) if the input ends first.
    fn copy_to(&self, i: usize, to: &mut [u8]) -> Option<()>;
}

impl Input for [u8] {
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.get(i).copied()
    }

    fn copy_to(&self, i: usize, to: &mut [u8]) -> Option<()> {
        let from = self.get(i..)?.get(..to.len())?;
        copy_exact(to, from);
        Some(())
    }
}

/// The input `a ++ b`, not joined.
struct Split<'a> {
    a: &'a [u8],
    b: &'a [u8],
}

impl Input for Split<'_> {
    fn len(&self) -> usize {
        // Cannot overflow: both are slices of memory.
        self.a.len() + self.b.len()
    }

    fn byte(&self, i: usize) -> Option<u8> {
        match i.checked_sub(self.a.len()) {
            None => self.a.get(i).copied(),
            Some(j) => self.b.get(j).copied(),
        }
    }

    fn copy_to(&self, i: usize, to: &mut [u8]) -> Option<()> {
        let n = to.len();
        if i.checked_add(n)? > self.len() {
            return None;
        }
        // The part of the run in `a` (none if it starts in `b`), then the
        // rest from `b`.
        let in_a = self.a.len().saturating_sub(i).min(n);
        let (to_a, to_b) = to.split_at_mut(in_a);
        if in_a > 0 {
            copy_exact(to_a, self.a.get(i..i + in_a)?);
        }
        if !to_b.is_empty() {
            // The run reaches into `b`: it goes on at b's start (i + in_a
            // is a.len()) or starts there.
            let j = (i + in_a).checked_sub(self.a.len())?;
            copy_exact(to_b, self.b.get(j..j + to_b.len())?);
        }
        Some(())
    }
}

/// Where the careful loop stopped.
enum Careful {
    /// The block ended: the output is `dst[..n]`.
    Done(usize),
    /// At a token at or past the stop position: `src[ip]`, with `dst[..op]`
    /// decoded.
    At { ip: usize, op: usize },
}

/// Decodes the sequences of `src` from `ip` on into `dst` from `op` on,
/// byte-exact: nothing is read or written outside the sequence's own bytes.
/// `dst[..op]` is the output so far. Stops before a token at `stop` or later
/// (`usize::MAX`: never).
fn careful<I: Input + ?Sized>(
    src: &I,
    dst: &mut [u8],
    mut ip: usize,
    mut op: usize,
    stop: usize,
) -> Result<Careful> {
    loop {
        if ip >= stop {
            return Ok(Careful::At { ip, op });
        }
        let token = src.byte(ip).ok_or(Error::EIO)?;
        ip += 1;
        let mut lit = usize::from(token >> 4);
        if lit == 15 {
            lit += read_length(src, &mut ip)?;
        }
        let to = dst
            .get_mut(op..)
            .and_then(|d| d.get_mut(..lit))
            .ok_or(Error::EIO)?;
        src.copy_to(ip, to).ok_or(Error::EIO)?;
        ip += lit;
        op += lit;
        if ip == src.len() {
            return Ok(Careful::Done(op));
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
fn read_length<I: Input + ?Sized>(src: &I, ip: &mut usize) -> Result<usize> {
    let mut sum = 0usize;
    loop {
        let b = src.byte(*ip).ok_or(Error::EIO)?;
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
fn read_offset<I: Input + ?Sized>(src: &I, ip: &mut usize) -> Result<usize> {
    let lo = src.byte(*ip).ok_or(Error::EIO)?;
    let hi = src.byte(*ip + 1).ok_or(Error::EIO)?;
    *ip += 2;
    match usize::from(u16::from_le_bytes([lo, hi])) {
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
    // far; the rest repeats them.
    let win = dst.get_mut(start..op + len).ok_or(Error::EIO)?;
    if offset >= len {
        // No overlap: one copy.
        let (head, tail) = win.split_at_mut(offset);
        copy_exact(tail, head.get(..len).ok_or(Error::EIO)?);
        return Ok(());
    }
    if len <= 32 {
        // A short overlapping match (the tail of a block: the format ends
        // in literals, so its last matches are short) byte by byte, which
        // repeats the pattern by itself.
        for i in offset..win.len() {
            if let Some(&b) = win.get(i - offset)
                && let Some(to) = win.get_mut(i)
            {
                *to = b;
            }
        }
        return Ok(());
    }
    // Each step copies the valid prefix (a whole number of periods) after
    // itself, doubling it.
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

/// Copies `from` to `to` (their common length); runs of up to 16 bytes in
/// two overlapping words, not through a `memcpy` call: the careful loop's
/// copies are short (the last sequences of a block, those around a split).
fn copy_exact(to: &mut [u8], from: &[u8]) {
    let n = to.len().min(from.len());
    let (Some(to), Some(from)) = (to.get_mut(..n), from.get(..n)) else {
        return;
    };
    if n > 16 {
        to.copy_from_slice(from);
    } else if n >= 8 {
        copy_ends::<8>(to, from);
    } else if n >= 4 {
        copy_ends::<4>(to, from);
    } else if n > 0 {
        // 1 to 3 bytes: the first, the middle and the last (some the same).
        for i in [0, n / 2, n - 1] {
            if let (Some(t), Some(&f)) = (to.get_mut(i), from.get(i)) {
                *t = f;
            }
        }
    }
}

/// Copies the first and the last `W` bytes of `from` to `to` (of one length,
/// `W` to `2 * W`): all of it.
#[inline(always)]
fn copy_ends<const W: usize>(to: &mut [u8], from: &[u8]) {
    if let (Some(t), Some(f)) = (to.first_chunk_mut::<W>(), from.first_chunk::<W>()) {
        *t = *f;
    }
    if let (Some(t), Some(f)) = (to.last_chunk_mut::<W>(), from.last_chunk::<W>()) {
        *t = *f;
    }
}
