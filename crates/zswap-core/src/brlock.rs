//! A big-reader lock: one spinlock per CPU.
//!
//! A reader holds its own CPU's lock, so readers on different CPUs write no
//! common cache line; a writer holds every lock, taken in CPU order. zswap
//! uses it where every store, load and invalidate reads and only rare events
//! write: the tree table (swapon, swapoff), the LRU's memcg map (a new
//! record, reparenting, reaping a redirect) and, for store, the pool table
//! (whose other readers and writers also hold an `RwLock`: see `pool`).
//!
//! There are at most [`BrLock::MAX_LOCKS`] locks; CPUs past them share
//! (`cpu % n`). The writer takes the locks by recursion, one frame per lock,
//! so it allocates nothing and cannot fail, and the cap bounds its stack
//! depth (a kernel stack is 8-16 KiB): 16 frames of a few words each.

use alloc::vec::Vec;

use kbase::Result;
use kbase::sync::{LockClass, Mutex, UnsafeCell};

/// One CPU's lock, alone in its cache lines.
#[repr(align(128))]
struct CpuLock(Mutex<()>);

/// `T` behind one lock per CPU.
///
/// # Invariants
///
/// `data` is read only with one of `locks` held and written only with all of
/// them held, so it is shared as an `RwLock`'s contents are; `locks` is
/// never empty.
pub(crate) struct BrLock<T> {
    /// One lock per CPU, all of one class (which must nest with itself, for
    /// the writer).
    locks: Vec<CpuLock>,
    data: UnsafeCell<T>,
}

// SAFETY: `data` is accessed only as the type invariant says (shared access
// under one lock, exclusive access under all of them), which is what sharing
// an `RwLock<T>` between threads needs: `T` must be Send and Sync.
unsafe impl<T: Send + Sync> Sync for BrLock<T> {}
// SAFETY: owned data only: moving the lock moves `T`.
unsafe impl<T: Send> Send for BrLock<T> {}

impl<T> BrLock<T> {
    /// At most this many CPU locks; CPUs past them share (`cpu % n`).
    pub(crate) const MAX_LOCKS: usize = 16;

    /// `data` behind locks of `class` for `nr_cpus` CPUs (0 is treated as
    /// 1). `ENOMEM`.
    pub(crate) fn new(nr_cpus: usize, class: &'static LockClass, data: T) -> Result<BrLock<T>> {
        let nr = nr_cpus.clamp(1, Self::MAX_LOCKS);
        let mut locks = Vec::new();
        locks.try_reserve_exact(nr)?;
        locks.extend((0..nr).map(|_| CpuLock(Mutex::new_class((), class))));
        Ok(BrLock {
            locks,
            data: UnsafeCell::new(data),
        })
    }

    /// Runs `f` on the data with CPU `cpu`'s lock held (`cpu % n` past the
    /// locks).
    #[inline]
    pub(crate) fn read<R>(&self, cpu: usize, f: impl FnOnce(&T) -> R) -> R {
        // A CPU below the number of locks (every CPU up to MAX_LOCKS) costs
        // no division: this runs on every store, load and invalidate.
        let lock = match self.locks.get(cpu).or_else(|| {
            cpu.checked_rem(self.locks.len())
                .and_then(|c| self.locks.get(c))
        }) {
            Some(l) => l,
            // No lock at all is ruled out by `new`; the write side is right
            // whatever the number of locks.
            None => return self.write(|d| f(d)),
        };
        let _g = lock.0.lock();
        // SAFETY: a CPU lock is held, so no writer (which holds them all)
        // runs; the reference does not outlive the closure.
        self.data.with(|d| f(unsafe { &*d }))
    }

    /// Runs `f` on the data with none of this lock's CPU locks taken.
    ///
    /// # Safety
    ///
    /// The caller holds a lock that every writer also holds around its
    /// [`write`](Self::write) (then no writer runs while `f` does: readers
    /// only, as under a CPU lock).
    pub(crate) unsafe fn read_unlocked<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        // SAFETY: no writer runs (the caller's contract); shared access
        // only, and the reference does not outlive the closure.
        self.data.with(|d| f(unsafe { &*d }))
    }

    /// Runs `f` on the data with every CPU lock held.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.write_from(0, f)
    }

    /// Takes the CPU locks from `i` on, in order, then runs `f` (no
    /// allocation: the guards live in the frames, at most `MAX_LOCKS` deep).
    fn write_from<R, F: FnOnce(&mut T) -> R>(&self, i: usize, f: F) -> R {
        match self.locks.get(i) {
            Some(l) => {
                let _g = l.0.lock();
                self.write_from(i + 1, f)
            }
            // SAFETY: every CPU lock is held (taken by the callers up the
            // stack): no reader and no other writer runs; the reference does
            // not outlive the closure.
            None => self.data.with_mut(|d| f(unsafe { &mut *d })),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use kbase::sync::lock_class;

    #[test]
    fn readers_on_any_cpu_see_what_the_writer_wrote() {
        let l = BrLock::new(40, &lock_class::ZSWAP_TREES, 0u32).unwrap();
        assert_eq!(l.locks.len(), BrLock::<u32>::MAX_LOCKS);
        l.write(|v| *v = 7);
        for cpu in [0, 1, 15, 16, 39, usize::MAX] {
            assert_eq!(l.read(cpu, |v| *v), 7);
        }
        let one = BrLock::new(0, &lock_class::ZSWAP_TREES, 1u8).unwrap();
        assert_eq!(one.locks.len(), 1);
        assert_eq!(one.read(3, |v| *v), 1);
    }

    #[test]
    fn a_reader_holds_the_lock_of_its_cpu_modulo_the_locks() {
        let l = BrLock::new(4, &lock_class::ZSWAP_TREES, ()).unwrap();
        for cpu in [0, 1, 3, 4, 6, 13, usize::MAX] {
            l.read(cpu, |_| {
                for (i, lock) in l.locks.iter().enumerate() {
                    let held = lock.0.try_lock().is_none();
                    assert_eq!(held, i == cpu % 4, "cpu {cpu}, lock {i}");
                }
            });
        }
    }
}
