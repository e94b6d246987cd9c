//! Fallible boxing and reference counting.
//!
//! `alloc::boxed::Box::new` and `alloc::sync::Arc::new` abort on allocation
//! failure, which a kernel may not do. [`try_box`] and [`KArc::try_new`]
//! return [`Error::ENOMEM`] instead.
//!
//! # Invariants
//!
//! A `KArc<T>` points to a live [`ArcInner<T>`] allocated by
//! [`KArc::try_new`]; `count` equals the number of `KArc`s pointing to it, and
//! the allocation is freed exactly when the count drops to zero.

use alloc::boxed::Box;
use core::alloc::Layout;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr::NonNull;

use crate::sync::{AtomicUsize, Ordering, fence};
use crate::{Error, Gfp, Result};

/// Boxes `value`, failing with [`Error::ENOMEM`] instead of aborting.
///
/// `gfp` documents the caller's context; the global allocator cannot honour
/// it, so platforms that need non-blocking allocation must make their global
/// allocator non-blocking.
pub fn try_box<T>(value: T, gfp: Gfp) -> Result<Box<T>> {
    let _ = gfp;
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        return Ok(Box::new(value));
    }
    // SAFETY: the layout has a non-zero size.
    let raw = unsafe { alloc::alloc::alloc(layout) } as *mut T;
    let Some(ptr) = NonNull::new(raw) else {
        return Err(Error::ENOMEM);
    };
    // SAFETY: `ptr` is a fresh allocation for `Layout::new::<T>()` from the
    // global allocator, which is exactly what `Box::from_raw` requires once the
    // value is written.
    unsafe {
        ptr.as_ptr().write(value);
        Ok(Box::from_raw(ptr.as_ptr()))
    }
}

struct ArcInner<T> {
    count: AtomicUsize,
    value: T,
}

/// An atomically reference-counted pointer whose allocation can fail.
///
/// Works like `Arc`, including under loom (its count is a shim atomic).
pub struct KArc<T> {
    ptr: NonNull<ArcInner<T>>,
    _owns: PhantomData<ArcInner<T>>,
}

// SAFETY: like Arc: the value is shared between threads (Sync) and may be
// dropped on any of them (Send).
unsafe impl<T: Send + Sync> Send for KArc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for KArc<T> {}

impl<T> KArc<T> {
    /// Allocates a new reference-counted value, or fails with ENOMEM.
    pub fn try_new(value: T, gfp: Gfp) -> Result<KArc<T>> {
        let inner = try_box(
            ArcInner {
                count: AtomicUsize::new(1),
                value,
            },
            gfp,
        )?;
        // INVARIANT: one KArc, count 1, allocation from try_box.
        Ok(KArc {
            ptr: NonNull::from(Box::leak(inner)),
            _owns: PhantomData,
        })
    }

    fn inner(&self) -> &ArcInner<T> {
        // SAFETY: by the type invariant the inner allocation lives as long as
        // any KArc to it, and `self` is one.
        unsafe { self.ptr.as_ref() }
    }

    /// Do both point to the same allocation?
    pub fn ptr_eq(a: &KArc<T>, b: &KArc<T>) -> bool {
        a.ptr == b.ptr
    }

    /// The address of the shared value, for identity comparisons.
    pub fn as_ptr(this: &KArc<T>) -> *const T {
        let inner = this.ptr.as_ptr();
        // SAFETY: `inner` points to a live ArcInner (type invariant). The
        // raw place projection creates no reference, so the pointer keeps
        // the provenance of the whole allocation, which `from_raw` needs to
        // step back to the ArcInner.
        unsafe { &raw const (*inner).value }
    }

    /// The number of `KArc`s to this value (racy; for stats and tests).
    pub fn strong_count(this: &KArc<T>) -> usize {
        this.inner().count.load(Ordering::Relaxed)
    }

    /// Turns the reference into a raw pointer (one count is carried with it).
    pub fn into_raw(this: KArc<T>) -> *const T {
        let p = KArc::as_ptr(&this);
        core::mem::forget(this);
        p
    }

    /// Takes back a reference produced by [`KArc::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` must come from `KArc::<T>::into_raw` and each such pointer may be
    /// turned back only once.
    pub unsafe fn from_raw(ptr: *const T) -> KArc<T> {
        let offset = core::mem::offset_of!(ArcInner<T>, value);
        // SAFETY: `ptr` points at the `value` field of a live ArcInner (the
        // caller's contract), so stepping back by its offset stays in bounds.
        let inner = unsafe { (ptr as *const u8).sub(offset) } as *mut ArcInner<T>;
        // SAFETY: non-null: derived from a valid allocation.
        let ptr = unsafe { NonNull::new_unchecked(inner) };
        // INVARIANT: the count carried by the raw pointer moves back here.
        KArc {
            ptr,
            _owns: PhantomData,
        }
    }
}

impl<T> Clone for KArc<T> {
    fn clone(&self) -> Self {
        // Relaxed is enough to take a new reference from an existing one (as
        // in std's Arc); overflow would need more KArcs than address space.
        self.inner().count.fetch_add(1, Ordering::Relaxed);
        // INVARIANT: count incremented for the new KArc.
        KArc {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<T> Deref for KArc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner().value
    }
}

impl<T> Drop for KArc<T> {
    fn drop(&mut self) {
        // Under loom, a failed model (an assertion, a deadlock, the branch
        // limit) unwinds its threads after the execution state is gone, and
        // touching a loom atomic then aborts the whole test binary: leak.
        #[cfg(loom)]
        if std::thread::panicking() {
            return;
        }
        if self.inner().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Synchronise with every other owner's Release decrement before the
        // value is dropped.
        fence(Ordering::Acquire);
        // SAFETY: the count reached zero, so this was the last KArc; the
        // allocation came from `try_box` (a Box), so rebuilding it drops the
        // value and frees the memory exactly once.
        unsafe { drop(Box::from_raw(self.ptr.as_ptr())) }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for KArc<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn karc_counts_and_drops_once() {
        struct D<'a>(&'a core::cell::Cell<u32>);
        impl Drop for D<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let drops = core::cell::Cell::new(0);
        {
            let a = KArc::try_new(D(&drops), Gfp::KERNEL).unwrap();
            let b = a.clone();
            assert!(KArc::ptr_eq(&a, &b));
            assert_eq!(KArc::strong_count(&a), 2);
            let raw = KArc::into_raw(b);
            // SAFETY: raw came from into_raw just above.
            let c = unsafe { KArc::from_raw(raw) };
            drop(a);
            assert_eq!(drops.get(), 0);
            drop(c);
        }
        assert_eq!(drops.get(), 1);
    }

    #[test]
    fn try_box_boxes() {
        let b = try_box([7u8; 100], Gfp::KERNEL).unwrap();
        assert_eq!(b[99], 7);
        let z = try_box((), Gfp::KERNEL).unwrap();
        assert_eq!(*z, ());
    }
}
