//! One test per historical zswap race or bug (see the Linux reference notes,
//! section 6), driven through the test kernel with trace hooks placed at the
//! exact windows where the races happen.
#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use kbase::{Error, Gfp, PAGE_SIZE};
use swapcache::{Folio, SwapBackend, SwpEntry};
use zswap_core::{ShrinkControl, ShrinkResult, ZswapEvent, ZswapParams};

/// Runs `f` at the first trace event matching `pick`.
fn once(
    pick: fn(ZswapEvent) -> Option<SwpEntry>,
    f: impl Fn(&Kernel, SwpEntry) + Send + Sync + 'static,
) -> Hook {
    let done = AtomicBool::new(false);
    Arc::new(move |k: &Kernel, ev| {
        if let Some(s) = pick(ev)
            && !done.swap(true, Ordering::SeqCst)
        {
            f(k, s)
        }
    })
}

fn picked(ev: ZswapEvent) -> Option<SwpEntry> {
    match ev {
        ZswapEvent::WritebackPicked(s) => Some(s),
        _ => None,
    }
}

fn owned(ev: ZswapEvent) -> Option<SwpEntry> {
    match ev {
        ZswapEvent::WritebackOwned(s) => Some(s),
        _ => None,
    }
}

fn load_erased(ev: ZswapEvent) -> Option<SwpEntry> {
    match ev {
        ZswapEvent::LoadErased(s) => Some(s),
        _ => None,
    }
}

/// No folio is in the swap cache for `swp` and its HAS_CACHE is clear.
fn assert_not_cached(k: &Kernel, swp: SwpEntry) {
    assert!(k.swap.lookup(swp).is_none(), "folio left in the swap cache");
    assert!(
        !k.swap.has_cache(swp).unwrap_or(false),
        "HAS_CACHE left set"
    );
}

/// Race 1: the shrinker picked X and dropped the LRU lock; X is invalidated
/// and the slot reused by a new store. Writeback must not write the old data
/// over the new one, and must never touch the freed entry.
#[test]
fn writeback_racing_invalidate_with_slot_reuse() {
    let k = Kernel::new(Config {
        swap_pages: 8,
        ..Config::default()
    });
    let cg = k.cgroup("r1");
    let old = compressible(1);
    let new = compressible(200);
    let x = k.swap_out_stored(&old, Some(&cg));
    // Fill every other slot, so the freed slot is the only one to reuse.
    let mut others = Vec::new();
    while let Ok(s) = k.swap.get_swap_pages(1, Gfp::KERNEL) {
        others.push(s);
    }
    k.age(&cg, 1);
    let reused = Arc::new(std::sync::Mutex::new(None));
    let reused2 = reused.clone();
    let new2 = new.clone();
    let cg2 = cg.clone();
    k.set_hook(Some(once(picked, move |k, s| {
        k.release(s); // invalidate: the entry is freed
        let y = k.swap_out_stored(&new2, Some(&cg2)); // reuse
        *reused2.lock().unwrap() = Some(y);
    })));
    let _ = k.zswap.shrink_memcg(&cg);
    k.set_hook(None);
    assert_eq!(*reused.lock().unwrap(), Some(x), "slot was reused");
    // The device never received the old data at X.
    let mut buf = [0u8; PAGE_SIZE];
    if k.backend.read_page(x, &mut buf).is_ok() {
        assert_eq!(&buf[..], &new[..], "old data written over the new");
    }
    assert_not_cached(&k, x);
    assert_eq!(&k.swap_in(x).unwrap()[..], &new[..]);
    for s in others {
        k.release(s);
    }
    assert_eq!(k.zswap.stats().stored_pages, 0);
}

/// The platform contract behind race 1: `slot_freed` (zswap_invalidate)
/// must run before the slot can be allocated again. Here the slot is reused
/// in that window (the hook runs at the start of `slot_freed`), and the late
/// invalidation then destroys the new owner's data. The swap core must keep
/// a freed slot reserved until `slot_freed` returned, as Linux's
/// `swap_entry_range_free` calls `zswap_invalidate` before `swap_range_free`.
#[test]
fn slot_freed_runs_before_the_slot_can_be_reused() {
    let k = Kernel::new(Config {
        swap_pages: 1,
        ..Config::default()
    });
    let x = k.swap_out_stored(&compressible(1), None);
    let new = compressible(2);
    let new2 = new.clone();
    let in_window = Arc::new(std::sync::Mutex::new(None));
    let in_window2 = in_window.clone();
    *k.sp().on_slot_freed.lock().unwrap() = Some(Arc::new(move |k: &Kernel, _| {
        // Another CPU swaps a page out while the old slot's invalidation is
        // pending: it must not get that slot.
        let f = Folio::alloc(k.alloc, 1, Gfp::KERNEL).unwrap();
        f.with_page_mut(0, |p| p.copy_from_slice(&new2[..]))
            .unwrap();
        f.lock();
        let r = k.swap.add_to_swap(&f, Gfp::KERNEL);
        if r.is_ok() {
            k.zswap.store(&f).unwrap();
            k.swap.delete_from_swap_cache(&f);
        }
        f.unlock();
        *in_window2.lock().unwrap() = Some(r);
    }));
    k.release(x);
    let r = in_window.lock().unwrap().take().expect("hook ran");
    if r.is_ok() {
        // Reused inside the window: the late invalidation must not have
        // destroyed the new page (it does, with the wrong ordering).
        assert_eq!(&k.swap_in(x).unwrap()[..], &new[..]);
    }
    assert_eq!(
        r.err(),
        Some(Error::ENOSPC),
        "slot reusable before slot_freed returned"
    );
    // Once the hook returned, the slot is free for a new owner.
    let y = k.swap_out_stored(&new, None);
    assert_eq!(y, x);
    assert_eq!(&k.swap_in(y).unwrap()[..], &new[..]);
}

/// Race 2 (e3b63e966cac): the abort path of writeback (entry no longer the
/// tree's) removes its new folio from the swap cache, unlocks and frees it.
#[test]
fn writeback_abort_path_leaves_no_folio_locked_or_cached() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r2");
    let page = compressible(9);
    let x = k.swap_out_stored(&page, Some(&cg));
    k.swap.swap_duplicate(x).unwrap(); // a second mapping keeps the slot
    k.age(&cg, 1);
    let got = Arc::new(std::sync::Mutex::new(None));
    let got2 = got.clone();
    k.set_hook(Some(once(picked, move |k, s| {
        // A fault loads X (exclusive: the entry goes) and the folio then
        // leaves the swap cache while the slot stays allocated.
        let (f, new) = k.swap.read_swap_cache_async(s, Gfp::KERNEL, false).unwrap();
        assert!(new);
        k.zswap.load(&f).unwrap();
        let mut data = vec![0u8; PAGE_SIZE];
        f.with_page(0, |p| data.copy_from_slice(p)).unwrap();
        k.swap.delete_from_swap_cache(&f);
        f.unlock();
        *got2.lock().unwrap() = Some(data);
    })));
    let pages_before = k.pages_allocated();
    let _ = k.zswap.shrink_memcg(&cg);
    k.set_hook(None);
    assert_eq!(got.lock().unwrap().as_deref(), Some(&page[..]));
    let s = k.zswap.stats();
    assert_eq!(s.written_back_pages, 0);
    assert!(s.reject_reclaim_fail >= 1);
    assert_not_cached(&k, x);
    // The aborted folio (and the loaded one) went back to the allocator.
    assert!(k.pages_allocated() <= pages_before);
    assert_eq!(k.swap.swap_count(x), Ok(2));
}

/// Race 3 (5878303c5353): swapoff while the shrinker works on the device.
#[test]
fn writeback_racing_swapoff() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r3");
    let x = k.swap_out_stored(&compressible(3), Some(&cg));
    k.age(&cg, 1);
    // While writeback owns the swap-cache folio, swapoff cannot finish.
    k.set_hook(Some(once(owned, |k, _| {
        assert_eq!(k.swap.swapoff(k.swp_type), Err(Error::EBUSY));
        assert_eq!(k.zswap.swapoff(k.swp_type), Err(Error::EBUSY));
    })));
    k.zswap.shrink_memcg(&cg).unwrap();
    assert_eq!(k.zswap.stats().written_back_pages, 1);
    let y = k.swap_out_stored(&compressible(4), Some(&cg));
    k.age(&cg, 1);
    // Picked, then the device is swapped off under the shrinker: writeback
    // fails cleanly.
    k.set_hook(Some(once(picked, move |k, s| {
        assert_eq!(s, y);
        k.swap_in(x).unwrap();
        k.swap_in(y).unwrap();
        k.swap.swapoff(k.swp_type).unwrap();
        k.zswap.swapoff(k.swp_type).unwrap();
    })));
    let r = k.zswap.shrink_memcg(&cg);
    k.set_hook(None);
    assert!(r.is_err());
    let s = k.zswap.stats();
    assert_eq!(s.written_back_pages, 1);
    assert_eq!(s.stored_pages, 0);
    assert!(k.zswap.swapoff(k.swp_type).is_err(), "trees already gone");
}

/// Race 4 (a65b0e7607cc): a fault on X charges its folio; the charge
/// reclaims into the zswap shrinker, which picks X itself. Writeback must
/// skip X at once (the slot is busy with no folio: `read_swap_cache_async`
/// gives EEXIST, writeback ENOMEM as Linux's NULL folio), and the fault
/// completes from zswap.
#[test]
fn fault_plus_reclaim_recursion_on_the_same_slot() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r4");
    let page = compressible(4);
    let x = k.swap_out_stored(&page, Some(&cg));
    k.age(&cg, 1);
    k.sp().reclaim_on_charge.store(1, Ordering::SeqCst);
    let back = k.swap_in(x).unwrap();
    assert_eq!(&back[..], &page[..]);
    let s = k.zswap.stats();
    assert!(s.writeback_skip_exists > 0);
    assert_eq!(s.written_back_pages, 0);
    assert_eq!(s.zswpin, 1);
    let results = k.sp().reclaim_results.lock().unwrap().clone();
    assert_eq!(results, vec![Err(Error::EAGAIN)]);
}

/// The same recursion with writeback waiting instead of skipping: the
/// platform's wait hook detects the recursive wait (EDEADLK) — a real
/// kernel would hang here.
#[test]
fn fault_plus_reclaim_recursion_without_skip_is_a_self_wait() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r4b");
    let page = compressible(5);
    let x = k.swap_out_stored(&page, Some(&cg));
    k.age(&cg, 1);
    k.zswap.test_only_writeback_waits_on_busy_slots(true);
    k.sp().wait_limit.store(8, Ordering::SeqCst);
    k.sp().reclaim_on_charge.store(1, Ordering::SeqCst);
    let back = k.swap_in(x).unwrap();
    assert_eq!(&back[..], &page[..]);
    assert_eq!(k.zswap.stats().writeback_skip_exists, 0);
    assert!(k.zswap.stats().reject_reclaim_fail > 0);
}

/// Race 5: a load erased the entry and decompresses while an invalidation
/// of the same slot comes in: exactly one free.
#[test]
fn load_racing_invalidate_frees_once() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r5");
    let page = compressible(5);
    let x = k.swap_out_stored(&page, Some(&cg));
    k.set_hook(Some(once(load_erased, |k, s| k.zswap.invalidate(s))));
    assert_eq!(&k.swap_in(x).unwrap()[..], &page[..]);
    k.set_hook(None);
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, 0);
    assert_eq!(s.zswpin, 1);
    assert_eq!(cg.zswap_current(), 0);
    assert_eq!(cg.stat().zswapped, 0);
    assert_eq!(s.pool_total_size, 0);
}

/// Swaps `v1` out into zswap, keeps the folio in the swap cache, redirties
/// it to `v2` and swaps it out again with `setup` making the store fail.
fn failed_restore(setup: impl Fn(&Kernel, &memcg::MemcgRef), v2: &[u8; PAGE_SIZE]) {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r7");
    let f = k.page_folio(&compressible(1));
    f.set_memcg_id(cg.id());
    f.lock();
    let x = k.swap.add_to_swap(&f, Gfp::KERNEL).unwrap();
    k.swap.swap_cgroup_record(x, 1, cg.id()).unwrap();
    k.zswap.store(&f).unwrap();
    assert!(k.zswap.is_present(x));
    // Redirtied while still in the swap cache; the next store fails.
    f.with_page_mut(0, |p| p.copy_from_slice(v2)).unwrap();
    setup(&k, &cg);
    assert!(k.zswap.store(&f).is_err());
    assert!(
        !k.zswap.is_present(x),
        "stale entry survived a failed store"
    );
    f.with_page(0, |p| k.backend.write_page(x, p))
        .unwrap()
        .unwrap();
    k.swap.delete_from_swap_cache(&f);
    f.unlock();
    // Nothing can write v1 over v2 any more.
    let _ = k.zswap.shrink_memcg(&cg);
    assert_eq!(&k.swap_in(x).unwrap()[..], &v2[..]);
    assert_eq!(k.zswap.stats().stored_pages, 0);
    assert_eq!(cg.zswap_current(), 0);
}

/// Race 7 (678e54d4bb9a): a failed store after an earlier store of the same
/// slot leaves no stale entry, whatever made it fail.
#[test]
fn failed_store_after_earlier_store_leaves_no_stale_entry() {
    // zswap disabled
    failed_restore(
        |k, _| k.zswap.set_param("enabled", "0").unwrap(),
        &compressible(2),
    );
    // zswap.max = 0
    failed_restore(|_, cg| cg.set_zswap_max("0").unwrap(), &compressible(3));
    // incompressible with writeback disabled
    failed_restore(
        |_, cg| cg.set_zswap_writeback("0").unwrap(),
        &incompressible(4),
    );
    // global limit
    failed_restore(
        |k, _| k.zswap.set_param("max_pool_percent", "0").unwrap(),
        &compressible(5),
    );
}

/// Race 8: storing at an occupied slot replaces the entry and frees the old
/// one; counters and cgroup charges stay exact.
#[test]
fn duplicate_store_replaces_and_keeps_counters_exact() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r8");
    let f = k.page_folio(&incompressible(1));
    f.set_memcg_id(cg.id());
    f.lock();
    let x = k.swap.add_to_swap(&f, Gfp::KERNEL).unwrap();
    k.swap.swap_cgroup_record(x, 1, cg.id()).unwrap();
    k.zswap.store(&f).unwrap();
    assert_eq!(cg.zswap_current(), PAGE_SIZE as u64);
    let v2 = compressible(77);
    f.with_page_mut(0, |p| p.copy_from_slice(&v2[..])).unwrap();
    k.zswap.store(&f).unwrap();
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, 1);
    assert_eq!(s.stored_incompressible_pages, 0);
    assert_eq!(s.zswpout, 2);
    assert_eq!(cg.stat().zswapped, PAGE_SIZE as u64);
    assert!(cg.zswap_current() < PAGE_SIZE as u64);
    assert_eq!(k.zswap.lru_count(Some(&cg)), 1);
    k.swap.delete_from_swap_cache(&f);
    f.unlock();
    assert_eq!(&k.swap_in(x).unwrap()[..], &v2[..]);
    assert_eq!(cg.zswap_current(), 0);
    assert_eq!(k.zswap.stats().stored_pages, 0);
}

/// Race 9: entries of an offlined (and then removed) cgroup are freed with
/// the LRU delete before the cgroup reference goes.
#[test]
fn entry_free_order_with_offlined_cgroup() {
    let k = Kernel::default_kernel();
    let parent = k.cgroup("p");
    let child = k.cgroup("p/c");
    let slots: Vec<_> = (0..6)
        .map(|i| k.swap_out(&compressible(i), Some(&child)).0)
        .collect();
    assert_eq!(k.zswap.lru_count(Some(&child)), 6);
    let tree = k.memcg.as_ref().unwrap();
    tree.offline("p/c").unwrap();
    k.zswap.memcg_offline(&child).unwrap();
    // Reparented: the entries are on the parent's list now.
    assert_eq!(k.zswap.lru_count(Some(&child)), 0);
    assert_eq!(k.zswap.lru_count(Some(&parent)), 6);
    assert_eq!(k.zswap.shrink_memcg(&child), Err(Error::ENOENT));
    // New stores of the dead cgroup's pages go to the parent too.
    let late = k.swap_out_stored(&compressible(50), Some(&child));
    assert_eq!(k.zswap.lru_count(Some(&parent)), 7);
    tree.remove("p/c").unwrap();
    drop(child);
    // Write one back through the parent (its oldest, a reparented entry,
    // after its second chance), free the rest.
    k.age(&parent, 7);
    k.zswap.shrink_memcg(&parent).unwrap();
    assert!(
        !k.zswap.is_present(slots[0]),
        "the dead child's entries go first"
    );
    for s in slots {
        k.release(s);
    }
    k.release(late);
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, 0);
    assert_eq!(k.zswap.lru_entries(), 0);
    assert_eq!(parent.zswap_current(), 0);
    // The dead cgroup's LRU redirect went with its last entry.
    assert_eq!(k.zswap.lru_records(), 1, "only the parent's lists remain");
}

/// An entry keeps no objcg: its bytes are uncharged through the cgroup its
/// LRU record holds. Through two levels of offline (a/b/c, then a/b), the
/// charges, the `zswapped` pages and the `zswpin` / `zswpwb` events of the
/// dead cgroups' entries land on the nearest online ancestor, as Linux's
/// reparented objcgs make them, and everything comes back to 0.
#[test]
fn entries_of_twice_offlined_cgroups_uncharge_the_online_ancestor() {
    let k = Kernel::default_kernel();
    let a = k.cgroup("a");
    let b = k.cgroup("a/b");
    let c = k.cgroup("a/b/c");
    let in_c: Vec<_> = (0..6)
        .map(|i| k.swap_out_stored(&compressible(i), Some(&c)))
        .collect();
    let in_b: Vec<_> = (0..4)
        .map(|i| k.swap_out_stored(&compressible(20 + i), Some(&b)))
        .collect();
    let charged = a.stat().zswap;
    assert!(charged > 0);
    assert_eq!(a.stat().zswapped, 10 * PAGE_SIZE as u64);
    assert_eq!(c.stat().zswapped, 6 * PAGE_SIZE as u64);
    let tree = k.memcg.as_ref().unwrap();
    tree.offline("a/b/c").unwrap();
    k.zswap.memcg_offline(&c).unwrap();
    tree.offline("a/b").unwrap();
    k.zswap.memcg_offline(&b).unwrap();
    assert_eq!(a.stat().zswap, charged, "offline moves no charge");
    assert_eq!(k.zswap.lru_count(Some(&a)), 10);
    // Loads of the grandchild's pages: counted at `a`, uncharged from `a`.
    let zswpin = a.stat_local().zswpin;
    for (i, s) in in_c[..3].iter().enumerate() {
        assert_eq!(&k.swap_in(*s).unwrap()[..], &compressible(i as u8)[..]);
    }
    assert_eq!(a.stat_local().zswpin - zswpin, 3);
    assert_eq!(a.stat().zswapped, 7 * PAGE_SIZE as u64);
    assert!(a.stat().zswap < charged);
    // A writeback through `a` takes a dead cgroup's entry: counted at `a`.
    k.age(&a, 7);
    k.zswap.shrink_memcg(&a).unwrap();
    assert_eq!(a.stat_local().zswpwb, 1);
    assert_eq!(a.stat().zswapped, 6 * PAGE_SIZE as u64);
    // A store for the dead grandchild now: charged to `a`, freed from `a`.
    let late = k.swap_out_stored(&compressible(90), Some(&c));
    assert_eq!(a.stat().zswapped, 7 * PAGE_SIZE as u64);
    // The loaded slots went with their faults.
    for s in in_c[3..].iter().copied().chain(in_b).chain([late]) {
        k.release(s);
    }
    assert_eq!(k.zswap.stats().stored_pages, 0);
    assert_eq!(a.zswap_current(), 0);
    assert_eq!((a.stat().zswap, a.stat().zswapped), (0, 0));
    assert_eq!(k.zswap.lru_records(), 1, "only a's lists remain");
}

/// 682886ec69d2: the shrinker with memcg disabled uses global counters and
/// the root list.
#[test]
fn shrinker_with_no_memcg() {
    let k = Kernel::new(Config {
        memcg: false,
        ..Config::default()
    });
    let slots: Vec<_> = (0..8)
        .map(|i| k.swap_out(&incompressible(i), None).0)
        .collect();
    let sc = ShrinkControl::new(None, 64);
    assert_eq!(k.zswap.shrinker_count(&sc), 8);
    let mut sc = ShrinkControl::new(None, 4);
    // 4 rotations (second chance), nothing written yet.
    assert_eq!(k.zswap.shrinker_scan(&mut sc), ShrinkResult::Stop);
    let mut sc = ShrinkControl::new(None, 64);
    assert_eq!(k.zswap.shrinker_scan(&mut sc), ShrinkResult::Freed(8));
    assert_eq!(k.zswap.stats().written_back_pages, 8);
    for (i, s) in slots.iter().enumerate() {
        assert_eq!(&k.swap_in(*s).unwrap()[..], &incompressible(i as u64)[..]);
    }
    // Worker and shrink_root work without cgroups too.
    k.swap_out(&incompressible(100), None).1.unwrap();
    // One entry: a second-chance rotation (EAGAIN: one entry per call),
    // then its writeback.
    assert_eq!(k.zswap.shrink_root(), Err(Error::EAGAIN));
    k.zswap.shrink_root().unwrap();
    assert_eq!(k.zswap.shrink_root(), Err(Error::ENOENT));
    k.zswap.shrink_worker();
}

/// Takero Funaki's worker fixes: offline and empty cgroups neither abort the
/// worker nor count as failures; it shrinks to the accept threshold.
#[test]
fn global_worker_over_offline_and_empty_cgroups() {
    let k = Kernel::new(Config {
        totalram: 200,
        params: ZswapParams {
            max_pool_percent: 10, // 20 pages
            accept_threshold_percent: 50,
            shrinker_enabled: true,
            ..ZswapParams::default()
        },
        ..Config::default()
    });
    let _empty = k.cgroup("empty");
    let dead = k.cgroup("dead");
    let busy = k.cgroup("busy");
    let nowb = k.cgroup("nowb");
    nowb.set_zswap_writeback("0").unwrap();
    k.swap_out(&compressible(1), Some(&nowb)).1.unwrap();
    k.swap_out(&incompressible(2), Some(&dead)).1.unwrap();
    k.memcg.as_ref().unwrap().offline("dead").unwrap();
    k.zswap.memcg_offline(&dead).unwrap();
    let mut i = 10;
    while k.swap_out(&incompressible(i), Some(&busy)).1.is_ok() {
        i += 1;
    }
    assert!(k.zswap.total_pages() as u64 >= k.zswap.max_pool_pages());
    // Each visit examines one entry per node, and a visit that only takes a
    // second chance away is a failure (EAGAIN): with fresh entries the
    // worker would give up after 16. Entries that already lost theirs are
    // written back one per visit until the accept threshold.
    k.age(&busy, k.zswap.lru_count(Some(&busy)));
    k.zswap.shrink_worker();
    assert!(k.zswap.total_pages() as u64 <= k.zswap.accept_thr_pages());
    assert!(k.zswap.stats().written_back_pages > 0);
    assert_eq!(nowb.stat().zswpwb, 0);
    // Nothing left to write back anywhere but `nowb`: the worker stops.
    k.zswap.set_param("max_pool_percent", "0").unwrap();
    k.zswap.shrink_worker();
    assert_eq!(k.zswap.lru_count(Some(&nowb)), 1);
}

/// Note 17: since 6.8 ("zswap: make shrinking memcg-aware" superseded "do
/// not shrink if cgroup may not zswap") a store over `memory.zswap.max`,
/// 0 included, calls `shrink_memcg` once and is refused only if that wrote
/// nothing back. Four stores only take the four second chances away; the
/// fifth writes the oldest entry back and goes ahead.
#[test]
fn zswap_max_zero_shrinks_once_per_store() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("z");
    for i in 0..4 {
        k.swap_out(&compressible(i), Some(&cg)).1.unwrap();
    }
    cg.set_zswap_max("0").unwrap();
    for i in 0..4 {
        let (s, r) = k.swap_out(&compressible(10 + i), Some(&cg));
        assert_eq!(r, Err(Error::ENOSPC));
        assert!(!k.zswap.is_present(s));
    }
    assert_eq!(k.zswap.stats().zswpwb, 0);
    assert_eq!(cg.stat().zswpwb, 0);
    assert_eq!(k.zswap.stats().reject_memcg_limit, 4);
    let s = k.swap_out_stored(&compressible(20), Some(&cg));
    assert!(k.zswap.is_present(s));
    assert_eq!((k.zswap.stats().zswpwb, cg.stat().zswpwb), (1, 1));
    assert_eq!(k.zswap.stats().reject_memcg_limit, 4);
}

/// ≈6.16: a corrupt object gives EIO on load (entry kept) and on writeback
/// (entry kept, folio out of the swap cache), never a panic.
#[test]
fn decompression_failure_on_load_and_writeback() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("r19");
    let x = k.swap_out_stored(&compressible(8), Some(&cg));
    k.zswap.debug_corrupt(x).unwrap();
    assert_eq!(k.swap_in(x).unwrap_err(), Error::EIO);
    let s = k.zswap.stats();
    assert_eq!(s.decompress_fail, 1);
    assert_eq!(s.stored_pages, 1);
    assert!(k.zswap.is_present(x));
    assert_not_cached(&k, x);
    // Writeback: EIO, entry kept (and still on the LRU), folio cleaned up.
    k.age(&cg, 1);
    assert_eq!(k.zswap.shrink_memcg(&cg), Err(Error::EAGAIN));
    let s = k.zswap.stats();
    assert!(s.decompress_fail >= 2);
    assert_eq!(s.written_back_pages, 0);
    assert!(k.zswap.is_present(x));
    assert_eq!(k.zswap.lru_count(Some(&cg)), 1);
    assert_not_cached(&k, x);
    // The slot can still be freed normally.
    k.release(x);
    assert_eq!(k.zswap.stats().stored_pages, 0);
    assert_eq!(cg.zswap_current(), 0);
    // Bad input to the hook itself.
    assert_eq!(k.zswap.debug_corrupt(x), Err(Error::ENOENT));
}

/// 6.18 store-raw: wb on stores raw, wb off rejects (and the caller must
/// not write to the device; here it does, as a non-writeback kernel would
/// keep the page in memory).
#[test]
fn incompressible_page_with_writeback_on_and_off() {
    let k = Kernel::default_kernel();
    let on = k.cgroup("on");
    let off = k.cgroup("off");
    off.set_zswap_writeback("0").unwrap();
    let a = k.swap_out_stored(&incompressible(1), Some(&on));
    let (b, r) = k.swap_out(&incompressible(2), Some(&off));
    assert!(r.is_err());
    let s = k.zswap.stats();
    assert_eq!(s.stored_incompressible_pages, 1);
    assert_eq!(s.reject_compress_fail + s.reject_compress_poor, 1);
    assert_eq!(on.stat().zswap_incomp, PAGE_SIZE as u64);
    assert_eq!(off.stat().zswap_incomp, 0);
    assert_eq!(&k.swap_in(a).unwrap()[..], &incompressible(1)[..]);
    assert_eq!(&k.swap_in(b).unwrap()[..], &incompressible(2)[..]);
}

/// Large folios are stored all-or-nothing; a failing page invalidates every
/// offset of the folio, and large folios are never loaded from zswap.
#[test]
fn large_folio_store_partial_failure() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("thp");
    cg.set_zswap_writeback("0").unwrap();
    let f = Folio::alloc(k.alloc, 4, Gfp::KERNEL).unwrap();
    for i in 0..4 {
        let page = if i == 2 {
            incompressible(9)
        } else {
            compressible(i as u8)
        };
        f.with_page_mut(i, |p| p.copy_from_slice(&page[..]))
            .unwrap();
    }
    let (x, r) = k.swap_out_folio(&f, Some(&cg));
    assert!(r.is_err());
    let s = k.zswap.stats();
    assert_eq!(s.stored_pages, 0);
    assert_eq!(s.zswpout, 0);
    assert_eq!(
        s.reject_compress_fail + s.reject_compress_poor + s.reject_alloc_fail,
        1,
        "one failure, one counter"
    );
    for i in 0..4 {
        assert!(!k.zswap.is_present(x.checked_add(i).unwrap()));
    }
    assert_eq!(cg.zswap_current(), 0);
    assert_eq!(k.zswap.lru_entries(), 0);
    // A fully compressible large folio is stored page by page.
    cg.set_zswap_writeback("1").unwrap();
    let g = Folio::alloc(k.alloc, 4, Gfp::KERNEL).unwrap();
    for i in 0..4 {
        g.with_page_mut(i, |p| p.copy_from_slice(&compressible(40 + i as u8)[..]))
            .unwrap();
    }
    let (y, r) = k.swap_out_folio(&g, Some(&cg));
    r.unwrap();
    assert_eq!(k.zswap.stats().stored_pages, 4);
    assert_eq!(k.zswap.stats().zswpout, 4);
    // A large folio over zswap-held slots: EIO, never garbage.
    let h = Folio::alloc(k.alloc, 4, Gfp::KERNEL).unwrap();
    h.lock();
    for i in 0..4 {
        k.swap.swapcache_prepare(y.checked_add(i).unwrap()).unwrap();
    }
    k.swap.add_to_swap_cache(&h, y, Gfp::KERNEL).unwrap();
    assert_eq!(k.zswap.load(&h), Err(Error::EIO));
    k.swap.delete_from_swap_cache(&h);
    h.unlock();
    // And over slots zswap does not hold: ENOENT (read the device).
    let (z, r) = k.swap_out_folio(&f, Some(&cg));
    r.unwrap();
    for i in 0..4 {
        k.zswap.invalidate(z.checked_add(i).unwrap());
    }
    h.lock();
    for i in 0..4 {
        k.swap.swapcache_prepare(z.checked_add(i).unwrap()).unwrap();
    }
    k.swap.add_to_swap_cache(&h, z, Gfp::KERNEL).unwrap();
    assert_eq!(k.zswap.load(&h), Err(Error::ENOENT));
    k.swap.delete_from_swap_cache(&h);
    h.unlock();
    for i in 0..4 {
        k.release(z.checked_add(i).unwrap());
    }
    for i in 0..4 {
        k.release(y.checked_add(i).unwrap());
    }
    assert_eq!(k.zswap.stats().stored_pages, 0);
}

/// Compressor switch: new stores use the new pool, old entries still load
/// from theirs, and the old pool goes with its last entry.
#[cfg(feature = "zstd")]
#[test]
fn compressor_switch_while_old_entries_remain() {
    let k = Kernel::default_kernel();
    let a = compressible(1);
    let b = compressible(2);
    let xa = k.swap_out_stored(&a, None);
    k.zswap.set_param("compressor", "zstd").unwrap();
    assert_eq!(k.zswap.params().compressor.name(), "zstd");
    assert_eq!(k.zswap.nr_pools(), 2);
    let xb = k.swap_out_stored(&b, None);
    assert_eq!(&k.swap_in(xa).unwrap()[..], &a[..]);
    assert_eq!(k.zswap.nr_pools(), 1, "old pool freed with its last entry");
    // Switching back revives nothing dead: a fresh lz4 pool.
    k.zswap.set_param("compressor", "lz4").unwrap();
    assert_eq!(k.zswap.nr_pools(), 2);
    assert_eq!(&k.swap_in(xb).unwrap()[..], &b[..]);
    assert_eq!(k.zswap.nr_pools(), 1);
    assert_eq!(k.zswap.stats().pool_total_size, 0);
}

fn store_compressing(ev: ZswapEvent) -> Option<SwpEntry> {
    match ev {
        ZswapEvent::StoreCompressing(s) => Some(s),
        _ => None,
    }
}

/// The cgroup goes offline (and is reparented) while a store for it is past
/// its LRU set-up and compressing: the entry must still land on an LRU list
/// (the parent's), not silently stay off it, and nothing of the dead cgroup
/// may stay behind once the entry is gone.
#[test]
fn store_racing_memcg_offline_puts_its_entry_on_the_parents_lru() {
    let k = Kernel::default_kernel();
    let parent = k.cgroup("p");
    let child = k.cgroup("p/c");
    let records = k.zswap.lru_records();
    let child2 = child.clone();
    k.set_hook(Some(once(store_compressing, move |k, _| {
        k.memcg.as_ref().unwrap().offline("p/c").unwrap();
        k.zswap.memcg_offline(&child2).unwrap();
    })));
    let page = compressible(5);
    let (x, r) = k.swap_out(&page, Some(&child));
    k.set_hook(None);
    r.unwrap();
    assert_eq!(k.zswap.lru_entries(), 1, "the entry is on an LRU");
    assert_eq!(k.zswap.lru_count(Some(&parent)), 1);
    assert_eq!(k.zswap.lru_count(Some(&child)), 0);
    // Reclaim of the parent reaches it.
    let mut tries = 0;
    while k.zswap.stats().written_back_pages == 0 && tries < 4 {
        let _ = k.zswap.shrink_memcg(&parent);
        tries += 1;
    }
    assert_eq!(k.zswap.stats().written_back_pages, 1);
    assert_eq!(&k.swap_in(x).unwrap()[..], &page[..]);
    assert_eq!(k.zswap.lru_entries(), 0);
    // Only the parent's record is new: the dead child's went with its entry.
    assert_eq!(k.zswap.lru_records(), records + 1);
}

/// The compressor is switched after a store took its reference on the old
/// pool, and the store then fails: the store holds the old pool's last
/// reference, and giving it back frees the pool (after the page lock is
/// dropped), with nothing leaked and the new pool serving the next store.
#[cfg(feature = "zstd")]
#[test]
fn compressor_switch_during_a_failing_store_frees_the_old_pool() {
    let k = Kernel::default_kernel();
    let cg = k.cgroup("nowb");
    cg.set_zswap_writeback("0").unwrap();
    let switched = Arc::new(AtomicBool::new(false));
    let switched2 = switched.clone();
    k.set_hook(Some(once(store_compressing, move |k, _| {
        k.zswap.set_param("compressor", "zstd").unwrap();
        // The old pool lives on only through the store's reference.
        assert_eq!(k.zswap.nr_pools(), 2);
        switched2.store(true, Ordering::SeqCst);
    })));
    // Incompressible, and raw storage is not allowed without writeback.
    let (x, r) = k.swap_out(&incompressible(9), Some(&cg));
    k.set_hook(None);
    assert!(switched.load(Ordering::SeqCst));
    assert!(r.is_err());
    assert_eq!(k.zswap.nr_pools(), 1, "old pool freed with the store's ref");
    assert_eq!(k.zswap.params().compressor.name(), "zstd");
    let st = k.zswap.stats();
    assert_eq!(st.stored_pages, 0);
    assert_eq!(st.pool_total_size, 0);
    assert_eq!(&k.swap_in(x).unwrap()[..], &incompressible(9)[..]);
    let y = k.swap_out_stored(&compressible(4), Some(&cg));
    assert_eq!(k.zswap.stats().stored_pages, 1);
    assert_eq!(&k.swap_in(y).unwrap()[..], &compressible(4)[..]);
    assert_eq!(k.zswap.nr_pools(), 1);
}

/// Without the zstd feature the algorithm is known but unavailable:
/// ENOENT, nothing changes.
#[cfg(not(feature = "zstd"))]
#[test]
fn compressor_switch_while_old_entries_remain() {
    let k = Kernel::default_kernel();
    let xa = k.swap_out_stored(&compressible(1), None);
    assert_eq!(k.zswap.set_param("compressor", "zstd"), Err(Error::ENOENT));
    k.zswap.set_param("compressor", "lz4").unwrap();
    assert_eq!(k.zswap.nr_pools(), 1);
    assert_eq!(&k.swap_in(xa).unwrap()[..], &compressible(1)[..]);
}
