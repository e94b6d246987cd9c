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
//!
//! ## Lock classes and the lock-order validator
//!
//! Every lock named in the workspace's lock order (written once, in
//! zswap-core's crate docs) is created with its [`LockClass`] from
//! [`lock_class`] ([`Mutex::new_class`], [`RwLock::new_class`]); a class has
//! a name and a rank, and the ranks follow the written order (outer locks
//! rank lower). With the `lockdep` feature, in debug builds and under loom,
//! each thread keeps the classes it holds, and taking a lock whose rank is
//! not above every rank held panics with both names (Linux's lockdep, small:
//! a total order instead of a learned graph). Every test, proptest, loom
//! model and simulator run of a build with the feature checks the order;
//! without it (release kernels) the classes cost nothing: the lock is the
//! plain `spin` lock and the class is not even stored.
//!
//! The per-thread state needs `std` (a thread-local; loom's under loom), so
//! `lockdep` turns on kbase's `std` feature: the library crates stay
//! `no_std` and their tests enable it as a dev-dependency feature. Locks
//! made with plain `new` have no class and are not checked.

/// The class of a lock: its name in the written lock order and its rank.
#[derive(Debug)]
pub struct LockClass {
    /// The lock's name in the written order.
    pub name: &'static str,
    /// Position in the order: a lock may be taken while holding only locks
    /// of lower rank.
    pub rank: u16,
    /// Locks of this class may nest in one another (in an order the owner
    /// documents, e.g. child then parent); the validator allows it.
    pub nests: bool,
}

impl LockClass {
    /// A class of rank `rank` whose locks never nest in one another.
    pub const fn new(name: &'static str, rank: u16) -> LockClass {
        LockClass {
            name,
            rank,
            nests: false,
        }
    }

    /// A class whose locks may nest in one another (documented order).
    pub const fn nesting(name: &'static str, rank: u16) -> LockClass {
        LockClass {
            name,
            rank,
            nests: true,
        }
    }
}

/// The classes of the written lock order (zswap-core's crate docs), by rank.
///
/// ```text
/// folio lock (PG_locked, a bit lock: not checked)
///   -> zswap tree table -> zswap tree lock
///        -> zswap LRU map lock -> zswap LRU list lock
///        -> zswap pool table -> zpool class lock        (debug_corrupt)
///   -> zswap pool table -> zswap pool table per-CPU lock   (writers)
///   -> zswap pool table per-CPU lock                   (store)
///   -> folio page lock
///        -> zswap pool table
///        -> compression lock -> zpool class lock        (store)
///        -> zpool class lock (find + pin, released), then
///           decompression lock with no zpool lock held  (load, writeback)
///   zswap entry cache lock (a leaf; store's entry alloc, entry free)
/// ```
pub mod lock_class {
    use super::LockClass;

    /// `Zswap::trees`: the table of per-swap-type trees (a big-reader
    /// lock: one lock per CPU; a writer nests all of them, in CPU order).
    pub static ZSWAP_TREES: LockClass = LockClass::nesting("zswap tree table", 10);
    /// An entry tree's lock (one per swap cluster of the tree's slots).
    pub static ZSWAP_TREE: LockClass = LockClass::new("zswap tree lock", 20);
    /// The LRU's memcg map (a big-reader lock: one lock per CPU; a writer
    /// nests all of them, in CPU order).
    pub static ZSWAP_LRU_MAP: LockClass = LockClass::nesting("zswap LRU map lock", 30);
    /// One per-CPU sub-list of a (memcg, node) LRU list; reparenting nests
    /// child -> parent (one sub-list pair at a time).
    pub static ZSWAP_LRU_LIST: LockClass = LockClass::nesting("zswap LRU list lock", 40);
    /// A folio page's lock (swapcache), held while the page is read or written.
    pub static FOLIO_PAGE: LockClass = LockClass::new("folio page lock", 50);
    /// zswap's pool table (RwLock: scans, diagnostics and writers).
    pub static ZSWAP_POOLS: LockClass = LockClass::new("zswap pool table", 60);
    /// zswap's pool table, store's side (a big-reader lock: one lock per
    /// CPU; a writer, holding the table's RwLock, nests all of them, in CPU
    /// order).
    pub static ZSWAP_POOLS_PCPU: LockClass =
        LockClass::nesting("zswap pool table per-CPU lock", 65);
    /// A per-CPU compression context.
    pub static COMPRESS: LockClass = LockClass::new("compression lock", 70);
    /// A zpool size class's lock.
    pub static ZPOOL_CLASS: LockClass = LockClass::new("zpool class lock", 80);
    /// A per-CPU decompression context (a leaf).
    pub static DECOMPRESS: LockClass = LockClass::new("decompression lock", 90);
    /// A per-CPU list of zswap's entry slabs (`zswap_entry_cache`; a leaf,
    /// taken with no other lock held in practice).
    pub static ZSWAP_ENTRY_CACHE: LockClass = LockClass::new("zswap entry cache lock", 100);

    /// Every class, by rank.
    pub static ALL: [&LockClass; 11] = [
        &ZSWAP_TREES,
        &ZSWAP_TREE,
        &ZSWAP_LRU_MAP,
        &ZSWAP_LRU_LIST,
        &FOLIO_PAGE,
        &ZSWAP_POOLS,
        &ZSWAP_POOLS_PCPU,
        &COMPRESS,
        &ZPOOL_CLASS,
        &DECOMPRESS,
        &ZSWAP_ENTRY_CACHE,
    ];
}

/// The validator's per-thread state: the classes this thread holds.
#[cfg(all(feature = "lockdep", any(debug_assertions, loom)))]
mod lockdep {
    use super::LockClass;
    use std::cell::RefCell;
    use std::vec::Vec;

    #[cfg(loom)]
    loom::thread_local! {
        static HELD: RefCell<Vec<&'static LockClass>> = RefCell::new(Vec::new());
    }
    #[cfg(not(loom))]
    std::thread_local! {
        static HELD: RefCell<Vec<&'static LockClass>> = const { RefCell::new(Vec::new()) };
    }

    /// Checks that `class` may be taken now (blocking acquisitions only).
    pub(super) fn check(class: &'static LockClass) {
        let bad = HELD.with(|h| {
            h.borrow().iter().copied().find(|held| {
                held.rank > class.rank
                    || (held.rank == class.rank && !(core::ptr::eq(*held, class) && class.nests))
            })
        });
        if let Some(held) = bad {
            panic!(
                "lock order violation: {} (rank {}) taken while holding {} (rank {}); \
                 the order is written in zswap-core's crate docs",
                class.name, class.rank, held.name, held.rank
            );
        }
    }

    /// A held lock of a class; forgets it when dropped.
    #[derive(Debug)]
    pub(crate) struct Held(&'static LockClass);

    impl Held {
        pub(super) fn acquired(class: &'static LockClass) -> Held {
            HELD.with(|h| h.borrow_mut().push(class));
            Held(class)
        }
    }

    impl Drop for Held {
        fn drop(&mut self) {
            let me = self.0;
            // Guards may be dropped in any order: forget the newest entry of
            // this class. `try_with`: a guard dropped during thread teardown.
            let _ = HELD.try_with(|h| {
                let mut h = h.borrow_mut();
                if let Some(i) = h.iter().rposition(|c| core::ptr::eq(*c, me)) {
                    h.remove(i);
                }
            });
        }
    }

    /// The classes the current thread holds, innermost last (tests).
    pub(super) fn held() -> Vec<&'static str> {
        HELD.with(|h| h.borrow().iter().map(|c| c.name).collect())
    }

    /// Runs `f` with an empty held set, then restores it.
    pub(super) fn with_nothing_held<R>(f: impl FnOnce() -> R) -> R {
        let saved = HELD.with(|h| core::mem::take(&mut *h.borrow_mut()));
        struct Restore(Option<Vec<&'static LockClass>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                if let Some(v) = self.0.take() {
                    let _ = HELD.try_with(|h| *h.borrow_mut() = v);
                }
            }
        }
        let _restore = Restore(Some(saved));
        f()
    }
}

/// Is the lock-order validator compiled in?
pub const LOCKDEP: bool = cfg!(all(feature = "lockdep", any(debug_assertions, loom)));

/// The names of the classes the current thread holds, innermost last (empty
/// without the validator).
#[cfg(feature = "std")]
pub fn held_lock_classes() -> std::vec::Vec<&'static str> {
    #[cfg(all(feature = "lockdep", any(debug_assertions, loom)))]
    {
        lockdep::held()
    }
    #[cfg(not(all(feature = "lockdep", any(debug_assertions, loom))))]
    {
        std::vec::Vec::new()
    }
}

/// Runs `f` as another CPU would: with none of this thread's locks counted
/// as held, for test hooks that act out, inline at a trace point, what a
/// concurrent thread does at that moment (the locks the traced code holds
/// are not held by that other thread). Only for tests and simulators.
#[cfg(feature = "std")]
pub fn as_another_cpu<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(all(feature = "lockdep", any(debug_assertions, loom)))]
    {
        lockdep::with_nothing_held(f)
    }
    #[cfg(not(all(feature = "lockdep", any(debug_assertions, loom))))]
    {
        f()
    }
}

/// A token carried by a guard of a classed lock (nothing without lockdep).
#[cfg(all(feature = "lockdep", any(debug_assertions, loom)))]
type Token = Option<lockdep::Held>;
#[cfg(not(all(feature = "lockdep", any(debug_assertions, loom))))]
type Token = ();

/// The class a lock stores (nothing without lockdep).
#[cfg(all(feature = "lockdep", any(debug_assertions, loom)))]
type ClassRef = Option<&'static LockClass>;
#[cfg(not(all(feature = "lockdep", any(debug_assertions, loom))))]
type ClassRef = ();

#[cfg(all(feature = "lockdep", any(debug_assertions, loom)))]
const fn class_ref(c: Option<&'static LockClass>) -> ClassRef {
    c
}
#[cfg(not(all(feature = "lockdep", any(debug_assertions, loom))))]
const fn class_ref(_: Option<&'static LockClass>) -> ClassRef {}

/// Before a blocking acquisition.
#[inline(always)]
#[allow(clippy::unused_unit)]
fn before(_c: &ClassRef) {
    #[cfg(all(feature = "lockdep", any(debug_assertions, loom)))]
    if let Some(c) = _c {
        lockdep::check(c);
    }
}

/// After an acquisition: the guard's token.
#[inline(always)]
#[allow(clippy::unused_unit)]
fn acquired(_c: &ClassRef) -> Token {
    #[cfg(all(feature = "lockdep", any(debug_assertions, loom)))]
    {
        _c.map(lockdep::Held::acquired)
    }
}

macro_rules! guard {
    ($(#[$m:meta])* $name:ident, $inner:ty, mut) => {
        guard!($(#[$m])* $name, $inner);
        impl<T: ?Sized> core::ops::DerefMut for $name<'_, T> {
            #[inline(always)]
            fn deref_mut(&mut self) -> &mut T {
                &mut self.inner
            }
        }
    };
    ($(#[$m:meta])* $name:ident, $inner:ty) => {
        $(#[$m])*
        pub struct $name<'a, T: ?Sized + 'a> {
            inner: $inner,
            _held: Token,
        }
        impl<T: ?Sized> core::ops::Deref for $name<'_, T> {
            type Target = T;
            #[inline(always)]
            fn deref(&self) -> &T {
                &self.inner
            }
        }
        impl<T: ?Sized + core::fmt::Debug> core::fmt::Debug for $name<'_, T> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(&**self, f)
            }
        }
    };
}

#[cfg(loom)]
mod imp {
    use super::{ClassRef, LockClass, Token, acquired, before, class_ref};
    pub use loom::sync::atomic::{
        AtomicBool, AtomicI64, AtomicPtr, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize,
        Ordering, fence,
    };
    pub use loom::thread::yield_now as cpu_relax;

    /// A mutual-exclusion lock (loom's, with a spin-shaped API).
    #[derive(Debug)]
    pub struct Mutex<T> {
        inner: loom::sync::Mutex<T>,
        class: ClassRef,
    }
    guard!(
        /// Guard of [`Mutex`].
        MutexGuard, loom::sync::MutexGuard<'a, T>, mut
    );

    impl<T> Mutex<T> {
        /// A new unlocked mutex (no class: not checked by the validator).
        pub fn new(t: T) -> Self {
            Self {
                inner: loom::sync::Mutex::new(t),
                class: class_ref(None),
            }
        }
        /// A new unlocked mutex of `class`.
        pub fn new_class(t: T, class: &'static LockClass) -> Self {
            Self {
                inner: loom::sync::Mutex::new(t),
                class: class_ref(Some(class)),
            }
        }
        /// Locks, waiting as long as needed.
        pub fn lock(&self) -> MutexGuard<'_, T> {
            before(&self.class);
            let inner = match self.inner.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            MutexGuard {
                inner,
                _held: acquired(&self.class),
            }
        }
        /// Locks if free.
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            let inner = self.inner.try_lock().ok()?;
            Some(MutexGuard {
                inner,
                _held: acquired(&self.class),
            })
        }
        /// Mutable access without locking (we own the mutex).
        pub fn get_mut(&mut self) -> &mut T {
            match self.inner.get_mut() {
                Ok(t) => t,
                Err(p) => p.into_inner(),
            }
        }
    }

    /// A reader-writer lock (loom's, with a spin-shaped API).
    #[derive(Debug)]
    pub struct RwLock<T> {
        inner: loom::sync::RwLock<T>,
        class: ClassRef,
    }
    guard!(
        /// Read guard of [`RwLock`].
        RwLockReadGuard, loom::sync::RwLockReadGuard<'a, T>
    );
    guard!(
        /// Write guard of [`RwLock`].
        RwLockWriteGuard, loom::sync::RwLockWriteGuard<'a, T>, mut
    );

    impl<T> RwLock<T> {
        /// A new unlocked lock (no class: not checked by the validator).
        pub fn new(t: T) -> Self {
            Self {
                inner: loom::sync::RwLock::new(t),
                class: class_ref(None),
            }
        }
        /// A new unlocked lock of `class`.
        pub fn new_class(t: T, class: &'static LockClass) -> Self {
            Self {
                inner: loom::sync::RwLock::new(t),
                class: class_ref(Some(class)),
            }
        }
        /// Shared access.
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            before(&self.class);
            let inner = match self.inner.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            RwLockReadGuard {
                inner,
                _held: acquired(&self.class),
            }
        }
        /// Exclusive access.
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            before(&self.class);
            let inner = match self.inner.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            RwLockWriteGuard {
                inner,
                _held: acquired(&self.class),
            }
        }
    }

    /// `UnsafeCell` with loom's access tracking.
    pub use loom::cell::UnsafeCell;

    #[allow(dead_code)]
    fn _token_is_used(_: Token) {}
}

#[cfg(not(loom))]
mod imp {
    use super::{ClassRef, LockClass, Token, acquired, before, class_ref};
    pub use core::hint::spin_loop as cpu_relax;
    pub use core::sync::atomic::{
        AtomicBool, AtomicPtr, AtomicU8, AtomicU16, AtomicU32, AtomicUsize, Ordering, fence,
    };
    #[cfg(target_has_atomic = "64")]
    pub use core::sync::atomic::{AtomicI64, AtomicU64};

    /// A spinlock (`spin`'s) that knows its [`LockClass`].
    #[derive(Debug)]
    pub struct Mutex<T: ?Sized> {
        class: ClassRef,
        inner: spin::Mutex<T>,
    }
    guard!(
        /// Guard of [`Mutex`].
        MutexGuard, spin::MutexGuard<'a, T>, mut
    );

    impl<T> Mutex<T> {
        /// A new unlocked mutex (no class: not checked by the validator).
        #[inline(always)]
        pub const fn new(t: T) -> Self {
            Self {
                class: class_ref(None),
                inner: spin::Mutex::new(t),
            }
        }
        /// A new unlocked mutex of `class`.
        #[inline(always)]
        pub const fn new_class(t: T, class: &'static LockClass) -> Self {
            Self {
                class: class_ref(Some(class)),
                inner: spin::Mutex::new(t),
            }
        }
    }

    impl<T: ?Sized> Mutex<T> {
        /// Locks, spinning as long as needed.
        #[inline(always)]
        pub fn lock(&self) -> MutexGuard<'_, T> {
            before(&self.class);
            let inner = self.inner.lock();
            MutexGuard {
                inner,
                _held: acquired(&self.class),
            }
        }
        /// Locks if free.
        #[inline(always)]
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            let inner = self.inner.try_lock()?;
            Some(MutexGuard {
                inner,
                _held: acquired(&self.class),
            })
        }
        /// Mutable access without locking (we own the mutex).
        #[inline(always)]
        pub fn get_mut(&mut self) -> &mut T {
            self.inner.get_mut()
        }
    }

    /// A reader-writer spinlock (`spin`'s) that knows its [`LockClass`].
    #[derive(Debug)]
    pub struct RwLock<T: ?Sized> {
        class: ClassRef,
        inner: spin::RwLock<T>,
    }
    guard!(
        /// Read guard of [`RwLock`].
        RwLockReadGuard, spin::RwLockReadGuard<'a, T>
    );
    guard!(
        /// Write guard of [`RwLock`].
        RwLockWriteGuard, spin::RwLockWriteGuard<'a, T>, mut
    );

    impl<T> RwLock<T> {
        /// A new unlocked lock (no class: not checked by the validator).
        #[inline(always)]
        pub const fn new(t: T) -> Self {
            Self {
                class: class_ref(None),
                inner: spin::RwLock::new(t),
            }
        }
        /// A new unlocked lock of `class`.
        #[inline(always)]
        pub const fn new_class(t: T, class: &'static LockClass) -> Self {
            Self {
                class: class_ref(Some(class)),
                inner: spin::RwLock::new(t),
            }
        }
    }

    impl<T: ?Sized> RwLock<T> {
        /// Shared access.
        #[inline(always)]
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            before(&self.class);
            let inner = self.inner.read();
            RwLockReadGuard {
                inner,
                _held: acquired(&self.class),
            }
        }
        /// Exclusive access.
        #[inline(always)]
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            before(&self.class);
            let inner = self.inner.write();
            RwLockWriteGuard {
                inner,
                _held: acquired(&self.class),
            }
        }
        /// Mutable access without locking (we own the lock).
        #[inline(always)]
        pub fn get_mut(&mut self) -> &mut T {
            self.inner.get_mut()
        }
    }

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

    #[allow(dead_code)]
    fn _token_is_used(_: Token) {}
}

pub use imp::*;

#[cfg(all(test, feature = "lockdep", debug_assertions, not(loom)))]
mod tests {
    use super::lock_class::*;
    use super::*;

    #[test]
    fn in_order_nesting_is_allowed_and_tracked() {
        let outer = RwLock::new_class(1, &ZSWAP_TREES);
        let inner = Mutex::new_class(2, &ZSWAP_TREE);
        let unclassed = Mutex::new(3);
        let a = outer.read();
        let b = inner.lock();
        let c = unclassed.lock();
        assert_eq!(held_lock_classes(), ["zswap tree table", "zswap tree lock"]);
        // Guards may go in any order.
        drop(a);
        assert_eq!(held_lock_classes(), ["zswap tree lock"]);
        drop((b, c));
        assert!(held_lock_classes().is_empty());
        let _x = outer.write();
    }

    #[test]
    #[should_panic(
        expected = "lock order violation: zswap tree lock (rank 20) taken while holding \
                    zswap LRU list lock (rank 40)"
    )]
    fn inversion_panics_with_both_names() {
        let tree = Mutex::new_class((), &ZSWAP_TREE);
        let list = Mutex::new_class((), &ZSWAP_LRU_LIST);
        let _l = list.lock();
        let _t = tree.lock();
    }

    #[test]
    #[should_panic(expected = "zswap tree lock (rank 20) taken while holding zswap tree lock")]
    fn two_locks_of_a_non_nesting_class_panic() {
        let a = Mutex::new_class((), &ZSWAP_TREE);
        let b = Mutex::new_class((), &ZSWAP_TREE);
        let _a = a.lock();
        let _b = b.lock();
    }

    #[test]
    fn nesting_class_and_trylock() {
        let a = Mutex::new_class((), &ZSWAP_LRU_LIST);
        let b = Mutex::new_class((), &ZSWAP_LRU_LIST);
        let _a = a.lock();
        let _b = b.lock();
        // A failed trylock records nothing; a successful one is tracked.
        let c = Mutex::new_class((), &ZSWAP_TREE);
        let g = c.try_lock().unwrap();
        assert!(c.try_lock().is_none());
        assert_eq!(held_lock_classes().len(), 3);
        drop(g);
        assert_eq!(held_lock_classes().len(), 2);
    }

    #[test]
    fn ranks_are_unique_and_increasing() {
        for w in ALL.windows(2) {
            assert!(w[0].rank < w[1].rank, "{} / {}", w[0].name, w[1].name);
        }
    }
}
