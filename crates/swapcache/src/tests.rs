//! Unit tests: every path of the slot state machine, the swap cache and
//! `read_swap_cache_async`, bad input, and the backends.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::sync::Mutex as StdMutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use kbase::{Error, FaultInjector, Gfp, HeapPageAllocator, PAGE_SIZE, PageAllocator, Result};

use crate::*;

type Space = SwapSpace<TestPlatform>;
type ChargeHook = Arc<dyn Fn(&'static Space, &Folio, SwpEntry) -> Result<()> + Send + Sync>;
type WaitHook = Arc<dyn Fn(&'static Space, SwpEntry, u32) -> Result<()> + Send + Sync>;
type FreedHook = Arc<dyn Fn(&'static Space, SwpEntry) + Send + Sync>;

/// A platform recording every call, with replaceable charge and wait hooks.
struct TestPlatform {
    alloc: &'static FaultInjector<HeapPageAllocator>,
    space: OnceLock<&'static Space>,
    freed: StdMutex<Vec<SwpEntry>>,
    charges: AtomicUsize,
    waits: AtomicUsize,
    charge_hook: StdMutex<Option<ChargeHook>>,
    wait_hook: StdMutex<Option<WaitHook>>,
    freed_hook: StdMutex<Option<FreedHook>>,
}

impl SwapPlatform for TestPlatform {
    fn page_allocator(&self) -> &'static dyn PageAllocator {
        self.alloc
    }

    fn charge_swapin(&self, folio: &Folio, entry: SwpEntry, _gfp: Gfp) -> Result<()> {
        self.charges.fetch_add(1, Ordering::SeqCst);
        folio.set_memcg_id(7);
        // Clone the hook out so it runs with no test lock held (it may recurse).
        let hook = self.charge_hook.lock().unwrap().clone();
        match (hook, self.space.get()) {
            (Some(h), Some(space)) => h(space, folio, entry),
            _ => Ok(()),
        }
    }

    fn slot_freed(&self, entry: SwpEntry) {
        self.freed.lock().unwrap().push(entry);
        let hook = self.freed_hook.lock().unwrap().clone();
        if let (Some(h), Some(space)) = (hook, self.space.get()) {
            h(space, entry);
        }
    }

    fn swapcache_wait(&self, entry: SwpEntry, attempt: u32) -> Result<()> {
        self.waits.fetch_add(1, Ordering::SeqCst);
        let hook = self.wait_hook.lock().unwrap().clone();
        match (hook, self.space.get()) {
            (Some(h), Some(space)) => h(space, entry, attempt),
            _ => {
                std::thread::yield_now();
                Ok(())
            }
        }
    }
}

impl TestPlatform {
    fn freed(&self) -> Vec<SwpEntry> {
        self.freed.lock().unwrap().clone()
    }
    fn freed_count(&self, e: SwpEntry) -> usize {
        self.freed
            .lock()
            .unwrap()
            .iter()
            .filter(|&&x| x == e)
            .count()
    }
    fn set_charge(
        &self,
        h: impl Fn(&'static Space, &Folio, SwpEntry) -> Result<()> + Send + Sync + 'static,
    ) {
        *self.charge_hook.lock().unwrap() = Some(Arc::new(h));
    }
    fn set_wait(
        &self,
        h: impl Fn(&'static Space, SwpEntry, u32) -> Result<()> + Send + Sync + 'static,
    ) {
        *self.wait_hook.lock().unwrap() = Some(Arc::new(h));
    }
    fn pages_out(&self) -> usize {
        self.alloc.inner().allocated_pages()
    }
}

/// A leaked space (hooks need `&'static`), with one device of `nr` slots.
fn space_with(nr: u64) -> &'static Space {
    let alloc = Box::leak(Box::new(FaultInjector::new(HeapPageAllocator::new())));
    let space: &'static Space = Box::leak(Box::new(SwapSpace::new(TestPlatform {
        alloc,
        space: OnceLock::new(),
        freed: StdMutex::new(Vec::new()),
        charges: AtomicUsize::new(0),
        waits: AtomicUsize::new(0),
        charge_hook: StdMutex::new(None),
        wait_hook: StdMutex::new(None),
        freed_hook: StdMutex::new(None),
    })));
    assert!(space.platform().space.set(space).is_ok());
    if nr != 0 {
        assert_eq!(space.swapon(nr, Gfp::KERNEL), Ok(0));
    }
    space
}

fn e(t: u32, off: u64) -> SwpEntry {
    SwpEntry::new(t, off).unwrap()
}

// ---------------------------------------------------------------------------
// Folios
// ---------------------------------------------------------------------------

#[test]
fn folio_pages_come_from_and_return_to_the_allocator() {
    let a: &'static HeapPageAllocator = Box::leak(Box::new(HeapPageAllocator::new()));
    let f = Folio::alloc(a, 4, Gfp::KERNEL).unwrap();
    assert_eq!(f.nr_pages(), 4);
    assert_eq!(a.allocated_pages(), 4);
    f.with_page_mut(3, |p| p[7] = 9).unwrap();
    assert_eq!(f.with_page(3, |p| p[7]).unwrap(), 9);
    assert_eq!(f.with_page(4, |_| ()), Err(Error::EINVAL));
    assert_eq!(f.with_page_mut(usize::MAX, |_| ()), Err(Error::EINVAL));
    let g = f.clone();
    drop(f);
    assert_eq!(a.allocated_pages(), 4, "pages live while a reference does");
    drop(g);
    assert_eq!(a.allocated_pages(), 0);
}

#[test]
fn folio_alloc_bad_sizes_and_partial_failure() {
    let a: &'static HeapPageAllocator = Box::leak(Box::new(HeapPageAllocator::with_limit(2)));
    assert_eq!(Folio::alloc(a, 0, Gfp::KERNEL).unwrap_err(), Error::EINVAL);
    assert_eq!(
        Folio::alloc(a, MAX_FOLIO_PAGES + 1, Gfp::KERNEL).unwrap_err(),
        Error::EINVAL
    );
    // The third page fails: the two taken are given back.
    assert_eq!(Folio::alloc(a, 3, Gfp::KERNEL).unwrap_err(), Error::ENOMEM);
    assert_eq!(a.allocated_pages(), 0);
}

#[test]
fn folio_flags_and_lock() {
    let a: &'static HeapPageAllocator = Box::leak(Box::new(HeapPageAllocator::new()));
    let f = Folio::alloc(a, 1, Gfp::KERNEL).unwrap();
    assert!(!f.is_locked());
    assert!(f.trylock());
    assert!(!f.trylock());
    assert!(f.is_locked());
    f.unlock();
    f.lock();
    assert!(f.is_locked());
    f.unlock();
    assert!(!f.test_uptodate() && !f.test_dirty() && !f.test_writeback());
    f.set_uptodate();
    f.set_dirty();
    f.set_writeback();
    f.set_active();
    f.set_reclaim();
    f.set_referenced();
    assert!(f.test_uptodate() && f.test_dirty() && f.test_writeback());
    assert!(f.test_active() && f.test_reclaim() && f.test_referenced());
    f.clear_dirty();
    f.clear_writeback();
    assert!(!f.test_dirty() && !f.test_writeback() && f.test_uptodate());
    f.clear_uptodate();
    f.clear_active();
    f.clear_reclaim();
    f.clear_referenced();
    assert!(!f.test_uptodate() && !f.test_active() && !f.test_reclaim());
    assert!(!f.test_swapcache());
    assert_eq!(f.swap(), None);
    assert_eq!(f.memcg_id(), 0);
    f.set_memcg_id(3);
    assert_eq!(f.memcg_id(), 3);
}

/// `set_uptodate_dirty` sets exactly the two bits and leaves the others.
#[test]
fn set_uptodate_dirty_sets_both_bits_only() {
    let a: &'static HeapPageAllocator = Box::leak(Box::new(HeapPageAllocator::new()));
    let f = Folio::alloc(a, 1, Gfp::KERNEL).unwrap();
    f.lock();
    f.set_referenced();
    f.set_uptodate_dirty();
    assert!(f.test_uptodate() && f.test_dirty());
    assert!(f.is_locked() && f.test_referenced());
    assert!(!f.test_writeback() && !f.test_active() && !f.test_reclaim());
    f.clear_dirty();
    assert!(f.test_uptodate() && !f.test_dirty());
    f.unlock();
}

// ---------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------

#[test]
fn swapon_swapoff_and_busy() {
    let s = space_with(0);
    assert_eq!(s.swapon(0, Gfp::KERNEL), Err(Error::EINVAL));
    assert_eq!(
        s.swapon(MAX_SWAP_OFFSET + 1, Gfp::KERNEL),
        Err(Error::EINVAL)
    );
    assert_eq!(s.swapon(100, Gfp::KERNEL), Ok(0));
    assert_eq!(s.swapon(1000, Gfp::KERNEL), Ok(1));
    assert_eq!(s.nr_pages(0), Ok(100));
    assert_eq!(s.nr_pages(1), Ok(1000));
    assert_eq!(s.nr_pages(2), Err(Error::EINVAL));
    assert_eq!(s.nr_pages(u32::MAX), Err(Error::EINVAL));
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    assert_eq!(x.swp_type(), 0);
    assert_eq!(s.inuse_pages(0), Ok(1));
    assert_eq!(s.swapoff(0), Err(Error::EBUSY));
    assert_eq!(s.swap_count(x), Ok(1), "a refused swapoff changes nothing");
    // HAS_CACHE alone also keeps the device busy.
    s.swapcache_prepare(x).unwrap();
    s.swap_free(x).unwrap();
    assert_eq!(s.swapoff(0), Err(Error::EBUSY));
    s.swapcache_clear(x);
    assert_eq!(s.inuse_pages(0), Ok(0));
    assert_eq!(s.swapoff(0), Ok(()));
    assert_eq!(s.swapoff(0), Err(Error::EINVAL));
    assert_eq!(s.swapoff(99), Err(Error::EINVAL));
    assert_eq!(s.nr_pages(0), Err(Error::EINVAL));
    assert_eq!(s.swap_count(x), Err(Error::EINVAL));
    // The type is reused.
    assert_eq!(s.swapon(10, Gfp::KERNEL), Ok(0));
}

#[test]
fn swapon_runs_out_of_types() {
    let s = space_with(0);
    for t in 0..MAX_SWAPFILES {
        assert_eq!(s.swapon(1, Gfp::KERNEL), Ok(t));
    }
    assert_eq!(s.swapon(1, Gfp::KERNEL), Err(Error::ENOSPC));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "Miri aborts on an allocation larger than its memory instead of failing it"
)]
fn swapon_huge_device_fails_cleanly() {
    let s = space_with(0);
    // 2^57 slots cannot be allocated: ENOMEM, nothing registered.
    assert_eq!(s.swapon(1 << 57, Gfp::KERNEL), Err(Error::ENOMEM));
    assert_eq!(s.nr_pages(0), Err(Error::EINVAL));
}

// ---------------------------------------------------------------------------
// Slots
// ---------------------------------------------------------------------------

#[test]
fn counts_duplicate_free_and_freed_hook_once() {
    let s = space_with(64);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    assert_eq!(s.swap_count(x), Ok(1));
    s.swap_duplicate(x).unwrap();
    assert_eq!(s.swap_count(x), Ok(2));
    s.swap_free(x).unwrap();
    assert!(s.platform().freed().is_empty());
    s.swap_free(x).unwrap();
    assert_eq!(s.platform().freed(), [x]);
    assert_eq!(s.swap_count(x), Ok(0));
    assert_eq!(s.inuse_pages(0), Ok(0));
    // Double free and duplicate of a free slot: ENOENT, nothing fires.
    assert_eq!(s.swap_free(x), Err(Error::ENOENT));
    assert_eq!(s.swap_duplicate(x), Err(Error::ENOENT));
    assert_eq!(s.swapcache_prepare(x), Err(Error::ENOENT));
    s.swapcache_clear(x);
    assert_eq!(s.platform().freed_count(x), 1);
}

/// zswap invalidates the old entry from `slot_freed`; if the slot could be
/// handed out again before that hook returns, a new owner's store could be
/// erased by the old owner's invalidation. While the hook runs the slot is
/// not allocatable and the device cannot be swapped off.
#[test]
fn freed_slot_is_not_reusable_until_its_hook_returns() {
    let s = space_with(1);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    let seen = Arc::new(StdMutex::new(Vec::new()));
    let seen2 = seen.clone();
    *s.platform().freed_hook.lock().unwrap() = Some(Arc::new(move |space: &'static Space, _e| {
        seen2.lock().unwrap().push((
            space.get_swap_pages(1, Gfp::KERNEL).err(),
            space.swapoff(0).err(),
            space.inuse_pages(0),
        ));
    }));
    s.swap_free(x).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [(Some(Error::ENOSPC), Some(Error::EBUSY), Ok(1))]
    );
    *s.platform().freed_hook.lock().unwrap() = None;
    assert_eq!(s.inuse_pages(0), Ok(0));
    assert_eq!(s.get_swap_pages(1, Gfp::KERNEL), Ok(x));
}

#[test]
fn freed_hook_waits_for_has_cache_then_fires_once() {
    let s = space_with(64);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    s.swapcache_prepare(x).unwrap();
    assert_eq!(s.swapcache_prepare(x), Err(Error::EEXIST));
    assert_eq!(s.has_cache(x), Ok(true));
    // Count reaches 0 while HAS_CACHE is held: not free yet.
    s.swap_free(x).unwrap();
    assert_eq!(s.platform().freed_count(x), 0);
    assert_eq!(s.inuse_pages(0), Ok(1));
    assert_eq!(s.swapcache_prepare(x), Err(Error::EEXIST));
    // swap_duplicate of a cache-only slot works (Linux: count || has_cache).
    s.swap_duplicate(x).unwrap();
    s.swap_free(x).unwrap();
    s.swapcache_clear(x);
    assert_eq!(s.platform().freed_count(x), 1);
    assert_eq!(s.has_cache(x), Ok(false));
    s.swapcache_clear(x);
    assert_eq!(s.platform().freed_count(x), 1);

    // The other order: HAS_CACHE cleared first, then the count. (The slot
    // is reused: one earlier freeing is on record.)
    let y = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    assert_eq!(y, x);
    s.swapcache_prepare(y).unwrap();
    s.swapcache_clear(y);
    assert_eq!(s.platform().freed_count(y), 1);
    s.swap_free(y).unwrap();
    assert_eq!(s.platform().freed_count(y), 2);
    assert_eq!(s.inuse_pages(0), Ok(0));
}

#[test]
fn swap_count_saturates_without_continuation() {
    let s = space_with(8);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    for _ in 1..SWAP_MAP_MAX {
        s.swap_duplicate(x).unwrap();
    }
    assert_eq!(s.swap_count(x), Ok(u32::from(SWAP_MAP_MAX)));
    assert_eq!(s.swap_duplicate(x), Err(Error::ENOMEM));
    assert_eq!(s.swap_count(x), Ok(u32::from(SWAP_MAP_MAX)));
    for _ in 0..SWAP_MAP_MAX {
        s.swap_free(x).unwrap();
    }
    assert_eq!(s.platform().freed(), [x]);
}

#[test]
fn bad_input_unknown_type_and_past_end() {
    let s = space_with(10);
    let unknown = e(5, 0);
    let past = e(0, 10);
    let far = e(0, MAX_SWAP_OFFSET);
    for (x, err) in [
        (unknown, Error::EINVAL),
        (past, Error::ENOENT),
        (far, Error::ENOENT),
    ] {
        assert_eq!(s.swap_count(x), Err(err));
        assert_eq!(s.swap_duplicate(x), Err(err));
        assert_eq!(s.swap_free(x), Err(err));
        assert_eq!(s.free_swap_and_cache(x), Err(err));
        assert_eq!(s.swapcache_prepare(x), Err(err));
        assert_eq!(s.has_cache(x), Err(err));
        s.swapcache_clear(x);
        assert!(s.lookup(x).is_none());
        assert_eq!(s.swap_cgroup_record(x, 1, 3), Err(err));
        assert_eq!(s.lookup_swap_cgroup_id(x), 0);
        assert_eq!(
            s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap_err(),
            err
        );
        assert_eq!(
            s.read_swap_cache_async(x, Gfp::KERNEL, true).unwrap_err(),
            err
        );
        let f = Folio::alloc(s.platform().alloc, 1, Gfp::KERNEL).unwrap();
        assert_eq!(s.add_to_swap_cache(&f, x, Gfp::KERNEL), Err(err));
        assert!(!f.test_swapcache());
    }
    assert_eq!(s.get_swap_pages(0, Gfp::KERNEL), Err(Error::EINVAL));
    assert_eq!(
        s.get_swap_pages(SWAPFILE_CLUSTER + 1, Gfp::KERNEL),
        Err(Error::EINVAL)
    );
    assert!(s.platform().freed().is_empty());
    assert_eq!(s.platform().charges.load(Ordering::SeqCst), 0);
    assert_eq!(s.platform().pages_out(), 0);
    assert_eq!(s.inuse_pages(0), Ok(0));
}

#[test]
fn allocation_fills_devices_in_order_then_enospc() {
    let s = space_with(3);
    assert_eq!(s.swapon(2, Gfp::KERNEL), Ok(1));
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(s.get_swap_pages(1, Gfp::KERNEL).unwrap());
    }
    got.sort();
    assert_eq!(got, [e(0, 0), e(0, 1), e(0, 2), e(1, 0), e(1, 1)]);
    assert_eq!(s.get_swap_pages(1, Gfp::KERNEL), Err(Error::ENOSPC));
    s.swap_free(e(0, 1)).unwrap();
    assert_eq!(s.get_swap_pages(1, Gfp::KERNEL), Ok(e(0, 1)));
    assert_eq!(s.get_swap_pages(2, Gfp::KERNEL), Err(Error::ENOSPC));
}

#[test]
fn large_folio_allocation_is_contiguous_and_aligned() {
    let s = space_with(2 * SWAPFILE_CLUSTER as u64);
    let one = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    assert_eq!(one, e(0, 0));
    let four = s.get_swap_pages(4, Gfp::KERNEL).unwrap();
    assert_eq!(four.offset() % 4, 0);
    assert_ne!(four.offset(), 0);
    for i in 0..4 {
        assert_eq!(s.swap_count(four.checked_add(i).unwrap()), Ok(1));
    }
    // A whole cluster: cluster 0 is partly used, so cluster 1.
    let pmd = s.get_swap_pages(SWAPFILE_CLUSTER, Gfp::KERNEL).unwrap();
    assert_eq!(pmd.offset(), SWAPFILE_CLUSTER as u64);
    assert_eq!(
        s.get_swap_pages(SWAPFILE_CLUSTER, Gfp::KERNEL),
        Err(Error::ENOSPC)
    );
    // Odd sizes: contiguous, unaligned allowed, never crossing a cluster.
    let three = s.get_swap_pages(3, Gfp::KERNEL).unwrap();
    assert!(three.offset() + 3 <= SWAPFILE_CLUSTER as u64);
    for i in 0..3 {
        assert_eq!(s.swap_count(three.checked_add(i).unwrap()), Ok(1));
    }
    assert_eq!(s.inuse_pages(0), Ok(1 + 4 + SWAPFILE_CLUSTER as u64 + 3));
}

#[test]
fn add_to_swap_large_folio_and_delete() {
    let s = space_with(64);
    let alloc = s.platform().alloc;
    let _hole = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    let f = Folio::alloc(alloc, 8, Gfp::KERNEL).unwrap();
    let x = s.add_to_swap(&f, Gfp::KERNEL).unwrap();
    assert_eq!(x.offset() % 8, 0);
    assert!(f.test_swapcache());
    assert_eq!(f.swap(), Some(x));
    assert_eq!(s.add_to_swap(&f, Gfp::KERNEL), Err(Error::EINVAL));
    for i in 0..8 {
        let xi = x.checked_add(i).unwrap();
        assert_eq!(s.swap_count(xi), Ok(1));
        assert_eq!(s.has_cache(xi), Ok(true));
        let hit = s.lookup(xi).unwrap();
        assert!(kbase::KArc::ptr_eq(&hit, &f));
        // A cache hit through read_swap_cache_async, for any page.
        let (r, new) = s.read_swap_cache_async(xi, Gfp::KERNEL, false).unwrap();
        assert!(!new && kbase::KArc::ptr_eq(&r, &f));
    }
    // swapcache_clear refuses while the folio is mapped.
    s.swapcache_clear(x);
    assert_eq!(s.has_cache(x), Ok(true));
    // The page-table references go first: no slot is free while cached.
    for i in 0..8 {
        s.swap_free(x.checked_add(i).unwrap()).unwrap();
    }
    assert!(s.platform().freed().is_empty());
    s.delete_from_swap_cache(&f);
    assert!(!f.test_swapcache());
    assert_eq!(f.swap(), None);
    let mut freed = s.platform().freed();
    freed.sort();
    let want: Vec<_> = (0..8).map(|i| x.checked_add(i).unwrap()).collect();
    assert_eq!(freed, want);
    assert!(s.lookup(x).is_none());
    // Deleting again is a no-op.
    s.delete_from_swap_cache(&f);
    assert_eq!(s.platform().freed().len(), 8);
    assert_eq!(s.inuse_pages(0), Ok(1));
    drop(f);
    assert_eq!(
        s.platform().pages_out(),
        0,
        "the cache dropped its references"
    );
}

#[test]
fn add_to_swap_cache_checks_the_protocol() {
    let s = space_with(SWAPFILE_CLUSTER as u64 + 8);
    let alloc = s.platform().alloc;
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    let f = Folio::alloc(alloc, 1, Gfp::KERNEL).unwrap();
    // No HAS_CACHE: refused.
    assert_eq!(s.add_to_swap_cache(&f, x, Gfp::KERNEL), Err(Error::EINVAL));
    // Free slot: refused.
    assert_eq!(
        s.add_to_swap_cache(&f, e(0, 5), Gfp::KERNEL),
        Err(Error::ENOENT)
    );
    s.swapcache_prepare(x).unwrap();
    s.add_to_swap_cache(&f, x, Gfp::KERNEL).unwrap();
    // Already cached folio / already mapped slot.
    assert_eq!(s.add_to_swap_cache(&f, x, Gfp::KERNEL), Err(Error::EINVAL));
    let g = Folio::alloc(alloc, 1, Gfp::KERNEL).unwrap();
    assert_eq!(s.add_to_swap_cache(&g, x, Gfp::KERNEL), Err(Error::EEXIST));
    assert!(!g.test_swapcache());
    // A large folio may not leave its cluster.
    let big = Folio::alloc(alloc, 4, Gfp::KERNEL).unwrap();
    let last = e(0, SWAPFILE_CLUSTER as u64 - 2);
    assert_eq!(
        s.add_to_swap_cache(&big, last, Gfp::KERNEL),
        Err(Error::EINVAL)
    );
    assert!(kbase::KArc::ptr_eq(&s.lookup(x).unwrap(), &f));
}

#[test]
fn add_to_swap_without_space() {
    let s = space_with(2);
    let alloc = s.platform().alloc;
    let f = Folio::alloc(alloc, 4, Gfp::KERNEL).unwrap();
    assert_eq!(s.add_to_swap(&f, Gfp::KERNEL), Err(Error::ENOSPC));
    assert!(!f.test_swapcache());
    assert_eq!(s.inuse_pages(0), Ok(0));
}

#[test]
fn swap_cgroup_record_and_clear_on_free() {
    let s = space_with(64);
    let x = s.get_swap_pages(4, Gfp::KERNEL).unwrap();
    assert_eq!(s.lookup_swap_cgroup_id(x), 0);
    s.swap_cgroup_record(x, 4, 42).unwrap();
    for i in 0..4 {
        assert_eq!(s.lookup_swap_cgroup_id(x.checked_add(i).unwrap()), 42);
    }
    // A run reaching a free slot is refused whole.
    assert_eq!(s.swap_cgroup_record(x, 5, 9), Err(Error::ENOENT));
    assert_eq!(s.lookup_swap_cgroup_id(x), 42);
    s.swap_free(x).unwrap();
    assert_eq!(s.lookup_swap_cgroup_id(x), 0);
    let y = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    assert_eq!(y, x, "the freed slot is reused");
    assert_eq!(
        s.lookup_swap_cgroup_id(y),
        0,
        "a reused slot starts unrecorded"
    );
}

#[test]
fn free_swap_and_cache_drops_an_unused_cached_folio() {
    let s = space_with(16);
    let f = Folio::alloc(s.platform().alloc, 1, Gfp::KERNEL).unwrap();
    let x = s.add_to_swap(&f, Gfp::KERNEL).unwrap();
    s.swap_duplicate(x).unwrap();
    s.free_swap_and_cache(x).unwrap();
    assert!(f.test_swapcache(), "still referenced: stays cached");
    s.free_swap_and_cache(x).unwrap();
    assert!(!f.test_swapcache());
    assert_eq!(s.platform().freed(), [x]);
    // A locked folio is left alone.
    let g = Folio::alloc(s.platform().alloc, 1, Gfp::KERNEL).unwrap();
    let y = s.add_to_swap(&g, Gfp::KERNEL).unwrap();
    g.lock();
    s.free_swap_and_cache(y).unwrap();
    assert!(g.test_swapcache());
    assert_eq!(s.platform().freed().len(), 1);
    g.unlock();
    s.delete_from_swap_cache(&g);
    assert_eq!(s.platform().freed(), [x, y]);
}

// ---------------------------------------------------------------------------
// read_swap_cache_async
// ---------------------------------------------------------------------------

#[test]
fn rsca_new_folio_is_charged_inserted_and_locked() {
    let s = space_with(16);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    let (f, new) = s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap();
    assert!(new);
    assert!(f.is_locked());
    assert!(!f.test_uptodate());
    assert!(f.test_swapcache());
    assert_eq!(f.swap(), Some(x));
    assert_eq!(f.memcg_id(), 7, "charged through the platform");
    assert_eq!(s.platform().charges.load(Ordering::SeqCst), 1);
    assert_eq!(s.has_cache(x), Ok(true));
    assert_eq!(s.swap_count(x), Ok(1));
    assert_eq!(s.platform().pages_out(), 1);
    f.set_uptodate();
    f.unlock();
    // Hit: the same folio, not new, no second charge or allocation.
    let (g, new) = s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap();
    assert!(!new && kbase::KArc::ptr_eq(&f, &g));
    let (g, new) = s.read_swap_cache_async(x, Gfp::KERNEL, true).unwrap();
    assert!(!new && kbase::KArc::ptr_eq(&f, &g));
    assert_eq!(s.platform().charges.load(Ordering::SeqCst), 1);
    assert_eq!(s.platform().pages_out(), 1);
}

#[test]
fn rsca_skip_if_exists_fails_at_once() {
    let s = space_with(16);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    s.swapcache_prepare(x).unwrap();
    assert_eq!(
        s.read_swap_cache_async(x, Gfp::KERNEL, true).unwrap_err(),
        Error::EEXIST
    );
    assert_eq!(s.platform().waits.load(Ordering::SeqCst), 0);
    assert_eq!(s.platform().charges.load(Ordering::SeqCst), 0);
    assert_eq!(
        s.platform().pages_out(),
        0,
        "the speculative folio was freed"
    );
    assert_eq!(s.has_cache(x), Ok(true), "someone else's bit is untouched");
}

#[test]
fn rsca_waits_then_gets_the_folio_another_thread_inserts() {
    let _watchdog = kbase::testing::watchdog(
        "rsca_waits_then_gets_the_folio_another_thread_inserts",
        std::time::Duration::from_secs(120),
    );
    let s = space_with(16);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    // The "other task" owns HAS_CACHE and has not inserted yet.
    s.swapcache_prepare(x).unwrap();
    let theirs = Folio::alloc(s.platform().alloc, 1, Gfp::KERNEL).unwrap();
    let waited = Arc::new(AtomicBool::new(false));
    let w = waited.clone();
    s.platform().set_wait(move |_, entry, _| {
        assert_eq!(entry, x);
        w.store(true, Ordering::SeqCst);
        std::thread::yield_now();
        Ok(())
    });
    let reader = std::thread::spawn(move || s.read_swap_cache_async(x, Gfp::KERNEL, false));
    while !waited.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    s.add_to_swap_cache(&theirs, x, Gfp::KERNEL).unwrap();
    let (got, new) = reader.join().unwrap().unwrap();
    assert!(!new);
    assert!(kbase::KArc::ptr_eq(&got, &theirs));
    assert!(s.platform().waits.load(Ordering::SeqCst) >= 1);
    assert_eq!(s.platform().charges.load(Ordering::SeqCst), 0);
    drop(got);
    drop(theirs);
    // Only the cached folio's page is out; the reader's spare was freed.
    assert_eq!(s.platform().pages_out(), 1);
}

#[test]
fn rsca_wait_hook_error_is_returned() {
    let s = space_with(16);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    s.swapcache_prepare(x).unwrap();
    s.platform().set_wait(|_, _, attempt| {
        if attempt >= 3 {
            Err(Error::EDEADLK)
        } else {
            Ok(())
        }
    });
    assert_eq!(
        s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap_err(),
        Error::EDEADLK
    );
    assert_eq!(s.platform().waits.load(Ordering::SeqCst), 4);
    assert_eq!(s.platform().pages_out(), 0);
    assert_eq!(s.has_cache(x), Ok(true));
}

#[test]
fn rsca_freed_slot_is_enoent() {
    let s = space_with(16);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    s.swap_free(x).unwrap();
    assert_eq!(
        s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap_err(),
        Error::ENOENT
    );
    // Never allocated: ENOENT too.
    assert_eq!(
        s.read_swap_cache_async(e(0, 9), Gfp::KERNEL, true)
            .unwrap_err(),
        Error::ENOENT
    );
    assert_eq!(s.platform().pages_out(), 0);
    assert_eq!(s.platform().freed(), [x]);
}

#[test]
fn rsca_charge_failure_clears_has_cache() {
    let s = space_with(16);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    s.platform().set_charge(|_, _, _| Err(Error::ENOMEM));
    assert_eq!(
        s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap_err(),
        Error::ENOMEM
    );
    assert_eq!(s.has_cache(x), Ok(false));
    assert_eq!(s.swap_count(x), Ok(1));
    assert!(s.lookup(x).is_none());
    assert!(s.platform().freed().is_empty(), "count 1: not freed");
    assert_eq!(s.platform().pages_out(), 0);
    // The slot works afterwards.
    *s.platform().charge_hook.lock().unwrap() = None;
    let (_f, new) = s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap();
    assert!(new);
}

#[test]
fn rsca_charge_failure_after_last_free_frees_the_slot_once() {
    let s = space_with(16);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    // During the charge the task exits: the last reference is dropped.
    s.platform().set_charge(move |space, _, entry| {
        space.swap_free(entry).unwrap();
        assert!(space.platform().freed().is_empty(), "HAS_CACHE still held");
        Err(Error::ENOMEM)
    });
    assert_eq!(
        s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap_err(),
        Error::ENOMEM
    );
    assert_eq!(s.platform().freed(), [x]);
    assert_eq!(s.inuse_pages(0), Ok(0));
    assert_eq!(s.platform().pages_out(), 0);
}

#[test]
fn rsca_alloc_failure_leaves_the_slot_alone() {
    let s = space_with(16);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    s.platform().alloc.fail_next(1);
    assert_eq!(
        s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap_err(),
        Error::ENOMEM
    );
    assert_eq!(s.platform().alloc.injected_failures(), 1);
    assert_eq!(s.has_cache(x), Ok(false));
    assert_eq!(s.swap_count(x), Ok(1));
    assert_eq!(s.platform().charges.load(Ordering::SeqCst), 0);
    // Every page taken was given back, and the slot still works.
    assert_eq!(s.platform().pages_out(), 0);
    let (_f, new) = s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap();
    assert!(new);
}

#[test]
fn rsca_alloc_failure_under_fault_injection_never_leaks() {
    let s = space_with(64);
    let slots: Vec<_> = (0..32)
        .map(|_| s.get_swap_pages(1, Gfp::KERNEL).unwrap())
        .collect();
    s.platform().alloc.fail_every(3);
    let mut ok = 0;
    for &x in &slots {
        match s.read_swap_cache_async(x, Gfp::KERNEL, false) {
            Ok((f, true)) => {
                ok += 1;
                f.unlock();
                s.delete_from_swap_cache(&f);
            }
            Ok((_, false)) => panic!("nothing was cached"),
            Err(err) => {
                assert_eq!(err, Error::ENOMEM);
                assert_eq!(s.has_cache(x), Ok(false));
            }
        }
        assert_eq!(s.swap_count(x), Ok(1));
    }
    assert!(ok > 0 && ok < slots.len());
    assert_eq!(s.platform().pages_out(), 0);
    assert!(s.platform().freed().is_empty());
}

#[test]
fn rsca_recursion_from_the_charge_gets_eexist() {
    // Fault on X; its charge reclaims; reclaim's zswap writeback picks X.
    let s = space_with(16);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    let inner = Arc::new(StdMutex::new(None));
    let seen = inner.clone();
    s.platform().set_charge(move |space, _, entry| {
        let r = space.read_swap_cache_async(entry, Gfp::KERNEL, true);
        *seen.lock().unwrap() = Some(r.map(|(_, new)| new));
        Ok(())
    });
    let (f, new) = s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap();
    assert!(new && f.is_locked());
    assert_eq!(*inner.lock().unwrap(), Some(Err(Error::EEXIST)));
    assert_eq!(s.platform().charges.load(Ordering::SeqCst), 1);
    assert_eq!(s.platform().waits.load(Ordering::SeqCst), 0);
    assert_eq!(s.platform().pages_out(), 1);
}

#[test]
fn rsca_recursion_without_skip_would_wait_on_itself() {
    // The same recursion with skip_if_exists = false: it can only wait for
    // its own caller. A platform that detects this returns EDEADLK.
    let s = space_with(16);
    let x = s.get_swap_pages(1, Gfp::KERNEL).unwrap();
    let depth = Arc::new(AtomicU32::new(0));
    let d = depth.clone();
    s.platform().set_charge(move |space, _, entry| {
        d.fetch_add(1, Ordering::SeqCst);
        let r = space.read_swap_cache_async(entry, Gfp::KERNEL, false);
        assert_eq!(r.unwrap_err(), Error::EDEADLK);
        Ok(())
    });
    s.platform().set_wait(|_, _, attempt| {
        if attempt >= 100 {
            Err(Error::EDEADLK)
        } else {
            Ok(())
        }
    });
    let (_f, new) = s.read_swap_cache_async(x, Gfp::KERNEL, false).unwrap();
    assert!(new);
    assert_eq!(depth.load(Ordering::SeqCst), 1);
    assert_eq!(s.platform().waits.load(Ordering::SeqCst), 101);
}

#[test]
fn concurrent_swapins_and_frees_keep_the_books() {
    let _watchdog = kbase::testing::watchdog(
        "concurrent_swapins_and_frees_keep_the_books",
        std::time::Duration::from_secs(120),
    );
    const THREADS: usize = 4;
    const SLOTS: usize = 64;
    const ROUNDS: usize = 50;
    let s = space_with(1024);
    let slots: Vec<_> = (0..SLOTS)
        .map(|_| s.get_swap_pages(1, Gfp::KERNEL).unwrap())
        .collect();
    for &x in &slots {
        for _ in 1..THREADS {
            s.swap_duplicate(x).unwrap();
        }
    }
    let slots: &'static [SwpEntry] = Box::leak(slots.into_boxed_slice());
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                for r in 0..ROUNDS {
                    let x = slots[(t * 7 + r) % SLOTS];
                    let (f, new) = s
                        .read_swap_cache_async(x, Gfp::KERNEL, t % 2 == 0)
                        .unwrap_or_else(|err| {
                            assert_eq!(err, Error::EEXIST);
                            (
                                Folio::alloc(s.platform().alloc, 1, Gfp::KERNEL).unwrap(),
                                false,
                            )
                        });
                    if new {
                        f.set_uptodate();
                        f.unlock();
                    }
                    // Reclaim the clean folio again now and then.
                    if r % 3 == 0 && f.trylock() {
                        s.delete_from_swap_cache(&f);
                        f.unlock();
                    }
                }
                // Each thread drops its reference to every slot.
                for &x in slots {
                    s.free_swap_and_cache(x).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // Drop any folio still cached for a slot with count 0.
    for &x in slots {
        assert_eq!(s.swap_count(x), Ok(0));
        if let Some(f) = s.lookup(x) {
            s.delete_from_swap_cache(&f);
        }
    }
    assert_eq!(s.inuse_pages(0), Ok(0));
    let freed = s.platform().freed();
    assert_eq!(freed.len(), SLOTS);
    for &x in slots {
        assert_eq!(s.platform().freed_count(x), 1);
    }
    assert_eq!(s.platform().pages_out(), 0);
    assert_eq!(s.swapoff(0), Ok(()));
}

#[test]
fn concurrent_allocation_hands_out_each_slot_once() {
    let _watchdog = kbase::testing::watchdog(
        "concurrent_allocation_hands_out_each_slot_once",
        std::time::Duration::from_secs(120),
    );
    const THREADS: usize = 4;
    let total = 3 * SWAPFILE_CLUSTER as u64 + 100;
    let s = space_with(total);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let nr = [1usize, 2, 4, 8][t];
                while let Ok(x) = s.get_swap_pages(nr, Gfp::KERNEL) {
                    assert_eq!(x.offset() % nr as u64, 0);
                    mine.extend((0..nr as u64).map(|i| x.checked_add(i).unwrap()));
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<SwpEntry> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "a slot was handed out twice");
    assert_eq!(s.inuse_pages(0), Ok(n as u64));
    // Single slots fill every hole, so the device ends up full.
    assert_eq!(n as u64, total);
    for x in all {
        s.swap_free(x).unwrap();
    }
    assert_eq!(s.inuse_pages(0), Ok(0));
    assert_eq!(s.platform().freed().len(), n);
}

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

fn page_of(seed: u8) -> Box<[u8; PAGE_SIZE]> {
    let mut p = Box::new([0u8; PAGE_SIZE]);
    for (i, b) in p.iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
    p
}

fn backend_roundtrip(b: &dyn SwapBackend) {
    let mut out = Box::new([0u8; PAGE_SIZE]);
    assert_eq!(b.read_page(e(0, 3), &mut out), Err(Error::ENOENT));
    b.write_page(e(0, 3), &page_of(1)).unwrap();
    b.write_page(e(1, 3), &page_of(2)).unwrap();
    b.write_page(e(0, 100_000), &page_of(3)).unwrap();
    b.read_page(e(0, 3), &mut out).unwrap();
    assert_eq!(out, page_of(1));
    b.read_page(e(1, 3), &mut out).unwrap();
    assert_eq!(out, page_of(2));
    b.read_page(e(0, 100_000), &mut out).unwrap();
    assert_eq!(out, page_of(3));
    b.write_page(e(0, 3), &page_of(4)).unwrap();
    b.read_page(e(0, 3), &mut out).unwrap();
    assert_eq!(out, page_of(4), "an overwrite replaces the page");
    b.discard(e(0, 3));
    assert_eq!(b.read_page(e(0, 3), &mut out), Err(Error::ENOENT));
    b.discard(e(0, 3));
    b.discard(e(31, MAX_SWAP_OFFSET));
    assert_eq!(b.read_page(e(0, 4), &mut out), Err(Error::ENOENT));
    assert_eq!(
        b.read_page(e(31, MAX_SWAP_OFFSET), &mut out),
        Err(Error::ENOENT)
    );
}

#[test]
fn mem_backend_roundtrip_and_sparse_offsets() {
    let b = MemBackend::new();
    backend_roundtrip(&b);
    assert_eq!(b.stored_pages(), 2);
    // The highest offset works without allocating for the gap.
    b.write_page(e(31, MAX_SWAP_OFFSET), &page_of(5)).unwrap();
    let mut out = Box::new([0u8; PAGE_SIZE]);
    b.read_page(e(31, MAX_SWAP_OFFSET), &mut out).unwrap();
    assert_eq!(out, page_of(5));
    // Many chunks, written out of order: the index grows and stays sorted.
    for i in (0..40u64).rev() {
        b.write_page(e(2, i * 1000), &page_of(i as u8)).unwrap();
    }
    for i in 0..40u64 {
        b.read_page(e(2, i * 1000), &mut out).unwrap();
        assert_eq!(out, page_of(i as u8));
    }
    assert_eq!(b.stored_pages(), 43);
}

#[test]
fn mem_backend_limit_and_faults() {
    let b = MemBackend::with_limit(2);
    b.write_page(e(0, 0), &page_of(0)).unwrap();
    b.write_page(e(0, 1), &page_of(1)).unwrap();
    assert_eq!(b.write_page(e(0, 2), &page_of(2)), Err(Error::ENOSPC));
    b.write_page(e(0, 1), &page_of(9)).unwrap();
    b.fail_next_writes(1);
    assert_eq!(b.write_page(e(0, 0), &page_of(7)), Err(Error::EIO));
    let mut out = Box::new([0u8; PAGE_SIZE]);
    b.read_page(e(0, 0), &mut out).unwrap();
    assert_eq!(out, page_of(0), "a failed write keeps the old data");
    b.fail_next_reads(1);
    assert_eq!(b.read_page(e(0, 0), &mut out), Err(Error::EIO));
    b.read_page(e(0, 1), &mut out).unwrap();
    assert_eq!(out, page_of(9));
    b.discard(e(0, 0));
    b.write_page(e(0, 2), &page_of(2)).unwrap();
    assert_eq!(b.stored_pages(), 2);
}

#[cfg(all(feature = "std", unix))]
#[test]
#[cfg_attr(miri, ignore = "Miri's isolation forbids file I/O")]
fn file_backend_roundtrip() {
    let dir = std::env::temp_dir().join(std::format!("swapcache-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let b = FileBackend::new(&dir).unwrap();
    backend_roundtrip(&b);
    assert!(b.path(0).exists());
    let mut out = Box::new([0u8; PAGE_SIZE]);
    // Offsets whose byte position overflows are refused, not wrapped.
    assert_eq!(
        b.write_page(e(0, MAX_SWAP_OFFSET), &page_of(1)),
        Err(Error::EINVAL)
    );
    assert_eq!(
        b.read_page(e(0, MAX_SWAP_OFFSET), &mut out),
        Err(Error::ENOENT)
    );
    drop(b);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(FileBackend::new(&dir).err(), Some(Error::ENOENT));
}

// ---------------------------------------------------------------------------
// The zeromap (6.12+) and swapoff's try_to_unuse
// ---------------------------------------------------------------------------

/// A swapped-out folio of `data` (count 1 + HAS_CACHE + in the cache), locked.
fn cached_folio(space: &'static Space, data: &[u8; PAGE_SIZE]) -> (FolioRef, SwpEntry) {
    let f = Folio::alloc(space.platform().alloc, 1, Gfp::KERNEL).unwrap();
    f.with_page_mut(0, |p| p.copy_from_slice(data)).unwrap();
    f.lock();
    let swp = space.add_to_swap(&f, Gfp::KERNEL).unwrap();
    (f, swp)
}

#[test]
fn zero_pages_go_to_the_zeromap_and_come_back_as_zeros() {
    let space = space_with(64);
    let (f, swp) = cached_folio(space, &[0u8; PAGE_SIZE]);
    assert_eq!(space.zeromap_folio_store(&f), Ok(true));
    assert!(space.zeromap_test(swp));
    assert_eq!(space.stats().swpout_zero, 1);
    space.delete_from_swap_cache(&f);
    f.unlock();
    drop(f);
    // Swap-in: the zeromap fills the folio, no read needed.
    let (g, new) = space
        .read_swap_cache_async(swp, Gfp::KERNEL, false)
        .unwrap();
    assert!(new);
    g.with_page_mut(0, |p| p.fill(0xaa)).unwrap();
    assert_eq!(space.zeromap_folio_read(&g), Ok(true));
    assert!(g.test_uptodate());
    assert_eq!(g.with_page(0, |p| p.iter().all(|b| *b == 0)), Ok(true));
    assert_eq!(space.stats().swpin_zero, 1);
    space.delete_from_swap_cache(&g);
    g.unlock();
    // Freeing the slot clears its bit.
    space.swap_free(swp).unwrap();
    assert!(!space.zeromap_test(swp));
}

/// Zero-page detection sees every byte: a page that is zero but for one
/// byte, at any position, is not a zero page (and a 2-page folio is zero
/// only if both pages are). Miri checks a sample of the positions.
#[test]
fn zeromap_detection_sees_every_byte_position() {
    let space = space_with(64);
    let (f, swp) = cached_folio(space, &[0u8; PAGE_SIZE]);
    let step = if cfg!(miri) { 127 } else { 1 };
    let positions = (0..PAGE_SIZE).step_by(step).chain(PAGE_SIZE - 8..PAGE_SIZE);
    for i in positions {
        f.with_page_mut(0, |p| p[i] = 0x01).unwrap();
        assert_eq!(space.zeromap_folio_store(&f), Ok(false), "byte {i}");
        assert!(!space.zeromap_test(swp));
        f.with_page_mut(0, |p| p[i] = 0).unwrap();
    }
    assert_eq!(space.zeromap_folio_store(&f), Ok(true));
    space.delete_from_swap_cache(&f);
    f.unlock();
    drop(f);
    let g = Folio::alloc(space.platform().alloc, 2, Gfp::KERNEL).unwrap();
    for i in 0..2 {
        g.with_page_mut(i, |p| p.fill(0)).unwrap();
    }
    g.lock();
    space.add_to_swap(&g, Gfp::KERNEL).unwrap();
    assert_eq!(space.zeromap_folio_store(&g), Ok(true));
    for i in [0, PAGE_SIZE / 2, PAGE_SIZE - 1] {
        g.with_page_mut(1, |p| p[i] = 0x80).unwrap();
        assert_eq!(space.zeromap_folio_store(&g), Ok(false), "page 1 byte {i}");
        g.with_page_mut(1, |p| p[i] = 0).unwrap();
    }
    space.delete_from_swap_cache(&g);
    g.unlock();
}

/// The zeromap of a folio at the very end of a cluster: its last slot is
/// the cluster's last, which is in range (a bound off by one would refuse
/// it).
#[test]
fn zeromap_of_the_last_slot_of_a_cluster() {
    let space = space_with(crate::SWAPFILE_CLUSTER as u64);
    let mut taken = Vec::new();
    while taken.len() + 1 < crate::SWAPFILE_CLUSTER {
        match space.get_swap_pages(1, Gfp::KERNEL) {
            Ok(s) => taken.push(s),
            Err(_) => break,
        }
    }
    let (f, swp) = cached_folio(space, &[0u8; PAGE_SIZE]);
    assert_eq!(
        swp.offset() as usize % crate::SWAPFILE_CLUSTER,
        crate::SWAPFILE_CLUSTER - 1
    );
    assert_eq!(space.zeromap_folio_store(&f), Ok(true));
    assert!(space.zeromap_test(swp));
    space.delete_from_swap_cache(&f);
    f.unlock();
}

#[test]
fn a_nonzero_page_clears_a_stale_zeromap_bit() {
    let space = space_with(64);
    let (f, swp) = cached_folio(space, &[0u8; PAGE_SIZE]);
    assert_eq!(space.zeromap_folio_store(&f), Ok(true));
    // Redirtied with data, swapped out again at the same slot.
    f.with_page_mut(0, |p| p[100] = 1).unwrap();
    assert_eq!(space.zeromap_folio_store(&f), Ok(false));
    assert!(!space.zeromap_test(swp));
    // A page of one repeated non-zero value is not a zero page.
    f.with_page_mut(0, |p| p.fill(0x5a)).unwrap();
    assert_eq!(space.zeromap_folio_store(&f), Ok(false));
    assert_eq!(space.zeromap_folio_read(&f), Ok(false));
    assert_eq!(
        space.stats(),
        SwapStats {
            swpin_zero: 0,
            swpout_zero: 1
        }
    );
    space.delete_from_swap_cache(&f);
    f.unlock();
    space.swap_free(swp).unwrap();
    // Not in the swap cache: EINVAL.
    assert_eq!(space.zeromap_folio_store(&f), Err(Error::EINVAL));
}

#[test]
fn try_to_unuse_faults_every_slot_back_and_swapoff_finishes() {
    let space = space_with(128);
    let mut slots = Vec::new();
    for i in 0..20u8 {
        let (f, swp) = cached_folio(space, &[i; PAGE_SIZE]);
        space.delete_from_swap_cache(&f);
        f.unlock();
        slots.push(swp);
    }
    // Two references to one slot; one folio still in the swap cache.
    space.swap_duplicate(slots[3]).unwrap();
    let (kept, kept_swp) = cached_folio(space, &[0x77; PAGE_SIZE]);
    kept.unlock();
    assert_eq!(space.swapoff(0), Err(Error::EBUSY));
    // The owner side: every reference to a slot is dropped once its page is
    // back (here, the test only drops the references).
    let mut seen = Vec::new();
    space
        .try_to_unuse(0, &mut |e| {
            seen.push(e);
            while space.swap_count(e).unwrap_or(0) != 0 {
                space.swap_free(e)?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(seen.len(), 21);
    assert_eq!(space.inuse_pages(0), Ok(0));
    assert!(space.lookup(kept_swp).is_none(), "cached folio freed");
    assert!(!kept.test_swapcache());
    assert_eq!(space.swapoff(0), Ok(()));
    assert_eq!(space.platform().freed().len(), 21);
}

#[test]
fn try_to_unuse_stops_allocations_and_gives_them_back_on_failure() {
    let space = space_with(64);
    let (f, swp) = cached_folio(space, &[1u8; PAGE_SIZE]);
    space.delete_from_swap_cache(&f);
    f.unlock();
    let r = space.try_to_unuse(0, &mut |e| {
        // While swapoff runs, nothing new lands on the device.
        assert_eq!(space.get_swap_pages(1, Gfp::KERNEL), Err(Error::ENOSPC));
        assert_eq!(e, swp);
        Err(Error::ENOMEM)
    });
    assert_eq!(r, Err(Error::ENOMEM));
    // Nothing lost, and the device takes allocations again.
    assert_eq!(space.swap_count(swp), Ok(1));
    let other = space.get_swap_pages(1, Gfp::KERNEL).unwrap();
    // An owner that keeps its reference: EBUSY after a few passes.
    assert_eq!(space.try_to_unuse(0, &mut |_| Ok(())), Err(Error::EBUSY));
    space.swap_free(other).unwrap();
    space.swap_free(swp).unwrap();
    assert_eq!(space.try_to_unuse(0, &mut |_| Ok(())), Ok(()));
    assert_eq!(space.swapoff(0), Ok(()));
    assert_eq!(space.try_to_unuse(0, &mut |_| Ok(())), Err(Error::EINVAL));
}
