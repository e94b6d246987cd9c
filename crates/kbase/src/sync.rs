//! The sync shim: every lock, atomic and `UnsafeCell` in the workspace comes
//! from here.
//!
//! Without `--cfg loom` these are `spin`'s locks and `core`'s atomics; with it
//! they are loom's, so loom models run the crates' real code. The facade is
//! spin-shaped: `lock()` returns the guard directly (no poisoning).
//!
//! Locks here are spinlocks: never hold one across an allocation that may
//! block, across I/O, or across a call that may re-enter the caller (memcg
//! charge, reclaim). Waiting for a condition uses [`cpu_relax`] in a loop that
//! re-checks, so under loom it becomes a yield.

#[cfg(loom)]
mod imp {
    pub use loom::sync::atomic::{
        AtomicBool, AtomicI64, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        fence,
    };
    pub use loom::thread::yield_now as cpu_relax;

    /// A mutual-exclusion lock (loom's, with a spin-shaped API).
    #[derive(Debug)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);
    /// Guard of [`Mutex`].
    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new unlocked mutex.
        pub fn new(t: T) -> Self {
            Self(loom::sync::Mutex::new(t))
        }
        /// Locks, waiting as long as needed.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            match self.0.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            }
        }
        /// Locks if free.
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok()
        }
        /// Mutable access without locking (we own the mutex).
        pub fn get_mut(&mut self) -> &mut T {
            match self.0.get_mut() {
                Ok(t) => t,
                Err(p) => p.into_inner(),
            }
        }
    }

    /// A reader-writer lock (loom's, with a spin-shaped API).
    #[derive(Debug)]
    pub struct RwLock<T>(loom::sync::RwLock<T>);
    /// Read guard of [`RwLock`].
    pub type RwLockReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
    /// Write guard of [`RwLock`].
    pub type RwLockWriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;

    impl<T> RwLock<T> {
        /// A new unlocked lock.
        pub fn new(t: T) -> Self {
            Self(loom::sync::RwLock::new(t))
        }
        /// Shared access.
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            match self.0.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            }
        }
        /// Exclusive access.
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            match self.0.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            }
        }
    }

    /// `UnsafeCell` with loom's access tracking.
    pub use loom::cell::UnsafeCell;
}

#[cfg(not(loom))]
mod imp {
    pub use core::hint::spin_loop as cpu_relax;
    pub use core::sync::atomic::{
        AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicUsize, Ordering, fence,
    };
    #[cfg(target_has_atomic = "64")]
    pub use core::sync::atomic::{AtomicI64, AtomicU64};
    pub use spin::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

    /// `core::cell::UnsafeCell` with loom's closure-based API, so the same
    /// code compiles under loom.
    #[derive(Debug)]
    #[repr(transparent)]
    pub struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// Wraps a value.
        pub const fn new(t: T) -> Self {
            Self(core::cell::UnsafeCell::new(t))
        }
        /// Runs `f` with a shared raw pointer to the value.
        #[inline(always)]
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }
        /// Runs `f` with a mutable raw pointer to the value.
        #[inline(always)]
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

pub use imp::*;
