//! Page ownership and raw byte movement over chains of pages.
//!
//! The crate's `unsafe` lives here: giving a page back to the platform
//! allocator, and every access to object bytes. Object bytes are reached
//! through raw pointers confined to the object's own range, never through a
//! reference to a whole page, because a pinned load
//! ([`ZsPool::read_with`](crate::ZsPool::read_with)) reads an object with
//! the class lock dropped while other objects of the same page are written or
//! freed under the lock: a `&mut [u8; PAGE_SIZE]` made for one of those would
//! claim the reader's bytes too.
//!
//! # Invariants
//!
//! Every [`PageFrame`] a pool holds was returned by `alloc_page` of that
//! pool's own allocator, and is held in exactly one place (a zspage, or a
//! spare being carried into or out of a class lock). The bytes of an object
//! are written only under its class lock while no reader has it pinned (see
//! `state.rs`), and a page is freed only while no object on it is pinned.

use core::ptr;

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

/// An object's bytes as one or two raw ranges (two when it crosses a page
/// boundary; `b_len == 0` otherwise). Only pointers: holding one borrows
/// nothing, so it can outlive the class lock while the object is pinned.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawSegs {
    a: *const u8,
    a_len: usize,
    b: *const u8,
    b_len: usize,
}

impl RawSegs {
    /// The two ranges as slices.
    ///
    /// # Safety
    ///
    /// The pages the ranges point into must still be held by the pool, and
    /// nobody may write the object's bytes, for as long as the returned
    /// slices live (the object is pinned, or the class lock is held).
    pub(crate) unsafe fn slices<'a>(self) -> (&'a [u8], &'a [u8]) {
        // SAFETY: `a`/`b` point into held pages, `a_len`/`b_len` stay inside
        // them (checked in `raw_segments`), and the caller guarantees no
        // write and no free while the slices live. A null `b` only occurs
        // with `b_len == 0`, where a dangling pointer is used instead.
        unsafe {
            let a = core::slice::from_raw_parts(self.a, self.a_len);
            let b = if self.b_len == 0 {
                &[][..]
            } else {
                core::slice::from_raw_parts(self.b, self.b_len)
            };
            (a, b)
        }
    }

    /// Total length.
    pub(crate) fn len(&self) -> usize {
        self.a_len + self.b_len
    }
}

/// The bytes `[off, off + len)` of a chain as raw ranges. EIO if the range
/// does not lie in the attached pages or `len > PAGE_SIZE`.
#[inline]
pub(crate) fn raw_segments(pages: &[PageFrame], off: usize, len: usize) -> Result<RawSegs> {
    if len > PAGE_SIZE {
        return Err(Error::EIO);
    }
    let (p, o) = (off / PAGE_SIZE, off % PAGE_SIZE);
    let first_len = len.min(PAGE_SIZE - o);
    let first = pages.get(p).ok_or(Error::EIO)?;
    let rest = len - first_len;
    let b = if rest == 0 {
        ptr::null()
    } else {
        pages.get(p + 1).ok_or(Error::EIO)?.as_ptr().cast_const()
    };
    Ok(RawSegs {
        // `o < PAGE_SIZE`: in bounds of the page (wrapping_add: no unsafe
        // needed to form the pointer; it is dereferenced only in `slices`).
        a: first.as_ptr().cast_const().wrapping_add(o),
        a_len: first_len,
        b,
        b_len: rest,
    })
}

/// Lines after an object's end [`prefetch_after`] asks for: the head of
/// the next object (lz4 pages of anonymous memory mostly compress to
/// 500..2500 bytes, 8 to 40 lines); see [`prefetch_after`] for why 8 and
/// not a whole object.
pub(crate) const PREFETCH_AFTER_LINES: usize = 8;

/// Hints the cache to bring in the lines right after `end` (the end of an
/// object just written), up to [`PREFETCH_AFTER_LINES`] of them, in the
/// page holding `end` and, past its end, the next attached page
/// (`prefetcht0` on x86-64; nothing elsewhere and under Miri).
///
/// While a class fills, its next object usually goes right after the last
/// one written (the tail of the same zspage), and that object's copy is
/// the store's only write to lines no CPU has touched since the page was
/// allocated. Asked for when the previous object is written, they are in
/// the cache when the next store of the class copies its object there.
/// Measured (benches/zswap.rs, the same build with and without the call
/// alternated, 5 runs each): store / C lz4 with its state reused
/// 1.035-1.042 -> 1.019-1.034 (two runs of the build without it, at 1.110
/// and 1.155, were disturbed and are left out); 8 lines or `prefetchw`
/// measured no better. That was on an AMD EPYC VM. On an Ice Lake-SP VM
/// the hint costs a little instead (alternated builds, with zswap-core's
/// 8-line page-head prefetch): store / C lz4 1.012-1.050 (mean 1.027, 20
/// runs) with 24 lines, 1.005-1.027 (mean 1.016, 14 runs) with 8, and
/// 0.993-1.046 (mean 1.012, 20 runs) without it; perf puts about half of
/// the samples of the store's allocation and copy (inlined into
/// zswap-core's `fill_entry`) on 24 prefetches, which wait for the
/// line-fill buffers the object's copy just took (the core has 12).
/// With the encoder's 8 KiB table, on Ice Lake: 0.986-1.038 (mean 1.008,
/// 16 runs) with 24 lines, 0.982-1.019 (mean 0.995, 16 runs) with 8,
/// 0.988-1.027 (mean 0.996, 16 runs) without. So 8: it costs nothing
/// measurable where the hint does not pay, and still asks for the next
/// object's first lines where it does (on EPYC, 8 measured no worse than
/// 24; not measured there with the 8 KiB table). A wrong guess (the next
/// object goes into a hole elsewhere) costs the hints only: they never
/// fault and write nothing.
#[inline(always)]
pub(crate) fn prefetch_after(pages: &[PageFrame], end: usize) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    {
        let (p, o) = (end / PAGE_SIZE, end % PAGE_SIZE);
        let mut line = o.next_multiple_of(64);
        let mut page = p;
        for _ in 0..PREFETCH_AFTER_LINES {
            if line >= PAGE_SIZE {
                page += 1;
                line -= PAGE_SIZE;
            }
            let Some(f) = pages.get(page) else { return };
            let q = f.as_ptr().cast_const().wrapping_add(line);
            // SAFETY: a prefetch only hints the cache: it never faults,
            // writes nothing the program sees and changes no register or
            // flag; `q` is inside a held page.
            unsafe {
                core::arch::asm!(
                    "prefetcht0 [{q}]",
                    q = in(reg) q,
                    options(nostack, preserves_flags, readonly)
                )
            };
            line += 64;
        }
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = (pages, end);
}

/// Copies `src` into the chain at `off` (may cross one page boundary). The
/// caller holds the class lock and the target range is an object nobody has
/// pinned.
pub(crate) fn write_at(pages: &[PageFrame], off: usize, src: &[u8]) -> Result<()> {
    if src.len() > PAGE_SIZE {
        return Err(Error::EIO);
    }
    let (p, o) = (off / PAGE_SIZE, off % PAGE_SIZE);
    let first_len = src.len().min(PAGE_SIZE - o);
    let (a, b) = src.split_at(first_len);
    let first = pages.get(p).ok_or(Error::EIO)?;
    let second = if b.is_empty() {
        None
    } else {
        Some(pages.get(p + 1).ok_or(Error::EIO)?)
    };
    // SAFETY: `o + a.len() <= PAGE_SIZE` and `b.len() <= PAGE_SIZE`, so both
    // writes stay inside held pages; `src` is caller memory, not pool pages,
    // so it does not overlap. By the module invariant the range is one
    // object's, written under the class lock while nobody reads it: the raw
    // writes touch no byte a pinned reader holds.
    unsafe {
        ptr::copy_nonoverlapping(a.as_ptr(), first.as_ptr().add(o), a.len());
        if let Some(s) = second {
            ptr::copy_nonoverlapping(b.as_ptr(), s.as_ptr(), b.len());
        }
    }
    Ok(())
}

/// Copies `len` bytes from `src_off` to `dst_off` of a chain, or from one
/// chain to another (`dst` may be `src`); the two ranges must not overlap
/// when the chains are the same (they are different objects). The caller
/// holds the class lock, and neither range is pinned.
pub(crate) fn copy(
    src: &[PageFrame],
    src_off: usize,
    dst: &[PageFrame],
    dst_off: usize,
    len: usize,
) -> Result<()> {
    let same = ptr::eq(src, dst);
    if same && src_off < dst_off + len && dst_off < src_off + len {
        return Err(Error::EIO);
    }
    let s = raw_segments(src, src_off, len)?;
    // Check the destination range before writing anything.
    raw_segments(dst, dst_off, len)?;
    let mut done = 0;
    for (p, n) in [(s.a, s.a_len), (s.b, s.b_len)] {
        if n == 0 {
            continue;
        }
        let mut pos = 0;
        while pos < n {
            let d_off = dst_off + done;
            let (dp, d_o) = (d_off / PAGE_SIZE, d_off % PAGE_SIZE);
            let k = (n - pos).min(PAGE_SIZE - d_o);
            let dpage = dst.get(dp).ok_or(Error::EIO)?;
            // SAFETY: the source range [p + pos, p + pos + k) lies inside a
            // held page (from `raw_segments`), the destination [d_o, d_o + k)
            // inside held page `dp` (`d_o + k <= PAGE_SIZE`). The ranges are
            // different objects, so they do not overlap, and the caller holds
            // the class lock with neither object pinned.
            unsafe { ptr::copy_nonoverlapping(p.add(pos), dpage.as_ptr().add(d_o), k) };
            pos += k;
            done += k;
        }
    }
    Ok(())
}

/// Moves `len` bytes from `src_off` down to `dst_off < src_off` inside one
/// chain; the ranges may overlap (packing slides an object over the gap
/// before it). The caller holds the class lock and the object is not
/// pinned.
pub(crate) fn move_down(
    pages: &[PageFrame],
    src_off: usize,
    dst_off: usize,
    len: usize,
) -> Result<()> {
    if dst_off >= src_off || len > PAGE_SIZE {
        return Err(Error::EIO);
    }
    // Check both ranges before moving anything.
    raw_segments(pages, src_off, len)?;
    raw_segments(pages, dst_off, len)?;
    let mut done = 0;
    while done < len {
        let (s, d) = (src_off + done, dst_off + done);
        let (sp, so) = (s / PAGE_SIZE, s % PAGE_SIZE);
        let (dp, d_o) = (d / PAGE_SIZE, d % PAGE_SIZE);
        let k = (len - done).min(PAGE_SIZE - so).min(PAGE_SIZE - d_o);
        let (spage, dpage) = (
            pages.get(sp).ok_or(Error::EIO)?,
            pages.get(dp).ok_or(Error::EIO)?,
        );
        // SAFETY: [so, so + k) and [d_o, d_o + k) lie inside held pages (both
        // ranges were checked above and `k` stops at page ends). Chunks are
        // moved in ascending order with the destination below the source, so
        // a chunk never overwrites source bytes not yet moved; `ptr::copy`
        // allows the overlap inside one page. The caller holds the class lock
        // and nobody has the object pinned.
        unsafe { ptr::copy(spage.as_ptr().add(so), dpage.as_ptr().add(d_o), k) };
        done += k;
    }
    Ok(())
}
