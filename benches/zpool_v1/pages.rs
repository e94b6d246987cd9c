//! Page ownership and raw byte movement over chains of pages.
//!
//! The only `unsafe` of the crate lives here: giving a page back to the
//! platform allocator. Reading and writing object bytes goes through
//! [`PageFrame::as_slice`] / [`PageFrame::as_mut_slice`], whose borrows are
//! tied to the class lock guard that owns the zspage, so the borrow checker
//! proves exclusive access for writers and shared access for readers.
//!
//! # Invariants
//!
//! Every [`PageFrame`] a pool holds was returned by `alloc_page` of that
//! pool's own allocator, and is held in exactly one place (a zspage, or a
//! spare being carried into or out of a class lock).

use kbase::{Error, Gfp, PAGE_SIZE, PageAllocator, PageFrame, Result};

/// Allocates one page for the pool with the caller's flags.
pub(crate) fn alloc_page<A: PageAllocator>(alloc: &A, gfp: Gfp) -> Result<PageFrame> {
    alloc.alloc_page(gfp)
}

/// Gives a page back to the allocator it came from.
pub(crate) fn free_page<A: PageAllocator>(alloc: &A, page: PageFrame) {
    // SAFETY: by the module invariant every frame the pool holds came from
    // `alloc_page` of the pool's allocator, which is `alloc` here (callers pass
    // `&self.alloc` of the pool that owns the frame), and `page` is moved in,
    // so it is given back exactly once.
    unsafe { alloc.free_page(page) }
}

/// The bytes `[off, off + len)` of a chain, as one slice or two (when they
/// cross a page boundary; the second is empty otherwise). `len <= PAGE_SIZE`.
pub(crate) fn segments(pages: &[PageFrame], off: usize, len: usize) -> Result<(&[u8], &[u8])> {
    let (p, o) = (off / PAGE_SIZE, off % PAGE_SIZE);
    let first_len = len.min(PAGE_SIZE - o);
    let first = pages
        .get(p)
        .and_then(|pg| pg.as_slice().get(o..o + first_len))
        .ok_or(Error::EIO)?;
    let rest = len - first_len;
    if rest == 0 {
        return Ok((first, &[]));
    }
    let second = pages
        .get(p + 1)
        .and_then(|pg| pg.as_slice().get(..rest))
        .ok_or(Error::EIO)?;
    Ok((first, second))
}

/// Copies `src` into the chain at `off` (may cross one page boundary).
pub(crate) fn write_at(pages: &mut [PageFrame], off: usize, src: &[u8]) -> Result<()> {
    let (p, o) = (off / PAGE_SIZE, off % PAGE_SIZE);
    let first_len = src.len().min(PAGE_SIZE - o);
    let (a, b) = src.split_at(first_len);
    pages
        .get_mut(p)
        .and_then(|pg| pg.as_mut_slice().get_mut(o..o + first_len))
        .ok_or(Error::EIO)?
        .copy_from_slice(a);
    if !b.is_empty() {
        pages
            .get_mut(p + 1)
            .and_then(|pg| pg.as_mut_slice().get_mut(..b.len()))
            .ok_or(Error::EIO)?
            .copy_from_slice(b);
    }
    Ok(())
}

/// Copies `len` bytes from `src` at `src_off` to `dst` at `dst_off`: two
/// different chains.
pub(crate) fn copy_between(
    src: &[PageFrame],
    src_off: usize,
    dst: &mut [PageFrame],
    dst_off: usize,
    len: usize,
) -> Result<()> {
    let (a, b) = segments(src, src_off, len)?;
    write_at(dst, dst_off, a)?;
    write_at(dst, dst_off + a.len(), b)
}

/// Copies `len` bytes from `src_off` to `dst_off` inside one chain; the two
/// ranges must not overlap (they are different object slots).
pub(crate) fn copy_within(
    pages: &mut [PageFrame],
    mut src_off: usize,
    mut dst_off: usize,
    mut len: usize,
) -> Result<()> {
    if src_off < dst_off + len && dst_off < src_off + len {
        return Err(Error::EIO);
    }
    while len > 0 {
        let (sp, so) = (src_off / PAGE_SIZE, src_off % PAGE_SIZE);
        let (dp, d_o) = (dst_off / PAGE_SIZE, dst_off % PAGE_SIZE);
        let n = len.min(PAGE_SIZE - so).min(PAGE_SIZE - d_o);
        if sp == dp {
            let pg = pages.get_mut(sp).ok_or(Error::EIO)?;
            pg.as_mut_slice().copy_within(so..so + n, d_o);
        } else {
            let (lo, hi) = (sp.min(dp), sp.max(dp));
            if hi >= pages.len() {
                return Err(Error::EIO);
            }
            let (left, right) = pages.split_at_mut(hi);
            let (lo_pg, hi_pg) = (
                left.get_mut(lo).ok_or(Error::EIO)?,
                right.first_mut().ok_or(Error::EIO)?,
            );
            let (s, d) = if sp < dp {
                (lo_pg, hi_pg)
            } else {
                (hi_pg, lo_pg)
            };
            let from = s.as_slice().get(so..so + n).ok_or(Error::EIO)?;
            d.as_mut_slice()
                .get_mut(d_o..d_o + n)
                .ok_or(Error::EIO)?
                .copy_from_slice(from);
        }
        src_off += n;
        dst_off += n;
        len -= n;
    }
    Ok(())
}
