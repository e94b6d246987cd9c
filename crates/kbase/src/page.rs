//! Pages and the platform page allocator.
//!
//! # Invariants
//!
//! A [`PageFrame`] owns exactly [`PAGE_SIZE`] bytes, aligned to `PAGE_SIZE`,
//! that nobody else accesses until the frame is given back to the allocator
//! that produced it. It is neither `Clone` nor `Copy`, so ownership is tracked
//! by the type system.

use core::alloc::Layout;
use core::ptr::NonNull;

use crate::sync::{AtomicUsize, Ordering};
use crate::{Error, Gfp, Result};

/// Bytes in a page; the unit of swap, of zswap entries and of page counters.
pub const PAGE_SIZE: usize = 4096;
/// `log2(PAGE_SIZE)`.
pub const PAGE_SHIFT: u32 = 12;

/// One physical page, owned.
///
/// # Invariants
///
/// `ptr` is valid for reads and writes of `PAGE_SIZE` bytes, aligned to
/// `PAGE_SIZE`, and exclusively owned by this value.
#[derive(Debug)]
pub struct PageFrame {
    ptr: NonNull<u8>,
}

// SAFETY: a PageFrame is plain owned memory; moving it to another thread moves
// the ownership with it.
unsafe impl Send for PageFrame {}
// SAFETY: shared references only allow reads through `as_slice`, or raw
// pointer access whose users uphold their own synchronisation.
unsafe impl Sync for PageFrame {}

impl PageFrame {
    /// Wraps raw page memory.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of [`PAGE_SIZE`] bytes, aligned
    /// to `PAGE_SIZE`, exclusively owned by the returned frame, and must later
    /// be given back to the allocator it came from.
    pub unsafe fn from_raw(ptr: NonNull<u8>) -> PageFrame {
        // INVARIANT: the caller guarantees validity, alignment and ownership.
        PageFrame { ptr }
    }

    /// Gives up ownership and returns the raw pointer.
    pub fn into_raw(self) -> NonNull<u8> {
        self.ptr
    }

    /// The start of the page. Writing through it needs exclusive access,
    /// which the owner of the frame decides how to guarantee.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The page's bytes.
    pub fn as_slice(&self) -> &[u8; PAGE_SIZE] {
        // SAFETY: by the type invariant the memory is valid for PAGE_SIZE
        // bytes; a shared borrow of the frame only lends shared access.
        unsafe { &*(self.ptr.as_ptr() as *const [u8; PAGE_SIZE]) }
    }

    /// The page's bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8; PAGE_SIZE] {
        // SAFETY: by the type invariant the memory is valid and exclusively
        // owned; `&mut self` makes this the only access.
        unsafe { &mut *(self.ptr.as_ptr() as *mut [u8; PAGE_SIZE]) }
    }
}

/// The platform's page allocator. Every page the zswap crates hold comes from
/// here, with the caller's flags, so the platform accounts for all of it.
///
/// # Safety
///
/// Implementations must return frames that satisfy [`PageFrame`]'s invariants
/// (valid, `PAGE_SIZE`-aligned, not handed out twice until freed).
pub unsafe trait PageAllocator: Send + Sync {
    /// Allocates one page. Fails with [`Error::ENOMEM`]; must not block unless
    /// `gfp` allows it. With [`Gfp::ZERO`] the page is zero-filled.
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame>;

    /// Returns a page.
    ///
    /// # Safety
    ///
    /// `page` must have come from `alloc_page` of this same allocator.
    unsafe fn free_page(&self, page: PageFrame);
}

// SAFETY: forwards to an allocator that upholds the contract.
unsafe impl<A: PageAllocator + ?Sized> PageAllocator for &A {
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame> {
        (**self).alloc_page(gfp)
    }
    unsafe fn free_page(&self, page: PageFrame) {
        // SAFETY: the caller guarantees the page came from this allocator.
        unsafe { (**self).free_page(page) }
    }
}

// SAFETY: forwards to an allocator that upholds the contract.
unsafe impl<A: PageAllocator + ?Sized> PageAllocator for alloc::sync::Arc<A> {
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame> {
        (**self).alloc_page(gfp)
    }
    unsafe fn free_page(&self, page: PageFrame) {
        // SAFETY: the caller guarantees the page came from this allocator.
        unsafe { (**self).free_page(page) }
    }
}

/// A page allocator over the global (`alloc`) allocator, with an optional
/// limit and exact counters. Hosts, tests and the simulator use it.
#[derive(Debug)]
pub struct HeapPageAllocator {
    limit: usize,
    allocated: AtomicUsize,
    peak: AtomicUsize,
}

impl Default for HeapPageAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl HeapPageAllocator {
    const LAYOUT: Layout = match Layout::from_size_align(PAGE_SIZE, PAGE_SIZE) {
        Ok(l) => l,
        Err(_) => panic!("PAGE_SIZE layout"),
    };

    /// An allocator limited only by the global allocator.
    pub fn new() -> Self {
        Self::with_limit(usize::MAX)
    }

    /// An allocator that refuses (ENOMEM) once `limit` pages are out.
    pub fn with_limit(limit: usize) -> Self {
        HeapPageAllocator {
            limit,
            allocated: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Pages currently allocated and not yet freed.
    pub fn allocated_pages(&self) -> usize {
        self.allocated.load(Ordering::Relaxed)
    }

    /// The most pages ever out at once.
    pub fn peak_pages(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
}

// SAFETY: pages come from the global allocator with a PAGE_SIZE-aligned layout
// of PAGE_SIZE bytes, and are freed with the same layout.
unsafe impl PageAllocator for HeapPageAllocator {
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame> {
        let prev = self.allocated.fetch_add(1, Ordering::Relaxed);
        if prev >= self.limit {
            self.allocated.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::ENOMEM);
        }
        // SAFETY: LAYOUT has a non-zero size.
        let raw = unsafe {
            if gfp.contains(Gfp::ZERO) {
                alloc::alloc::alloc_zeroed(Self::LAYOUT)
            } else {
                alloc::alloc::alloc(Self::LAYOUT)
            }
        };
        let Some(ptr) = NonNull::new(raw) else {
            self.allocated.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::ENOMEM);
        };
        self.peak.fetch_max(prev + 1, Ordering::Relaxed);
        // SAFETY: fresh allocation of LAYOUT: valid, aligned, exclusively ours.
        Ok(unsafe { PageFrame::from_raw(ptr) })
    }

    unsafe fn free_page(&self, page: PageFrame) {
        self.allocated.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the caller guarantees the page came from alloc_page above,
        // which allocated it with LAYOUT.
        unsafe { alloc::alloc::dealloc(page.into_raw().as_ptr(), Self::LAYOUT) }
    }
}

/// Wraps a page allocator and makes it fail on command: every `k`-th call, or
/// the next `n` calls. For fault-injection tests.
#[derive(Debug)]
pub struct FaultInjector<A> {
    inner: A,
    calls: AtomicUsize,
    every: AtomicUsize,
    fail_next: AtomicUsize,
    failures: AtomicUsize,
}

impl<A: PageAllocator> FaultInjector<A> {
    /// Wraps `inner`; no faults until configured.
    pub fn new(inner: A) -> Self {
        FaultInjector {
            inner,
            calls: AtomicUsize::new(0),
            every: AtomicUsize::new(0),
            fail_next: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
        }
    }

    /// Fail every `k`-th allocation (0 turns it off).
    pub fn fail_every(&self, k: usize) {
        self.every.store(k, Ordering::Relaxed);
    }

    /// Fail the next `n` allocations.
    pub fn fail_next(&self, n: usize) {
        self.fail_next.store(n, Ordering::Relaxed);
    }

    /// How many allocations were failed on purpose.
    pub fn injected_failures(&self) -> usize {
        self.failures.load(Ordering::Relaxed)
    }

    /// The wrapped allocator.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    fn should_fail(&self) -> bool {
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let every = self.every.load(Ordering::Relaxed);
        if every != 0 && n.is_multiple_of(every) {
            return true;
        }
        self.fail_next
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1))
            .is_ok()
    }
}

// SAFETY: forwards to an allocator that upholds the contract, or fails.
unsafe impl<A: PageAllocator> PageAllocator for FaultInjector<A> {
    fn alloc_page(&self, gfp: Gfp) -> Result<PageFrame> {
        if self.should_fail() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(Error::ENOMEM);
        }
        self.inner.alloc_page(gfp)
    }

    unsafe fn free_page(&self, page: PageFrame) {
        // SAFETY: the page came from `inner` (failures never hand out pages).
        unsafe { self.inner.free_page(page) }
    }
}

/// If every machine word of `page` holds the same value, returns it.
///
/// Such pages cost no pool space in zswap. Partial trailing words are compared
/// bytewise, so any length works.
pub fn is_same_filled(page: &[u8]) -> Option<u64> {
    let mut words = page.chunks_exact(8);
    let first = u64::from_ne_bytes(words.next()?.try_into().ok()?);
    let same = words.all(|w| w.try_into().map(u64::from_ne_bytes).ok() == Some(first));
    let tail = page.chunks_exact(8).remainder();
    let first_bytes = first.to_ne_bytes();
    if same && tail.iter().zip(first_bytes.iter()).all(|(a, b)| a == b) {
        Some(first)
    } else {
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn heap_allocator_counts_and_limits() {
        let a = HeapPageAllocator::with_limit(2);
        let mut p1 = a.alloc_page(Gfp::ZERO).unwrap();
        assert!(p1.as_slice().iter().all(|&b| b == 0));
        p1.as_mut_slice()[4095] = 7;
        assert_eq!(p1.as_ptr() as usize % PAGE_SIZE, 0);
        let p2 = a.alloc_page(Gfp::KERNEL).unwrap();
        assert_eq!(a.alloc_page(Gfp::KERNEL).unwrap_err(), Error::ENOMEM);
        assert_eq!(a.allocated_pages(), 2);
        // SAFETY: both pages came from `a`.
        unsafe {
            a.free_page(p1);
            a.free_page(p2);
        }
        assert_eq!(a.allocated_pages(), 0);
        assert_eq!(a.peak_pages(), 2);
    }

    #[test]
    fn fault_injector_fails_on_command() {
        let f = FaultInjector::new(HeapPageAllocator::new());
        f.fail_every(3);
        let mut got = alloc::vec::Vec::new();
        let mut errs = 0;
        for _ in 0..9 {
            match f.alloc_page(Gfp::KERNEL) {
                Ok(p) => got.push(p),
                Err(e) => {
                    assert_eq!(e, Error::ENOMEM);
                    errs += 1
                }
            }
        }
        assert_eq!(errs, 3);
        f.fail_every(0);
        f.fail_next(2);
        assert!(f.alloc_page(Gfp::KERNEL).is_err());
        assert!(f.alloc_page(Gfp::KERNEL).is_err());
        got.push(f.alloc_page(Gfp::KERNEL).unwrap());
        assert_eq!(f.injected_failures(), 5);
        for p in got {
            // SAFETY: every page came from `f`.
            unsafe { f.free_page(p) }
        }
        assert_eq!(f.inner().allocated_pages(), 0);
    }

    #[test]
    fn same_filled_detection() {
        let mut p = [0u8; PAGE_SIZE];
        assert_eq!(is_same_filled(&p), Some(0));
        p.iter_mut().for_each(|b| *b = 0xab);
        assert_eq!(is_same_filled(&p), Some(0xabab_abab_abab_abab));
        p[4095] = 0;
        assert_eq!(is_same_filled(&p), None);
        assert_eq!(is_same_filled(&[]), None);
        assert_eq!(
            is_same_filled(&[1, 1, 1, 1, 1, 1, 1, 1, 1]),
            Some(0x0101010101010101)
        );
        assert_eq!(is_same_filled(&[1, 1, 1, 1, 1, 1, 1, 1, 2]), None);
    }

    /// A page that differs from its fill in any one byte, at any position
    /// (first word, last word, last byte, every byte lane of a word), is
    /// not same-filled. Miri checks a sample of the positions.
    #[test]
    fn same_filled_detection_sees_every_byte_position() {
        let step = if cfg!(miri) { 61 } else { 1 };
        for word in [0u64, u64::MAX, 0xabab_abab_abab_abab, 0x0102_0304_0506_0708] {
            let mut p = [0u8; PAGE_SIZE];
            for c in p.chunks_exact_mut(8) {
                c.copy_from_slice(&word.to_ne_bytes());
            }
            assert_eq!(is_same_filled(&p), Some(word));
            let positions = (0..PAGE_SIZE)
                .step_by(step)
                .chain(PAGE_SIZE - 8..PAGE_SIZE)
                .chain(0..8);
            for i in positions {
                p[i] ^= 0x10;
                assert_eq!(is_same_filled(&p), None, "byte {i} of fill {word:#x}");
                p[i] ^= 0x10;
            }
            assert_eq!(is_same_filled(&p), Some(word));
        }
    }
}
